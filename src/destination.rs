//! The library's front door for destinations, after PyAirbyte's
//! `airbyte.destinations`: [`get_destination`] builds a [`Destination`], which can
//! `spec`, `check`, `validate_config` and `write`.
//!
//! Owns the user-facing API and nothing below it: resolution is [`crate::registry`],
//! running is [`crate::executor`], the loop is [`crate::write`].

use std::sync::Arc;

use serde_json::Value;
use tokio::io::AsyncRead;
use tokio::sync::OnceCell;

use crate::config::{self, ConfigError, SecretMask};
use crate::executor::{Executor, ExecutorError};
use crate::protocol::{AirbyteConnectionStatus, ConfiguredAirbyteCatalog, ConnectorSpecification};
use crate::registry::{self, ConnectorBuilder};
use crate::sync::{SyncDestination, SyncJob, WriteInput};
use crate::write::WriteJob;

/// Errors of the destination API.
#[derive(Debug, thiserror::Error)]
pub enum DestinationError {
    /// Running the connector failed.
    #[error(transparent)]
    Executor(#[from] ExecutorError),
    /// The config is missing or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A config is needed and none was given.
    #[error("no config was given for {0}\nfix: give the destination a config (.config(..))")]
    NoConfig(String),
}

impl DestinationError {
    /// How to fix it, when the library knows.
    pub fn remedy(&self) -> Option<crate::remedy::Remedy> {
        match self {
            Self::Executor(e) => e.remedy(),
            Self::NoConfig(_) => Some(crate::remedy::Remedy::GiveDestinationConfig),
            Self::Config(_) => None,
        }
    }
}

/// Starts building a destination by name, as PyAirbyte's `get_destination`.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let dest = airlock::get_destination("destination-local-json")
///     .config(serde_json::json!({"destination_path": "/tmp/out"}))
///     .local_executable("./target/release/destination-local-json")
///     .build()?;
/// let status = dest.check().await?;
/// println!("{:?}", status.status);
/// # Ok(()) }
/// ```
pub fn get_destination(name: impl Into<String>) -> DestinationBuilder {
    ConnectorBuilder::new(name)
}

/// The no-op destination: the built-in WASM dev-null in SILENT mode, sandboxed. It
/// needs no Docker and no files (PyAirbyte's needs Docker).
///
/// # Errors
/// Never in practice: the plugin is carried by the binary.
pub fn get_noop_destination() -> Result<Destination, DestinationError> {
    get_destination("destination-dev-null")
        .config(serde_json::json!({"test_destination": {"test_destination_type": "SILENT"}}))
        .build()
}

/// Builder returned by [`get_destination`].
pub type DestinationBuilder = ConnectorBuilder<Destination>;

impl ConnectorBuilder<Destination> {
    /// Resolves the connector.
    ///
    /// # Errors
    /// An [`ExecutorError`] of kind
    /// [`NotFound`](crate::executor::ExecutorErrorKind::NotFound) when no backend
    /// has it.
    pub fn build(self) -> Result<Destination, DestinationError> {
        let executor = registry::resolve(&self.name, &self.options)?;
        let local_root = self
            .options
            .policy
            .as_ref()
            .and_then(|p| p.local_root().map(std::path::Path::to_path_buf))
            .or_else(|| {
                self.options
                    .env
                    .iter()
                    .find(|(k, _)| k == "AIRLOCK_LOCAL_ROOT")
                    .map(|(_, v)| std::path::PathBuf::from(v))
            });
        let mut destination =
            Destination::from_executor(self.name, executor, self.config, self.options.version);
        destination.id = self.id;
        destination.local_root = local_root;
        Ok(destination)
    }
}

/// A destination connector, ready to use.
#[derive(Debug)]
pub struct Destination {
    name: String,
    executor: Arc<dyn Executor>,
    config: Option<Value>,
    version: Option<String>,
    spec: OnceCell<ConnectorSpecification>,
    /// An explicit identity ([`ConnectorBuilder::id`]).
    id: Option<String>,
    /// The folder it sees as `/local`, when one was given: part of its identity.
    local_root: Option<std::path::PathBuf>,
    identity: OnceCell<String>,
}

impl Destination {
    /// Wraps any executor as a destination.
    pub fn from_executor(
        name: impl Into<String>,
        executor: Box<dyn Executor>,
        config: Option<Value>,
        version: Option<String>,
    ) -> Self {
        Self {
            name: name.into(),
            executor: executor.into(),
            config,
            version,
            spec: OnceCell::new(),
            id: None,
            local_root: None,
            identity: OnceCell::new(),
        }
    }

    /// Sets the identity ([`ConnectorBuilder::id`]).
    #[must_use]
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self.identity = OnceCell::new();
        self
    }

    /// Who this destination is: what its stored states, cache positions and
    /// updated configs are filed under. The explicit id if one was set; else
    /// `NAME#FINGERPRINT`, a fingerprint of its config without secret values and
    /// of its local root — another folder or database is another destination.
    pub async fn identity(&self) -> &str {
        self.identity
            .get_or_init(|| async {
                if let Some(id) = &self.id {
                    return id.clone();
                }
                let config = self.config.clone().unwrap_or(Value::Null);
                let secrets = match self.spec().await {
                    Ok(spec) => config::secret_fields(&spec.connection_specification),
                    Err(_) => config::guessed_secret_fields(&config),
                };
                let mut extra = Vec::new();
                if let Some(root) = &self.local_root {
                    let root = std::fs::canonicalize(root)
                        .or_else(|_| std::path::absolute(root))
                        .unwrap_or_else(|_| root.clone());
                    extra.push(("local_root", root.display().to_string()));
                }
                format!(
                    "{}#{}",
                    self.name,
                    config::fingerprint(&config, &secrets, &extra)
                )
            })
            .await
    }

