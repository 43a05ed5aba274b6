use serde_json::json;

use super::fill::{FillPlan, FillProgress, fill};
use super::replay::{
    PendingPositions, PositionWriter, ReplayPlan, SentStates, Tail, replay, resume_catalog,
};
use super::*;
use crate::executor::OutputEvent;
use crate::protocol::{DestinationSyncMode, LineBatch};

fn catalog(mode: &str, sync_mode: &str) -> ConfiguredAirbyteCatalog {
    serde_json::from_value(json!({"streams": [
        {"stream": {"name": "s", "json_schema": {}, "supported_sync_modes": ["full_refresh", "incremental"]},
         "sync_mode": sync_mode, "destination_sync_mode": mode}
    ]}))
    .expect("catalog")
}

fn record(n: i64) -> String {
    format!(r#"{{"type":"RECORD","record":{{"stream":"s","data":{{"n":{n}}},"emitted_at":1}}}}"#)
}

fn state(n: i64) -> String {
    format!(
        r#"{{"type":"STATE","state":{{"type":"STREAM","stream":{{"stream_descriptor":{{"name":"s"}},"stream_state":{{"n":{n}}}}},"sourceStats":{{"recordCount":1.0}}}}}}"#
    )
}

/// The plan of a fill of stream `s` of source `src`.
fn fill_plan(
    restart: bool,
    commits: Option<tokio::sync::watch::Sender<FillProgress>>,
    positions: Option<Arc<PendingPositions>>,
) -> FillPlan {
    FillPlan {
        source: "src".into(),
        catalog: catalog("append", "incremental"),
        restart,
        control: None,
        counter: None,
        commits,
        positions,
    }
}

/// Fills `cache` from `lines`; `ok` says whether the source exited cleanly.
fn fill_lines(cache: &Cache, lines: &[String], ok: bool, restart: bool) -> fill::FillSummary {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut bytes = lines.join("\n").into_bytes();
    bytes.push(b'\n');
    tx.try_send(OutputEvent::Lines(LineBatch::from_lines(bytes)))
        .expect("send");
    drop(tx);
    let (keep, keep_rx) = tokio::sync::oneshot::channel();
    keep.send(ok).expect("keep");
    let plan = fill_plan(restart, None, None);
    fill(cache, plan, rx, keep_rx).expect("fill")
}

fn replay_all(cache: &Cache, destination: &str) -> (Vec<String>, Vec<(i64, String)>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let plan = ReplayPlan {
        source: "src".into(),
        slots: ["s".to_owned()].into_iter().collect(),
        positions: cache.positions("src", destination).expect("positions"),
    };
    let (writer, mut reader) = tokio::io::duplex(1 << 20);
    let sent: SentStates = Default::default();
    let handle = runtime.handle().clone();
    let thread_sent = sent.clone();
    let path = cache.path().to_owned();
    let worker = std::thread::spawn(move || {
        let cache = Cache::open(&path).expect("reopen");
        replay(&cache, &plan, writer, thread_sent, handle, None).expect("replay");
    });
    let mut out = Vec::new();
    runtime.block_on(async {
        use tokio::io::AsyncReadExt;
        reader.read_to_end(&mut out).await.expect("read");
    });
    worker.join().expect("join");
    let lines = String::from_utf8(out)
        .expect("utf8")
        .lines()
        .map(str::to_owned)
        .collect();
    let sent = sent.lock().expect("lock").clone();
    (lines, sent)
}

#[test]
fn a_cache_of_an_older_format_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("old.sqlite");
    let conn = rusqlite::Connection::open(&path).expect("open");
    conn.execute_batch(&format!(
        "CREATE TABLE records (stream TEXT, json TEXT);
         PRAGMA application_id = {APPLICATION_ID};
         PRAGMA user_version = 0;"
    ))
    .expect("old layout");
    drop(conn);
    let error = Cache::open(&path).expect_err("older format");
    let text = error.to_string();
    assert!(
        matches!(error, CacheError::OlderFormat { found: 0, .. }),
        "{text}"
    );
    assert!(
        text.contains("format 0")
            && text.contains("delete it")
            && text.contains("another cache file"),
        "{text}"
    );
    assert_eq!(error.remedy(), Some(crate::remedy::Remedy::UseAnotherCache));
}

