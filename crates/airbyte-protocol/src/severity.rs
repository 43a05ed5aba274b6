//! `severity`: how serious a message is ([`LogLevel`]) and, for an error,
//! who is to blame ([`FailureType`]).

use serde::{Deserialize, Serialize};

/// The `level` of a LOG message, most severe first (so `Fatal < Trace`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LogLevel {
    /// `FATAL`: the connector cannot go on.
    Fatal,
    /// `ERROR`: something failed.
    Error,
    /// `WARN`: something looks wrong but the run goes on.
    Warn,
    /// `INFO`: progress worth telling the user.
    Info,
    /// `DEBUG`: detail for developers.
    Debug,
    /// `TRACE`: very fine detail.
    Trace,
}

impl LogLevel {
    /// The wire name, e.g. `"WARN"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fatal => "FATAL",
            Self::Error => "ERROR",
            Self::Warn => "WARN",
            Self::Info => "INFO",
            Self::Debug => "DEBUG",
            Self::Trace => "TRACE",
        }
    }
}

impl std::fmt::Display for LogLevel {
    /// The wire name, e.g. `WARN`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who is to blame for an error: the `failure_type` of a TRACE ERROR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureType {
    /// `system_error`: a bug or fault in the connector or the machine it runs on.
    SystemError,
    /// `config_error`: the user's configuration is wrong; retrying will not help.
    ConfigError,
    /// `transient_error`: a passing fault (network, lock, quota); a retry may
    /// succeed.
    TransientError,
}

impl FailureType {
    /// The wire name, e.g. `"config_error"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SystemError => "system_error",
            Self::ConfigError => "config_error",
            Self::TransientError => "transient_error",
        }
    }
}

impl std::fmt::Display for FailureType {
    /// The wire name, e.g. `config_error`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_levels_use_the_wire_names_both_ways() {
        let all = [
            LogLevel::Fatal,
            LogLevel::Error,
            LogLevel::Warn,
            LogLevel::Info,
            LogLevel::Debug,
            LogLevel::Trace,
        ];
        for level in all {
            let json = serde_json::to_string(&level).expect("serialise");
            assert_eq!(json, format!("\"{}\"", level.as_str()));
            assert_eq!(level.to_string(), level.as_str());
            let back: LogLevel = serde_json::from_str(&json).expect("parse");
            assert_eq!(back, level);
        }
        assert!(LogLevel::Fatal < LogLevel::Warn && LogLevel::Warn < LogLevel::Trace);
    }

    #[test]
    fn failure_types_use_the_wire_names_both_ways() {
        for (kind, text) in [
            (FailureType::SystemError, "system_error"),
            (FailureType::ConfigError, "config_error"),
            (FailureType::TransientError, "transient_error"),
        ] {
            assert_eq!(
                serde_json::to_string(&kind).expect("serialise"),
                format!("\"{text}\"")
            );
            assert_eq!(kind.to_string(), text);
            let back: FailureType = serde_json::from_str(&format!("\"{text}\"")).expect("parse");
            assert_eq!(back, kind);
        }
    }
}
