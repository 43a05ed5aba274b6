//! `catalog`: the three streams the faker offers, the CATALOG that
//! `discover` prints (schemas embedded from `data/schemas/`, stream
//! metadata identical to the Python connector's), and the parsing of a
//! configured catalog into the list of streams to read, in catalog order.

use serde_json::{Map, Value, json};

/// One of the faker's streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FakerStream {
    /// `products`: the fixed list of 100 cars, capped at `count`.
    Products,
    /// `users`: `count` fake people with a nested address.
    Users,
    /// `purchases`: about one purchase per user (see `purchases`).
    Purchases,
}

impl FakerStream {
    /// Every stream, in the order `discover` lists them.
    pub const ALL: [FakerStream; 3] = [Self::Products, Self::Users, Self::Purchases];

    /// The stream name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Products => "products",
            Self::Users => "users",
            Self::Purchases => "purchases",
        }
    }

    /// The stream called `name`, if the faker has one.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The stream's JSON schema, as text.
    pub fn schema_text(self) -> &'static str {
        match self {
            Self::Products => include_str!("../data/schemas/products.json"),
            Self::Users => include_str!("../data/schemas/users.json"),
            Self::Purchases => include_str!("../data/schemas/purchases.json"),
        }
    }

    /// The stream as `discover` describes it.
    pub fn describe(self) -> Result<Value, String> {
        let schema: Value = serde_json::from_str(self.schema_text())
            .map_err(|e| format!("embedded schema of {} is not JSON: {e}", self.name()))?;
        Ok(json!({
            "name": self.name(),
            "json_schema": schema,
            "supported_sync_modes": ["full_refresh", "incremental"],
            "source_defined_cursor": true,
            "default_cursor_field": ["updated_at"],
            "source_defined_primary_key": [["id"]],
            "is_resumable": true,
        }))
    }
}

/// The CATALOG payload of `discover`: `{"streams": [...]}`.
pub fn discovered_catalog() -> Result<Value, String> {
    let streams = FakerStream::ALL
        .into_iter()
        .map(FakerStream::describe)
        .collect::<Result<Vec<_>, _>>()?;
    let mut catalog = Map::new();
    catalog.insert("streams".into(), Value::Array(streams));
    Ok(Value::Object(catalog))
}

/// Why a configured catalog cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogError {
    /// The catalog is not shaped like a configured catalog.
    Invalid(String),
    /// The catalog names a stream the faker does not have.
    UnknownStream(String),
}

/// The streams a configured catalog selects, in its order (duplicates are
/// kept: the Python CDK reads a stream listed twice twice).
pub fn configured_streams(catalog: &Value) -> Result<Vec<FakerStream>, CatalogError> {
    let streams = catalog
        .get("streams")
        .ok_or_else(|| CatalogError::Invalid("\"streams\" is a required property".into()))?
        .as_array()
        .ok_or_else(|| CatalogError::Invalid("\"streams\" is not of type \"array\"".into()))?;
    let mut out = Vec::with_capacity(streams.len());
    for (i, configured) in streams.iter().enumerate() {
        let name = configured
            .get("stream")
            .and_then(|s| s.get("name"))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                CatalogError::Invalid(format!(
                    "streams[{i}].stream.name is missing or not a string"
                ))
            })?;
        let stream =
            FakerStream::from_name(name).ok_or_else(|| CatalogError::UnknownStream(name.into()))?;
        out.push(stream);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_order_is_kept() {
        let cat = json!({"streams": [
            {"stream": {"name": "purchases"}, "sync_mode": "incremental"},
            {"stream": {"name": "users"}},
        ]});
        assert_eq!(
            configured_streams(&cat),
            Ok(vec![FakerStream::Purchases, FakerStream::Users])
        );
    }

    #[test]
    fn unknown_stream_is_an_error() {
        let cat =
            json!({"streams": [{"stream": {"name": "users"}}, {"stream": {"name": "bogus"}}]});
        assert_eq!(
            configured_streams(&cat),
            Err(CatalogError::UnknownStream("bogus".into()))
        );
        assert!(matches!(
            configured_streams(&json!({"foo": 1})),
            Err(CatalogError::Invalid(_))
        ));
    }
}
