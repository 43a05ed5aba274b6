//! `source`: the library's front door for sources, after PyAirbyte's `get_source`:
//! spec, check, discover, stream selection, and reading as a byte stream.
//!
//! Owns choosing streams and building the configured catalog for a write strategy.
//! It reads through an [`Executor`] (any backend) and hands the source's output on
//! as raw lines: records are never parsed and re-serialised here.

use std::sync::Arc;

use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::sync::OnceCell;

use crate::cache::fill::{FillPlan, FillProgress, fill};
use crate::cache::replay::PendingPositions;
use crate::cache::{Cache, CacheError, ControlCallback, ReadResult};
use crate::config::{self, ConfigError, SecretMask};
use crate::executor::{Executor, ExecutorError, Invocation, OutputEvent, Session};
use crate::protocol::{
    AirbyteCatalog, AirbyteConnectionStatus, AirbyteStream, ConfiguredAirbyteCatalog,
    ConfiguredAirbyteStream, ConnectorSpecification, DestinationSyncMode, Extra, SyncMode,
};
use crate::registry::{self, ConnectorBuilder};

/// Errors of the source API.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Running the connector failed.
    #[error(transparent)]
    Executor(#[from] ExecutorError),
    /// The config is missing or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A config is needed and none was given.
    #[error("no config was given for {0}\nfix: give the source a config (.config(..))")]
    NoConfig(String),
    /// A selected stream is not in the source's catalog.
    #[error("{connector} has no stream {stream:?}; it has: {}", available.join(", "))]
    UnknownStream {
        /// The source.
        connector: String,
        /// The stream asked for.
        stream: String,
        /// The streams it has.
        available: Vec<String>,
    },
    /// The read cache failed.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The source failed during a read into the cache; what it emitted up to its
    /// last state is kept there.
    #[error(
        "reading the source failed; the {records_kept} records it emitted up to its last state \
         are kept in the cache and the next read resumes from there"
    )]
    ReadFailed {
        /// The source's error.
        source: ExecutorError,
        /// Records committed to the cache by this read.
        records_kept: u64,
    },
    /// MERGE needs a primary key.
    #[error(
        "stream {stream} has no primary key, so it cannot be written with the merge strategy; \
         write it with the append or replace strategy (or auto)"
    )]
    MergeWithoutPrimaryKey {
        /// The stream.
        stream: String,
    },
}

impl SourceError {
    /// How to fix it, when the library knows.
    pub fn remedy(&self) -> Option<crate::remedy::Remedy> {
        match self {
            Self::Executor(e) | Self::ReadFailed { source: e, .. } => e.remedy(),
            Self::Cache(e) => e.remedy(),
            Self::NoConfig(_) => Some(crate::remedy::Remedy::GiveSourceConfig),
            Self::MergeWithoutPrimaryKey { .. } => Some(crate::remedy::Remedy::ChooseWriteStrategy),
            Self::Config(_) | Self::UnknownStream { .. } => None,
        }
    }
}

/// How records land in the destination, as PyAirbyte's `write_strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WriteStrategy {
    /// Merge when the stream has a primary key, append when it has a cursor,
    /// replace otherwise.
    #[default]
    Auto,
    /// `append`.
    Append,
    /// `overwrite`.
    Replace,
    /// `append_dedup` (needs a primary key).
    Merge,
}

/// What a sync hooks into a read into the cache.
#[derive(Default)]
pub(crate) struct CacheReadHooks {
    /// Told of CONTROL config updates.
    pub control: Option<ControlCallback>,
    /// Counts records as they are cached, for a progress display.
    pub counter: Option<Arc<std::sync::atomic::AtomicU64>>,
    /// Told of each commit and of the end, for a replay that tails the read.
    pub commits: Option<tokio::sync::watch::Sender<FillProgress>>,
    /// That replay's destination's confirmed positions, for the fill to store.
    pub positions: Option<Arc<PendingPositions>>,
}

/// How a read into the cache goes (PyAirbyte's `read(write_strategy=..,
/// force_full_refresh=..)`).
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Decides each stream's destination sync mode, kept with the cached catalog.
    pub strategy: WriteStrategy,
    /// Read everything, and start the source's log in the cache again.
    pub force_full_refresh: bool,
    /// Only these streams (checked against the source's catalog); `None`: the
    /// source's selection ([`Source::select_streams`]).
    pub streams: Option<Vec<String>>,
}

