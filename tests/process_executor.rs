//! The process executor against real processes: concurrency, exits, signals, files.

use serde_json::json;

use crate::support::*;

fn write_with(sb: &Sandbox, exe: &std::path::Path, input: &[u8], extra: &[&str]) -> Run {
    let mut args = vec![
        "write",
        "d",
        "--config",
        "{}",
        "--catalog",
        r#"{"streams":[{"stream":{"name":"users","json_schema":{}},"sync_mode":"full_refresh","destination_sync_mode":"append"}]}"#,
        "--no-state",
        "--local-executable",
        exe.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    sb.run(&args, Some(input))
}

const SPEC_LINE: &str = r#"{"type":"SPEC","spec":{"connectionSpecification":{"type":"object"}}}"#;

fn many_records(n: usize) -> Vec<u8> {
    let mut input = Vec::new();
    for i in 0..n {
        input.extend_from_slice(
            record("users", json!({"id": i, "pad": "x".repeat(200)})).as_bytes(),
        );
        input.push(b'\n');
    }
    input
}

#[test]
fn a_destination_that_writes_as_much_as_it_reads_does_not_deadlock() {
    // This destination echoes every line it reads, so its stdout is as large as its
    // stdin (12 MB, far beyond a pipe buffer): a host that fed stdin before reading
    // stdout would deadlock here (PyAirbyte #871).
    let sb = Sandbox::new();
    let exe = sb.script(
        "d.sh",
        &format!("#!/bin/sh\n[ \"$1\" = spec ] && echo '{SPEC_LINE}' && exit 0\nexec cat\n"),
    );
    let mut input = many_records(50_000);
    input.extend_from_slice(state("users", 1).as_bytes());
    input.push(b'\n');
    let run = write_with(&sb, &exe, &input, &["--json"]);
    run.expect_code(0);
    assert_eq!(run.json()["records_confirmed"], 50_000);
}

#[test]
fn a_destination_that_exits_without_reading_is_reported() {
    let sb = Sandbox::new();
    let exe = sb.script(
        "d.sh",
        &format!("#!/bin/sh\n[ \"$1\" = spec ] && echo '{SPEC_LINE}'\nexit 0\n"),
    );
    let run = write_with(&sb, &exe, &many_records(20_000), &[]);
    run.expect_code(1);
    assert!(
        run.stderr.contains("d stopped reading its input"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_destination_that_stops_reading_but_stays_alive_times_out() {
    let sb = Sandbox::new();
    let exe = sb.script("d.sh", &format!("#!/bin/sh\n[ \"$1\" = spec ] && echo '{SPEC_LINE}' && exit 0\necho 'going to sleep' >&2\nsleep 60\n"));
    let started = std::time::Instant::now();
    let run = write_with(&sb, &exe, &many_records(20_000), &["--stall-timeout", "2"]);
    run.expect_code(1);
    assert!(run.stderr.contains("did not read for 2s"), "{}", run.stderr);
    assert!(
        run.stderr.contains("going to sleep"),
        "the log tail is in the error: {}",
        run.stderr
    );
    assert!(
        started.elapsed().as_secs() < 30,
        "the stalled destination was killed, not waited for"
    );
}

#[test]
fn a_killed_destination_names_the_signal() {
    let sb = Sandbox::new();
    let exe = sb.script("d.sh", &format!("#!/bin/sh\n[ \"$1\" = spec ] && echo '{SPEC_LINE}' && exit 0\nhead -c 100 >/dev/null\nkill -9 $$\n"));
    let run = write_with(&sb, &exe, &many_records(10), &[]);
    run.expect_code(1);
    assert!(run.stderr.contains("killed by signal 9"), "{}", run.stderr);
}

#[test]
fn a_trace_error_with_exit_zero_is_still_a_failure_with_its_failure_type() {
    let sb = Sandbox::new();
    let trace = r#"{"type":"TRACE","trace":{"type":"ERROR","emitted_at":1.0,"error":{"message":"bad credentials","failure_type":"config_error"}}}"#;
    let exe = sb.script("d.sh", &format!("#!/bin/sh\n[ \"$1\" = spec ] && echo '{SPEC_LINE}' && exit 0\ncat >/dev/null\necho '{trace}'\nexit 0\n"));
    let run = write_with(&sb, &exe, &many_records(10), &[]);
    run.expect_code(1);
    assert!(
        run.stderr.contains("reported a TRACE ERROR")
            && run.stderr.contains("config_error")
            && run.stderr.contains("bad credentials"),
        "{}",
        run.stderr
    );
}

#[test]
fn config_and_catalog_files_are_private_and_removed_afterwards() {
    let sb = Sandbox::new();
    let report = sb.path().join("report.txt");
    let exe = sb.script(
        "d.sh",
        &format!(
            "#!/bin/sh\n[ \"$1\" = spec ] && echo '{SPEC_LINE}' && exit 0\n\
             echo \"$3 $(stat -c %a \"$3\") $5 $(stat -c %a \"$5\") $(cat \"$3\")\" > {}\ncat >/dev/null\n",
            report.display()
        ),
    );
    write_with(&sb, &exe, &many_records(1), &[]).expect_code(0);
    let report = std::fs::read_to_string(&report).expect("report");
    let fields: Vec<&str> = report.split_whitespace().collect();
    assert_eq!(fields[1], "600", "config mode: {report}");
    assert_eq!(fields[3], "600", "catalog mode: {report}");
    assert_eq!(fields[4], "{}", "the config is passed as written: {report}");
    assert!(
        !std::path::Path::new(fields[0]).exists(),
        "config removed: {report}"
    );
    assert!(
        !std::path::Path::new(fields[2]).exists(),
        "catalog removed: {report}"
    );
}

#[test]
fn stderr_and_log_messages_reach_the_error_tail() {
    let sb = Sandbox::new();
    let log = r#"{"type":"LOG","log":{"level":"ERROR","message":"disk on fire"}}"#;
    let exe = sb.script("d.sh", &format!("#!/bin/sh\n[ \"$1\" = spec ] && echo '{SPEC_LINE}' && exit 0\ncat >/dev/null\necho '{log}'\necho 'stderr says hi' >&2\nexit 3\n"));
    let run = write_with(&sb, &exe, &many_records(3), &[]);
    run.expect_code(1);
    assert!(run.stderr.contains("exit code 3"), "{}", run.stderr);
    assert!(
        run.stderr.contains("ERROR disk on fire") && run.stderr.contains("stderr says hi"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn the_library_api_mirrors_pyairbyte() {
    let sb = Sandbox::new();
    let out = sb.path().join("lib-out");
    let dest = airlock::get_destination("destination-local-json")
        .config(json!({"destination_path": out}))
        .local_executable(plugin_bin("destination-local-json"))
        .install_if_missing(false)
        .build()
        .expect("build");
    dest.validate_config().await.expect("valid config");
    let status = dest.check().await.expect("check");
    assert_eq!(
        status.status,
        airlock::protocol::ConnectionStatus::Succeeded
    );
    let catalog = serde_json::from_str(&catalog(&[("users", None)])).expect("catalog");
    let input = lines(&[record("users", json!({"id": 1})), state("users", 1)]);
    let result = dest
        .write_messages(std::io::Cursor::new(input), catalog)
        .expect("job")
        .run()
        .await
        .expect("write");
    assert_eq!(
        (
            result.records_sent,
            result.records_confirmed,
            result.states_confirmed
        ),
        (1, 1, 1)
    );
    assert!(out.join("_airbyte_raw_users.jsonl").is_file());

    let mut bad = airlock::get_destination("destination-local-json")
        .local_executable(plugin_bin("destination-local-json"))
        .build()
        .expect("build");
    bad.set_config(json!({"destination_path": 5}));
    let err = bad.validate_config().await.expect_err("invalid");
    assert!(err.to_string().contains("/destination_path"), "{err}");
}
