//! `command`: the I/O-free halves of Airbyte's `spec` and `check` commands,
//! and the configuration parsing shared with `write`. Every entry point (the
//! native CLI, a WASM component export) calls these and only moves bytes.

use crate::message::{write_connection_status, write_spec};
use crate::{Context, Destination, DestinationError};

/// Appends the SPEC line of `dest` to `out`.
pub fn spec<D: Destination + ?Sized>(dest: &D, out: &mut Vec<u8>) {
    write_spec(out, &dest.spec());
}

/// The ConnectorSpecification of `dest` as JSON text: the payload of the
/// SPEC message, without the message around it (what the component's
/// `spec` export returns).
pub fn spec_json<D: Destination + ?Sized>(dest: &D) -> String {
    dest.spec().to_string()
}

/// Runs `check` on the configuration text `config_json` and appends the
/// CONNECTION_STATUS line to `out`. An unparsable configuration is reported
/// as FAILED, like any other bad configuration.
pub fn check<D: Destination + ?Sized>(
    dest: &D,
    config_json: &[u8],
    ctx: &Context,
    out: &mut Vec<u8>,
) {
    write_connection_status(out, &check_status(dest, config_json, ctx));
}

/// Runs `check` on the configuration text `config_json`: `Ok(message)` for
/// SUCCEEDED, `Err(message)` for FAILED (see
/// [`Destination::check_with_message`]). An unparsable configuration is a
/// FAILED status, like any other bad configuration.
pub fn check_status<D: Destination + ?Sized>(
    dest: &D,
    config_json: &[u8],
    ctx: &Context,
) -> Result<Option<String>, String> {
    parse_config(config_json)
        .map_err(|e| e.message)
        .and_then(|config| dest.check_with_message(&config, ctx))
}

/// Parses a configuration: it must be a JSON object.
///
/// # Errors
///
/// A [`FailureType::ConfigError`](crate::FailureType::ConfigError) when the
/// text is not JSON or not an object.
pub fn parse_config(config_json: &[u8]) -> Result<serde_json::Value, DestinationError> {
    let config: serde_json::Value = serde_json::from_slice(config_json).map_err(|e| {
        DestinationError::config(format!("the configuration is not valid JSON: {e}"))
    })?;
    if !config.is_object() {
        return Err(DestinationError::config(
            "the configuration must be a JSON object",
        ));
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ConfiguredCatalog, RecordWriter};
    use serde_json::{Value, json};

    struct NeedsName;
    impl Destination for NeedsName {
        fn spec(&self) -> Value {
            json!({"connectionSpecification": {"type": "object"}})
        }
        fn check(&self, config: &Value, _ctx: &Context) -> Result<(), String> {
            match config.get("name") {
                Some(Value::String(_)) => Ok(()),
                _ => Err("name is required".into()),
            }
        }
        fn open(
            &self,
            _config: &Value,
            _catalog: &ConfiguredCatalog,
            _ctx: &Context,
        ) -> Result<Box<dyn RecordWriter>, DestinationError> {
            Err(DestinationError::system("not used"))
        }
    }

    fn status(config: &[u8]) -> Value {
        let mut out = Vec::new();
        check(&NeedsName, config, &Context::native(), &mut out);
        assert_eq!(out.last(), Some(&b'\n'));
        serde_json::from_slice(&out).expect("one JSON line")
    }

    #[test]
    fn spec_wraps_the_specification() {
        let mut out = Vec::new();
        spec(&NeedsName, &mut out);
        let line: Value = serde_json::from_slice(&out).expect("JSON");
        assert_eq!(line["type"], "SPEC");
        assert_eq!(line["spec"]["connectionSpecification"]["type"], "object");
    }

    #[test]
    fn spec_json_is_the_bare_specification() {
        let spec: Value = serde_json::from_str(&spec_json(&NeedsName)).expect("JSON");
        assert_eq!(spec, json!({"connectionSpecification": {"type": "object"}}));
    }

    #[test]
    fn check_status_is_the_result_without_the_message() {
        let ctx = Context::native();
        assert_eq!(check_status(&NeedsName, br#"{"name":"x"}"#, &ctx), Ok(None));
        assert_eq!(
            check_status(&NeedsName, b"{}", &ctx),
            Err("name is required".to_string())
        );
        assert!(check_status(&NeedsName, b"nope", &ctx).is_err());
    }

    /// A destination whose successful check says something.
    struct Chatty;
    impl Destination for Chatty {
        fn spec(&self) -> Value {
            json!({})
        }
        fn check(&self, config: &Value, ctx: &Context) -> Result<(), String> {
            self.check_with_message(config, ctx).map(|_| ())
        }
        fn check_with_message(
            &self,
            _config: &Value,
            _ctx: &Context,
        ) -> Result<Option<String>, String> {
            Ok(Some("all good".into()))
        }
        fn open(
            &self,
            _config: &Value,
            _catalog: &ConfiguredCatalog,
            _ctx: &Context,
        ) -> Result<Box<dyn RecordWriter>, DestinationError> {
            Err(DestinationError::system("not used"))
        }
    }

    #[test]
    fn a_success_message_is_passed_on() {
        let mut out = Vec::new();
        check(&Chatty, b"{}", &Context::native(), &mut out);
        let line: Value = serde_json::from_slice(&out).expect("JSON");
        assert_eq!(
            line["connectionStatus"],
            json!({"status":"SUCCEEDED","message":"all good"})
        );
    }

    #[test]
    fn check_reports_success_and_failure() {
        assert_eq!(
            status(br#"{"name":"x"}"#)["connectionStatus"],
            json!({"status":"SUCCEEDED"})
        );
        assert_eq!(
            status(b"{}")["connectionStatus"],
            json!({"status":"FAILED","message":"name is required"})
        );
    }

    #[test]
    fn unparsable_or_non_object_configs_fail_the_check() {
        let broken = status(b"{not json");
        assert_eq!(broken["connectionStatus"]["status"], "FAILED");
        assert!(
            broken["connectionStatus"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("not valid JSON"))
        );
        let array = status(b"[1]");
        assert_eq!(
            array["connectionStatus"]["message"],
            "the configuration must be a JSON object"
        );
    }
}
