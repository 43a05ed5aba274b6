//! The real `airbyte-source-faker` from PyPI, piped into `airlock write`.
//!
//! `scripts/setup-python.sh` installs it into `.venv-faker`. Without it these tests
//! say they were skipped; under CI (`CI=true`) a missing faker is a failure.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::support::*;

fn faker_read(sb: &Sandbox, faker: &PathBuf, count: u64) -> Vec<u8> {
    let config = sb.file(
        "faker-config.json",
        json!({"count": count, "seed": 1}).to_string(),
    );
    let catalog = faker_samples().join("faker-configured-catalog.json");
    let output = Command::new(faker)
        .args([
            "read",
            "--config",
            config.to_str().unwrap(),
            "--catalog",
            catalog.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run source-faker");
    assert!(
        output.status.success(),
        "source-faker read failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Records per stream in faker output, counted independently of airlock.
fn count_records(output: &[u8]) -> std::collections::BTreeMap<String, u64> {
    let mut counts = std::collections::BTreeMap::new();
    for line in output.split(|b| *b == b'\n') {
        if let Ok(message) = serde_json::from_slice::<Value>(line)
            && message["type"] == "RECORD"
        {
            *counts
                .entry(
                    message["record"]["stream"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
                .or_insert(0) += 1;
        }
    }
    counts
}

#[test]
fn real_faker_into_local_json_round_trips() {
    let Some(faker) = faker_bin() else { return };
    let sb = Sandbox::new();
    let output = faker_read(&sb, &faker, 300);
    let expected = count_records(&output);
    assert_eq!(
        expected.len(),
        3,
        "faker emits products, users, purchases: {expected:?}"
    );

    let out = sb.path().join("out");
    let bin = plugin_bin("destination-local-json");
    let catalog = faker_samples().join("faker-configured-catalog.json");
    let run = sb.run(
        &[
            "write",
            "destination-local-json",
            "--config",
            &json!({"destination_path": out}).to_string(),
            "--catalog",
            catalog.to_str().unwrap(),
            "--source-name",
            "source-faker",
            "--json",
            "--local-executable",
            bin.to_str().unwrap(),
        ],
        Some(&output),
    );
    run.expect_code(0);
    let result = run.json();
    for (stream, count) in &expected {
        assert_eq!(
            stream_json(&result, stream)["sent"],
            *count,
            "{stream}: {result}"
        );
        assert_eq!(
            stream_json(&result, stream)["confirmed"],
            *count,
            "{stream}: {result}"
        );
        let file = std::fs::read_to_string(out.join(format!("_airbyte_raw_{stream}.jsonl")))
            .expect("file");
        assert_eq!(file.lines().count() as u64, *count, "{stream} rows on disk");
    }
    assert_eq!(result["states_sent"], result["states_confirmed"]);
    let stored = stored_states(&sb.state_db());
    assert_eq!(stored.len(), 3, "one state per stream: {stored:?}");
}

#[test]
fn real_faker_into_dev_null() {
    let Some(faker) = faker_bin() else { return };
    let sb = Sandbox::new();
    let output = faker_read(&sb, &faker, 100);
    let expected: u64 = count_records(&output).values().sum();
    let bin = plugin_bin("destination-dev-null");
    let catalog = faker_samples().join("faker-configured-catalog.json");
    let run = sb.run(
        &["write", "destination-dev-null", "--config", r#"{"test_destination":{"test_destination_type":"LOGGING","logging_config":{"logging_type":"FirstN","max_entry_count":5}}}"#,
          "--catalog", catalog.to_str().unwrap(), "--json", "--local-executable", bin.to_str().unwrap()],
        Some(&output),
    );
    run.expect_code(0);
    assert_eq!(run.json()["records_confirmed"], expected);
}
