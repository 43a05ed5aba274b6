//! `config`: the connector configuration (`count`, `seed`,
//! `records_per_slice`, `always_updated`, `parallelism`), checked against the
//! spec the way the Python CDK's JSON-schema validation does, with the
//! defaults of the Python `SourceFaker.streams()`.
//!
//! Note the defaults are the *code's*, not the spec's: `records_per_slice`
//! defaults to 100 (the spec advertises 1000), exactly like the real
//! connector. `seed` absent means "random", and is written as `null` in the
//! stream states; any integer, including the spec's `-1`, is a fixed seed
//! (the real connector also seeds with `-1` as given).

use serde_json::Value;

/// `count` when the config has none (Python `DEFAULT_COUNT`).
pub const DEFAULT_COUNT: u64 = 1000;
/// `records_per_slice` when the config has none (Python code default).
pub const DEFAULT_RECORDS_PER_SLICE: u64 = 100;
/// `parallelism` when the config has none.
pub const DEFAULT_PARALLELISM: u64 = 4;

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakerConfig {
    /// How many users (and, about, purchases) to generate; products are
    /// capped at the 100 of the product list.
    pub count: u64,
    /// The configured seed; `None` when absent (random data each run).
    pub seed: Option<i64>,
    /// Users per slice, and records between two checkpoints.
    pub records_per_slice: u64,
    /// Re-emit every record (with a new `updated_at`) on each sync even when
    /// a state says the stream was read already.
    pub always_updated: bool,
    /// Accepted and validated for compatibility; generation is
    /// single-threaded (it also has to run as a WASI command).
    pub parallelism: u64,
    /// `true` when `count` was given (the Python `check` fails without it).
    pub count_given: bool,
}

impl Default for FakerConfig {
    fn default() -> Self {
        Self {
            count: DEFAULT_COUNT,
            seed: None,
            records_per_slice: DEFAULT_RECORDS_PER_SLICE,
            always_updated: true,
            parallelism: DEFAULT_PARALLELISM,
            count_given: false,
        }
    }
}

/// Renders a JSON value the way Python's `repr` shows the parsed value in
/// jsonschema messages (`'abc'`, `True`, `None`, `5.5`).
fn python_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::String(s) => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
        other => other.to_string(),
    }
}

/// An integer as JSON Schema sees it (`5` and `5.0` are integers).
fn as_integer(v: &Value) -> Option<i128> {
    if let Some(i) = v.as_i64() {
        return Some(i128::from(i));
    }
    if let Some(u) = v.as_u64() {
        return Some(i128::from(u));
    }
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e30 => Some(f as i128),
        _ => None,
    }
}

/// Reads optional integer `key` with lower bound `minimum`.
fn integer(config: &Value, key: &str, minimum: Option<i128>) -> Result<Option<i128>, String> {
    let Some(v) = config.get(key) else {
        return Ok(None);
    };
    let i = as_integer(v).ok_or_else(|| format!("{} is not of type 'integer'", python_repr(v)))?;
    if let Some(min) = minimum
        && i < min
    {
        return Err(format!(
            "{} is less than the minimum of {min}",
            python_repr(v)
        ));
    }
    Ok(Some(i))
}

impl FakerConfig {
    /// Validates `config` against the connector spec and applies the
    /// defaults. The error is the bare validation message (e.g. `0 is less
    /// than the minimum of 1`); callers prefix `Config validation error: `.
    pub fn from_json(config: &Value) -> Result<Self, String> {
        if !config.is_object() {
            return Err(format!("{} is not of type 'object'", python_repr(config)));
        }
        let mut out = Self::default();
        if let Some(count) = integer(config, "count", Some(1))? {
            out.count = u64::try_from(count).unwrap_or(u64::MAX);
            out.count_given = true;
        }
        if let Some(seed) = integer(config, "seed", None)? {
            // Wrap out-of-range seeds instead of failing: any integer is
            // valid for the spec, and only its bits matter here.
            out.seed = Some(seed as i64);
        }
        if let Some(rps) = integer(config, "records_per_slice", Some(1))? {
            out.records_per_slice = u64::try_from(rps).unwrap_or(u64::MAX);
        }
        if let Some(v) = config.get("always_updated") {
            out.always_updated = v
                .as_bool()
                .ok_or_else(|| format!("{} is not of type 'boolean'", python_repr(v)))?;
        }
        if let Some(p) = integer(config, "parallelism", Some(1))? {
            out.parallelism = u64::try_from(p).unwrap_or(u64::MAX);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_match_the_python_code() {
        let c = FakerConfig::from_json(&json!({})).expect("valid");
        assert_eq!(c.count, 1000);
        assert_eq!(c.records_per_slice, 100);
        assert!(c.always_updated);
        assert_eq!(c.seed, None);
        assert!(!c.count_given);
    }

    #[test]
    fn validation_messages_match_jsonschema() {
        let err = |v| FakerConfig::from_json(&v).expect_err("invalid");
        assert_eq!(err(json!({"count": 0})), "0 is less than the minimum of 1");
        assert_eq!(
            err(json!({"count": "abc"})),
            "'abc' is not of type 'integer'"
        );
        assert_eq!(err(json!({"count": 5.5})), "5.5 is not of type 'integer'");
        assert_eq!(
            err(json!({"always_updated": 1})),
            "1 is not of type 'boolean'"
        );
        assert_eq!(err(json!([])), "[] is not of type 'object'");
        let c = FakerConfig::from_json(&json!({"count": 5.0, "seed": -1})).expect("valid");
        assert_eq!((c.count, c.seed), (5, Some(-1)));
    }
}
