//! `test-adversary`: a destination that attacks its sandbox, for airlock's
//! sandbox tests. Never run it outside a sandbox.
//!
//! Config: `{"attack": NAME, "phase": "check" | "open" | "write" | "close", "host": H, "port": N}`
//! (`host` and `port`, for `socket`: connect to H:N (H defaults to 127.0.0.1), a
//! listener the test opened; for `lookup`: the name to resolve. Its spec names
//! them in `x-airlock-endpoints`, so the host derives a grant from them.)
//! (`phase` defaults to `check`, `attack` to `none`). In that phase it tries
//! the attack:
//!
//! - Probes — `read_passwd`, `write_outside`, `socket`, `env`, `listen` (a TCP
//!   listener), `udp` (a datagram to 127.0.0.1:9), `lookup` — report what
//!   happened. In `check`: FAILED `denied: …` when the sandbox stopped them,
//!   SUCCEEDED `LEAK: …` when it did not. In the other phases: an error
//!   `denied: …` or `LEAK: …`.
//! - `loop`, `memory`, `recurse`, `flood_log`, `flood_stdout` and `trap`
//!   never end well on their own: the host must stop them.
//! - `flood_output` (write phase) returns about 70 MB of LOG lines from one
//!   `write-batch`; `bogus_state` (write phase) returns a STATE that was
//!   never received.
//!
//! - `leak_secrets` says its config's secrets (`password`, `credentials.token`)
//!   every way a connector can: a LOG message, a host log call, stderr, a failed
//!   CONNECTION_STATUS (check), a TRACE ERROR and the error it returns (other
//!   phases). The host must mask them all.
//! - `symlink_escape` and `hardlink` (probes) try to leave a link under
//!   `/local` that points outside it.
//!
//! With `"attack": "none"` it is a working dev-null: it drops the records
//! and echoes the states.
//!
//! In the `write` phase the attack runs on the first record; in `close`, at a
//! clean close.

#![deny(missing_docs)]

use std::hint::black_box;

use airlock_plugin_sdk::{
    ConfiguredCatalog, Context, Destination, DestinationError, Emitter, LogLevel, Record,
    RecordWriter, host_log,
};
use serde_json::{Value, json};

/// The adversary.
#[derive(Debug, Clone, Copy, Default)]
pub struct Adversary;

airlock_plugin_sdk::export_destination!(Adversary);

/// The attacks this destination knows; `none` is no attack.
pub const ATTACKS: [&str; 19] = [
    "read_passwd",
    "write_outside",
    "socket",
    "env",
    "loop",
    "memory",
    "recurse",
    "flood_log",
    "flood_stdout",
    "flood_output",
    "trap",
    "bogus_state",
    "leak_secrets",
    "symlink_escape",
    "hardlink",
    "listen",
    "udp",
    "lookup",
    "none",
];

/// How many 1 KiB LOG lines `flood_output` returns from one `write-batch`.
const FLOOD_OUTPUT_LINES: usize = 64 * 1024;

/// The phases an attack can run in.
const PHASES: [&str; 4] = ["check", "open", "write", "close"];

/// The line that the flooding attacks repeat: 1 KiB.
fn kib_line() -> String {
    "x".repeat(1024)
}

/// What to do, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Plan {
    attack: String,
    phase: String,
    /// For `socket`: a host (default 127.0.0.1) and port to connect to instead
    /// (a listener the test opened on the host, reachable only with a grant);
    /// for `lookup`, the name to resolve.
    host: Option<String>,
    port: Option<u16>,
    /// The secrets `leak_secrets` leaks.
    secrets: Vec<String>,
}

impl Plan {
    fn read(config: &Value) -> Result<Self, DestinationError> {
        let field = |key: &str, default: &str| match config.get(key) {
            None | Some(Value::Null) => Ok(default.to_owned()),
            Some(Value::String(value)) => Ok(value.clone()),
            Some(other) => Err(DestinationError::config(format!(
                "{key} must be a string, got {other}"
            ))),
        };
        let plan = Self {
            attack: field("attack", "none")?,
            phase: field("phase", "check")?,
            host: config
                .get("host")
                .and_then(Value::as_str)
                .map(str::to_owned),
            port: config
                .get("port")
                .and_then(Value::as_u64)
                .and_then(|p| u16::try_from(p).ok()),
            secrets: [
                config.get("password"),
                config.get("credentials").and_then(|c| c.get("token")),
            ]
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        };
        if !ATTACKS.contains(&plan.attack.as_str()) {
            return Err(DestinationError::config(format!(
                "unknown attack {:?}; one of {ATTACKS:?}",
                plan.attack
            )));
        }
        if !PHASES.contains(&plan.phase.as_str()) {
            return Err(DestinationError::config(format!(
                "unknown phase {:?}; one of {PHASES:?}",
                plan.phase
            )));
        }
        Ok(plan)
    }

