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

use crate::config::{self, ConfigError};
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
    #[error("no config was given for {0}; pass --source-config (CLI) or .config(..) (library)")]
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
    /// MERGE needs a primary key.
    #[error(
        "stream {stream} has no primary key, so it cannot be written with the merge strategy; \
         use --strategy append or replace (or auto)"
    )]
    MergeWithoutPrimaryKey {
        /// The stream.
        stream: String,
    },
}

/// How records land in the destination, as PyAirbyte's `write_strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
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
    /// [`ExecutorError::NotFound`] when no backend has it.
    pub fn build(self) -> Result<Source, SourceError> {
        let executor = registry::resolve(&self.name, &self.options)?;
        Ok(Source {
            name: self.name,
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
        Ok(self.executor.check(self.config_or_err()?).await?)
    }

    /// The source's catalog (discovered once).
    ///
    /// # Errors
    /// When `discover` fails.
    pub async fn discover(&self) -> Result<&AirbyteCatalog, SourceError> {
        let config = self.config_or_err()?;
        Ok(self
            .catalog
            .get_or_try_init(|| self.executor.discover(config))
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
        let catalog = self.discover().await?;
        let mut streams = Vec::new();
        for stream in &catalog.streams {
            if self
                .selected
                .as_ref()
                .is_some_and(|s| !s.contains(&stream.name))
            {
                continue;
            }
            streams.push(configure(stream, strategy, full_refresh)?);
        }
        Ok(ConfiguredAirbyteCatalog {
            streams,
            extra: Extra::new(),
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
        let mut session = self
            .executor
            .run(Invocation::Read {
                config,
                catalog,
                state,
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
        Ok(SourceStream { reader, session })
    }
}

/// One stream's configuration for `strategy`.
fn configure(
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
