//! Bad input from users, catalogs and connectors: each is a clear error or a log
//! line, and no confirmed state is lost.

use serde_json::json;

use crate::support::*;

const SILENT: &str = r#"{"test_destination":{"test_destination_type":"SILENT"}}"#;

fn write_dev_null(sb: &Sandbox, input: &[u8], catalog_json: &str, extra: &[&str]) -> Run {
    let bin = plugin_bin("destination-dev-null");
    let db = sb.state_db();
    let mut args = vec![
        "write",
        "destination-dev-null",
        "--config",
        SILENT,
        "--catalog",
        catalog_json,
        "--json",
        "--state-db",
        db.to_str().unwrap(),
        "--local-executable",
        bin.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    sb.run(&args, Some(input))
}

#[test]
fn malformed_lines_wrong_types_and_unknown_types_are_logged_and_skipped() {
    let sb = Sandbox::new();
    let input = lines(&[
        record("users", json!({"id": 1})),
        "this is not json".into(),
        r#"{"type":"RECORD","record":{"stream":"users","data":"not an object","emitted_at":1}}"#
            .into(),
        r#"{"type":"RECORD","record":{"stream":7,"data":{},"emitted_at":1}}"#.into(),
        r#"{"type":"WHATEVER","whatever":{}}"#.into(),
        r#"{"type":"STATE","state":{"type":"STREAM","stream":"not an object"}}"#.into(),
        String::new(),
        record("users", json!({"id": 2})),
        state("users", 2),
    ]);
    let run = write_dev_null(&sb, &input, &catalog(&[("users", None)]), &[]);
    run.expect_code(0);
    let result = run.json();
    assert_eq!(result["records_sent"], 2);
    assert_eq!(result["records_confirmed"], 2);
    assert_eq!(result["lines_skipped"], 5, "{result}");
    assert!(
        run.stderr
            .contains("input line 2 is not an Airbyte message"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("unknown variant `WHATEVER`"),
        "{}",
        run.stderr
    );
}

#[test]
fn records_of_streams_not_in_the_catalog_are_reported_not_sent() {
    let sb = Sandbox::new();
    let input = lines(&[
        record("users", json!({})),
        record("ghosts", json!({})),
        record("ghosts", json!({})),
        state("users", 1),
    ]);
    let run = write_dev_null(&sb, &input, &catalog(&[("users", None)]), &[]);
    run.expect_code(0);
    let result = run.json();
    assert_eq!(result["records_sent"], 1);
    assert_eq!(result["records_skipped"], 2);
    assert!(
        run.stderr
            .contains("stream ghosts is not in the configured catalog"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_bad_catalog_or_config_is_a_usage_error() {
    let sb = Sandbox::new();
    let run = write_dev_null(&sb, b"", r#"{"streams":[{"stream":{"name":"x"}}]}"#, &[]);
    run.expect_code(2);
    assert!(run.stderr.contains("not a valid catalog"), "{}", run.stderr);

    let bin = plugin_bin("destination-dev-null");
    let run = sb.run(
        &[
            "write",
            "destination-dev-null",
            "--config",
            r#"{"test_destination":{"test_destination_type":"NOPE"}}"#,
            "--catalog",
            &catalog(&[("users", None)]),
            "--local-executable",
            bin.to_str().unwrap(),
        ],
        Some(b""),
    );
    run.expect_code(2);
    assert!(run.stderr.contains("/test_destination"), "{}", run.stderr);
}

#[test]
fn a_missing_executable_is_named() {
    let sb = Sandbox::new();
    let run = sb.run(
        &[
            "spec",
            "destination-x",
            "--local-executable",
            "/nonexistent/destination-x",
        ],
        None,
    );
    run.expect_code(2);
    assert!(
        run.stderr.contains("/nonexistent/destination-x not found"),
        "{}",
        run.stderr
    );
    let run = sb.run(&["spec", "destination-nowhere-to-be-found"], None);
    run.expect_code(2);
    assert!(
        run.stderr.contains("tried:") && run.stderr.contains("on PATH"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_line_over_the_limit_is_a_clear_error_not_an_allocation() {
    let sb = Sandbox::new();
    let big = record("users", json!({"blob": "x".repeat(5000)}));
    let input = lines(&[
        record("users", json!({})),
        state("users", 1),
        big,
        record("users", json!({})),
    ]);
    let run = write_dev_null(
        &sb,
        &input,
        &catalog(&[("users", None)]),
        &["--max-line-bytes", "1000"],
    );
    run.expect_code(2);
    assert!(
        run.stderr
            .contains("line 3 is longer than the 1000-byte line limit"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("--max-line-bytes"), "{}", run.stderr);
}

#[test]
fn a_destination_that_crashes_mid_stream_keeps_the_confirmed_states() {
    let sb = Sandbox::new();
    let bin = plugin_bin("destination-dev-null");
    let mut input = Vec::new();
    for i in 0..10 {
        input.push(record("users", json!({"id": i})));
        input.push(state("users", i));
    }
    let failing = r#"{"test_destination":{"test_destination_type":"FAILING","num_messages":5}}"#;
    let run = sb.run(
        &[
            "write",
            "destination-dev-null",
            "--config",
            failing,
            "--catalog",
            &catalog(&[("users", None)]),
            "--json",
            "--local-executable",
            bin.to_str().unwrap(),
        ],
        Some(&lines(&input)),
    );
    run.expect_code(1);
    assert!(
        run.stderr
            .contains("destination-dev-null failed: exit code 1"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("failure_type: system_error"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("last log lines"), "{}", run.stderr);
    let partial = run.json();
    let confirmed = partial["records_confirmed"].as_u64().expect("count");
    assert!((1..=5).contains(&confirmed), "{partial}");
    let stored = stored_states(&sb.state_db());
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0].1["stream"]["stream_state"]["cursor"].as_u64(),
        Some(confirmed - 1),
        "the stored state is the last confirmed one"
    );
}

/// A Python destination that echoes states as `mode` says.
fn scripted_destination(sb: &Sandbox, mode: &str) -> std::path::PathBuf {
    sb.script(
        "dest.py",
        &format!(
            r#"#!/usr/bin/env python3
import json, sys
mode = "{mode}"
if sys.argv[1] == "spec":
    print(json.dumps({{"type": "SPEC", "spec": {{"connectionSpecification": {{"type": "object"}}}}}}))
    sys.exit(0)
states = []
for line in sys.stdin:
    msg = json.loads(line)
    if msg["type"] == "STATE":
        states.append(msg)
        if mode == "in_order":
            print(json.dumps(msg), flush=True)
if mode == "never_sent":
    states[0]["state"]["stream"]["stream_state"] = {{"cursor": 999}}
    for s in states:
        print(json.dumps(s), flush=True)
if mode == "reversed":
    for s in reversed(states):
        print(json.dumps(s), flush=True)
"#
        ),
    )
}

#[test]
fn a_state_the_destination_never_received_stops_the_write() {
    let sb = Sandbox::new();
    let fake = scripted_destination(&sb, "never_sent");
    let input = lines(&[
        record("users", json!({})),
        state("users", 1),
        record("users", json!({})),
        state("users", 2),
    ]);
    let run = sb.run(
        &[
            "write",
            "d",
            "--config",
            "{}",
            "--catalog",
            &catalog(&[("users", None)]),
            "--local-executable",
            fake.to_str().unwrap(),
            "--state-db",
            sb.state_db().to_str().unwrap(),
        ],
        Some(&input),
    );
    run.expect_code(1);
    assert!(
        run.stderr.contains("echoed a state it never received"),
        "{}",
        run.stderr
    );
    assert!(
        stored_states(&sb.state_db()).is_empty(),
        "nothing unconfirmed is stored"
    );
}

#[test]
fn states_echoed_out_of_order_stop_the_write_and_keep_what_was_confirmed() {
    let sb = Sandbox::new();
    let fake = scripted_destination(&sb, "reversed");
    let input = lines(&[
        record("users", json!({})),
        state("users", 1),
        record("users", json!({})),
        state("users", 2),
    ]);
    let run = sb.run(
        &[
            "write",
            "d",
            "--config",
            "{}",
            "--catalog",
            &catalog(&[("users", None)]),
            "--local-executable",
            fake.to_str().unwrap(),
            "--state-db",
            sb.state_db().to_str().unwrap(),
            "--json",
        ],
        Some(&input),
    );
    run.expect_code(1);
    assert!(run.stderr.contains("out of order"), "{}", run.stderr);
    // The echo of state 2 came first: it covers state 1 too, and is kept.
    let stored = stored_states(&sb.state_db());
    assert_eq!(stored[0].1["stream"]["stream_state"]["cursor"], 2);
    assert_eq!(run.json()["records_confirmed"], 2);
}