    /// Whether the attack runs in `phase`.
    fn now(&self, phase: &str) -> bool {
        self.phase == phase && self.attack != "none"
    }
}

/// What a probe found: `Ok(what leaked)` or `Err(why it was denied)`.
type Probe = Result<String, String>;

/// Runs the probe `attack`, or returns `None` when `attack` is not a probe.
fn probe(attack: &str, host: Option<&str>, port: Option<u16>) -> Option<Probe> {
    let host = host.unwrap_or("127.0.0.1");
    Some(match attack {
        "read_passwd" => read_passwd(),
        "write_outside" => write_outside(),
        "socket" => match port {
            Some(port) => connect_and_greet(host, port),
            None => socket(),
        },
        "listen" => std::net::TcpListener::bind("127.0.0.1:0")
            .map(|l| format!("listening on {:?}", l.local_addr()))
            .map_err(|e| format!("listen: {e}")),
        "udp" => std::net::UdpSocket::bind("0.0.0.0:0")
            .and_then(|socket| socket.send_to(b"x", "127.0.0.1:9"))
            .map(|n| format!("sent {n} UDP bytes to 127.0.0.1:9"))
            .map_err(|e| format!("udp: {e}")),
        "lookup" => {
            use std::net::ToSocketAddrs;
            let name = if host == "127.0.0.1" {
                "localhost"
            } else {
                host
            };
            match (name, port.unwrap_or(80)).to_socket_addrs() {
                Ok(addrs) => Ok(format!(
                    "resolved {name} to {:?}",
                    addrs.collect::<Vec<_>>()
                )),
                Err(e) => Err(format!("lookup of {name}: {e}")),
            }
        }
        "env" => environment(),
        "symlink_escape" => symlink_escape(),
        "hardlink" => hardlink(),
        _ => return None,
    })
}

/// Connects to `host:port`, says `hello`, and reads the listener's answer.
fn connect_and_greet(host: &str, port: u16) -> Probe {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect((host, port))
        .map_err(|e| format!("connect to {host}:{port}: {e}"))?;
    // A listener that never answers must not hang the probe (where the
    // platform has read timeouts).
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
    let mut answer = [0u8; 64];
    let said = stream
        .write_all(b"hello\n")
        .and_then(|()| stream.read(&mut answer))
        .map(|n| format!("{:?}", String::from_utf8_lossy(&answer[..n]).trim()))
        .unwrap_or_else(|e| format!("nothing ({e})"));
    Ok(format!("connected to {host}:{port}, which said {said}"))
}

fn read_passwd() -> Probe {
    std::fs::read_to_string("/etc/passwd")
        .map(|text| {
            format!(
                "read /etc/passwd: {:?}",
                text.chars().take(40).collect::<String>()
            )
        })
        .map_err(|e| format!("/etc/passwd: {e}"))
}

fn write_outside() -> Probe {
    let mut denials = Vec::new();
    for path in ["/tmp/airlock-escape.txt", "/local/../escape.txt"] {
        match std::fs::write(path, "escaped\n") {
            Ok(()) => return Ok(format!("wrote {path}")),
            Err(e) => denials.push(format!("{path}: {e}")),
        }
    }
    Err(denials.join("; "))
}

fn socket() -> Probe {
    use std::net::{TcpStream, ToSocketAddrs};
    let connect = match TcpStream::connect("127.0.0.1:9") {
        Ok(_) => return Ok("connected to 127.0.0.1:9".to_owned()),
        Err(e) => e,
    };
    match "localhost:80".to_socket_addrs() {
        Ok(mut addrs) => match addrs.next() {
            Some(addr) => Ok(format!(
                "resolved localhost:80 to {addr} (connect to 127.0.0.1:9: {connect})"
            )),
            None => Err(format!(
                "connect to 127.0.0.1:9: {connect}; lookup of localhost: no address"
            )),
        },
        Err(lookup) => Err(format!(
            "connect to 127.0.0.1:9: {connect}; lookup of localhost: {lookup}"
        )),
    }
}

