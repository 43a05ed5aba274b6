//! [`SecretMask`]: the values of a connector's secret config fields, and the one
//! place text from or about that connector is masked before airlock prints,
//! returns or keeps it.
//!
//! A value is secret when its property is marked `airbyte_secret: true` anywhere in
//! the connector's spec (inside `oneOf`/`anyOf`, in arrays). The mask is shared:
//! configs a connector replaces through CONTROL messages add their secrets to it
//! while the run goes on.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, RwLock};

use serde_json::Value;

/// What a masked secret is replaced with.
pub const MASK: &str = "**********";

/// Every secret any mask of this process holds, for output that no single run
/// owns (the CLI's tracing output, which also carries other crates' events).
static EVERY_SECRET: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// `text` with every secret known to this process masked: what the CLI passes
/// its log output through, so even a dependency's debug event cannot show one.
pub fn mask_known_secrets(text: &str) -> Cow<'_, str> {
    let every = EVERY_SECRET.read().unwrap_or_else(|p| p.into_inner());
    if !every.iter().any(|n| text.contains(n.as_str())) {
        return Cow::Borrowed(text);
    }
    let mut out = text.to_owned();
    for needle in every.iter() {
        out = out.replace(needle.as_str(), MASK);
    }
    Cow::Owned(out)
}

/// Secrets shorter than this many characters are not searched for in free text:
/// a one- or two-letter password would mask every "a" or "is" in a log. They are
/// still masked wherever airlock prints a config itself ([`super::redact`]).
pub const MIN_MASKED_CHARS: usize = 4;

#[derive(Default)]
struct Inner {
    /// The property names marked secret in the spec.
    fields: BTreeSet<String>,
    /// The texts to mask, longest first (a secret that contains another is
    /// replaced whole). Each value's JSON-escaped spelling is kept beside it.
    needles: Vec<String>,
    /// Secrets too short to be masked in free text, by field name.
    too_short: BTreeSet<String>,
}

/// The secret values of one connector's config, shared by everything that handles
/// that connector's output. Cloning shares it; `Debug` never shows a value.
#[derive(Clone, Default)]
pub struct SecretMask {
    inner: Arc<RwLock<Inner>>,
}

impl fmt::Debug for SecretMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.read();
        f.debug_struct("SecretMask")
            .field("fields", &inner.fields)
            .field("values", &inner.needles.len())
            .finish()
    }
}

impl SecretMask {
    /// A mask with nothing to hide.
    pub fn none() -> Self {
        Self::default()
    }

    /// The mask for `config`, a config of a connector whose
    /// `connectionSpecification` is `spec_schema`.
    pub fn new(spec_schema: &Value, config: &Value) -> Self {
        let mask = Self::default();
        {
            let mut inner = mask.write();
            inner.fields = super::secret_fields(spec_schema);
        }
        mask.add_config(config);
        mask
    }

    /// The mask for `connector`'s `config` from its spec, when it could be had;
    /// else one that guesses secret fields by name ([`SecretMask::guessed`]). Warns
    /// about secrets too short to be masked in free text.
    pub fn for_connector<E: fmt::Display>(
        connector: &str,
        spec: Result<&crate::protocol::ConnectorSpecification, E>,
        config: &Value,
    ) -> Self {
        let mask = match spec {
            Ok(spec) => Self::new(&spec.connection_specification, config),
            Err(error) => {
                tracing::warn!(
                    "{connector}: its spec could not be read ({error}); secrets in its output are \
                     masked by field name (password, token, secret, key) only"
                );
                Self::guessed(config)
            }
        };
        for field in mask.too_short() {
            tracing::warn!(
                "{connector}: the secret `{field}` is shorter than {MIN_MASKED_CHARS} characters; \
                 airlock masks it in configs it shows, but cannot mask it in the connector's own \
                 messages without masking ordinary words"
            );
        }
        mask
    }

