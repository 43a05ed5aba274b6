//! `airlock sync`: a source into a destination, with the state round trip.

use serde_json::json;

use crate::support::*;

fn sync(sb: &Sandbox, source_exe: &str, source_config: &str, extra: &[&str]) -> Run {
    let source = ["source-faker", "--source-local-executable", source_exe];
    sync_to_local_json(sb, &source, source_config, extra)
}

#[test]
fn a_second_sync_of_the_real_faker_resumes_from_the_confirmed_state() {
    let Some(faker) = faker_bin() else { return };
    let sb = Sandbox::new();
    let exe = faker.to_str().unwrap();
    // always_updated=false: a record changes only when the faker says so, so a
    // resumed run has nothing new to read.
    let config = r#"{"count": 150, "seed": 1, "always_updated": false}"#;
    let first = sync(&sb, exe, config, &[]);
    first.expect_code(0);
    let first = first.json();
    assert_eq!(first["resumed_from_state"], false);
    assert_eq!(first["records_confirmed"], 400, "{first}");
    assert_eq!(stored_states(&sb.state_db()).len(), 3, "a state per stream");

    let second = sync(&sb, exe, config, &[]);
    second.expect_code(0);
    let second = second.json();
    assert_eq!(
        second["resumed_from_state"], true,
        "the stored state went to the source as --state"
    );
    assert_eq!(
        second["records_sent"], 0,
        "only new or updated records: none: {second}"
    );

    let third = sync(&sb, exe, config, &["--full-refresh"]);
    third.expect_code(0);
    assert_eq!(
        third.json()["records_sent"],
        400,
        "a full refresh ignores the state"
    );
    let rows = std::fs::read_to_string(sb.path().join("root/out/_airbyte_raw_users.jsonl"))
        .expect("users");
    assert!(rows.lines().count() >= 150);
}

