//! `error`: the one error type a destination reports, and the Airbyte failure
//! class that travels with it into the TRACE ERROR message ([`FailureType`],
//! from the shared `airbyte_protocol` vocabulary).

pub use airbyte_protocol::FailureType;

/// A failure reported by a [`Destination`](crate::Destination) or its
/// [`RecordWriter`](crate::RecordWriter).
///
/// The message is shown to the user as is, so it should name what failed and
/// where (a path, a field, a stream). It must never contain a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DestinationError {
    /// What went wrong, in words a user can act on.
    pub message: String,
    /// Airbyte's classification of the failure.
    pub failure_type: FailureType,
}

impl DestinationError {
    /// A failure of the given type.
    pub fn new(failure_type: FailureType, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            failure_type,
        }
    }

    /// The configuration is unusable ([`FailureType::ConfigError`]).
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(FailureType::ConfigError, message)
    }

    /// The destination or its machine failed ([`FailureType::SystemError`]).
    pub fn system(message: impl Into<String>) -> Self {
        Self::new(FailureType::SystemError, message)
    }

    /// A passing failure that a retry may cure ([`FailureType::TransientError`]).
    pub fn transient(message: impl Into<String>) -> Self {
        Self::new(FailureType::TransientError, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_types_serialise_as_airbyte_spells_them() {
        let names: Vec<String> = [
            FailureType::SystemError,
            FailureType::ConfigError,
            FailureType::TransientError,
        ]
        .iter()
        .map(|t| serde_json::to_string(t).expect("serialise"))
        .collect();
        assert_eq!(
            names,
            [
                r#""system_error""#,
                r#""config_error""#,
                r#""transient_error""#
            ]
        );
    }

    #[test]
    fn constructors_set_the_failure_type() {
        assert_eq!(
            DestinationError::config("x").failure_type,
            FailureType::ConfigError
        );
        assert_eq!(
            DestinationError::system("x").failure_type,
            FailureType::SystemError
        );
        assert_eq!(DestinationError::transient("boom").to_string(), "boom");
    }
}
