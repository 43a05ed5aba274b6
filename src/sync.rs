//! `sync`: a source into a destination, and the state round trip around it.
//!
//! Owns the order of a sync: build the configured catalog for the write strategy,
//! hand the source the state its last run left confirmed (unless a full refresh),
//! stream its output straight into the write loop (no cache, no re-serialising),
//! and report whichever side failed first. Persisting confirmed states stays with
//! [`crate::write`]; this module never commits a state itself.

use std::sync::Arc;

use crate::destination::{Destination, DestinationError};
use crate::executor::ExecutorError;
use crate::source::{Source, SourceError, WriteStrategy};
use crate::state::{StateError, StateStore, SyncKey};
use crate::write::{
    Progress, ProgressCallback, StateTarget, WriteError, WriteOptions, WriteResult,
};

/// Why a sync failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The source could not be prepared (config, discover, streams, strategy).
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The destination could not be prepared.
    #[error(transparent)]
    Destination(#[from] DestinationError),
    /// The state store failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The write failed; what it confirmed is persisted.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// The source failed mid-stream; what the destination confirmed before is
    /// persisted, and the next run resumes from it.
    #[error(
        "{source}\n  the states confirmed before the failure are kept; the next sync resumes from them"
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
    /// The source's name.
    pub source: String,
    /// Whether a stored state was handed to the source.
    pub resumed_from_state: bool,
    /// The write's counts.
    #[serde(flatten)]
    pub write: WriteResult,
}

/// One sync, built then run.
pub struct SyncJob<'a> {
    source: &'a Source,
    destination: &'a Destination,
    strategy: WriteStrategy,
    full_refresh: bool,
    state: Option<Arc<StateStore>>,
    options: WriteOptions,
    progress: Option<ProgressCallback>,
}

impl<'a> SyncJob<'a> {
    /// A sync of `source` into `destination` with the AUTO strategy and no state.
    pub fn new(source: &'a Source, destination: &'a Destination) -> Self {
        Self {
            source,
            destination,
            strategy: WriteStrategy::Auto,
            full_refresh: false,
            state: None,
            options: WriteOptions::default(),
            progress: None,
        }
    }

    /// The write strategy.
    pub fn strategy(mut self, strategy: WriteStrategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Ignore stored state and read everything (PyAirbyte's `force_full_refresh`).
    pub fn force_full_refresh(mut self, yes: bool) -> Self {
        self.full_refresh = yes;
        self
    }

    /// Keep confirmed states here and resume from them (PyAirbyte's `state_cache`).
    pub fn state_store(mut self, store: Arc<StateStore>) -> Self {
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
        self.progress = Some(Box::new(callback));
        self
    }

    /// Runs the sync to the end.
    ///
    /// # Errors
    /// [`SyncError`]: the side that failed first, with what was confirmed.
    pub async fn run(self) -> Result<SyncResult, SyncError> {
        let catalog = self
            .source
            .configured_catalog(self.strategy, self.full_refresh)
            .await?;
        let key = SyncKey::new(self.source.name(), self.destination.name());
        let input_state = match (&self.state, self.full_refresh) {
            (Some(store), false) => store.load(&key)?.to_input_state(),
            _ => None,
        };
        let resumed_from_state = input_state.is_some();
        let mut stream = self
            .source
            .read_stream(catalog.clone(), input_state)
            .await?;
        let mut job = self
            .destination
            .write(stream.reader, catalog)?
            .options(self.options);
        if let Some(store) = &self.state {
            job = job.state(StateTarget {
                store: store.clone(),
                key,
            });
        }
        if let Some(progress) = self.progress {
            job = job.on_progress(progress);
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
            (Ok(write), Ok(())) => Ok(SyncResult {
                source: self.source.name().to_owned(),
                resumed_from_state,
                write,
            }),
        }
    }
}
