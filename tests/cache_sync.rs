//! The read cache, `Destination::write(read_result)`, CONTROL messages, GLOBAL and
//! LEGACY state round trips, reconciliation, and syncs that go wrong.
//!
//! The source here is one scripted Python connector driven by its config: how many
//! records, which state type, whether to crash, sleep or emit a CONTROL message.
//! It writes the config and state it was given beside itself, so tests can see
//! what airlock passed.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use airlock::cache::{Cache, ReadResult};
use airlock::source::get_source;
use airlock::state::StateStore;
use airlock::sync::{ConnectorRole, SyncError};
use serde_json::{Value, json};

use crate::support::*;

/// A source with one stream `s` (cursor `n`, no primary key). Config keys:
/// `records` (default 3), `state_type` (STREAM, GLOBAL or LEGACY), `crash_after`,
/// `sleep` (seconds per record), `control` (a config to emit as CONTROL).
fn scripted_source(sb: &Sandbox) -> PathBuf {
    let seen = sb.path().join("seen");
    std::fs::create_dir_all(&seen).expect("seen dir");
    sb.script(
        "scripted-source.py",
        &format!(
            r#"#!/usr/bin/env python3
import json, sys, time
args = sys.argv[1:]
seen = "{seen}"
def out(m): print(json.dumps(m), flush=True)
def arg(name): return args[args.index(name) + 1] if name in args else None
if args[0] == "spec":
    out({{"type": "SPEC", "spec": {{"connectionSpecification": {{"type": "object"}}}}}})
    sys.exit(0)
config = json.load(open(arg("--config")))
if args[0] == "check":
    out({{"type": "CONNECTION_STATUS", "connectionStatus": {{"status": "SUCCEEDED"}}}})
elif args[0] == "discover":
    out({{"type": "CATALOG", "catalog": {{"streams": [{{"name": "s", "json_schema": {{}}, "supported_sync_modes": ["full_refresh", "incremental"], "source_defined_cursor": True, "default_cursor_field": ["n"]}}]}}}})
elif args[0] == "read":
    state = json.load(open(arg("--state"))) if arg("--state") else None
    json.dump(config, open(seen + "/config.json", "w"))
    json.dump(state, open(seen + "/state.json", "w"))
    kind = config.get("state_type", "STREAM")
    start = 0
    if state:
        s = state[0]
        if kind == "GLOBAL":
            start = s["global"]["stream_states"][0]["stream_state"]["n"]
        elif kind == "LEGACY":
            start = s["data"]["n"]
        else:
            start = s["stream"]["stream_state"]["n"]
    if config.get("control"):
        out({{"type": "CONTROL", "control": {{"type": "CONNECTOR_CONFIG", "emitted_at": 1.0, "connectorConfig": {{"config": config["control"]}}}}}})
    for n in range(start + 1, start + 1 + config.get("records", 3)):
        time.sleep(config.get("sleep", 0))
        out({{"type": "RECORD", "record": {{"stream": "s", "data": {{"n": n}}, "emitted_at": 1}}}})
        if kind == "GLOBAL":
            st = {{"type": "GLOBAL", "global": {{"shared_state": {{"cdc": n}}, "stream_states": [{{"stream_descriptor": {{"name": "s"}}, "stream_state": {{"n": n}}}}]}}}}
        elif kind == "LEGACY":
            st = {{"type": "LEGACY", "data": {{"n": n}}}}
        else:
            st = {{"type": "STREAM", "stream": {{"stream_descriptor": {{"name": "s"}}, "stream_state": {{"n": n}}}}}}
        out({{"type": "STATE", "state": st}})
        if config.get("crash_after") is not None and n - start >= config["crash_after"]:
            print("source exploded", file=sys.stderr, flush=True)
            sys.exit(7)
"#,
            seen = seen.display()
        ),
    )
}

fn seen(sb: &Sandbox, what: &str) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(sb.path().join("seen").join(what)).expect("seen file"),
    )
    .expect("seen json")
}

