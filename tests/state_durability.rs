//! A host killed at any point leaves the state database consistent, holding only
//! states the destination confirmed.

use std::time::Duration;

use serde_json::json;

use crate::support::*;

#[test]
fn killing_the_host_mid_write_leaves_a_consistent_state_database() {
    let sb = Sandbox::new();
    let bin = plugin_bin("destination-dev-null");
    let throttled =
        r#"{"test_destination":{"test_destination_type":"THROTTLED","millis_per_record":2}}"#;
    let mut input = Vec::new();
    for i in 0..2000 {
        input.push(record("users", json!({"id": i})));
        if i % 10 == 9 {
            input.push(state("users", i));
        }
    }
    let input_path = sb.file("input.jsonl", lines(&input));
    let catalog_json = catalog(&[("users", None)]);
    for delay_ms in [300u64, 700, 1200] {
        let mut cmd = sb.airlock();
        cmd.args([
            "write",
            "destination-dev-null",
            "--config",
            throttled,
            "--catalog",
            &catalog_json,
            "--input",
            input_path.to_str().unwrap(),
            "--state-db",
            sb.state_db().to_str().unwrap(),
            "--local-executable",
            bin.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
        let mut child = cmd.spawn().expect("spawn");
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().expect("SIGKILL the host");
        child.wait().expect("reap");

        let conn = rusqlite::Connection::open(sb.state_db()).expect("open");
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("integrity");
        assert_eq!(check, "ok");
        let stored = stored_states(&sb.state_db());
        assert!(stored.len() <= 1);
        if let Some((_, state)) = stored.first() {
            let cursor = state["stream"]["stream_state"]["cursor"]
                .as_i64()
                .expect("cursor");
            assert_eq!(cursor % 10, 9, "a state that was sent: {state}");
            assert!(
                state.get("destinationStats").is_some(),
                "only echoed states are stored: {state}"
            );
        }
    }
}
