//! `config`: a connector's config as the user gives it — read, validated against the
//! connector's spec, and shown without its secrets.
//!
//! Owns reading CFG arguments (a file path or inline JSON), JSON Schema validation
//! with errors that name the path, and masking of fields the spec marks
//! `airbyte_secret`, in configs ([`redact`]) and in anything a connector says
//! ([`SecretMask`]), and the password of a connection URL ([`url_without_password`],
//! [`url_holds_password`], [`is_postgres_url`]). It does not run connectors.

mod mask;

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

pub use mask::{MASK, MIN_MASKED_CHARS, SECRET_HINTS, SecretMask, mask_known_secrets};

/// A config problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file named as a config or catalog could not be read.
    #[error("{what} {path} cannot be read (pass a readable file or inline JSON)")]
    Unreadable {
        /// "config" or "catalog".
        what: &'static str,
        /// The argument given.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The text is not JSON.
    #[error("{what} {origin} is not valid JSON")]
    NotJson {
        /// "config" or "catalog".
        what: &'static str,
        /// Where it came from.
        origin: String,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// The JSON does not have the expected shape.
    #[error("{what} {origin} is not a valid {what}: {reason}")]
    Shape {
        /// "config" or "catalog".
        what: &'static str,
        /// Where it came from.
        origin: String,
        /// Why.
        reason: String,
    },
    /// The connector's spec is not a usable JSON Schema.
    #[error("{connector}'s spec is not a valid JSON Schema: {reason}")]
    BadSpec {
        /// The connector.
        connector: String,
        /// Why.
        reason: String,
    },
    /// The config does not match the spec.
    #[error(
        "config for {connector} does not match its spec:\n{}\nfix the fields named above (see `airlock spec {connector}`)",
        violations.iter().map(|v| format!("  - {v}")).collect::<Vec<_>>().join("\n")
    )]
    Invalid {
        /// The connector.
        connector: String,
        /// Each problem, with its path.
        violations: Vec<Violation>,
    },
}

/// One way a config breaks its spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON Pointer of the offending value (`""` is the whole config).
    pub path: String,
    /// What is wrong; values of secret fields are never shown.
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = if self.path.is_empty() {
            "(top level)"
        } else {
            &self.path
        };
        write!(f, "{path}: {}", self.message)
    }
}

/// Reads a JSON argument: inline JSON if it starts with `{` or `[`, else a file path.
///
/// # Errors
/// [`ConfigError`] naming the argument when the file cannot be read or is not JSON.
pub fn read_json_arg(what: &'static str, arg: &str) -> Result<Value, ConfigError> {
    let trimmed = arg.trim_start();
    let (text, origin) = if trimmed.starts_with('{') || trimmed.starts_with('[') {
        (arg.to_owned(), "(inline)".to_owned())
    } else {
        let text =
            std::fs::read_to_string(Path::new(arg)).map_err(|source| ConfigError::Unreadable {
                what,
                path: arg.to_owned(),
                source,
            })?;
        (text, arg.to_owned())
    };
    serde_json::from_str(&text).map_err(|source| ConfigError::NotJson {
        what,
        origin,
        source,
    })
}

/// Reads a config argument and checks it is a JSON object.
///
/// # Errors
/// [`ConfigError`] when it cannot be read, is not JSON, or is not an object.
pub fn read_config_arg(arg: &str) -> Result<Value, ConfigError> {
    let value = read_json_arg("config", arg)?;
    if !value.is_object() {
        return Err(ConfigError::Shape {
            what: "config",
            origin: arg.chars().take(60).collect(),
            reason: "a connector config must be a JSON object".into(),
        });
    }
    Ok(value)
}

