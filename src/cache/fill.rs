//! Filling the cache from a source's output.
//!
//! Owns turning output lines into message rows, committing at each STATE, and
//! rolling back the tail after the last STATE when the source fails; and telling
//! whoever tails the read (a pipelined replay) of each commit and of the end. It
//! runs on a blocking thread (SQLite is synchronous), on a connection of its own so
//! that readers and confirmations go on beside it, and does not run the source.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use rusqlite::{OptionalExtension, params};
use tokio::sync::{mpsc, oneshot, watch};

use super::replay::PendingPositions;
use super::{Cache, CacheError, RowKind, slot_descriptor, state_slot, stream_slot};
use crate::executor::OutputEvent;
use crate::protocol::{
    ConfiguredAirbyteCatalog, LinePeek, MessageType, Payload, StreamDescriptor, SyncMode,
    TraceType, parse_message, peek_line,
};

pub use crate::write::ControlCallback;

/// What to fill, and how.
pub(crate) struct FillPlan {
    pub source: String,
    pub catalog: ConfiguredAirbyteCatalog,
    /// Start the source's log again (a full refresh).
    pub restart: bool,
    pub control: Option<ControlCallback>,
    /// Counts records as they are cached, for a progress display.
    pub counter: Option<Arc<std::sync::atomic::AtomicU64>>,
    /// Told of each commit and of the end (see [`FillProgress`]).
    pub commits: Option<watch::Sender<FillProgress>>,
    /// A destination's confirmed positions, stored with each slice while the
    /// fill holds the write lock (a replay follows this fill).
    pub positions: Option<Arc<PendingPositions>>,
}

/// How far a fill is, for a replay that tails it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct FillProgress {
    /// Slices committed so far (each ends at a STATE, the last may end at the
    /// source's clean exit).
    pub commits: u64,
    /// The fill is over: nothing more will be committed.
    pub finished: bool,
}

/// What a fill added.
#[derive(Debug, Default)]
pub(crate) struct FillSummary {
    pub records: BTreeMap<StreamDescriptor, u64>,
    pub states: u64,
    pub lines_skipped: u64,
    pub records_skipped: u64,
}

