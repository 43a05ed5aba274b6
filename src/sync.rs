//! `sync`: PyAirbyte's `Destination.write(source_data, ...)` — a source or a cached
//! read into a destination, and the state round trip around it.
//!
//! Owns the order of a sync: build the configured catalog for the write strategy;
//! either stream the source's bytes straight into the write loop (no cache, no
//! re-serialising) handing it the state the destination last confirmed, or read
//! the source into the cache (resuming from the cache's state) and replay to the
//! destination only what it has not yet confirmed; persist connector configs
//! updated by CONTROL messages; report whichever side failed first. Persisting
//! confirmed states stays with [`crate::write`]; this module never commits a
//! state itself. It drives a [`SyncDestination`] (which [`crate::Destination`]
//! implements), never the destination API above it.
//!
//! With a state store, a run holds leases on its sync (one per stream when it
//! runs some streams, `*` when all): taken before anything runs (refused or
//! waited for while another run holds them), renewed every third of their time,
//! handed to the write loop to fence each commit, checked once more before the
//! run reports success, and given up however it ends. A renewal that finds a
//! lease lost stops the run there. A run of some streams refuses a GLOBAL state.
//! The lease records themselves belong to [`crate::state`].
//!
//! Each run is a `sync` span (`sync_id`, `source`, `destination`) holding the
//! source's lines and the write's span; it opens with `sync_started` and closes
//! with `sync_finished` ([`crate::events`]).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tracing::Instrument;

use crate::cache::fill::FillProgress;
use crate::cache::replay::{
    PendingPositions, PositionWriter, ReplayPlan, SentStates, Tail, replay, resume_catalog,
};
use crate::cache::{Cache, CacheError, ControlCallback, ReadResult, stream_slot};
use crate::events::{SyncFinished, SyncPipelined, SyncStarted};
use crate::executor::ExecutorError;
use crate::protocol::ConfiguredAirbyteCatalog;
use crate::protocol::StreamDescriptor;
use crate::source::{CacheReadHooks, ReadOptions, Source, SourceError, WriteStrategy, configure};
use crate::state::{
    Lease, LeaseOutcome, SharedState, StateError, StateStore, StateTarget, SyncKey, now_millis,
};
use crate::write::{Progress, ProgressCallback, WriteError, WriteJob, WriteOptions, WriteResult};

/// What a sync needs of a destination. [`crate::Destination`] implements it, so
/// this layer never depends on the destination API above it.
#[async_trait::async_trait]
pub trait SyncDestination: Send + Sync {
    /// The connector's name.
    fn name(&self) -> &str;
    /// The config it was given, if any.
    fn config(&self) -> Option<&Value>;
    /// What its stored states and positions are filed under (see
    /// [`crate::Destination::identity`]).
    async fn identity(&self) -> &str;
    /// A write of `input` with `config` (the given one, or one a CONTROL message
    /// replaced), masking the connector's secrets.
    fn write_with_config(
        &self,
        config: Value,
        input: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
        catalog: ConfiguredAirbyteCatalog,
    ) -> crate::write::WriteJob<'_>;
}

/// What a [`crate::Destination::write`] takes: a source, or a read already cached.
#[derive(Debug, Clone, Copy)]
pub enum WriteInput<'a> {
    /// Read this source (through the cache, unless it is off).
    Source(&'a Source),
    /// Replay this cached read.
    ReadResult(&'a ReadResult),
}

impl<'a> From<&'a Source> for WriteInput<'a> {
    fn from(source: &'a Source) -> Self {
        Self::Source(source)
    }
}

impl<'a> From<&'a ReadResult> for WriteInput<'a> {
    fn from(read: &'a ReadResult) -> Self {
        Self::ReadResult(read)
    }
}

/// Which side of a sync a connector is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectorRole {
    /// The source.
    Source,
    /// The destination.
    Destination,
}

/// A connector replaced its config with a CONTROL `connectorConfig` message.
#[derive(Debug, Clone)]
pub struct ConfigUpdate {
    /// Which side.
    pub role: ConnectorRole,
    /// The connector's name.
    pub connector: String,
    /// The new config. With a state cache it is stored and used by the next run
    /// that is given the same original config.
    pub config: Value,
}

/// A callback for [`ConfigUpdate`]s.
pub type ConfigCallback = Arc<dyn Fn(&ConfigUpdate) + Send + Sync>;

/// Why a sync failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The source could not be prepared (config, discover, streams, strategy).
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The destination was given no config.
    #[error("no config was given for the destination {destination}")]
    NoDestinationConfig {
        /// The destination's name.
        destination: String,
    },
    /// The state store failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The cache failed.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The write failed; what it confirmed is persisted.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// The source failed mid-stream; what the destination confirmed before is
    /// persisted, and the next run resumes from it.
    #[error(
        "the source failed; the states confirmed before the failure are kept and the next sync resumes from them"
    )]
    SourceFailed {
        /// The source's error.
        source: ExecutorError,
        /// What was written and confirmed.
        partial: Box<WriteResult>,
    },
}

