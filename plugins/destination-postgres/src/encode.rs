//! `encode`: one record as one row of `COPY … FROM STDIN` text format. Each
//! value is checked against its column's type first: a value that does not
//! fit becomes NULL and is listed in `_airbyte_meta.changes`, as Airbyte
//! does, so a bad value never fails the COPY (and with it the sync).
//!
//! The record's data is read once, as raw JSON text per top-level field;
//! nothing builds a JSON tree on the common path.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::schema::{ColumnType, TableLayout};

/// Encodes the records of one stream.
#[derive(Debug)]
pub struct RowEncoder {
    /// The column index of each field.
    fields: HashMap<String, usize>,
    kinds: Vec<ColumnType>,
    names: Vec<String>,
    generation_id: i64,
    sync_id: i64,
    /// `_airbyte_meta` of a record with no changes, COPY-escaped.
    plain_meta: String,
    /// The data columns' text of the record being encoded, kept between
    /// records so that the hot path does not allocate it each time.
    values: String,
}

/// One change Airbyte records in `_airbyte_meta.changes`.
fn nulled(field: &str) -> Value {
    json!({"field": field, "change": "NULLED", "reason": "DESTINATION_SERIALIZATION_ERROR"})
}

impl RowEncoder {
    /// The encoder of `layout`'s rows.
    pub fn new(layout: &TableLayout, generation_id: i64, sync_id: i64) -> Self {
        let mut plain_meta = String::new();
        push_escaped(
            &mut plain_meta,
            &json!({"sync_id": sync_id, "changes": []}).to_string(),
        );
        Self {
            fields: layout
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| (c.field.clone(), i))
                .collect(),
            kinds: layout.columns.iter().map(|c| c.kind).collect(),
            names: layout.columns.iter().map(|c| c.field.clone()).collect(),
            generation_id,
            sync_id,
            plain_meta,
            values: String::new(),
        }
    }

    /// Appends the row of a record (`data` and `meta` as raw JSON text) to `out`,
    /// ending in `\n`. Returns how many values were nulled.
    pub fn encode(
        &mut self,
        raw_id: &str,
        emitted_at_ms: i64,
        data: &str,
        meta: Option<&str>,
        out: &mut String,
    ) -> usize {
        let mut slots: Vec<Option<&RawValue>> = vec![None; self.kinds.len()];
        let mut de = serde_json::Deserializer::from_str(data);
        // A record whose data is not an object has no fields to place:
        // every column is NULL.
        let _ = Slots {
            fields: &self.fields,
            slots: &mut slots,
        }
        .deserialize(&mut de);

        let mut changes: Vec<Value> = Vec::new();
        let mut values = std::mem::take(&mut self.values);
        values.clear();
        for (index, (slot, kind)) in slots.iter().zip(&self.kinds).enumerate() {
            values.push('\t');
            match slot {
                None => values.push_str("\\N"),
                Some(raw) if raw.get() == "null" => values.push_str("\\N"),
                Some(raw) => {
                    if !push_value(&mut values, *kind, raw.get()) {
                        values.push_str("\\N");
                        changes.push(nulled(&self.names[index]));
                    }
                }
            }
        }

        out.push_str(raw_id);
        out.push('\t');
        push_timestamp_ms(out, emitted_at_ms);
        out.push('\t');
        let source_changes = meta.and_then(|m| {
            serde_json::from_str::<Value>(m)
                .ok()?
                .get("changes")?
                .as_array()
                .cloned()
        });
        match source_changes {
            None if changes.is_empty() => out.push_str(&self.plain_meta),
            source => {
                let mut all = source.unwrap_or_default();
                all.extend(changes.iter().cloned());
                push_escaped(
                    out,
                    &json!({"sync_id": self.sync_id, "changes": all}).to_string(),
                );
            }
        }
        out.push('\t');
        out.push_str(&self.generation_id.to_string());
        out.push_str(&values);
        out.push('\n');
        self.values = values;
        changes.len()
    }
}

/// Places each top-level field's raw value in its column's slot.
struct Slots<'s, 'a> {
    fields: &'s HashMap<String, usize>,
    slots: &'s mut Vec<Option<&'a RawValue>>,
}

