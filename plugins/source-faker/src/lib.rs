//! `source-faker`: a Rust port of the Airbyte source connector
//! `airbyte-source-faker` 7.2.1 (PyPI). It generates fake `products`,
//! `users` and `purchases` and prints them as Airbyte protocol messages,
//! one JSON object per line, shaped like the real connector's output. It
//! builds as a native executable and as a WASI command (`wasm32-wasip2`,
//! plain `fn main`, std only).
//!
//! Commands: `spec`, `check --config F`, `discover --config F`,
//! `read --config F --catalog F [--state F]` (see [`cli`]).
//!
//! What matches the Python connector: the SPEC and CATALOG (byte for byte),
//! config validation and defaults ([`config`]), the streams read in catalog
//! order, TRACE STREAM_STATUS / ESTIMATE, RECORD field names, order and
//! types, the number of records per stream, and where STREAM states are
//! emitted with which `recordCount` and shape, including incremental runs
//! (see [`sync`] for the mapping). What differs: values come from a seeded
//! SplitMix64 ([`rng`]) instead of mimesis' Mersenne Twister, so they are
//! plausible, deterministic for a seed, but not Python's; historical dates
//! end at a fixed instant instead of "now" ([`primitives`]); a catalog
//! naming an unknown stream is refused up front (TRACE ERROR, exit 1),
//! where the CDK marks that stream INCOMPLETE and goes on; unreadable
//! files are `config_error`s, not crashes; generation is single-threaded
//! (`parallelism` is validated and ignored).

pub mod calendar;
pub mod catalog;
pub mod cli;
pub mod clock;
pub mod config;
pub mod messages;
pub mod primitives;
pub mod products;
pub mod purchases;
pub mod rng;
pub mod state;
pub mod sync;
pub mod users;
pub mod vocabulary;

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io::{self, Write};

use serde_json::{Value, json};

use crate::catalog::CatalogError;
use crate::clock::Clock;
use crate::config::FakerConfig;
use crate::messages::{FailureType, LogLevel};
use crate::state::IncomingState;

/// The SPEC payload (`spec` of the SPEC message), as the real connector
/// prints it.
pub const SPEC_JSON: &str = include_str!("../data/spec.json");

/// Something to report as a TRACE ERROR before exiting non-zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The user-facing message.
    pub message: String,
    /// The technical detail.
    pub internal_message: String,
    /// Whose fault it is.
    pub failure_type: FailureType,
}

impl Failure {
    fn config(message: impl Into<String>, internal_message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            internal_message: internal_message.into(),
            failure_type: FailureType::ConfigError,
        }
    }

    fn system(internal_message: impl Into<String>) -> Self {
        Self {
            message: "Something went wrong in the connector. See the logs for more details.".into(),
            internal_message: internal_message.into(),
            failure_type: FailureType::SystemError,
        }
    }
}

/// Runs the connector with `args` (without the program name), writing
/// messages to `out`. Returns the process exit code: 0 on success, 1 after
/// a TRACE ERROR, 2 for a bad command line. Never panics on bad input.
pub fn run(args: &[String], out: &mut impl Write) -> u8 {
    run_with_clock(args, out, Clock::system())
}

/// [`run`] with a given clock (a fixed one makes the output reproducible).
pub fn run_with_clock(args: &[String], out: &mut impl Write, clock: Clock) -> u8 {
    // An error here means stdout itself failed (e.g. a closed pipe):
    // nothing more can be reported.
    execute(args, out, clock).unwrap_or(1)
}