/// Tries to leave `/local/escape-link -> ../../../../etc` behind.
fn symlink_escape() -> Probe {
    let link = "/local/escape-link";
    let _ = std::fs::remove_file(link);
    #[cfg(unix)]
    let made = std::os::unix::fs::symlink("../../../../../../etc", link);
    #[cfg(target_os = "wasi")]
    let made = wasi_symlink("../../../../../../etc", "escape-link");
    #[cfg(not(any(unix, target_os = "wasi")))]
    let made: std::io::Result<()> = Err(std::io::Error::other("no symlinks here"));
    made.map(|()| format!("created {link} -> ../../../../../../etc"))
        .map_err(|e| format!("symlink {link}: {e}"))
}

/// `symlink-at` on the `/local` preopen, straight through WASI.
#[cfg(target_os = "wasi")]
fn wasi_symlink(target: &str, name: &str) -> std::io::Result<()> {
    let (dir, _) = wasip2::filesystem::preopens::get_directories()
        .into_iter()
        .find(|(_, path)| path == "/local")
        .ok_or_else(|| std::io::Error::other("no /local preopen"))?;
    dir.symlink_at(target, name)
        .map_err(|code| std::io::Error::other(format!("{code:?}")))
}

/// Tries to hard-link a file of its own under `/local` to a second name.
fn hardlink() -> Probe {
    let (file, link) = ("/local/hardlink-source", "/local/hardlink-copy");
    let _ = std::fs::remove_file(link);
    std::fs::write(file, "x").map_err(|e| format!("{file}: {e}"))?;
    std::fs::hard_link(file, link)
        .map(|()| format!("hard-linked {link} to {file}"))
        .map_err(|e| format!("hard link {link}: {e}"))
}

/// Says every secret every way a connector can; `out` takes the protocol lines
/// (a LOG and a TRACE ERROR) where the phase has an output.
fn leak(plan: &Plan, phase: &str, out: Option<&mut Emitter<'_>>) -> String {
    let said = format!("leaking in {phase}: {}", plan.secrets.join(" and "));
    eprintln!("stderr {said}");
    host_log(LogLevel::Warn, &format!("host log {said}"));
    if let Some(out) = out {
        out.log(LogLevel::Error, &format!("LOG {said}"));
        out.message(&json!({"type": "TRACE", "trace": {"type": "ERROR", "emitted_at": 1.0,
            "error": {"message": format!("TRACE {said}"), "internal_message": format!("internal {said}"),
                      "failure_type": "system_error"}}}));
    }
    said
}

fn environment() -> Probe {
    let names: Vec<String> = std::env::vars_os()
        .map(|(name, _)| name.to_string_lossy().into_owned())
        .collect();
    let path = std::env::var_os("PATH");
    let home = std::env::var_os("HOME");
    if names.is_empty() && path.is_none() && home.is_none() {
        Err("no environment variable is visible".to_owned())
    } else {
        Ok(format!(
            "environment variables {names:?} (PATH: {path:?}, HOME: {home:?})"
        ))
    }
}

/// Recursion without bound; not a tail call, so it needs a frame per level.
#[allow(
    unconditional_recursion,
    reason = "the attack: recursion without bound"
)]
fn recurse(depth: u64) -> u64 {
    black_box(recurse(black_box(depth + 1))) + 1
}

