//! The `destination-csv` binary, run the way a host runs it: arguments,
//! files, standard input and output, exit status.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_destination-csv");

#[test]
fn spec_check_and_write_in_a_local_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("local");
    std::fs::create_dir(&local).expect("mkdir");
    let config = dir.path().join("config.json");
    let catalog = dir.path().join("catalog.json");
    std::fs::write(
        &config,
        r#"{"destination_path":"/csv_data","delimiter_type":{"delimiter":"\\u007c"}}"#,
    )
    .expect("write");
    std::fs::write(
        &catalog,
        r#"{"streams":[{"stream":{"name":"users","json_schema":{}},"sync_mode":"full_refresh","destination_sync_mode":"append"}]}"#,
    )
    .expect("write");
    let run = |args: &[&std::ffi::OsStr], stdin: &str| {
        let mut child = Command::new(BIN)
            .args(args)
            .env("AIRLOCK_LOCAL_ROOT", &local)
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
        let lines: Vec<Value> = String::from_utf8(output.stdout)
            .expect("utf8")
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON"))
            .collect();
        (output.status.code(), lines)
    };

    let (code, lines) = run(&["spec".as_ref()], "");
    assert_eq!(code, Some(0));
    assert_eq!(lines[0]["type"], "SPEC");

    let (code, lines) = run(
        &["check".as_ref(), "--config".as_ref(), config.as_os_str()],
        "",
    );
    assert_eq!(code, Some(0));
    assert_eq!(lines[0]["connectionStatus"]["status"], "SUCCEEDED");

    let stdin = [
        r#"{"type":"RECORD","record":{"stream":"users","data":{"a":"x|y"},"emitted_at":5}}"#,
        r#"{"type":"STATE","state":{"data":{"at":1}}}"#,
    ]
    .join("\n");
    let (code, lines) = run(
        &[
            "write".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
            "--catalog".as_ref(),
            catalog.as_os_str(),
        ],
        &stdin,
    );
    assert_eq!(code, Some(0));
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["state"]["data"]["at"], 1);
    let text = std::fs::read_to_string(local.join("csv_data/_airbyte_raw_users.csv"))
        .expect("the file is under the local root");
    let mut rows = text.lines();
    assert_eq!(
        rows.next(),
        Some("_airbyte_ab_id|_airbyte_emitted_at|_airbyte_data")
    );
    let row = rows.next().expect("a row");
    assert!(row.ends_with(r#"|5|"{""a"":""x|y""}""#), "{row}");
    assert_eq!(rows.next(), None);
}
