//! Replaying the cache into a write: the messages a destination has not yet
//! confirmed, in the order they were read.
//!
//! Owns choosing rows past each stream's confirmed position, writing them to the
//! write loop's input, noting which states went out (so a confirmation can move the
//! position), and the catalog of a resumed replay. It reads through its own
//! read-only connection, so confirmations can be written while it runs.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags, params};
use tokio::io::AsyncWriteExt;

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

/// Writes the wanted rows of `plan.source` to `writer`, in order, noting each state
/// in `sent` before the bytes that carry it go out. Stops quietly when the reader
/// is gone (the write loop then reports why).
pub(crate) fn replay(
    cache: &Cache,
    plan: &ReplayPlan,
    mut writer: tokio::io::DuplexStream,
    sent: SentStates,
    runtime: tokio::runtime::Handle,
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
    let mut rows = query.query(params![plan.source, start]).map_err(&sql)?;
    let mut summary = ReplaySummary::default();
    let mut buffer: Vec<u8> = Vec::with_capacity(512 * 1024);
    let mut flush = |buffer: &mut Vec<u8>| -> bool {
        let ok = runtime.block_on(writer.write_all(buffer)).is_ok();
        buffer.clear();
        ok
    };
    while let Some(row) = rows.next().map_err(&sql)? {
        let seq: i64 = row.get(0).map_err(&sql)?;
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
    if !buffer.is_empty() {
        flush(&mut buffer);
    }
    let _ = runtime.block_on(writer.shutdown());
    Ok(summary)
}
