use serde_json::{Value, json};

use super::*;

fn roundtrip(line: &str) -> AirbyteMessage {
    let message = parse_message(line.as_bytes()).expect("parses");
    let again: Value = serde_json::from_str(&message.to_line()).expect("re-serialises");
    let original: Value = serde_json::from_str(line).expect("json");
    assert_eq!(strip_nulls(original), again, "round trip of {line}");
    message
}

/// Explicit nulls read as absent, so they are not written back.
fn strip_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}

#[test]
fn every_message_type_round_trips_with_unknown_fields() {
    let lines = [
        r#"{"type":"RECORD","record":{"namespace":"ns","stream":"s","data":{"a":1},"emitted_at":5,"meta":{"changes":[{"field":"a","change":"NULLED","reason":"SOURCE_FIELD_SIZE_LIMITATION","z":1}]},"file_reference":{"staging_file_url":"/f","source_file_relative_path":"f","file_size_bytes":3},"future":[1]},"top":"level"}"#,
        r#"{"type":"STATE","state":{"type":"STREAM","stream":{"stream_descriptor":{"name":"s","namespace":"n"},"stream_state":{"c":1}},"sourceStats":{"recordCount":3.0},"destinationStats":{"recordCount":3.0,"rejectedRecordCount":0.0},"id":7}}"#,
        r#"{"type":"STATE","state":{"type":"GLOBAL","global":{"shared_state":{"lsn":9},"stream_states":[{"stream_descriptor":{"name":"a"},"stream_state":{"x":1}}]}}}"#,
        r#"{"type":"STATE","state":{"data":{"legacy":true}}}"#,
        r#"{"type":"LOG","log":{"level":"WARN","message":"m","stack_trace":"t"}}"#,
        r#"{"type":"TRACE","trace":{"type":"ERROR","emitted_at":1795600668302.398,"error":{"message":"m","internal_message":"i","stack_trace":"s","failure_type":"config_error","stream_descriptor":{"name":"s"}}}}"#,
        r#"{"type":"TRACE","trace":{"type":"ESTIMATE","emitted_at":1.5,"estimate":{"name":"s","type":"STREAM","namespace":"n","row_estimate":10,"byte_estimate":100}}}"#,
        r#"{"type":"TRACE","trace":{"type":"STREAM_STATUS","emitted_at":1.0,"stream_status":{"stream_descriptor":{"name":"s"},"status":"COMPLETE","reasons":[{"type":"RATE_LIMITED"}]}}}"#,
        r#"{"type":"TRACE","trace":{"type":"ANALYTICS","emitted_at":1.0,"analytics":{"type":"t","value":"v"}}}"#,
        r#"{"type":"CONTROL","control":{"type":"CONNECTOR_CONFIG","emitted_at":1.0,"connectorConfig":{"config":{"k":"v"}}}}"#,
        r#"{"type":"SPEC","spec":{"documentationUrl":"https://x","connectionSpecification":{"type":"object"},"supported_destination_sync_modes":["append","overwrite","append_dedup","update","soft_delete"],"supportsIncremental":true,"protocol_version":"0.18.0"}}"#,
        r#"{"type":"CONNECTION_STATUS","connectionStatus":{"status":"FAILED","message":"no"}}"#,
        r#"{"type":"CATALOG","catalog":{"streams":[{"name":"s","json_schema":{},"supported_sync_modes":["full_refresh","incremental"],"source_defined_cursor":true,"default_cursor_field":["u"],"source_defined_primary_key":[["id"]],"namespace":"n","is_resumable":true,"is_file_based":false}]}}"#,
        r#"{"type":"DESTINATION_CATALOG","destination_catalog":{"operations":[{"object_name":"o"}]}}"#,
    ];
    for line in lines {
        roundtrip(line);
    }
}

