//! `state`: the durable checkpoint store — an embedded SQLite database.
//!
//! Owns the schema and the commits; nothing else opens the database. A checkpoint is
//! written only when [`crate::write`] hands over states a destination echoed (through
//! [`StateTarget`], this store's [`crate::write::Checkpoints`]), each
//! hand-over in one transaction, so a host killed at any point leaves the last
//! committed checkpoint intact (WAL journal, `synchronous=NORMAL`: a process crash
//! loses nothing committed). States are keyed by source name, destination name and
//! stream (name + namespace); GLOBAL and LEGACY states are kept per pair.
//!
//! ```
//! use airlock::protocol::{AirbyteStateMessage, StreamDescriptor};
//! use airlock::state::{StateStore, SyncKey};
//! use serde_json::json;
//!
//! let store = StateStore::open_in_memory().unwrap();
//! let key = SyncKey::new("source-faker", "destination-local-json");
//! let state = AirbyteStateMessage::stream(StreamDescriptor::new("users"), json!({"cursor": 5}));
//! store.commit(&key, std::slice::from_ref(&state)).unwrap();
//! let stored = store.load(&key).unwrap();
//! assert_eq!(stored.streams.len(), 1);
//! // What a source gets as `--state`: a list of state messages.
//! assert_eq!(stored.to_input_state().unwrap()[0]["stream"]["stream_state"]["cursor"], 5);
//! ```

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use crate::protocol::{AirbyteStateMessage, StateType, StreamDescriptor};
use crate::write::{CheckpointError, Checkpoints};

/// Where a write persists confirmed states: a store and the source → destination
/// pair they are filed under.
#[derive(Debug, Clone)]
pub struct StateTarget {
    /// The store.
    pub store: std::sync::Arc<StateStore>,
    /// The source → destination pair.
    pub key: SyncKey,
}

impl Checkpoints for StateTarget {
    fn commit(&self, states: &[AirbyteStateMessage]) -> Result<(), CheckpointError> {
        self.store
            .commit(&self.key, states)
            .map_err(|e| CheckpointError(Box::new(e)))
    }
}

/// The schema version this build writes. Older databases are migrated on open;
/// newer ones are refused rather than misread.
const SCHEMA_VERSION: i64 = 3;

/// A state-store failure.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// SQLite failed.
    #[error("state database {}", path.display())]
    Sqlite {
        /// The database file (`:memory:` for an in-memory store).
        path: PathBuf,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
    /// The database was written by a newer airlock.
    #[error(
        "state database {} has schema version {found}, newer than this airlock's {supported}; \
         upgrade airlock or use another state database", path.display()
    )]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// Its version.
        found: i64,
        /// This build's version.
        supported: i64,
    },
    /// A state could not be stored because it lacks what its type requires.
    #[error("cannot store a {kind:?} state without its `{field}` field")]
    Malformed {
        /// The state's type.
        kind: StateType,
        /// The missing field.
        field: &'static str,
    },
    /// Creating the database's folder failed.
    #[error("creating the folder for state database {}", path.display())]
    Folder {
        /// The database file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl StateError {
    /// How to fix it, when using another database would.
    pub fn remedy(&self) -> Option<crate::remedy::Remedy> {
        match self {
            Self::NewerSchema { .. } => Some(crate::remedy::Remedy::UseAnotherStateDatabase),
            _ => None,
        }
    }
}

/// Which sync a state belongs to: a source feeding a destination.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SyncKey {
    /// The source's name (for `airlock write`, the input's name).
    pub source: String,
    /// The destination's name.
    pub destination: String,
}

impl SyncKey {
    /// The key for `source` → `destination`.
    pub fn new(source: impl Into<String>, destination: impl Into<String>) -> Self {
        Self {
            source: source.into(),
            destination: destination.into(),
        }
    }
}

/// The states stored for one [`SyncKey`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoredState {
    /// The latest STREAM state of each stream.
    pub streams: Vec<AirbyteStateMessage>,
    /// The latest GLOBAL state.
    pub global: Option<AirbyteStateMessage>,
    /// The latest LEGACY state.
    pub legacy: Option<AirbyteStateMessage>,
}

