//! What a user must be able to trust: secrets never shown, completion counted,
//! one destination instance's history never taken for another's, streams that
//! cannot collide, limits that cannot overflow, no links left by a sandboxed
//! plugin, and progress while a source starts.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airlock::source::get_source;
use airlock::state::StateStore;
use airlock::write::WriteOptions;
use serde_json::{Value, json};

use crate::support::*;

const PASSWORD: &str = "hunter2-hunter2";
const TOKEN: &str = "tok-secret-42";

fn leaking_config(phase: &str) -> String {
    json!({"attack": "leak_secrets", "phase": phase, "password": PASSWORD,
           "credentials": {"token": TOKEN}})
    .to_string()
}

/// Fails with what leaked if a secret appears in `run`'s output.
fn assert_masked(what: &str, run: &Run) {
    for secret in [PASSWORD, TOKEN] {
        assert!(
            !run.stdout.contains(secret) && !run.stderr.contains(secret),
            "{what}: {secret} leaked\n--- stdout\n{}\n--- stderr\n{}",
            run.stdout,
            run.stderr
        );
    }
}

/// Every way the adversary leaks, through one executor's flags.
fn leaks_are_masked(sb: &Sandbox, label: &str, executor: &[&str]) {
    let input = sb.file(
        "leak-input.jsonl",
        lines(&[record("users", json!({"id": 1}))]),
    );
    let catalog = catalog(&[("users", None)]);
    for extra in [&[][..], &["--json"][..], &["-vv"][..]] {
        let check_config = leaking_config("check");
        let mut args = vec!["check", "test-adversary", "--config", &check_config];
        args.extend_from_slice(executor);
        args.extend_from_slice(extra);
        let run = sb.run(&args, None);
        run.expect_code(1);
        assert_masked(&format!("{label} check {extra:?}"), &run);
        assert!(
            run.stdout.contains("**********") || run.stderr.contains("**********"),
            "{label} check {extra:?}: the leak is there, masked\n{}\n{}",
            run.stdout,
            run.stderr
        );

        let write_config = leaking_config("write");
        let mut args = vec![
            "write",
            "test-adversary",
            "--config",
            &write_config,
            "--catalog",
            &catalog,
            "--input",
            input.to_str().unwrap(),
            "--no-state",
        ];
        args.extend_from_slice(executor);
        args.extend_from_slice(extra);
        let run = sb.run(&args, None);
        run.expect_code(1);
        assert_masked(&format!("{label} write {extra:?}"), &run);
        assert!(
            run.stderr
                .contains("leaking in write: ********** and **********"),
            "{label} write {extra:?}: the error and its log tail are shown, masked\n{}",
            run.stderr
        );
    }
}

#[test]
fn secrets_are_masked_in_all_a_wasm_plugin_says() {
    let sb = Sandbox::new();
    let component = wasm_artifact("test_adversary.wasm");
    leaks_are_masked(&sb, "wasm", &["--wasm", component.to_str().unwrap()]);
    // The same plugin's CLI compiled to wasm32-wasip2 runs as a command.
    let command = wasm_artifact("test-adversary.wasm");
    leaks_are_masked(&sb, "wasm command", &["--wasm", command.to_str().unwrap()]);
}

#[test]
fn secrets_are_masked_in_all_a_process_says() {
    let sb = Sandbox::new();
    let bin = plugin_bin("test-adversary");
    leaks_are_masked(
        &sb,
        "process",
        &["--local-executable", bin.to_str().unwrap()],
    );
}

#[test]
fn secrets_are_masked_in_all_a_container_says() {
    let _lock = docker_lock();
    if !docker_ready() {
        return;
    }
    docker_images();
    let sb = Sandbox::new();
    leaks_are_masked(
        &sb,
        "docker",
        &["--docker-image", "airlock/test-adversary:test"],
    );
}

