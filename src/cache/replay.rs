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

/// Confirmed positions on their way into the cache. A fill that runs meanwhile
/// holds the cache's write lock for one slice after another, so it takes them
/// into its own slice transactions ([`PendingPositions::apply`]); otherwise a
/// [`PositionWriter`] stores them.
#[derive(Debug)]
pub(crate) struct PendingPositions {
    source: String,
    destination: String,
    rows: Mutex<Vec<(i64, String)>>,
    arrived: std::sync::Condvar,
}

impl PendingPositions {
    /// Positions of `destination` (its key in the cache) in `source`'s log.
    pub(crate) fn new(source: &str, destination: &str) -> Arc<Self> {
        Arc::new(Self {
            source: source.to_owned(),
            destination: destination.to_owned(),
            rows: Mutex::new(Vec::new()),
            arrived: std::sync::Condvar::new(),
        })
    }

    /// Queues confirmed states (seq, slot).
    pub(crate) fn push(&self, rows: &[(i64, String)]) {
        self.lock().extend_from_slice(rows);
        self.arrived.notify_all();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(i64, String)>> {
        self.rows.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores what is queued, inside the caller's open transaction.
    pub(crate) fn apply(&self, conn: &Connection) -> rusqlite::Result<()> {
        let rows = std::mem::take(&mut *self.lock());
        if rows.is_empty() {
            return Ok(());
        }
        let stored = super::upsert_positions(conn, &self.source, &self.destination, &rows);
        if stored.is_err() {
            // Not stored: keep them for the next try.
            self.lock().extend(rows);
        }
        stored
    }
}

/// Stores the positions pushed to a [`PendingPositions`], on a thread of its own,
/// so the write loop never waits for the cache. While a fill holds the write
/// lock, the fill stores them; [`PositionWriter::finish`] waits until everything
/// pushed is stored.
pub(crate) struct PositionWriter {
    pending: Arc<PendingPositions>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PositionWriter {
    /// Starts the writer; `connector` names the destination in a warning.
    pub(crate) fn start(
        cache: Arc<Cache>,
        pending: Arc<PendingPositions>,
        connector: String,
    ) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let span = tracing::Span::current();
        let thread = {
            let (pending, stop) = (pending.clone(), stop.clone());
            std::thread::spawn(move || {
                let _entered = span.enter();
                if let Err(error) = write_positions(&cache, &pending, &stop) {
                    tracing::warn!(
                        "the cache could not record what {connector} confirmed ({error}); \
                         the next write of this cache resends it"
                    );
                }
            })
        };
        Self {
            pending,
            stop,
            thread: Some(thread),
        }
    }

    /// Waits until everything handed over is stored (or warned about).
    pub(crate) fn finish(mut self) {
        self.end();
    }

    fn end(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        self.pending.arrived.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for PositionWriter {
    fn drop(&mut self) {
        self.end();
    }
}

/// The writer thread: stores what is pending whenever the write lock is free
/// (never waiting for it while a fill holds it: the fill stores them then), and
/// once stopped, waits for the lock to store the rest.
fn write_positions(
    cache: &Cache,
    pending: &PendingPositions,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<(), CacheError> {
    let sql = cache.sql_error();
    let mut conn = cache.connect()?;
    loop {
        let stopping = stop.load(std::sync::atomic::Ordering::Acquire);
        let waiting = !pending.lock().is_empty();
        if waiting {
            // At the end, wait for the lock; before, only take it when free.
            let patience = if stopping {
                std::time::Duration::from_secs(60)
            } else {
                std::time::Duration::ZERO
            };
            conn.busy_timeout(patience).map_err(&sql)?;
            match conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
                Ok(tx) => {
                    pending.apply(&tx).map_err(&sql)?;
                    tx.commit().map_err(&sql)?;
                }
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if !stopping && e.code == rusqlite::ErrorCode::DatabaseBusy => {}
                Err(other) => return Err(sql(other)),
            }
        }
        if stopping {
            return Ok(());
        }
        let rows = pending.lock();
        if rows.is_empty() || waiting {
            // Wait for news, or retry the lock a little later.
            let _ = pending
                .arrived
                .wait_timeout(rows, std::time::Duration::from_millis(100));
        }
    }
}
