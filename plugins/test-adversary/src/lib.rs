//! `test-adversary`: a destination that attacks its sandbox, for airlock's tests.
//!
//! Config: `{"attack": NAME, "phase": "check" | "open" | "write" | "close"}`. In
//! that phase it tries the attack. Probes (`read_passwd`, `write_outside`,
//! `socket`, `env`) report what happened: `check` says FAILED "denied: …" when the
//! sandbox stopped them and SUCCEEDED "LEAK: …" when it did not; in other phases a
//! denial is an error "denied: …" and a leak an error "LEAK: …". The rest
//! (`loop`, `memory`, `recurse`, `flood_log`, `flood_stdout`, `flood_output`,
//! `trap`, `bogus_state`) never end well on their own: the host must stop them.
//! With `"attack": "none"` it is a working dev-null.

#![deny(missing_docs)]

use std::hint::black_box;

use airlock_plugin_sdk::{
    ConfiguredCatalog, Context, Destination, DestinationError, Emitter, LogLevel, Record,
    RecordWriter,
};
use serde_json::{Value, json};

/// The adversary.
#[derive(Debug, Clone, Copy, Default)]
pub struct Adversary;

airlock_plugin_sdk::export_destination!(Adversary);

struct Plan {
    attack: String,
    phase: String,
}

impl Plan {
    fn read(config: &Value) -> Self {
        let get = |key: &str, default: &str| {
            config
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or(default)
                .to_owned()
        };
        Self {
            attack: get("attack", "none"),
            phase: get("phase", "check"),
        }
    }

    fn now(&self, phase: &str) -> bool {
        self.phase == phase && self.attack != "none"
    }
}

/// Tries a probe: `Ok(what leaked)` or `Err(why it was denied)`.
fn probe(attack: &str) -> Option<Result<String, String>> {
    let result = match attack {
        "read_passwd" => std::fs::read_to_string("/etc/passwd")
            .map(|t| t.chars().take(40).collect())
            .map_err(|e| e.to_string()),
        "write_outside" => std::fs::write("/tmp/airlock-escape.txt", "escaped")
            .or_else(|_| std::fs::write("/local/../escape.txt", "escaped"))
            .map(|()| "wrote outside /local".to_owned())
            .map_err(|e| e.to_string()),
        "socket" => match std::net::TcpStream::connect("127.0.0.1:9") {
            Ok(_) => Ok("connected to 127.0.0.1:9".to_owned()),
            Err(connect) => {
                use std::net::ToSocketAddrs;
                match "localhost:80".to_socket_addrs() {
                    Ok(mut addrs) => match addrs.next() {
                        Some(addr) => {
                            Ok(format!("resolved localhost to {addr} (connect: {connect})"))
                        }
                        None => Err(format!("connect: {connect}; lookup found nothing")),
                    },
                    Err(lookup) => Err(format!("connect: {connect}; lookup: {lookup}")),
                }
            }
        },
        "env" => {
            let vars: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
            if vars.is_empty() {
                Err("no environment variables are visible".to_owned())
            } else {
                Ok(format!("env: {vars:?}"))
            }
        }
        _ => return None,
    };
    Some(result)
}

#[allow(
    unconditional_recursion,
    reason = "the attack: recursion without bound"
)]
fn recurse(depth: u64) -> u64 {
    black_box(recurse(black_box(depth + 1))) + 1
}

/// Runs an attack that does not return (or returns an error for a probe).
fn attack(name: &str, out: Option<&mut Emitter<'_>>) -> Result<(), DestinationError> {
    if let Some(result) = probe(name) {
        return Err(DestinationError::system(match result {
            Ok(leak) => format!("LEAK: {leak}"),
            Err(denied) => format!("denied: {denied}"),
        }));
    }
    match name {
        "loop" => {
            let mut i = 0u64;
            loop {
                i = black_box(i.wrapping_add(1));
            }
        }
        "memory" => {
            let mut hoard = Vec::new();
            loop {
                hoard.push(black_box(vec![1u8; 1 << 20]));
            }
        }
        "recurse" => {
            black_box(recurse(0));
            Ok(())
        }
        "flood_log" => {
            let line = "x".repeat(1024);
            loop {
                airlock_plugin_sdk::host_log(LogLevel::Info, &line);
            }
        }
        "flood_stdout" => {
            let line = "x".repeat(1024);
            loop {
                println!("{line}");
            }
        }
        "flood_output" => {
            if let Some(out) = out {
                let line = "x".repeat(1024);
                for _ in 0..50_000 {
                    out.log(LogLevel::Info, &line);
                }
            }
            Ok(())
        }
        "bogus_state" => {
            if let Some(out) = out {
                out.message(&json!({"type": "STATE", "state": {"type": "STREAM", "stream": {"stream_descriptor": {"name": "users"}, "stream_state": {"never": "sent"}}}}));
            }
            Ok(())
        }
        "trap" => panic!("adversary trap in a call"),
        other => Err(DestinationError::config(format!(
            "unknown attack {other:?}"
        ))),
    }
}

fn trap_or_attack(
    plan: &Plan,
    phase: &str,
    out: Option<&mut Emitter<'_>>,
) -> Result<(), DestinationError> {
    if plan.attack == "trap" {
        panic!("adversary trap in {phase}");
    }
    attack(&plan.attack, out)
}

impl Destination for Adversary {
    fn spec(&self) -> Value {
        json!({"connectionSpecification": {"type": "object", "properties": {
            "attack": {"type": "string"}, "phase": {"type": "string", "enum": ["check", "open", "write", "close"]}
        }}})
    }

    fn check(&self, config: &Value, _ctx: &Context) -> Result<(), String> {
        let plan = Plan::read(config);
        if !plan.now("check") {
            return Ok(());
        }
        if let Some(result) = probe(&plan.attack) {
            // SUCCEEDED means the sandbox let the probe through.
            return match result {
                Ok(_leak) => Ok(()),
                Err(denied) => Err(format!("denied: {denied}")),
            };
        }
        trap_or_attack(&plan, "check", None).map_err(|e| e.message)
    }

    fn open(
        &self,
        config: &Value,
        _catalog: &ConfiguredCatalog,
        _ctx: &Context,
    ) -> Result<Box<dyn RecordWriter>, DestinationError> {
        let plan = Plan::read(config);
        if plan.now("open") {
            trap_or_attack(&plan, "open", None)?;
        }
        Ok(Box::new(Writer {
            plan,
            attacked: false,
        }))
    }
}

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
        if self.plan.now("write") && !self.attacked {
            self.attacked = true;
            trap_or_attack(&self.plan, "write", Some(out))?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DestinationError> {
        Ok(())
    }

    fn close(self: Box<Self>, clean: bool) -> Result<(), DestinationError> {
        if clean && self.plan.now("close") {
            trap_or_attack(&self.plan, "close", None)?;
        }
        Ok(())
    }
}