#[test]
fn the_library_masks_statuses_and_error_values() {
    let component = wasm_artifact("test_adversary.wasm");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let config: Value = serde_json::from_str(&leaking_config("check")).unwrap();
        let dest = airlock::get_destination("test-adversary")
            .wasm(&component)
            .config(config)
            .build()
            .expect("build");
        let status = dest.check().await.expect("a status");
        let message = status.message.unwrap_or_default();
        assert!(
            message.contains("leaking in check: ********** and **********"),
            "{message}"
        );

        let config: Value = serde_json::from_str(&leaking_config("open")).unwrap();
        let dest = airlock::get_destination("test-adversary")
            .wasm(&component)
            .config(config)
            .build()
            .expect("build");
        let catalog = serde_json::from_str(&catalog(&[("users", None)])).unwrap();
        let error = dest
            .write_messages(std::io::Cursor::new(Vec::new()), catalog)
            .expect("job")
            .run()
            .await
            .expect_err("the plugin fails in open");
        let shown = format!("{:#} {:?}", anyhow::Error::from(error), "");
        assert!(
            !shown.contains(PASSWORD) && !shown.contains(TOKEN),
            "{shown}"
        );
        assert!(shown.contains("**********"), "{shown}");
    });
}

/// A destination that replaces its config through CONTROL with a new password,
/// then says it in a log and on stderr before failing.
///
/// stdout and stderr are two pipes read by two tasks: a stderr line written
/// the instant after the CONTROL line may be read before the CONTROL line is,
/// while the new secret is not yet known (README, "Secret masking"). The
/// script waits a moment before its stderr line so that the test checks the
/// masking, not that race.
#[test]
fn a_secret_from_a_control_updated_config_is_masked_too() {
    let sb = Sandbox::new();
    let rotated = "rotated-secret-9876";
    let script = sb.script(
        "rotating.py",
        &format!(
            r#"#!/usr/bin/env python3
import json, sys, time
def out(m): print(json.dumps(m), flush=True)
if sys.argv[1] == "spec":
    out({{"type": "SPEC", "spec": {{"connectionSpecification": {{"type": "object",
        "properties": {{"password": {{"type": "string", "airbyte_secret": True}}}}}}}}}})
    sys.exit(0)
sys.stdin.read()
out({{"type": "CONTROL", "control": {{"type": "CONNECTOR_CONFIG", "emitted_at": 1.0,
    "connectorConfig": {{"config": {{"password": "{rotated}"}}}}}}}})
out({{"type": "LOG", "log": {{"level": "ERROR", "message": "now using {rotated}"}}}})
time.sleep(0.5)
print("stderr says {rotated}", file=sys.stderr, flush=True)
sys.exit(3)
"#
        ),
    );
    let input = sb.file("in.jsonl", lines(&[record("users", json!({"id": 1}))]));
    let catalog = catalog(&[("users", None)]);
    for extra in [&[][..], &["-vv"][..], &["--json"][..]] {
        let mut args = vec![
            "write",
            "rotating",
            "--config",
            r#"{"password": "original-secret-1"}"#,
            "--catalog",
            &catalog,
        ];
        let input = input.to_str().unwrap();
        let script = script.to_str().unwrap();
        args.extend(["--input", input, "--local-executable", script]);
        args.extend_from_slice(extra);
        let run = sb.run(&args, None);
        run.expect_code(1);
        for secret in [rotated, "original-secret-1"] {
            assert!(
                !run.stdout.contains(secret) && !run.stderr.contains(secret),
                "{extra:?}: {secret} leaked\n{}\n{}",
                run.stdout,
                run.stderr
            );
        }
        assert!(
            run.stderr.contains("now using **********"),
            "{}",
            run.stderr
        );
    }
}