    /// The destination's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The executor running it.
    pub fn executor(&self) -> &dyn Executor {
        self.executor.as_ref()
    }

    /// Replaces the config (and so, unless an id was set, the identity).
    pub fn set_config(&mut self, config: Value) {
        self.config = Some(config);
        self.identity = OnceCell::new();
    }

    /// The spec (asked once, then cached).
    ///
    /// # Errors
    /// [`ExecutorError`] when the connector fails.
    pub async fn spec(&self) -> Result<&ConnectorSpecification, DestinationError> {
        Ok(self.spec.get_or_try_init(|| self.executor.spec()).await?)
    }

    fn config_or_err(&self) -> Result<&Value, DestinationError> {
        self.config
            .as_ref()
            .ok_or_else(|| DestinationError::NoConfig(self.name.clone()))
    }

    /// Validates the config against the spec, naming each bad path.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] (as [`DestinationError::Config`]) when it does not match.
    pub async fn validate_config(&self) -> Result<(), DestinationError> {
        let config = self.config_or_err()?;
        let spec = self.spec().await?;
        Ok(config::validate(
            &self.name,
            &spec.connection_specification,
            config,
        )?)
    }

    /// Validates the config, then runs the connector's `check`. Secrets of the
    /// config are masked in the status and in every error.
    ///
    /// # Errors
    /// An invalid config, or a connector that crashes without a status.
    pub async fn check(&self) -> Result<AirbyteConnectionStatus, DestinationError> {
        self.validate_config().await?;
        let config = self.config_or_err()?;
        let secrets = self.secret_mask(config).await;
        Ok(self.executor.check(config, &secrets).await?)
    }

    /// The secrets of `config` (a config of this destination) to mask in what it
    /// says: the values of the fields its spec marks `airbyte_secret`.
    pub async fn secret_mask(&self, config: &Value) -> SecretMask {
        SecretMask::for_connector(&self.name, self.spec().await, config)
    }

    /// The connector's version: what the backend reports, else the version asked for.
    ///
    /// # Errors
    /// [`ExecutorError`] when asking fails.
    pub async fn version(&self) -> Result<Option<String>, DestinationError> {
        Ok(self
            .executor
            .version()
            .await?
            .or_else(|| self.version.clone()))
    }

    /// Installs the connector (where the backend installs anything).
    ///
    /// # Errors
    /// [`ExecutorError`] when installing fails.
    pub async fn install(&self) -> Result<(), DestinationError> {
        Ok(self.executor.install().await?)
    }

    /// Uninstalls the connector.
    ///
    /// # Errors
    /// [`ExecutorError`] when removing fails.
    pub async fn uninstall(&self) -> Result<(), DestinationError> {
        Ok(self.executor.uninstall().await?)
    }

    /// Starts a write of a [`Source`] (streamed straight in, or through a cache) or
    /// of a [`ReadResult`] (replayed from its cache), as PyAirbyte's
    /// `Destination.write(source_data, ...)`. Set streams, cache, state cache,
    /// strategy and full refresh on the returned job, then `run()` it.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    /// let source = airlock::source::get_source("source-faker")
    ///     .config(serde_json::json!({"count": 1000}))
    ///     .build()?;
    /// let dest = airlock::get_noop_destination()?;
    /// let state = Arc::new(airlock::state::StateStore::open("state.db")?);
    /// let result = dest.write(&source).state_cache(state).run().await?;
    /// println!("{} records confirmed", result.write.records_confirmed);
    /// # Ok(()) }
    /// ```
    pub fn write<'a>(&'a self, data: impl Into<WriteInput<'a>>) -> SyncJob<'a> {
        SyncJob::new(data.into(), self)
    }

    /// Starts a write of `input` (newline-delimited Airbyte messages) with `catalog`.
    /// Set state persistence and options on the returned job, then `run()` it.
    ///
    /// # Errors
    /// [`DestinationError::NoConfig`] when no config was given.
    pub fn write_messages(
        &self,
        input: impl AsyncRead + Send + Unpin + 'static,
        catalog: ConfiguredAirbyteCatalog,
    ) -> Result<WriteJob<'_>, DestinationError> {
        let config = self.config_or_err()?.clone();
        Ok(self.write_messages_with_config(config, input, catalog))
    }

    /// The config given to the destination, if any.
    pub fn config(&self) -> Option<&Value> {
        self.config.as_ref()
    }

    /// [`Destination::write_messages`] with the config to run with.
    pub(crate) fn write_messages_with_config(
        &self,
        config: Value,
        input: impl AsyncRead + Send + Unpin + 'static,
        catalog: ConfiguredAirbyteCatalog,
    ) -> WriteJob<'_> {
        let mut job = WriteJob::new(self.executor.as_ref(), config.clone(), catalog).input(input);
        // With the spec known (validate_config read it), the mask is ready; else the
        // write reads the spec when it starts.
        if let Some(spec) = self.spec.get() {
            let secrets = SecretMask::for_connector(&self.name, Ok::<_, String>(spec), &config);
            if let Some(given) = &self.config {
                secrets.add_config(given);
            }
            job = job.secrets(secrets);
        }
        job
    }
}

#[async_trait::async_trait]
impl SyncDestination for Destination {
    fn name(&self) -> &str {
        &self.name
    }

    fn config(&self) -> Option<&Value> {
        self.config.as_ref()
    }

    async fn identity(&self) -> &str {
        Destination::identity(self).await
    }

    fn write_with_config(
        &self,
        config: Value,
        input: Box<dyn AsyncRead + Send + Unpin>,
        catalog: ConfiguredAirbyteCatalog,
    ) -> WriteJob<'_> {
        self.write_messages_with_config(config, input, catalog)
    }
}
