//! The WASM executor: built-in plugins, --wasm files, command mode, the compile
//! cache, and components that are not what they should be.

use serde_json::json;

use crate::support::*;

const SILENT: &str = r#"{"test_destination":{"test_destination_type":"SILENT"}}"#;

fn faker_like_input() -> Vec<u8> {
    let mut lines_ = Vec::new();
    for i in 0..500 {
        lines_.push(record(
            "users",
            json!({"id": i, "name": format!("user {i}"), "note": "a,b \"c\"\nd\u{2028}"}),
        ));
        if i % 100 == 99 {
            lines_.push(state("users", i));
        }
    }
    lines(&lines_)
}

#[test]
fn builtin_plugins_run_with_no_files_beside_the_binary() {
    let sb = Sandbox::new();
    let run = sb.run(&["spec", "destination-dev-null"], None);
    run.expect_code(0);
    assert!(run.stdout.contains("test_destination"), "{}", run.stdout);

    let run = sb.run(
        &[
            "write",
            "destination-dev-null",
            "--config",
            SILENT,
            "--catalog",
            &catalog(&[("users", None)]),
            "--json",
        ],
        Some(&faker_like_input()),
    );
    run.expect_code(0);
    let result = run.json();
    assert_eq!(result["records_confirmed"], 500);
    assert_eq!(result["states_confirmed"], 5);
}

#[test]
fn write_noop_uses_the_builtin_dev_null() {
    let sb = Sandbox::new();
    let run = sb.run(
        &[
            "write",
            "--noop",
            "--catalog",
            &catalog(&[("users", None)]),
            "--json",
        ],
        Some(&faker_like_input()),
    );
    run.expect_code(0);
    assert_eq!(run.json()["destination"], "destination-dev-null");
    assert_eq!(run.json()["records_confirmed"], 500);
}

/// Rows of a local-json output file, without the per-run `_airbyte_ab_id`.
fn rows(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).expect("row");
            v.as_object_mut().expect("object").remove("_airbyte_ab_id");
            v
        })
        .collect()
}

#[test]
fn the_same_plugin_as_component_of_both_versions_command_and_process_writes_the_same_output() {
    let sb = Sandbox::new();
    let input = faker_like_input();
    let cat = catalog(&[("users", None)]);
    let config = r#"{"destination_path":"/local/out"}"#;
    let mut results = Vec::new();
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("component", vec![]),
        (
            "component-0.1.0",
            vec![
                "--wasm".into(),
                wasm_artifact_v0_1("destination_local_json.wasm")
                    .display()
                    .to_string(),
            ],
        ),
        (
            "command",
            vec![
                "--wasm".into(),
                wasm_artifact("destination-local-json.wasm")
                    .display()
                    .to_string(),
            ],
        ),
        (
            "process",
            vec![
                "--local-executable".into(),
                plugin_bin("destination-local-json").display().to_string(),
            ],
        ),
    ];
    for (label, flags) in &cases {
        let root = sb.path().join(label);
        let mut args = vec![
            "-v",
            "write",
            "destination-local-json",
            "--config",
            config,
            "--catalog",
            &cat,
            "--json",
            "--no-state",
            "--local-root",
            root.to_str().unwrap(),
        ];
        args.extend(flags.iter().map(String::as_str));
        let run = sb.run(&args, Some(&input));
        run.expect_code(0);
        match *label {
            "component" => assert!(
                run.stderr.contains("airlock:destination@0.2 plugin"),
                "{}",
                run.stderr
            ),
            "component-0.1.0" => assert!(
                run.stderr.contains("airlock:destination@0.1 plugin"),
                "{}",
                run.stderr
            ),
            "command" => assert!(run.stderr.contains("command mode"), "{}", run.stderr),
            _ => {}
        }
        let result = run.json();
        results.push((
            result["records_confirmed"].clone(),
            result["final_states"].clone(),
        ));
        assert_eq!(
            rows(&root.join("out/_airbyte_raw_users.jsonl")).len(),
            500,
            "{label}"
        );
    }
    assert!(
        results.windows(2).all(|w| w[0] == w[1]),
        "confirmed counts and states agree: {results:?}"
    );
    let component = rows(&sb.path().join("component/out/_airbyte_raw_users.jsonl"));
    assert_eq!(
        component,
        rows(&sb.path().join("command/out/_airbyte_raw_users.jsonl"))
    );
    assert_eq!(
        component,
        rows(&sb.path().join("process/out/_airbyte_raw_users.jsonl"))
    );
    assert_eq!(
        component,
        rows(
            &sb.path()
                .join("component-0.1.0/out/_airbyte_raw_users.jsonl")
        )
    );
}

