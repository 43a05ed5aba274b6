//! `products`: the fixed list of 100 cars of the Python connector
//! (`record_data/products.json`, embedded from `data/products.json`), each
//! pre-rendered once as JSON so a `products` RECORD only appends
//! `updated_at`. Products with `id <= count` are emitted, so the stream has
//! `min(count, 100)` records.

use serde_json::Value;

/// The embedded product list.
const PRODUCTS_JSON: &str = include_str!("../data/products.json");

/// One product, rendered.
#[derive(Debug, Clone)]
pub struct Product {
    /// The product id (1..=100).
    pub id: u64,
    /// The product's JSON object without its closing `}`: `{"id":1,...,
    /// "created_at":"..."`.
    open_json: Vec<u8>,
}

impl Product {
    /// Appends the `data` object: the product plus `updated_at`.
    #[inline]
    pub fn write(&self, buf: &mut Vec<u8>, updated_at: &[u8]) {
        buf.extend_from_slice(&self.open_json);
        buf.extend_from_slice(b",\"updated_at\":\"");
        buf.extend_from_slice(updated_at);
        buf.extend_from_slice(b"\"}");
    }
}

/// Parses the embedded product list (in file order). Fails only if the
/// embedded data is malformed.
pub fn load() -> Result<Vec<Product>, String> {
    let parsed: Value = serde_json::from_str(PRODUCTS_JSON)
        .map_err(|e| format!("embedded products are not JSON: {e}"))?;
    let items = parsed
        .as_array()
        .ok_or("embedded products are not a list")?;
    items
        .iter()
        .map(|p| {
            let id = p
                .get("id")
                .and_then(Value::as_u64)
                .ok_or_else(|| format!("embedded product without an integer id: {p}"))?;
            let mut open_json = serde_json::to_vec(p).map_err(|e| e.to_string())?;
            if open_json.pop() != Some(b'}') || open_json.len() < 2 {
                return Err(format!("embedded product is not an object: {p}"));
            }
            Ok(Product { id, open_json })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hundred_products_rendered_in_order() {
        let products = load().expect("embedded data");
        assert_eq!(products.len(), 100);
        assert!(
            products
                .iter()
                .enumerate()
                .all(|(i, p)| p.id == i as u64 + 1)
        );
        let mut buf = Vec::new();
        products[0].write(&mut buf, b"2026-11-25T09:57:48+00:00");
        assert_eq!(
            String::from_utf8(buf).expect("utf8"),
            "{\"id\":1,\"make\":\"Mazda\",\"model\":\"MX-5\",\"year\":2023,\"price\":15001,\
             \"created_at\":\"2024-04-08T18:07:20+00:00\",\"updated_at\":\"2026-11-25T09:57:48+00:00\"}"
        );
    }
}