/// The names of properties the schema marks `airbyte_secret: true`, at any depth.
pub fn secret_fields(schema: &Value) -> BTreeSet<String> {
    fn walk(schema: &Value, out: &mut BTreeSet<String>) {
        match schema {
            Value::Object(map) => {
                if let Some(Value::Object(props)) = map.get("properties") {
                    for (name, prop) in props {
                        if prop.get("airbyte_secret").and_then(Value::as_bool) == Some(true) {
                            out.insert(name.clone());
                        }
                    }
                }
                map.values().for_each(|v| walk(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    walk(schema, &mut out);
    out
}

/// A short, stable fingerprint of `config` without the values of `secrets` (and
/// of `extra`, what else tells one instance of a connector from another, such as
/// the folder it writes under): the same for the same settings whatever the key
/// order or a rotated password, different when anything else differs.
pub fn fingerprint(config: &Value, secrets: &BTreeSet<String>, extra: &[(&str, String)]) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(canonical_text(&redact(config, secrets)).as_bytes());
    for (key, value) in extra {
        hasher.update([0u8]);
        hasher.update(key.as_bytes());
        hasher.update([0u8]);
        hasher.update(value.as_bytes());
    }
    let digest = hasher.finalize();
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

/// `value` as JSON text with every object's keys sorted: the same text for
/// the same config whatever the key order in the user's file.
pub fn canonical_text(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&map[k])))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

/// The names of fields that look like secrets (password, token, key, …), for a
/// connector whose spec cannot be had.
pub fn guessed_secret_fields(config: &Value) -> BTreeSet<String> {
    let mut fields = BTreeSet::new();
    mask::guess_fields(config, &mut fields);
    fields
}

/// A copy of `config` with every secret field's value replaced by `"**********"`.
pub fn redact(config: &Value, secrets: &BTreeSet<String>) -> Value {
    match config {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if secrets.contains(k) && !v.is_object() {
                        Value::from(MASK)
                    } else {
                        redact(v, secrets)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| redact(v, secrets)).collect()),
        other => other.clone(),
    }
}

/// Validates `config` against a connector's `connectionSpecification`.
///
/// # Errors
/// [`ConfigError::Invalid`] listing every violation with its path (secret values
/// masked), or [`ConfigError::BadSpec`] when the spec itself is not a schema.
pub fn validate(connector: &str, spec_schema: &Value, config: &Value) -> Result<(), ConfigError> {
    let validator = jsonschema::validator_for(spec_schema).map_err(|e| ConfigError::BadSpec {
        connector: connector.to_owned(),
        reason: e.to_string(),
    })?;
    let secrets = secret_fields(spec_schema);
    let violations: Vec<Violation> = validator
        .iter_errors(config)
        .map(|error| {
            let path = error.instance_path().as_str().to_owned();
            let touches_secret = path.split('/').any(|segment| secrets.contains(segment));
            let message = if touches_secret {
                format!(
                    "{} (secret value not shown)",
                    error.masked_with("the value")
                )
            } else {
                error.to_string()
            };
            Violation { path, message }
        })
        .collect();
    if violations.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            connector: connector.to_owned(),
            violations,
        })
    }
}

