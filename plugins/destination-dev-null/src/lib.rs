//! `destination-dev-null`: Airbyte's E2E test destination. It keeps no data:
//! depending on its configuration it logs a sample of the records (LOGGING),
//! drops them (SILENT), drops them slowly (THROTTLED) or fails after a number
//! of records (FAILING). States are echoed by the SDK as usual, so a host can
//! test checkpointing, throughput and failure handling against it.
//!
//! Use [`DevNull`] in-process through the SDK, or run the
//! `destination-dev-null` binary.

#![deny(missing_docs)]

mod config;

use std::time::Duration;

use airlock_plugin_sdk::{
    ConfiguredCatalog, Context, Destination, DestinationError, Emitter, LogLevel, Record,
    RecordWriter,
};
use serde_json::Value;

pub use config::{LoggingConfig, TestDestination};

/// The E2E test ("dev-null") destination.
#[derive(Debug, Clone, Copy, Default)]
pub struct DevNull;

airlock_plugin_sdk::export_destination!(DevNull);

impl Destination for DevNull {
    fn spec(&self) -> Value {
        spec()
    }

    fn check(&self, config: &Value, _ctx: &Context) -> Result<(), String> {
        TestDestination::from_config(config).map(|_| ())
    }

    fn open(
        &self,
        config: &Value,
        catalog: &ConfiguredCatalog,
        _ctx: &Context,
    ) -> Result<Box<dyn RecordWriter>, DestinationError> {
        let behaviour =
            match TestDestination::from_config(config).map_err(DestinationError::config)? {
                TestDestination::Logging(logging) => Behaviour::Logging(
                    catalog
                        .streams
                        .iter()
                        .map(|s| StreamLogger::new(s.stream.descriptor().to_string(), &logging))
                        .collect(),
                ),
                TestDestination::Silent => Behaviour::Silent,
                TestDestination::Throttled { millis_per_record } => {
                    Behaviour::Throttled(Duration::from_millis(millis_per_record))
                }
                TestDestination::Failing { num_messages } => Behaviour::Failing {
                    num_messages,
                    received: 0,
                },
            };
        Ok(Box::new(DevNullWriter { behaviour }))
    }
}

/// What the writer does with each record.
enum Behaviour {
    /// One logger per catalog stream, by stream index.
    Logging(Vec<StreamLogger>),
    Silent,
    Throttled(Duration),
    Failing {
        num_messages: u64,
        received: u64,
    },
}

struct DevNullWriter {
    behaviour: Behaviour,
}