impl<'de: 'a, 'a> DeserializeSeed<'de> for Slots<'_, 'a> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for Slots<'_, 'a> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a record object")
    }
    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<(), M::Error> {
        while let Some(FieldName(name)) = map.next_key()? {
            match self.fields.get(name.as_ref()) {
                Some(&index) => self.slots[index] = Some(map.next_value()?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// A field name, borrowed from the input unless it holds escapes.
struct FieldName<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for FieldName<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = FieldName<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(FieldName(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(FieldName(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(NameVisitor)
    }
}

/// Appends `raw` (a non-null JSON value) as a `kind` column's COPY text.
/// Returns false, appending nothing, when it does not fit.
fn push_value(out: &mut String, kind: ColumnType, raw: &str) -> bool {
    match kind {
        ColumnType::BigInt => match integer(raw) {
            Some(n) => {
                out.push_str(&n.to_string());
                true
            }
            None => false,
        },
        ColumnType::Numeric => {
            if is_sane_number(raw) {
                out.push_str(raw);
                true
            } else {
                false
            }
        }
        ColumnType::Boolean => match raw {
            "true" => {
                out.push('t');
                true
            }
            "false" => {
                out.push('f');
                true
            }
            _ => false,
        },
        ColumnType::Text => {
            if raw.starts_with('"') {
                match serde_json::from_str::<Cow<'_, str>>(raw) {
                    Ok(text) if !text.contains('\0') => {
                        push_escaped(out, &text);
                        true
                    }
                    _ => false,
                }
            } else {
                // A number, boolean, object or array in a string column is
                // kept as its JSON text, as Airbyte keeps it.
                if !json_fits_postgres(raw) {
                    return false;
                }
                push_escaped(out, raw);
                true
            }
        }
        ColumnType::Date
        | ColumnType::Time
        | ColumnType::TimeTz
        | ColumnType::Timestamp
        | ColumnType::TimestampTz => {
            let Ok(text) = serde_json::from_str::<Cow<'_, str>>(raw) else {
                return false;
            };
            let valid = match kind {
                ColumnType::Date => is_date(&text),
                ColumnType::Time | ColumnType::TimeTz => is_time(&text),
                _ => is_timestamp(&text),
            };
            if valid {
                out.push_str(&text);
            }
            valid
        }
        ColumnType::Jsonb => {
            if !json_fits_postgres(raw) {
                return false;
            }
            push_escaped(out, raw);
            true
        }
    }
}

/// A JSON integer (or an integral float such as `3.0`) within `i64`.
fn integer(raw: &str) -> Option<i64> {
    if let Ok(n) = raw.parse::<i64>() {
        return Some(n);
    }
    if !raw.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        return None;
    }
    let f: f64 = raw.parse().ok()?;
    // i64::MAX as f64 rounds up to 2^63, which does not fit.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0; // 2^63
    (f.is_finite() && f.fract() == 0.0 && (-LIMIT..LIMIT).contains(&f)).then_some(f as i64)
}

/// A JSON number PostgreSQL's `numeric` takes: not absurdly long, and with an
/// exponent inside numeric's range.
fn is_sane_number(raw: &str) -> bool {
    if raw.len() > 1000 || !raw.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        return false;
    }
    if raw.parse::<f64>().is_err() {
        return false;
    }
    match raw.find(['e', 'E']) {
        Some(at) => raw[at + 1..]
            .parse::<i32>()
            .is_ok_and(|exp| exp.abs() <= 1000),
        None => true,
    }
}

/// JSON text that `jsonb` accepts: no `\u0000` and no lone surrogate, which
/// PostgreSQL refuses (and would fail the whole COPY for).
fn json_fits_postgres(raw: &str) -> bool {
    if !raw.contains("\\u") {
        return true;
    }
    let lower = raw.to_ascii_lowercase();
    if !lower.contains("\\u0000") && !lower.contains("\\ud") {
        return true;
    }
    // The rare path: look at the decoded strings.
    match serde_json::from_str::<Value>(raw) {
        Ok(value) => !holds_nul(&value),
        Err(_) => false,
    }
}

fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

/// Appends `text` escaped for COPY's text format.
pub fn push_escaped(out: &mut String, text: &str) {
    let mut rest = text;
    while let Some(at) = rest.find(['\\', '\t', '\n', '\r']) {
        out.push_str(&rest[..at]);
        out.push_str(match rest.as_bytes()[at] {
            b'\\' => "\\\\",
            b'\t' => "\\t",
            b'\n' => "\\n",
            _ => "\\r",
        });
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
}

/// Appends `ms` since the Unix epoch as an ISO timestamp in UTC.
pub fn push_timestamp_ms(out: &mut String, ms: i64) {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    use std::fmt::Write;
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{millis:03}+00",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    );
}

/// The proleptic Gregorian date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `digits` ASCII digits at the start of `s`, as a number, and the rest.
fn number(s: &str, digits: usize) -> Option<(u32, &str)> {
    let head = s.get(..digits)?;
    if !head.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((head.parse().ok()?, &s[digits..]))
}

/// `YYYY-MM-DD`, a real day of years 1–9999; returns what follows.
fn date_prefix(s: &str) -> Option<&str> {
    let (year, rest) = number(s, 4)?;
    let rest = rest.strip_prefix('-')?;
    let (month, rest) = number(rest, 2)?;
    let rest = rest.strip_prefix('-')?;
    let (day, rest) = number(rest, 2)?;
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    (year >= 1 && (1..=days_in_month).contains(&day)).then_some(rest)
}

/// `HH:MM[:SS[.fraction]]`; returns what follows.
fn time_prefix(s: &str) -> Option<&str> {
    let (hour, rest) = number(s, 2)?;
    let rest = rest.strip_prefix(':')?;
    let (minute, mut rest) = number(rest, 2)?;
    if hour > 23 || minute > 59 {
        return None;
    }
    if let Some(after) = rest.strip_prefix(':') {
        let (second, after) = number(after, 2)?;
        if second > 59 {
            return None;
        }
        rest = after;
        if let Some(fraction) = rest.strip_prefix('.') {
            let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 || digits > 9 {
                return None;
            }
            rest = &fraction[digits..];
        }
    }
    Some(rest)
}

/// Nothing, `Z`, or `±HH[[:]MM]`.
fn is_zone(s: &str) -> bool {
    if s.is_empty() || s == "Z" || s == "z" {
        return true;
    }
    let Some(rest) = s.strip_prefix(['+', '-']) else {
        return false;
    };
    let Some((hours, rest)) = number(rest, 2) else {
        return false;
    };
    let rest = rest.strip_prefix(':').unwrap_or(rest);
    hours <= 15
        && (rest.is_empty() || number(rest, 2).is_some_and(|(m, r)| m <= 59 && r.is_empty()))
}

fn is_date(s: &str) -> bool {
    date_prefix(s).is_some_and(str::is_empty)
}

fn is_time(s: &str) -> bool {
    time_prefix(s).is_some_and(is_zone)
}

fn is_timestamp(s: &str) -> bool {
    let Some(rest) = date_prefix(s) else {
        return false;
    };
    if rest.is_empty() {
        return true;
    }
    let Some(rest) = rest.strip_prefix(['T', 't', ' ']) else {
        return false;
    };
    time_prefix(rest).is_some_and(is_zone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_plugin_sdk::ConfiguredCatalog;

    fn layout(properties: Value) -> TableLayout {
        let catalog = json!({"streams": [{"stream": {"name": "s",
            "json_schema": {"type": "object", "properties": properties}},
            "destination_sync_mode": "append"}]});
        let catalog =
            ConfiguredCatalog::from_json(catalog.to_string().as_bytes()).expect("catalog");
        TableLayout::of(&catalog.streams[0], "public").expect("layout")
    }

    fn row(properties: Value, data: &str) -> (Vec<String>, usize) {
        let mut encoder = RowEncoder::new(&layout(properties), 7, 3);
        let mut out = String::new();
        let nulled = encoder.encode("id-1", 1_700_000_000_123, data, None, &mut out);
        let line = out.strip_suffix('\n').expect("a line");
        (line.split('\t').map(str::to_owned).collect(), nulled)
    }

    #[test]
    fn airbyte_columns_come_first() {
        let (fields, nulled) = row(json!({"id": {"type": "integer"}}), r#"{"id": 5}"#);
        assert_eq!(nulled, 0);
        assert_eq!(
            fields,
            [
                "id-1",
                "2023-11-14 22:13:20.123+00",
                r#"{"sync_id":3,"changes":[]}"#,
                "7",
                "5"
            ]
        );
    }

    #[test]
    fn values_that_do_not_fit_are_nulled_and_listed() {
        let properties = json!({
            "i": {"type": "integer"}, "n": {"type": "number"}, "b": {"type": "boolean"},
            "d": {"type": "string", "format": "date"},
            "t": {"type": "string", "format": "date-time"},
            "s": {"type": "string"}, "o": {"type": "object"}
        });
        let (fields, nulled) = row(
            properties,
            r#"{"i": "x", "n": "1.5", "b": 1, "d": "2021-02-30", "t": "yesterday", "s": "a\u0000b", "o": {"k": "\u0000"}}"#,
        );
        assert_eq!(nulled, 7);
        assert!(fields[4..].iter().all(|f| f == "\\N"), "{fields:?}");
        let meta: Value = serde_json::from_str(&fields[2]).expect("meta");
        assert_eq!(meta["changes"].as_array().map(Vec::len), Some(7));
        assert_eq!(
            meta["changes"][0]["reason"],
            "DESTINATION_SERIALIZATION_ERROR"
        );
    }

    #[test]
    fn good_values_are_written_in_copy_text() {
        let properties = json!({
            "i": {"type": "integer"}, "f": {"type": "integer"}, "n": {"type": "number"},
            "b": {"type": "boolean"}, "d": {"type": "string", "format": "date"},
            "t": {"type": "string", "format": "date-time"},
            "s": {"type": "string"}, "o": {"type": "object"}, "x": {"type": "string"}
        });
        let (fields, nulled) = row(
            properties,
            r#"{"i": -3, "f": 2.0, "n": 1.5e3, "b": true, "d": "2024-02-29",
               "t": "2009-04-17T11:37:40+00:00", "s": "tab\there\nback\\slash",
               "o": {"a": [1, "\t"]}, "x": 12}"#,
        );
        assert_eq!(nulled, 0);
        assert_eq!(
            &fields[4..],
            [
                "-3",
                "2",
                "1.5e3",
                "t",
                "2024-02-29",
                "2009-04-17T11:37:40+00:00",
                "tab\\there\\nback\\\\slash",
                r#"{"a": [1, "\\t"]}"#,
                "12"
            ]
        );
    }

    #[test]
    fn missing_fields_and_nulls_are_null_and_unknown_fields_are_dropped() {
        let (fields, nulled) = row(
            json!({"a": {"type": "integer"}, "b": {"type": "string"}}),
            r#"{"b": null, "zzz": {"deep": 1}}"#,
        );
        assert_eq!(nulled, 0);
        assert_eq!(&fields[4..], ["\\N", "\\N"]);
    }

    #[test]
    fn source_changes_are_kept_beside_ours() {
        let mut encoder = RowEncoder::new(&layout(json!({"i": {"type": "integer"}})), 0, 1);
        let mut out = String::new();
        encoder.encode(
            "r",
            0,
            r#"{"i": "bad"}"#,
            Some(r#"{"changes":[{"field":"x","change":"TRUNCATED","reason":"SOURCE_FIELD_SIZE_LIMITATION"}]}"#),
            &mut out,
        );
        let meta: Value =
            serde_json::from_str(out.split('\t').nth(2).expect("meta")).expect("json");
        assert_eq!(meta["changes"][0]["change"], "TRUNCATED");
        assert_eq!(meta["changes"][1]["field"], "i");
    }

    #[test]
    fn time_formats() {
        for good in [
            "2021-01-01",
            "2021-01-01T00:00:00Z",
            "2021-01-01 23:59:59.123456-07:00",
            "2000-02-29T12:00+0530",
        ] {
            assert!(is_timestamp(good), "{good}");
        }
        for bad in [
            "2021-13-01",
            "1900-02-29",
            "2021-01-01T24:00:00",
            "0000-01-01",
            "2021-1-1",
            "now",
            "2021-01-01T10:00:00+16:00",
        ] {
            assert!(!is_timestamp(bad), "{bad}");
        }
        assert!(is_time("10:20:30.5+02"));
        assert!(!is_time("10:61"));
        assert!(integer("9223372036854775807").is_some());
        assert!(integer("9223372036854775808").is_none());
        assert!(integer("1e400").is_none());
        assert!(!is_sane_number("1e100000"));
    }
}