/// Runs `plan`'s attack in `phase`. Probes end in an error, `denied: …` or
/// `LEAK: …`; the attacks that need the output (`flood_output`,
/// `bogus_state`) do nothing without it.
fn attack(plan: &Plan, phase: &str, out: Option<&mut Emitter<'_>>) -> Result<(), DestinationError> {
    if plan.attack == "leak_secrets" {
        let said = leak(plan, phase, out);
        return Err(DestinationError::system(format!("error {said}")));
    }
    if let Some(found) = probe(&plan.attack, plan.host.as_deref(), plan.port) {
        return Err(DestinationError::system(match found {
            Ok(leak) => format!("LEAK: {leak}"),
            Err(denied) => format!("denied: {denied}"),
        }));
    }
    match plan.attack.as_str() {
        "loop" => {
            let mut counter = 0u64;
            loop {
                counter = black_box(counter.wrapping_add(1));
            }
        }
        "memory" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(black_box(vec![1; 1 << 20]));
                black_box(&mut hoard);
            }
        }
        "recurse" => {
            black_box(recurse(0));
            Ok(())
        }
        "flood_log" => {
            let line = kib_line();
            loop {
                host_log(LogLevel::Info, black_box(&line));
            }
        }
        "flood_stdout" => {
            let line = kib_line();
            loop {
                println!("{line}");
            }
        }
        "flood_output" => {
            if let Some(out) = out {
                let line = kib_line();
                // About 70 MB of LOG lines: far over any output cap a test
                // sets, yet well under the default memory limit (512 MiB)
                // while the output buffer doubles its way up.
                for _ in 0..FLOOD_OUTPUT_LINES {
                    out.log(LogLevel::Info, &line);
                }
            }
            Ok(())
        }
        "bogus_state" => {
            if let Some(out) = out {
                out.message(
                    &json!({"type": "STATE", "state": {"type": "STREAM", "stream": {
                    "stream_descriptor": {"name": "users"},
                    "stream_state": {"never": "sent"}}}}),
                );
            }
            Ok(())
        }
        "trap" => panic!("adversary trap in {phase}"),
        _ => Ok(()),
    }
}

impl Destination for Adversary {
    fn spec(&self) -> Value {
        json!({
            "documentationUrl": "https://example.invalid/airlock/test-adversary",
            "supported_destination_sync_modes": ["overwrite", "append", "append_dedup"],
            "connectionSpecification": {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "title": "Test Adversary Spec",
                "type": "object",
                "additionalProperties": false,
                "x-airlock-endpoints": [{"host": "/host", "port": "/port"}],
                "properties": {
                    "attack": {"type": "string", "enum": ATTACKS, "default": "none"},
                    "phase": {"type": "string", "enum": PHASES, "default": "check"},
                    "host": {"type": "string"},
                    "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                    "password": {"type": "string", "airbyte_secret": true},
                    "credentials": {"oneOf": [{"type": "object", "properties": {
                        "token": {"type": "string", "airbyte_secret": true}}}]}
                }
            }
        })
    }

    fn check(&self, config: &Value, ctx: &Context) -> Result<(), String> {
        self.check_with_message(config, ctx).map(|_| ())
    }

    /// A probe that the sandbox let through is SUCCEEDED with `LEAK: …`, so
    /// a test can tell it from the FAILED `denied: …` it expects.
    fn check_with_message(&self, config: &Value, _ctx: &Context) -> Result<Option<String>, String> {
        let plan = Plan::read(config).map_err(|e| e.message)?;
        if !plan.now("check") {
            return Ok(None);
        }
        if plan.attack == "leak_secrets" {
            return Err(format!("check {}", leak(&plan, "check", None)));
        }
        if let Some(found) = probe(&plan.attack, plan.host.as_deref(), plan.port) {
            return match found {
                Ok(leak) => Ok(Some(format!("LEAK: {leak}"))),
                Err(denied) => Err(format!("denied: {denied}")),
            };
        }
        attack(&plan, "check", None)
            .map(|()| None)
            .map_err(|e| e.message)
    }

    fn open(
        &self,
        config: &Value,
        _catalog: &ConfiguredCatalog,
        _ctx: &Context,
    ) -> Result<Box<dyn RecordWriter>, DestinationError> {
        let plan = Plan::read(config)?;
        if plan.now("open") {
            attack(&plan, "open", None)?;
        }
        Ok(Box::new(Writer {
            plan,
            attacked: false,
        }))
    }
}

/// Drops records, attacking at the first one in the write phase.
struct Writer {
    plan: Plan,
    attacked: bool,
}

