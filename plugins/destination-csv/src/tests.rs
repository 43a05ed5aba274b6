//! Unit tests of the CSV destination, run through the SDK's
//! [`WriteSession`] as a host would.

use super::*;
use std::fs;
use std::path::Path;

use airlock_plugin_sdk::{FailureType, WriteSession};
use serde_json::json;

/// A catalog of `(name, namespace, destination_sync_mode)` streams.
fn catalog(streams: &[(&str, Option<&str>, &str)]) -> ConfiguredCatalog {
    let streams: Vec<Value> = streams
        .iter()
        .map(|(name, namespace, mode)| {
            json!({"stream": {"name": name, "namespace": namespace, "json_schema": {}},
                   "sync_mode": "full_refresh", "destination_sync_mode": mode})
        })
        .collect();
    serde_json::from_value(json!({ "streams": streams })).expect("catalog")
}

fn users(mode: &str) -> ConfiguredCatalog {
    catalog(&[("users", None, mode)])
}

fn record(stream: &str, namespace: Option<&str>, data: &Value) -> String {
    json!({"type": "RECORD", "record": {"stream": stream, "namespace": namespace, "data": data, "emitted_at": 7}})
        .to_string()
}

fn complete(stream: &str) -> String {
    json!({"type": "TRACE", "trace": {"type": "STREAM_STATUS", "emitted_at": 1.0,
           "stream_status": {"stream_descriptor": {"name": stream}, "status": "COMPLETE"}}})
    .to_string()
}

fn config(folder: &Path) -> Value {
    json!({ "destination_path": folder.to_str().expect("utf8 path") })
}

/// Runs `lines` through the CSV destination; returns the output lines.
fn run(config: &Value, catalog: &ConfiguredCatalog, lines: &[String]) -> Vec<Value> {
    let mut session = WriteSession::open(&Csv, config, catalog, &Context::native()).expect("open");
    let mut out = Vec::new();
    for line in lines {
        session.push_line(line.as_bytes(), &mut out).expect("line");
    }
    session.finish(&mut out).expect("finish");
    out.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("JSON line"))
        .collect()
}

/// Writes `data` records to `users` and completes the stream.
fn write_users(folder: &Path, mode: &str, data: &[Value]) {
    let mut lines: Vec<String> = data.iter().map(|d| record("users", None, d)).collect();
    lines.push(complete("users"));
    run(&config(folder), &users(mode), &lines);
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Parses RFC 4180 text into rows of fields; every row ends with `\n`.
fn parse_csv(text: &str, delimiter: char) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, c) if c == delimiter => row.push(std::mem::take(&mut field)),
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(
        row.is_empty() && field.is_empty() && !quoted,
        "text ends mid-row"
    );
    rows
}

fn field(text: &[u8], delimiter: u8) -> String {
    let mut line = Vec::new();
    push_field(&mut line, text, delimiter);
    String::from_utf8(line).expect("utf8")
}