/// `airlock sync` of the scripted source into local-json under `root/out`.
fn sync(sb: &Sandbox, source: &Path, config: Value, extra: &[&str]) -> Run {
    let source = [
        "scripted",
        "--source-local-executable",
        source.to_str().unwrap(),
    ];
    sync_to_local_json(sb, &source, &config.to_string(), extra)
}

/// `airlock sync` of the scripted source into the destination `name`, a local
/// executable `destination` given `{}`.
fn sync_into(sb: &Sandbox, source: &Path, config: &Value, name: &str, destination: &Path) -> Run {
    sb.run(
        &[
            "sync",
            "--source",
            "scripted",
            "--source-config",
            &config.to_string(),
            "--source-local-executable",
            source.to_str().unwrap(),
            "--destination",
            name,
            "--destination-config",
            "{}",
            "--local-executable",
            destination.to_str().unwrap(),
        ],
        None,
    )
}

/// The `n` of every row local-json wrote for stream `s`, in file order.
fn written(sb: &Sandbox) -> Vec<i64> {
    let path = sb.path().join("root/out/_airbyte_raw_s.jsonl");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("row")["_airbyte_data"]["n"]
                .as_i64()
                .expect("n")
        })
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn a_second_write_of_the_same_cache_sends_only_what_was_not_confirmed() {
    let sb = Sandbox::new();
    let script = scripted_source(&sb);
    runtime().block_on(async {
        let source = get_source("scripted")
            .local_executable(&script)
            .config(json!({"records": 5}))
            .build()
            .expect("source");
        let cache = Cache::open(sb.path().join("cache.sqlite")).expect("cache");
        let read = source.read(&cache).await.expect("read");
        assert_eq!(read.total_records_read(), 5);
        assert_eq!(read.streams(), [airlock::protocol::StreamDescriptor::new("s")]);
        assert_eq!(
            read.records("s").expect("records"),
            (1..=5).map(|n| json!({ "n": n })).collect::<Vec<_>>(),
            "the cache can be queried"
        );
        let err = read.records("ghosts").expect_err("unknown stream");
        assert!(err.to_string().contains("no stream \"ghosts\""), "{err}");

        // dev-null FAILING dies after 2 messages: it confirms the first state only.
        // The failing and the healthy config are one destination by its id.
        let failing = airlock::get_destination("destination-dev-null")
            .config(json!({"test_destination": {"test_destination_type": "FAILING", "num_messages": 2}}))
            .id("dev-null")
            .build()
            .expect("failing");
        let store = Arc::new(StateStore::open(sb.state_db()).expect("state"));
        let err = failing
            .write(&read)
            .state_cache(store.clone())
            .run()
            .await
            .expect_err("the destination fails");
        let SyncError::Write(err) = err else {
            panic!("a write error: {err}")
        };
        let confirmed = err.partial.records_confirmed;
        assert!((1..5).contains(&confirmed), "{confirmed} confirmed");

        // The same cache, the same destination, now healthy: only the rest goes out.
        let healthy = airlock::get_destination("destination-dev-null")
            .config(json!({"test_destination": {"test_destination_type": "SILENT"}}))
            .id("dev-null")
            .build()
            .expect("healthy");
        let second = healthy.write(&read).state_cache(store.clone()).run().await.expect("second");
        assert_eq!(
            second.write.records_sent,
            5 - confirmed,
            "only what was not confirmed: {:?}",
            second.write
        );
        assert_eq!(second.write.records_confirmed, 5 - confirmed);
        let third = healthy
            .write(&read)
            .state_cache(store.clone())
            .run()
            .await
            .expect("third");
        assert_eq!(third.write.records_sent, 0, "everything is confirmed");

        // Another process can pick the cache up; a full refresh resends it all.
        let reopened = ReadResult::from_cache(cache.clone(), "scripted").expect("from cache");
        let again = healthy
            .write(&reopened)
            .force_full_refresh(true)
            .run()
            .await
            .expect("full");
        assert_eq!(again.write.records_sent, 5);
    });
}

