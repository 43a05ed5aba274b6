//! `config`: the E2E test destination's configuration, parsed from JSON by
//! hand so that every complaint names the exact field at fault.

use serde_json::{Map, Value};

/// The default of `max_entry_count`.
const DEFAULT_MAX_ENTRY_COUNT: u64 = 100;

/// The largest `max_entry_count` and `nth_entry_to_log` allowed: this
/// destination is for testing, logging without end makes no sense.
const MAX_ENTRY_COUNT_LIMIT: u64 = 1000;

/// The default of `sampling_ratio`.
const DEFAULT_SAMPLING_RATIO: f64 = 0.001;

/// What the destination does with the records it receives
/// (`test_destination.test_destination_type`).
#[derive(Debug, Clone, PartialEq)]
pub enum TestDestination {
    /// `LOGGING`: log some records as LOG INFO messages, then drop them.
    Logging(LoggingConfig),
    /// `SILENT`: drop every record.
    Silent,
    /// `THROTTLED`: drop every record, pausing `millis_per_record` for each.
    Throttled {
        /// How long to pause per record, in milliseconds.
        millis_per_record: u64,
    },
    /// `FAILING`: accept `num_messages` records, then fail with a
    /// system error on the next one.
    Failing {
        /// How many records to accept before failing.
        num_messages: u64,
    },
}

/// Which records LOGGING logs (`test_destination.logging_config`); every
/// count is per stream.
#[derive(Debug, Clone, PartialEq)]
pub enum LoggingConfig {
    /// `FirstN`: the first `max_entry_count` records.
    FirstN {
        /// How many records to log (default 100, at most 1000).
        max_entry_count: u64,
    },
    /// `EveryNth`: every `nth_entry_to_log`-th record, up to
    /// `max_entry_count` of them.
    EveryNth {
        /// Log one record out of this many (1 logs every record).
        nth_entry_to_log: u64,
        /// How many records to log at most (default 100, at most 1000).
        max_entry_count: u64,
    },
    /// `RandomSampling`: each record with probability `sampling_ratio`, up
    /// to `max_entry_count` of them.
    RandomSampling {
        /// The probability of logging a record, from 0 to 1 (default 0.001).
        sampling_ratio: f64,
        /// The random generator's seed; a random one when absent.
        seed: Option<i64>,
        /// How many records to log at most (default 100, at most 1000).
        max_entry_count: u64,
    },
}

impl TestDestination {
    /// Parses a whole destination configuration.
    ///
    /// # Errors
    ///
    /// A message naming the missing or invalid field, e.g.
    /// `test_destination.logging_config.max_entry_count must be an integer
    /// from 1 to 1000, got 0`.
    pub fn from_config(config: &Value) -> Result<Self, String> {
        let root = object(Some(config), "the configuration")?;
        let path = "test_destination";
        let test = object(field(root, "test_destination"), path)?;
        let kind_path = format!("{path}.test_destination_type");
        let kind = match field(test, "test_destination_type") {
            None => return Err(format!("{kind_path} is required")),
            Some(Value::String(kind)) => kind.as_str(),
            Some(other) => return Err(format!("{kind_path} must be a string, got {other}")),
        };
        match kind {
            "LOGGING" => {
                let logging_path = format!("{path}.logging_config");
                let logging = object(field(test, "logging_config"), &logging_path)?;
                LoggingConfig::from_object(logging, &logging_path).map(Self::Logging)
            }
            "SILENT" => Ok(Self::Silent),
            "THROTTLED" => Ok(Self::Throttled {
                millis_per_record: integer(test, path, "millis_per_record", None, 0..=u64::MAX)?,
            }),
            "FAILING" => Ok(Self::Failing {
                num_messages: integer(test, path, "num_messages", None, 0..=u64::MAX)?,
            }),
            other => Err(format!(
                "{kind_path} must be one of LOGGING, SILENT, THROTTLED or FAILING, got {other:?}"
            )),
        }
    }
}