/// Starts building a source by name, as PyAirbyte's `get_source`.
pub fn get_source(name: impl Into<String>) -> SourceBuilder {
    ConnectorBuilder::new(name)
}

/// Builder returned by [`get_source`].
pub type SourceBuilder = ConnectorBuilder<Source>;

impl ConnectorBuilder<Source> {
    /// Resolves the connector.
    ///
    /// # Errors
    /// An [`ExecutorError`] of kind
    /// [`NotFound`](crate::executor::ExecutorErrorKind::NotFound) when no backend
    /// has it.
    pub fn build(self) -> Result<Source, SourceError> {
        let executor = registry::resolve(&self.name, &self.options)?;
        Ok(Source {
            name: self.name,
            id: self.id,
            executor: executor.into(),
            config: self.config,
            selected: None,
            spec: OnceCell::new(),
            catalog: OnceCell::new(),
        })
    }
}

/// A source connector, ready to use.
#[derive(Debug)]
pub struct Source {
    name: String,
    /// What its states, cache log and updated configs are filed under, if not
    /// its name.
    id: Option<String>,
    executor: Arc<dyn Executor>,
    config: Option<Value>,
    /// `None`: every stream.
    selected: Option<Vec<String>>,
    spec: OnceCell<ConnectorSpecification>,
    catalog: OnceCell<AirbyteCatalog>,
}

/// A running read: the source's protocol output as bytes, and its session (for
/// its exit, or to stop it).
pub struct SourceStream {
    /// Newline-delimited Airbyte messages, as the source wrote them.
    pub reader: tokio::io::DuplexStream,
    /// The source's session; its output has been moved into `reader`.
    pub session: Session,
    /// The source's secrets, masked in what it says (add those of a config it
    /// replaces through CONTROL).
    pub secrets: SecretMask,
}

impl std::fmt::Debug for SourceStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SourceStream")
    }
}

impl Source {
    /// The source's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What its stored states, its log in a cache and its CONTROL-updated config
    /// are filed under: the id it was given ([`SourceBuilder::id`]), else its
    /// name (as PyAirbyte files them). Two sources of one connector that read
    /// different things (two databases) need ids of their own.
    pub fn key(&self) -> &str {
        self.id.as_deref().unwrap_or(&self.name)
    }

    /// The connector's version, if its backend can tell.
    ///
    /// # Errors
    /// When asking fails.
    pub async fn version(&self) -> Result<Option<String>, SourceError> {
        Ok(self.executor.version().await?)
    }

    /// Installs the connector (where its backend installs anything).
    ///
    /// # Errors
    /// When installing fails.
    pub async fn install(&self) -> Result<(), SourceError> {
        Ok(self.executor.install().await?)
    }

    /// Removes what [`Source::install`] made.
    ///
    /// # Errors
    /// When removing fails.
    pub async fn uninstall(&self) -> Result<(), SourceError> {
        Ok(self.executor.uninstall().await?)
    }

    fn config_or_err(&self) -> Result<&Value, SourceError> {
        self.config
            .as_ref()
            .ok_or_else(|| SourceError::NoConfig(self.name.clone()))
    }

    /// The spec (asked once).
    ///
    /// # Errors
    /// When the connector fails.
    pub async fn spec(&self) -> Result<&ConnectorSpecification, SourceError> {
        Ok(self.spec.get_or_try_init(|| self.executor.spec()).await?)
    }

    /// Validates the config against the spec.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming each bad path.
    pub async fn validate_config(&self) -> Result<(), SourceError> {
        let config = self.config_or_err()?;
        let spec = self.spec().await?;
        Ok(config::validate(
            &self.name,
            &spec.connection_specification,
            config,
        )?)
    }

    /// Validates the config, then runs `check`.
    ///
    /// # Errors
    /// An invalid config, or a connector that crashes without a status.
    pub async fn check(&self) -> Result<AirbyteConnectionStatus, SourceError> {
        self.validate_config().await?;
        let config = self.config_or_err()?;
        let secrets = self.secret_mask(config).await;
        Ok(self.executor.check(config, &secrets).await?)
    }