/// What a sync did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SyncResult {
    /// This run's id: the `sync_id` field of its `sync` span, so a result can be
    /// matched to its log lines.
    pub sync_id: String,
    /// The source's name.
    pub source: String,
    /// Whether the source was handed a stored state (an incremental run).
    pub resumed_from_state: bool,
    /// The cache the data went through, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<std::path::PathBuf>,
    /// Records the source produced in this run (with a cache: records it added).
    pub records_read: u64,
    /// The write's counts.
    #[serde(flatten)]
    pub write: WriteResult,
}

/// Whether and where a source is cached on its way.
#[derive(Debug, Clone, Default)]
enum CacheChoice {
    /// `<airlock home>/cache/default.sqlite`.
    #[default]
    Default,
    /// Stream straight through.
    Off,
    /// This cache.
    Use(Arc<Cache>),
}

/// One write of a source or a cached read into a destination, built then run
/// (PyAirbyte's `Destination.write(source_data, streams, cache, state_cache,
/// write_strategy, force_full_refresh)`).
pub struct SyncJob<'a> {
    input: WriteInput<'a>,
    destination: &'a dyn SyncDestination,
    strategy: Option<WriteStrategy>,
    full_refresh: bool,
    streams: Option<Vec<String>>,
    cache: CacheChoice,
    state: Option<Arc<StateStore>>,
    options: WriteOptions,
    progress: Option<Arc<Mutex<ProgressCallback>>>,
    on_config: Option<ConfigCallback>,
    /// The run's leases on this sync, once taken (with a state cache).
    lease: Vec<Lease>,
    /// The run covers some streams only: a GLOBAL state cannot be committed.
    refuse_shared: bool,
    lease_ttl: std::time::Duration,
    wait_for_lease: bool,
}

/// How long a run's lease lasts unless renewed (it is renewed every third of it).
pub const DEFAULT_LEASE_TTL: std::time::Duration = std::time::Duration::from_secs(30);

/// The leases this run holds: their renewal stops and they are given up when
/// dropped, so an interrupted run does not keep others waiting for them to run out.
struct HeldLease {
    store: Arc<StateStore>,
    leases: Vec<Lease>,
    renewer: tokio::task::JoinHandle<()>,
}

impl Drop for HeldLease {
    fn drop(&mut self) {
        self.renewer.abort();
        for lease in &self.leases {
            if let Err(error) = self.store.release_lease(lease) {
                tracing::warn!("giving up the sync's lease: {error} (it runs out by itself)");
            }
        }
    }
}

/// Runs `work` on `store` off the async workers (a store's calls block); a
/// task that died is named as `what` failing.
async fn on_store<T: Send + 'static>(
    store: &Arc<StateStore>,
    what: &str,
    work: impl FnOnce(&StateStore) -> Result<T, StateError> + Send + 'static,
) -> Result<T, StateError> {
    let (store, location) = (store.clone(), store.location());
    tokio::task::spawn_blocking(move || work(&store))
        .await
        .map_err(|_| StateError::Postgres {
            location,
            reason: format!("{what} failed"),
        })?
}

/// Renews every lease of a run: `None` when all were renewed, else the loss of
/// the first that was not (who holds it now, if anyone).
fn renew_all(
    store: &StateStore,
    leases: &[Lease],
    ttl: std::time::Duration,
) -> Result<Option<StateError>, StateError> {
    for lease in leases {
        if store.renew_lease(lease, ttl)?.is_none() {
            // Who holds it now is only for the message: lost is lost.
            let taken_by = store
                .live_leases(&lease.name)
                .unwrap_or_default()
                .into_iter()
                .find(|(name, _, _)| name == &lease.name)
                .map(|(_, holder, _)| holder);
            return Ok(Some(StateError::LeaseLost {
                name: lease.name.clone(),
                token: lease.token,
                taken_by,
            }));
        }
    }
    Ok(None)
}

/// Up to 250 ms of jitter, from the clock.
fn fastrand_jitter() -> u16 {
    use std::hash::{BuildHasher, RandomState};
    (RandomState::new().hash_one(std::time::SystemTime::now()) % 250) as u16
}

/// Who this process is, in a lease: host and process id.
fn lease_holder() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into());
    format!("{host} (pid {})", std::process::id())
}

impl<'a> SyncJob<'a> {
    /// A write of `input` into `destination`: the AUTO strategy, the default cache,
    /// no state cache. [`crate::Destination::write`] is the usual way in.
    pub fn new(input: WriteInput<'a>, destination: &'a dyn SyncDestination) -> Self {
        Self {
            input,
            destination,
            strategy: None,
            full_refresh: false,
            streams: None,
            cache: CacheChoice::Default,
            state: None,
            options: WriteOptions::default(),
            progress: None,
            on_config: None,
            lease: Vec::new(),
            refuse_shared: false,
            lease_ttl: DEFAULT_LEASE_TTL,
            wait_for_lease: false,
        }
    }