#[test]
fn another_sqlite_database_is_not_taken_for_a_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    rusqlite::Connection::open(&path)
        .expect("open")
        .execute_batch("CREATE TABLE stream_state (x TEXT);")
        .expect("table");
    let error = Cache::open(&path).expect_err("foreign");
    assert!(
        error.to_string().contains("is not an airlock cache"),
        "{error}"
    );
    let newer = dir.path().join("newer.sqlite");
    rusqlite::Connection::open(&newer)
        .expect("open")
        .execute_batch(&format!(
            "CREATE TABLE t (x); PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = 99;"
        ))
        .expect("newer");
    assert!(matches!(
        Cache::open(&newer),
        Err(CacheError::NewerFormat { found: 99, .. })
    ));
}

#[test]
fn a_failed_read_keeps_what_came_up_to_its_last_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = Cache::open(dir.path().join("c.sqlite")).expect("cache");
    let summary = fill_lines(
        &cache,
        &[record(1), state(1), record(2), state(2), record(3)],
        false,
        false,
    );
    assert_eq!(summary.states, 2);
    assert_eq!(
        cache.record_counts("src").expect("counts")[&StreamDescriptor::new("s")],
        2,
        "record 3 rolled back"
    );
    let resume = cache
        .source_state("src")
        .expect("state")
        .to_input_state()
        .expect("some");
    assert_eq!(resume[0]["stream"]["stream_state"]["n"], 2);
    assert!(
        resume[0].get("sourceStats").is_none(),
        "stats are not part of the input state"
    );

    fill_lines(&cache, &[record(3), state(3), record(4)], true, false);
    let records = cache
        .records("src", &StreamDescriptor::new("s"))
        .expect("records");
    assert_eq!(
        records,
        [
            json!({"n":1}),
            json!({"n":2}),
            json!({"n":3}),
            json!({"n":4})
        ]
    );
}

#[test]
fn a_replay_sends_only_what_the_destination_has_not_confirmed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = Cache::open(dir.path().join("c.sqlite")).expect("cache");
    fill_lines(
        &cache,
        &[
            record(1),
            state(1),
            record(2),
            state(2),
            record(3),
            state(3),
        ],
        true,
        false,
    );
    let (lines, sent) = replay_all(&cache, "dest");
    assert_eq!(lines.len(), 6, "a new destination gets everything");
    assert_eq!(lines[0], record(1), "lines go out as the source wrote them");
    assert_eq!(sent.len(), 3);

    // The destination confirmed the first two states.
    cache.confirm("src", "dest", &sent[..2]).expect("confirm");
    let (lines, _) = replay_all(&cache, "dest");
    assert_eq!(lines, [record(3), state(3)]);
    let (lines, _) = replay_all(&cache, "other-dest");
    assert_eq!(lines.len(), 6, "positions are per destination");

    cache.confirm("src", "dest", &sent[2..]).expect("confirm");
    assert!(
        replay_all(&cache, "dest").0.is_empty(),
        "all confirmed: nothing to send"
    );

    // A full-refresh read starts the log again, and every position with it.
    fill_lines(&cache, &[record(7), state(7)], true, true);
    assert_eq!(replay_all(&cache, "dest").0, [record(7), state(7)]);
}

#[test]
fn a_resumed_overwrite_continues_as_append() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = Cache::open(dir.path().join("c.sqlite")).expect("cache");
    fill_lines(
        &cache,
        &[record(1), state(1), record(2), state(2)],
        true,
        false,
    );
    let mut plan = ReplayPlan {
        source: "src".into(),
        slots: ["s".to_owned()].into_iter().collect(),
        positions: Default::default(),
    };
    let first = cache.first_rows("src").expect("first");
    let mut fresh = catalog("overwrite", "full_refresh");
    resume_catalog(&mut fresh, &plan, &first);
    assert_eq!(
        fresh.streams[0].destination_sync_mode,
        DestinationSyncMode::Overwrite,
        "nothing confirmed yet: overwrite as asked"
    );
    plan.positions.insert("s".into(), 2);
    let mut resumed = catalog("overwrite", "full_refresh");
    resume_catalog(&mut resumed, &plan, &first);
    assert_eq!(
        resumed.streams[0].destination_sync_mode,
        DestinationSyncMode::Append,
        "part of this copy is confirmed: do not wipe it"
    );
}

/// A runtime with `workers` threads, for a replay on a thread of its own.
fn runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Replays stream `s` of `src` on a thread of its own, following `tail`.
fn spawn_tailing_replay(
    cache: &Arc<Cache>,
    runtime: &tokio::runtime::Runtime,
    writer: tokio::io::DuplexStream,
    sent: SentStates,
    tail: Tail,
) -> std::thread::JoinHandle<Result<replay::ReplaySummary, CacheError>> {
    let (cache, handle) = (cache.clone(), runtime.handle().clone());
    std::thread::spawn(move || {
        let plan = ReplayPlan {
            source: "src".into(),
            slots: ["s".to_owned()].into_iter().collect(),
            positions: Default::default(),
        };
        replay(&cache, &plan, writer, sent, handle, Some(tail))
    })
}