    /// The secrets of `config` (a config of this source) to mask in what it says:
    /// the values of the fields its spec marks `airbyte_secret`.
    pub async fn secret_mask(&self, config: &Value) -> SecretMask {
        SecretMask::for_connector(&self.name, self.spec().await, config)
    }

    /// The source's catalog (discovered once).
    ///
    /// # Errors
    /// When `discover` fails.
    pub async fn discover(&self) -> Result<&AirbyteCatalog, SourceError> {
        let config = self.config_or_err()?;
        Ok(self
            .catalog
            .get_or_try_init(|| async {
                let secrets = self.secret_mask(config).await;
                self.executor.discover(config, &secrets).await
            })
            .await?)
    }

    /// Reads only these streams.
    ///
    /// # Errors
    /// [`SourceError::UnknownStream`] naming the streams the source has.
    pub async fn select_streams(&mut self, streams: &[impl AsRef<str>]) -> Result<(), SourceError> {
        let catalog = self.discover().await?;
        let available: Vec<String> = catalog.streams.iter().map(|s| s.name.clone()).collect();
        for stream in streams {
            if !available.iter().any(|a| a == stream.as_ref()) {
                return Err(SourceError::UnknownStream {
                    connector: self.name.clone(),
                    stream: stream.as_ref().to_owned(),
                    available,
                });
            }
        }
        self.selected = Some(streams.iter().map(|s| s.as_ref().to_owned()).collect());
        Ok(())
    }

    /// Reads every stream (the default).
    pub fn select_all_streams(&mut self) {
        self.selected = None;
    }

    /// The configured catalog of the selected streams for `strategy`: incremental
    /// reads where a stream supports them (unless `full_refresh`), and per stream
    /// `append_dedup` (merge), `append` or `overwrite` (replace).
    ///
    /// # Errors
    /// [`SourceError::MergeWithoutPrimaryKey`] when merge meets a stream without one.
    pub async fn configured_catalog(
        &self,
        strategy: WriteStrategy,
        full_refresh: bool,
    ) -> Result<ConfiguredAirbyteCatalog, SourceError> {
        self.configured_catalog_of(strategy, full_refresh, None)
            .await
    }

    /// [`Source::configured_catalog`] of `streams` (checked), or of the selection.
    pub(crate) async fn configured_catalog_of(
        &self,
        strategy: WriteStrategy,
        full_refresh: bool,
        streams: Option<&[String]>,
    ) -> Result<ConfiguredAirbyteCatalog, SourceError> {
        let catalog = self.discover().await?;
        if let Some(wanted) = streams {
            let available: Vec<String> = catalog.streams.iter().map(|s| s.name.clone()).collect();
            if let Some(unknown) = wanted.iter().find(|w| !available.contains(w)) {
                return Err(SourceError::UnknownStream {
                    connector: self.name.clone(),
                    stream: unknown.clone(),
                    available,
                });
            }
        }
        let selected = streams
            .map(<[String]>::to_vec)
            .or_else(|| self.selected.clone());
        let mut streams = Vec::new();
        for stream in &catalog.streams {
            if selected.as_ref().is_some_and(|s| !s.contains(&stream.name)) {
                continue;
            }
            streams.push(configure(stream, strategy, full_refresh)?);
        }
        Ok(ConfiguredAirbyteCatalog {
            streams,
            extra: Extra::new(),
        })
    }

    /// Reads the selected streams into `cache`, resuming from the state the
    /// source's last read left there, and returns what was read
    /// (PyAirbyte's `source.read(cache)`).
    ///
    /// # Errors
    /// [`SourceError::ReadFailed`] when the source fails mid-stream (what it
    /// emitted up to its last state stays cached); a cache or setup error.
    pub async fn read(&self, cache: &Arc<Cache>) -> Result<ReadResult, SourceError> {
        self.read_with(cache, ReadOptions::default()).await
    }

    /// [`Source::read`] with options.
    ///
    /// # Errors
    /// As [`Source::read`].
    pub async fn read_with(
        &self,
        cache: &Arc<Cache>,
        options: ReadOptions,
    ) -> Result<ReadResult, SourceError> {
        let config = self.config_or_err()?.clone();
        let state = if options.force_full_refresh {
            None
        } else {
            cache.source_state(self.key())?.to_input_state()
        };
        self.read_into_cache(cache, options, config, state, CacheReadHooks::default())
            .await
    }