    /// How long this run's lease on the sync lasts unless renewed (default
    /// [`DEFAULT_LEASE_TTL`]; renewed every third of it while the run goes on).
    /// A run that cannot renew it in time — paused, cut off — loses it, and then
    /// commits nothing more.
    pub fn lease_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.lease_ttl = ttl.max(std::time::Duration::from_millis(300));
        self
    }

    /// When another run holds this sync's lease, wait for it instead of failing.
    pub fn wait_for_lease(mut self, wait: bool) -> Self {
        self.wait_for_lease = wait;
        self
    }

    /// Only these streams (they must be in the source's catalog, or the read's).
    pub fn streams(mut self, streams: &[impl AsRef<str>]) -> Self {
        self.streams = Some(streams.iter().map(|s| s.as_ref().to_owned()).collect());
        self
    }

    /// The write strategy (default AUTO; for a cached read, the strategy it was
    /// read with).
    pub fn strategy(mut self, strategy: WriteStrategy) -> Self {
        self.strategy = Some(strategy);
        self
    }

    /// Ignore stored state and read (or replay) everything (PyAirbyte's
    /// `force_full_refresh`).
    pub fn force_full_refresh(mut self, yes: bool) -> Self {
        self.full_refresh = yes;
        self
    }

    /// Read the source through this cache.
    pub fn cache(mut self, cache: Arc<Cache>) -> Self {
        self.cache = CacheChoice::Use(cache);
        self
    }

    /// Stream the source straight into the destination (PyAirbyte's `cache=False`).
    pub fn no_cache(mut self) -> Self {
        self.cache = CacheChoice::Off;
        self
    }

    /// Keep confirmed states (and updated connector configs) here and resume from
    /// them (PyAirbyte's `state_cache`). Without it, nothing is kept.
    pub fn state_cache(mut self, store: Arc<StateStore>) -> Self {
        self.state = Some(store);
        self
    }

    /// Write-loop tuning.
    pub fn options(mut self, options: WriteOptions) -> Self {
        self.options = options;
        self
    }

    /// Progress callback.
    pub fn on_progress(mut self, callback: impl FnMut(&Progress) + Send + 'static) -> Self {
        self.progress = Some(Arc::new(Mutex::new(Box::new(callback))));
        self
    }

    /// Called when a connector replaces its config (CONTROL `connectorConfig`).
    pub fn on_config_update(
        mut self,
        callback: impl Fn(&ConfigUpdate) + Send + Sync + 'static,
    ) -> Self {
        self.on_config = Some(Arc::new(callback));
        self
    }

    /// Runs the write to the end.
    ///
    /// # Errors
    /// [`SyncError`]: the side that failed first, with what was confirmed.
    pub async fn run(self) -> Result<SyncResult, SyncError> {
        let source_name = match self.input {
            WriteInput::Source(source) => source.name(),
            WriteInput::ReadResult(read) => read.source_name(),
        };
        let mode = match (self.input, &self.cache) {
            (WriteInput::ReadResult(_), _) => "cached-read",
            (WriteInput::Source(_), CacheChoice::Off) => "stream-through",
            (WriteInput::Source(_), _) => "cache",
        };
        let sync_id = crate::events::new_sync_id();
        let span = crate::events::sync_span(&sync_id, source_name, self.destination.name());
        async move {
            SyncStarted { mode }.emit();
            let started = std::time::Instant::now();
            let outcome = self
                .run_in_span()
                .await
                .map(|result| SyncResult { sync_id, ..result });
            let (result, error) = match &outcome {
                Ok(result) => (Some(result), None),
                Err(error) => (None, Some(error as &dyn std::error::Error)),
            };
            let write = match (&outcome, result) {
                (_, Some(result)) => Some(&result.write),
                (Err(SyncError::Write(error)), _) => Some(error.partial.as_ref()),
                (Err(SyncError::SourceFailed { partial, .. }), _) => Some(partial.as_ref()),
                _ => None,
            };
            SyncFinished {
                records_read: result.map_or(0, |r| r.records_read),
                records_sent: write.map_or(0, |w| w.records_sent),
                records_confirmed: write.map_or(0, |w| w.records_confirmed),
                states_confirmed: write.map_or(0, |w| w.states_confirmed),
                duration_secs: started.elapsed().as_secs_f64(),
                error,
            }
            .emit();
            outcome
        }
        .instrument(span)
        .await
    }

    /// Runs under the sync's lease when there is a state cache: taken first
    /// (refused, or waited for, while another run holds it), renewed while the
    /// run goes on, checked inside every state commit, given up at the end.
    async fn run_in_span(mut self) -> Result<SyncResult, SyncError> {
        let Some(store) = self.state.clone() else {
            return self.run_unleased().await;
        };
        // What the source's states are filed under (its id, else its name).
        let source_name = match self.input {
            WriteInput::Source(source) => source.key().to_owned(),
            WriteInput::ReadResult(read) => read.source_name().to_owned(),
        };
        let identity = self.destination.identity().await.to_owned();
        let base = format!("{source_name} -> {identity}");
        let mut streams = self.streams.clone().unwrap_or_default();
        streams.sort();
        streams.dedup();
        // Streams that name every stream of the source are a run of all of them
        // (it may then keep a GLOBAL state: no other run can hold any stream).
        // Only a source can say what all its streams are: a cached read may have
        // read some of them.
        if !streams.is_empty()
            && let WriteInput::Source(source) = self.input
        {
            let all: Vec<StreamDescriptor> = source
                .discover()
                .await?
                .streams
                .iter()
                .map(|s| StreamDescriptor::with_namespace(&s.name, s.namespace.clone()))
                .collect();
            let named =
                |d: &StreamDescriptor| streams.iter().any(|w| *w == d.name || *w == d.to_string());
            if !all.is_empty() && all.iter().all(named) {
                streams.clear();
            }
        }
        // A run of some streams leases each of them (so runs of disjoint stream
        // sets go side by side, on any machines); a run of all leases `*`. Each
        // side then checks the other is not running.
        let (names, other_side) = match streams.is_empty() {
            true => (vec![format!("{base} :: *")], format!("{base} :: ")),
            false => (
                streams.iter().map(|s| format!("{base} :: {s}")).collect(),
                format!("{base} :: *"),
            ),
        };
        if !streams.is_empty() {
            let key = SyncKey::new(&source_name, &identity);
            let stored = on_store(&store, "reading the stored states", move |store| {
                store.load(&key)
            })
            .await?;
            let shared = match (&stored.global, &stored.legacy) {
                (Some(_), _) => Some(SharedState::Global),
                (None, Some(_)) => Some(SharedState::Legacy),
                (None, None) => None,
            };
            if let Some(kind) = shared
                && !self.full_refresh
            {
                return Err(SyncError::State(StateError::SharedStateSplit {
                    connector: source_name.clone(),
                    kind,
                }));
            }
        }
        let leases = self.take_leases(&store, &names, &other_side).await?;
        self.lease = leases.clone();
        self.refuse_shared = !streams.is_empty();
        // The renewer says when the lease is lost; the run stops then, not at its
        // next commit (a run with no state left to send would otherwise go on).
        let (lost_tx, mut lost_rx) = tokio::sync::oneshot::channel::<StateError>();
        let renewer = {
            let (store, leases, ttl) = (store.clone(), leases.clone(), self.lease_ttl);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(ttl / 3).await;
                    let (store, leases) = (store.clone(), leases.clone());
                    let renewed =
                        tokio::task::spawn_blocking(move || renew_all(&store, &leases, ttl)).await;
                    match renewed {
                        Ok(Ok(None)) => {}
                        Ok(Ok(Some(lost))) => {
                            let _ = lost_tx.send(lost);
                            break;
                        }
                        Ok(Err(error)) => tracing::warn!("renewing the sync's lease: {error}"),
                        Err(_) => break,
                    }
                }
            })
        };
        // Given up however the run ends: done, failed, lost, or dropped (Ctrl-C).
        let held = HeldLease {
            store,
            leases,
            renewer,
        };
        let ttl = self.lease_ttl;
        let run = self.run_unleased();
        tokio::pin!(run);
        let result = tokio::select! {
            result = &mut run => result,
            Ok(lost) = &mut lost_rx => return Err(SyncError::State(lost)),
        };
        let result = result?;
        // The last word: a run that lost its lease while ending (its last records
        // counted at completion) does not report success.
        // (Asked twice before a store that does not answer fails the run: its
        // states are all committed, so one blip should not cost a rerun.)
        let mut check = Ok(None);
        for attempt in 0..2 {
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            let leases = held.leases.clone();
            check = on_store(&held.store, "checking the sync's lease", move |store| {
                renew_all(store, &leases, ttl)
            })
            .await;
            if check.is_ok() {
                break;
            }
        }
        match check.map_err(SyncError::State)? {
            Some(lost) => Err(SyncError::State(lost)),
            None => Ok(result),
        }
    }

    /// Takes the leases `names` (all or none), and checks that no lease named
    /// `other_side…` is live (a run of all streams against runs of some); or says
    /// who holds what is in the way, or waits for it.
    async fn take_leases(
        &self,
        store: &Arc<StateStore>,
        names: &[String],
        other_side: &str,
    ) -> Result<Vec<Lease>, SyncError> {
        let holder = lease_holder();
        loop {
            let (names_, holder_, ttl, side) = (
                names.to_vec(),
                holder.clone(),
                self.lease_ttl,
                other_side.to_owned(),
            );
            let attempt = on_store(store, "taking the sync's lease", move |store_| {
                let mut taken = Vec::new();
                let release = |taken: &[Lease]| {
                    for lease in taken {
                        let _ = store_.release_lease(lease);
                    }
                };
                for name in &names_ {
                    // A failure gives up what was taken, as a refusal does.
                    let outcome = store_
                        .acquire_lease(name, &holder_, ttl)
                        .inspect_err(|_| release(&taken))?;
                    match outcome {
                        LeaseOutcome::Acquired(lease) => taken.push(lease),
                        LeaseOutcome::Held {
                            holder,
                            expires_at_ms,
                        } => {
                            release(&taken);
                            return Ok(Err((name.clone(), holder, expires_at_ms)));
                        }
                    }
                }
                let in_the_way = store_
                    .live_leases(&side)
                    .inspect_err(|_| release(&taken))?
                    .into_iter()
                    .find(|(name, _, _)| !names_.contains(name));
                if let Some((name, holder, expires_at_ms)) = in_the_way {
                    release(&taken);
                    return Ok(Err((name, holder, expires_at_ms)));
                }
                Ok(Ok(taken))
            })
            .await?;
            let (name, other, expires_at_ms) = match attempt {
                Ok(leases) => {
                    tracing::debug!(leases = leases.len(), "sync leases taken");
                    return Ok(leases);
                }
                Err(held) => held,
            };
            let left_ms = (expires_at_ms - now_millis()).max(0);
            if !self.wait_for_lease {
                return Err(SyncError::State(StateError::LeaseHeld {
                    name,
                    holder: other,
                    secs: (left_ms + 999) / 1000,
                }));
            }
            tracing::info!(
                "waiting for sync {name}: {other} holds its lease for {} s more",
                (left_ms + 999) / 1000
            );
            // Jittered, so two runs that backed off from each other do not meet again.
            let pause = left_ms.clamp(200, 2000) as u64 + u64::from(fastrand_jitter());
            tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
        }
    }

    async fn run_unleased(mut self) -> Result<SyncResult, SyncError> {
        // What the source's states are filed under (its id, else its name).
        let source_name = match self.input {
            WriteInput::Source(source) => source.key().to_owned(),
            WriteInput::ReadResult(read) => read.source_name().to_owned(),
        };
        let given = self
            .destination
            .config()
            .ok_or_else(|| SyncError::NoDestinationConfig {
                destination: self.destination.name().to_owned(),
            })?
            .clone();
        // What this destination instance's history is filed under (see
        // crate::Destination::identity): another folder or database starts from nothing.
        let identity = self.destination.identity().await.to_owned();
        let destination_config = self.current_config(&identity, &given)?;
        let key = SyncKey::new(&source_name, &identity);
        match self.input {
            WriteInput::ReadResult(read) => {
                let write = self
                    .write_cached(read, &key, destination_config, &given, None)
                    .await?;
                Ok(SyncResult {
                    sync_id: String::new(), // set by `run`
                    source: source_name,
                    resumed_from_state: false,
                    cache: Some(read.cache().path().to_owned()),
                    records_read: 0,
                    write,
                })
            }
            WriteInput::Source(source) => {
                let source_given = source
                    .config()
                    .ok_or_else(|| SourceError::NoConfig(source.name().to_owned()))?
                    .clone();
                let source_config = self.current_config(source.key(), &source_given)?;
                let control = self.control_callback(
                    ConnectorRole::Source,
                    source.name(),
                    source.key(),
                    &source_given,
                );
                let cache = match &self.cache {
                    CacheChoice::Off => None,
                    CacheChoice::Default => Some(Cache::open_default()?),
                    CacheChoice::Use(cache) => Some(cache.clone()),
                };
                match cache {
                    None => {
                        self.stream_through(
                            source,
                            key,
                            source_config,
                            control,
                            destination_config,
                            &given,
                        )
                        .await
                    }
                    Some(cache) => {
                        let input_state = self.cached_read_state(&cache, source.key(), &key)?;
                        let resumed_from_state = input_state.is_some();
                        let options = ReadOptions {
                            strategy: self.strategy.unwrap_or_default(),
                            force_full_refresh: self.full_refresh,
                            streams: self.streams.clone(),
                        };
                        let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
                        let ticker = self.read_progress(source.name(), counter.clone());
                        let (commits, mut progress) =
                            tokio::sync::watch::channel(FillProgress::default());
                        let positions = PendingPositions::new(
                            source.key(),
                            &self.position_key(&key.destination),
                        );
                        let reading = source.read_into_cache(
                            &cache,
                            options,
                            source_config,
                            input_state,
                            CacheReadHooks {
                                control: Some(control),
                                counter: Some(counter.clone()),
                                commits: Some(commits),
                                positions: Some(positions.clone()),
                            },
                        );
                        let mut reading = std::pin::pin!(reading);
                        // The destination starts as soon as the read's first slice
                        // (its records up to a STATE) is committed, and follows the
                        // read from there; a read that commits nothing before it
                        // ends is written after it. Either way the read runs to its
                        // end, as it did when the write came after it.
                        let ended_first = tokio::select! {
                            biased;
                            read = &mut reading => Some(read),
                            () = first_commit(&mut progress) => None,
                        };
                        if let Some(ticker) = ticker {
                            ticker.abort();
                        }
                        let (read, read_failure, mut write) = match ended_first {
                            Some(read) => {
                                let (read, failure) = cached_so_far(read, &cache, source)?;
                                let write = self
                                    .write_cached(&read, &key, destination_config, &given, None)
                                    .await?;
                                (read, failure, write)
                            }
                            None => {
                                SyncPipelined.emit();
                                self.report_reading(counter.clone(), progress.clone());
                                let so_far = ReadResult::from_cache(cache.clone(), source.key())?;
                                let writing = async {
                                    let written = self
                                        .write_cached(
                                            &so_far,
                                            &key,
                                            destination_config,
                                            &given,
                                            Some(Following {
                                                progress,
                                                positions,
                                            }),
                                        )
                                        .await;
                                    if written.is_err() {
                                        // The read goes on: the cache is the buffer
                                        // a rerun delivers from, and a source need
                                        // not be able to resume mid-read.
                                        tracing::warn!(
                                            "the write failed; the read into the cache goes \
                                             on to its end, so that a rerun delivers it without \
                                             reading the source again"
                                        );
                                    }
                                    written
                                };
                                let (read, written) = tokio::join!(reading, writing);
                                let write = written?;
                                let (read, failure) = cached_so_far(read, &cache, source)?;
                                (read, failure, write)
                            }
                        };
                        let records_read = read.total_records_read();
                        if let Some(error) = read_failure {
                            return Err(SyncError::SourceFailed {
                                source: error,
                                partial: Box::new(write),
                            });
                        }
                        for (stream, totals) in &mut write.streams {
                            totals.read =
                                Some(read.records_read().get(stream).copied().unwrap_or(0));
                        }
                        Ok(SyncResult {
                            sync_id: String::new(), // set by `run`
                            source: source.name().to_owned(),
                            resumed_from_state,
                            cache: Some(cache.path().to_owned()),
                            records_read,
                            write,
                        })
                    }
                }
            }
        }
    }

    /// The state a read into the cache resumes from: none for a full refresh; the
    /// state this destination confirmed when it has confirmed everything the cache
    /// holds of the source (it is then as fresh as the cache's, or fresher, if a
    /// `--no-cache` sync moved it on); else the cache's own, so that what the
    /// cache still owes the destination is delivered and not read again.
    fn cached_read_state(
        &self,
        cache: &Cache,
        source: &str,
        key: &SyncKey,
    ) -> Result<Option<Value>, SyncError> {
        if self.full_refresh {
            return Ok(None);
        }
        if let Some(store) = &self.state
            && cache.fully_confirmed(source, &self.position_key(&key.destination))?
            && let Some(confirmed) = store.load(key)?.to_input_state()
        {
            return Ok(Some(confirmed));
        }
        Ok(cache.source_state(source)?.to_input_state())
    }

    /// What the cache files this destination's confirmed positions under: its
    /// identity, and the state database's id when there is one — positions count
    /// only beside the states they go with, so a fresh state database knows
    /// nothing as confirmed.
    fn position_key(&self, identity: &str) -> String {
        match &self.state {
            Some(store) => format!("{identity}\u{1f}{}", store.id()),
            None => identity.to_owned(),
        }
    }

    /// While a source is read into the cache, reports the records read so far to
    /// the progress callback, every progress interval.
    fn read_progress(
        &self,
        source: &str,
        counter: Arc<std::sync::atomic::AtomicU64>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let progress = self.progress.clone()?;
        let source = source.to_owned();
        let interval = self.options.progress_interval;
        let started = std::time::Instant::now();
        Some(tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                let read = counter.load(std::sync::atomic::Ordering::Relaxed);
                let snapshot = Progress {
                    reading: Some(read),
                    waiting_for: (read == 0).then(|| source.clone()),
                    elapsed: started.elapsed(),
                    ..Progress::default()
                };
                (progress.lock().unwrap_or_else(|e| e.into_inner()))(&snapshot);
            }
        }))
    }

    /// While the write follows a read still filling the cache, its progress also
    /// says how many records the read has cached.
    fn report_reading(
        &mut self,
        counter: Arc<std::sync::atomic::AtomicU64>,
        fill: tokio::sync::watch::Receiver<FillProgress>,
    ) {
        let Some(user) = self.progress.clone() else {
            return;
        };
        let decorated: ProgressCallback = Box::new(move |p: &Progress| {
            let mut p = p.clone();
            if !fill.borrow().finished {
                p.reading = Some(counter.load(std::sync::atomic::Ordering::Relaxed));
            }
            (user.lock().unwrap_or_else(|e| e.into_inner()))(&p);
        });
        self.progress = Some(Arc::new(Mutex::new(decorated)));
    }

    /// The config to run `connector` with: the one it last set through CONTROL
    /// while given `given`, else `given`.
    fn current_config(&self, connector: &str, given: &Value) -> Result<Value, StateError> {
        Ok(match &self.state {
            Some(store) => store
                .updated_config(connector, given)?
                .unwrap_or_else(|| given.clone()),
            None => given.clone(),
        })
    }

    /// Persists a connector's updated config (with a state cache) and tells the
    /// library's callback.
    fn control_callback(
        &self,
        role: ConnectorRole,
        connector: &str,
        filed_under: &str,
        given: &Value,
    ) -> ControlCallback {
        let store = self.state.clone();
        let user = self.on_config.clone();
        let connector = connector.to_owned();
        let filed_under = filed_under.to_owned();
        let given = given.clone();
        Arc::new(move |config: &Value| {
            if let Some(store) = &store {
                match store.save_updated_config(&filed_under, &given, config) {
                    Ok(()) => tracing::info!(
                        "{connector} updated its config (CONTROL connectorConfig); stored for the next run"
                    ),
                    Err(error) => tracing::error!(
                        "{connector} updated its config (CONTROL connectorConfig), but storing it failed: {error}"
                    ),
                }
            } else {
                tracing::warn!(
                    "{connector} updated its config (CONTROL connectorConfig); without a state cache it is not kept"
                );
            }
            if let Some(user) = &user {
                user(&ConfigUpdate {
                    role,
                    connector: connector.clone(),
                    config: config.clone(),
                });
            }
        })
    }

    /// Common settings of a write job.
    fn prepare<'j>(&mut self, mut job: WriteJob<'j>, key: &SyncKey, given: &Value) -> WriteJob<'j> {
        job = job
            .options(self.options.clone())
            .on_destination_control(self.control_callback(
                ConnectorRole::Destination,
                self.destination.name(),
                &key.destination,
                given,
            ));
        if let Some(store) = &self.state {
            job = job.state(StateTarget {
                store: store.clone(),
                key: key.clone(),
                fence: self.lease.clone(),
                refuse_shared: self.refuse_shared,
            });
        }
        if let Some(progress) = self.progress.clone() {
            job = job.on_progress(move |p| {
                (progress.lock().unwrap_or_else(|e| e.into_inner()))(p);
            });
        }
        job
    }

    /// No cache: the source's bytes go straight into the write loop, and the source
    /// resumes from what the destination confirmed last time.
    async fn stream_through(
        mut self,
        source: &Source,
        key: SyncKey,
        source_config: Value,
        control: ControlCallback,
        destination_config: Value,
        given: &Value,
    ) -> Result<SyncResult, SyncError> {
        let catalog = source
            .configured_catalog_of(
                self.strategy.unwrap_or_default(),
                self.full_refresh,
                self.streams.as_deref(),
            )
            .await?;
        let input_state = match (&self.state, self.full_refresh) {
            (Some(store), false) => store.load(&key)?.to_input_state(),
            _ => None,
        };
        let resumed_from_state = input_state.is_some();
        let mut stream = source
            .read_stream_with_config(source_config, catalog.clone(), input_state)
            .await?;
        let job = self
            .destination
            .write_with_config(destination_config, Box::new(stream.reader), catalog)
            .on_input_control(stream.secrets.tracking(control));
        let mut job = self.prepare(job, &key, given);
        if let Some(progress) = self.progress.clone() {
            // Until the source's first bytes arrive, say that it is starting.
            let source = source.name().to_owned();
            job = job.on_progress(move |p| {
                let mut p = p.clone();
                if p.bytes_sent == 0 && p.records_sent == 0 {
                    p.waiting_for = Some(source.clone());
                }
                (progress.lock().unwrap_or_else(|e| e.into_inner()))(&p);
            });
        }
        let written = job.run().await;
        if written.is_err() {
            stream.session.abort(); // the destination is gone: stop reading
        }
        let source_exit = stream.session.exit.await;
        match (written, source_exit) {
            (Err(error), _) => Err(SyncError::Write(error)),
            (Ok(partial), Err(source)) => Err(SyncError::SourceFailed {
                source,
                partial: Box::new(partial),
            }),
            (Ok(mut write), Ok(())) => {
                for totals in write.streams.values_mut() {
                    totals.read = Some(totals.sent);
                }
                Ok(SyncResult {
                    sync_id: String::new(), // set by `run`
                    source: source.name().to_owned(),
                    resumed_from_state,
                    cache: None,
                    records_read: write.records_sent,
                    write,
                })
            }
        }
    }

    /// Replays `read` into the destination: only what it has not confirmed, unless
    /// a full refresh. With `tail`, the read is still filling the cache, and the
    /// replay follows it commit by commit.
    async fn write_cached(
        &mut self,
        read: &ReadResult,
        key: &SyncKey,
        destination_config: Value,
        given: &Value,
        tail: Option<Following>,
    ) -> Result<WriteResult, SyncError> {
        let cache = read.cache().clone();
        let mut catalog = self.replay_catalog(read)?;
        let positions = if self.full_refresh {
            Default::default()
        } else {
            cache.positions(read.source_name(), &self.position_key(&key.destination))?
        };
        let plan = ReplayPlan {
            source: read.source_name().to_owned(),
            slots: catalog
                .streams
                .iter()
                .map(|s| stream_slot(&s.stream.name, s.stream.namespace.as_deref()))
                .collect::<HashSet<_>>(),
            positions,
        };
        resume_catalog(&mut catalog, &plan, &cache.first_rows(read.source_name())?);

        let (writer, reader) = tokio::io::duplex(1024 * 1024);
        let sent: SentStates = Arc::new(Mutex::new(Vec::new()));
        let write_over = Arc::new(tokio::sync::Notify::new());
        let replaying = {
            let cache = cache.clone();
            let sent = sent.clone();
            let runtime = tokio::runtime::Handle::current();
            let span = tracing::Span::current();
            let tail = tail.as_ref().map(|following| Tail {
                progress: following.progress.clone(),
                write_over: write_over.clone(),
            });
            tokio::task::spawn_blocking(move || {
                span.in_scope(|| replay(&cache, &plan, writer, sent, runtime, tail))
            })
        };
        let destination_key = self.position_key(&key.destination);
        let pending = match tail {
            Some(following) => following.positions,
            None => PendingPositions::new(read.source_name(), &destination_key),
        };
        let positions = PositionWriter::start(
            cache.clone(),
            pending.clone(),
            self.destination.name().to_owned(),
        );
        // States confirmed so far; their entries leave `sent` as they are queued,
        // so memory stays flat however many states a sync sends.
        let mut moved = 0usize;
        let job = self
            .destination
            .write_with_config(destination_config, Box::new(reader), catalog)
            .on_states_confirmed(move |confirmed| {
                let confirmed = confirmed as usize;
                let mut sent = sent.lock().unwrap_or_else(|p| p.into_inner());
                let take = confirmed.saturating_sub(moved).min(sent.len());
                if take > 0 {
                    pending.push(&sent[..take]);
                    sent.drain(..take);
                    moved += take;
                }
            });
        let job = self.prepare(job, key, given);
        let written = job.run().await;
        // A write that is over (a failure, or a destination that ended early) stops
        // a replay waiting for the read's next commit.
        write_over.notify_one();
        let replayed = replaying.await;
        // The positions are stored before this write reports anything.
        let _ = tokio::task::spawn_blocking(move || positions.finish()).await;
        let write = written?;
        match replayed {
            Ok(Ok(summary)) => {
                // A clean completion committed the records no state covered: the
                // destination's position moves past them, so the next write of
                // this cache does not send them again.
                if write.completed && write.records_confirmed_at_completion > 0 {
                    let rows: Vec<(i64, String)> = summary
                        .last_rows
                        .into_iter()
                        .map(|(slot, seq)| (seq, slot))
                        .collect();
                    read.cache()
                        .confirm(read.source_name(), &destination_key, &rows)?;
                }
                Ok(write)
            }
            Ok(Err(error)) => Err(error.into()),
            Err(join) => Err(CacheError::Sqlite {
                path: read.cache().path().to_owned(),
                source: rusqlite::Error::ToSqlConversionFailure(Box::new(join)),
            }
            .into()),
        }
    }

    /// The cached catalog, narrowed to the chosen streams and re-planned for an
    /// explicit strategy.
    fn replay_catalog(&self, read: &ReadResult) -> Result<ConfiguredAirbyteCatalog, SyncError> {
        let mut catalog = read.catalog().clone();
        if let Some(wanted) = &self.streams {
            let available = read.streams().iter().map(ToString::to_string).collect();
            if let Some(unknown) = wanted.iter().find(|w| {
                !catalog
                    .streams
                    .iter()
                    .any(|s| &s.stream.name == *w || &available_name(s) == *w)
            }) {
                return Err(CacheError::UnknownStream {
                    source_name: read.source_name().to_owned(),
                    stream: unknown.clone(),
                    available,
                }
                .into());
            }
            catalog.streams.retain(|s| {
                wanted
                    .iter()
                    .any(|w| &s.stream.name == w || &available_name(s) == w)
            });
        }
        if let Some(strategy) = self.strategy {
            for stream in &mut catalog.streams {
                let sync_mode = stream.sync_mode;
                let planned = configure(&stream.stream, strategy, false)?;
                stream.destination_sync_mode = planned.destination_sync_mode;
                stream.primary_key = planned.primary_key;
                stream.sync_mode = sync_mode;
            }
        }
        Ok(catalog)
    }
}

