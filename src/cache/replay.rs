//! Replaying the cache into a write: the messages a destination has not yet
//! confirmed, in the order they were read.
//!
//! Owns choosing rows past each stream's confirmed position, writing them to the
//! write loop's input, noting which states went out (so a confirmation can move the
//! position), and the catalog of a resumed replay. It reads through its own
//! read-only connection, so confirmations can be written while it runs; and it can
//! tail a read that is still filling the cache (a pipelined sync), sending each
//! slice once it is committed.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags, params};
use tokio::io::AsyncWriteExt;
use tokio::sync::{Notify, watch};

use super::fill::FillProgress;
use super::{Cache, CacheError, RowKind, stream_slot};
use crate::protocol::{ConfiguredAirbyteCatalog, DestinationSyncMode};

/// The states a replay sent, in order: (row, slot).
pub(crate) type SentStates = Arc<Mutex<Vec<(i64, String)>>>;

const GLOBAL: &str = "\u{1e}GLOBAL";
const LEGACY: &str = "\u{1e}LEGACY";

/// What to replay.
pub(crate) struct ReplayPlan {
    pub source: String,
    /// The stream slots being written.
    pub slots: HashSet<String>,
    /// The destination's confirmed positions, per slot.
    pub positions: HashMap<String, i64>,
}

impl ReplayPlan {
    /// The last row of `slot` the destination confirmed (a GLOBAL or LEGACY
    /// confirmation covers every stream).
    fn confirmed(&self, slot: &str) -> i64 {
        confirmed_position(&self.positions, slot)
    }

    /// Whether a row goes out.
    fn wanted(&self, seq: i64, kind: i64, slot: &str) -> bool {
        if kind == RowKind::State as i64 && (slot == GLOBAL || slot == LEGACY) {
            return seq > confirmed_position(&self.positions, slot);
        }
        self.slots.contains(slot) && seq > self.confirmed(slot)
    }
}

/// The last row a destination confirmed for `slot`: its own position, raised by
/// a GLOBAL or LEGACY confirmation (which covers every stream). For the GLOBAL
/// and LEGACY slots themselves, only their own position counts.
pub(crate) fn confirmed_position(positions: &HashMap<String, i64>, slot: &str) -> i64 {
    if slot == GLOBAL || slot == LEGACY {
        return positions.get(slot).copied().unwrap_or(0);
    }
    [slot, GLOBAL, LEGACY]
        .iter()
        .filter_map(|s| positions.get(*s))
        .copied()
        .max()
        .unwrap_or(0)
}

/// What a replay sent.
#[derive(Debug, Default)]
pub(crate) struct ReplaySummary {
    pub rows_sent: u64,
    pub rows_skipped: u64,
    /// The last row sent of each stream slot: where the destination stands once a
    /// clean completion commits what no state covered.
    pub last_rows: HashMap<String, i64>,
}

/// Adjusts a replay's catalog: an `overwrite` stream the destination already
/// holds part of (a confirmed row of its current copy) continues as `append`, so
/// resuming does not wipe the part already written.
pub(crate) fn resume_catalog(
    catalog: &mut ConfiguredAirbyteCatalog,
    plan: &ReplayPlan,
    first_rows: &HashMap<String, i64>,
) {
    for stream in &mut catalog.streams {
        if stream.destination_sync_mode != DestinationSyncMode::Overwrite {
            continue;
        }
        let slot = stream_slot(&stream.stream.name, stream.stream.namespace.as_deref());
        if first_rows
            .get(&slot)
            .is_some_and(|first| *first <= plan.confirmed(&slot))
        {
            stream.destination_sync_mode = DestinationSyncMode::Append;
        }
    }
}

/// A read still filling the cache, for a replay to follow.
pub(crate) struct Tail {
    /// The fill's commits.
    pub progress: watch::Receiver<FillProgress>,
    /// Notified when the write is over (it failed, or ended without waiting for
    /// the rest): the replay stops waiting for commits.
    pub write_over: Arc<Notify>,
}