    /// [`Source::read_with`] with the config and input state to run with, and what
    /// a sync hooks into the read.
    pub(crate) async fn read_into_cache(
        &self,
        cache: &Arc<Cache>,
        options: ReadOptions,
        config: Value,
        state: Option<Value>,
        hooks: CacheReadHooks,
    ) -> Result<ReadResult, SourceError> {
        let CacheReadHooks {
            control,
            counter,
            commits,
            positions,
        } = hooks;
        let catalog = self
            .configured_catalog_of(
                options.strategy,
                options.force_full_refresh,
                options.streams.as_deref(),
            )
            .await?;
        let secrets = self.secret_mask(&config).await;
        // A config the source replaces through CONTROL has its secrets masked too.
        let control = control.map(|callback| secrets.tracking(callback));
        let mut session = self
            .executor
            .run(Invocation::Read {
                config,
                catalog: catalog.clone(),
                state,
                secrets,
            })
            .await?;
        let output = std::mem::replace(&mut session.output, tokio::sync::mpsc::channel(1).1);
        let (keep_tail, keep_tail_rx) = tokio::sync::oneshot::channel();
        let plan = FillPlan {
            source: self.key().to_owned(),
            catalog: catalog.clone(),
            restart: options.force_full_refresh,
            control,
            counter,
            commits,
            positions,
        };
        let filling = {
            let cache = cache.clone();
            tokio::task::spawn_blocking(move || fill(&cache, plan, output, keep_tail_rx))
        };
        let exit = session.exit.await;
        let _ = keep_tail.send(exit.is_ok());
        let summary = filling
            .await
            .map_err(|e| ExecutorError::internal(&self.name, "fill the cache", e))??;
        if let Err(source) = exit {
            return Err(SourceError::ReadFailed {
                source,
                records_kept: summary.records.values().sum(),
            });
        }
        if summary.lines_skipped > 0 {
            tracing::warn!(
                "{}: {} output lines were not Airbyte messages and were not cached",
                self.name,
                summary.lines_skipped
            );
        }
        Ok(ReadResult {
            cache: cache.clone(),
            source: self.key().to_owned(),
            catalog: cache.catalog(self.key())?,
            records_read: summary.records,
            states_read: summary.states,
        })
    }

    /// Starts `read` with `catalog` and `state` and returns its output as bytes.
    ///
    /// # Errors
    /// When the source cannot be started.
    pub async fn read_stream(
        &self,
        catalog: ConfiguredAirbyteCatalog,
        state: Option<Value>,
    ) -> Result<SourceStream, SourceError> {
        let config = self.config_or_err()?.clone();
        self.read_stream_with_config(config, catalog, state).await
    }

    /// The config given to the source, if any.
    pub fn config(&self) -> Option<&Value> {
        self.config.as_ref()
    }

    /// [`Source::read_stream`] with the config to run with.
    pub(crate) async fn read_stream_with_config(
        &self,
        config: Value,
        catalog: ConfiguredAirbyteCatalog,
        state: Option<Value>,
    ) -> Result<SourceStream, SourceError> {
        let secrets = self.secret_mask(&config).await;
        let mut session = self
            .executor
            .run(Invocation::Read {
                config,
                catalog,
                state,
                secrets: secrets.clone(),
            })
            .await?;
        let (mut writer, reader) = tokio::io::duplex(256 * 1024);
        let mut output = std::mem::replace(&mut session.output, tokio::sync::mpsc::channel(1).1);
        tokio::spawn(async move {
            while let Some(event) = output.recv().await {
                if let OutputEvent::Lines(batch) = event
                    && writer.write_all(batch.as_bytes()).await.is_err()
                {
                    break; // the reader is gone: the write stopped
                }
            }
            let _ = writer.shutdown().await;
        });
        Ok(SourceStream {
            reader,
            session,
            secrets,
        })
    }
}

