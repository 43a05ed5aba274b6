//! The `airlock` binary: [`cli`] parses arguments, calls the library and maps the
//! outcome to an exit code. Nothing here is library API.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