impl LoggingConfig {
    fn from_object(logging: &Map<String, Value>, path: &str) -> Result<Self, String> {
        let type_path = format!("{path}.logging_type");
        let kind = match field(logging, "logging_type") {
            None => return Err(format!("{type_path} is required")),
            Some(Value::String(kind)) => kind.as_str(),
            Some(other) => return Err(format!("{type_path} must be a string, got {other}")),
        };
        let max_entry_count = || {
            integer(
                logging,
                path,
                "max_entry_count",
                Some(DEFAULT_MAX_ENTRY_COUNT),
                1..=MAX_ENTRY_COUNT_LIMIT,
            )
        };
        match kind {
            "FirstN" => Ok(Self::FirstN {
                max_entry_count: max_entry_count()?,
            }),
            "EveryNth" => Ok(Self::EveryNth {
                nth_entry_to_log: integer(
                    logging,
                    path,
                    "nth_entry_to_log",
                    None,
                    1..=MAX_ENTRY_COUNT_LIMIT,
                )?,
                max_entry_count: max_entry_count()?,
            }),
            "RandomSampling" => {
                let ratio_path = format!("{path}.sampling_ratio");
                let sampling_ratio = match field(logging, "sampling_ratio") {
                    None => DEFAULT_SAMPLING_RATIO,
                    Some(value) => value
                        .as_f64()
                        .filter(|r| (0.0..=1.0).contains(r))
                        .ok_or_else(|| {
                            format!("{ratio_path} must be a number from 0 to 1, got {value}")
                        })?,
                };
                let seed =
                    match field(logging, "seed") {
                        None => None,
                        Some(value) => Some(whole_number(value).ok_or_else(|| {
                            format!("{path}.seed must be an integer, got {value}")
                        })?),
                    };
                Ok(Self::RandomSampling {
                    sampling_ratio,
                    seed,
                    max_entry_count: max_entry_count()?,
                })
            }
            other => Err(format!(
                "{type_path} must be one of FirstN, EveryNth or RandomSampling, got {other:?}"
            )),
        }
    }
}

/// A field's value; an explicit `null` counts as absent.
fn field<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).filter(|v| !v.is_null())
}

/// Requires `value` to be present and an object.
fn object<'a>(value: Option<&'a Value>, path: &str) -> Result<&'a Map<String, Value>, String> {
    match value {
        None => Err(format!("{path} is required")),
        Some(Value::Object(object)) => Ok(object),
        Some(other) => Err(format!("{path} must be an object, got {other}")),
    }
}

/// A JSON number with no fraction (`3` or `3.0`), as an `i64`.
fn whole_number(value: &Value) -> Option<i64> {
    value.as_i64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
            .map(|f| f as i64)
    })
}

