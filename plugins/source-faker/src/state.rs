//! `state`: the `--state` input, reduced to one JSON state per stream name.
//!
//! Accepted shapes (the Python CDK only takes the first one; the others are
//! taken gracefully here):
//! - a list of state messages, each `STREAM`
//!   (`{"type":"STREAM","stream":{"stream_descriptor":{"name":..},"stream_state":{..}}}`),
//!   `GLOBAL` (its `stream_states` are used, `shared_state` is ignored) or
//!   `LEGACY` (`{"type":"LEGACY","data":{"users":{..}}}`);
//! - one such message on its own;
//! - a bare legacy dict `{"users": {..}, "purchases": {..}}`;
//! - `null` or an empty file: no state.
//!
//! Streams are matched by name only (the faker's streams have no namespace).
//! When a stream appears more than once, the last state wins.

use serde_json::{Map, Value};

/// The incoming state, per stream name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IncomingState {
    streams: Vec<(String, Value)>,
}

/// The `stream_state` of a `{stream_descriptor, stream_state}` pair.
fn descriptor_state(entry: &Value, what: &str) -> Result<(String, Value), String> {
    let name = entry
        .get("stream_descriptor")
        .and_then(|d| d.get("name"))
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{what}: stream_descriptor.name is missing or not a string"))?;
    let state = match entry.get("stream_state") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(v) => v.clone(),
    };
    Ok((name.to_owned(), state))
}

impl IncomingState {
    /// No state: every stream starts from scratch.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Parses a `--state` document (see the module doc for the shapes).
    pub fn from_json(doc: &Value) -> Result<Self, String> {
        let mut out = Self::empty();
        match doc {
            Value::Null => {}
            Value::Array(messages) => {
                for (i, m) in messages.iter().enumerate() {
                    out.add_message(m, &format!("state[{i}]"))?;
                }
            }
            Value::Object(map) => {
                let is_message = map.contains_key("type")
                    || map.contains_key("stream")
                    || map.contains_key("global")
                    || (map.len() == 1 && map.get("data").is_some_and(Value::is_object));
                if is_message {
                    out.add_message(doc, "state")?;
                } else {
                    for (name, state) in map {
                        out.streams.push((name.clone(), state.clone()));
                    }
                }
            }
            other => {
                return Err(format!(
                    "the state must be a list of state messages or an object, not {other}"
                ));
            }
        }
        Ok(out)
    }

    /// Adds one state message.
    fn add_message(&mut self, m: &Value, what: &str) -> Result<(), String> {
        let obj = m
            .as_object()
            .ok_or_else(|| format!("{what} is not an object"))?;
        let kind = match obj.get("type") {
            Some(Value::String(t)) => t.as_str(),
            Some(Value::Null) | None if obj.contains_key("stream") => "STREAM",
            Some(Value::Null) | None if obj.contains_key("global") => "GLOBAL",
            Some(Value::Null) | None => "LEGACY",
            Some(other) => return Err(format!("{what}.type is not a string: {other}")),
        };
        match kind {
            "STREAM" => {
                let stream = obj
                    .get("stream")
                    .ok_or_else(|| format!("{what}: a STREAM state needs \"stream\""))?;
                self.streams.push(descriptor_state(stream, what)?);
            }
            "GLOBAL" => {
                let states = obj
                    .get("global")
                    .and_then(|g| g.get("stream_states"))
                    .and_then(Value::as_array)
                    .ok_or_else(|| format!("{what}: a GLOBAL state needs global.stream_states"))?;
                for s in states {
                    self.streams.push(descriptor_state(s, what)?);
                }
            }
            "LEGACY" => match obj.get("data") {
                Some(Value::Object(data)) => {
                    for (name, state) in data {
                        self.streams.push((name.clone(), state.clone()));
                    }
                }
                None | Some(Value::Null) => {}
                Some(_) => return Err(format!("{what}: LEGACY data is not an object")),
            },
            other => return Err(format!("{what}: unknown state type {other:?}")),
        }
        Ok(())
    }

    /// The state of `stream` (an empty object when there is none).
    pub fn get(&self, stream: &str) -> Value {
        self.streams
            .iter()
            .rev()
            .find(|(name, _)| name == stream)
            .map(|(_, s)| s.clone())
            .unwrap_or_else(|| Value::Object(Map::new()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn all_shapes() {
        let users = json!({"seed": 1, "updated_at": "x", "loop_offset": 5});
        let stream_list = json!([{"type": "STREAM", "stream": {
            "stream_descriptor": {"name": "users"}, "stream_state": users}}]);
        let legacy_dict = json!({"users": users});
        let legacy_msg = json!({"type": "LEGACY", "data": {"users": users}});
        let global = json!([{"type": "GLOBAL", "global": {"shared_state": {"a": 1},
            "stream_states": [{"stream_descriptor": {"name": "users"}, "stream_state": users}]}}]);
        for doc in [stream_list, legacy_dict, legacy_msg, global] {
            let s = IncomingState::from_json(&doc).expect("valid state");
            assert_eq!(s.get("users"), users);
            assert_eq!(s.get("products"), json!({}));
        }
        assert_eq!(
            IncomingState::from_json(&Value::Null),
            Ok(IncomingState::empty())
        );
        assert!(IncomingState::from_json(&json!(3)).is_err());
        assert!(IncomingState::from_json(&json!([{"type": "STREAM", "stream": {}}])).is_err());
    }
}