#[test]
fn source_crashes_keep_the_confirmed_states_with_and_without_the_cache() {
    for mode in [&[][..], &["--no-cache"][..]] {
        let sb = Sandbox::new();
        let script = scripted_source(&sb);
        let run = sync(&sb, &script, json!({"crash_after": 2}), mode);
        run.expect_code(1);
        assert!(
            run.stderr.contains("exit code 7") && run.stderr.contains("source exploded"),
            "{mode:?}: {}",
            run.stderr
        );
        assert_eq!(
            stored_states(&sb.state_db())[0].1["stream"]["stream_state"]["n"],
            2,
            "{mode:?}: both confirmed states kept"
        );
        let run = sync(&sb, &script, json!({}), mode);
        run.expect_code(0);
        assert_eq!(
            seen(&sb, "state.json")[0]["stream"]["stream_state"]["n"],
            2,
            "{mode:?}: the rerun resumed"
        );
        assert_eq!(
            written(&sb),
            [1, 2, 3, 4, 5],
            "{mode:?}: nothing lost or repeated"
        );
    }
}

#[test]
fn global_and_legacy_states_make_the_round_trip() {
    for kind in ["GLOBAL", "LEGACY"] {
        for mode in [&[][..], &["--no-cache"][..]] {
            let sb = Sandbox::new();
            let script = scripted_source(&sb);
            let config = json!({"state_type": kind});
            sync(&sb, &script, config.clone(), mode).expect_code(0);
            let stored = stored_pair_states(&sb.state_db());
            assert_eq!(stored.len(), 1, "{kind} {mode:?}: {stored:?}");
            assert_eq!(stored[0].0, kind);
            let second = sync(&sb, &script, config, mode);
            second.expect_code(0);
            let state = seen(&sb, "state.json");
            assert_eq!(state[0]["type"], kind, "{kind} {mode:?}: {state}");
            if kind == "GLOBAL" {
                assert_eq!(state[0]["global"]["shared_state"]["cdc"], 3, "{state}");
            } else {
                assert_eq!(state[0]["data"]["n"], 3, "{state}");
            }
            assert_eq!(second.json()["resumed_from_state"], true);
            assert_eq!(written(&sb), [1, 2, 3, 4, 5, 6], "{kind} {mode:?}");
        }
    }
}

#[test]
fn a_config_updated_by_control_is_stored_used_next_time_and_reported() {
    let sb = Sandbox::new();
    let script = scripted_source(&sb);
    let given = json!({"records": 1, "token": "old", "control": {"records": 1, "token": "new"}});
    sync(&sb, &script, given.clone(), &[]).expect_code(0);
    assert_eq!(seen(&sb, "config.json")["token"], "old");
    sync(&sb, &script, given.clone(), &[]).expect_code(0);
    assert_eq!(
        seen(&sb, "config.json"),
        json!({"records": 1, "token": "new"}),
        "the second run used the config the source stored"
    );
    // Another given config is the user's choice: it is not overridden.
    sync(&sb, &script, json!({"records": 1, "token": "mine"}), &[]).expect_code(0);
    assert_eq!(seen(&sb, "config.json")["token"], "mine");

    // The library tells the caller.
    let updates = Arc::new(Mutex::new(Vec::new()));
    runtime().block_on(async {
        let source = get_source("scripted")
            .local_executable(&script)
            .config(json!({"records": 1, "control": {"token": "lib"}}))
            .build()
            .expect("source");
        let dest = airlock::get_noop_destination().expect("noop");
        let seen_updates = updates.clone();
        dest.write(&source)
            .no_cache()
            .on_config_update(move |u| seen_updates.lock().unwrap().push(u.clone()))
            .run()
            .await
            .expect("sync");
    });
    let updates = updates.lock().unwrap();
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].role, ConnectorRole::Source);
    assert_eq!(updates[0].connector, "scripted");
    assert_eq!(updates[0].config, json!({"token": "lib"}));
}