impl RecordWriter for DevNullWriter {
    fn write(
        &mut self,
        record: &Record<'_>,
        out: &mut Emitter<'_>,
    ) -> Result<(), DestinationError> {
        match &mut self.behaviour {
            Behaviour::Silent => {}
            Behaviour::Logging(loggers) => {
                if let Some(logger) = loggers.get_mut(record.stream_index()) {
                    logger.offer(record, out);
                }
            }
            Behaviour::Throttled(pause) => std::thread::sleep(*pause),
            Behaviour::Failing {
                num_messages,
                received,
            } => {
                *received += 1;
                if *received > *num_messages {
                    return Err(DestinationError::system(format!(
                        "Forcing a fail after processing {num_messages} records."
                    )));
                }
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DestinationError> {
        Ok(())
    }

    fn close(self: Box<Self>, _clean: bool) -> Result<(), DestinationError> {
        Ok(())
    }
}

/// Decides, per stream, which records LOGGING logs, as Airbyte's FirstN,
/// EveryNth and RandomSampling loggers do.
struct StreamLogger {
    /// `namespace.name` or `name`.
    label: String,
    policy: LoggingConfig,
    /// The sampling generator (RandomSampling only).
    rng: fastrand::Rng,
    /// Records seen on this stream.
    seen: u64,
    /// Records logged on this stream.
    logged: u64,
}

impl StreamLogger {
    fn new(label: String, policy: &LoggingConfig) -> Self {
        let rng = match policy {
            LoggingConfig::RandomSampling {
                seed: Some(seed), ..
            } => {
                // Reinterpret the signed seed's bits; any seed is fine.
                fastrand::Rng::with_seed(u64::from_ne_bytes(seed.to_ne_bytes()))
            }
            _ => fastrand::Rng::new(),
        };
        Self {
            label,
            policy: policy.clone(),
            rng,
            seen: 0,
            logged: 0,
        }
    }

    fn offer(&mut self, record: &Record<'_>, out: &mut Emitter<'_>) {
        let max_entry_count = match self.policy {
            LoggingConfig::FirstN { max_entry_count }
            | LoggingConfig::EveryNth {
                max_entry_count, ..
            }
            | LoggingConfig::RandomSampling {
                max_entry_count, ..
            } => max_entry_count,
        };
        if self.logged >= max_entry_count {
            return;
        }
        self.seen += 1;
        let chosen = match self.policy {
            LoggingConfig::FirstN { .. } => true,
            LoggingConfig::EveryNth {
                nth_entry_to_log, ..
            } => self.seen.is_multiple_of(nth_entry_to_log),
            LoggingConfig::RandomSampling { sampling_ratio, .. } => self.rng.f64() < sampling_ratio,
        };
        if chosen {
            self.logged += 1;
            let message = format!("[{}] #{}: {}", self.label, self.logged, record.data.get());
            out.log(LogLevel::Info, &message);
        }
    }
}

/// The ConnectorSpecification of the E2E test destination, kept as JSON in
/// `spec.json` like Airbyte's connectors keep theirs.
fn spec() -> Value {
    serde_json::from_str(include_str!("spec.json"))
        .expect("spec.json is valid JSON (checked by a test)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_plugin_sdk::{WriteSession, command};
    use serde_json::json;
    use std::time::Instant;

    const CATALOG: &[u8] = br#"{"streams":[
        {"stream":{"name":"users"},"sync_mode":"full_refresh","destination_sync_mode":"overwrite"},
        {"stream":{"name":"users","namespace":"crm"},"sync_mode":"incremental","destination_sync_mode":"append"}]}"#;

    fn record(stream: &str, namespace: Option<&str>, n: u32) -> String {
        let namespace = namespace
            .map(|ns| format!(r#","namespace":"{ns}""#))
            .unwrap_or_default();
        format!(
            r#"{{"type":"RECORD","record":{{"stream":"{stream}"{namespace},"data":{{"id":{n}}},"emitted_at":{n}}}}}"#
        )
    }

    /// Runs `lines` through dev-null with `test_destination`; returns the
    /// output lines and whether the run succeeded.
    fn run(test_destination: Value, lines: &[String]) -> (Vec<Value>, bool) {
        let catalog = ConfiguredCatalog::from_json(CATALOG).expect("catalog");
        let config = json!({ "test_destination": test_destination });
        let mut session =
            WriteSession::open(&DevNull, &config, &catalog, &Context::native()).expect("open");
        let mut out = Vec::new();
        for line in lines {
            if session.push_line(line.as_bytes(), &mut out).is_err() {
                break;
            }
        }
        let ok = session.finish(&mut out).is_ok();
        let lines = out
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).expect("JSON line"))
            .collect();
        (lines, ok)
    }

    fn info_logs(lines: &[Value]) -> Vec<String> {
        lines
            .iter()
            .filter(|l| l["type"] == "LOG" && l["log"]["level"] == "INFO")
            .map(|l| l["log"]["message"].as_str().expect("message").to_string())
            .collect()
    }

    fn users(count: u32) -> Vec<String> {
        (1..=count).map(|n| record("users", None, n)).collect()
    }

    #[test]
    fn spec_is_a_draft_07_schema_with_one_of_and_sync_modes() {
        let spec = DevNull.spec();
        assert_eq!(
            spec["supported_destination_sync_modes"],
            json!(["overwrite", "append", "append_dedup"])
        );
        let schema = &spec["connectionSpecification"];
        assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
        assert_eq!(schema["required"], json!(["test_destination"]));
        let modes: Vec<&Value> = schema["properties"]["test_destination"]["oneOf"]
            .as_array()
            .expect("oneOf")
            .iter()
            .map(|m| &m["properties"]["test_destination_type"]["const"])
            .collect();
        assert_eq!(
            modes,
            [
                &json!("LOGGING"),
                &json!("SILENT"),
                &json!("THROTTLED"),
                &json!("FAILING")
            ]
        );
        let mut out = Vec::new();
        command::spec(&DevNull, &mut out);
        assert!(out.starts_with(br#"{"type":"SPEC","spec":{"#));
    }

    #[test]
    fn every_required_spec_field_is_a_declared_property() {
        fn visit(schema: &Value) {
            if let (Some(required), Some(properties)) = (
                schema["required"].as_array(),
                schema["properties"].as_object(),
            ) {
                for name in required {
                    let name = name.as_str().expect("name");
                    assert!(
                        properties.contains_key(name),
                        "{name} is required but not declared"
                    );
                }
            }
            match schema {
                Value::Object(map) => map.values().for_each(visit),
                Value::Array(items) => items.iter().for_each(visit),
                _ => {}
            }
        }
        visit(&DevNull.spec()["connectionSpecification"]);
    }

    #[test]
    fn check_accepts_good_configs_and_names_the_bad_field() {
        let ctx = Context::native();
        assert_eq!(
            DevNull.check(
                &json!({"test_destination": {"test_destination_type": "SILENT"}}),
                &ctx
            ),
            Ok(())
        );
        let error = DevNull
            .check(
                &json!({"test_destination": {"test_destination_type": "THROTTLED"}}),
                &ctx,
            )
            .expect_err("missing field");
        assert_eq!(error, "test_destination.millis_per_record is required");
    }

    #[test]
    fn open_refuses_a_bad_config_as_a_config_error() {
        let catalog = ConfiguredCatalog::from_json(CATALOG).expect("catalog");
        let error = DevNull
            .open(&json!({}), &catalog, &Context::native())
            .err()
            .expect("must fail");
        assert_eq!(
            error.failure_type,
            airlock_plugin_sdk::FailureType::ConfigError
        );
    }

    #[test]
    fn silent_drops_records_and_echoes_states() {
        let mut lines = users(3);
        lines.push(
            r#"{"type":"STATE","state":{"type":"GLOBAL","global":{"shared_state":{}}}}"#.into(),
        );
        let (output, ok) = run(json!({"test_destination_type": "SILENT"}), &lines);
        assert!(ok);
        assert_eq!(output.len(), 1);
        assert_eq!(
            output[0]["state"]["destinationStats"]["recordCount"],
            json!(3.0)
        );
    }

    #[test]
    fn first_n_logs_the_first_records_of_each_stream() {
        let mut lines = users(3);
        lines.push(record("users", Some("crm"), 9));
        let (output, ok) = run(
            json!({"test_destination_type": "LOGGING",
                   "logging_config": {"logging_type": "FirstN", "max_entry_count": 2}}),
            &lines,
        );
        assert!(ok);
        assert_eq!(
            info_logs(&output),
            [
                r#"[users] #1: {"id":1}"#,
                r#"[users] #2: {"id":2}"#,
                r#"[crm.users] #1: {"id":9}"#
            ]
        );
    }

    #[test]
    fn every_nth_logs_every_nth_record_up_to_the_cap() {
        let (output, _) = run(
            json!({"test_destination_type": "LOGGING",
                   "logging_config": {"logging_type": "EveryNth", "nth_entry_to_log": 3, "max_entry_count": 2}}),
            &users(12),
        );
        assert_eq!(
            info_logs(&output),
            [r#"[users] #1: {"id":3}"#, r#"[users] #2: {"id":6}"#]
        );
    }

    #[test]
    fn random_sampling_is_repeatable_with_a_seed_and_respects_the_ratio() {
        let config = json!({"test_destination_type": "LOGGING",
            "logging_config": {"logging_type": "RandomSampling", "sampling_ratio": 0.5, "seed": 1900, "max_entry_count": 1000}});
        let (first, _) = run(config.clone(), &users(200));
        let (second, _) = run(config, &users(200));
        let logged = info_logs(&first);
        assert_eq!(logged, info_logs(&second));
        assert!((60..=140).contains(&logged.len()), "{}", logged.len());

        let (none, _) = run(
            json!({"test_destination_type": "LOGGING",
                   "logging_config": {"logging_type": "RandomSampling", "sampling_ratio": 0}}),
            &users(50),
        );
        assert!(info_logs(&none).is_empty());
        let (all, _) = run(
            json!({"test_destination_type": "LOGGING",
                   "logging_config": {"logging_type": "RandomSampling", "sampling_ratio": 1, "max_entry_count": 7}}),
            &users(50),
        );
        assert_eq!(info_logs(&all).len(), 7);
    }

    #[test]
    fn throttled_pauses_for_each_record() {
        let start = Instant::now();
        let (_, ok) = run(
            json!({"test_destination_type": "THROTTLED", "millis_per_record": 5}),
            &users(4),
        );
        assert!(ok);
        assert!(start.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn failing_accepts_num_messages_records_then_fails_with_a_system_error() {
        let mut lines = users(2);
        lines.push(r#"{"type":"STATE","state":{"data":{"at":2}}}"#.into());
        lines.extend(users(2));
        lines.push(r#"{"type":"STATE","state":{"data":{"at":4}}}"#.into());
        let (output, ok) = run(
            json!({"test_destination_type": "FAILING", "num_messages": 3}),
            &lines,
        );
        assert!(!ok);
        assert_eq!(output.len(), 2, "{output:?}");
        assert_eq!(output[0]["state"]["data"]["at"], 2);
        let error = &output[1]["trace"]["error"];
        assert_eq!(error["failure_type"], "system_error");
        assert_eq!(
            error["message"],
            "Forcing a fail after processing 3 records."
        );
    }
}