/// One stream's configuration for `strategy`.
pub(crate) fn configure(
    stream: &AirbyteStream,
    strategy: WriteStrategy,
    full_refresh: bool,
) -> Result<ConfiguredAirbyteStream, SourceError> {
    let primary_key = stream
        .source_defined_primary_key
        .clone()
        .filter(|k| !k.is_empty());
    let cursor = stream
        .default_cursor_field
        .clone()
        .filter(|c| !c.is_empty());
    let incremental = !full_refresh && stream.supported_sync_modes.contains(&SyncMode::Incremental);
    let mode = match strategy {
        WriteStrategy::Append => DestinationSyncMode::Append,
        WriteStrategy::Replace => DestinationSyncMode::Overwrite,
        WriteStrategy::Merge if primary_key.is_none() => {
            return Err(SourceError::MergeWithoutPrimaryKey {
                stream: stream.name.clone(),
            });
        }
        WriteStrategy::Merge => DestinationSyncMode::AppendDedup,
        WriteStrategy::Auto if primary_key.is_some() => DestinationSyncMode::AppendDedup,
        WriteStrategy::Auto if cursor.is_some() || stream.source_defined_cursor == Some(true) => {
            DestinationSyncMode::Append
        }
        WriteStrategy::Auto => DestinationSyncMode::Overwrite,
    };
    let sync_mode = if incremental && mode != DestinationSyncMode::Overwrite {
        SyncMode::Incremental
    } else {
        SyncMode::FullRefresh
    };
    Ok(ConfiguredAirbyteStream {
        stream: stream.clone(),
        sync_mode,
        cursor_field: cursor,
        destination_sync_mode: mode,
        primary_key,
        generation_id: None,
        minimum_generation_id: None,
        sync_id: None,
        extra: Extra::new(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn stream(pk: bool, cursor: bool, incremental: bool) -> AirbyteStream {
        let mut v =
            json!({"name": "s", "json_schema": {}, "supported_sync_modes": ["full_refresh"]});
        if incremental {
            v["supported_sync_modes"] = json!(["full_refresh", "incremental"]);
        }
        if pk {
            v["source_defined_primary_key"] = json!([["id"]]);
        }
        if cursor {
            v["default_cursor_field"] = json!(["updated_at"]);
        }
        serde_json::from_value(v).expect("stream")
    }

    #[test]
    fn auto_picks_merge_then_append_then_replace() {
        let mode = |s| {
            configure(&s, WriteStrategy::Auto, false)
                .expect("ok")
                .destination_sync_mode
        };
        assert_eq!(
            mode(stream(true, true, true)),
            DestinationSyncMode::AppendDedup
        );
        assert_eq!(mode(stream(false, true, true)), DestinationSyncMode::Append);
        assert_eq!(
            mode(stream(false, false, false)),
            DestinationSyncMode::Overwrite
        );
    }

    #[test]
    fn strategies_map_to_destination_modes_and_merge_needs_a_key() {
        let mode = |st| {
            configure(&stream(true, true, true), st, false)
                .expect("ok")
                .destination_sync_mode
        };
        assert_eq!(mode(WriteStrategy::Append), DestinationSyncMode::Append);
        assert_eq!(mode(WriteStrategy::Replace), DestinationSyncMode::Overwrite);
        assert_eq!(mode(WriteStrategy::Merge), DestinationSyncMode::AppendDedup);
        let err =
            configure(&stream(false, true, true), WriteStrategy::Merge, false).expect_err("no key");
        assert!(err.to_string().contains("no primary key"), "{err}");
    }

    #[test]
    fn reads_are_incremental_where_supported_unless_full_refresh() {
        assert_eq!(
            configure(&stream(true, true, true), WriteStrategy::Auto, false)
                .expect("ok")
                .sync_mode,
            SyncMode::Incremental
        );
        assert_eq!(
            configure(&stream(true, true, true), WriteStrategy::Auto, true)
                .expect("ok")
                .sync_mode,
            SyncMode::FullRefresh
        );
        assert_eq!(
            configure(&stream(true, true, false), WriteStrategy::Auto, false)
                .expect("ok")
                .sync_mode,
            SyncMode::FullRefresh
        );
        assert_eq!(
            configure(&stream(true, true, true), WriteStrategy::Replace, false)
                .expect("ok")
                .sync_mode,
            SyncMode::FullRefresh
        );
    }
}
