//! `cli::logging`: where the command line's log events go — the tracing
//! subscriber, its verbosity, its format (text for people, JSON for machines) and
//! the masked stderr every line passes through.
//!
//! Owns [`LogFormat`], [`init`] and the masking writer. It defines no event (they
//! are named in `airlock::events`) and prints nothing else: results go to stdout
//! elsewhere in `cli`.

use std::io::{IsTerminal, Write};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;

use airlock::config;

/// How log lines are written on stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// One readable line per event, its spans (sync, write, stream) before it.
    #[default]
    Text,
    /// One JSON object per event, its fields at the top level (`event` names it)
    /// and its spans with their fields in `spans`.
    Json,
}

/// The filter for `-v` counted `verbose` times, unless `AIRLOCK_LOG` gives one.
///
/// airlock's own events: WARN, then INFO at `-v`, DEBUG at `-vv`, TRACE at
/// `-vvv`. Connector lines (`airlock::connector`, at the connector's own level)
/// one step quieter: ERROR by default, WARN at `-v`, everything from `-vv`.
/// Other crates: WARN, INFO at `-vv`, DEBUG at `-vvv`.
fn directives(verbose: u8) -> &'static str {
    match verbose {
        0 => "warn,airlock::connector=error",
        1 => "warn,airlock=info,airlock::connector=warn",
        2 => "info,airlock=debug",
        _ => "debug,airlock=trace",
    }
}

/// Installs the process's subscriber: `-v` counted `verbose` times, in `format`,
/// on stderr with every known secret masked. `AIRLOCK_LOG` (an `EnvFilter`
/// directive list) overrides the verbosity. Other crates' `log` records are
/// routed through it too. A second call does nothing.
pub(crate) fn init(verbose: u8, format: LogFormat) {
    let filter = EnvFilter::try_from_env("AIRLOCK_LOG")
        .unwrap_or_else(|_| EnvFilter::new(directives(verbose)));
    let ansi = std::io::stderr().is_terminal();
    let _ = subscriber(filter, format, ansi, || Masked(std::io::stderr())).try_init();
}

/// The subscriber [`init`] installs, writing to `writer`.
fn subscriber<W>(
    filter: EnvFilter,
    format: LogFormat,
    ansi: bool,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.with_target(false).with_ansi(ansi).finish()),
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(true)
                .with_ansi(false)
                .finish(),
        ),
    }
}

/// A writer for log events with every secret of this run's connectors masked (an
/// event is written in one call, so a secret is never split across writes; the
/// JSON-escaped spelling of each secret is masked too).
struct Masked<W>(W);

