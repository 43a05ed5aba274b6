//! The `destination-local-json` binary, run by hand the way a host runs it:
//! arguments, files, standard input and output, exit status.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_destination-local-json");

const CATALOG: &str = r#"{"streams":[{"stream":{"name":"users","json_schema":{}},"sync_mode":"full_refresh","destination_sync_mode":"overwrite"}]}"#;

/// Runs the binary with `args` in `dir`, `AIRLOCK_LOCAL_ROOT` set to
/// `local_root` when given; returns exit status and stdout lines.
fn run(dir: &Path, local_root: Option<&Path>, args: &[&str], stdin: &str) -> (i32, Vec<Value>) {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .current_dir(dir)
        .env_remove("AIRLOCK_LOCAL_ROOT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(root) = local_root {
        command.env("AIRLOCK_LOCAL_ROOT", root);
    }
    let mut child = command.spawn().expect("spawn");
    // A destination that refuses its config exits without reading: a closed pipe is fine.
    if let Err(e) = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
    {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
    }
    let output = child.wait_with_output().expect("wait");
    let lines = String::from_utf8(output.stdout)
        .expect("utf8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("stdout lines are JSON"))
        .collect();
    (output.status.code().expect("exit code"), lines)
}

#[test]
fn spec_check_and_write_by_hand() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let config = json!({"destination_path": out.to_str().expect("utf8")}).to_string();
    std::fs::write(dir.path().join("config.json"), config).expect("write");
    std::fs::write(dir.path().join("catalog.json"), CATALOG).expect("write");

    let (code, lines) = run(dir.path(), None, &["spec"], "");
    assert_eq!(code, 0);
    assert_eq!(lines[0]["type"], "SPEC");

    let (code, lines) = run(dir.path(), None, &["check", "--config", "config.json"], "");
    assert_eq!(code, 0);
    assert_eq!(
        lines,
        [json!({"type":"CONNECTION_STATUS","connectionStatus":{"status":"SUCCEEDED"}})]
    );

    let stdin = concat!(
        r#"{"type":"RECORD","record":{"stream":"users","data":{"a":1},"emitted_at":1}}"#,
        "\nnot json\n",
        r#"{"type":"STATE","state":{"type":"STREAM","stream":{"stream_descriptor":{"name":"users"},"stream_state":{"c":1}}}}"#,
        "\n",
    );
    let args = [
        "write",
        "--config",
        "config.json",
        "--catalog",
        "catalog.json",
    ];
    let (code, lines) = run(dir.path(), None, &args, stdin);
    assert_eq!(code, 0);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["log"]["level"], "WARN");
    assert_eq!(
        lines[1]["state"]["destinationStats"]["recordCount"],
        json!(1.0)
    );
    let written = std::fs::read_to_string(out.join("_airbyte_raw_users.jsonl")).expect("read");
    assert!(written.ends_with(concat!(
        r#","_airbyte_emitted_at":1,"_airbyte_data":{"a":1}}"#,
        "\n"
    )));

    let (code, _) = run(dir.path(), None, &["write", "--config", "config.json"], "");
    assert_eq!(code, 2, "usage error");
}

#[test]
fn a_local_root_sandboxes_the_destination_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("local");
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"destination_path":"/json_data"}"#,
    )
    .expect("write");
    std::fs::write(
        dir.path().join("escape.json"),
        r#"{"destination_path":"/local/../x"}"#,
    )
    .expect("write");
    std::fs::write(dir.path().join("catalog.json"), CATALOG).expect("write");

    let stdin = r#"{"type":"RECORD","record":{"stream":"users","data":{},"emitted_at":1}}"#;
    let args = [
        "write",
        "--config",
        "config.json",
        "--catalog",
        "catalog.json",
    ];
    let (code, _) = run(dir.path(), Some(&root), &args, stdin);
    assert_eq!(code, 0);
    assert!(root.join("json_data/_airbyte_raw_users.jsonl").is_file());

    let (code, lines) = run(
        dir.path(),
        Some(&root),
        &["check", "--config", "escape.json"],
        "",
    );
    assert_eq!(code, 0);
    assert_eq!(lines[0]["connectionStatus"]["status"], "FAILED");

    let args = [
        "write",
        "--config",
        "escape.json",
        "--catalog",
        "catalog.json",
    ];
    let (code, lines) = run(dir.path(), Some(&root), &args, stdin);
    assert_eq!(code, 1);
    assert_eq!(lines[0]["trace"]["error"]["failure_type"], "config_error");
    assert!(!dir.path().join("x").exists());
}