#[cfg(unix)]
#[test]
fn the_state_database_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new();
    let input = sb.file(
        "in.jsonl",
        lines(&[record("users", json!({"id": 1})), state("users", 1)]),
    );
    sb.run(
        &[
            "write",
            "--noop",
            "--catalog",
            &catalog(&[("users", None)]),
            "--input",
            input.to_str().unwrap(),
        ],
        None,
    )
    .expect_code(0);
    for file in ["state.db", "state.db-wal", "state.db-shm"] {
        let path = sb.home().join(file);
        if path.exists() {
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{file} has mode {mode:o}");
        }
    }
}

/// A source with one stream `s` that emits `records` records and no STATE, after
/// sleeping `delay` seconds.
fn stateless_source(sb: &Sandbox) -> PathBuf {
    python_source(
        sb,
        "stateless.py",
        r#"[{"name": "s", "json_schema": {}, "supported_sync_modes": ["full_refresh"]}]"#,
        r#"time.sleep(config.get("delay", 0))
for n in range(config.get("records", 4)):
    out({"type": "RECORD", "record": {"stream": "s", "data": {"n": n}, "emitted_at": 1}})"#,
    )
}

#[test]
fn a_clean_completion_confirms_records_no_state_covered_with_and_without_the_cache() {
    for mode in [&["--no-cache"][..], &[][..]] {
        let sb = Sandbox::new();
        let source = stateless_source(&sb);
        let flags = [
            "stateless",
            "--source-local-executable",
            source.to_str().unwrap(),
        ];
        let run = sync_to_local_json(&sb, &flags, r#"{"records": 4}"#, mode);
        run.expect_code(0);
        let result = run.json();
        assert_eq!(result["records_sent"], 4, "{mode:?} {result}");
        assert_eq!(result["records_confirmed"], 4, "{mode:?} {result}");
        assert_eq!(
            result["records_confirmed_at_completion"], 4,
            "{mode:?} {result}"
        );
        assert_eq!(stream_json(&result, "s")["confirmed_at_completion"], 4);
        let written = std::fs::read_to_string(sb.path().join("root/out/_airbyte_raw_s.jsonl"))
            .expect("written");
        assert_eq!(written.lines().count(), 4);

        // Without --json the summary says how they were confirmed.
        let mut cmd = sync_to_local_json_command(&sb, &flags, r#"{"records": 4}"#, mode);
        cmd.arg("--full-refresh");
        let plain = run_command(cmd, None);
        plain.expect_code(0);
        assert!(
            plain
                .stdout
                .contains("4 confirmed (4 at completion, without a state)"),
            "{}",
            plain.stdout
        );
    }
}

#[test]
fn a_failed_write_never_counts_completion() {
    let sb = Sandbox::new();
    let input: Vec<String> = (0..5).map(|i| record("users", json!({"id": i}))).collect();
    let input = sb.file("in.jsonl", lines(&input));
    let run = sb.run(
        &[
            "write",
            "destination-dev-null",
            "--config",
            r#"{"test_destination": {"test_destination_type": "FAILING", "num_messages": 2}}"#,
            "--catalog",
            &catalog(&[("users", None)]),
            "--input",
            input.to_str().unwrap(),
            "--json",
            "--no-state",
        ],
        None,
    );
    run.expect_code(1);
    let result = run.json();
    assert_eq!(result["records_confirmed"], 0, "{result}");
    assert_eq!(result["records_confirmed_at_completion"], 0, "{result}");
}

/// The built-in faker into local-json under `root`, at `path`, with the shared
/// cache and state database of `sb`.
fn faker_into(sb: &Sandbox, root: &str, path: &str, extra: &[&str]) -> Value {
    let root = sb.path().join(root);
    let config = json!({"destination_path": path}).to_string();
    let mut args = vec![
        "sync",
        "--source",
        "source-faker",
        "--source-config",
        // Not re-emitted when read again: what a destination gets is what the
        // cache holds, once.
        r#"{"count": 20, "seed": 3, "always_updated": false}"#,
        "--destination",
        "destination-local-json",
        "--destination-config",
        &config,
        "--streams",
        "users",
        "--json",
        "--local-root",
    ];
    let root = root.to_str().unwrap().to_owned();
    args.push(&root);
    args.extend_from_slice(extra);
    let run = sb.run(&args, None);
    run.expect_code(0);
    run.json()
}

fn users_written(sb: &Sandbox, root: &str, path: &str) -> usize {
    let file = sb
        .path()
        .join(root)
        .join(path.trim_start_matches("/local/"))
        .join("_airbyte_raw_users.jsonl");
    std::fs::read_to_string(file).map_or(0, |t| t.lines().count())
}

#[test]
fn another_folder_is_another_destination_and_a_fresh_state_database_knows_nothing() {
    let sb = Sandbox::new();
    let first = faker_into(&sb, "root-a", "/local/a", &[]);
    assert_eq!(first["records_sent"], 20, "{first}");
    assert_eq!(users_written(&sb, "root-a", "/local/a"), 20);

    // Another destination_path: another destination, everything is sent.
    let other_path = faker_into(&sb, "root-a", "/local/b", &[]);
    assert_eq!(other_path["records_sent"], 20, "{other_path}");
    assert_eq!(users_written(&sb, "root-a", "/local/b"), 20);

    // The same destination_path under another --local-root: another destination.
    let other_root = faker_into(&sb, "root-c", "/local/a", &[]);
    assert_eq!(other_root["records_sent"], 20, "{other_root}");
    assert_eq!(users_written(&sb, "root-c", "/local/a"), 20);

    // A fresh state database: nothing is known as confirmed, even with the cache.
    let fresh_db = sb.path().join("fresh.db");
    let fresh = faker_into(
        &sb,
        "root-a",
        "/local/a",
        &["--state-db", fresh_db.to_str().unwrap()],
    );
    assert_eq!(fresh["records_sent"], 20, "{fresh}");

    // The same instance again resumes from its own state.
    let again = faker_into(&sb, "root-a", "/local/a", &[]);
    assert_eq!(again["resumed_from_state"], true, "{again}");
}

#[test]
fn an_explicit_destination_id_keeps_history_across_a_config_change() {
    let sb = Sandbox::new();
    let id = ["--destination-id", "my-warehouse"];
    let first = faker_into(&sb, "root", "/local/v1", &id);
    assert_eq!(first["resumed_from_state"], false, "{first}");
    let moved = faker_into(&sb, "root", "/local/v2", &id);
    assert_eq!(
        moved["resumed_from_state"], true,
        "same id, same history: {moved}"
    );
    let stored = stored_states(&sb.state_db());
    assert!(!stored.is_empty());
    let conn = rusqlite::Connection::open(sb.state_db()).unwrap();
    let keys: Vec<String> = conn
        .prepare("SELECT DISTINCT destination FROM stream_state")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(keys, ["my-warehouse"]);
}

#[test]
fn a_dotted_stream_and_a_namespaced_one_do_not_collide() {
    let sb = Sandbox::new();
    let mut ns_record: Value = serde_json::from_str(&record("b", json!({"id": 3}))).unwrap();
    ns_record["record"]["namespace"] = json!("a");
    let input = lines(&[
        record("a.b", json!({"id": 1})),
        record("a.b", json!({"id": 2})),
        ns_record.to_string(),
    ]);
    let input = sb.file("in.jsonl", input);
    let run = sb.run(
        &[
            "write",
            "--noop",
            "--catalog",
            &catalog(&[("a.b", None), ("b", Some("a"))]),
            "--input",
            input.to_str().unwrap(),
            "--json",
            "--no-state",
        ],
        None,
    );
    run.expect_code(0);
    let result = run.json();
    assert_eq!(result["records_sent"], 3, "{result}");
    let streams = result["streams"].as_array().expect("a list");
    assert_eq!(streams.len(), 2, "{result}");
    assert_eq!(stream_json(&result, "a.b")["sent"], 2);
    let namespaced = streams
        .iter()
        .find(|s| s["namespace"] == "a" && s["name"] == "b")
        .expect("namespace a, stream b");
    assert_eq!(namespaced["sent"], 1);
}

#[test]
fn limits_too_large_are_refused_naming_the_flag_or_key() {
    let sb = Sandbox::new();
    let catalog = catalog(&[("users", None)]);
    let base = [
        "write",
        "--noop",
        "--catalog",
        catalog.as_str(),
        "--input",
        "/dev/null",
    ];
    for (flag, value) in [
        ("--deadline", "18446744073709551615"),
        ("--memory-limit", "18446744073709551615"),
        ("--max-output-mib", "18446744073709551615"),
        ("--max-log-mib", "18446744073709551615"),
        ("--idle-timeout", "18446744073709551615"),
        ("--stall-timeout", "18446744073709551615"),
        ("--max-line-bytes", "0"),
    ] {
        let mut args = base.to_vec();
        args.extend([flag, value]);
        let run = sb.run(&args, None);
        run.expect_code(2);
        assert!(run.stderr.contains(flag), "{flag}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
    let policy = sb.file("policy.toml", "deadline_secs = 9223372036854775807\n");
    let mut args = base.to_vec();
    args.extend(["--policy", policy.to_str().unwrap()]);
    let run = sb.run(&args, None);
    run.expect_code(2);
    assert!(run.stderr.contains("deadline_secs"), "{}", run.stderr);
}

#[test]
fn a_sandboxed_plugin_cannot_leave_links_under_the_local_root() {
    let sb = Sandbox::new();
    let component = wasm_artifact("test_adversary.wasm");
    let root = sb.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    for attack in ["symlink_escape", "hardlink"] {
        let config = json!({"attack": attack}).to_string();
        let run = sb.run(
            &[
                "check",
                "test-adversary",
                "--wasm",
                component.to_str().unwrap(),
                "--config",
                &config,
                "--local-root",
                root.to_str().unwrap(),
            ],
            None,
        );
        run.expect_code(1);
        assert!(run.stdout.contains("denied:"), "{attack}: {}", run.stdout);
    }
    for entry in walk(&root) {
        let meta = std::fs::symlink_metadata(&entry).unwrap();
        assert!(
            !meta.file_type().is_symlink(),
            "a link was left: {}",
            entry.display()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            assert!(
                meta.is_dir() || meta.nlink() == 1,
                "a hard link was left: {}",
                entry.display()
            );
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if std::fs::symlink_metadata(&path).unwrap().is_dir() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}

#[test]
fn progress_says_the_source_is_starting_before_its_first_message() {
    let sb = Sandbox::new();
    let source_path = stateless_source(&sb);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    for cached in [false, true] {
        runtime.block_on(async {
            let source = get_source("stateless")
                .local_executable(&source_path)
                .config(json!({"records": 3, "delay": 1.5}))
                .build()
                .expect("source");
            let dest = airlock::get_noop_destination().expect("noop");
            let seen: Arc<Mutex<Vec<String>>> = Arc::default();
            let log = seen.clone();
            let mut job = dest
                .write(&source)
                .state_cache(Arc::new(
                    StateStore::open(sb.path().join(format!("s{cached}.db"))).unwrap(),
                ))
                .options(WriteOptions {
                    progress_interval: Duration::from_millis(100),
                    ..WriteOptions::default()
                })
                .on_progress(move |p| {
                    if let Some(source) = &p.waiting_for {
                        log.lock()
                            .unwrap()
                            .push(format!("{source} {:?}", p.elapsed));
                    }
                });
            job = if cached {
                job.cache(airlock::cache::Cache::open(sb.path().join("cache.sqlite")).unwrap())
            } else {
                job.no_cache()
            };
            let result = job.run().await.expect("sync");
            assert_eq!(result.write.records_sent, 3);
            let seen = seen.lock().unwrap();
            assert!(
                seen.len() >= 3 && seen.iter().all(|s| s.starts_with("stateless ")),
                "cached {cached}: {seen:?}"
            );
        });
    }
}
