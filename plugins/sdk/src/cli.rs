//! `cli`: the native entry point — Airbyte's connector command line
//! (`spec`, `check --config FILE`, `write --config FILE --catalog FILE`) on
//! top of [`command`](crate::command) and [`WriteSession`]. It reads files
//! and standard input and writes standard output; nothing else here decides
//! anything.
//!
//! Exit status: 0 on success (including a FAILED check), 1 when a `write`
//! fails (after a TRACE ERROR on standard output), 2 on a usage error.

use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::message::{write_connection_status, write_trace_error};
use crate::{Context, Destination, DestinationError, WriteSession, command};

/// How much of standard input is read at a time.
const STDIN_BUFFER_BYTES: usize = 1024 * 1024;

/// How much output is gathered before it is written.
const STDOUT_BUFFER_BYTES: usize = 64 * 1024;

/// Exit status of a failed `write`.
const EXIT_FAILURE: u8 = 1;

/// Exit status of a usage error.
const EXIT_USAGE: u8 = 2;

/// Runs `dest` as an Airbyte connector CLI: parses the process arguments,
/// reads the files they name and standard input, and writes the Airbyte
/// messages to standard output.
///
/// The [`Context`] comes from [`Context::from_env`]: set `AIRLOCK_LOCAL_ROOT`
/// to run as inside a sandbox whose `/local` is that folder.
///
/// ```no_run
/// # use airlock_plugin_sdk::Destination;
/// # fn demo(my_destination: impl Destination) -> std::process::ExitCode {
/// airlock_plugin_sdk::run_cli(my_destination)
/// # }
/// ```
pub fn run_cli<D: Destination>(dest: D) -> ExitCode {
    let mut args = std::env::args_os();
    let program = args
        .next()
        .and_then(|p| {
            Path::new(&p)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "destination".to_string());
    let args: Vec<OsString> = args.collect();
    let mut input = BufReader::with_capacity(STDIN_BUFFER_BYTES, io::stdin().lock());
    let mut output = BufWriter::with_capacity(STDOUT_BUFFER_BYTES, io::stdout().lock());
    let code = run(
        &dest,
        &program,
        &args,
        &Context::from_env(),
        &mut input,
        &mut output,
        &mut io::stderr().lock(),
    );
    ExitCode::from(code)
}

/// A parsed command line.
#[derive(Debug, PartialEq, Eq)]
enum Command {
    Spec,
    Check { config: PathBuf },
    Write { config: PathBuf, catalog: PathBuf },
    Help,
}

fn usage(program: &str) -> String {
    format!(
        "usage: {program} spec\n       {program} check --config CONFIG.json\n       {program} write --config CONFIG.json --catalog CATALOG.json < MESSAGES.jsonl\n"
    )
}

/// Parses the arguments after the program name.
fn parse_args(args: &[OsString]) -> Result<Command, String> {
    let Some((command, rest)) = args.split_first() else {
        return Err("no command given".into());
    };
    let command = command.to_str().unwrap_or_default();
    if matches!(command, "-h" | "--help" | "help") {
        return Ok(Command::Help);
    }
    let mut config = None;
    let mut catalog = None;
    let mut rest = rest.iter();
    while let Some(arg) = rest.next() {
        let arg_text = arg.to_string_lossy();
        let (flag, inline_value) = match arg_text.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_string(), Some(value.into())),
            _ => (arg_text.into_owned(), None),
        };
        let slot = match flag.as_str() {
            "--config" => &mut config,
            "--catalog" => &mut catalog,
            "-h" | "--help" => return Ok(Command::Help),
            _ => return Err(format!("unexpected argument {flag:?}")),
        };
        let value = match inline_value {
            Some(value) => value,
            None => rest
                .next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a file path"))?,
        };
        if slot.replace(PathBuf::from(value)).is_some() {
            return Err(format!("{flag} given twice"));
        }
    }
    match (command, config, catalog) {
        ("spec", None, None) => Ok(Command::Spec),
        ("check", Some(config), None) => Ok(Command::Check { config }),
        ("write", Some(config), Some(catalog)) => Ok(Command::Write { config, catalog }),
        ("spec", ..) => Err("spec takes no options".into()),
        ("check", None, _) => Err("check needs --config FILE".into()),
        ("check", Some(_), Some(_)) => Err("check takes no --catalog".into()),
        ("write", ..) => Err("write needs --config FILE and --catalog FILE".into()),
        (other, ..) => Err(format!("unknown command {other:?}")),
    }
}

