//! A host killed at any point leaves the state database consistent, holding only
//! states the destination confirmed, and losing none of them.
//!
//! The kill is placed by what the database shows, not by the clock: the test polls
//! the state database until the destination has confirmed at least N states, then
//! SIGKILLs the host. A slow machine therefore makes the test slower, never vacuous;
//! a host that never gets that far fails it.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::*;

/// Records per STATE in the input.
const RECORDS_PER_STATE: i64 = 10;
/// Records in each round's input: at 2 ms per record the throttled destination needs
/// 4 s for all of them, far longer than the deepest kill point (250 records).
const RECORDS_PER_ROUND: i64 = 2000;
/// How long a round may take to reach its kill point before the test fails.
const REACH_TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn killing_the_host_mid_write_leaves_a_consistent_state_database() {
    let sb = Sandbox::new();
    let bin = plugin_bin("destination-dev-null");
    let throttled =
        r#"{"test_destination":{"test_destination_type":"THROTTLED","millis_per_record":2}}"#;
    let catalog_json = catalog(&[("users", None)]);
    // One database for all rounds: each round also opens what the previous kill left.
    // Cursors are offset per round, so a round's progress is never confused with a
    // state an earlier round left behind.
    for (round, confirmed_before_kill) in [3i64, 10, 25].into_iter().enumerate() {
        let base = (round as i64 + 1) * 1_000_000;
        let mut input = Vec::new();
        for i in 0..RECORDS_PER_ROUND {
            input.push(record("users", json!({"id": base + i})));
            if i % RECORDS_PER_STATE == RECORDS_PER_STATE - 1 {
                input.push(state("users", base + i));
            }
        }
        let input_path = sb.file(&format!("input-{round}.jsonl"), lines(&input));
        let stderr_path = sb.path().join(format!("stderr-{round}.txt"));
        let mut cmd = sb.airlock();
        cmd.args([
            "write",
            "destination-dev-null",
            "--config",
            throttled,
            "--catalog",
            &catalog_json,
            "--input",
            input_path.to_str().unwrap(),
            "--state-db",
            sb.state_db().to_str().unwrap(),
            "--local-executable",
            bin.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"));
        let mut child = cmd.spawn().expect("spawn");

        // The cursor of the N-th state of this round.
        let kill_point = base + confirmed_before_kill * RECORDS_PER_STATE - 1;
        let observed = wait_for_cursor(&sb.state_db(), &mut child, kill_point, &stderr_path);
        let destination = child_processes(child.id());
        child.kill().expect("SIGKILL the host");
        child.wait().expect("reap");
        // The destination outlives its host only until it finds its pipes gone.
        reap_orphans(&destination);

        let conn = rusqlite::Connection::open(sb.state_db()).expect("open");
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("integrity");
        assert_eq!(check, "ok", "round {round}: integrity_check");
        drop(conn);
        let stored = stored_states(&sb.state_db());
        assert_eq!(
            stored.len(),
            1,
            "round {round}: one stream of one pair, one stored state: {stored:?}"
        );
        let (stream, state) = &stored[0];
        assert_eq!(stream, "users");
        let cursor = cursor_of(state).expect("a cursor in the stored state");
        assert!(
            (base..base + RECORDS_PER_ROUND).contains(&cursor)
                && cursor % RECORDS_PER_STATE == RECORDS_PER_STATE - 1,
            "round {round}: the stored state is not one this round sent: {state}"
        );
        assert!(
            cursor >= observed,
            "round {round}: a confirmed state was lost: cursor {observed} was stored \
             before the kill, {cursor} after it"
        );
        assert_eq!(
            state["destinationStats"]["recordCount"],
            json!(RECORDS_PER_STATE as f64),
            "round {round}: only echoed states are stored: {state}"
        );
        eprintln!(
            "round {round}: killed at cursor {observed} ({} states confirmed), {} stored",
            (observed - base + 1) / RECORDS_PER_STATE,
            (cursor - base + 1) / RECORDS_PER_STATE
        );
    }
}

/// The cursor of a stored `users` state.
fn cursor_of(state: &Value) -> Option<i64> {
    state["stream"]["stream_state"]["cursor"].as_i64()
}

/// Polls the state database (read-only, as a second process would) until a stored
/// cursor reaches `target`, and returns the highest one seen. While the host starts
/// the file or its tables may be missing or locked: that is retried. Fails the test
/// if the host exits first or `target` is not reached within [`REACH_TIMEOUT`].
fn wait_for_cursor(db: &Path, host: &mut Child, target: i64, stderr: &Path) -> i64 {
    let started = Instant::now();
    let mut best: Option<i64> = None;
    let mut last_error = String::from("none");
    loop {
        match max_stored_cursor(db) {
            Ok(Some(cursor)) => {
                best = best.max(Some(cursor));
                if cursor >= target {
                    return cursor;
                }
            }
            Ok(None) => {}
            Err(e) => last_error = e.to_string(),
        }
        if let Some(status) = host.try_wait().expect("poll the host") {
            panic!(
                "the host exited ({status}) before cursor {target} was confirmed \
                 (highest seen: {best:?}); its stderr:\n{}",
                std::fs::read_to_string(stderr).unwrap_or_default()
            );
        }
        if started.elapsed() > REACH_TIMEOUT {
            let _ = host.kill();
            let _ = host.wait();
            panic!(
                "cursor {target} was not confirmed within {REACH_TIMEOUT:?} (highest seen: \
                 {best:?}, last database error: {last_error}); the kill would have proven \
                 nothing. The host's stderr:\n{}",
                std::fs::read_to_string(stderr).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The highest cursor stored for any pair (the destination's key is not matched: its
/// exact text is the store's business).
fn max_stored_cursor(db: &Path) -> rusqlite::Result<Option<i64>> {
    use rusqlite::OpenFlags;
    let conn = rusqlite::Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let mut stmt = conn.prepare("SELECT state_json FROM stream_state")?;
    let rows = stmt.query_map([], |row| row.get::<_, String>(0))?;
    let mut best = None;
    for json in rows {
        let state: Value = serde_json::from_str(&json?).unwrap_or(Value::Null);
        best = best.max(cursor_of(&state));
    }
    Ok(best)
}

/// The pids of `pid`'s child processes (Linux; empty elsewhere).
fn child_processes(pid: u32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Waits up to 10 s for the processes a killed host left behind to exit, then kills
/// what remains, so that no throttled destination outlives the test.
fn reap_orphans(pids: &[i32]) {
    let alive = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| !stat.rsplit(')').next().unwrap_or("").starts_with(" Z"))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|&p| alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    for &pid in pids.iter().filter(|&&p| alive(p)) {
        if let Some(pid) = rustix::process::Pid::from_raw(pid) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
}