#[test]
fn streams_and_strategies_are_checked_before_anything_runs() {
    let Some(faker) = faker_bin() else { return };
    let sb = Sandbox::new();
    let run = sync(
        &sb,
        faker.to_str().unwrap(),
        r#"{"count": 10}"#,
        &["--streams", "users,ghosts"],
    );
    run.expect_code(2);
    assert!(
        run.stderr
            .contains(r#"no stream "ghosts"; it has: products, users, purchases"#),
        "{}",
        run.stderr
    );
}

/// A scripted source: streams `s` (no primary key) with 3 records and a state
/// each, records the --state it was given, and crashes if told to.
fn scripted_source(sb: &Sandbox, crash_after: Option<usize>) -> std::path::PathBuf {
    let seen = sb.path().join("state-seen.json");
    python_source(
        sb,
        "source.py",
        r#"[{"name": "s", "json_schema": {}, "supported_sync_modes": ["full_refresh", "incremental"], "default_cursor_field": ["n"]}]"#,
        &format!(
            r#"state = json.load(open(arg("--state"))) if arg("--state") else None
json.dump(state, open("{seen}", "w"))
start = state[0]["stream"]["stream_state"]["n"] if state else 0
crash = {crash}
for n in range(start + 1, start + 4):
    out({{"type": "RECORD", "record": {{"stream": "s", "data": {{"n": n}}, "emitted_at": 1}}}})
    out({{"type": "STATE", "state": {{"type": "STREAM", "stream": {{"stream_descriptor": {{"name": "s"}}, "stream_state": {{"n": n}}}}}}}})
    if crash is not None and n - start >= crash:
        print("source exploded", file=sys.stderr, flush=True)
        sys.exit(7)"#,
            seen = seen.display(),
            crash = crash_after.map_or("None".to_owned(), |n| n.to_string()),
        ),
    )
}

#[test]
fn merge_without_a_primary_key_is_a_clear_error() {
    let sb = Sandbox::new();
    let source = scripted_source(&sb, None);
    let run = sync(
        &sb,
        source.to_str().unwrap(),
        "{}",
        &["--strategy", "merge"],
    );
    run.expect_code(2);
    assert!(
        run.stderr.contains("stream s has no primary key")
            && run.stderr.contains("--strategy append"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_source_that_crashes_keeps_what_was_confirmed_and_the_rerun_resumes() {
    let sb = Sandbox::new();
    let crashing = scripted_source(&sb, Some(2));
    let run = sync(&sb, crashing.to_str().unwrap(), "{}", &[]);
    run.expect_code(1);
    assert!(
        run.stderr.contains("exit code 7") && run.stderr.contains("source exploded"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("the next sync resumes from them"),
        "{}",
        run.stderr
    );
    let stored = stored_states(&sb.state_db());
    assert_eq!(
        stored[0].1["stream"]["stream_state"]["n"], 2,
        "both confirmed states kept"
    );

    let healthy = scripted_source(&sb, None);
    let run = sync(&sb, healthy.to_str().unwrap(), "{}", &[]);
    run.expect_code(0);
    let seen: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(sb.path().join("state-seen.json")).expect("seen"),
    )
    .expect("json");
    assert_eq!(
        seen[0]["stream"]["stream_state"]["n"], 2,
        "the rerun got the confirmed state: {seen}"
    );
    assert_eq!(run.json()["records_sent"], 3);
    let rows =
        std::fs::read_to_string(sb.path().join("root/out/_airbyte_raw_s.jsonl")).expect("rows");
    let ns: Vec<i64> = rows
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("row")["_airbyte_data"]["n"]
                .as_i64()
                .expect("n")
        })
        .collect();
    assert_eq!(
        ns,
        [1, 2, 3, 4, 5],
        "nothing lost, nothing repeated: {ns:?}"
    );
}

#[test]
fn a_destination_that_crashes_keeps_what_was_confirmed() {
    let sb = Sandbox::new();
    let source = scripted_source(&sb, None);
    let failing =
        json!({"test_destination": {"test_destination_type": "FAILING", "num_messages": 2}})
            .to_string();
    let run = sb.run(
        &[
            "sync",
            "--source",
            "scripted",
            "--source-config",
            "{}",
            "--source-local-executable",
            source.to_str().unwrap(),
            "--destination",
            "destination-dev-null",
            "--destination-config",
            &failing,
            "--json",
        ],
        None,
    );
    run.expect_code(1);
    assert!(
        run.stderr.contains("destination-dev-null failed"),
        "{}",
        run.stderr
    );
    let stored = stored_states(&sb.state_db());
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0].1["stream"]["stream_state"]["n"], 2,
        "the states before the crash are kept"
    );
}

#[test]
fn a_verbose_sync_tells_its_story_in_a_few_lines() {
    let sb = Sandbox::new();
    let source = scripted_source(&sb, None);
    let run = sync(&sb, source.to_str().unwrap(), "{}", &["-v"]);
    run.expect_code(0);
    let err = &without_colours(&run.stderr);
    let sync_id = err
        .split("sync{sync_id=")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("no sync span: {err}"));
    assert!(
        sync_id.len() == 12 && sync_id.chars().all(|c| c.is_ascii_hexdigit()),
        "{err}"
    );
    let span =
        format!("sync{{sync_id={sync_id} source=source-faker destination=destination-local-json}}");
    for said in [
        format!("{span}: sync started"),
        format!(
            "{span}:write{{destination=destination-local-json}}:stream{{stream=s}}: stream started"
        ),
        "stream{stream=s}: stream completed: 3 records sent, 3 confirmed".to_owned(),
        format!("{span}: sync succeeded: 3 records read, 3 sent, 3 confirmed"),
    ] {
        assert!(err.contains(&said), "{said}\n--- stderr\n{err}");
    }
    assert!(
        !err.contains("state(s) committed"),
        "commits are DEBUG: {err}"
    );
    assert_eq!(run.json()["records_confirmed"], 3);
    assert_eq!(run.json()["sync_id"], sync_id, "the result names its span");
}

/// `text` without ANSI colour sequences (`ESC [ … m`).
fn without_colours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('\u{1b}') {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        rest = match rest.find('m') {
            Some(end) => &rest[end + 1..],
            None => "",
        };
    }
    out.push_str(rest);
    out
}
