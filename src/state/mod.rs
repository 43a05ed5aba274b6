//! `state`: the durable checkpoint store — an embedded SQLite database by default
//! ([`sqlite`]), or PostgreSQL shared by many machines ([`postgres`]), behind one
//! [`StateBackend`] trait.
//!
//! Owns the schemas and the commits; nothing else opens these databases. A checkpoint is
//! written only when [`crate::write`] hands over states a destination echoed (through
//! [`StateTarget`], this store's [`crate::write::Checkpoints`]), each
//! hand-over in one transaction, so a host killed at any point leaves the last
//! committed checkpoint intact (WAL journal, `synchronous=NORMAL`: a process crash
//! loses nothing committed). States are keyed by source name, destination name and
//! stream (name + namespace); GLOBAL and LEGACY states are kept per pair.
//!
//! Also owns the sync leases ([`Lease`]): holder, fencing token and expiry, kept
//! in the same database and timed by its clock, so workers on many machines
//! sharing a store exclude each other. A commit made with leases ([`StateTarget`]
//! carries them) checks each token and expiry inside its own transaction, so a run
//! that lost its lease stores nothing more ([`StateError::LeaseLost`]). When to
//! take, renew and give up a lease is [`crate::sync`]'s to decide.
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

mod postgres;
mod sqlite;

use std::path::{Path, PathBuf};

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
    /// The run's leases, each checked inside every commit (see [`Lease`]).
    pub fence: Vec<Lease>,
    /// The run syncs some of the source's streams only: a GLOBAL (CDC) or LEGACY
    /// state, either of which covers every stream, cannot be committed by it.
    pub refuse_shared: bool,
}

impl Checkpoints for StateTarget {
    fn commit(&self, states: &[AirbyteStateMessage]) -> Result<(), CheckpointError> {
        if self.refuse_shared
            && let Some(shared) = states
                .iter()
                .map(AirbyteStateMessage::effective_type)
                .find(|t| matches!(t, StateType::Global | StateType::Legacy))
        {
            return Err(CheckpointError(Box::new(StateError::SharedStateSplit {
                connector: self.key.source.clone(),
                kind: SharedState::of(shared),
            })));
        }
        self.store
            .backend
            .commit(&self.key, states, &self.fence)
            .map_err(|e| CheckpointError(Box::new(e)))
    }
}

/// A state that covers all of a source's streams at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedState {
    /// A GLOBAL state (a CDC source's).
    Global,
    /// A LEGACY state (one blob, or a state message without a type).
    Legacy,
}

impl SharedState {
    fn of(kind: StateType) -> Self {
        match kind {
            StateType::Legacy => Self::Legacy,
            _ => Self::Global,
        }
    }
}

impl std::fmt::Display for SharedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Global => "a GLOBAL (CDC) state",
            Self::Legacy => "a LEGACY state",
        })
    }
}

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
    /// Another run holds the lease on this sync.
    #[error(
        "sync {name} is already running: {holder} holds its lease for {secs} s more (it renews it while it runs)"
    )]
    LeaseHeld {
        /// The lease.
        name: String,
        /// Who holds it.
        holder: String,
        /// Seconds until it runs out unless renewed.
        secs: i64,
    },
    /// This run lost its lease (it ran out while the run was paused or cut off, or
    /// another run took it over): it may not commit again.
    #[error(
        "this run lost its lease on sync {name} (token {token}){}: it stops, and commits nothing more",
        taken_by.as_ref().map(|h| format!(", now held by {h}")).unwrap_or_default()
    )]
    LeaseLost {
        /// The lease.
        name: String,
        /// This run's token.
        token: i64,
        /// Who holds it now, if anyone.
        taken_by: Option<String>,
    },
    /// A run of some streams met a GLOBAL or LEGACY state, which covers all of them.
    #[error(
        "source {connector} keeps {kind}, which covers all its streams: they cannot be \
         synced apart; sync all of its streams in one run (no --streams)"
    )]
    SharedStateSplit {
        /// The source.
        connector: String,
        /// Which kind of state.
        kind: SharedState,
    },
    /// PostgreSQL failed, or cannot be reached.
    #[error("state database {location}: {reason}")]
    Postgres {
        /// The URL, without its password.
        location: String,
        /// What failed.
        reason: String,
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
            Self::LeaseHeld { .. } => Some(crate::remedy::Remedy::WaitForLease),
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

/// A run's hold on one sync: only the holder of the newest token may commit
/// states for it (the token fences a run that lost the lease).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// What is leased (a sync: source, destination, streams).
    pub name: String,
    /// Who holds it (host and process).
    pub holder: String,
    /// The fencing token: one more than the previous holder's.
    pub token: i64,
    /// When it runs out unless renewed, in milliseconds since the Unix epoch.
    pub expires_at_ms: i64,
}

/// What asking for a lease gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// It is ours.
    Acquired(Lease),
    /// Another run holds it.
    Held {
        /// Who.
        holder: String,
        /// Until when (ms since the Unix epoch), unless renewed.
        expires_at_ms: i64,
    },
}