/// Writes the wanted rows of `plan.source` to `writer`, in order, noting each state
/// in `sent` before the bytes that carry it go out. With a `tail`, it then waits
/// for each further commit of the read and sends what it added, until the read is
/// over. Stops quietly when the reader is gone (the write loop then reports why).
pub(crate) fn replay(
    cache: &Cache,
    plan: &ReplayPlan,
    mut writer: tokio::io::DuplexStream,
    sent: SentStates,
    runtime: tokio::runtime::Handle,
    mut tail: Option<Tail>,
) -> Result<ReplaySummary, CacheError> {
    let sql = cache.sql_error();
    let conn = Connection::open_with_flags(
        cache.path(),
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(&sql)?;
    let start = plan
        .slots
        .iter()
        .map(|slot| plan.confirmed(slot))
        .min()
        .unwrap_or(0);
    let mut query = conn
        .prepare(
            "SELECT seq, kind, slot, line FROM message WHERE source_id = (SELECT id FROM source WHERE name = ?1) AND seq > ?2 ORDER BY seq",
        )
        .map_err(&sql)?;
    let mut summary = ReplaySummary::default();
    let mut buffer: Vec<u8> = Vec::with_capacity(512 * 1024);
    let mut flush = |buffer: &mut Vec<u8>| -> bool {
        let ok = runtime.block_on(writer.write_all(buffer)).is_ok();
        buffer.clear();
        ok
    };
    // The last row looked at: each pass over what is committed starts after it.
    let mut after = start;
    loop {
        // Seen before the pass: when the read was over then (it said so, or it is
        // gone), the pass sees all it committed.
        let over = tail.as_mut().is_none_or(|tail| {
            tail.progress.borrow_and_update().finished || tail.progress.has_changed().is_err()
        });
        let mut rows = query.query(params![plan.source, after]).map_err(&sql)?;
        while let Some(row) = rows.next().map_err(&sql)? {
            let seq: i64 = row.get(0).map_err(&sql)?;
            after = seq;
            let kind: i64 = row.get(1).map_err(&sql)?;
            let slot: String = row.get(2).map_err(&sql)?;
            if !plan.wanted(seq, kind, &slot) {
                summary.rows_skipped += 1;
                continue;
            }
            let line = row.get_ref(3).map_err(&sql)?.as_bytes().map_err(|e| {
                sql(rusqlite::Error::FromSqlConversionFailure(
                    3,
                    rusqlite::types::Type::Blob,
                    Box::new(e),
                ))
            })?;
            if kind == RowKind::State as i64 {
                sent.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((seq, slot.clone()));
            }
            buffer.extend_from_slice(line);
            buffer.push(b'\n');
            summary.rows_sent += 1;
            if kind == RowKind::Record as i64 {
                summary.last_rows.insert(slot, seq);
            }
            if buffer.len() >= 256 * 1024 && !flush(&mut buffer) {
                return Ok(summary);
            }
        }
        drop(rows);
        let Some(tail) = tail.as_mut().filter(|_| !over) else {
            break;
        };
        // What is committed goes out before waiting for more.
        if !buffer.is_empty() && !flush(&mut buffer) {
            return Ok(summary);
        }
        let go_on = runtime.block_on(async {
            tokio::select! {
                // A commit, the end, or a fill gone without saying so: another pass.
                _ = tail.progress.changed() => true,
                () = tail.write_over.notified() => false,
            }
        });
        if !go_on {
            return Ok(summary);
        }
    }
    if !buffer.is_empty() {
        flush(&mut buffer);
    }
    let _ = runtime.block_on(writer.shutdown());
    Ok(summary)
}

/// Moves a destination's positions as it confirms states, on a thread and a
/// connection of its own: a fill may hold the cache's write lock for a whole slice,
/// and the write loop must not wait for it. [`PositionWriter::finish`] waits until
/// everything handed over is stored.
pub(crate) struct PositionWriter {
    sender: Option<std::sync::mpsc::Sender<Vec<(i64, String)>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PositionWriter {
    /// Starts the writer for `destination`'s positions (its key in the cache) in
    /// `source`'s log; `connector` names it in a warning.
    pub(crate) fn start(
        cache: Arc<Cache>,
        source: String,
        destination: String,
        connector: String,
    ) -> Self {
        let (sender, receiver) = std::sync::mpsc::channel::<Vec<(i64, String)>>();
        let span = tracing::Span::current();
        let thread = std::thread::spawn(move || {
            let _entered = span.enter();
            let mut conn = None;
            while let Ok(mut rows) = receiver.recv() {
                // What queued up while the last batch waited goes in one transaction.
                while let Ok(more) = receiver.try_recv() {
                    rows.extend(more);
                }
                let stored = match &mut conn {
                    Some(conn) => cache.confirm_on(conn, &source, &destination, &rows),
                    None => cache.connect().and_then(|mut opened| {
                        let stored = cache.confirm_on(&mut opened, &source, &destination, &rows);
                        conn = Some(opened);
                        stored
                    }),
                };
                if let Err(error) = stored {
                    tracing::warn!(
                        "the cache could not record what {connector} confirmed ({error}); \
                         the next write of this cache resends it"
                    );
                }
            }
        });
        Self {
            sender: Some(sender),
            thread: Some(thread),
        }
    }

    /// Hands over confirmed states (seq, slot).
    pub(crate) fn confirm(&self, rows: Vec<(i64, String)>) {
        if let Some(sender) = &self.sender {
            let _ = sender.send(rows);
        }
    }

    /// Waits until everything handed over is stored (or warned about).
    pub(crate) fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.sender = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for PositionWriter {
    fn drop(&mut self) {
        self.stop();
    }
}