/// Reads one line of `reader`, or fails after 20 s (a replay that does not tail
/// the fill would hold it back until the fill ends, which this test never lets
/// happen first).
async fn next_line(reader: &mut (impl tokio::io::AsyncBufRead + Unpin)) -> String {
    use tokio::io::AsyncBufReadExt;
    let mut line = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(20),
        reader.read_line(&mut line),
    )
    .await
    .expect("the replay sends each slice once it is committed, before the read ends")
    .expect("read");
    line.trim_end().to_owned()
}

#[test]
fn a_tailing_replay_sends_each_slice_once_committed_and_never_the_rolled_back_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = Cache::open(dir.path().join("c.sqlite")).expect("open");
    let runtime = runtime(2);
    let (lines_tx, lines_rx) = tokio::sync::mpsc::channel(4);
    let (keep, keep_rx) = tokio::sync::oneshot::channel();
    let (commits, progress) = tokio::sync::watch::channel(FillProgress::default());
    let plan = fill_plan(false, Some(commits), None);
    let filling = {
        let cache = cache.clone();
        std::thread::spawn(move || fill(&cache, plan, lines_rx, keep_rx))
    };
    let send = |lines: &[String]| {
        let mut bytes = lines.join("\n").into_bytes();
        bytes.push(b'\n');
        lines_tx
            .blocking_send(OutputEvent::Lines(LineBatch::from_lines(bytes)))
            .expect("send");
    };
    let (writer, reader) = tokio::io::duplex(1 << 20);
    let sent: SentStates = Default::default();
    let write_over = Arc::new(tokio::sync::Notify::new());
    let tail = Tail {
        progress,
        write_over: write_over.clone(),
    };
    let replaying = spawn_tailing_replay(&cache, &runtime, writer, sent.clone(), tail);
    let mut reader = tokio::io::BufReader::new(reader);
    // Slice 1 reaches the reader while the read goes on.
    send(&[record(1), record(2), state(2)]);
    let first: Vec<String> = runtime.block_on(async {
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(next_line(&mut reader).await);
        }
        got
    });
    assert_eq!(first, [record(1), record(2), state(2)]);
    // Slice 2, then a tail the source never covers with a state: it fails.
    send(&[record(3), state(3), record(4)]);
    drop(lines_tx);
    keep.send(false).expect("keep");
    filling.join().expect("fill thread").expect("fill");
    let rest = runtime.block_on(async {
        use tokio::io::AsyncReadExt;
        let mut rest = String::new();
        reader.read_to_string(&mut rest).await.expect("read");
        rest
    });
    assert_eq!(
        rest.lines().collect::<Vec<_>>(),
        [record(3), state(3)],
        "the rolled-back record 4 never goes out"
    );
    let summary = replaying.join().expect("replay thread").expect("replay");
    assert_eq!(summary.rows_sent, 4, "two runs of records, two states");
    assert_eq!(sent.lock().expect("sent").len(), 2);
}

#[test]
fn a_tailing_replay_stops_waiting_when_the_write_is_over() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = Cache::open(dir.path().join("c.sqlite")).expect("open");
    let runtime = runtime(1);
    // A fill that never commits nor ends (its sender is held).
    let (_commits, progress) = tokio::sync::watch::channel(FillProgress::default());
    let (writer, reader) = tokio::io::duplex(1 << 20);
    let write_over = Arc::new(tokio::sync::Notify::new());
    let tail = Tail {
        progress,
        write_over: write_over.clone(),
    };
    let replaying = spawn_tailing_replay(&cache, &runtime, writer, Default::default(), tail);
    drop(reader);
    write_over.notify_one();
    let summary = replaying.join().expect("replay thread").expect("replay");
    assert_eq!(summary.rows_sent, 0);
}

#[test]
fn confirmed_positions_wait_for_a_held_write_lock_without_holding_up_the_caller() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = Cache::open(dir.path().join("c.sqlite")).expect("open");
    fill_lines(&cache, &[record(1), state(1)], true, false);
    // Another writer (a fill, say) holds the lock.
    let mut holder = cache.connect().expect("connect");
    let held = holder
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .expect("lock");
    let pending = PendingPositions::new("src", "dest");
    let writer = PositionWriter::start(cache.clone(), pending.clone(), "dest".into());
    pending.push(&[(2, "s".to_owned())]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        cache
            .positions("src", "dest")
            .expect("positions")
            .is_empty(),
        "nothing stored while the lock is held"
    );
    held.commit().expect("release");
    writer.finish();
    assert_eq!(
        cache.positions("src", "dest").expect("positions")["s"],
        2,
        "stored once the lock was free"
    );
}