fn available_name(stream: &crate::protocol::ConfiguredAirbyteStream) -> String {
    crate::protocol::StreamDescriptor::with_namespace(
        &stream.stream.name,
        stream.stream.namespace.clone(),
    )
    .to_string()
}

/// A read a cached write follows: its commits, and the positions its fill stores.
struct Following {
    progress: tokio::sync::watch::Receiver<FillProgress>,
    positions: Arc<PendingPositions>,
}

/// Waits until a fill has committed its first slice; never, if it ends without.
async fn first_commit(progress: &mut tokio::sync::watch::Receiver<FillProgress>) {
    while progress.borrow_and_update().commits == 0 {
        if progress.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// What a read left in the cache to write, and its failure: a source that failed
/// mid-stream keeps what it emitted up to its last state cached, which is
/// delivered before the failure is reported.
fn cached_so_far(
    read: Result<ReadResult, SourceError>,
    cache: &Arc<Cache>,
    source: &Source,
) -> Result<(ReadResult, Option<ExecutorError>), SyncError> {
    match read {
        Ok(read) => Ok((read, None)),
        Err(SourceError::ReadFailed { source: error, .. }) => Ok((
            ReadResult::from_cache(cache.clone(), source.key())?,
            Some(error),
        )),
        Err(other) => Err(other.into()),
    }
}