impl<W: Write> Write for Masked<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.0
            .write_all(config::mask_known_secrets(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use clap::ValueEnum;
    use serde_json::{Value, json};

    use super::*;
    use airlock::config::SecretMask;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("buffer").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Buffer {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().expect("buffer").clone()).expect("utf-8")
        }
    }

    /// Runs `body` under the subscriber [`init`] would install at `verbose`,
    /// writing into a buffer; returns what was written.
    fn capture(verbose: u8, format: LogFormat, body: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let sink = buffer.clone();
        let subscriber = subscriber(
            EnvFilter::new(directives(verbose)),
            format,
            false,
            move || Masked(sink.clone()),
        );
        tracing::subscriber::with_default(subscriber, body);
        buffer.text()
    }

    fn a_sync_with_a_commit() {
        let span = airlock::events::sync_span("0123abcd", "source-faker", "destination-dev-null");
        let _sync = span.enter();
        airlock::events::SyncStarted { mode: "cache" }.emit();
        let write = airlock::events::write_span("destination-dev-null");
        let streams = airlock::events::StreamSpans::new(
            &write,
            [airlock::protocol::StreamDescriptor::with_namespace(
                "users",
                Some("public".to_owned()),
            )],
        );
        let users = streams.find("users", Some("public"));
        airlock::events::StreamStarted.emit(users);
        let descriptor =
            airlock::protocol::StreamDescriptor::with_namespace("users", Some("public".to_owned()));
        airlock::events::StateCommitted {
            stream: Some(&descriptor),
            states: 1,
            records: 10,
        }
        .emit(users);
        airlock::events::ConnectorLog {
            connector: "destination-dev-null",
            level: Some(airlock::protocol::LogLevel::Warn),
            message: "slow disk",
        }
        .emit(&write);
        airlock::events::ConnectorLog {
            connector: "destination-dev-null",
            level: Some(airlock::protocol::LogLevel::Info),
            message: "chatty",
        }
        .emit(&write);
    }

    #[test]
    fn the_format_flag_parses() {
        assert_eq!(LogFormat::from_str("json", false), Ok(LogFormat::Json));
        assert_eq!(LogFormat::from_str("text", false), Ok(LogFormat::Text));
        assert!(LogFormat::from_str("yaml", false).is_err());
        assert_eq!(LogFormat::default(), LogFormat::Text);
    }

    #[test]
    fn each_verbosity_parses_as_a_filter() {
        for verbose in 0..=4 {
            assert!(EnvFilter::try_new(directives(verbose)).is_ok(), "{verbose}");
        }
    }

    #[test]
    fn text_at_v_is_a_few_readable_lines_with_their_spans() {
        let out = capture(1, LogFormat::Text, a_sync_with_a_commit);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert!(
            lines[0].contains(
                "sync{sync_id=0123abcd source=source-faker destination=destination-dev-null}: "
            ) && lines[0].contains("sync started"),
            "{out}"
        );
        assert!(
            lines[1].contains(
                "write{destination=destination-dev-null}:stream{stream=users namespace=public}: "
            ),
            "{out}"
        );
        assert!(lines[1].contains("stream started"), "{out}");
        assert!(
            lines[2].contains("WARN") && lines[2].contains("slow disk"),
            "{out}"
        );
        assert!(
            !out.contains("state_committed") && !out.contains("chatty"),
            "{out}"
        );
        assert!(
            !out.contains('\u{1b}'),
            "no colours when not a terminal: {out}"
        );

        let debug = capture(2, LogFormat::Text, a_sync_with_a_commit);
        assert!(
            debug.contains("1 state(s) committed") && debug.contains("chatty"),
            "{debug}"
        );
    }

    #[test]
    fn json_lines_carry_the_event_name_and_the_span_fields() {
        let out = capture(2, LogFormat::Json, a_sync_with_a_commit);
        let events: Vec<Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        let committed = events
            .iter()
            .find(|e| e["event"] == "state_committed")
            .unwrap_or_else(|| panic!("no state_committed in {out}"));
        assert_eq!(committed["records"], 10, "{committed}");
        let spans = committed["spans"].as_array().expect("spans");
        assert_eq!(spans[0]["name"], "sync");
        assert_eq!(spans[0]["sync_id"], "0123abcd");
        assert_eq!(spans[0]["destination"], "destination-dev-null");
        assert_eq!(
            spans[2],
            json!({"name": "stream", "stream": "users", "namespace": "public"})
        );
        let log = events
            .iter()
            .find(|e| e["event"] == "connector_log" && e["level"] == "WARN")
            .unwrap_or_else(|| panic!("no connector_log in {out}"));
        assert_eq!(log["target"], "airlock::connector");
        assert_eq!(log["connector"], "destination-dev-null");
        assert_eq!(log["message"], "slow disk");
    }

    #[test]
    fn every_known_secret_is_masked_in_both_formats() {
        let schema =
            json!({"properties": {"password": {"type": "string", "airbyte_secret": true}}});
        let _mask = SecretMask::new(&schema, &json!({"password": "logging-test-secret-\"q\""}));
        for format in [LogFormat::Text, LogFormat::Json] {
            let out = capture(1, format, || {
                tracing::warn!(
                    password = "logging-test-secret-\"q\"",
                    "it is logging-test-secret-\"q\""
                );
            });
            assert!(!out.contains("logging-test-secret"), "{format:?}: {out}");
            assert!(out.contains(config::MASK), "{format:?}: {out}");
        }
    }
}