    /// A mask that guesses secret fields by name (password, secret, token, key,
    /// credentials), for when the connector's spec cannot be had.
    pub fn guessed(config: &Value) -> Self {
        let mut fields = BTreeSet::new();
        guess_fields(config, &mut fields);
        let mask = Self::default();
        mask.write().fields = fields;
        mask.add_config(config);
        mask
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds the secret values of `config` (e.g. one a connector set through a
    /// CONTROL message) to the mask.
    pub fn add_config(&self, config: &Value) {
        let mut found = Vec::new();
        {
            let inner = self.read();
            collect_secrets(config, &inner.fields, None, &mut found);
        }
        for (field, value) in found {
            self.add_value(&field, &value);
        }
    }

    /// Adds one secret text, found in field `field`.
    pub fn add_value(&self, field: &str, value: &str) {
        let mut inner = self.write();
        if value.chars().count() < MIN_MASKED_CHARS {
            if !value.is_empty() {
                inner.too_short.insert(field.to_owned());
            }
            return;
        }
        let quoted = serde_json::to_string(value).unwrap_or_default();
        let escaped = quoted
            .strip_prefix('"')
            .and_then(|q| q.strip_suffix('"'))
            .unwrap_or(value);
        for needle in [value, escaped] {
            if !needle.is_empty() && !inner.needles.iter().any(|n| n == needle) {
                inner.needles.push(needle.to_owned());
            }
        }
        inner
            .needles
            .sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        let mut every = EVERY_SECRET.write().unwrap_or_else(|p| p.into_inner());
        for needle in &inner.needles {
            if !every.contains(needle) {
                every.push(needle.clone());
            }
        }
        every.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    }

    /// `callback` (called with a config a connector replaced its own with), after
    /// the new config's secrets are added to this mask.
    pub fn tracking(
        &self,
        callback: Arc<dyn Fn(&Value) + Send + Sync>,
    ) -> Arc<dyn Fn(&Value) + Send + Sync> {
        let mask = self.clone();
        Arc::new(move |config: &Value| {
            mask.add_config(config);
            callback(config);
        })
    }

    /// Whether there is nothing to mask.
    pub fn is_empty(&self) -> bool {
        self.read().needles.is_empty()
    }

    /// The names of secret fields whose values are too short to be masked in free
    /// text (see [`MIN_MASKED_CHARS`]).
    pub fn too_short(&self) -> Vec<String> {
        self.read().too_short.iter().cloned().collect()
    }

    /// `text` with every secret replaced by [`MASK`].
    pub fn mask<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let inner = self.read();
        if inner.needles.is_empty() || !inner.needles.iter().any(|n| text.contains(n.as_str())) {
            return Cow::Borrowed(text);
        }
        let mut out = text.to_owned();
        for needle in &inner.needles {
            if out.contains(needle.as_str()) {
                out = out.replace(needle.as_str(), MASK);
            }
        }
        Cow::Owned(out)
    }

    /// [`SecretMask::mask`] in place.
    pub fn mask_in_place(&self, text: &mut String) {
        if let Cow::Owned(masked) = self.mask(text) {
            *text = masked;
        }
    }

    /// Masks every string inside `value` (keys too).
    pub fn mask_value(&self, value: &mut Value) {
        if self.is_empty() {
            return;
        }
        match value {
            Value::String(s) => self.mask_in_place(s),
            Value::Array(items) => items.iter_mut().for_each(|v| self.mask_value(v)),
            Value::Object(map) => {
                let entries = std::mem::take(map);
                for (key, mut v) in entries {
                    self.mask_value(&mut v);
                    map.insert(self.mask(&key).into_owned(), v);
                }
            }
            _ => {}
        }
    }
}

/// Pushes (field, text) for every scalar under a secret field of `value`.
fn collect_secrets(
    value: &Value,
    fields: &BTreeSet<String>,
    under: Option<&str>,
    out: &mut Vec<(String, String)>,
) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                let under = if fields.contains(key) {
                    Some(key.as_str())
                } else {
                    under
                };
                collect_secrets(v, fields, under, out);
            }
        }
        Value::Array(items) => items
            .iter()
            .for_each(|v| collect_secrets(v, fields, under, out)),
        Value::String(s) => {
            if let Some(field) = under {
                out.push((field.to_owned(), s.clone()));
            }
        }
        Value::Number(n) => {
            if let Some(field) = under {
                out.push((field.to_owned(), n.to_string()));
            }
        }
        Value::Bool(_) | Value::Null => {}
    }
}