/// Standard input as the CLI reads it: lines, and whether the next read may
/// wait for the host.
trait Input: BufRead {
    /// Nothing is buffered: the next read may block.
    fn drained(&self) -> bool;
}

impl<R: io::Read> Input for BufReader<R> {
    fn drained(&self) -> bool {
        self.buffer().is_empty()
    }
}

impl Input for &[u8] {
    fn drained(&self) -> bool {
        self.is_empty()
    }
}

/// The CLI with its process handles passed in; returns the exit status.
fn run<D: Destination + ?Sized>(
    dest: &D,
    program: &str,
    args: &[OsString],
    ctx: &Context,
    input: &mut dyn Input,
    output: &mut dyn Write,
    stderr: &mut dyn Write,
) -> u8 {
    let command = match parse_args(args) {
        Ok(command) => command,
        Err(message) => {
            // Nothing sensible is left to do if stderr itself fails.
            let _ = write!(stderr, "{program}: {message}\n{}", usage(program));
            return EXIT_USAGE;
        }
    };
    let mut out = Vec::new();
    let code = match command {
        Command::Help => {
            out.extend_from_slice(usage(program).as_bytes());
            0
        }
        Command::Spec => {
            command::spec(dest, &mut out);
            0
        }
        Command::Check { config } => {
            match read_file(&config, "configuration") {
                Ok(json) => command::check(dest, &json, ctx, &mut out),
                Err(e) => write_connection_status(&mut out, &Err(e.message)),
            }
            0
        }
        Command::Write { config, catalog } => {
            write(dest, &config, &catalog, ctx, input, output, &mut out)
        }
    };
    if let Err(e) = output.write_all(&out).and_then(|()| output.flush()) {
        let _ = writeln!(stderr, "{program}: could not write to standard output: {e}");
        return EXIT_FAILURE;
    }
    code
}

/// The `write` command: streams standard input through a [`WriteSession`],
/// writing its output as it comes. Output still pending at the end is left
/// in `out`.
fn write<D: Destination + ?Sized>(
    dest: &D,
    config: &Path,
    catalog: &Path,
    ctx: &Context,
    input: &mut dyn Input,
    output: &mut dyn Write,
    out: &mut Vec<u8>,
) -> u8 {
    let opened = read_file(config, "configuration")
        .and_then(|json| command::parse_config(&json))
        .and_then(|config| {
            let catalog = read_file(catalog, "configured catalog")
                .and_then(|json| crate::catalog::parse_catalog(&json))?;
            WriteSession::open(dest, &config, &catalog, ctx)
        });
    let mut session = match opened {
        Ok(session) => session,
        Err(e) => {
            write_trace_error(out, &e);
            return EXIT_FAILURE;
        }
    };
    let mut line = Vec::with_capacity(64 * 1024);
    loop {
        line.clear();
        // Before a read that may wait, commit what the writer held back.
        if input.drained() && session.input_idle(out).is_err() {
            break;
        }
        if let Err(error) = pass_on(output, out) {
            session.abort(error, out);
            return EXIT_FAILURE;
        }
        match input.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                let error = DestinationError::system(format!("could not read standard input: {e}"));
                session.abort(error, out);
                return EXIT_FAILURE;
            }
        }
        if session.push_line(&line, out).is_err() {
            break;
        }
        // Output is rare (states, logs): pass it on at once, so the host
        // sees each state as soon as it is committed.
        if let Err(error) = pass_on(output, out) {
            session.abort(error, out);
            return EXIT_FAILURE;
        }
    }
    match session.finish(out) {
        Ok(()) => 0,
        Err(_) => EXIT_FAILURE,
    }
}

