//! `cache`: the embedded read cache — a source's output kept in SQLite, so it can
//! be queried and written to any destination, again and again, sending each
//! destination only what it has not yet confirmed.
//!
//! Owns the cache file's format, filling it from a source's output ([`fill`]),
//! the per-destination confirmed positions and the replay ([`replay`]). It does
//! not run connectors ([`crate::source`] does) and does not keep destination
//! checkpoints ([`crate::state`] does).
//!
//! The cache holds, per source, one ordered log of the messages a destination
//! needs: RECORDs (a row per run of one stream's consecutive records), STATEs and
//! TRACE STREAM_STATUS, each line as the source wrote it.
//! Reads append to the log and commit at each STATE, so a source that fails
//! mid-stream leaves what it emitted up to its last state. A full-refresh read
//! starts the log again; a stream read in full (overwrite) replaces its earlier
//! rows. Each destination's position is the last STATE it confirmed, per stream:
//! a replay skips what is behind it. Why SQLite and not a folder of JSONL files:
//! the README's benchmark table has the measurement; in short, SQLite's inserts
//! cost little next to a sandboxed write, and it gives transactions (a state and
//! the records before it land together) and queries for free.

pub(crate) mod fill;
pub(crate) mod replay;

pub use fill::ControlCallback;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use crate::protocol::{AirbyteStateMessage, ConfiguredAirbyteCatalog, StateType, StreamDescriptor};
use crate::state::StoredState;

/// The cache format this build writes and reads. A cache of another format is
/// refused with [`CacheError::OlderFormat`] / [`CacheError::NewerFormat`].
pub const FORMAT_VERSION: i64 = 2;

/// SQLite `application_id` of an airlock cache ("ALCA").
const APPLICATION_ID: i64 = 0x414c_4341;

/// A cache failure.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// SQLite failed.
    #[error("cache {}", path.display())]
    Sqlite {
        /// The cache file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
    /// The cache was written by an older airlock, in a format this one does not read.
    #[error(
        "cache {} is in format {found}, older than this airlock's format {supported}; \
         delete it (everything in it can be read again from the source) or use another \
         cache file", path.display()
    )]
    OlderFormat {
        /// The cache file.
        path: PathBuf,
        /// Its format.
        found: i64,
        /// This build's format.
        supported: i64,
    },
    /// The cache was written by a newer airlock.
    #[error(
        "cache {} is in format {found}, newer than this airlock's format {supported}; \
         upgrade airlock or use another cache file", path.display()
    )]
    NewerFormat {
        /// The cache file.
        path: PathBuf,
        /// Its format.
        found: i64,
        /// This build's format.
        supported: i64,
    },
    /// The file is a database, but not an airlock cache.
    #[error(
        "{} is not an airlock cache (it is another SQLite database); \
         use a new or an airlock cache file instead", path.display()
    )]
    Foreign {
        /// The file.
        path: PathBuf,
    },
    /// Creating the cache's folder failed.
    #[error("creating the folder for cache {}", path.display())]
    Folder {
        /// The cache file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Nothing of this source is in the cache.
    #[error("cache {} holds nothing of {source_name}; read it first (source.read(cache))", path.display())]
    NotCached {
        /// The cache file.
        path: PathBuf,
        /// The source.
        source_name: String,
    },
    /// A stream asked for is not in the cached catalog.
    #[error("{source_name}'s cached read has no stream {stream:?}; it has: {}", available.join(", "))]
    UnknownStream {
        /// The source.
        source_name: String,
        /// The stream asked for.
        stream: String,
        /// The cached streams.
        available: Vec<String>,
    },
}

impl CacheError {
    /// How to fix it, when using another cache file would.
    pub fn remedy(&self) -> Option<crate::remedy::Remedy> {
        match self {
            Self::OlderFormat { .. } | Self::NewerFormat { .. } | Self::Foreign { .. } => {
                Some(crate::remedy::Remedy::UseAnotherCache)
            }
            _ => None,
        }
    }
}

/// What a message row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowKind {
    Record = 0,
    State = 1,
    StreamStatus = 2,
}