/// Whether `location` is a PostgreSQL URL (`postgres://` or `postgresql://`)
/// rather than a path.
pub fn is_postgres_url(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

/// A connection URL split as the PostgreSQL driver reads it: the scheme, the
/// credentials (which end at the first `@` anywhere after the scheme, so a
/// password may hold `/` or `?`), the host and path, and the query.
fn url_parts(url: &str) -> Option<(&str, Option<&str>, &str, Option<&str>)> {
    let (scheme, rest) = url.split_once("://")?;
    let (credentials, rest) = match rest.split_once('@') {
        Some((credentials, rest)) => (Some(credentials), rest),
        None => (None, rest),
    };
    let (host, query) = match rest.split_once('?') {
        Some((host, query)) => (host, Some(query)),
        None => (rest, None),
    };
    Some((scheme, credentials, host, query))
}

/// Whether a query parameter `key` (percent-decoded, as the driver decodes it)
/// is the password.
fn is_password_key(key: &str) -> bool {
    percent_encoding::percent_decode_str(key).decode_utf8_lossy() == "password"
}

/// A connection URL (`postgres://…`) without its password, for messages: the
/// one in its credentials and a `password=` parameter both show as `***`.
pub fn url_without_password(url: &str) -> String {
    let Some((scheme, credentials, host, query)) = url_parts(url) else {
        return url.to_owned();
    };
    let mut out = format!("{scheme}://");
    if let Some(credentials) = credentials {
        match credentials.split_once(':') {
            Some((user, _)) => out.push_str(&format!("{user}:***@")),
            None => out.push_str(&format!("{credentials}@")),
        }
    }
    out.push_str(host);
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((key, _)) if is_password_key(key) => format!("{key}=***"),
                _ => param.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// Whether a connection URL carries a password (a secret, which belongs
/// behind a reference, never in a file): in its credentials or as a
/// `password=` parameter.
pub fn url_holds_password(url: &str) -> bool {
    let Some((_, credentials, _, query)) = url_parts(url) else {
        return false;
    };
    credentials.is_some_and(|c| c.contains(':'))
        || query.is_some_and(|q| {
            q.split('&').any(|param| {
                param
                    .split_once('=')
                    .is_some_and(|(key, _)| is_password_key(key))
            })
        })
}

#[cfg(test)]
mod tests {
    /// The password is found where the driver finds it: up to the first `@`
    /// (so it may hold `?` or `/`), or as a `password` parameter, encoded or not.
    #[test]
    fn a_url_password_is_found_and_masked_wherever_the_driver_reads_it() {
        for (url, shown) in [
            ("postgres://u:pa?ss@h/db", "postgres://u:***@h/db"),
            (
                "postgres://u:p/w@h:5432/db?sslmode=disable",
                "postgres://u:***@h:5432/db?sslmode=disable",
            ),
            (
                "postgres://u@h/db?password=x&a=b",
                "postgres://u@h/db?password=***&a=b",
            ),
            (
                "postgres://u@h/db?pass%77ord=x",
                "postgres://u@h/db?pass%77ord=***",
            ),
        ] {
            assert!(super::url_holds_password(url), "{url}");
            assert_eq!(super::url_without_password(url), shown);
        }
        for url in [
            "postgres://u@h/db",
            "postgres://h/db?sslmode=disable",
            "/tmp/state.db",
        ] {
            assert!(!super::url_holds_password(url), "{url}");
        }
        assert_eq!(
            super::url_without_password("postgres://u@h/db"),
            "postgres://u@h/db"
        );
    }

    use serde_json::json;

    use super::*;

    fn schema() -> Value {
        json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "required": ["host", "password"],
            "properties": {
                "host": {"type": "string"},
                "port": {"type": "integer"},
                "password": {"type": "string", "airbyte_secret": true, "minLength": 8},
                "nested": {"type": "object", "properties": {"token": {"type": "string", "airbyte_secret": true}}}
            }
        })
    }

    #[test]
    fn violations_name_their_path() {
        let err = validate(
            "dest",
            &schema(),
            &json!({"host": 5, "port": "x", "password": "longenough"}),
        )
        .expect_err("invalid");
        let ConfigError::Invalid { violations, .. } = &err else {
            panic!("{err}")
        };
        let paths: Vec<&str> = violations.iter().map(|v| v.path.as_str()).collect();
        assert!(
            paths.contains(&"/host") && paths.contains(&"/port"),
            "{paths:?}"
        );
        assert!(err.to_string().contains("/port"));
    }

    #[test]
    fn secret_values_never_appear_in_errors() {
        let err = validate(
            "dest",
            &schema(),
            &json!({"host": "h", "password": "hunter2", "nested": {"token": 12345}}),
        )
        .expect_err("invalid");
        let text = err.to_string();
        assert!(
            !text.contains("hunter2") && !text.contains("12345"),
            "{text}"
        );
        assert!(
            text.contains("/password") && text.contains("secret value not shown"),
            "{text}"
        );
    }

    #[test]
    fn missing_required_fields_are_reported() {
        let err = validate("dest", &schema(), &json!({})).expect_err("invalid");
        assert!(err.to_string().contains("host"), "{err}");
        assert!(
            validate(
                "dest",
                &schema(),
                &json!({"host": "h", "password": "longenough"})
            )
            .is_ok()
        );
    }

    #[test]
    fn fingerprints_ignore_key_order_and_secret_values_but_not_settings() {
        let secrets = secret_fields(&schema());
        let a = json!({"host": "h", "port": 1, "password": "p1", "nested": {"token": "t1"}});
        let b = json!({"nested": {"token": "t2"}, "password": "p2", "port": 1, "host": "h"});
        let c = json!({"host": "other", "port": 1, "password": "p1"});
        assert_eq!(
            fingerprint(&a, &secrets, &[]),
            fingerprint(&b, &secrets, &[])
        );
        assert_ne!(
            fingerprint(&a, &secrets, &[]),
            fingerprint(&c, &secrets, &[])
        );
        assert_ne!(
            fingerprint(&a, &secrets, &[("local_root", "/x".into())]),
            fingerprint(&a, &secrets, &[("local_root", "/y".into())])
        );
        assert_eq!(fingerprint(&a, &secrets, &[]).len(), 12);
    }

    #[test]
    fn redact_masks_secrets_at_any_depth() {
        let config = json!({"host": "h", "password": "p", "nested": {"token": "t"}});
        let shown = redact(&config, &secret_fields(&schema()));
        assert_eq!(shown["password"], "**********");
        assert_eq!(shown["nested"]["token"], "**********");
        assert_eq!(shown["host"], "h");
    }

    #[test]
    fn json_args_are_inline_or_files() {
        assert_eq!(read_config_arg(r#"{"a":1}"#).expect("inline")["a"], 1);
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("c.json");
        std::fs::write(&path, r#"{"b":2}"#).expect("write");
        assert_eq!(
            read_config_arg(path.to_str().expect("utf8")).expect("file")["b"],
            2
        );
        let missing = read_config_arg("/nonexistent/c.json").expect_err("missing");
        assert!(
            missing.to_string().contains("/nonexistent/c.json"),
            "{missing}"
        );
        assert!(read_config_arg("[1]").is_err(), "not an object");
        assert!(matches!(
            read_config_arg("{nope").expect_err("bad"),
            ConfigError::NotJson { .. }
        ));
    }
}
