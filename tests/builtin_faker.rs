//! The built-in `source-faker` (our Rust port, run as a sandboxed WASI command):
//! its catalog and records against the real connector's samples, and the
//! incremental round trip of `airlock sync` with nothing installed.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::support::*;

fn sync(sb: &Sandbox, config: Value, extra: &[&str]) -> Run {
    sync_to_local_json(sb, &["source-faker"], &config.to_string(), extra)
}

/// The field names and JSON types of a record's data.
fn shape(data: &Value) -> BTreeMap<String, &'static str> {
    data.as_object()
        .expect("object")
        .iter()
        .map(|(k, v)| {
            let kind = match v {
                Value::Null => "null",
                Value::Bool(_) => "boolean",
                Value::Number(n) if n.is_f64() => "number",
                Value::Number(_) => "integer",
                Value::String(_) => "string",
                Value::Array(_) => "array",
                Value::Object(_) => "object",
            };
            (k.clone(), kind)
        })
        .collect()
}

#[test]
fn the_builtin_faker_has_the_real_catalog_and_record_shapes() {
    let sb = Sandbox::new();
    let config = sb.file("c.json", r#"{"count": 10, "seed": 1}"#);
    let run = sb.run(
        &[
            "discover",
            "source-faker",
            "--config",
            config.to_str().unwrap(),
        ],
        None,
    );
    run.expect_code(0);
    let ours: Value = serde_json::from_str(run.stdout.trim()).expect("catalog json");
    let real: Value = std::fs::read_to_string(faker_samples().join("faker-discover.jsonl"))
        .expect("sample")
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|m| m["type"] == "CATALOG")
        .expect("sample catalog")["catalog"]
        .clone();
    let ours = if ours["type"] == "CATALOG" {
        ours["catalog"].clone()
    } else {
        ours
    };
    assert_eq!(ours, real, "the same catalog as airbyte-source-faker 7.2.1");

    // Records land with the real connector's fields and types, per stream.
    sync(&sb, json!({"count": 10, "seed": 1}), &[]).expect_code(0);
    let samples = std::fs::read_to_string(faker_samples().join("faker-read-record-examples.jsonl"))
        .expect("record samples");
    for sample in samples
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
    {
        let stream = sample["record"]["stream"]
            .as_str()
            .expect("stream")
            .to_owned();
        let path = sb
            .path()
            .join(format!("root/out/_airbyte_raw_{stream}.jsonl"));
        let rows = std::fs::read_to_string(&path).expect("rows");
        let row: Value = serde_json::from_str(rows.lines().next().expect("a row")).expect("json");
        let (ours, theirs) = (
            shape(&row["_airbyte_data"]),
            shape(&sample["record"]["data"]),
        );
        // Optional fields (purchased_at, returned_at) are left out when absent, as the
        // real connector does: compare the fields both have, and require every
        // field of ours to exist in the real one's schema.
        for (field, kind) in &theirs {
            if let Some(our_kind) = ours.get(field) {
                assert_eq!(our_kind, kind, "{stream}.{field}");
            }
        }
        for field in ours.keys() {
            assert!(
                theirs.contains_key(field) || field.ends_with("_at"),
                "{stream}.{field} is not a field of the real faker"
            );
        }
    }
}

#[test]
fn a_sync_from_the_builtin_faker_needs_nothing_installed_and_resumes() {
    let sb = Sandbox::new();
    let config = json!({"count": 120, "seed": 7, "always_updated": false});
    let first = sync(&sb, config.clone(), &[]);
    first.expect_code(0);
    let first = first.json();
    assert_eq!(first["resumed_from_state"], false);
    assert_eq!(stream_json(&first, "users")["confirmed"], 120, "{first}");
    assert_eq!(stream_json(&first, "products")["confirmed"], 100, "{first}");
    assert_eq!(
        first["records_confirmed"], first["records_read"],
        "everything read was confirmed: {first}"
    );

    // Incremental: the state goes back to the source; nothing is new.
    let second = sync(&sb, config.clone(), &[]);
    second.expect_code(0);
    let second = second.json();
    assert_eq!(second["resumed_from_state"], true);
    assert_eq!(second["records_read"], 0, "{second}");
    assert_eq!(second["records_sent"], 0, "{second}");

    // The same without the cache: the destination-confirmed state is used.
    let third = sync(&sb, config.clone(), &["--no-cache"]);
    third.expect_code(0);
    assert_eq!(third.json()["records_sent"], 0, "{}", third.stdout);

    // always_updated (the default) re-emits every user with a newer updated_at.
    let updated = sync(
        &sb,
        json!({"count": 120, "seed": 7}),
        &["--streams", "users"],
    );
    updated.expect_code(0);
    assert_eq!(stream_json(&updated.json(), "users")["sent"], 120);
}
