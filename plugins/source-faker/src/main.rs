//! `source-faker`: the command-line entry point (native or WASI command);
//! all the work is in the library.

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

/// Bytes buffered before writing to stdout.
const STDOUT_BUFFER: usize = 256 * 1024;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(STDOUT_BUFFER, stdout.lock());
    let mut code = source_faker::run(&args, &mut out);
    if out.flush().is_err() && code == 0 {
        code = 1;
    }
    ExitCode::from(code)
}