/// Field names that look like they hold secrets.
/// Parts of a field name that say it holds a secret.
pub const SECRET_HINTS: [&str; 7] = [
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "private_key",
];

pub(super) fn guess_fields(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                let lower = key.to_ascii_lowercase();
                if SECRET_HINTS.iter().any(|h| lower.contains(h)) || lower == "credentials" {
                    out.insert(key.clone());
                }
                guess_fields(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| guess_fields(v, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec() -> Value {
        json!({
            "type": "object",
            "properties": {
                "host": {"type": "string"},
                "password": {"type": "string", "airbyte_secret": true},
                "tunnel": {"oneOf": [
                    {"properties": {"method": {"const": "NONE"}}},
                    {"properties": {"ssh_key": {"type": "string", "airbyte_secret": true}}}
                ]},
                "keys": {"type": "array", "items": {"type": "object", "properties": {
                    "token": {"type": "string", "airbyte_secret": true}}}},
                "pin": {"type": "integer", "airbyte_secret": true},
                "short": {"type": "string", "airbyte_secret": true}
            }
        })
    }

    fn config() -> Value {
        json!({
            "host": "db.internal",
            "password": "hunter2-hunter2",
            "tunnel": {"ssh_key": "-----BEGIN KEY-----\nabc\"def"},
            "keys": [{"token": "tok-one"}, {"token": "tok-two"}],
            "pin": 987654,
            "short": "ab"
        })
    }

    #[test]
    fn every_secret_at_any_depth_is_masked_in_text() {
        let mask = SecretMask::new(&spec(), &config());
        let text = "login hunter2-hunter2 with tok-one, tok-two and pin 987654 on db.internal";
        assert_eq!(
            mask.mask(text),
            "login ********** with **********, ********** and pin ********** on db.internal"
        );
        // The JSON-escaped spelling of a secret (as in a logged JSON config) too.
        let logged = serde_json::to_string(&config()).expect("json");
        let masked = mask.mask(&logged);
        assert!(!masked.contains("BEGIN KEY"), "{masked}");
        assert!(masked.contains("db.internal"));
    }

    #[test]
    fn short_secrets_are_not_searched_for_but_are_reported() {
        let mask = SecretMask::new(&spec(), &config());
        assert_eq!(mask.mask("a cab for ab"), "a cab for ab");
        assert_eq!(mask.too_short(), vec!["short".to_owned()]);
    }

    #[test]
    fn configs_from_control_messages_add_their_secrets() {
        let mask = SecretMask::new(&spec(), &config());
        mask.add_config(&json!({"password": "rotated-secret"}));
        assert_eq!(mask.mask("now rotated-secret"), "now **********");
        assert_eq!(mask.mask("then hunter2-hunter2"), "then **********");
    }

    #[test]
    fn debug_never_shows_a_value() {
        let mask = SecretMask::new(&spec(), &config());
        let shown = format!("{mask:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn values_are_masked_inside_json() {
        let mask = SecretMask::new(&spec(), &config());
        let mut value = json!({"message": "bad password hunter2-hunter2", "n": [ "tok-two" ]});
        mask.mask_value(&mut value);
        assert_eq!(
            value,
            json!({"message": "bad password **********", "n": ["**********"]})
        );
    }

    #[test]
    fn without_a_spec_likely_fields_are_guessed() {
        let mask = SecretMask::guessed(
            &json!({"db": {"Password": "guess-me-1"}, "api_token": "tk-12345", "host": "h1234"}),
        );
        assert_eq!(
            mask.mask("guess-me-1 tk-12345 h1234"),
            "********** ********** h1234"
        );
    }
}