/// The key a stream's rows, positions and states are filed under.
pub(crate) fn stream_slot(stream: &str, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("{ns}\u{1f}{stream}"),
        None => stream.to_owned(),
    }
}

/// The slot of a state: its stream's, or `GLOBAL` / `LEGACY` (with a prefix no
/// stream key has).
pub(crate) fn state_slot(state: &AirbyteStateMessage) -> String {
    match (state.effective_type(), &state.stream) {
        (StateType::Stream, Some(s)) => stream_slot(
            &s.stream_descriptor.name,
            s.stream_descriptor.namespace.as_deref(),
        ),
        (StateType::Global, _) => "\u{1e}GLOBAL".to_owned(),
        _ => "\u{1e}LEGACY".to_owned(),
    }
}

/// How long a connection waits for another's write to end. A fill holds the write
/// lock from one STATE to the next, so a confirmation may wait one slice.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The embedded read cache: one SQLite file.
#[derive(Debug)]
pub struct Cache {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl Cache {
    /// Opens (creating if needed) the cache at `path`.
    ///
    /// # Errors
    /// [`CacheError`] when the file cannot be opened, is not an airlock cache, or is
    /// in another format.
    pub fn open(path: impl AsRef<Path>) -> Result<Arc<Self>, CacheError> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| CacheError::Folder {
                path: path.clone(),
                source,
            })?;
        }
        let conn = Connection::open(&path).map_err(|source| CacheError::Sqlite {
            path: path.clone(),
            source,
        })?;
        Self::init(path, conn).map(Arc::new)
    }

    /// The default cache: `<airlock home>/cache/default.sqlite`.
    ///
    /// # Errors
    /// As [`Cache::open`].
    pub fn open_default() -> Result<Arc<Self>, CacheError> {
        Self::open(crate::home::default_cache())
    }

    fn init(path: PathBuf, conn: Connection) -> Result<Self, CacheError> {
        let sql = |source| CacheError::Sqlite {
            path: path.clone(),
            source,
        };
        conn.busy_timeout(BUSY_TIMEOUT).map_err(sql)?;
        let application_id: i64 = conn
            .pragma_query_value(None, "application_id", |row| row.get(0))
            .map_err(sql)?;
        let format: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(sql)?;
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))
            .map_err(sql)?;
        if application_id != APPLICATION_ID && tables > 0 {
            return Err(CacheError::Foreign { path });
        }
        if application_id == APPLICATION_ID && format < FORMAT_VERSION {
            return Err(CacheError::OlderFormat {
                path,
                found: format,
                supported: FORMAT_VERSION,
            });
        }
        if format > FORMAT_VERSION {
            return Err(CacheError::NewerFormat {
                path,
                found: format,
                supported: FORMAT_VERSION,
            });
        }
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql)?;
        // Reads write hundreds of MB: checkpoint the WAL in 64 MiB steps, not 4 MiB.
        conn.pragma_update(None, "wal_autocheckpoint", 16384)
            .map_err(sql)?;
        if tables == 0 {
            conn.execute_batch(&format!(
                "BEGIN;
                 CREATE TABLE source (
                     id   INTEGER PRIMARY KEY,
                     name TEXT NOT NULL UNIQUE
                 );
                 CREATE TABLE message (
                     seq       INTEGER PRIMARY KEY,
                     source_id INTEGER NOT NULL,
                     kind      INTEGER NOT NULL,
                     slot      TEXT,
                     records   INTEGER NOT NULL,
                     line      BLOB NOT NULL
                 ) STRICT;
                 CREATE INDEX message_by_source ON message (source_id, seq);
                 CREATE TABLE source_state (
                     source     TEXT NOT NULL,
                     slot       TEXT NOT NULL,
                     state_json TEXT NOT NULL,
                     PRIMARY KEY (source, slot)
                 );
                 CREATE TABLE catalog (
                     source       TEXT PRIMARY KEY,
                     catalog_json TEXT NOT NULL
                 );
                 CREATE TABLE position (
                     source      TEXT NOT NULL,
                     destination TEXT NOT NULL,
                     slot        TEXT NOT NULL,
                     seq         INTEGER NOT NULL,
                     PRIMARY KEY (source, destination, slot)
                 );
                 PRAGMA application_id = {APPLICATION_ID};
                 PRAGMA user_version = {FORMAT_VERSION};
                 COMMIT;"
            ))
            .map_err(sql)?;
        }
        Ok(Self {
            path,
            conn: Mutex::new(conn),
        })
    }

    /// Where the cache lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A connection of its own to the cache file, for work that runs beside the
    /// others (a fill while a replay tails it and confirmations move positions).
    pub(crate) fn connect(&self) -> Result<Connection, CacheError> {
        let conn = Connection::open(&self.path).map_err(self.sql_error())?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(self.sql_error())?;
        Ok(conn)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn sql_error(&self) -> impl Fn(rusqlite::Error) -> CacheError + '_ {
        |source| CacheError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// The states `source` emitted into the cache, the latest per slot: what its
    /// next read resumes from.
    ///
    /// # Errors
    /// [`CacheError`] when SQLite fails.
    pub fn source_state(&self, source: &str) -> Result<StoredState, CacheError> {
        let conn = self.lock();
        let mut query = conn
            .prepare("SELECT state_json FROM source_state WHERE source = ?1 ORDER BY slot")
            .map_err(self.sql_error())?;
        let rows = query
            .query_map(params![source], |row| row.get::<_, String>(0))
            .map_err(self.sql_error())?;
        let mut stored = StoredState::default();
        for row in rows {
            let Ok(state) =
                serde_json::from_str::<AirbyteStateMessage>(&row.map_err(self.sql_error())?)
            else {
                continue;
            };
            match state.effective_type() {
                StateType::Stream => stored.streams.push(state),
                StateType::Global => stored.global = Some(state),
                StateType::Legacy => stored.legacy = Some(state),
            }
        }
        Ok(stored)
    }

    /// The configured catalog of `source`'s last read into the cache.
    ///
    /// # Errors
    /// [`CacheError::NotCached`] when the source was never read into it.
    pub fn catalog(&self, source: &str) -> Result<ConfiguredAirbyteCatalog, CacheError> {
        let json: Option<String> = self
            .lock()
            .query_row(
                "SELECT catalog_json FROM catalog WHERE source = ?1",
                params![source],
                |row| row.get(0),
            )
            .optional()
            .map_err(self.sql_error())?;
        json.and_then(|j| serde_json::from_str(&j).ok())
            .ok_or_else(|| CacheError::NotCached {
                path: self.path.clone(),
                source_name: source.to_owned(),
            })
    }

    /// Records cached for `source`, per stream.
    ///
    /// # Errors
    /// [`CacheError`] when SQLite fails.
    pub fn record_counts(
        &self,
        source: &str,
    ) -> Result<BTreeMap<StreamDescriptor, u64>, CacheError> {
        let conn = self.lock();
        let mut query = conn
            .prepare(
                "SELECT slot, sum(records) FROM message WHERE source_id = (SELECT id FROM source WHERE name = ?1) AND kind = 0 GROUP BY slot",
            )
            .map_err(self.sql_error())?;
        let rows = query
            .query_map(params![source], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })
            .map_err(self.sql_error())?;
        let mut counts = BTreeMap::new();
        for row in rows {
            let (slot, count) = row.map_err(self.sql_error())?;
            counts.insert(slot_descriptor(&slot), count as u64);
        }
        Ok(counts)
    }

    /// The `data` of every cached record of `stream` (of `source`), in read order.
    ///
    /// # Errors
    /// [`CacheError`] when SQLite fails.
    pub fn records(
        &self,
        source: &str,
        stream: &StreamDescriptor,
    ) -> Result<Vec<Value>, CacheError> {
        let conn = self.lock();
        let mut query = conn
            .prepare(
                "SELECT line FROM message WHERE source_id = (SELECT id FROM source WHERE name = ?1) AND slot = ?2 AND kind = 0 ORDER BY seq",
            )
            .map_err(self.sql_error())?;
        let slot = stream_slot(&stream.name, stream.namespace.as_deref());
        let rows = query
            .query_map(params![source, slot], |row| row.get::<_, Vec<u8>>(0))
            .map_err(self.sql_error())?;
        let mut records = Vec::new();
        for row in rows {
            // A row holds a run of records, one per line.
            for line in row.map_err(self.sql_error())?.split(|b| *b == b'\n') {
                if let Ok(mut message) = serde_json::from_slice::<Value>(line) {
                    records.push(message["record"]["data"].take());
                }
            }
        }
        Ok(records)
    }

    /// The last confirmed position of `destination` in `source`'s log, per slot.
    pub(crate) fn positions(
        &self,
        source: &str,
        destination: &str,
    ) -> Result<HashMap<String, i64>, CacheError> {
        let conn = self.lock();
        let mut query = conn
            .prepare("SELECT slot, seq FROM position WHERE source = ?1 AND destination = ?2")
            .map_err(self.sql_error())?;
        let rows = query
            .query_map(params![source, destination], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })
            .map_err(self.sql_error())?;
        let mut positions = HashMap::new();
        for row in rows {
            let (slot, seq) = row.map_err(self.sql_error())?;
            positions.insert(slot, seq);
        }
        Ok(positions)
    }

    /// Moves `destination`'s position: it confirmed these states (seq, slot).
    pub(crate) fn confirm(
        &self,
        source: &str,
        destination: &str,
        confirmed: &[(i64, String)],
    ) -> Result<(), CacheError> {
        self.confirm_on(&mut self.lock(), source, destination, confirmed)
    }

    /// [`Cache::confirm`] on a connection of the caller's.
    pub(crate) fn confirm_on(
        &self,
        conn: &mut Connection,
        source: &str,
        destination: &str,
        confirmed: &[(i64, String)],
    ) -> Result<(), CacheError> {
        let tx = conn.transaction().map_err(self.sql_error())?;
        upsert_positions(&tx, source, destination, confirmed).map_err(self.sql_error())?;
        tx.commit().map_err(self.sql_error())
    }

    /// Whether `destination` has confirmed every state the cache holds of `source`
    /// (true when it holds none).
    pub(crate) fn fully_confirmed(
        &self,
        source: &str,
        destination: &str,
    ) -> Result<bool, CacheError> {
        let positions = self.positions(source, destination)?;
        let conn = self.lock();
        let mut query = conn
            .prepare(
                "SELECT slot, max(seq) FROM message WHERE source_id = (SELECT id FROM source WHERE name = ?1) AND kind = 1 GROUP BY slot",
            )
            .map_err(self.sql_error())?;
        let rows = query
            .query_map(params![source], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })
            .map_err(self.sql_error())?;
        for row in rows {
            let (slot, last) = row.map_err(self.sql_error())?;
            if replay::confirmed_position(&positions, &slot) < last {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The first cached row of each stream slot of `source` (to tell whether a
    /// destination already holds part of a stream's current copy).
    pub(crate) fn first_rows(&self, source: &str) -> Result<HashMap<String, i64>, CacheError> {
        let conn = self.lock();
        let mut query = conn
            .prepare(
                "SELECT slot, min(seq) FROM message WHERE source_id = (SELECT id FROM source WHERE name = ?1) AND kind = 0 GROUP BY slot",
            )
            .map_err(self.sql_error())?;
        let rows = query
            .query_map(params![source], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })
            .map_err(self.sql_error())?;
        let mut first = HashMap::new();
        for row in rows {
            let (slot, seq) = row.map_err(self.sql_error())?;
            first.insert(slot, seq);
        }
        Ok(first)
    }

    /// Forgets everything of `source`: its log, states, catalog and positions.
    ///
    /// # Errors
    /// [`CacheError`] when SQLite fails.
    pub fn clear(&self, source: &str) -> Result<(), CacheError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(self.sql_error())?;
        tx.execute(
            &format!(
                "DELETE FROM message WHERE {}",
                "source_id = (SELECT id FROM source WHERE name = ?1)"
            ),
            params![source],
        )
        .map_err(self.sql_error())?;
        for table in ["source_state", "catalog", "position"] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE source = ?1"),
                params![source],
            )
            .map_err(self.sql_error())?;
        }
        tx.commit().map_err(self.sql_error())
    }
}