impl RecordWriter for Writer {
    fn write(
        &mut self,
        _record: &Record<'_>,
        out: &mut Emitter<'_>,
    ) -> Result<(), DestinationError> {
        if self.plan.now("write") && !std::mem::replace(&mut self.attacked, true) {
            attack(&self.plan, "write", Some(out))?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DestinationError> {
        Ok(())
    }

    fn close(self: Box<Self>, clean: bool) -> Result<(), DestinationError> {
        if clean && self.plan.now("close") {
            attack(&self.plan, "close", None)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! Only the harmless attacks run here: the rest would hang, exhaust or
    //! crash the test process, or touch the machine.

    use super::*;
    use airlock_plugin_sdk::WriteSession;

    const CATALOG: &[u8] = br#"{"streams":[{"stream":{"name":"users"},"sync_mode":"full_refresh","destination_sync_mode":"append"}]}"#;
    const RECORD: &[u8] =
        br#"{"type":"RECORD","record":{"stream":"users","data":{},"emitted_at":1}}"#;
    const STATE: &[u8] = br#"{"type":"STATE","state":{"data":{"n":1}}}"#;

    /// Runs a write with `config`; returns the output lines and the result.
    fn write(config: Value) -> (Vec<Value>, Result<(), DestinationError>) {
        let catalog = ConfiguredCatalog::from_json(CATALOG).expect("catalog");
        let mut out = Vec::new();
        let result = WriteSession::open(&Adversary, &config, &catalog, &Context::native())
            .and_then(|mut session| {
                for line in [RECORD, STATE] {
                    if session.push_line(line, &mut out).is_err() {
                        break;
                    }
                }
                session.finish(&mut out)
            });
        let lines = out
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).expect("JSON"))
            .collect();
        (lines, result)
    }

    #[test]
    fn plans_default_to_no_attack_in_check_and_refuse_unknown_names() {
        assert_eq!(
            Plan::read(&json!({})).expect("plan"),
            Plan {
                attack: "none".into(),
                phase: "check".into(),
                host: None,
                port: None,
                secrets: vec![],
            }
        );
        assert!(Plan::read(&json!({"attack": "nuke"})).is_err());
        assert!(Plan::read(&json!({"attack": "loop", "phase": "later"})).is_err());
        assert!(Plan::read(&json!({"attack": 1})).is_err());
    }

    #[test]
    fn none_is_a_working_dev_null() {
        let ctx = Context::native();
        assert_eq!(
            Adversary.check_with_message(&json!({"attack": "none"}), &ctx),
            Ok(None)
        );
        let (lines, result) = write(json!({"attack": "none"}));
        assert!(result.is_ok());
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["state"]["data"]["n"], 1);
    }

    #[test]
    fn attacks_wait_for_their_phase() {
        let ctx = Context::native();
        assert_eq!(
            Adversary.check_with_message(&json!({"attack": "trap", "phase": "write"}), &ctx),
            Ok(None)
        );
        let (_, result) = write(json!({"attack": "loop", "phase": "check"}));
        assert!(result.is_ok());
    }

    #[test]
    fn bogus_state_emits_a_state_never_received() {
        let (lines, result) = write(json!({"attack": "bogus_state", "phase": "write"}));
        assert!(result.is_ok());
        assert_eq!(
            lines[0]["state"]["stream"]["stream_state"],
            json!({"never": "sent"})
        );
        assert_eq!(lines[1]["state"]["data"]["n"], 1);
    }

    #[test]
    fn a_trap_panics_naming_its_phase() {
        let panic = std::panic::catch_unwind(|| {
            Adversary.check(&json!({"attack": "trap"}), &Context::native())
        })
        .expect_err("panics");
        assert_eq!(
            panic.downcast_ref::<String>().map(String::as_str),
            Some("adversary trap in check")
        );
    }

    #[test]
    fn a_probe_outside_check_is_an_error_either_way() {
        // Natively the environment is visible: a leak, reported as an error.
        let (_, result) = write(json!({"attack": "env", "phase": "open"}));
        let message = result.expect_err("probe").message;
        assert!(
            message.starts_with("LEAK: ") || message.starts_with("denied: "),
            "{message}"
        );
    }

    #[test]
    fn a_probe_in_check_reports_a_leak_as_succeeded_with_a_message() {
        let status = Adversary.check_with_message(&json!({"attack": "env"}), &Context::native());
        match status {
            Ok(Some(message)) => assert!(message.starts_with("LEAK: "), "{message}"),
            Err(message) => assert!(message.starts_with("denied: "), "{message}"),
            Ok(None) => panic!("a probe always says what it found"),
        }
    }
}
