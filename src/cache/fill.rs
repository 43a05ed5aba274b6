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

/// Reads `output` to its end into `cache`, committing at each STATE; then waits for
/// `keep_tail`: `true` commits what came after the last STATE (the source exited
/// cleanly), `false` rolls it back (it failed).
pub(crate) fn fill(
    cache: &Cache,
    plan: FillPlan,
    mut output: mpsc::Receiver<OutputEvent>,
    keep_tail: oneshot::Receiver<bool>,
) -> Result<FillSummary, CacheError> {
    let sql = cache.sql_error();
    let commits = plan.commits.clone();
    // However the fill ends, a tailing replay learns that nothing more comes.
    let _finished = Finished(commits.clone());
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
        // Consecutive records of one stream go into one row (a run): one insert
        // per run instead of per record. Positions only ever fall on STATE rows,
        // so a run is never split by a confirmation.
        let mut run = RecordRun::default();
        while let Some(event) = output.blocking_recv() {
            let OutputEvent::Lines(batch) = event else {
                continue;
            };
            for line in batch.lines() {
                match peek_line(line) {
                    LinePeek::Empty => {}
                    LinePeek::Record { stream, namespace } => {
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
                        if run.slot != **slot || run.lines.len() >= MAX_RUN_BYTES {
                            run.flush(&mut insert, source_id).map_err(&sql)?;
                            run.slot.clone_from(slot);
                        }
                        run.push(line);
                        if let Some(counter) = &plan.counter {
                            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        *records.entry(slot.to_string()).or_default() += 1;
                    }
                    LinePeek::Other(
                        MessageType::State | MessageType::Trace | MessageType::Control,
                    ) => {
                        let Ok(message) = parse_message(line) else {
                            summary.lines_skipped += 1;
                            continue;
                        };
                        run.flush(&mut insert, source_id).map_err(&sql)?;
                        match message.payload {
                            Payload::State(state) => {
                                let slot = state_slot(&state);
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
                                if let Some(positions) = &plan.positions {
                                    positions.apply(&conn).map_err(&sql)?;
                                }
                                conn.execute_batch("COMMIT; BEGIN").map_err(&sql)?;
                                if let Some(commits) = &commits {
                                    commits.send_modify(|p| p.commits += 1);
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
                                    insert
                                        .execute(params![
                                            source_id,
                                            RowKind::StreamStatus as i64,
                                            slot,
                                            0,
                                            line
                                        ])
                                        .map_err(&sql)?;
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
        }
        run.flush(&mut insert, source_id).map_err(&sql)?;
        Ok(())
    })();
    let keep = result.is_ok() && keep_tail.blocking_recv().unwrap_or(false);
    if keep && let Some(positions) = &plan.positions {
        positions.apply(&conn).map_err(&sql)?;
    }
    let end = if keep { "COMMIT" } else { "ROLLBACK" };
    conn.execute_batch(end).map_err(&sql)?;
    if keep && let Some(commits) = &commits {
        commits.send_modify(|p| p.commits += 1);
    }
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

/// Consecutive records of one stream, as newline-joined lines.
#[derive(Default)]
struct RecordRun {
    slot: String,
    lines: Vec<u8>,
    count: i64,
}

impl RecordRun {
    fn push(&mut self, line: &[u8]) {
        if self.count > 0 {
            self.lines.push(b'\n');
        }
        self.lines.extend_from_slice(line);
        self.count += 1;
    }

    /// Inserts the run as one row, if it holds anything, and empties it.
    fn flush(
        &mut self,
        insert: &mut rusqlite::CachedStatement<'_>,
        source_id: i64,
    ) -> Result<(), rusqlite::Error> {
        if self.count > 0 {
            insert.execute(params![
                source_id,
                RowKind::Record as i64,
                self.slot,
                self.count,
                self.lines
            ])?;
            self.lines.clear();
            self.count = 0;
        }
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