/// Writes `out` to the host at once and empties it.
fn pass_on(output: &mut dyn Write, out: &mut Vec<u8>) -> Result<(), DestinationError> {
    if out.is_empty() {
        return Ok(());
    }
    let written = output.write_all(out).and_then(|()| output.flush());
    out.clear();
    written
        .map_err(|e| DestinationError::system(format!("could not write to standard output: {e}")))
}

/// Reads a file named on the command line.
fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, DestinationError> {
    std::fs::read(path).map_err(|e| {
        DestinationError::config(format!(
            "could not read the {what} file {}: {e}",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ConfiguredCatalog, Emitter, Record, RecordWriter};
    use serde_json::{Value, json};

    struct Counter;

    struct CountWriter(u64);

    impl RecordWriter for CountWriter {
        fn write(
            &mut self,
            record: &Record<'_>,
            _out: &mut Emitter<'_>,
        ) -> Result<(), DestinationError> {
            if record.data.get().contains("boom") {
                return Err(DestinationError::system("boom record"));
            }
            self.0 += 1;
            Ok(())
        }
        fn flush(&mut self) -> Result<(), DestinationError> {
            Ok(())
        }
        fn close(self: Box<Self>, _clean: bool) -> Result<(), DestinationError> {
            Ok(())
        }
    }

    impl Destination for Counter {
        fn spec(&self) -> Value {
            json!({"connectionSpecification": {}})
        }
        fn check(&self, config: &Value, _ctx: &Context) -> Result<(), String> {
            if config.get("ok").is_some() {
                Ok(())
            } else {
                Err("missing ok".into())
            }
        }
        fn open(
            &self,
            config: &Value,
            _catalog: &ConfiguredCatalog,
            _ctx: &Context,
        ) -> Result<Box<dyn RecordWriter>, DestinationError> {
            if config.get("ok").is_none() {
                return Err(DestinationError::config("missing ok"));
            }
            Ok(Box::new(CountWriter(0)))
        }
    }

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    /// Runs the CLI; returns (exit status, stdout lines as JSON, stderr).
    fn cli(list: &[&str], stdin: &str) -> (u8, Vec<Value>, String) {
        let mut output = Vec::new();
        let mut stderr = Vec::new();
        let code = run(
            &Counter,
            "dest",
            &args(list),
            &Context::native(),
            &mut stdin.as_bytes(),
            &mut output,
            &mut stderr,
        );
        let lines = output
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).expect("stdout lines are JSON"))
            .collect();
        (code, lines, String::from_utf8(stderr).expect("utf8"))
    }

    fn files(config: &str) -> (tempfile::TempDir, String, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let config_path = dir.path().join("config.json");
        let catalog_path = dir.path().join("catalog.json");
        std::fs::write(&config_path, config).expect("write");
        std::fs::write(
            &catalog_path,
            r#"{"streams":[{"stream":{"name":"s"},"sync_mode":"full_refresh","destination_sync_mode":"append"}]}"#,
        )
        .expect("write");
        let config_path = config_path.to_string_lossy().into_owned();
        let catalog_path = catalog_path.to_string_lossy().into_owned();
        (dir, config_path, catalog_path)
    }

    #[test]
    fn parses_the_airbyte_command_line() {
        assert_eq!(parse_args(&args(&["spec"])), Ok(Command::Spec));
        assert_eq!(
            parse_args(&args(&["check", "--config", "c.json"])),
            Ok(Command::Check {
                config: "c.json".into()
            })
        );
        assert_eq!(
            parse_args(&args(&["write", "--catalog=k.json", "--config", "c.json"])),
            Ok(Command::Write {
                config: "c.json".into(),
                catalog: "k.json".into()
            })
        );
        assert_eq!(parse_args(&args(&["--help"])), Ok(Command::Help));
        for bad in [
            &[][..],
            &["read"],
            &["check"],
            &["check", "--config"],
            &["write", "--config", "c"],
            &["check", "--config", "a", "--config", "b"],
            &["spec", "--verbose"],
        ] {
            assert!(parse_args(&args(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn usage_errors_exit_2_with_a_message_on_stderr() {
        let (code, lines, stderr) = cli(&["frobnicate"], "");
        assert_eq!(code, 2);
        assert!(lines.is_empty());
        assert!(stderr.contains("unknown command \"frobnicate\"") && stderr.contains("usage:"));
    }

    #[test]
    fn spec_prints_one_spec_line() {
        let (code, lines, _) = cli(&["spec"], "");
        assert_eq!(code, 0);
        assert_eq!(
            lines,
            [json!({"type":"SPEC","spec":{"connectionSpecification":{}}})]
        );
    }

    #[test]
    fn check_reports_bad_or_missing_config_as_failed_with_exit_0() {
        let (_dir, good, _) = files(r#"{"ok":1}"#);
        let (code, lines, _) = cli(&["check", "--config", &good], "");
        assert_eq!(
            (code, &lines[0]["connectionStatus"]["status"]),
            (0, &json!("SUCCEEDED"))
        );

        let (_dir, bad, _) = files("{}");
        let (code, lines, _) = cli(&["check", "--config", &bad], "");
        assert_eq!(code, 0);
        assert_eq!(
            lines[0]["connectionStatus"],
            json!({"status":"FAILED","message":"missing ok"})
        );

        let (code, lines, _) = cli(&["check", "--config", "/nonexistent/config.json"], "");
        assert_eq!(code, 0);
        let message = lines[0]["connectionStatus"]["message"]
            .as_str()
            .expect("message");
        assert!(message.contains("/nonexistent/config.json"), "{message}");

        let (_dir, not_object, _) = files("[]");
        let (code, lines, _) = cli(&["check", "--config", &not_object], "");
        assert_eq!(
            (code, &lines[0]["connectionStatus"]["status"]),
            (0, &json!("FAILED"))
        );
    }

    #[test]
    fn write_echoes_states_and_exits_0() {
        let (_dir, config, catalog) = files(r#"{"ok":1}"#);
        let stdin = "{\"type\":\"RECORD\",\"record\":{\"stream\":\"s\",\"data\":{},\"emitted_at\":1}}\r\n\n{\"type\":\"STATE\",\"state\":{\"data\":{}}}";
        let (code, lines, _) = cli(
            &["write", "--config", &config, "--catalog", &catalog],
            stdin,
        );
        assert_eq!(code, 0);
        assert_eq!(
            lines,
            [json!({"type":"STATE","state":{"data":{},"destinationStats":{"recordCount":1.0}}})]
        );
    }

    #[test]
    fn write_failures_end_with_a_trace_error_and_exit_1() {
        let (_dir, config, catalog) = files(r#"{"ok":1}"#);
        let stdin = "{\"type\":\"STATE\",\"state\":{}}\n{\"type\":\"RECORD\",\"record\":{\"stream\":\"s\",\"data\":\"boom\",\"emitted_at\":1}}\n{\"type\":\"STATE\",\"state\":{}}\n";
        let (code, lines, _) = cli(
            &["write", "--config", &config, "--catalog", &catalog],
            stdin,
        );
        assert_eq!(code, 1);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["type"], "STATE");
        assert_eq!(lines[1]["trace"]["error"]["message"], "boom record");

        let (_dir, bad_config, catalog) = files("{}");
        let (code, lines, _) = cli(
            &["write", "--config", &bad_config, "--catalog", &catalog],
            "",
        );
        assert_eq!(code, 1);
        assert_eq!(lines[0]["trace"]["error"]["failure_type"], "config_error");

        let (code, lines, _) = cli(
            &["write", "--config", &config, "--catalog", "/nonexistent"],
            "",
        );
        assert_eq!(code, 1);
        assert_eq!(lines[0]["trace"]["type"], "ERROR");
    }
}
