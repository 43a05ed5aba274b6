//! `settings`: the destination's configuration, read from the config object
//! as Airbyte's destination-postgres spells it, with a config error naming
//! the field and the fix for anything unusable. It opens no connection.

use airlock_plugin_sdk::DestinationError;
use serde_json::Value;

use crate::client::ConnectParams;

/// The port when none is configured.
pub const DEFAULT_PORT: u16 = 5432;

/// The schema when none is configured.
pub const DEFAULT_SCHEMA: &str = "public";

/// COPY data gathered per stream before it is sent, when not configured.
pub const DEFAULT_BATCH_BYTES: usize = 1024 * 1024;

/// How long states may wait to be committed together, when not configured.
pub const DEFAULT_COMMIT_INTERVAL_MS: u64 = 1000;

/// Everything `check` and `write` need.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where and as whom.
    pub connect: ConnectParams,
    /// The schema of streams without a namespace.
    pub schema: String,
    /// COPY data gathered per stream before it goes to the server.
    pub batch_bytes: usize,
    /// States arriving within this long of the last commit are committed
    /// with a later one (0: a commit per state).
    pub commit_interval: std::time::Duration,
    /// `ssl_mode` asked for TLS only if available (`allow`, `prefer`); this
    /// build connects without it and says so.
    pub tls_preferred_but_absent: bool,
}

fn string_field<'a>(config: &'a Value, field: &str) -> Result<Option<&'a str>, DestinationError> {
    match config.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(other) => Err(DestinationError::config(format!(
            "{field} must be a string, got {}",
            kind(other)
        ))),
    }
}

fn required<'a>(
    config: &'a Value,
    field: &str,
    example: &str,
) -> Result<&'a str, DestinationError> {
    match string_field(config, field)? {
        Some(s) if !s.trim().is_empty() => Ok(s),
        _ => Err(DestinationError::config(format!(
            "{field} is required (for example \"{field}\": \"{example}\")"
        ))),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Settings {
    /// Reads `config`.
    ///
    /// # Errors
    ///
    /// A config error naming the field.
    pub fn read(config: &Value) -> Result<Self, DestinationError> {
        if !config.is_object() {
            return Err(DestinationError::config(format!(
                "the config must be a JSON object, got {}",
                kind(config)
            )));
        }
        let host = required(config, "host", "db.internal")?.trim().to_owned();
        let port = match config.get("port") {
            None | Some(Value::Null) => DEFAULT_PORT,
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p != 0)
                .ok_or_else(|| {
                    DestinationError::config(format!("port must be 1 to 65535, got {n}"))
                })?,
            Some(Value::String(s)) => s
                .trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| {
                    DestinationError::config(format!("port must be 1 to 65535, got {s:?}"))
                })?,
            Some(other) => {
                return Err(DestinationError::config(format!(
                    "port must be a number, got {}",
                    kind(other)
                )));
            }
        };
        let database = required(config, "database", "postgres")?.to_owned();
        let user = required(config, "username", "airbyte")?.to_owned();
        let password = string_field(config, "password")?.map(str::to_owned);
        let schema = match string_field(config, "schema")? {
            None => DEFAULT_SCHEMA.to_owned(),
            Some(s) if s.trim().is_empty() => DEFAULT_SCHEMA.to_owned(),
            Some(s) => s.to_owned(),
        };
        let tls_preferred_but_absent = read_ssl_mode(config)?;
        if let Some(params) = string_field(config, "jdbc_url_params")?
            && !params.trim().is_empty()
        {
            return Err(DestinationError::config(format!(
                "jdbc_url_params ({params:?}) is a JDBC driver setting; destination-postgres \
                 speaks the wire protocol itself and takes none. Fix: remove jdbc_url_params"
            )));
        }
        if let Some(tunnel) = config.get("tunnel_method").filter(|t| !t.is_null()) {
            let method = tunnel.get("tunnel_method").and_then(Value::as_str);
            if method != Some("NO_TUNNEL") {
                return Err(DestinationError::config(format!(
                    "tunnel_method {} is not supported: destination-postgres connects directly. \
                     Fix: open the tunnel yourself and point host and port at its local end, \
                     or set tunnel_method to NO_TUNNEL",
                    method.unwrap_or("(unnamed)")
                )));
            }
        }
        if config.get("raw_data_schema").is_some_and(|v| !v.is_null())
            || config.get("disable_type_dedupe") == Some(&Value::Bool(true))
            || config.get("raw_tables_only") == Some(&Value::Bool(true))
        {
            return Err(DestinationError::config(
                "the raw-tables layout (raw_tables_only, disable_type_dedupe, raw_data_schema) is \
                 not supported: destination-postgres writes typed tables. Fix: remove those fields",
            ));
        }
        let batch_bytes = match config.get("batch_size_bytes") {
            None | Some(Value::Null) => DEFAULT_BATCH_BYTES,
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|b| usize::try_from(b).ok())
                .filter(|b| (4096..=(256 << 20)).contains(b))
                .ok_or_else(|| {
                    DestinationError::config(format!(
                        "batch_size_bytes must be 4096 to 268435456, got {n}"
                    ))
                })?,
            Some(other) => {
                return Err(DestinationError::config(format!(
                    "batch_size_bytes must be a number, got {}",
                    kind(other)
                )));
            }
        };
        let commit_interval_ms = match config.get("commit_interval_ms") {
            None | Some(Value::Null) => DEFAULT_COMMIT_INTERVAL_MS,
            Some(Value::Number(n)) => n.as_u64().filter(|ms| *ms <= 600_000).ok_or_else(|| {
                DestinationError::config(format!("commit_interval_ms must be 0 to 600000, got {n}"))
            })?,
            Some(other) => {
                return Err(DestinationError::config(format!(
                    "commit_interval_ms must be a number, got {}",
                    kind(other)
                )));
            }
        };
        Ok(Self {
            commit_interval: std::time::Duration::from_millis(commit_interval_ms),
            connect: ConnectParams {
                host,
                port,
                database,
                user,
                password,
                application_name: "airlock destination-postgres".into(),
            },
            schema,
            batch_bytes,
            tls_preferred_but_absent,
        })
    }
}