/// A destination script: `mode` "reject" refuses the catalog; "miscount" echoes
/// every state with a wrong destinationStats.recordCount.
fn scripted_destination(sb: &Sandbox, mode: &str) -> PathBuf {
    sb.script(
        &format!("dest-{mode}.py"),
        &format!(
            r#"#!/usr/bin/env python3
import json, sys
args = sys.argv[1:]
def out(m): print(json.dumps(m), flush=True)
if args[0] == "spec":
    out({{"type": "SPEC", "spec": {{"connectionSpecification": {{"type": "object"}}}}}})
elif args[0] == "write":
    if "{mode}" == "reject":
        out({{"type": "TRACE", "trace": {{"type": "ERROR", "emitted_at": 1.0, "error": {{"message": "stream s: destination_sync_mode append is not supported, use overwrite", "failure_type": "config_error"}}}}}})
        sys.exit(1)
    for line in sys.stdin:
        m = json.loads(line)
        if m["type"] == "STATE":
            m["state"]["destinationStats"] = {{"recordCount": 0.0}}
            out(m)
"#
        ),
    )
}

#[test]
fn a_destination_that_crashes_while_following_the_read_loses_nothing_and_the_read_is_kept() {
    let sb = Sandbox::new();
    let script = scripted_source(&sb);
    let out = sb.path().join("received.txt");
    let crash_once = sb.path().join("crash-once");
    std::fs::write(&crash_once, "").expect("marker");
    // Writes each record's n to a file, echoes states, and crashes after its
    // third state while the marker file exists (removing it).
    let destination = sb.script(
        "dest-crash-once.py",
        &format!(
            r#"#!/usr/bin/env python3
import json, os, sys
args = sys.argv[1:]
def out(m): print(json.dumps(m), flush=True)
if args[0] == "spec":
    out({{"type": "SPEC", "spec": {{"connectionSpecification": {{"type": "object"}}}}}})
    sys.exit(0)
states = 0
with open("{out}", "a") as received:
    for line in sys.stdin:
        m = json.loads(line)
        if m["type"] == "RECORD":
            received.write(str(m["record"]["data"]["n"]) + "\n")
            received.flush()
        elif m["type"] == "STATE":
            out(m)
            states += 1
            if states == 3 and os.path.exists("{marker}"):
                os.remove("{marker}")
                print("destination crashed on purpose", file=sys.stderr, flush=True)
                sys.exit(3)
"#,
            out = out.display(),
            marker = crash_once.display()
        ),
    );
    let config = json!({"records": 40, "sleep": 0.05});
    let run_sync = || sync_into(&sb, &script, &config, "crashy", &destination);
    let run = run_sync();
    run.expect_code(1);
    assert!(
        run.stderr.contains("destination crashed on purpose"),
        "{}",
        run.stderr
    );
    let cached: Value = rusqlite::Connection::open(sb.home().join("cache/default.sqlite"))
        .and_then(|c| {
            c.query_row("SELECT state_json FROM source_state", [], |r| {
                r.get::<_, String>(0)
            })
        })
        .map(|j| serde_json::from_str(&j).expect("state json"))
        .expect("a cached state");
    let cached = cached["stream"]["stream_state"]["n"].as_i64().expect("n");
    assert_eq!(
        cached, 40,
        "the read went on to its end after the destination failed"
    );
    assert_eq!(
        stored_states(&sb.state_db())[0].1["stream"]["stream_state"]["n"],
        3,
        "the destination's confirmed states are kept"
    );

    // The rerun delivers what the cache still owes, then the source's new records.
    let run = run_sync();
    run.expect_code(0);
    let resumed = seen(&sb, "state.json")[0]["stream"]["stream_state"]["n"]
        .as_i64()
        .expect("resumed from a state");
    assert_eq!(resumed, 40, "the source resumed after what was cached");
    let mut received: Vec<i64> = std::fs::read_to_string(&out)
        .expect("received")
        .lines()
        .map(|l| l.parse().expect("n"))
        .collect();
    received.sort_unstable();
    received.dedup();
    assert_eq!(
        received,
        (1..=80).collect::<Vec<_>>(),
        "every record reached the destination"
    );
}