impl StoredState {
    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty() && self.global.is_none() && self.legacy.is_none()
    }

    /// The JSON a source takes as `--state`: a list of state messages (GLOBAL, or the
    /// per-stream states, or the one LEGACY state), or `None` when nothing is stored.
    pub fn to_input_state(&self) -> Option<Value> {
        let strip = |state: &AirbyteStateMessage| {
            let mut state = state.clone();
            state.source_stats = None;
            state.destination_stats = None;
            serde_json::to_value(state).unwrap_or(Value::Null)
        };
        if let Some(global) = &self.global {
            return Some(Value::Array(vec![strip(global)]));
        }
        if !self.streams.is_empty() {
            return Some(Value::Array(self.streams.iter().map(strip).collect()));
        }
        self.legacy
            .as_ref()
            .map(|legacy| Value::Array(vec![strip(legacy)]))
    }
}

/// The durable store of confirmed states.
#[derive(Debug)]
pub struct StateStore {
    path: PathBuf,
    id: String,
    conn: Mutex<Connection>,
}

/// Creates `path` readable by its owner only (0600), or narrows it to that.
fn make_private(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path);
        for suffix in ["", "-wal", "-shm"] {
            let file = PathBuf::from(format!("{}{suffix}", path.display()));
            if file.exists() {
                let _ = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600));
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// The store's id: read, or made once (from the time, the process and the path).
fn store_id(conn: &Connection, path: &Path) -> rusqlite::Result<String> {
    use sha2::{Digest, Sha256};
    let existing: Option<String> = conn
        .query_row("SELECT value FROM store_meta WHERE key = 'id'", [], |r| {
            r.get(0)
        })
        .optional()?;
    if let Some(id) = existing {
        return Ok(id);
    }
    let seed = format!(
        "{:?} {} {}",
        std::time::SystemTime::now(),
        std::process::id(),
        path.display()
    );
    let digest = Sha256::digest(seed.as_bytes());
    let id: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    conn.execute(
        "INSERT OR IGNORE INTO store_meta (key, value) VALUES ('id', ?1)",
        params![id],
    )?;
    // Another process may have won the race: take what is stored.
    conn.query_row("SELECT value FROM store_meta WHERE key = 'id'", [], |r| {
        r.get(0)
    })
}

