//! The PostgreSQL backend: states shared by every machine that runs syncs, with
//! the same guarantees as the SQLite file (one transaction per hand-over of
//! confirmed states; a failed commit stores nothing).
//!
//! Owns its tables (`airlock_*`, created on first connect under an advisory
//! lock, so that two workers starting at once do not race) and a thread of its
//! own holding the connection: rust-postgres's blocking client runs an async
//! runtime inside, which must not be entered from airlock's. Callers block on a
//! reply, as they do on SQLite's I/O. A connection that broke is made again on
//! the next call. Only [`super::StateStore`] uses it.

use std::sync::Mutex;
use std::sync::mpsc;
use std::time::Duration;

use postgres::{Client, NoTls};
use serde_json::Value;

use super::{
    Lease, LeaseOutcome, StateBackend, StateError, StoredState, SyncKey, check_fence, next_lease,
    now_millis,
};

/// The server's clock in milliseconds: every worker's leases are timed by one
/// clock, whatever the workers' own clocks say.
const SERVER_NOW: &str = "SELECT (extract(epoch from clock_timestamp()) * 1000)::bigint";

use crate::protocol::{AirbyteStateMessage, StateType};

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether `location` is a PostgreSQL URL.
pub(super) fn is_url(location: &str) -> bool {
    crate::config::is_postgres_url(location)
}

/// `url` without its password, for messages.
pub(super) fn shown(url: &str) -> String {
    crate::config::url_without_password(url)
}

type Job = Box<dyn FnOnce(&mut Option<Client>) + Send>;

/// States in PostgreSQL.
#[derive(Debug)]
pub(super) struct PostgresBackend {
    location: String,
    id: String,
    jobs: Mutex<mpsc::Sender<Job>>,
}

/// The tables, made once per database.
const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS airlock_store_meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS airlock_stream_state (
        source        TEXT NOT NULL,
        destination   TEXT NOT NULL,
        has_namespace BOOLEAN NOT NULL,
        namespace     TEXT NOT NULL,
        stream        TEXT NOT NULL,
        state_json    TEXT NOT NULL,
        updated_at    BIGINT NOT NULL,
        PRIMARY KEY (source, destination, has_namespace, namespace, stream)
    );
    CREATE TABLE IF NOT EXISTS airlock_pair_state (
        source      TEXT NOT NULL,
        destination TEXT NOT NULL,
        kind        TEXT NOT NULL CHECK (kind IN ('GLOBAL', 'LEGACY')),
        state_json  TEXT NOT NULL,
        updated_at  BIGINT NOT NULL,
        PRIMARY KEY (source, destination, kind)
    );
    CREATE TABLE IF NOT EXISTS airlock_lease (
        name       TEXT PRIMARY KEY,
        holder     TEXT NOT NULL,
        token      BIGINT NOT NULL,
        expires_at BIGINT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS airlock_connector_config (
        connector   TEXT NOT NULL,
        given_hash  TEXT NOT NULL,
        config_json TEXT NOT NULL,
        updated_at  BIGINT NOT NULL,
        PRIMARY KEY (connector, given_hash)
    );
";

/// What the server lets one statement, one wait for a lock and one idle
/// transaction take: a state commit or a lease is a few rows, so a call that
/// runs this long is stuck (a partition, a lock held by a stuck session), and
/// fails instead of hanging the run and holding its row locks.
const SESSION_LIMITS: &str = "SET statement_timeout = 30000; SET lock_timeout = 15000; \
     SET idle_in_transaction_session_timeout = 60000";

fn connect(url: &str) -> Result<Client, postgres::Error> {
    let mut config: postgres::Config = url.parse()?;
    config.connect_timeout(CONNECT_TIMEOUT);
    // A peer that vanished (no FIN, no RST) is noticed in about half a minute,
    // not at the kernel's two-hour keepalive.
    config
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(10))
        .tcp_user_timeout(Duration::from_secs(30));
    let mut client = config.connect(NoTls)?;
    // Set once connected, not as startup options: poolers (PgBouncer) refuse
    // those, and a store reached through one would not connect at all.
    client.batch_execute(SESSION_LIMITS)?;
    Ok(client)
}

