//! `airlock-init DIR -- PROGRAM [ARGS…]`: runs inside a connector's container as
//! its entrypoint (airlock bind-mounts this static binary), so that the
//! connector's stdin and stdout cross a Unix socket instead of the Docker engine's
//! attach stream.
//!
//! It connects to `DIR/io.sock` (airlock listens there, in a bind-mounted
//! folder), starts PROGRAM (the image's own entrypoint) with stdin fed from the
//! socket and stdout copied to it, leaves stderr to the container's log, and
//! exits with PROGRAM's exit code (128 + signal when it was killed). Before it
//! exits it writes `DIR/status`: `exit N`, or `error: …` when it could not
//! connect or start PROGRAM. A run whose status file is missing lost its init.
//!
//! It uses the standard library only, so it links statically and runs in a
//! `FROM scratch` image.

use std::ffi::OsString;
use std::io::Write;
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

/// Exit code when the init itself failed (before PROGRAM ran).
const INIT_FAILED: u8 = 125;
/// Exit code when PROGRAM could not be started.
const NOT_STARTED: u8 = 127;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let (dir, program, rest) = match args.as_slice() {
        [dir, separator, program, rest @ ..] if separator == "--" => {
            (PathBuf::from(dir), program.clone(), rest.to_vec())
        }
        _ => {
            eprintln!("usage: airlock-init DIR -- PROGRAM [ARGS...]");
            return ExitCode::from(INIT_FAILED);
        }
    };
    match run(&dir, &program, &rest) {
        Ok(code) => {
            report(&dir, &format!("exit {code}"));
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
        Err((code, why)) => {
            eprintln!("airlock-init: {why}");
            report(&dir, &format!("error: {why}"));
            ExitCode::from(code)
        }
    }
}

/// Writes the status file airlock reads when the container has ended.
fn report(dir: &Path, status: &str) {
    if let Ok(mut file) = std::fs::File::create(dir.join("status")) {
        let _ = file.write_all(status.as_bytes());
    }
}

fn run(dir: &Path, program: &OsString, args: &[OsString]) -> Result<i32, (u8, String)> {
    let socket = dir.join("io.sock");
    let stream = UnixStream::connect(&socket).map_err(|e| {
        (
            INIT_FAILED,
            format!(
                "cannot connect to airlock's socket {}: {e}",
                socket.display()
            ),
        )
    })?;
    let mut from_airlock = stream
        .try_clone()
        .map_err(|e| (INIT_FAILED, format!("cannot share the socket: {e}")))?;
    let mut to_airlock = stream;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| {
            (
                NOT_STARTED,
                format!("cannot start the image's entrypoint {program:?}: {e}"),
            )
        })?;
    let (Some(mut stdin), Some(mut stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err((INIT_FAILED, "the entrypoint's pipes were not opened".into()));
    };
    // Input: until airlock closes its side (end of input) or the program stops
    // reading; dropping the pipe closes the program's stdin.
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_airlock, &mut stdin);
    });
    // Output: until the program closes its stdout; then airlock reads the end.
    let output = std::thread::spawn(move || {
        let _ = std::io::copy(&mut stdout, &mut to_airlock);
        let _ = to_airlock.shutdown(Shutdown::Write);
    });
    let status = child
        .wait()
        .map_err(|e| (INIT_FAILED, format!("cannot wait for the entrypoint: {e}")))?;
    let _ = output.join();
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}