#[test]
fn csv_is_built_in_and_matches_airbytes_format() {
    let sb = Sandbox::new();
    let root = sb.path().join("root");
    let run = sb.run(
        &[
            "write",
            "destination-csv",
            "--config",
            r#"{"destination_path":"/local/csv"}"#,
            "--catalog",
            &catalog(&[("users", None)]),
            "--local-root",
            root.to_str().unwrap(),
            "--json",
        ],
        Some(&lines(&[
            record("users", json!({"a": "x,y", "b": "q\"uote"})),
            state("users", 1),
        ])),
    );
    run.expect_code(0);
    let text = std::fs::read_to_string(root.join("csv/_airbyte_raw_users.csv")).expect("csv");
    let mut lines_ = text.lines();
    assert_eq!(
        lines_.next(),
        Some("_airbyte_ab_id,_airbyte_emitted_at,_airbyte_data")
    );
    let row = lines_.next().expect("row");
    assert!(
        row.ends_with(r#",1700000000000,"{""a"":""x,y"",""b"":""q\""uote""}""#),
        "{row}"
    );
}

#[test]
fn wasm_path_and_plugins_folder_resolve() {
    let sb = Sandbox::new();
    let component = wasm_artifact("destination_dev_null.wasm");
    sb.run(
        &["spec", "anything", "--wasm", component.to_str().unwrap()],
        None,
    )
    .expect_code(0);
    let folder = sb.home().join("plugins");
    std::fs::create_dir_all(&folder).expect("mkdir");
    std::fs::copy(&component, folder.join("destination-mine.wasm")).expect("copy");
    let run = sb.run(&["spec", "destination-mine"], None);
    run.expect_code(0);
    assert!(run.stdout.contains("test_destination"));
}

#[test]
fn the_compile_cache_is_used_and_a_corrupt_entry_is_recompiled() {
    let sb = Sandbox::isolated();
    sb.run(&["spec", "destination-dev-null"], None)
        .expect_code(0);
    let cache = sb.home().join("cache/wasm");
    let entries: Vec<_> = std::fs::read_dir(&cache)
        .expect("cache dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = &entries[0];
    let mut bytes = std::fs::read(entry).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(entry, &bytes).expect("corrupt");
    let run = sb.run(&["-v", "spec", "destination-dev-null"], None);
    run.expect_code(0);
    assert!(
        run.stderr.contains("corrupt; recompiling"),
        "{}",
        run.stderr
    );
    assert_ne!(
        std::fs::read(entry).expect("read"),
        bytes,
        "the entry was rewritten"
    );
}

#[test]
fn a_file_that_is_not_a_component_is_refused_clearly() {
    let sb = Sandbox::new();
    let junk = sb.file("junk.wasm", b"definitely not wasm");
    let run = sb.run(&["spec", "x", "--wasm", junk.to_str().unwrap()], None);
    run.expect_code(2);
    assert!(
        run.stderr.contains("not a usable WebAssembly component"),
        "{}",
        run.stderr
    );
    let core = sb.file("core.wasm", b"\0asm\x01\0\0\0");
    let run = sb.run(&["spec", "x", "--wasm", core.to_str().unwrap()], None);
    assert!(
        run.stderr
            .contains("core WebAssembly module, not a component"),
        "{}",
        run.stderr
    );
    let run = sb.run(&["spec", "x", "--wasm", "/nonexistent.wasm"], None);
    run.expect_code(2);
    assert!(
        run.stderr.contains("/nonexistent.wasm not found"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_component_of_another_world_or_version_is_refused_clearly() {
    let sb = Sandbox::new();
    let other = wasm_artifact("test_wrong_world.wasm");
    let run = sb.run(&["spec", "x", "--wasm", other.to_str().unwrap()], None);
    run.expect_code(2);
    assert!(
        run.stderr
            .contains("another world or an incompatible version"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("airlock:destination/destination@9.0.0"),
        "names what it exports: {}",
        run.stderr
    );
}

fn adversary_write(sb: &Sandbox, attack: &str, phase: &str, extra: &[&str]) -> Run {
    let adversary = wasm_artifact("test_adversary.wasm");
    let config = json!({"attack": attack, "phase": phase}).to_string();
    let mut args = vec![
        "write",
        "adversary",
        "--config",
        &config,
        "--catalog",
        r#"{"streams":[{"stream":{"name":"users","json_schema":{}},"sync_mode":"full_refresh","destination_sync_mode":"append"}]}"#,
        "--wasm",
        adversary.to_str().unwrap(),
        "--state-db",
    ];
    let db = sb.state_db();
    args.push(db.to_str().unwrap());
    args.extend_from_slice(extra);
    sb.run(
        &args,
        Some(&lines(&[
            record("users", json!({})),
            state("users", 1),
            record("users", json!({})),
            state("users", 2),
        ])),
    )
}

#[test]
fn traps_in_open_write_and_close_are_typed_errors_naming_the_call() {
    let sb = Sandbox::new();
    for phase in ["open", "write", "close"] {
        let run = adversary_write(&sb, "trap", phase, &[]);
        run.expect_code(1);
        assert!(
            run.stderr
                .contains(&format!("adversary trapped in {phase}")),
            "{phase}: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains(&format!("adversary trap in {phase}")),
            "the panic message is in the log tail: {}",
            run.stderr
        );
    }
}

#[test]
fn a_plugin_returning_a_state_it_never_received_is_stopped() {
    let sb = Sandbox::new();
    let run = adversary_write(&sb, "bogus_state", "write", &[]);
    run.expect_code(1);
    assert!(
        run.stderr.contains("echoed a state it never received"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_100_mib_record_passes_the_component_the_process_and_the_container() {
    let sb = Sandbox::new();
    let big = "x".repeat(100 * 1024 * 1024);
    let input = lines(&[record("users", json!({ "v": big })), state("users", 1)]);
    drop(big);
    let catalog = catalog(&[("users", None)]);
    let dev_null = plugin_bin("destination-dev-null");
    let mut executors = vec![
        vec![],
        vec!["--local-executable", dev_null.to_str().unwrap()],
    ];
    if docker_ready() {
        docker_images();
        executors.push(vec!["--docker-image", "airlock/destination-dev-null:test"]);
    }
    for executor in executors {
        let mut args = vec![
            "write",
            "destination-dev-null",
            "--config",
            SILENT,
            "--catalog",
            &catalog,
            "--no-state",
            "--json",
        ];
        args.extend(executor.iter().copied());
        let run = sb.run(&args, Some(&input));
        run.expect_code(0);
        let result = run.json();
        assert_eq!(result["records_confirmed"], 1, "{executor:?}: {result}");
        assert_eq!(result["states_confirmed"], 1, "{executor:?}: {result}");
        assert!(
            result["bytes_sent"].as_u64().unwrap_or(0) > 100 * 1024 * 1024,
            "{executor:?}: {result}"
        );
    }
}

/// A 0.2.0 plugin frames its own output; a table that does not describe it is
/// refused, by name, before the host reads a byte of it, and nothing it did not
/// frame is confirmed. Written without the SDK, the fixture is also the proof
/// that 0.2.0 can be implemented from the WIT alone.
#[test]
fn a_plugin_returning_a_malformed_framing_table_is_refused_by_name() {
    let sb = Sandbox::new();
    let wasm = wasm_artifact("test_bad_frames.wasm");
    let cat = catalog(&[("users", None)]);
    let input = faker_like_input();
    let write = |mode: &str| {
        let config = json!({ "frames": mode }).to_string();
        sb.run(
            &[
                "-v",
                "write",
                "destination-bad-frames",
                "--config",
                &config,
                "--catalog",
                &cat,
                "--wasm",
                wasm.to_str().unwrap(),
                "--json",
                "--no-state",
            ],
            Some(&input),
        )
    };
    let ok = write("ok");
    ok.expect_code(0);
    assert!(
        ok.stderr.contains("airlock:destination@0.2 plugin"),
        "{}",
        ok.stderr
    );
    assert_eq!(ok.json()["records_confirmed"], 500, "{}", ok.stdout);
    for (mode, says) in [
        ("out_of_bounds", "past the end of the"),
        ("wrong_kind", "it says LOG but the line is STATE"),
        ("missing", "0 frames for 5 non-blank output lines"),
    ] {
        let run = write(mode);
        run.expect_code(1);
        for expected in [
            "destination-bad-frames",
            "returned a malformed framing table from write",
            says,
        ] {
            assert!(
                run.stderr.contains(expected),
                "{mode}: {expected}\n{}",
                run.stderr
            );
        }
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
}