impl PostgresBackend {
    /// Connects to `url`, makes the tables if they are missing and reads (or
    /// makes) the store's id.
    pub fn connect(url: &str) -> Result<Self, StateError> {
        let location = shown(url);
        let failed = |reason: String| StateError::Postgres {
            location: location.clone(),
            reason,
        };
        // Connecting happens on the connection's thread too: the driver blocks
        // on an async runtime of its own, which must not start inside airlock's.
        let (jobs, queue) = mpsc::channel::<Job>();
        let (ready, started) = mpsc::sync_channel::<Result<String, String>>(1);
        let url = url.to_owned();
        std::thread::Builder::new()
            .name("airlock-state-pg".into())
            .spawn(move || {
                let opened = connect(&url).and_then(|mut client| {
                    let id = prepare(&mut client)?;
                    Ok((client, id))
                });
                let mut client = match opened {
                    Ok((client, id)) => {
                        let _ = ready.send(Ok(id));
                        Some(client)
                    }
                    Err(error) => {
                        let _ = ready.send(Err(describe(&error)));
                        return;
                    }
                };
                for job in queue {
                    if client.as_ref().is_none_or(Client::is_closed) {
                        client = connect(&url).ok();
                    }
                    job(&mut client);
                }
            })
            .map_err(|e| failed(format!("cannot start its connection's thread: {e}")))?;
        let id = started
            .recv()
            .map_err(|_| failed("its connection's thread stopped while connecting".into()))?
            .map_err(failed)?;
        Ok(Self {
            location,
            id,
            jobs: Mutex::new(jobs),
        })
    }

    /// Runs `work` on the connection's thread and waits for its answer.
    fn call<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Client) -> Result<T, postgres::Error> + Send + 'static,
    ) -> Result<T, StateError> {
        let failed = |reason: String| StateError::Postgres {
            location: self.location.clone(),
            reason,
        };
        let (reply, answer) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |client: &mut Option<Client>| {
            let result = match client.as_mut() {
                Some(connected) => {
                    let result = work(connected);
                    // The driver may learn that the session ended only from this
                    // error: the next call must connect again, not reuse it.
                    if result.as_ref().is_err_and(connection_lost) {
                        *client = None;
                    }
                    result.map_err(|e| describe(&e))
                }
                None => Err("the server cannot be reached (connection refused or lost)".into()),
            };
            let _ = reply.send(result);
        });
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(job)
            .map_err(|_| failed("its connection's thread has stopped".into()))?;
        answer
            .recv()
            .map_err(|_| failed("its connection's thread has stopped".into()))?
            .map_err(failed)
    }
}

/// Whether `error` leaves the connection unusable: the socket failed or closed,
/// or the server ended the session (SQLSTATE classes 08 and 57P). Any other
/// error without a server message counts too: a new connection costs little.
fn connection_lost(error: &postgres::Error) -> bool {
    match error.as_db_error() {
        Some(db) => {
            let code = db.code().code();
            code.starts_with("08") || code.starts_with("57P")
        }
        None => true,
    }
}

/// A driver error in words: the server's message when it sent one.
fn describe(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            let text = error.to_string();
            match std::error::Error::source(error) {
                Some(cause) => format!("{text}: {cause}"),
                None => text,
            }
        }
    }
}