/// Reads `output` to its end into `cache`, committing at STATE boundaries; then
/// waits for `keep_tail`: `true` commits what came after the last STATE too (the
/// source exited cleanly), `false` keeps only what ends at the last STATE (it
/// failed).
///
/// Commits are grouped: the records after the last STATE stay in memory (up to
/// [`MAX_TAIL_BYTES`]), so the open transaction always ends at a STATE and can be
/// committed whenever that is due — [`COMMIT_EVERY`] or [`COMMIT_BYTES`] after the
/// last commit, or as soon as the source has nothing more to say for now — rather
/// than at each STATE (a commit per 100 records cost a third of a cached sync).
pub(crate) fn fill(
    cache: &Cache,
    plan: FillPlan,
    mut output: mpsc::Receiver<OutputEvent>,
    keep_tail: oneshot::Receiver<bool>,
) -> Result<FillSummary, CacheError> {
    let sql = cache.sql_error();
    // However the fill ends, a tailing replay learns that nothing more comes.
    let _finished = Finished(plan.commits.clone());
    let conn = cache.connect()?;
    conn.execute_batch("BEGIN").map_err(&sql)?;
    let source_id = match prepare(cache, &conn, &plan) {
        Ok(id) => id,
        Err(error) => {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(error);
        }
    };
    let in_catalog: HashSet<String> = plan
        .catalog
        .streams
        .iter()
        .map(|s| stream_slot(&s.stream.name, s.stream.namespace.as_deref()))
        .collect();
    let mut summary = FillSummary::default();
    let mut records: BTreeMap<String, u64> = BTreeMap::new();
    let mut slice = Slice::new(&plan);
    let result = (|| -> Result<(), CacheError> {
        let mut insert = conn
            .prepare_cached(
                "INSERT INTO message (source_id, kind, slot, records, line) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(&sql)?;
        let mut save_state = conn
            .prepare_cached(
                "INSERT INTO source_state VALUES (?1, ?2, ?3)
                 ON CONFLICT (source, slot) DO UPDATE SET state_json = excluded.state_json",
            )
            .map_err(&sql)?;
        let mut last_slot: Option<(String, Option<String>, String)> = None;
        while let Some(event) = output.blocking_recv() {
            let OutputEvent::Lines(batch) = event else {
                continue;
            };
            for line in batch.lines() {
                match peek_line(line) {
                    LinePeek::Empty => {}
                    LinePeek::Record {
                        stream, namespace, ..
                    } => {
                        let cached = matches!(&last_slot, Some((s, n, _))
                            if s.as_str() == stream.as_ref() && n.as_deref() == namespace.as_deref());
                        if !cached {
                            let slot = stream_slot(&stream, namespace.as_deref());
                            last_slot = Some((
                                stream.into_owned(),
                                namespace.map(|n| n.into_owned()),
                                slot,
                            ));
                        }
                        let slot = &last_slot.as_ref().map(|(_, _, s)| s).expect("set above");
                        if !in_catalog.contains(slot.as_str()) {
                            summary.records_skipped += 1;
                            continue;
                        }
                        slice.push(RowKind::Record, slot, line);
                        if let Some(counter) = &plan.counter {
                            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        *records.entry(slot.to_string()).or_default() += 1;
                        if slice.tail_bytes >= MAX_TAIL_BYTES {
                            slice.spill(&conn, &mut insert, source_id).map_err(&sql)?;
                        }
                    }
                    LinePeek::Other(
                        MessageType::State | MessageType::Trace | MessageType::Control,
                    ) => {
                        let Ok(message) = parse_message(line) else {
                            summary.lines_skipped += 1;
                            continue;
                        };
                        match message.payload {
                            Payload::State(state) => {
                                let slot = state_slot(&state);
                                slice.flush(&mut insert, source_id).map_err(&sql)?;
                                insert
                                    .execute(params![
                                        source_id,
                                        RowKind::State as i64,
                                        slot,
                                        0,
                                        line
                                    ])
                                    .map_err(&sql)?;
                                let mut stored = state.clone();
                                stored.source_stats = None;
                                stored.destination_stats = None;
                                save_state
                                    .execute(params![
                                        plan.source,
                                        slot,
                                        serde_json::to_string(&stored).unwrap_or_default()
                                    ])
                                    .map_err(&sql)?;
                                summary.states += 1;
                                slice.state_inserted(line.len());
                                if slice.due() {
                                    slice.commit(&conn).map_err(&sql)?;
                                }
                            }
                            Payload::Trace(trace)
                                if trace.trace_type == TraceType::StreamStatus =>
                            {
                                let Some(status) = trace.stream_status else {
                                    continue;
                                };
                                let d = &status.stream_descriptor;
                                let slot = stream_slot(&d.name, d.namespace.as_deref());
                                if in_catalog.contains(&slot) {
                                    slice.push(RowKind::StreamStatus, &slot, line);
                                }
                            }
                            Payload::Control(control) => {
                                if let (Some(callback), Some(update)) =
                                    (&plan.control, control.connector_config)
                                {
                                    callback(&update.config);
                                }
                            }
                            _ => {}
                        }
                    }
                    LinePeek::Other(_) => {}
                    LinePeek::NotAMessage(_) => summary.lines_skipped += 1,
                }
            }
            // A source with nothing more to say for now gets what it sent up to
            // its last STATE committed, so a replay following the read sends it.
            if slice.committable() && (output.is_empty() || slice.due()) {
                slice.commit(&conn).map_err(&sql)?;
            }
        }
        Ok(())
    })();
    let clean_exit = result.is_ok() && keep_tail.blocking_recv().unwrap_or(false);
    let keep = if clean_exit {
        // Everything the source sent counts: the tail after its last STATE too.
        let mut insert = conn
            .prepare_cached(
                "INSERT INTO message (source_id, kind, slot, records, line) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(&sql)?;
        slice.flush(&mut insert, source_id).map_err(&sql)?;
        true
    } else {
        // The source failed: what ends at its last STATE is kept (the open
        // transaction ends there; the tail after it is only in memory), unless the
        // tail spilled into it.
        result.is_ok() && !slice.spilled
    };
    slice.end(&conn, keep).map_err(&sql)?;
    result?;
    summary.records = records
        .into_iter()
        .map(|(slot, n)| (slot_descriptor(&slot), n))
        .collect();
    Ok(summary)
}

/// Says [`FillProgress::finished`] when dropped.
struct Finished(Option<watch::Sender<FillProgress>>);

impl Drop for Finished {
    fn drop(&mut self) {
        if let Some(commits) = &self.0 {
            commits.send_modify(|p| p.finished = true);
        }
    }
}

/// A run of records stops growing at this size.
const MAX_RUN_BYTES: usize = 256 * 1024;

/// The records after the last STATE kept in memory, at most; past this they go
/// into the transaction (after a commit of what ends at the STATE).
const MAX_TAIL_BYTES: usize = 8 * 1024 * 1024;

/// A commit is due this long after the last one…
const COMMIT_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// …or after this many bytes.
const COMMIT_BYTES: usize = 4 * 1024 * 1024;

/// The read's open slice: what the transaction holds since the last commit, and
/// the rows after the last STATE still in memory.
struct Slice<'p> {
    /// Rows after the last STATE, not yet inserted: runs of records of one
    /// stream, and stream statuses.
    tail: Vec<RecordRun>,
    tail_bytes: usize,
    /// The transaction holds rows after its last STATE (the tail grew too big):
    /// it cannot be committed before the next STATE.
    spilled: bool,
    /// STATEs in the transaction since the last commit.
    states: u64,
    bytes: usize,
    last_commit: std::time::Instant,
    positions: Option<&'p Arc<PendingPositions>>,
    commits: Option<&'p watch::Sender<FillProgress>>,
}

impl<'p> Slice<'p> {
    fn new(plan: &'p FillPlan) -> Self {
        Self {
            tail: Vec::new(),
            tail_bytes: 0,
            spilled: false,
            states: 0,
            bytes: 0,
            last_commit: std::time::Instant::now(),
            positions: plan.positions.as_ref(),
            commits: plan.commits.as_ref(),
        }
    }

    /// Adds a row to the tail: a record joins the last run when it is of the
    /// same stream (one insert per run, not per record; positions only ever fall
    /// on STATE rows, so a run is never split by a confirmation).
    fn push(&mut self, kind: RowKind, slot: &str, line: &[u8]) {
        let joins = kind == RowKind::Record
            && self.tail.last().is_some_and(|run| {
                run.kind == RowKind::Record && run.slot == slot && run.lines.len() < MAX_RUN_BYTES
            });
        if !joins {
            self.tail.push(RecordRun {
                kind,
                slot: slot.to_owned(),
                lines: Vec::new(),
                count: 0,
            });
        }
        let run = self.tail.last_mut().expect("pushed above");
        run.push(line);
        if kind != RowKind::Record {
            run.count = 0; // a stream status counts no record
        }
        self.tail_bytes += line.len() + 1;
    }

    /// Inserts the tail.
    fn flush(
        &mut self,
        insert: &mut rusqlite::CachedStatement<'_>,
        source_id: i64,
    ) -> rusqlite::Result<()> {
        for run in self.tail.drain(..) {
            run.insert(insert, source_id)?;
        }
        self.bytes += self.tail_bytes;
        self.tail_bytes = 0;
        Ok(())
    }

    /// The tail grew too big to keep in memory: commit what ends at the last
    /// STATE, then insert it.
    fn spill(
        &mut self,
        conn: &rusqlite::Connection,
        insert: &mut rusqlite::CachedStatement<'_>,
        source_id: i64,
    ) -> rusqlite::Result<()> {
        if self.committable() {
            self.commit(conn)?;
        }
        self.flush(insert, source_id)?;
        self.spilled = true;
        Ok(())
    }

    /// A STATE row went in: the transaction ends at a STATE again.
    fn state_inserted(&mut self, bytes: usize) {
        self.states += 1;
        self.bytes += bytes;
        self.spilled = false;
    }

    /// The transaction ends at a STATE it has not committed.
    fn committable(&self) -> bool {
        self.states > 0 && !self.spilled
    }

    fn due(&self) -> bool {
        self.committable()
            && (self.bytes >= COMMIT_BYTES || self.last_commit.elapsed() >= COMMIT_EVERY)
    }

    fn apply_positions(&self, conn: &rusqlite::Connection) -> rusqlite::Result<()> {
        match self.positions {
            Some(positions) => positions.apply(conn),
            None => Ok(()),
        }
    }

    /// Commits the transaction (with the destination's confirmed positions that
    /// are pending) and opens the next.
    fn commit(&mut self, conn: &rusqlite::Connection) -> rusqlite::Result<()> {
        self.apply_positions(conn)?;
        conn.execute_batch("COMMIT; BEGIN")?;
        self.states = 0;
        self.bytes = 0;
        self.last_commit = std::time::Instant::now();
        self.committed();
        Ok(())
    }

    /// Ends the read's last transaction: commits it (with the pending positions)
    /// when `keep`, else rolls it back.
    fn end(&mut self, conn: &rusqlite::Connection, keep: bool) -> rusqlite::Result<()> {
        if !keep {
            return conn.execute_batch("ROLLBACK");
        }
        self.apply_positions(conn)?;
        conn.execute_batch("COMMIT")?;
        self.committed();
        Ok(())
    }

    /// Tells a tailing replay of a commit.
    fn committed(&self) {
        if let Some(commits) = self.commits {
            commits.send_modify(|p| p.commits += 1);
        }
    }
}

/// Consecutive rows of one kind and stream, as newline-joined lines.
struct RecordRun {
    kind: RowKind,
    slot: String,
    lines: Vec<u8>,
    count: i64,
}

impl RecordRun {
    fn push(&mut self, line: &[u8]) {
        if !self.lines.is_empty() {
            self.lines.push(b'\n');
        }
        self.lines.extend_from_slice(line);
        self.count += 1;
    }

    /// Inserts the run as one row.
    fn insert(
        &self,
        insert: &mut rusqlite::CachedStatement<'_>,
        source_id: i64,
    ) -> Result<(), rusqlite::Error> {
        insert.execute(params![
            source_id,
            self.kind as i64,
            self.slot,
            self.count,
            self.lines
        ])?;
        Ok(())
    }
}

/// Inside the read's first transaction: forget what this read supersedes (the
/// whole log on a restart; the earlier copy of each stream read in full) and file
/// the catalog.
fn prepare(cache: &Cache, conn: &rusqlite::Connection, plan: &FillPlan) -> Result<i64, CacheError> {
    let sql = cache.sql_error();
    conn.execute(
        "INSERT INTO source (name) VALUES (?1) ON CONFLICT (name) DO NOTHING",
        params![plan.source],
    )
    .map_err(&sql)?;
    let source_id: i64 = conn
        .query_row(
            "SELECT id FROM source WHERE name = ?1",
            params![plan.source],
            |row| row.get(0),
        )
        .map_err(&sql)?;
    if plan.restart {
        conn.execute(
            "DELETE FROM message WHERE source_id = ?1",
            params![source_id],
        )
        .map_err(&sql)?;
        for table in ["source_state", "position"] {
            conn.execute(
                &format!("DELETE FROM {table} WHERE source = ?1"),
                params![plan.source],
            )
            .map_err(&sql)?;
        }
    } else {
        for stream in &plan.catalog.streams {
            if stream.sync_mode != SyncMode::FullRefresh {
                continue;
            }
            let slot = stream_slot(&stream.stream.name, stream.stream.namespace.as_deref());
            conn.execute(
                "DELETE FROM message WHERE source_id = ?1 AND slot = ?2",
                params![source_id, slot],
            )
            .map_err(&sql)?;
            conn.execute(
                "DELETE FROM source_state WHERE source = ?1 AND slot = ?2",
                params![plan.source, slot],
            )
            .map_err(&sql)?;
        }
    }
    // The cached catalog is every stream still in the log: this read's streams
    // replace their earlier definitions, the others stay (their rows do).
    let mut catalog = plan.catalog.clone();
    if !plan.restart
        && let Some(earlier) = conn
            .query_row(
                "SELECT catalog_json FROM catalog WHERE source = ?1",
                params![plan.source],
                |row| row.get::<_, String>(0),
            )
            .optional()
            .map_err(&sql)?
            .and_then(|j| serde_json::from_str::<ConfiguredAirbyteCatalog>(&j).ok())
    {
        for stream in earlier.streams {
            let same = |s: &&crate::protocol::ConfiguredAirbyteStream| {
                s.stream.name == stream.stream.name && s.stream.namespace == stream.stream.namespace
            };
            if !plan.catalog.streams.iter().any(|s| same(&s)) {
                catalog.streams.push(stream);
            }
        }
    }
    conn.execute(
        "INSERT INTO catalog VALUES (?1, ?2)
         ON CONFLICT (source) DO UPDATE SET catalog_json = excluded.catalog_json",
        params![
            plan.source,
            serde_json::to_string(&catalog).unwrap_or_default()
        ],
    )
    .map_err(&sql)?;
    Ok(source_id)
}