fn execute(args: &[String], out: &mut impl Write, clock: Clock) -> io::Result<u8> {
    let command = match cli::parse(args) {
        Ok(c) => c,
        Err(e) => {
            let failure = Failure::config(
                format!("Invalid command line: {e}"),
                format!("{e}\n{}", cli::USAGE),
            );
            report(out, &clock, &failure)?;
            return Ok(2);
        }
    };
    let result = match command {
        cli::Command::Spec => spec(out),
        cli::Command::Check { config } => check(out, &config),
        cli::Command::Discover { config } => discover(out, &config),
        cli::Command::Read {
            config,
            catalog,
            state,
        } => read(out, clock.clone(), &config, &catalog, state.as_deref()),
    };
    match result {
        Ok(Ok(())) => Ok(0),
        Ok(Err(failure)) => {
            report(out, &clock, &failure)?;
            Ok(1)
        }
        Err(e) => Err(e),
    }
}

/// Writes `failure` as a TRACE ERROR.
fn report(out: &mut impl Write, clock: &Clock, failure: &Failure) -> io::Result<()> {
    messages::error(
        out,
        clock.now_ms(),
        &failure.message,
        &failure.internal_message,
        failure.failure_type,
    )
}

/// Reads and parses a JSON file; `what` names it in messages. An empty
/// file reads as `null`.
pub fn load_json(path: &str, what: &str) -> Result<Value, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::config(
            format!("Could not read the {what} file {path}."),
            format!("{path}: {e}"),
        )
    })?;
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).map_err(|e| {
        let detail =
            format!("Could not read json file {path}: {e}. Please ensure that it is a valid JSON.");
        Failure::config(detail.clone(), detail)
    })
}

/// Loads and validates the config file at `path`.
fn load_config(path: &str) -> Result<Result<FakerConfig, String>, Failure> {
    let value = load_json(path, "config")?;
    Ok(FakerConfig::from_json(&value))
}

/// What a command returns: `Err` when writing the output failed, else
/// `Ok` of its own success or [`Failure`].
pub type Outcome = io::Result<Result<(), Failure>>;

/// `spec`: the SPEC message.
pub fn spec(out: &mut impl Write) -> Outcome {
    let spec: Value = match serde_json::from_str(SPEC_JSON) {
        Ok(v) => v,
        Err(e) => return Ok(Err(Failure::system(format!("embedded spec: {e}")))),
    };
    messages::line(out, &json!({"type": "SPEC", "spec": spec}))?;
    Ok(Ok(()))
}

/// `check`: CONNECTION_STATUS SUCCEEDED, or FAILED with the reason (a
/// config that fails validation, or has no `count`). Unreadable files are
/// TRACE ERRORs.
pub fn check(out: &mut impl Write, config_path: &str) -> Outcome {
    let config = match load_config(config_path) {
        Ok(c) => c,
        Err(f) => return Ok(Err(f)),
    };
    match config {
        Err(e) => {
            messages::connection_status(out, Some(&format!("Config validation error: {e}")))?;
        }
        Ok(c) if !c.count_given => {
            messages::log(out, LogLevel::Error, "Check failed")?;
            messages::connection_status(out, Some("Count option is missing"))?;
        }
        Ok(_) => {
            messages::log(out, LogLevel::Info, "Check succeeded")?;
            messages::connection_status(out, None)?;
        }
    }
    Ok(Ok(()))
}

/// A TRACE ERROR for a config that fails validation.
fn invalid_config(e: String) -> Failure {
    Failure::config(format!("Config validation error: {e}"), e)
}

/// `discover`: the CATALOG of the three streams.
pub fn discover(out: &mut impl Write, config_path: &str) -> Outcome {
    match load_config(config_path) {
        Err(f) => return Ok(Err(f)),
        Ok(Err(e)) => return Ok(Err(invalid_config(e))),
        Ok(Ok(_)) => {}
    }
    let catalog = match catalog::discovered_catalog() {
        Ok(c) => c,
        Err(e) => return Ok(Err(Failure::system(e))),
    };
    messages::line(out, &json!({"type": "CATALOG", "catalog": catalog}))?;
    Ok(Ok(()))
}

/// A random seed, for configs without one.
fn random_seed(clock: &Clock) -> u64 {
    RandomState::new().hash_one(clock.now_ms_f64().to_bits())
}

