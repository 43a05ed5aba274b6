//! The `destination-dev-null` binary, run the way a host runs it.

use std::io::Write;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_destination-dev-null");

#[test]
fn failing_mode_echoes_early_states_then_exits_1_with_a_trace_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.json");
    let catalog = dir.path().join("catalog.json");
    std::fs::write(
        &config,
        r#"{"test_destination":{"test_destination_type":"FAILING","num_messages":1}}"#,
    )
    .expect("write");
    std::fs::write(
        &catalog,
        r#"{"streams":[{"stream":{"name":"s"},"sync_mode":"full_refresh","destination_sync_mode":"append"}]}"#,
    )
    .expect("write");
    let record = r#"{"type":"RECORD","record":{"stream":"s","data":{},"emitted_at":1}}"#;
    let state = r#"{"type":"STATE","state":{"data":{}}}"#;
    let stdin = [record, state, record, state].join("\n");

    let mut child = Command::new(BIN)
        .arg("write")
        .arg("--config")
        .arg(&config)
        .arg("--catalog")
        .arg(&catalog)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    // A destination may exit before reading it all: a closed pipe is fine.
    if let Err(e) = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
    {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
    }
    let output = child.wait_with_output().expect("wait");

    assert_eq!(output.status.code(), Some(1));
    let lines: Vec<serde_json::Value> = String::from_utf8(output.stdout)
        .expect("utf8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["state"]["destinationStats"]["recordCount"], 1.0);
    assert_eq!(lines[1]["trace"]["error"]["failure_type"], "system_error");
}