/// Reads `ssl_mode` (`{"mode": "disable"}` as Airbyte writes it, or the bare
/// word): true when TLS was preferred but this build has none.
fn read_ssl_mode(config: &Value) -> Result<bool, DestinationError> {
    let mode = match config.get("ssl_mode") {
        None | Some(Value::Null) => return Ok(false),
        Some(Value::String(mode)) => mode.as_str(),
        Some(Value::Object(choice)) => match choice.get("mode") {
            Some(Value::String(mode)) => mode.as_str(),
            _ => {
                return Err(DestinationError::config(
                    "ssl_mode.mode is required (\"disable\", \"allow\" or \"prefer\")",
                ));
            }
        },
        Some(other) => {
            return Err(DestinationError::config(format!(
                "ssl_mode must be an object such as {{\"mode\": \"disable\"}}, got {}",
                kind(other)
            )));
        }
    };
    match mode {
        "disable" => Ok(false),
        "allow" | "prefer" => Ok(true),
        "require" | "verify-ca" | "verify-full" => Err(DestinationError::config(format!(
            "ssl_mode {mode} needs TLS, which this destination-postgres build cannot do yet. \
             Fix: use ssl_mode disable on a network you trust (loopback, a private network, \
             a tunnel), or load through a TLS-terminating proxy on the same host"
        ))),
        other => Err(DestinationError::config(format!(
            "ssl_mode {other:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({"host": "127.0.0.1", "port": 5433, "database": "db", "username": "u", "password": "p"})
    }

    #[test]
    fn reads_airbytes_fields_with_defaults() {
        let s = Settings::read(&base()).expect("settings");
        assert_eq!(s.connect.port, 5433);
        assert_eq!(s.schema, "public");
        assert_eq!(s.batch_bytes, DEFAULT_BATCH_BYTES);
        assert!(
            !format!("{:?}", s.connect).contains("\"p\""),
            "the password never prints"
        );
        let mut c = base();
        c["ssl_mode"] = json!({"mode": "prefer"});
        c["schema"] = json!("Raw Data");
        c["port"] = json!("5432");
        let s = Settings::read(&c).expect("settings");
        assert!(s.tls_preferred_but_absent);
        assert_eq!((s.schema.as_str(), s.connect.port), ("Raw Data", 5432));
    }

    #[test]
    fn bad_fields_are_named() {
        for (field, value, says) in [
            ("host", json!(null), "host is required"),
            ("port", json!(70000), "port must be 1 to 65535"),
            ("username", json!(3), "username must be a string"),
            ("ssl_mode", json!({"mode": "verify-full"}), "needs TLS"),
            ("ssl_mode", json!("bogus"), "is not one of"),
            ("jdbc_url_params", json!("a=b"), "jdbc_url_params"),
            (
                "tunnel_method",
                json!({"tunnel_method": "SSH_KEY_AUTH"}),
                "not supported",
            ),
            ("batch_size_bytes", json!(1), "batch_size_bytes"),
            ("commit_interval_ms", json!(-1), "commit_interval_ms"),
        ] {
            let mut c = base();
            c[field] = value;
            let err = Settings::read(&c).expect_err(field);
            assert!(err.message.contains(says), "{field}: {}", err.message);
            assert_eq!(
                err.failure_type,
                airlock_plugin_sdk::FailureType::ConfigError
            );
        }
    }
}