/// Parses and validates everything `read` needs; nothing is printed
/// unless all of it is valid.
fn prepare_read(
    config_path: &str,
    catalog_path: &str,
    state_path: Option<&str>,
) -> Result<(FakerConfig, Vec<catalog::FakerStream>, IncomingState), Failure> {
    let config = load_config(config_path)?.map_err(invalid_config)?;
    let catalog_doc = load_json(catalog_path, "catalog")?;
    let streams = catalog::configured_streams(&catalog_doc).map_err(|e| match e {
        CatalogError::Invalid(detail) => {
            Failure::config(format!("Invalid configured catalog: {detail}"), detail)
        }
        CatalogError::UnknownStream(name) => Failure::config(
            "A stream listed in your configuration was not found in the source. Please check the logs for more details.",
            format!(
                "The stream '{name}' in your connection configuration was not found in the source. Refresh the schema in your replication settings and remove this stream from future sync attempts."
            ),
        ),
    })?;
    let state = match state_path {
        None => IncomingState::empty(),
        Some(path) => {
            let doc = load_json(path, "state")?;
            IncomingState::from_json(&doc)
                .map_err(|e| Failure::config(format!("Invalid state: {e}"), e))?
        }
    };
    Ok((config, streams, state))
}

/// `read`: the configured streams, with their states.
pub fn read(
    out: &mut impl Write,
    clock: Clock,
    config_path: &str,
    catalog_path: &str,
    state_path: Option<&str>,
) -> Outcome {
    let (config, streams, state) = match prepare_read(config_path, catalog_path, state_path) {
        Ok(p) => p,
        Err(f) => return Ok(Err(f)),
    };
    let vocab = match vocabulary::Vocabulary::load() {
        Ok(v) => v,
        Err(e) => return Ok(Err(Failure::system(e))),
    };
    let products = match products::load() {
        Ok(p) => p,
        Err(e) => return Ok(Err(Failure::system(e))),
    };
    let seed_bits = match config.seed {
        Some(s) => s as u64,
        None => random_seed(&clock),
    };
    let mut reader = sync::Reader {
        config: &config,
        seed_bits,
        vocab: &vocab,
        products: &products,
        clock,
    };
    reader.read(out, &streams, &state)?;
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    //! End-to-end tests of the commands, through [`run_with_clock`] with
    //! files in a scratch directory and a fixed clock.

    use super::*;
    use std::path::PathBuf;

    /// 2026-11-25T09:57:48.302Z.
    const NOW_MS: i64 = 1_795_600_668_302;

    /// A scratch directory for one test.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(test: &str) -> Self {
            let dir = std::env::temp_dir()
                .join(format!("source-faker-test-{}-{test}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("scratch dir");
            Self(dir)
        }

        fn file(&self, name: &str, content: &str) -> String {
            let path = self.0.join(name);
            std::fs::write(&path, content).expect("write scratch file");
            path.to_string_lossy().into_owned()
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn catalog(streams: &[&str]) -> String {
        let streams: Vec<Value> = streams
            .iter()
            .map(|s| {
                json!({"stream": {"name": s, "json_schema": {}}, "sync_mode": "incremental",
                            "destination_sync_mode": "append"})
            })
            .collect();
        json!({ "streams": streams }).to_string()
    }

    /// Runs the connector; returns the exit code and the parsed messages.
    fn run_cli(args: &[&str]) -> (u8, Vec<Value>, String) {
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        let mut out = Vec::new();
        let code = run_with_clock(&args, &mut out, Clock::fixed(NOW_MS));
        let text = String::from_utf8(out).expect("utf8 output");
        let messages = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("every line is JSON"))
            .collect();
        (code, messages, text)
    }

    fn records<'a>(messages: &'a [Value], stream: &str) -> Vec<&'a Value> {
        messages
            .iter()
            .filter(|m| m["type"] == "RECORD" && m["record"]["stream"] == stream)
            .collect()
    }

    fn states<'a>(messages: &'a [Value], stream: &str) -> Vec<&'a Value> {
        messages
            .iter()
            .filter(|m| {
                m["type"] == "STATE" && m["state"]["stream"]["stream_descriptor"]["name"] == stream
            })
            .collect()
    }

    /// The last state of each stream, as a `--state` list.
    fn last_states(messages: &[Value]) -> String {
        let mut out: Vec<Value> = Vec::new();
        for name in ["products", "users", "purchases"] {
            if let Some(s) = states(messages, name).last() {
                let mut s = s["state"].clone();
                if let Some(o) = s.as_object_mut() {
                    o.remove("sourceStats");
                }
                out.push(s);
            }
        }
        Value::Array(out).to_string()
    }

    #[test]
    fn same_seed_same_output_other_seed_other_data() {
        let dir = Scratch::new("determinism");
        let cat = dir.file(
            "catalog.json",
            &catalog(&["products", "users", "purchases"]),
        );
        let c1 = dir.file(
            "c1.json",
            r#"{"count": 40, "seed": 7, "records_per_slice": 15}"#,
        );
        let c2 = dir.file(
            "c2.json",
            r#"{"count": 40, "seed": 8, "records_per_slice": 15}"#,
        );
        let (code, _, a) = run_cli(&["read", "--config", &c1, "--catalog", &cat]);
        let (_, _, b) = run_cli(&["read", "--config", &c1, "--catalog", &cat]);
        let (_, _, c) = run_cli(&["read", "--config", &c2, "--catalog", &cat]);
        assert_eq!(code, 0);
        assert_eq!(a, b, "same seed and clock: byte-identical output");
        assert_ne!(a, c, "another seed: other data");
        // Slicing changes no record.
        let c3 = dir.file(
            "c3.json",
            r#"{"count": 40, "seed": 7, "records_per_slice": 1}"#,
        );
        let (_, m3, _) = run_cli(&["read", "--config", &c3, "--catalog", &cat]);
        let (_, m1, _) = run_cli(&["read", "--config", &c1, "--catalog", &cat]);
        for stream in ["users", "purchases"] {
            assert_eq!(records(&m1, stream), records(&m3, stream));
        }
    }

    #[test]
    fn record_counts_per_stream() {
        let dir = Scratch::new("counts");
        let cat = dir.file(
            "catalog.json",
            &catalog(&["users", "products", "purchases"]),
        );
        for (count, products, purchases) in [
            (1, 1, 1),
            (7, 7, 6),
            (9, 9, 9),
            (57, 57, 56),
            (250, 100, 250),
        ] {
            let cfg = dir.file("c.json", &json!({"count": count, "seed": 1}).to_string());
            let (code, m, _) = run_cli(&["read", "--config", &cfg, "--catalog", &cat]);
            assert_eq!(code, 0);
            assert_eq!(records(&m, "users").len(), count, "users for {count}");
            assert_eq!(
                records(&m, "products").len(),
                products,
                "products for {count}"
            );
            assert_eq!(
                records(&m, "purchases").len(),
                purchases,
                "purchases for {count}"
            );
            let ids: Vec<u64> = records(&m, "purchases")
                .iter()
                .map(|r| r["record"]["data"]["id"].as_u64().expect("id"))
                .collect();
            assert_eq!(ids, (1..=purchases as u64).collect::<Vec<_>>());
        }
        // Catalog order is kept.
        let cfg = dir.file("c.json", r#"{"count": 3}"#);
        let (_, m, _) = run_cli(&["read", "--config", &cfg, "--catalog", &cat]);
        let started: Vec<&str> = m
            .iter()
            .filter(|m| m["trace"]["stream_status"]["status"] == "STARTED")
            .filter_map(|m| m["trace"]["stream_status"]["stream_descriptor"]["name"].as_str())
            .collect();
        assert_eq!(started, ["users", "products", "purchases"]);
        assert_eq!(
            states(&m, "users")[0]["state"]["stream"]["stream_state"]["seed"],
            Value::Null
        );
    }

    #[test]
    fn resume_without_always_updated_emits_nothing() {
        let dir = Scratch::new("resume");
        let cat = dir.file(
            "catalog.json",
            &catalog(&["products", "users", "purchases"]),
        );
        let cfg = dir.file(
            "c.json",
            r#"{"count": 120, "seed": 1, "records_per_slice": 50, "always_updated": false}"#,
        );
        let (_, first, _) = run_cli(&["read", "--config", &cfg, "--catalog", &cat]);
        assert_eq!(
            first.iter().filter(|m| m["type"] == "RECORD").count(),
            100 + 120 + 120
        );
        let state = dir.file("state.json", &last_states(&first));
        let (code, second, _) = run_cli(&[
            "read",
            "--config",
            &cfg,
            "--catalog",
            &cat,
            "--state",
            &state,
        ]);
        assert_eq!(code, 0);
        assert!(second.iter().all(|m| m["type"] != "RECORD"));
        for name in ["products", "users", "purchases"] {
            let s = states(&second, name);
            assert_eq!(s.len(), 1);
            assert_eq!(s[0]["state"]["sourceStats"]["recordCount"], 0.0);
            assert_eq!(
                s[0]["state"]["stream"]["stream_state"],
                states(&first, name).last().expect("state")["state"]["stream"]["stream_state"]
            );
        }
        // The legacy dict form resumes the same way.
        let legacy = dir.file(
            "legacy.json",
            r#"{"users": {"seed": 1, "updated_at": "2026-01-01T00:00:00+00:00", "loop_offset": 120}}"#,
        );
        let (_, third, _) = run_cli(&[
            "read",
            "--config",
            &cfg,
            "--catalog",
            &cat,
            "--state",
            &legacy,
        ]);
        assert!(records(&third, "users").is_empty());
        assert_eq!(records(&third, "products").len(), 100);

        // always_updated (the default) re-emits everything, with the incoming
        // state repeated until the stream sets its own.
        let cfg = dir.file(
            "t.json",
            r#"{"count": 120, "seed": 1, "records_per_slice": 50}"#,
        );
        let (_, again, _) = run_cli(&[
            "read",
            "--config",
            &cfg,
            "--catalog",
            &cat,
            "--state",
            &state,
        ]);
        assert_eq!(records(&again, "users").len(), 120);
        let offsets: Vec<&Value> = states(&again, "users")
            .iter()
            .map(|s| &s["state"]["stream"]["stream_state"]["loop_offset"])
            .collect();
        assert_eq!(offsets, [&json!(120), &json!(50), &json!(120)]);
    }

    #[test]
    fn a_state_every_records_per_slice_records() {
        let dir = Scratch::new("slices");
        let cat = dir.file("catalog.json", &catalog(&["users", "products"]));
        let cfg = dir.file(
            "c.json",
            r#"{"count": 1000, "seed": 1, "records_per_slice": 100}"#,
        );
        let (_, m, _) = run_cli(&["read", "--config", &cfg, "--catalog", &cat]);
        let mut since = 0u64;
        let mut seen = Vec::new();
        for msg in m.iter().filter(|m| {
            m["record"]["stream"] == "users"
                || m["state"]["stream"]["stream_descriptor"]["name"] == "users"
        }) {
            if msg["type"] == "RECORD" {
                since += 1;
            } else {
                let st = &msg["state"];
                let count = st["sourceStats"]["recordCount"].as_f64().expect("count") as u64;
                assert_eq!(
                    count, since,
                    "recordCount counts the records since the last state"
                );
                seen.push((
                    count,
                    st["stream"]["stream_state"]["loop_offset"]
                        .as_u64()
                        .expect("offset"),
                ));
                since = 0;
            }
        }
        // Like the CDK: nothing at record 100, then one state per 100
        // records carrying the previous slice's offset, then the final one.
        let mut expected = vec![(200, 100)];
        expected.extend((2..=9).map(|k| (100, k * 100)));
        expected.push((0, 1000));
        assert_eq!(seen, expected);
        // Products: one state at the end.
        let p = states(&m, "products");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0]["state"]["sourceStats"]["recordCount"], 100.0);
        assert_eq!(
            p[0]["state"]["stream"]["stream_state"],
            json!({"seed": 1, "updated_at": "2026-11-25T09:57:48+00:00"})
        );
    }

    #[test]
    fn unknown_stream_and_bad_input_are_trace_errors() {
        let dir = Scratch::new("errors");
        let cfg = dir.file("c.json", r#"{"count": 5}"#);
        let bad_cat = dir.file("bad.json", &catalog(&["users", "bogus"]));
        let (code, m, _) = run_cli(&["read", "--config", &cfg, "--catalog", &bad_cat]);
        assert_eq!(code, 1);
        assert_eq!(m.len(), 1, "nothing is read before the error");
        assert_eq!(m[0]["trace"]["type"], "ERROR");
        assert_eq!(m[0]["trace"]["error"]["failure_type"], "config_error");
        assert!(
            m[0]["trace"]["error"]["internal_message"]
                .as_str()
                .expect("msg")
                .contains("'bogus'")
        );

        let missing = dir.0.join("missing.json").to_string_lossy().into_owned();
        let not_json = dir.file("nope.json", "nope");
        for args in [
            vec!["read", "--config", &missing, "--catalog", &bad_cat],
            vec!["read", "--config", &not_json, "--catalog", &bad_cat],
            vec!["read", "--config", &cfg, "--catalog", &not_json],
            vec!["discover", "--config", &missing],
            vec!["check", "--config", &not_json],
        ] {
            let (code, m, _) = run_cli(&args);
            assert_eq!(code, 1, "{args:?}");
            assert_eq!(m.len(), 1);
            assert_eq!(m[0]["trace"]["error"]["failure_type"], "config_error");
        }
        let (code, m, _) = run_cli(&["frobnicate"]);
        assert_eq!(code, 2);
        assert_eq!(m[0]["trace"]["type"], "ERROR");
    }

    #[test]
    fn check_spec_and_discover() {
        let dir = Scratch::new("check");
        for (config, ok) in [
            (r#"{"count": 10}"#, true),
            (r#"{"count": 0}"#, false),
            (r#"{"count": "ten"}"#, false),
            (r#"{"seed": 1}"#, false),
        ] {
            let cfg = dir.file("c.json", config);
            let (code, m, _) = run_cli(&["check", "--config", &cfg]);
            assert_eq!(code, 0);
            let status = m.last().expect("status");
            assert_eq!(status["type"], "CONNECTION_STATUS");
            assert_eq!(
                status["connectionStatus"]["status"],
                if ok { "SUCCEEDED" } else { "FAILED" }
            );
            assert_eq!(status["connectionStatus"]["message"].is_string(), !ok);
        }
        let (_, m, _) = run_cli(&["spec"]);
        let props = &m[0]["spec"]["connectionSpecification"]["properties"];
        assert_eq!(props["count"]["default"], 1000);
        assert_eq!(props["records_per_slice"]["minimum"], 1);
        let cfg = dir.file("c.json", "{}");
        let (code, m, _) = run_cli(&["discover", "--config", &cfg]);
        assert_eq!(code, 0);
        let names: Vec<&str> = m[0]["catalog"]["streams"]
            .as_array()
            .expect("streams")
            .iter()
            .filter_map(|s| s["name"].as_str())
            .collect();
        assert_eq!(names, ["products", "users", "purchases"]);
    }
}