#[test]
fn fields_are_quoted_only_when_rfc_4180_needs_it() {
    assert_eq!(field(b"plain", b','), "plain");
    assert_eq!(field(b"", b','), "");
    assert_eq!(field(b"a,b", b','), r#""a,b""#);
    assert_eq!(field(b"a,b", b';'), "a,b");
    assert_eq!(field(b"a;b", b';'), r#""a;b""#);
    assert_eq!(field(b"a\tb", b'\t'), "\"a\tb\"");
    assert_eq!(field(br#"say "hi""#, b','), r#""say ""hi""""#);
    assert_eq!(field(br#"""#, b','), r#""""""#);
    assert_eq!(field(b"line\nbreak", b','), "\"line\nbreak\"");
    assert_eq!(field(b"cr\r", b','), "\"cr\r\"");
    // U+2028 is no line break to CSV.
    assert_eq!(field("sep\u{2028}".as_bytes(), b','), "sep\u{2028}");
}

#[test]
fn rows_carry_id_time_and_data_and_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = [
        json!({"a": "x,y", "b": "say \"hi\"", "c": "line\nbreak\r", "d": "sep\u{2028}"}),
        json!({"n": 1}),
        json!("just a string"),
        json!(42),
    ];
    write_users(dir.path(), "overwrite", &data);
    let rows = parse_csv(&read(&dir.path().join("_airbyte_raw_users.csv")), ',');
    assert_eq!(
        rows[0],
        ["_airbyte_ab_id", "_airbyte_emitted_at", "_airbyte_data"]
    );
    assert_eq!(rows.len(), 1 + data.len());
    for (row, expected) in rows[1..].iter().zip(&data) {
        assert_eq!(row.len(), 3, "{row:?}");
        let id = uuid::Uuid::parse_str(&row[0]).expect("a uuid");
        assert_eq!(id.get_version_num(), 4);
        assert_eq!(row[1], "7");
        let parsed: Value = serde_json::from_str(&row[2]).expect("data is JSON text");
        assert_eq!(&parsed, expected);
    }
    let ids: std::collections::HashSet<&String> = rows[1..].iter().map(|r| &r[0]).collect();
    assert_eq!(ids.len(), data.len(), "ids are unique");
}

#[test]
fn data_is_copied_as_received_and_a_row_is_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    // JSON allows a raw carriage return between tokens; the escaped line
    // break inside the string stays escaped.
    let line = "{\"type\":\"RECORD\",\"record\":{\"stream\":\"users\",\"data\":{\"a\":\"x\\ny\",\r\"b\" : 1},\"emitted_at\":7}}";
    run(&config(dir.path()), &users("append"), &[line.to_string()]);
    let text = read(&dir.path().join("_airbyte_raw_users.csv"));
    assert_eq!(text.matches('\n').count(), 2, "{text:?}");
    let rows = parse_csv(&text, ',');
    assert_eq!(rows[1][2], "{\"a\":\"x\\ny\",\r\"b\" : 1}");
}

#[test]
fn emitted_at_is_written_in_whole_milliseconds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lines = [
        r#"{"type":"RECORD","record":{"stream":"users","data":{},"emitted_at":1700000000123.9}}"#,
        r#"{"type":"RECORD","record":{"stream":"users","data":{},"emitted_at":-5}}"#,
    ]
    .map(String::from);
    run(&config(dir.path()), &users("append"), &lines);
    let rows = parse_csv(&read(&dir.path().join("_airbyte_raw_users.csv")), ',');
    assert_eq!(rows[1][1], "1700000000123");
    assert_eq!(rows[2][1], "-5");
}

#[test]
fn the_header_is_written_once_across_append_runs_and_an_overwrite_replaces() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("_airbyte_raw_users.csv");
    write_users(dir.path(), "append", &[json!({"n": 1})]);
    write_users(dir.path(), "append", &[json!({"n": 2}), json!({"n": 3})]);
    let text = read(&path);
    assert_eq!(text.matches("_airbyte_ab_id").count(), 1, "{text}");
    assert_eq!(parse_csv(&text, ',').len(), 4);

    write_users(dir.path(), "overwrite", &[json!({"n": 4})]);
    let rows = parse_csv(&read(&path), ',');
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0][0], "_airbyte_ab_id");
    assert_eq!(rows[1][2], r#"{"n":4}"#);

    // An empty append run adds nothing, not even a header.
    write_users(dir.path(), "append", &[]);
    assert_eq!(parse_csv(&read(&path), ',').len(), 2);
}

#[test]
fn the_header_is_written_once_after_recovering_a_killed_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("_airbyte_raw_users.csv");
    write_users(dir.path(), "append", &[json!({"n": 1})]);
    // A run killed mid-row left its temp file behind.
    fs::write(
        dir.path()
            .join("_airbyte_tmp_abcdefghijkl__airbyte_raw_users.csv"),
        format!("{HEADER}\nid-2,7,\"{{\"\"n\"\":2}}\"\nid-3,7,\"{{\"\"n"),
    )
    .expect("orphan");
    write_users(dir.path(), "append", &[json!({"n": 4})]);
    let rows = parse_csv(&read(&path), ',');
    let data: Vec<&str> = rows.iter().map(|r| r[2].as_str()).collect();
    assert_eq!(
        data,
        ["_airbyte_data", r#"{"n":1}"#, r#"{"n":2}"#, r#"{"n":4}"#]
    );
    assert_eq!(
        fs::read_dir(dir.path()).expect("list").count(),
        1,
        "only the final file is left"
    );
}

#[test]
fn states_are_echoed_once_the_rows_are_in_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = users("append");
    let mut session =
        WriteSession::open(&Csv, &config(dir.path()), &catalog, &Context::native()).expect("open");
    let mut out = Vec::new();
    session
        .push_line(record("users", None, &json!({"n": 1})).as_bytes(), &mut out)
        .expect("record");
    session
        .push_line(br#"{"type":"STATE","state":{"data":{"at":1}}}"#, &mut out)
        .expect("state");
    assert!(String::from_utf8_lossy(&out).contains(r#""recordCount":1.0"#));
    let temp = fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").path())
        .find(|p| p.to_string_lossy().contains("_airbyte_tmp_"))
        .expect("a staged file");
    assert!(read(&temp).contains(r#"{""n"":1}"#));
    session.finish(&mut out).expect("finish");
}

#[test]
fn namespaced_streams_go_to_a_subfolder_named_after_the_namespace() {
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = catalog(&[
        ("users", None, "append"),
        ("users", Some("crm"), "append"),
        ("users", Some("Sales Team"), "append"),
    ]);
    let lines = [
        record("users", None, &json!({"at": "root"})),
        record("users", Some("crm"), &json!({"at": "crm"})),
        record("users", Some("Sales Team"), &json!({"at": "sales"})),
    ];
    run(&config(dir.path()), &catalog, &lines);
    for (file, at) in [
        ("_airbyte_raw_users.csv", "root"),
        ("crm/_airbyte_raw_users.csv", "crm"),
        ("Sales_Team/_airbyte_raw_users.csv", "sales"),
    ] {
        let rows = parse_csv(&read(&dir.path().join(file)), ',');
        assert_eq!(rows.len(), 2, "{file}");
        assert_eq!(rows[1][2], format!(r#"{{"at":"{at}"}}"#), "{file}");
    }
}

#[test]
fn delimiters_follow_airbytes_config() {
    let ctx = Context::native();
    let delimiter = |choice: Value| {
        Settings::read(
            &json!({"destination_path": "/x", "delimiter_type": choice}),
            &ctx,
        )
        .map(|s| s.delimiter)
    };
    for (escaped, byte) in [
        ("\\u002c", b','),
        ("\\u003b", b';'),
        ("\\u007c", b'|'),
        ("\\u0009", b'\t'),
        ("\\u0020", b' '),
        (",", b','),
        (";", b';'),
        ("\t", b'\t'),
        ("pipe", b'|'),
    ] {
        assert_eq!(
            delimiter(json!({"delimiter": escaped})),
            Ok(byte),
            "{escaped}"
        );
    }
    assert_eq!(delimiter(json!(null)), Ok(b','));
    assert_eq!(delimiter(json!({})), Ok(b','));
    let error = delimiter(json!({"delimiter": "#"})).expect_err("refused");
    assert_eq!(error.failure_type, FailureType::ConfigError);
    assert!(error.message.contains("\\u003b"), "{}", error.message);
    assert!(delimiter(json!({"delimiter": 44})).is_err());
    assert!(delimiter(json!("\\u002c")).is_err());
}

#[test]
fn another_delimiter_changes_the_header_and_the_quoting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = json!({"destination_path": dir.path().to_str().expect("utf8"),
                        "delimiter_type": {"delimiter": "\\u003b"}});
    run(
        &config,
        &users("append"),
        &[
            record("users", None, &json!({"a": "x;y"})),
            record("users", None, &json!({"a": 1, "b": 2})),
        ],
    );
    let text = read(&dir.path().join("_airbyte_raw_users.csv"));
    assert!(
        text.starts_with("_airbyte_ab_id;_airbyte_emitted_at;_airbyte_data\n"),
        "{text}"
    );
    assert!(text.contains(r#";7;"{""a"":""x;y""}""#), "{text}");
    assert!(
        text.contains(r#";7;"{""a"":1,""b"":2}""#),
        "quotes force quoting: {text}"
    );
    let rows = parse_csv(&text, ';');
    assert_eq!(rows[2][2], r#"{"a":1,"b":2}"#);
}

#[test]
fn check_creates_the_folder_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let folder = dir.path().join("a/b");
    assert_eq!(Csv.check(&config(&folder), &Context::native()), Ok(()));
    assert!(folder.is_dir());
    assert_eq!(fs::read_dir(&folder).expect("list").count(), 0);
}

#[test]
fn check_and_open_refuse_bad_configs() {
    let ctx = Context::native();
    assert!(
        Csv.check(&json!({}), &ctx)
            .expect_err("missing")
            .contains("destination_path is required")
    );
    assert!(
        Csv.check(&json!({"destination_path": 7}), &ctx)
            .expect_err("not a string")
            .contains("must be a string")
    );
    let sandbox = Context::sandboxed("/tmp/airlock-csv-test-root/local");
    let escape = Csv
        .check(&json!({"destination_path": "/local/../../etc"}), &sandbox)
        .expect_err("escape");
    assert!(escape.contains("inside /local"), "{escape}");
    let error = Csv
        .open(&json!({}), &users("append"), &ctx)
        .err()
        .expect("refused");
    assert_eq!(error.failure_type, FailureType::ConfigError);
}

#[test]
fn sandboxed_paths_are_resolved_under_the_local_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctx = Context::sandboxed(dir.path());
    let catalog = users("append");
    let mut session = WriteSession::open(
        &Csv,
        &json!({"destination_path": "/csv_data"}),
        &catalog,
        &ctx,
    )
    .expect("open");
    let mut out = Vec::new();
    session
        .push_line(record("users", None, &json!({})).as_bytes(), &mut out)
        .expect("record");
    session.finish(&mut out).expect("finish");
    assert!(dir.path().join("csv_data/_airbyte_raw_users.csv").is_file());
}

#[test]
fn spec_is_a_draft_07_schema_with_the_delimiter_choices() {
    let spec = Csv.spec();
    assert_eq!(
        spec["supported_destination_sync_modes"],
        json!(["overwrite", "append"])
    );
    let schema = &spec["connectionSpecification"];
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    assert_eq!(schema["type"], "object");
    assert_eq!(schema["required"], json!(["destination_path"]));
    let properties = schema["properties"].as_object().expect("properties");
    assert!(properties.contains_key("destination_path"));
    let choices: Vec<&str> = schema["properties"]["delimiter_type"]["oneOf"]
        .as_array()
        .expect("oneOf")
        .iter()
        .map(|choice| {
            assert_eq!(choice["type"], "object");
            assert_eq!(choice["required"], json!(["delimiter"]));
            choice["properties"]["delimiter"]["const"]
                .as_str()
                .expect("const")
        })
        .collect();
    let expected: Vec<&str> = DELIMITERS.iter().map(|(_, escaped, _)| *escaped).collect();
    assert_eq!(choices, expected);
    for choice in choices {
        assert!(parse_delimiter(choice).is_some(), "{choice}");
    }
}