/// How a store keeps states: SQLite (embedded, the default) or PostgreSQL (shared
/// by many machines). [`StateStore`] is the one type the rest of airlock holds; the
/// write loop and the sync never learn which backend is behind it.
///
/// Every method is blocking; a backend serialises its own access.
pub trait StateBackend: std::fmt::Debug + Send + Sync {
    /// Where the states live, for messages (a path, or a URL without its
    /// password).
    fn location(&self) -> String;
    /// The store's id (see [`StateStore::id`]).
    fn id(&self) -> &str;
    /// Stores `states` for `key` in one transaction (later ones win). With a
    /// `fence`, the transaction first checks that the lease is still that token's
    /// and has not run out, and stores nothing otherwise.
    ///
    /// # Errors
    /// [`StateError`]: nothing is stored ([`StateError::LeaseLost`] when fenced
    /// off).
    fn commit(
        &self,
        key: &SyncKey,
        states: &[AirbyteStateMessage],
        fence: &[Lease],
    ) -> Result<(), StateError>;
    /// Takes the lease `name` for `holder` for `ttl_ms`, unless another holder's
    /// lease on it is still running; a new holder gets the next fencing token.
    ///
    /// # Errors
    /// [`StateError`].
    fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl_ms: i64,
    ) -> Result<LeaseOutcome, StateError>;
    /// Extends `lease` by `ttl_ms` from now: the new expiry, or `None` when it was
    /// lost (run out, or taken over).
    ///
    /// # Errors
    /// [`StateError`].
    fn renew_lease(&self, lease: &Lease, ttl_ms: i64) -> Result<Option<i64>, StateError>;
    /// The leases whose name starts with `prefix` that have not run out: name,
    /// holder, expiry (ms).
    ///
    /// # Errors
    /// [`StateError`].
    fn live_leases(&self, prefix: &str) -> Result<Vec<(String, String, i64)>, StateError>;
    /// Gives `lease` up (when it is still that token's): it runs out at once, and
    /// keeps its token, so that tokens only ever grow.
    ///
    /// # Errors
    /// [`StateError`].
    fn release_lease(&self, lease: &Lease) -> Result<(), StateError>;
    /// The latest confirmed states for `key`.
    ///
    /// # Errors
    /// [`StateError`].
    fn load(&self, key: &SyncKey) -> Result<StoredState, StateError>;
    /// Stores a connector's updated config under the hash of the given one.
    ///
    /// # Errors
    /// [`StateError`].
    fn save_updated_config(
        &self,
        connector: &str,
        given_hash: &str,
        updated: &Value,
    ) -> Result<(), StateError>;
    /// A connector's updated config for the given one's hash.
    ///
    /// # Errors
    /// [`StateError`].
    fn updated_config(
        &self,
        connector: &str,
        given_hash: &str,
    ) -> Result<Option<Value>, StateError>;
    /// Forgets every state of `key`.
    ///
    /// # Errors
    /// [`StateError`].
    fn clear(&self, key: &SyncKey) -> Result<(), StateError>;
}

/// The durable store of confirmed states, over a [`StateBackend`].
#[derive(Debug)]
pub struct StateStore {
    backend: Box<dyn StateBackend>,
}