impl StateStore {
    /// Opens (creating if needed) the database at `path`, with its folder.
    ///
    /// # Errors
    /// [`StateError`] when the file cannot be opened or was written by a newer airlock.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StateError> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| StateError::Folder {
                path: path.clone(),
                source,
            })?;
        }
        // It keeps connector configs updated by CONTROL messages, secrets
        // included: only the user may read it (SQLite gives its -wal and -shm
        // files the same mode).
        make_private(&path);
        let conn = Connection::open(&path).map_err(|source| StateError::Sqlite {
            path: path.clone(),
            source,
        })?;
        Self::init(path, conn)
    }

    /// An in-memory store, gone when dropped (tests, `state_cache = false`-like runs).
    ///
    /// # Errors
    /// [`StateError`] if SQLite cannot start.
    pub fn open_in_memory() -> Result<Self, StateError> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|source| StateError::Sqlite {
            path: path.clone(),
            source,
        })?;
        Self::init(path, conn)
    }

    fn init(path: PathBuf, conn: Connection) -> Result<Self, StateError> {
        let sql = |source| StateError::Sqlite {
            path: path.clone(),
            source,
        };
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(sql)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(sql)?;
        if version > SCHEMA_VERSION {
            return Err(StateError::NewerSchema {
                path,
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version < 1 {
            conn.execute_batch(
                "BEGIN;
                 CREATE TABLE IF NOT EXISTS stream_state (
                     source        TEXT NOT NULL,
                     destination   TEXT NOT NULL,
                     has_namespace INTEGER NOT NULL,
                     namespace     TEXT NOT NULL,
                     stream        TEXT NOT NULL,
                     state_json    TEXT NOT NULL,
                     updated_at    INTEGER NOT NULL,
                     PRIMARY KEY (source, destination, has_namespace, namespace, stream)
                 );
                 CREATE TABLE IF NOT EXISTS pair_state (
                     source      TEXT NOT NULL,
                     destination TEXT NOT NULL,
                     kind        TEXT NOT NULL CHECK (kind IN ('GLOBAL', 'LEGACY')),
                     state_json  TEXT NOT NULL,
                     updated_at  INTEGER NOT NULL,
                     PRIMARY KEY (source, destination, kind)
                 );
                 PRAGMA user_version = 1;
                 COMMIT;",
            )
            .map_err(sql)?;
        }
        if version < 2 {
            // Version 2: configs a connector replaced with CONTROL connectorConfig.
            conn.execute_batch(
                "BEGIN;
                 CREATE TABLE IF NOT EXISTS connector_config (
                     connector   TEXT NOT NULL,
                     given_hash  TEXT NOT NULL,
                     config_json TEXT NOT NULL,
                     updated_at  INTEGER NOT NULL,
                     PRIMARY KEY (connector, given_hash)
                 );
                 PRAGMA user_version = 2;
                 COMMIT;",
            )
            .map_err(sql)?;
        }
        if version < 3 {
            // Version 3: the store's own id, which cache positions are filed
            // under, so a fresh state database knows nothing as confirmed.
            conn.execute_batch(
                "BEGIN;
                 CREATE TABLE IF NOT EXISTS store_meta (
                     key   TEXT PRIMARY KEY,
                     value TEXT NOT NULL
                 );
                 PRAGMA user_version = 3;
                 COMMIT;",
            )
            .map_err(sql)?;
        }
        let id = store_id(&conn, &path).map_err(sql)?;
        Ok(Self {
            path,
            id,
            conn: Mutex::new(conn),
        })
    }

    /// This database's id, made when it was created: what a cache files a
    /// destination's confirmed positions under, so that they count only with the
    /// state database that holds the matching states.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Where the database lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sql_error(&self) -> impl Fn(rusqlite::Error) -> StateError + '_ {
        |source| StateError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Stores `states` (in order; later ones win) for `key` in one transaction.
    ///
    /// # Errors
    /// [`StateError`] when SQLite fails (nothing is stored) or a state lacks its
    /// payload.
    pub fn commit(&self, key: &SyncKey, states: &[AirbyteStateMessage]) -> Result<(), StateError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn.transaction().map_err(self.sql_error())?;
        for state in states {
            let json = serde_json::to_string(state).unwrap_or_default();
            match state.effective_type() {
                StateType::Stream => {
                    let stream = state.stream.as_ref().ok_or(StateError::Malformed {
                        kind: StateType::Stream,
                        field: "stream",
                    })?;
                    let d = &stream.stream_descriptor;
                    tx.execute(
                        "INSERT INTO stream_state VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                         ON CONFLICT (source, destination, has_namespace, namespace, stream)
                         DO UPDATE SET state_json = excluded.state_json, updated_at = excluded.updated_at",
                        params![
                            key.source,
                            key.destination,
                            d.namespace.is_some(),
                            d.namespace.as_deref().unwrap_or(""),
                            d.name,
                            json,
                            now
                        ],
                    )
                    .map_err(self.sql_error())?;
                }
                kind @ (StateType::Global | StateType::Legacy) => {
                    let label = if kind == StateType::Global {
                        "GLOBAL"
                    } else {
                        "LEGACY"
                    };
                    tx.execute(
                        "INSERT INTO pair_state VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (source, destination, kind)
                         DO UPDATE SET state_json = excluded.state_json, updated_at = excluded.updated_at",
                        params![key.source, key.destination, label, json, now],
                    )
                    .map_err(self.sql_error())?;
                }
            }
        }
        tx.commit().map_err(self.sql_error())
    }

    /// The latest confirmed states for `key`.
    ///
    /// # Errors
    /// [`StateError`] when SQLite fails.
    pub fn load(&self, key: &SyncKey) -> Result<StoredState, StateError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let mut stored = StoredState::default();
        let mut query = conn
            .prepare(
                "SELECT state_json FROM stream_state WHERE source = ?1 AND destination = ?2
                 ORDER BY has_namespace, namespace, stream",
            )
            .map_err(self.sql_error())?;
        let rows = query
            .query_map(params![key.source, key.destination], |row| {
                row.get::<_, String>(0)
            })
            .map_err(self.sql_error())?;
        for row in rows {
            let json = row.map_err(self.sql_error())?;
            if let Ok(state) = serde_json::from_str(&json) {
                stored.streams.push(state);
            }
        }
        let pair = |kind: &str| -> Result<Option<AirbyteStateMessage>, StateError> {
            let json: Option<String> = conn
                .query_row(
                    "SELECT state_json FROM pair_state WHERE source = ?1 AND destination = ?2 AND kind = ?3",
                    params![key.source, key.destination, kind],
                    |row| row.get(0),
                )
                .optional()
                .map_err(self.sql_error())?;
            Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
        };
        stored.global = pair("GLOBAL")?;
        stored.legacy = pair("LEGACY")?;
        Ok(stored)
    }

    /// The stored STREAM state of one stream, if any.
    ///
    /// # Errors
    /// [`StateError`] when SQLite fails.
    pub fn stream_state(
        &self,
        key: &SyncKey,
        stream: &StreamDescriptor,
    ) -> Result<Option<AirbyteStateMessage>, StateError> {
        Ok(self.load(key)?.streams.into_iter().find(|s| {
            s.stream
                .as_ref()
                .is_some_and(|st| &st.stream_descriptor == stream)
        }))
    }

    /// Stores the config `connector` emitted in a CONTROL `connectorConfig` message,
    /// filed under the config the user gave (`given`), so the next run with that
    /// same given config uses the updated one ([`StateStore::updated_config`]).
    ///
    /// # Errors
    /// [`StateError`] when SQLite fails.
    pub fn save_updated_config(
        &self,
        connector: &str,
        given: &Value,
        updated: &Value,
    ) -> Result<(), StateError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        conn.execute(
            "INSERT INTO connector_config VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (connector, given_hash)
             DO UPDATE SET config_json = excluded.config_json, updated_at = excluded.updated_at",
            params![
                connector,
                config_hash(given),
                updated.to_string(),
                now_millis()
            ],
        )
        .map_err(self.sql_error())?;
        Ok(())
    }

    /// The config `connector` last emitted (CONTROL `connectorConfig`) while it ran
    /// with the user's config `given`, if any.
    ///
    /// # Errors
    /// [`StateError`] when SQLite fails.
    pub fn updated_config(
        &self,
        connector: &str,
        given: &Value,
    ) -> Result<Option<Value>, StateError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let json: Option<String> = conn
            .query_row(
                "SELECT config_json FROM connector_config WHERE connector = ?1 AND given_hash = ?2",
                params![connector, config_hash(given)],
                |row| row.get(0),
            )
            .optional()
            .map_err(self.sql_error())?;
        Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
    }

    /// Forgets every state of `key` (a full refresh from scratch).
    ///
    /// # Errors
    /// [`StateError`] when SQLite fails.
    pub fn clear(&self, key: &SyncKey) -> Result<(), StateError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn.transaction().map_err(self.sql_error())?;
        for table in ["stream_state", "pair_state"] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE source = ?1 AND destination = ?2"),
                params![key.source, key.destination],
            )
            .map_err(self.sql_error())?;
        }
        tx.commit().map_err(self.sql_error())
    }
}

/// Milliseconds since the Unix epoch.
fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A stable hash of a config: keys are sorted first, so their order in the user's
/// file does not matter.
fn config_hash(config: &Value) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(crate::config::canonical_text(config).as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
