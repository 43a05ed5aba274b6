//! The `airlock` binary: parses arguments and hands over to [`airlock::cli`].

fn main() -> std::process::ExitCode {
    airlock::cli::main()
}