impl StateStore {
    /// Opens (creating if needed) the SQLite database at `path`, with its folder.
    ///
    /// # Errors
    /// [`StateError`] when the file cannot be opened or was written by a newer airlock.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StateError> {
        Ok(Self::from_backend(Box::new(sqlite::SqliteBackend::open(
            path.as_ref(),
        )?)))
    }

    /// An in-memory SQLite store, gone when dropped.
    ///
    /// # Errors
    /// [`StateError`] if SQLite cannot start.
    pub fn open_in_memory() -> Result<Self, StateError> {
        Ok(Self::from_backend(Box::new(
            sqlite::SqliteBackend::open_in_memory()?,
        )))
    }

    /// Opens the store `location` names: a `postgres://` (or `postgresql://`) URL
    /// for PostgreSQL, anything else a SQLite file.
    ///
    /// # Errors
    /// [`StateError`] when the database cannot be reached or opened.
    pub fn connect(location: &str) -> Result<Self, StateError> {
        if postgres::is_url(location) {
            Ok(Self::from_backend(Box::new(
                postgres::PostgresBackend::connect(location)?,
            )))
        } else {
            Self::open(location)
        }
    }

    /// A store over any backend.
    pub fn from_backend(backend: Box<dyn StateBackend>) -> Self {
        Self { backend }
    }

    /// This database's id, made when it was created: what a cache files a
    /// destination's confirmed positions under, so that they count only with the
    /// state database that holds the matching states.
    pub fn id(&self) -> &str {
        self.backend.id()
    }

    /// Where the states live (a path, or a URL without its password).
    pub fn location(&self) -> String {
        self.backend.location()
    }

    /// Stores `states` (in order; later ones win) for `key` in one transaction.
    ///
    /// # Errors
    /// [`StateError`] when the database fails (nothing is stored) or a state lacks
    /// its payload.
    pub fn commit(&self, key: &SyncKey, states: &[AirbyteStateMessage]) -> Result<(), StateError> {
        self.backend.commit(key, states, &[])
    }

    /// [`StateStore::commit`], only while `lease` is still held with its token.
    ///
    /// # Errors
    /// [`StateError::LeaseLost`] when it is not (nothing is stored), or as
    /// [`StateStore::commit`].
    pub fn commit_fenced(
        &self,
        key: &SyncKey,
        states: &[AirbyteStateMessage],
        lease: &Lease,
    ) -> Result<(), StateError> {
        self.backend
            .commit(key, states, std::slice::from_ref(lease))
    }

    /// Takes the lease `name` for `holder` for `ttl`, unless another run holds it.
    ///
    /// # Errors
    /// [`StateError`] when the database fails.
    pub fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<LeaseOutcome, StateError> {
        self.backend
            .acquire_lease(name, holder, ttl.as_millis() as i64)
    }

    /// Extends `lease` by `ttl` from now; `None` when it was lost.
    ///
    /// # Errors
    /// [`StateError`] when the database fails.
    pub fn renew_lease(
        &self,
        lease: &Lease,
        ttl: std::time::Duration,
    ) -> Result<Option<i64>, StateError> {
        self.backend.renew_lease(lease, ttl.as_millis() as i64)
    }

    /// The leases named `prefix…` that have not run out: name, holder, expiry.
    ///
    /// # Errors
    /// [`StateError`] when the database fails.
    pub fn live_leases(&self, prefix: &str) -> Result<Vec<(String, String, i64)>, StateError> {
        self.backend.live_leases(prefix)
    }

    /// Gives `lease` up.
    ///
    /// # Errors
    /// [`StateError`] when the database fails.
    pub fn release_lease(&self, lease: &Lease) -> Result<(), StateError> {
        self.backend.release_lease(lease)
    }

    /// The latest confirmed states for `key`.
    ///
    /// # Errors
    /// [`StateError`] when the database fails.
    pub fn load(&self, key: &SyncKey) -> Result<StoredState, StateError> {
        self.backend.load(key)
    }

    /// The stored STREAM state of one stream, if any.
    ///
    /// # Errors
    /// [`StateError`] when the database fails.
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
    /// [`StateError`] when the database fails.
    pub fn save_updated_config(
        &self,
        connector: &str,
        given: &Value,
        updated: &Value,
    ) -> Result<(), StateError> {
        self.backend
            .save_updated_config(connector, &config_hash(given), updated)
    }

    /// The config `connector` last emitted (CONTROL `connectorConfig`) while it ran
    /// with the user's config `given`, if any.
    ///
    /// # Errors
    /// [`StateError`] when the database fails.
    pub fn updated_config(
        &self,
        connector: &str,
        given: &Value,
    ) -> Result<Option<Value>, StateError> {
        self.backend.updated_config(connector, &config_hash(given))
    }

    /// Forgets every state of `key` (a full refresh from scratch).
    ///
    /// # Errors
    /// [`StateError`] when the database fails.
    pub fn clear(&self, key: &SyncKey) -> Result<(), StateError> {
        self.backend.clear(key)
    }
}

/// What a taker of lease `name` gets, given its row as it is now (holder, token,
/// expiry): the other holder's lease while it runs (`Err`), else a new lease with
/// the next token.
fn next_lease(
    name: &str,
    holder: &str,
    current: Option<(String, i64, i64)>,
    now: i64,
    ttl_ms: i64,
) -> Result<Lease, LeaseOutcome> {
    if let Some((other, _, expires_at)) = &current
        && *expires_at > now
    {
        return Err(LeaseOutcome::Held {
            holder: other.clone(),
            expires_at_ms: *expires_at,
        });
    }
    Ok(Lease {
        name: name.to_owned(),
        holder: holder.to_owned(),
        token: current.map_or(1, |(_, token, _)| token + 1),
        expires_at_ms: now + ttl_ms,
    })
}

/// Whether `lease` may still commit, given the lease row as it is now (holder,
/// token, expiry): only with its own token, before it runs out.
fn check_fence(
    lease: &Lease,
    current: Option<(String, i64, i64)>,
    now: i64,
) -> Result<(), StateError> {
    match current {
        Some((_, token, expires_at)) if token == lease.token && expires_at > now => Ok(()),
        Some((holder, token, _)) if token != lease.token => Err(StateError::LeaseLost {
            name: lease.name.clone(),
            token: lease.token,
            taken_by: Some(holder),
        }),
        _ => Err(StateError::LeaseLost {
            name: lease.name.clone(),
            token: lease.token,
            taken_by: None,
        }),
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_millis() -> i64 {
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
