//! [`ConnectorBuilder`]: how a user names a connector and chooses how to run it —
//! the options PyAirbyte's `get_source` and `get_destination` share, in one place.
//! Each kind finishes with its own `build()`, in [`crate::destination`] and
//! [`crate::source`].

use std::marker::PhantomData;
use std::path::PathBuf;

use serde_json::Value;

use crate::executor::sandbox::SandboxPolicy;
use crate::registry::ExecutorOptions;

/// A connector's name, config and executor options, before resolution. `K` marks
/// what it builds: see [`crate::DestinationBuilder`] and
/// [`crate::source::SourceBuilder`].
#[derive(Debug, Clone)]
pub struct ConnectorBuilder<K> {
    pub(crate) name: String,
    pub(crate) config: Option<Value>,
    pub(crate) options: ExecutorOptions,
    pub(crate) id: Option<String>,
    kind: PhantomData<K>,
}

impl<K> ConnectorBuilder<K> {
    pub(crate) fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            config: None,
            options: ExecutorOptions::default(),
            id: None,
            kind: PhantomData,
        }
    }

    /// Who this connector is, for its stored states, cache positions and updated
    /// configs. A destination's default: its name and a fingerprint of its config
    /// without secret values (and of its local root), so another folder or
    /// database is another destination; set an id to keep its history across a
    /// config change (or, with the connector's bare name, to take over history
    /// from airlock 0.1). A source's default: its name (its states and cache log
    /// are filed under it, as PyAirbyte files them); give each of two sources of
    /// one connector that read different things an id of its own.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// The connector's config.
    pub fn config(mut self, config: Value) -> Self {
        self.config = Some(config);
        self
    }

    /// Run this local program (PyAirbyte's `local_executable`).
    pub fn local_executable(mut self, path: impl Into<PathBuf>) -> Self {
        self.options.local_executable = Some(path.into());
        self
    }

    /// Run this WebAssembly component, sandboxed.
    pub fn wasm(mut self, path: impl Into<PathBuf>) -> Self {
        self.options.wasm = Some(path.into());
        self
    }

    /// The sandbox for a WASM component or a Docker container. Default: [`SandboxPolicy::new`] with the
    /// default local root ([`crate::home::local_root`]) as `/local`.
    pub fn sandbox(mut self, policy: SandboxPolicy) -> Self {
        self.options.policy = Some(policy);
        self
    }

    /// Run the connector's Docker image (PyAirbyte's `docker_image`): `""` for
    /// `airbyte/<name>:<version or latest>`, else that image.
    pub fn docker_image(mut self, image: impl Into<String>) -> Self {
        self.options.docker_image = Some(image.into());
        self
    }

    /// Give a Docker container the host's network, a WASM plugin network access
    /// (PyAirbyte's `use_host_network`).
    pub fn use_host_network(mut self, yes: bool) -> Self {
        if yes {
            let policy = self.options.policy.take().unwrap_or_default();
            self.options.policy = Some(policy.allow_network());
        }
        self
    }

    /// Grant a sandboxed connector TCP connections to one host and port (see
    /// [`SandboxPolicy::allow_net`](crate::executor::sandbox::SandboxPolicy::allow_net));
    /// with none, the endpoints its config names are granted.
    pub fn allow_net(mut self, grant: crate::executor::net::NetGrant) -> Self {
        let policy = self.options.policy.take().unwrap_or_default();
        self.options.policy = Some(policy.allow_net(grant));
        self
    }

    /// Install the connector from this pip requirement or URL into its own venv
    /// (PyAirbyte's `pip_url`).
    pub fn pip_url(mut self, url: impl Into<String>) -> Self {
        self.options.pip_url = Some(url.into());
        self
    }

    /// Every executor option at once (the CLI's flags).
    pub fn executor_options(mut self, options: ExecutorOptions) -> Self {
        self.options = options;
        self
    }

    /// The version wanted (PyAirbyte's `version`).
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.options.version = Some(version.into());
        self
    }

    /// Install the connector on first use if missing (PyAirbyte's `install_if_missing`).
    pub fn install_if_missing(mut self, yes: bool) -> Self {
        self.options.install_if_missing = yes;
        self
    }

    /// An environment variable for the connector.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.options.env.push((key.into(), value.into()));
        self
    }
}