/// Moves `destination`'s positions in `source`'s log to these confirmed states
/// (seq, slot), inside the caller's transaction.
pub(crate) fn upsert_positions(
    conn: &Connection,
    source: &str,
    destination: &str,
    confirmed: &[(i64, String)],
) -> rusqlite::Result<()> {
    let mut upsert = conn.prepare_cached(
        "INSERT INTO position VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (source, destination, slot) DO UPDATE SET seq = max(seq, excluded.seq)",
    )?;
    for (seq, slot) in confirmed {
        upsert.execute(params![source, destination, slot, seq])?;
    }
    Ok(())
}

/// The stream a slot (from [`stream_slot`]) is filed under.
pub(crate) fn slot_descriptor(slot: &str) -> StreamDescriptor {
    match slot.split_once('\u{1f}') {
        Some((ns, name)) => StreamDescriptor::with_namespace(name, Some(ns.to_owned())),
        None => StreamDescriptor::new(slot),
    }
}

/// What a read left in the cache: its streams and counts, queryable, and ready to
/// be written to any destination with [`crate::Destination::write`].
#[derive(Debug, Clone)]
pub struct ReadResult {
    pub(crate) cache: Arc<Cache>,
    pub(crate) source: String,
    pub(crate) catalog: ConfiguredAirbyteCatalog,
    pub(crate) records_read: BTreeMap<StreamDescriptor, u64>,
    pub(crate) states_read: u64,
}