#[test]
fn a_catalog_the_destination_rejects_is_a_clear_error_and_nothing_is_lost() {
    let sb = Sandbox::new();
    let script = scripted_source(&sb);
    let rejecting = scripted_destination(&sb, "reject");
    let run = sync_into(&sb, &script, &json!({}), "picky", &rejecting);
    run.expect_code(1);
    assert!(
        run.stderr.contains("picky")
            && run
                .stderr
                .contains("destination_sync_mode append is not supported"),
        "{}",
        run.stderr
    );
    assert!(
        stored_states(&sb.state_db()).is_empty(),
        "nothing confirmed"
    );
    // The read is cached: the next sync to a destination that takes it delivers
    // every record, without the source reading them again.
    let run = sync(&sb, &script, json!({"records": 0}), &[]);
    run.expect_code(0);
    assert_eq!(written(&sb), [1, 2, 3]);
}

#[test]
fn destination_stats_that_disagree_are_warned_about() {
    let sb = Sandbox::new();
    let script = scripted_source(&sb);
    let miscounting = scripted_destination(&sb, "miscount");
    let run = sb.run(
        &[
            "sync",
            "--source",
            "scripted",
            "--source-config",
            "{}",
            "--source-local-executable",
            script.to_str().unwrap(),
            "--destination",
            "miscounter",
            "--destination-config",
            "{}",
            "--local-executable",
            miscounting.to_str().unwrap(),
            "--json",
        ],
        None,
    );
    run.expect_code(0);
    let result = run.json();
    assert_eq!(result["records_confirmed"], 3);
    let warnings = result["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 3, "{result}");
    assert!(
        warnings[0].as_str().unwrap().contains(
            "reported 0 records (destinationStats) for the state of stream s, but airlock sent 1"
        ),
        "{warnings:?}"
    );
    assert!(run.stderr.contains("warning"), "{}", run.stderr);
    assert_eq!(stream_json(&result, "s")["read"], 3);
    assert_eq!(stream_json(&result, "s")["reported_by_destination"], 0);
}

/// Counts rows of `table` in the SQLite file at `db`; 0 while it is not there yet.
fn rows_in(db: &Path, table: &str) -> i64 {
    rusqlite::Connection::open(db)
        .and_then(|c| c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)))
        .unwrap_or(0)
}