#[test]
fn record_count_is_written_with_a_decimal_point() {
    let m = roundtrip(
        r#"{"type":"STATE","state":{"type":"STREAM","stream":{"stream_descriptor":{"name":"s"}},"sourceStats":{"recordCount":3.0}}}"#,
    );
    assert!(
        m.to_line().contains(r#""recordCount":3.0"#),
        "{}",
        m.to_line()
    );
}

#[test]
fn explicit_nulls_parse_as_absent() {
    let m = parse_message(
        br#"{"type":"RECORD","log":null,"state":null,"record":{"namespace":null,"stream":"s","data":{},"emitted_at":1,"meta":null}}"#,
    )
    .expect("parses");
    let Payload::Record(r) = m.payload else {
        panic!("record")
    };
    assert_eq!(r.namespace, None);
    assert_eq!(r.meta, None);
    let m =
        parse_message(br#"{"type":"STATE","state":{"type":null,"data":{"a":1}}}"#).expect("state");
    let Payload::State(s) = m.payload else {
        panic!("state")
    };
    assert_eq!(s.effective_type(), StateType::Legacy);
}

#[test]
fn raw_utf8_and_escaped_line_separators_parse() {
    let line = "{\"type\":\"RECORD\",\"record\":{\"stream\":\"sp\u{e9}cial\",\"data\":{\"a\":\"x\\u2028y\\n\\r\",\"b\":\"raw\u{2028}sep\"},\"emitted_at\":1}}";
    let m = parse_message(line.as_bytes()).expect("parses");
    let Payload::Record(r) = &m.payload else {
        panic!("record")
    };
    assert_eq!(r.stream, "sp\u{e9}cial");
    assert_eq!(r.data["a"], json!("x\u{2028}y\n\r"));
    assert_eq!(r.data["b"], json!("raw\u{2028}sep"));
    assert!(matches!(
        peek_line(line.as_bytes()),
        LinePeek::Record { .. }
    ));
    // Serialising never splits a message across lines.
    assert!(!m.to_line().contains('\n'));
}

#[test]
fn peek_classifies_lines() {
    assert_eq!(peek_line(b""), LinePeek::Empty);
    assert_eq!(peek_line(b"  \r"), LinePeek::Empty);
    assert_eq!(
        peek_line(br#"{"type":"RECORD","record":{"stream":"s","namespace":"n","data":{"x":[1,{"y":2}]},"emitted_at":1}}"#),
        LinePeek::Record {
            stream: "s".into(),
            namespace: Some("n".into()),
            data: 63..80,
            meta: None,
            emitted_at: 1
        }
    );
    // The framing table's parts: data and meta ranges, emitted_at truncated.
    let line = br#"{"type":"RECORD","record":{"meta":{"changes":[]},"emitted_at":12.9,"stream":"s","data":{"a":"}"}}}"#;
    let LinePeek::Record {
        data,
        meta,
        emitted_at,
        ..
    } = peek_line(line)
    else {
        panic!("a record")
    };
    assert_eq!(&line[data], br#"{"a":"}"}"#);
    assert_eq!(&line[meta.expect("meta")], br#"{"changes":[]}"#);
    assert_eq!(emitted_at, 12);
    let null_meta =
        br#"{"type":"RECORD","record":{"stream":"s","data":{},"emitted_at":1,"meta":null}}"#;
    assert!(matches!(
        peek_line(null_meta),
        LinePeek::Record { meta: None, .. }
    ));
    assert_eq!(
        peek_line(br#"{"type":"STATE","state":{}}"#),
        LinePeek::Other(MessageType::State)
    );
    for bad in [
        &b"hello world"[..],
        br#"{"type":"NOPE"}"#,
        br#"{"type":"RECORD"}"#,
        br#"{"type":"RECORD","record":{"stream":"s","data":"not an object","emitted_at":1}}"#,
        br#"{"type":"RECORD","record":{"stream":5,"data":{},"emitted_at":1}}"#,
        br#"{"type":"RECORD","record":{"stream":"s","data":{}}}"#,
        br#"[1,2]"#,
        // Invalid UTF-8 where the peek does not decode: in skipped data, in an
        // unknown field (found by the `peek` fuzz target).
        b"{\"type\":\"RECORD\",\"record\":{\"stream\":\"s\",\"data\":{\"a\":\"\x8d\"},\"emitted_at\":1}}",
        b"{\"type\":\"RECORD\",\"record\":{\"stream\":\"s\",\"data\":{},\"emitted_at\":1,\"x\":\"\xff\"}}",
    ] {
        assert!(
            matches!(peek_line(bad), LinePeek::NotAMessage(_)),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn output_lines_that_are_not_messages_become_text() {
    assert_eq!(
        classify_output(b"Starting up..."),
        OutputLine::Text("Starting up...".into())
    );
    assert_eq!(classify_output(b""), OutputLine::Empty);
    assert!(matches!(
        classify_output(br#"{"type":"LOG","log":{"level":"INFO","message":"m"}}"#),
        OutputLine::Message(_)
    ));
}

#[tokio::test]
async fn line_reader_bounds_lines_and_keeps_going_line_by_line() {
    let input = b"short\n0123456789abcdef\nlast-no-newline".to_vec();
    let mut reader = LineReader::new(&input[..], 10);
    let mut buf = Vec::new();
    let r = reader
        .read_line_into(&mut buf)
        .await
        .expect("first")
        .expect("line");
    assert_eq!(&buf[r], b"short");
    let err = reader.read_line_into(&mut buf).await.expect_err("too long");
    assert!(
        matches!(
            err,
            FramingError::LineTooLong {
                line_number: 2,
                limit: 10
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("line limit"));
    assert_eq!(err.remedy(), Some(crate::remedy::Remedy::RaiseLineLimit));
}

#[tokio::test]
async fn line_reader_reads_a_final_line_without_newline() {
    let input = b"a\n\nb".to_vec();
    let mut reader = LineReader::new(tokio::io::BufReader::with_capacity(1, &input[..]), 100);
    let mut buf = Vec::new();
    let mut lines = Vec::new();
    while let Some(r) = reader.read_line_into(&mut buf).await.expect("reads") {
        lines.push(String::from_utf8(buf[r].to_vec()).expect("utf8"));
    }
    assert_eq!(lines, ["a", "", "b"]);
}

#[test]
fn faker_samples_parse() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/samples/airbyte-source-faker");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        panic!(
            "samples missing at {}: ../shared must sit beside the project",
            dir.display()
        )
    };
    let mut parsed = 0;
    for entry in entries {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            for line in std::fs::read_to_string(&path).expect("read").lines() {
                if line.starts_with('{') {
                    let message = roundtrip_value(line);
                    parsed += usize::from(message.is_some());
                }
            }
        }
    }
    assert!(parsed > 30, "parsed {parsed} sample messages");
    let catalog: ConfiguredAirbyteCatalog = serde_json::from_str(
        &std::fs::read_to_string(dir.join("faker-configured-catalog.json")).expect("catalog"),
    )
    .expect("configured catalog parses");
    assert_eq!(catalog.streams.len(), 3);
}

/// Parses a sample line and checks that re-serialising keeps every field.
fn roundtrip_value(line: &str) -> Option<AirbyteMessage> {
    let message = parse_message(line.as_bytes()).ok()?;
    let again: Value = serde_json::from_str(&message.to_line()).expect("json");
    let original: Value = serde_json::from_str(line).expect("json");
    assert_eq!(strip_nulls(original), again, "{line}");
    Some(message)
}