/// Makes the tables (under an advisory lock: concurrent `CREATE TABLE IF NOT
/// EXISTS` can collide) and returns the store's id.
fn prepare(client: &mut Client) -> Result<String, postgres::Error> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock(7364281905)", &[])?;
    tx.batch_execute(SCHEMA)?;
    let id: String = {
        use sha2::{Digest, Sha256};
        let seed = format!("{:?} {}", std::time::SystemTime::now(), std::process::id());
        Sha256::digest(seed.as_bytes())[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    tx.execute(
        "INSERT INTO airlock_store_meta (key, value) VALUES ('id', $1) ON CONFLICT (key) DO NOTHING",
        &[&id],
    )?;
    let row = tx.query_one("SELECT value FROM airlock_store_meta WHERE key = 'id'", &[])?;
    let id: String = row.get(0);
    tx.commit()?;
    Ok(id)
}

impl StateBackend for PostgresBackend {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn id(&self) -> &str {
        &self.id
    }

    fn commit(
        &self,
        key: &SyncKey,
        states: &[AirbyteStateMessage],
        fence: &[Lease],
    ) -> Result<(), StateError> {
        // Checked before the transaction: a malformed state stores nothing.
        let mut rows = Vec::with_capacity(states.len());
        for state in states {
            let json = serde_json::to_string(state).unwrap_or_default();
            match state.effective_type() {
                StateType::Stream => {
                    let stream = state.stream.as_ref().ok_or(StateError::Malformed {
                        kind: StateType::Stream,
                        field: "stream",
                    })?;
                    let d = &stream.stream_descriptor;
                    rows.push((None, Some((d.namespace.clone(), d.name.clone())), json));
                }
                StateType::Global => rows.push((Some("GLOBAL"), None, json)),
                StateType::Legacy => rows.push((Some("LEGACY"), None, json)),
            }
        }
        let key = key.clone();
        let fence = fence.to_vec();
        let fenced_off = std::sync::Arc::new(Mutex::new(None::<StateError>));
        let refusal = fenced_off.clone();
        let stored = self.call(move |client| {
            let now = now_millis();
            let mut tx = client.transaction()?;
            let server_now: i64 = match fence.is_empty() {
                true => 0,
                false => tx.query_one(SERVER_NOW, &[])?.get(0),
            };
            for lease in &fence {
                let current = tx
                    .query_opt(
                        "SELECT holder, token, expires_at FROM airlock_lease WHERE name = $1 FOR UPDATE",
                        &[&lease.name],
                    )?
                    .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1), r.get::<_, i64>(2)));
                if let Err(refused) = check_fence(lease, current, server_now) {
                    *refusal.lock().unwrap_or_else(|p| p.into_inner()) = Some(refused);
                    return Ok(()); // dropped unfinished: rolled back
                }
            }
            for (kind, stream, json) in &rows {
                match (kind, stream) {
                    (_, Some((namespace, name))) => {
                        tx.execute(
                            "INSERT INTO airlock_stream_state VALUES ($1, $2, $3, $4, $5, $6, $7)
                             ON CONFLICT (source, destination, has_namespace, namespace, stream)
                             DO UPDATE SET state_json = excluded.state_json, updated_at = excluded.updated_at",
                            &[
                                &key.source,
                                &key.destination,
                                &namespace.is_some(),
                                &namespace.as_deref().unwrap_or(""),
                                name,
                                json,
                                &now,
                            ],
                        )?;
                    }
                    (Some(kind), None) => {
                        tx.execute(
                            "INSERT INTO airlock_pair_state VALUES ($1, $2, $3, $4, $5)
                             ON CONFLICT (source, destination, kind)
                             DO UPDATE SET state_json = excluded.state_json, updated_at = excluded.updated_at",
                            &[&key.source, &key.destination, kind, json, &now],
                        )?;
                    }
                    (None, None) => {}
                }
            }
            tx.commit()
        });
        if let Some(refused) = fenced_off.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(refused);
        }
        stored
    }

    fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl_ms: i64,
    ) -> Result<LeaseOutcome, StateError> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        self.call(move |client| {
            let mut tx = client.transaction()?;
            // Serialises takers of a lease that does not exist yet.
            tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&name])?;
            let now: i64 = tx.query_one(SERVER_NOW, &[])?.get(0);
            let current = tx
                .query_opt(
                    "SELECT holder, token, expires_at FROM airlock_lease WHERE name = $1 FOR UPDATE",
                    &[&name],
                )?
                .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1), r.get::<_, i64>(2)));
            let lease = match next_lease(&name, &holder, current, now, ttl_ms) {
                Ok(lease) => lease,
                Err(held) => return Ok(held),
            };
            tx.execute(
                "INSERT INTO airlock_lease VALUES ($1, $2, $3, $4)
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,
                     token = excluded.token, expires_at = excluded.expires_at",
                &[&lease.name, &lease.holder, &lease.token, &lease.expires_at_ms],
            )?;
            tx.commit()?;
            Ok(LeaseOutcome::Acquired(lease))
        })
    }

    fn renew_lease(&self, lease: &Lease, ttl_ms: i64) -> Result<Option<i64>, StateError> {
        let (name, token) = (lease.name.clone(), lease.token);
        self.call(move |client| {
            let row = client.query_opt(
                "UPDATE airlock_lease
                 SET expires_at = (extract(epoch from clock_timestamp()) * 1000)::bigint + $1
                 WHERE name = $2 AND token = $3
                   AND expires_at > (extract(epoch from clock_timestamp()) * 1000)::bigint
                 RETURNING expires_at",
                &[&ttl_ms, &name, &token],
            )?;
            Ok(row.map(|r| r.get::<_, i64>(0)))
        })
    }

    fn live_leases(&self, prefix: &str) -> Result<Vec<(String, String, i64)>, StateError> {
        let prefix = prefix.to_owned();
        self.call(move |client| {
            let rows = client.query(
                "SELECT name, holder, expires_at FROM airlock_lease
                 WHERE expires_at > (extract(epoch from clock_timestamp()) * 1000)::bigint",
                &[],
            )?;
            Ok(rows
                .into_iter()
                .map(|r| {
                    (
                        r.get::<_, String>(0),
                        r.get::<_, String>(1),
                        r.get::<_, i64>(2),
                    )
                })
                .filter(|(name, _, _)| name.starts_with(&prefix))
                .collect())
        })
    }

    fn release_lease(&self, lease: &Lease) -> Result<(), StateError> {
        let (name, token) = (lease.name.clone(), lease.token);
        self.call(move |client| {
            client.execute(
                "UPDATE airlock_lease SET expires_at = 0 WHERE name = $1 AND token = $2",
                &[&name, &token],
            )?;
            Ok(())
        })
    }

    fn load(&self, key: &SyncKey) -> Result<StoredState, StateError> {
        let key = key.clone();
        self.call(move |client| {
            let mut stored = StoredState::default();
            for row in client.query(
                "SELECT state_json FROM airlock_stream_state WHERE source = $1 AND destination = $2
                 ORDER BY has_namespace, namespace, stream",
                &[&key.source, &key.destination],
            )? {
                if let Ok(state) = serde_json::from_str(row.get::<_, &str>(0)) {
                    stored.streams.push(state);
                }
            }
            for row in client.query(
                "SELECT kind, state_json FROM airlock_pair_state WHERE source = $1 AND destination = $2",
                &[&key.source, &key.destination],
            )? {
                let state = serde_json::from_str(row.get::<_, &str>(1)).ok();
                match row.get::<_, &str>(0) {
                    "GLOBAL" => stored.global = state,
                    _ => stored.legacy = state,
                }
            }
            Ok(stored)
        })
    }

    fn save_updated_config(
        &self,
        connector: &str,
        given_hash: &str,
        updated: &Value,
    ) -> Result<(), StateError> {
        let (connector, given_hash, updated) = (
            connector.to_owned(),
            given_hash.to_owned(),
            updated.to_string(),
        );
        self.call(move |client| {
            client.execute(
                "INSERT INTO airlock_connector_config VALUES ($1, $2, $3, $4)
                 ON CONFLICT (connector, given_hash)
                 DO UPDATE SET config_json = excluded.config_json, updated_at = excluded.updated_at",
                &[&connector, &given_hash, &updated, &now_millis()],
            )?;
            Ok(())
        })
    }

    fn updated_config(
        &self,
        connector: &str,
        given_hash: &str,
    ) -> Result<Option<Value>, StateError> {
        let (connector, given_hash) = (connector.to_owned(), given_hash.to_owned());
        self.call(move |client| {
            let row = client.query_opt(
                "SELECT config_json FROM airlock_connector_config WHERE connector = $1 AND given_hash = $2",
                &[&connector, &given_hash],
            )?;
            Ok(row.and_then(|r| serde_json::from_str(r.get::<_, &str>(0)).ok()))
        })
    }

    fn clear(&self, key: &SyncKey) -> Result<(), StateError> {
        let key = key.clone();
        self.call(move |client| {
            let mut tx = client.transaction()?;
            for table in ["airlock_stream_state", "airlock_pair_state"] {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE source = $1 AND destination = $2"),
                    &[&key.source, &key.destination],
                )?;
            }
            tx.commit()
        })
    }
}