#[test]
fn a_fill_stores_the_positions_pending_with_its_slices() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = Cache::open(dir.path().join("c.sqlite")).expect("open");
    // Queued, with no writer: the fill alone stores them, with its slice.
    let pending = PendingPositions::new("src", "dest");
    pending.push(&[(7, "s".to_owned())]);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut bytes = [record(1), state(1)].join("\n").into_bytes();
    bytes.push(b'\n');
    tx.try_send(OutputEvent::Lines(LineBatch::from_lines(bytes)))
        .expect("send");
    drop(tx);
    let (keep, keep_rx) = tokio::sync::oneshot::channel();
    keep.send(true).expect("keep");
    let plan = fill_plan(false, None, Some(pending));
    fill(&cache, plan, rx, keep_rx).expect("fill");
    assert_eq!(cache.positions("src", "dest").expect("positions")["s"], 7);
}

/// Fills `cache` from `batches` (one output event each) with a commit watcher;
/// `ok` says whether the source exited cleanly. Returns the commits made.
fn fill_batches(cache: &Cache, batches: &[Vec<String>], ok: bool) -> u64 {
    let (tx, rx) = tokio::sync::mpsc::channel(batches.len().max(1));
    for lines in batches {
        let mut bytes = lines.join("\n").into_bytes();
        bytes.push(b'\n');
        tx.try_send(OutputEvent::Lines(LineBatch::from_lines(bytes)))
            .expect("send");
    }
    drop(tx);
    let (keep, keep_rx) = tokio::sync::oneshot::channel();
    keep.send(ok).expect("keep");
    let (commits, progress) = tokio::sync::watch::channel(FillProgress::default());
    let plan = fill_plan(false, Some(commits), None);
    fill(cache, plan, rx, keep_rx).expect("fill");
    progress.borrow().commits
}

#[test]
fn a_fast_source_gets_its_states_committed_in_groups() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = Cache::open(dir.path().join("c.sqlite")).expect("open");
    let lines: Vec<String> = (1..=1000).flat_map(|n| [record(n), state(n)]).collect();
    let started = std::time::Instant::now();
    let commits = fill_batches(&cache, &[lines], true);
    // A commit is due every 100 ms (the batch is far below 4 MiB), then one when
    // the batch is done and one at the end: however slow this machine is today.
    let bound = u64::try_from(started.elapsed().as_millis() / 100).unwrap_or(u64::MAX) + 3;
    assert!(
        commits <= bound && commits < 1000,
        "a thousand states in one batch, {commits} commits (at most {bound})"
    );
    let (replayed, sent) = replay_all(&cache, "d");
    assert_eq!(sent.len(), 1000, "every state is kept");
    assert_eq!(replayed.len(), 2000);
}

#[test]
fn a_failed_source_keeps_what_ends_at_its_last_state_even_past_a_spilled_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = Cache::open(dir.path().join("c.sqlite")).expect("open");
    let padded = |n: i64| {
        format!(
            r#"{{"type":"RECORD","record":{{"stream":"s","data":{{"n":{n},"pad":"{}"}},"emitted_at":1}}}}"#,
            "x".repeat(1000)
        )
    };
    // A state, then more records after it than a tail is kept in memory: they go
    // into the transaction; the source then fails before its next state.
    let mut big: Vec<String> = vec![record(1), state(1)];
    big.extend((2..=10_000).map(padded));
    fill_batches(&cache, &[big], false);
    let (replayed, _) = replay_all(&cache, "d");
    assert_eq!(
        replayed,
        [record(1), state(1)],
        "the spilled tail is rolled back"
    );
    let resume = cache
        .source_state("src")
        .expect("state")
        .to_input_state()
        .expect("a state");
    assert_eq!(resume[0]["stream"]["stream_state"]["n"], 1, "{resume}");
    // The same with a state after the spill: what ends there is kept.
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = Cache::open(dir.path().join("c.sqlite")).expect("open");
    let mut big: Vec<String> = vec![record(1), state(1)];
    big.extend((2..=10_000).map(padded));
    big.push(state(10_000));
    big.push(record(10_001));
    fill_batches(&cache, &[big], false);
    let (replayed, sent) = replay_all(&cache, "d");
    assert_eq!(sent.len(), 2, "both states kept");
    assert_eq!(
        replayed.last().map(String::as_str),
        Some(state(10_000).as_str()),
        "the tail after the last state is not"
    );
}
