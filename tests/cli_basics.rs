//! spec, check and write through the CLI into the native plugins.

use serde_json::json;

use crate::support::*;

#[test]
fn spec_prints_the_plugins_json_schema() {
    let sb = Sandbox::new();
    for plugin in ["destination-dev-null", "destination-local-json"] {
        let bin = plugin_bin(plugin);
        let run = sb.run(
            &["spec", plugin, "--local-executable", bin.to_str().unwrap()],
            None,
        );
        run.expect_code(0);
        let spec: serde_json::Value = serde_json::from_str(&run.stdout).expect("spec JSON");
        assert_eq!(
            spec["connectionSpecification"]["type"], "object",
            "{plugin}"
        );
        assert!(
            jsonschema::validator_for(&spec["connectionSpecification"]).is_ok(),
            "{plugin}: spec is a valid schema"
        );
    }
}

#[test]
fn check_succeeds_fails_and_refuses_invalid_configs() {
    let sb = Sandbox::new();
    let bin = plugin_bin("destination-local-json");
    let exe = bin.to_str().unwrap();
    let out = sb.path().join("out");
    let good = json!({"destination_path": out}).to_string();
    sb.run(
        &[
            "check",
            "destination-local-json",
            "--config",
            &good,
            "--local-executable",
            exe,
        ],
        None,
    )
    .expect_code(0);

    // A config the spec rejects never reaches the connector: exit 2, the path named.
    let run = sb.run(
        &[
            "check",
            "destination-local-json",
            "--config",
            r#"{"destination_path": 5}"#,
            "--local-executable",
            exe,
        ],
        None,
    );
    run.expect_code(2);
    assert!(run.stderr.contains("/destination_path"), "{}", run.stderr);

    // A config that is valid but unusable: the connector says FAILED, exit 1.
    let blocked = sb.file("blocker", "a file, not a folder");
    let bad = json!({"destination_path": blocked.join("sub")}).to_string();
    let run = sb.run(
        &[
            "check",
            "destination-local-json",
            "--config",
            &bad,
            "--local-executable",
            exe,
            "--json",
        ],
        None,
    );
    run.expect_code(1);
    assert_eq!(run.json()["status"], "FAILED", "{}", run.stdout);
}

#[test]
fn write_into_local_json_produces_airbytes_format_and_persists_states() {
    let sb = Sandbox::new();
    let bin = plugin_bin("destination-local-json");
    let out = sb.path().join("out");
    let config = json!({"destination_path": out}).to_string();
    let input = lines(&[
        record("users", json!({"id": 1, "name": "a\nb\r\u{2028}c"})),
        record("users", json!({"id": 2})),
        state("users", 2),
        record("users", json!({"id": 3})),
        state("users", 3),
    ]);
    let run = sb.run(
        &[
            "write",
            "destination-local-json",
            "--config",
            &config,
            "--catalog",
            &catalog(&[("users", None)]),
            "--json",
            "--local-executable",
            bin.to_str().unwrap(),
        ],
        Some(&input),
    );
    run.expect_code(0);
    let result = run.json();
    assert_eq!(result["records_sent"], 3);
    assert_eq!(result["records_confirmed"], 3);
    assert_eq!(result["states_sent"], 2);
    assert_eq!(result["states_confirmed"], 2);
    assert_eq!(
        stream_json(&result, "users"),
        json!({"name": "users", "sent": 3, "confirmed": 3, "reported_by_destination": 3}),
        "local-json reports destinationStats, and they agree"
    );
    assert!(result.get("warnings").is_none(), "{result}");

    let written =
        std::fs::read_to_string(out.join("_airbyte_raw_users.jsonl")).expect("output file");
    let rows: Vec<serde_json::Value> = written
        .lines()
        .map(|l| serde_json::from_str(l).expect("row"))
        .collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["_airbyte_data"]["name"], "a\nb\r\u{2028}c");
    assert_eq!(rows[0]["_airbyte_emitted_at"], 1_700_000_000_000i64);
    assert_eq!(rows[0]["_airbyte_ab_id"].as_str().map(str::len), Some(36));

    let stored = stored_states(&sb.state_db());
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].1["stream"]["stream_state"]["cursor"], 3);
    assert_eq!(
        stored[0].1["destinationStats"]["recordCount"], 1.0,
        "the destination's count is kept"
    );
}

#[test]
fn the_human_summary_lists_streams_and_counts() {
    let sb = Sandbox::new();
    let bin = plugin_bin("destination-dev-null");
    let input = lines(&[
        record("a", json!({})),
        record("b", json!({})),
        state("b", 1),
    ]);
    let run = sb.run(
        &[
            "write",
            "destination-dev-null",
            "--config",
            r#"{"test_destination":{"test_destination_type":"SILENT"}}"#,
            "--catalog",
            &catalog(&[("a", None), ("b", None)]),
            "--local-executable",
            bin.to_str().unwrap(),
        ],
        Some(&input),
    );
    run.expect_code(0);
    assert!(
        run.stdout.contains("2 records sent, 2 confirmed"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("a: 1 sent, 1 confirmed"),
        "{}",
        run.stdout
    );
}

#[test]
fn secrets_are_never_printed() {
    let sb = Sandbox::new();
    // A destination whose spec marks `password` secret, and which fails check.
    let spec = json!({"type":"SPEC","spec":{"connectionSpecification":{"type":"object","properties":{"password":{"type":"string","airbyte_secret":true,"minLength":20}}}}});
    let fake = sb.script(
        "dest.sh",
        &format!("#!/bin/sh\nif [ \"$1\" = spec ]; then echo '{spec}'; fi\n"),
    );
    let run = sb.run(
        &[
            "check",
            "d",
            "--config",
            r#"{"password":"hunter2-secret"}"#,
            "--local-executable",
            fake.to_str().unwrap(),
        ],
        None,
    );
    run.expect_code(2);
    assert!(run.stderr.contains("/password"), "{}", run.stderr);
    assert!(
        !run.stderr.contains("hunter2") && !run.stdout.contains("hunter2"),
        "{}",
        run.stderr
    );
}

#[test]
fn local_root_maps_slash_local_and_refuses_escapes() {
    let sb = Sandbox::new();
    let bin = plugin_bin("destination-local-json");
    let root = sb.path().join("root");
    std::fs::create_dir_all(&root).expect("root");
    let exe = bin.to_str().unwrap();
    let root_arg = root.to_str().unwrap();
    let input = lines(&[record("users", json!({"id": 1})), state("users", 1)]);
    sb.run(
        &[
            "write",
            "destination-local-json",
            "--config",
            r#"{"destination_path":"/local/json_data"}"#,
            "--catalog",
            &catalog(&[("users", None)]),
            "--local-root",
            root_arg,
            "--local-executable",
            exe,
        ],
        Some(&input),
    )
    .expect_code(0);
    assert!(
        root.join("json_data/_airbyte_raw_users.jsonl").is_file(),
        "written under the local root"
    );

    let run = sb.run(
        &[
            "check",
            "destination-local-json",
            "--config",
            r#"{"destination_path":"/local/../../etc"}"#,
            "--local-root",
            root_arg,
            "--local-executable",
            exe,
            "--json",
        ],
        None,
    );
    run.expect_code(1);
    assert!(
        run.stdout.contains("/local"),
        "the refusal names the rule: {}",
        run.stdout
    );
}
