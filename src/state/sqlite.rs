//! The SQLite backend: one embedded file (WAL journal, `synchronous=NORMAL`), the
//! default state store.
//!
//! Owns the file's schema and migrations. Only [`super::StateStore`] uses it.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use super::{
    Lease, LeaseOutcome, StateBackend, StateError, StoredState, SyncKey, check_fence, next_lease,
    now_millis,
};
use crate::protocol::{AirbyteStateMessage, StateType};

/// The schema version this build writes. Older databases are migrated on open;
/// newer ones are refused rather than misread.
const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The schema's steps: step N takes a database of version N-1 to version N.
const MIGRATIONS: [&str; 4] = [
    // 1: states per stream, and GLOBAL/LEGACY states per pair.
    "CREATE TABLE IF NOT EXISTS stream_state (
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
     );",
    // 2: configs a connector replaced with CONTROL connectorConfig.
    "CREATE TABLE IF NOT EXISTS connector_config (
         connector   TEXT NOT NULL,
         given_hash  TEXT NOT NULL,
         config_json TEXT NOT NULL,
         updated_at  INTEGER NOT NULL,
         PRIMARY KEY (connector, given_hash)
     );",
    // 3: the store's own id, which cache positions are filed under, so a fresh
    // state database knows nothing as confirmed.
    "CREATE TABLE IF NOT EXISTS store_meta (
         key   TEXT PRIMARY KEY,
         value TEXT NOT NULL
     );",
    // 4: leases, so that two runs of one sync cannot both commit.
    "CREATE TABLE IF NOT EXISTS lease (
         name       TEXT PRIMARY KEY,
         holder     TEXT NOT NULL,
         token      INTEGER NOT NULL,
         expires_at INTEGER NOT NULL
     );",
];

/// States in a SQLite file.
#[derive(Debug)]
pub(super) struct SqliteBackend {
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

impl SqliteBackend {
    /// Opens (creating if needed) the database at `path`, with its folder.
    ///
    /// # Errors
    /// [`StateError`] when the file cannot be opened or was written by a newer airlock.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let path = path.to_path_buf();
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
        // Each step in its own transaction, with the version it reaches.
        for (reached, step) in (1..).zip(MIGRATIONS) {
            if version < reached {
                conn.execute_batch(&format!(
                    "BEGIN; {step} PRAGMA user_version = {reached}; COMMIT;"
                ))
                .map_err(sql)?;
            }
        }
        let id = store_id(&conn, &path).map_err(sql)?;
        Ok(Self {
            path,
            id,
            conn: Mutex::new(conn),
        })
    }

    fn sql_error(&self) -> impl Fn(rusqlite::Error) -> StateError + '_ {
        |source| StateError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }
}

impl StateBackend for SqliteBackend {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn id(&self) -> &str {
        &self.id
    }

    /// Stores `states` (in order; later ones win) for `key` in one transaction.
    ///
    /// # Errors
    /// [`StateError`] when SQLite fails (nothing is stored) or a state lacks its
    /// payload.
    fn commit(
        &self,
        key: &SyncKey,
        states: &[AirbyteStateMessage],
        fence: &[Lease],
    ) -> Result<(), StateError> {
        let now = now_millis();
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(self.sql_error())?;
        for lease in fence {
            let current: Option<(String, i64, i64)> = tx
                .query_row(
                    "SELECT holder, token, expires_at FROM lease WHERE name = ?1",
                    params![lease.name],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(self.sql_error())?;
            check_fence(lease, current, now)?;
        }
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
    fn load(&self, key: &SyncKey) -> Result<StoredState, StateError> {
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

    /// Stores the config `connector` emitted in a CONTROL `connectorConfig` message,
    /// filed under the config the user gave (`given`), so the next run with that
    /// same given config uses the updated one ([`StateStore::updated_config`]).
    ///
    /// # Errors
    /// [`StateError`] when SQLite fails.
    fn save_updated_config(
        &self,
        connector: &str,
        given_hash: &str,
        updated: &Value,
    ) -> Result<(), StateError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        conn.execute(
            "INSERT INTO connector_config VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (connector, given_hash)
             DO UPDATE SET config_json = excluded.config_json, updated_at = excluded.updated_at",
            params![connector, given_hash, updated.to_string(), now_millis()],
        )
        .map_err(self.sql_error())?;
        Ok(())
    }

    /// The config `connector` last emitted (CONTROL `connectorConfig`) while it ran
    /// with the user's config `given`, if any.
    ///
    /// # Errors
    /// [`StateError`] when SQLite fails.
    fn updated_config(
        &self,
        connector: &str,
        given_hash: &str,
    ) -> Result<Option<Value>, StateError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let json: Option<String> = conn
            .query_row(
                "SELECT config_json FROM connector_config WHERE connector = ?1 AND given_hash = ?2",
                params![connector, given_hash],
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
    fn clear(&self, key: &SyncKey) -> Result<(), StateError> {
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

    fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl_ms: i64,
    ) -> Result<LeaseOutcome, StateError> {
        let now = now_millis();
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(self.sql_error())?;
        let current: Option<(String, i64, i64)> = tx
            .query_row(
                "SELECT holder, token, expires_at FROM lease WHERE name = ?1",
                params![name],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(self.sql_error())?;
        let lease = match next_lease(name, holder, current, now, ttl_ms) {
            Ok(lease) => lease,
            Err(held) => return Ok(held),
        };
        tx.execute(
            "INSERT INTO lease VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,
                 token = excluded.token, expires_at = excluded.expires_at",
            params![lease.name, lease.holder, lease.token, lease.expires_at_ms],
        )
        .map_err(self.sql_error())?;
        tx.commit().map_err(self.sql_error())?;
        Ok(LeaseOutcome::Acquired(lease))
    }

    fn renew_lease(&self, lease: &Lease, ttl_ms: i64) -> Result<Option<i64>, StateError> {
        let now = now_millis();
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let expires_at = now + ttl_ms;
        let changed = conn
            .execute(
                "UPDATE lease SET expires_at = ?1 WHERE name = ?2 AND token = ?3 AND expires_at > ?4",
                params![expires_at, lease.name, lease.token, now],
            )
            .map_err(self.sql_error())?;
        Ok((changed == 1).then_some(expires_at))
    }

    fn live_leases(&self, prefix: &str) -> Result<Vec<(String, String, i64)>, StateError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let mut query = conn
            .prepare("SELECT name, holder, expires_at FROM lease WHERE expires_at > ?1")
            .map_err(self.sql_error())?;
        let rows = query
            .query_map(params![now_millis()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(self.sql_error())?;
        let mut live = Vec::new();
        for row in rows {
            let row: (String, String, i64) = row.map_err(self.sql_error())?;
            if row.0.starts_with(prefix) {
                live.push(row);
            }
        }
        Ok(live)
    }

    fn release_lease(&self, lease: &Lease) -> Result<(), StateError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        conn.execute(
            "UPDATE lease SET expires_at = 0 WHERE name = ?1 AND token = ?2",
            params![lease.name, lease.token],
        )
        .map_err(self.sql_error())?;
        Ok(())
    }
}