impl ReadResult {
    /// The result of `source`'s reads already in `cache` (for example from an
    /// earlier run of airlock).
    ///
    /// # Errors
    /// [`CacheError::NotCached`] when the source was never read into it.
    pub fn from_cache(cache: Arc<Cache>, source: &str) -> Result<Self, CacheError> {
        let catalog = cache.catalog(source)?;
        Ok(Self {
            cache,
            source: source.to_owned(),
            catalog,
            records_read: BTreeMap::new(),
            states_read: 0,
        })
    }

    /// The source that was read.
    pub fn source_name(&self) -> &str {
        &self.source
    }

    /// The cache holding it.
    pub fn cache(&self) -> &Arc<Cache> {
        &self.cache
    }

    /// The configured catalog the source was read with.
    pub fn catalog(&self) -> &ConfiguredAirbyteCatalog {
        &self.catalog
    }

    /// The streams read.
    pub fn streams(&self) -> Vec<StreamDescriptor> {
        self.catalog.descriptors()
    }

    /// Records this read added, per stream.
    pub fn records_read(&self) -> &BTreeMap<StreamDescriptor, u64> {
        &self.records_read
    }

    /// Records this read added, in all.
    pub fn total_records_read(&self) -> u64 {
        self.records_read.values().sum()
    }

    /// States this read added.
    pub fn states_read(&self) -> u64 {
        self.states_read
    }

    /// Records in the cache per stream (every read of this source so far).
    ///
    /// # Errors
    /// [`CacheError`] when SQLite fails.
    pub fn cached_counts(&self) -> Result<BTreeMap<StreamDescriptor, u64>, CacheError> {
        self.cache.record_counts(&self.source)
    }

    /// The `data` of every cached record of `stream` (a name, or `namespace.name`).
    ///
    /// # Errors
    /// [`CacheError::UnknownStream`] for a stream not read.
    pub fn records(&self, stream: &str) -> Result<Vec<Value>, CacheError> {
        let descriptor = self
            .catalog
            .streams
            .iter()
            .map(|s| StreamDescriptor::with_namespace(&s.stream.name, s.stream.namespace.clone()))
            .find(|d| d.to_string() == stream || d.name == stream)
            .ok_or_else(|| CacheError::UnknownStream {
                source_name: self.source.clone(),
                stream: stream.to_owned(),
                available: self.streams().iter().map(ToString::to_string).collect(),
            })?;
        self.cache.records(&self.source, &descriptor)
    }
}

#[cfg(test)]
mod tests;