/// Reads the whole number `object.key` within `range`, or `default` when it
/// is absent (required when there is no default).
fn integer(
    object: &Map<String, Value>,
    path: &str,
    key: &str,
    default: Option<u64>,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, String> {
    let Some(value) = field(object, key) else {
        return default.ok_or_else(|| format!("{path}.{key} is required"));
    };
    whole_number(value)
        .and_then(|n| u64::try_from(n).ok())
        .filter(|n| range.contains(n))
        .ok_or_else(|| {
            if *range.end() == u64::MAX {
                format!(
                    "{path}.{key} must be an integer from {}, got {value}",
                    range.start()
                )
            } else {
                format!(
                    "{path}.{key} must be an integer from {} to {}, got {value}",
                    range.start(),
                    range.end()
                )
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(test_destination: Value) -> Result<TestDestination, String> {
        TestDestination::from_config(&json!({ "test_destination": test_destination }))
    }

    #[test]
    fn parses_every_mode_with_defaults() {
        assert_eq!(
            parse(
                json!({"test_destination_type": "LOGGING", "logging_config": {"logging_type": "FirstN"}})
            ),
            Ok(TestDestination::Logging(LoggingConfig::FirstN {
                max_entry_count: 100
            }))
        );
        assert_eq!(
            parse(
                json!({"test_destination_type": "LOGGING", "logging_config": {
                "logging_type": "EveryNth", "nth_entry_to_log": 3, "max_entry_count": 5.0}})
            ),
            Ok(TestDestination::Logging(LoggingConfig::EveryNth {
                nth_entry_to_log: 3,
                max_entry_count: 5
            }))
        );
        assert_eq!(
            parse(
                json!({"test_destination_type": "LOGGING", "logging_config": {
                "logging_type": "RandomSampling", "seed": 1900, "sampling_ratio": null}})
            ),
            Ok(TestDestination::Logging(LoggingConfig::RandomSampling {
                sampling_ratio: 0.001,
                seed: Some(1900),
                max_entry_count: 100
            }))
        );
        assert_eq!(
            parse(json!({"test_destination_type": "SILENT"})),
            Ok(TestDestination::Silent)
        );
        assert_eq!(
            parse(json!({"test_destination_type": "THROTTLED", "millis_per_record": 10})),
            Ok(TestDestination::Throttled {
                millis_per_record: 10
            })
        );
        assert_eq!(
            parse(json!({"test_destination_type": "FAILING", "num_messages": 5})),
            Ok(TestDestination::Failing { num_messages: 5 })
        );
    }

    #[test]
    fn errors_name_the_field_at_fault() {
        let cases = [
            (json!(null), "test_destination is required"),
            (json!("SILENT"), "test_destination must be an object"),
            (
                json!({}),
                "test_destination.test_destination_type is required",
            ),
            (
                json!({"test_destination_type": 1}),
                "test_destination.test_destination_type must be a string",
            ),
            (
                json!({"test_destination_type": "LOUD"}),
                "must be one of LOGGING, SILENT, THROTTLED or FAILING, got \"LOUD\"",
            ),
            (
                json!({"test_destination_type": "LOGGING"}),
                "test_destination.logging_config is required",
            ),
            (
                json!({"test_destination_type": "LOGGING", "logging_config": {}}),
                "test_destination.logging_config.logging_type is required",
            ),
            (
                json!({"test_destination_type": "LOGGING", "logging_config": {"logging_type": "Some"}}),
                "must be one of FirstN, EveryNth or RandomSampling",
            ),
            (
                json!({"test_destination_type": "LOGGING", "logging_config": {"logging_type": "FirstN", "max_entry_count": 0}}),
                "test_destination.logging_config.max_entry_count must be an integer from 1 to 1000, got 0",
            ),
            (
                json!({"test_destination_type": "LOGGING", "logging_config": {"logging_type": "FirstN", "max_entry_count": 1.5}}),
                "max_entry_count must be an integer",
            ),
            (
                json!({"test_destination_type": "LOGGING", "logging_config": {"logging_type": "EveryNth"}}),
                "test_destination.logging_config.nth_entry_to_log is required",
            ),
            (
                json!({"test_destination_type": "LOGGING", "logging_config": {"logging_type": "RandomSampling", "sampling_ratio": 2}}),
                "test_destination.logging_config.sampling_ratio must be a number from 0 to 1, got 2",
            ),
            (
                json!({"test_destination_type": "LOGGING", "logging_config": {"logging_type": "RandomSampling", "seed": "x"}}),
                "test_destination.logging_config.seed must be an integer",
            ),
            (
                json!({"test_destination_type": "THROTTLED"}),
                "test_destination.millis_per_record is required",
            ),
            (
                json!({"test_destination_type": "THROTTLED", "millis_per_record": -1}),
                "test_destination.millis_per_record must be an integer from 0, got -1",
            ),
            (
                json!({"test_destination_type": "FAILING", "num_messages": "5"}),
                "test_destination.num_messages must be an integer",
            ),
        ];
        for (test_destination, expected) in cases {
            let error = parse(test_destination.clone()).expect_err(&test_destination.to_string());
            assert!(
                error.contains(expected),
                "{error:?} should contain {expected:?}"
            );
        }
        assert_eq!(
            TestDestination::from_config(&json!([])),
            Err("the configuration must be an object, got []".into())
        );
    }
}