#[test]
fn an_interrupted_sync_resumes_with_nothing_lost() {
    // Ctrl-C lands while records stream into the destination: with the cache,
    // while the source is still being read into it, too.
    for no_cache in [false, true] {
        let sb = Sandbox::new();
        let script = scripted_source(&sb);
        let config = json!({"records": 60, "sleep": 0.05}).to_string();
        let source = [
            "scripted",
            "--source-local-executable",
            script.to_str().unwrap(),
        ];
        let extra: &[&str] = if no_cache { &["--no-cache"] } else { &[] };
        let mut cmd = sync_to_local_json_command(&sb, &source, &config, extra);
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let child = cmd.spawn().expect("spawn");
        let progressed = || {
            // With the cache, the destination follows the read: Ctrl-C lands
            // once both sides have got going.
            rows_in(&sb.state_db(), "stream_state") > 0
                && (no_cache
                    || rows_in(&sb.home().join("cache/default.sqlite"), "source_state") > 0)
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !progressed() {
            assert!(
                std::time::Instant::now() < deadline,
                "the sync never got going"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        // Ctrl-C, as a user would.
        rustix::process::kill_process(
            rustix::process::Pid::from_child(&child),
            rustix::process::Signal::INT,
        )
        .expect("SIGINT");
        let output = child.wait_with_output().expect("wait");
        assert_eq!(
            output.status.code(),
            Some(130),
            "no_cache={no_cache}: {}",
            String::from_utf8_lossy(&output.stderr)
        );

        let mut extra = vec![];
        if no_cache {
            extra.push("--no-cache");
        }
        let run = sync(&sb, &script, json!({"records": 10}), &extra);
        run.expect_code(0);
        let seen_state = seen(&sb, "state.json");
        let resumed_at = seen_state[0]["stream"]["stream_state"]["n"]
            .as_i64()
            .unwrap_or(0);
        assert!(
            resumed_at > 0 && resumed_at < 60,
            "no_cache={no_cache}: the rerun resumed mid-way: {seen_state}"
        );
        let mut rows = written(&sb);
        rows.sort_unstable();
        rows.dedup();
        assert_eq!(
            rows,
            (1..=resumed_at + 10).collect::<Vec<_>>(),
            "no_cache={no_cache}: every record the source emitted reached the destination"
        );
    }
}

#[test]
fn progress_is_reported_while_reading_into_the_cache_and_while_writing() {
    let sb = Sandbox::new();
    let script = scripted_source(&sb);
    let snapshots = Arc::new(Mutex::new(Vec::new()));
    runtime().block_on(async {
        // A state after each record, 50 ms apart: a read of two seconds.
        let source = get_source("scripted")
            .local_executable(&script)
            .config(json!({"records": 40, "sleep": 0.05}))
            .build()
            .expect("source");
        // A destination a little slower than the source, so the write is seen
        // following the read and after it.
        let dest = airlock::get_destination("destination-dev-null")
            .config(json!({"test_destination": {"test_destination_type": "THROTTLED", "millis_per_record": 60}}))
            .build()
            .expect("dest");
        // Compiled before the sync (slow in a debug build on a busy machine), so
        // the destination is ready once the read commits its first slice.
        dest.spec().await.expect("spec");
        let seen = snapshots.clone();
        dest.write(&source)
            .cache(Cache::open(sb.path().join("c.sqlite")).expect("cache"))
            .options(airlock::write::WriteOptions {
                progress_interval: std::time::Duration::from_millis(50),
                ..Default::default()
            })
            .on_progress(move |p| seen.lock().unwrap().push((p.reading, p.records_sent)))
            .run()
            .await
            .expect("sync");
    });
    let snapshots = snapshots.lock().unwrap();
    assert!(
        snapshots
            .iter()
            .any(|(reading, _)| reading.is_some_and(|n| n > 0)),
        "the read was reported: {snapshots:?}"
    );
    assert!(
        snapshots
            .iter()
            .any(|(reading, sent)| reading.is_some() && *sent > 0),
        "the destination received records while the read went on: {snapshots:?}"
    );
    let over = snapshots
        .iter()
        .position(|(reading, sent)| reading.is_none() && *sent > 0)
        .unwrap_or_else(|| panic!("the write was reported after the read: {snapshots:?}"));
    assert!(
        snapshots[over..]
            .iter()
            .all(|(reading, _)| reading.is_none()),
        "once over, the read stays over: {snapshots:?}"
    );
}

#[test]
fn switching_between_the_cache_and_no_cache_delivers_each_record_once() {
    let sb = Sandbox::new();
    let script = scripted_source(&sb);
    // cached, then straight through, then cached again: each run must resume from
    // the freshest confirmed state, whichever way the last one went.
    for (run, extra) in [&[][..], &["--no-cache"][..], &[][..], &["--no-cache"][..]]
        .into_iter()
        .enumerate()
    {
        let result = sync(&sb, &script, json!({}), extra);
        result.expect_code(0);
        assert_eq!(
            result.json()["records_sent"],
            3,
            "run {run}: {}",
            result.stdout
        );
    }
    assert_eq!(
        written(&sb),
        (1..=12).collect::<Vec<_>>(),
        "nothing read twice, nothing lost"
    );
}
