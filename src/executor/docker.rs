//! The Docker backend: a connector's image run through the engine's API (bollard),
//! the way Airbyte runs connectors.
//!
//! Owns choosing the image reference, pulling and removing images, and running one
//! container per command: the image's own entrypoint, config and catalog read-only
//! under `/data/job`, the local root at `/local`, an init process, stdin and stdout
//! over a Unix socket through airlock-init ([`DockerStdio::Auto`], on a local engine)
//! or the engine's attach stream, pumped concurrently, and the [`SandboxPolicy`]
//! mapped onto the container
//! (network `none` unless granted, memory and CPU limits, only the granted
//! environment, no privileges, all capabilities dropped). Every container carries
//! the label `airlock.managed=true` and is removed when its run ends — on success,
//! failure, abort or deadline; [`collect_garbage`] removes those a killed host left
//! behind. [`DockerError`] is what the engine or the image can get wrong. Nothing
//! outside this module sees a container id.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, CreateImageOptions, KillContainerOptions,
    ListContainersOptions, RemoveContainerOptions, RemoveImageOptions, WaitContainerOptions,
};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::{OnceCell, mpsc, oneshot};

use super::job::JobFolder;
use super::sandbox::SandboxPolicy;
use super::stdio::{
    Ended, FeedOutcome, exit_result, feed_stdin, joined_or_internal, pump_stderr, pump_stdout,
};
use super::{
    Diagnostics, Executor, ExecutorError, ExecutorErrorKind, FailureReason, Invocation, RunError,
    Session,
};
use crate::protocol::DEFAULT_MAX_LINE_BYTES;
use crate::remedy::Remedy;

/// The Docker backend could not run the image.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// The Docker engine cannot be reached.
    #[error(
        "cannot reach the Docker engine ({endpoint}): {reason}\nfix: {}",
        Remedy::StartDocker
    )]
    Unreachable {
        /// Where airlock looked.
        endpoint: String,
        /// The client's error.
        reason: String,
    },

    /// The image is not available.
    #[error(
        "image {image} is not available: {reason}\nfix: {}",
        Remedy::ProvideImage { image: image.clone() }
    )]
    ImageMissing {
        /// The image reference.
        image: String,
        /// Why.
        reason: String,
    },

    /// airlock's init in the container failed, or died before the connector
    /// ended: the connector's stdio (a Unix socket) is gone.
    #[error(
        "airlock's init in the container of image {image} {reason}\nfix: {}",
        Remedy::DockerAttach
    )]
    Init {
        /// The image.
        image: String,
        /// What happened.
        reason: String,
    },

    /// The Docker engine refused or failed a request.
    #[error("Docker {action} failed for image {image}: {reason}")]
    Api {
        /// The image.
        image: String,
        /// What airlock asked.
        action: &'static str,
        /// The engine's answer.
        reason: String,
    },
}

impl DockerError {
    /// How to fix it, when the library knows.
    pub fn remedy(&self) -> Option<Remedy> {
        match self {
            Self::Unreachable { .. } => Some(Remedy::StartDocker),
            Self::ImageMissing { image, .. } => Some(Remedy::ProvideImage {
                image: image.clone(),
            }),
            Self::Init { .. } => Some(Remedy::DockerAttach),
            Self::Api { .. } => None,
        }
    }
}

/// The label every airlock container carries.
pub const MANAGED_LABEL: &str = "airlock.managed";
/// The label naming the host process that owns a container.
const OWNER_LABEL: &str = "airlock.owner-pid";
/// Where the job folder appears in the container.
const JOB_DIR: &str = "/data/job";
/// Buffered output batches.
const OUTPUT_QUEUE: usize = 16;
/// Buffered input batches.
const INPUT_QUEUE: usize = 4;
/// Pipe between the attach stream and the pumps.
const PIPE_BYTES: usize = 256 * 1024;

/// The image for `name`: `image` if given (a tag is added from `version`, or
/// `latest`, when it has none), else `airbyte/<name>:<version or latest>`.
///
/// ```
/// use airlock::executor::docker::image_reference;
/// assert_eq!(image_reference("destination-csv", None, None), "airbyte/destination-csv:latest");
/// assert_eq!(image_reference("destination-csv", None, Some("1.2.3")), "airbyte/destination-csv:1.2.3");
/// assert_eq!(image_reference("x", Some("me/csv:dev"), Some("9")), "me/csv:dev");
/// assert_eq!(image_reference("x", Some("localhost:5000/csv"), Some("9")), "localhost:5000/csv:9");
/// ```
pub fn image_reference(name: &str, image: Option<&str>, version: Option<&str>) -> String {
    let base = match image.filter(|i| !i.is_empty()) {
        Some(image) => image.to_owned(),
        None => format!("airbyte/{name}"),
    };
    let last = base.rsplit('/').next().unwrap_or(&base);
    if last.contains(':') || base.contains('@') {
        base
    } else {
        format!("{base}:{}", version.unwrap_or("latest"))
    }
}

/// Docker-specific settings beyond the [`SandboxPolicy`].
#[derive(Debug, Clone, Default)]
pub struct DockerOptions {
    /// Pull the image on first use if it is missing.
    pub install_if_missing: bool,
    /// CPU limit, in CPUs (e.g. 1.5). Default: no limit.
    pub cpus: Option<f64>,
    /// How the connector's stdin and stdout reach airlock.
    pub stdio: DockerStdio,
}

/// How a container's stdin and stdout reach airlock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DockerStdio {
    /// Pipes when they can work: airlock's static init, bind-mounted into the
    /// container as its entrypoint, starts the image's entrypoint with stdin and
    /// stdout on a Unix socket in a bind-mounted folder, so records never cross
    /// the engine. Needs a local engine (a `unix://` endpoint) and an image whose
    /// entrypoint is known (its `Entrypoint`, else its `AIRBYTE_ENTRYPOINT`).
    /// Otherwise, the attach stream.
    #[default]
    Auto,
    /// The engine's attach stream (a hijacked HTTP connection the daemon copies
    /// into the container's stdio).
    Attach,
}

/// Where airlock's init and its socket folder appear in a container.
const INIT_PATH: &str = "/.airlock-init";
const IO_DIR: &str = "/.airlock";

mod init {
    include!(concat!(env!("OUT_DIR"), "/docker_init.rs"));
}

/// airlock-init, written once per binary to the temp folder (it is bind-mounted,
/// so it must be a file on the engine's machine).
fn init_binary() -> Result<std::path::PathBuf, String> {
    static PATH: OnceLock<Result<std::path::PathBuf, String>> = OnceLock::new();
    PATH.get_or_init(|| {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        use std::os::unix::fs::PermissionsExt;
        if init::DOCKER_INIT.is_empty() {
            return Err("this airlock was built without its init".into());
        }
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(init::DOCKER_INIT);
        let path = std::env::temp_dir().join(format!("airlock-init-{hash:016x}"));
        if path.is_file() {
            return Ok(path);
        }
        let staged = path.with_extension(format!("{}.tmp", std::process::id()));
        std::fs::write(&staged, init::DOCKER_INIT)
            .and_then(|()| {
                std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o755))
            })
            .and_then(|()| std::fs::rename(&staged, &path))
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
        Ok(path)
    })
    .clone()
}

/// The command that starts the image as it would start by itself: its
/// `Entrypoint`, else the Airbyte convention `AIRBYTE_ENTRYPOINT` (split on
/// whitespace), else none (then only the attach stream can run it).
fn image_entrypoint(config: Option<&bollard::models::ImageConfig>) -> Option<Vec<String>> {
    let config = config?;
    if let Some(entrypoint) = config.entrypoint.as_ref().filter(|e| !e.is_empty()) {
        return Some(entrypoint.clone());
    }
    config
        .env
        .iter()
        .flatten()
        .find_map(|e| e.strip_prefix("AIRBYTE_ENTRYPOINT="))
        .map(|e| e.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .filter(|e| !e.is_empty())
}

/// The pipes path of one run: the folder bound at `/.airlock`, holding the socket
/// airlock listens on and the status file airlock-init leaves.
struct Pipes {
    dir: tempfile::TempDir,
    listener: tokio::net::UnixListener,
    entrypoint: Vec<String>,
    init: std::path::PathBuf,
}

impl Pipes {
    fn open(entrypoint: Vec<String>, init: std::path::PathBuf) -> std::io::Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new().prefix("airlock-io-").tempdir()?;
        // The image's user (maybe not root) connects and writes its status here;
        // the folder stays unlistable.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o733))?;
        let socket = dir.path().join("io.sock");
        let listener = tokio::net::UnixListener::bind(&socket)?;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o777))?;
        Ok(Self {
            dir,
            listener,
            entrypoint,
            init,
        })
    }

    /// What airlock-init left: `exit N`, `error: …`, or nothing (it died).
    fn status(dir: &std::path::Path) -> Option<String> {
        std::fs::read_to_string(dir.join("status")).ok()
    }
}

/// Runs a connector's Docker image.
#[derive(Debug)]
pub struct DockerExecutor {
    /// The connector's name.
    name: String,
    /// How errors name it: the name and the image.
    connector: String,
    image: String,
    policy: SandboxPolicy,
    options: DockerOptions,
    client: OnceCell<Docker>,
    /// The spec, read once when network grants are derived from configs.
    spec: OnceCell<serde_json::Value>,
    /// Set when this executor is the registry's last resort: what was tried before.
    fallback_for: Option<Vec<String>>,
}

/// Containers this process has running, removed on Ctrl-C by [`remove_live_containers`].
fn live() -> &'static Mutex<HashSet<String>> {
    static LIVE: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    LIVE.get_or_init(Default::default)
}

/// Names of containers this process asked the engine to create and has not yet
/// heard back about: a run dropped in that moment (Ctrl-C, a lost lease) leaves
/// the engine to finish creating one that no id names yet.
fn pending() -> &'static Mutex<HashSet<String>> {
    static PENDING: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    PENDING.get_or_init(Default::default)
}

fn endpoint() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
}

/// Connects to the engine named by `DOCKER_HOST` (or the default socket) and
/// negotiates the API version.
///
/// # Errors
/// [`DockerError::Unreachable`].
pub async fn connect(connector: &str) -> Result<Docker, ExecutorError> {
    let unreachable = |reason: String| {
        ExecutorError::new(
            connector,
            DockerError::Unreachable {
                endpoint: endpoint(),
                reason,
            },
        )
    };
    let docker = Docker::connect_with_defaults().map_err(|e| unreachable(e.to_string()))?;
    let docker = tokio::time::timeout(Duration::from_secs(10), docker.negotiate_version())
        .await
        .map_err(|_| unreachable("no answer within 10 s".into()))?
        .map_err(|e| unreachable(e.to_string()))?;
    docker
        .ping()
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    Ok(docker)
}

/// Removes airlock containers whose owning process is gone (a host that was killed
/// or panicked) and stopped ones. Returns how many were removed.
///
/// # Errors
/// When the engine cannot be reached or listed.
pub async fn collect_garbage(docker: &Docker) -> Result<usize, bollard::errors::Error> {
    let filters = HashMap::from([("label".to_owned(), vec![format!("{MANAGED_LABEL}=true")])]);
    let containers = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        }))
        .await?;
    let mut removed = 0;
    for container in containers {
        let Some(id) = container.id else { continue };
        if live()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&id)
        {
            continue;
        }
        let owner_alive = container
            .labels
            .as_ref()
            .and_then(|l| l.get(OWNER_LABEL))
            .and_then(|pid| pid.parse::<i32>().ok())
            .is_some_and(|pid| pid as u32 != std::process::id() && process_alive(pid));
        if owner_alive {
            continue;
        }
        let force = RemoveContainerOptions {
            force: true,
            ..Default::default()
        };
        if docker.remove_container(&id, Some(force)).await.is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

fn process_alive(pid: i32) -> bool {
    rustix::process::Pid::from_raw(pid)
        .is_some_and(|pid| rustix::process::test_kill_process(pid).is_ok())
}

/// Removes every container this process still has running (on Ctrl-C), and
/// those whose creation a dropped run cut short, once the engine has made them.
pub async fn remove_live_containers() {
    let ids: Vec<String> = live()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .drain()
        .collect();
    let mut names: Vec<String> = pending()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .drain()
        .collect();
    if ids.is_empty() && names.is_empty() {
        return;
    }
    let Ok(docker) = connect("airlock").await else {
        return;
    };
    let force = || {
        Some(RemoveContainerOptions {
            force: true,
            ..Default::default()
        })
    };
    for id in ids {
        let _ = docker.remove_container(&id, force()).await;
    }
    // A name the engine does not know yet may still be being created: asked
    // again for a few seconds (a create takes well under one).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while !names.is_empty() && tokio::time::Instant::now() < deadline {
        let mut missing = Vec::new();
        for name in names {
            if let Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) = docker.remove_container(&name, force()).await
            {
                missing.push(name);
            }
        }
        names = missing;
        if !names.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl DockerExecutor {
    /// An executor for `image`, calling it `connector` in messages.
    pub fn new(
        connector: impl Into<String>,
        image: impl Into<String>,
        policy: SandboxPolicy,
        options: DockerOptions,
    ) -> Self {
        let name = connector.into();
        let image = image.into();
        Self {
            // Every error names the image too.
            connector: format!("{name} (image {image})"),
            name,
            image,
            policy,
            options,
            client: OnceCell::new(),
            spec: OnceCell::new(),
            fallback_for: None,
        }
    }

    /// Marks this executor as the last resort of name resolution: if the engine or
    /// the image is not there, the error lists `tried` and this image too.
    pub fn as_fallback(mut self, tried: Vec<String>) -> Self {
        self.fallback_for = Some(tried);
        self
    }

    /// Turns "no engine" or "no image" into "no connector found" for a fallback.
    fn explain(&self, error: ExecutorError) -> ExecutorError {
        match (&self.fallback_for, error.kind()) {
            (
                Some(tried),
                ExecutorErrorKind::Docker(
                    DockerError::Unreachable { .. } | DockerError::ImageMissing { .. },
                ),
            ) => {
                let mut tried = tried.clone();
                tried.push(format!("the Docker image {}: {error}", self.image));
                ExecutorError::new(&self.name, ExecutorErrorKind::NotFound { tried })
            }
            _ => error,
        }
    }

    /// The image this executor runs.
    pub fn image(&self) -> &str {
        &self.image
    }

    async fn docker(&self) -> Result<&Docker, ExecutorError> {
        self.client
            .get_or_try_init(|| async {
                let docker = connect(&self.connector).await?;
                // Orphans of killed hosts go first; a failure here is not this run's.
                static COLLECTED: OnceLock<()> = OnceLock::new();
                if COLLECTED.set(()).is_ok()
                    && let Ok(n) = collect_garbage(&docker).await
                    && n > 0
                {
                    tracing::info!("removed {n} orphaned airlock containers");
                }
                Ok(docker)
            })
            .await
    }

    fn docker_error(
        &self,
        action: &'static str,
    ) -> impl Fn(bollard::errors::Error) -> ExecutorError + '_ {
        move |e| {
            ExecutorError::new(
                &self.connector,
                DockerError::Api {
                    image: self.image.clone(),
                    action,
                    reason: e.to_string(),
                },
            )
        }
    }

    /// Makes sure the image is present; pulls it if allowed.
    async fn ensure_image(
        &self,
        docker: &Docker,
    ) -> Result<bollard::models::ImageInspect, ExecutorError> {
        match docker.inspect_image(&self.image).await {
            Ok(inspect) => Ok(inspect),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {
                if !self.options.install_if_missing {
                    return Err(ExecutorError::new(
                        &self.connector,
                        DockerError::ImageMissing {
                            image: self.image.clone(),
                            reason: "it is not present in the local engine".into(),
                        },
                    ));
                }
                self.pull(docker).await?;
                docker
                    .inspect_image(&self.image)
                    .await
                    .map_err(self.docker_error("inspect image"))
            }
            Err(e) => Err(self.docker_error("inspect image")(e)),
        }
    }

    async fn pull(&self, docker: &Docker) -> Result<(), ExecutorError> {
        let options = CreateImageOptions {
            from_image: Some(self.image.clone()),
            ..Default::default()
        };
        let mut progress = docker.create_image(Some(options), None, None);
        while let Some(step) = progress.next().await {
            if let Err(e) = step {
                return Err(ExecutorError::new(
                    &self.connector,
                    DockerError::ImageMissing {
                        image: self.image.clone(),
                        reason: format!("pulling it failed: {e}"),
                    },
                ));
            }
        }
        Ok(())
    }
}

impl DockerExecutor {
    /// The container's network: `none` unless the policy grants network. Docker
    /// (without the iptables rules airlock's engine runs without) cannot hold a
    /// container to an allow-list: a grant of some addresses gives it the host's
    /// network, and says so, never silently.
    async fn network_mode(&self, invocation: &Invocation) -> Result<&'static str, ExecutorError> {
        if self.policy.network_allowed() {
            return Ok("host");
        }
        let grants = super::net::grants_for_run(self, &self.policy, invocation, &self.spec).await?;
        if grants.is_empty() {
            return Ok("none");
        }
        tracing::warn!(
            connector = %self.connector,
            "Docker cannot limit a container to the granted addresses ({}): it gets the \
             host's network, so it can reach more than that; run the connector as a WASM \
             plugin to hold it to the grants",
            grants.describe()
        );
        Ok("host")
    }
}

#[async_trait]
impl Executor for DockerExecutor {
    fn connector(&self) -> &str {
        &self.connector
    }

    async fn version(&self) -> Result<Option<String>, ExecutorError> {
        let docker = self.docker().await?;
        let inspect = self.ensure_image(docker).await?;
        let label = inspect
            .config
            .and_then(|c| c.labels)
            .and_then(|l| l.get("io.airbyte.version").cloned());
        let tag = self
            .image
            .rsplit_once(':')
            .map(|(_, tag)| tag.to_owned())
            .filter(|t| !t.contains('/'));
        Ok(label.or(tag))
    }

    async fn install(&self) -> Result<(), ExecutorError> {
        let docker = self.docker().await?;
        self.pull(docker).await
    }

    async fn uninstall(&self) -> Result<(), ExecutorError> {
        let docker = self.docker().await?;
        match docker
            .remove_image(
                &self.image,
                Some(RemoveImageOptions {
                    force: true,
                    ..Default::default()
                }),
                None,
            )
            .await
        {
            Ok(_)
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(self.docker_error("remove image")(e)),
        }
    }

    async fn run(&self, invocation: Invocation) -> Result<Session, ExecutorError> {
        let secrets = invocation.secrets();
        let docker = self.docker().await.map_err(|e| self.explain(e))?.clone();
        let image = self
            .ensure_image(&docker)
            .await
            .map_err(|e| self.explain(e))?;
        let io_error = |context: &'static str| {
            let connector = self.connector.clone();
            move |source: std::io::Error| ExecutorError::io(connector, context, source)
        };
        let job = JobFolder::write(&invocation).map_err(io_error("writing the job folder"))?;
        let entrypoint = image_entrypoint(image.config.as_ref());
        let image_user = image.config.and_then(|c| c.user).unwrap_or_default();
        if !image_user.is_empty() && image_user != "root" && image_user != "0" {
            // The image runs as another user: let it read the files (the folder
            // stays unlistable, so only a process that knows the path can).
            job.share_with_other_users()
                .map_err(io_error("opening the job folder to the image's user"))?;
        }
        let mut args: Vec<String> = job
            .args(std::path::Path::new(JOB_DIR))
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let mut binds = vec![format!("{}:{JOB_DIR}:ro", job.path().display())];
        if let Some(root) = self.policy.local_root() {
            std::fs::create_dir_all(root).map_err(io_error("creating the local root"))?;
            let root = root
                .canonicalize()
                .map_err(io_error("resolving the local root"))?;
            binds.push(format!("{}:/local", root.display()));
        }
        let pipes = self
            .pipes(entrypoint)
            .map_err(io_error("opening the socket for the container's stdio"))?;
        let mut entrypoint_override = None;
        if let Some(pipes) = &pipes {
            binds.push(format!("{}:{INIT_PATH}:ro", pipes.init.display()));
            binds.push(format!("{}:{IO_DIR}", pipes.dir.path().display()));
            entrypoint_override = Some(vec![INIT_PATH.to_owned()]);
            let mut command = vec![IO_DIR.to_owned(), "--".to_owned()];
            command.extend(pipes.entrypoint.iter().cloned());
            command.append(&mut args);
            args = command;
        }
        let takes_input = matches!(invocation, Invocation::Write { .. });
        let attach_stdin = takes_input && pipes.is_none();
        let limit = self.policy.memory_limit() as i64;
        let network_mode = self.network_mode(&invocation).await?;
        let host_config = HostConfig {
            binds: Some(binds),
            network_mode: Some(network_mode.into()),
            memory: Some(limit),
            memory_swap: Some(limit),
            nano_cpus: self.options.cpus.map(|c| (c * 1e9) as i64),
            init: Some(true),
            privileged: Some(false),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges".into()]),
            ..Default::default()
        };
        let labels = HashMap::from([
            (MANAGED_LABEL.to_owned(), "true".to_owned()),
            (OWNER_LABEL.to_owned(), std::process::id().to_string()),
            ("airlock.connector".to_owned(), self.name.clone()),
        ]);
        let body = ContainerCreateBody {
            image: Some(self.image.clone()),
            entrypoint: entrypoint_override,
            cmd: Some(args),
            env: Some(
                self.policy
                    .env()
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect(),
            ),
            attach_stdin: Some(attach_stdin),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            open_stdin: Some(attach_stdin),
            stdin_once: Some(attach_stdin),
            tty: Some(false),
            labels: Some(labels),
            host_config: Some(host_config),
            ..Default::default()
        };
        let name = format!("airlock-{}-{:08x}", sanitize(&self.name), fastrand_u32());
        // Pending until the engine answers: if this run is dropped meanwhile, the
        // name is all that finds the container (see remove_live_containers).
        pending()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.clone());
        let created = docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.clone()),
                    ..Default::default()
                }),
                body,
            )
            .await;
        pending()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&name);
        let id = created.map_err(self.docker_error("create container"))?.id;
        live()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone());
        let remove = |docker: Docker, id: String| async move {
            let _ = docker
                .remove_container(
                    &id,
                    Some(RemoveContainerOptions {
                        force: true,
                        ..Default::default()
                    }),
                )
                .await;
            live().lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        };
        let attach = AttachContainerOptions {
            stream: true,
            stdin: attach_stdin,
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        let attached = match docker.attach_container(&id, Some(attach)).await {
            Ok(attached) => attached,
            Err(e) => {
                remove(docker.clone(), id).await;
                return Err(self.docker_error("attach container")(e));
            }
        };
        if let Err(e) = docker.start_container(&id, None).await {
            remove(docker.clone(), id).await;
            return Err(self.docker_error("start container")(e));
        }
        match &pipes {
            Some(_) => tracing::info!(
                connector = %self.connector,
                "docker stdio: pipes (a Unix socket through airlock-init; records bypass the engine)"
            ),
            None => {
                tracing::info!(connector = %self.connector, "docker stdio: the engine's attach stream")
            }
        }

        let diagnostics = Diagnostics::new(&self.connector, secrets.clone());
        let (output_tx, output_rx) = mpsc::channel(OUTPUT_QUEUE);
        let (stdout_in, stdout_out) = tokio::io::duplex(PIPE_BYTES);
        let (stderr_in, stderr_out) = tokio::io::duplex(PIPE_BYTES);
        let stderr_pump = tokio::spawn(pump_stderr(
            stderr_out,
            output_tx.clone(),
            diagnostics.clone(),
        ));
        let mut output = attached.output;
        // With pipes, what the container itself prints on stdout (airlock-init's
        // own words) is a log, not protocol.
        let stdout_is_log = pipes.is_some();
        let demux = tokio::spawn(async move {
            let (mut stdout, mut stderr) = (stdout_in, stderr_in);
            while let Some(Ok(chunk)) = output.next().await {
                let written = match chunk {
                    LogOutput::StdOut { message } | LogOutput::Console { message }
                        if !stdout_is_log =>
                    {
                        stdout.write_all(&message).await
                    }
                    LogOutput::StdOut { message }
                    | LogOutput::Console { message }
                    | LogOutput::StdErr { message } => stderr.write_all(&message).await,
                    LogOutput::StdIn { .. } => Ok(()),
                };
                if written.is_err() {
                    break;
                }
            }
        });
        let (input_tx, input_rx) = if takes_input {
            let (tx, rx) = mpsc::channel(INPUT_QUEUE);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let (ended_tx, ended_rx) = oneshot::channel::<()>();
        let pump_diagnostics = diagnostics.clone();
        let (io, io_dir) = match pipes {
            None => {
                let attached_input = attached.input;
                let io = tokio::spawn(async move {
                    let fed = async move {
                        match input_rx {
                            Some(rx) => feed_stdin(attached_input, rx).await,
                            None => {
                                drop(attached_input);
                                FeedOutcome::Completed
                            }
                        }
                    };
                    let pump = pump_stdout(
                        stdout_out,
                        output_tx,
                        pump_diagnostics,
                        DEFAULT_MAX_LINE_BYTES,
                    );
                    let (framing, fed) = tokio::join!(pump, fed);
                    Some((framing, fed))
                });
                (io, None)
            }
            Some(Pipes { dir, listener, .. }) => {
                drop(attached.input);
                drop(stdout_out);
                let io = tokio::spawn(async move {
                    let stream = tokio::select! {
                        accepted = listener.accept() => accepted.ok()?.0,
                        _ = ended_rx => return None,
                    };
                    let (reader, mut writer) = stream.into_split();
                    let fed = async move {
                        match input_rx {
                            Some(rx) => feed_stdin(writer, rx).await,
                            None => {
                                let _ = writer.shutdown().await;
                                FeedOutcome::Completed
                            }
                        }
                    };
                    let pump =
                        pump_stdout(reader, output_tx, pump_diagnostics, DEFAULT_MAX_LINE_BYTES);
                    let (framing, fed) = tokio::join!(pump, fed);
                    Some((framing, fed))
                });
                (io, Some(dir))
            }
        };

        let (abort_tx, abort_rx) = oneshot::channel::<()>();
        let connector = self.connector.clone();
        let image = self.image.clone();
        let deadline = self.policy.deadline_value();
        let memory_limit = self.policy.memory_limit();
        let waiter = tokio::spawn(async move {
            let _job = job; // bound into the container: removed only when the run ends
            let mut wait = docker.wait_container(&id, None::<WaitContainerOptions>);
            let code = tokio::select! {
                next = wait.next() => match next {
                    Some(Ok(response)) => Some(response.status_code),
                    Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Some(code),
                    Some(Err(_)) | None => None,
                },
                _ = abort_rx => None,
                _ = tokio::time::sleep(deadline) => None,
            };
            let _ = ended_tx.send(());
            if code.is_none() {
                let _ = docker
                    .kill_container(
                        &id,
                        Some(KillContainerOptions {
                            signal: "KILL".into(),
                        }),
                    )
                    .await;
            }
            let oom = docker
                .inspect_container(&id, None)
                .await
                .ok()
                .and_then(|i| i.state)
                .and_then(|s| s.oom_killed)
                .unwrap_or(false);
            let grace = Duration::from_secs(5);
            let _ = tokio::time::timeout(grace, demux).await;
            let io = match tokio::time::timeout(grace, io).await {
                Ok(joined) => joined_or_internal(&connector, "connector stdio", joined)?,
                Err(_) => Some((Ok(()), FeedOutcome::Completed)),
            };
            let _ = tokio::time::timeout(grace, stderr_pump).await;
            remove(docker, id).await;
            if oom {
                return Err(ExecutorError::new(
                    connector,
                    RunError::ConnectorFailed {
                        reason: FailureReason::OutOfMemory {
                            limit_bytes: memory_limit,
                        },
                        failure_type: None,
                        message: None,
                        log_tail: diagnostics.tail(),
                    },
                ));
            }
            // With pipes, the init says how the connector ended; without its word
            // the socket broke under the connector.
            if let (Some(dir), Some(code)) = (&io_dir, code) {
                let status = Pipes::status(dir.path());
                let failed = match status.as_deref() {
                    Some(s) if s.starts_with("exit ") => None,
                    Some(s) => Some(s.strip_prefix("error: ").unwrap_or(s).to_owned()),
                    None => Some(format!(
                        "died before the connector ended (the container exited with code {code}): \
                         the connector's stdio was cut"
                    )),
                };
                if let Some(reason) = failed {
                    let reason = match io {
                        None => format!("could not connect the connector's stdio: {reason}"),
                        Some(_) => reason,
                    };
                    return Err(ExecutorError::new(
                        &connector,
                        DockerError::Init { image, reason },
                    ));
                }
            }
            let (framing, fed) = io.unwrap_or((Ok(()), FeedOutcome::Completed));
            let ended = match code {
                Some(code) => Ended::Code(code as i32),
                None => Ended::Signal(9),
            };
            exit_result(&connector, ended, &diagnostics, framing, fed)
        });
        Ok(Session::from_task(
            &self.connector,
            secrets,
            input_tx,
            output_rx,
            waiter,
            abort_tx,
        ))
    }
}

impl DockerExecutor {
    /// The pipes path for this run, when it can work; `None` for the attach
    /// stream (and why, in the debug log).
    fn pipes(&self, entrypoint: Option<Vec<String>>) -> std::io::Result<Option<Pipes>> {
        let why_not = if self.options.stdio == DockerStdio::Attach {
            Some("the attach stream was asked for".to_owned())
        } else if !endpoint().starts_with("unix://") {
            Some(format!(
                "the engine at {} is not local, so it cannot bind a socket of this machine",
                endpoint()
            ))
        } else if entrypoint.is_none() {
            Some("the image has no Entrypoint or AIRBYTE_ENTRYPOINT to start".to_owned())
        } else {
            None
        };
        if let Some(why) = why_not {
            tracing::debug!(connector = %self.connector, "docker stdio: attach stream: {why}");
            return Ok(None);
        }
        let init = match init_binary() {
            Ok(init) => init,
            Err(why) => {
                tracing::debug!(connector = %self.connector, "docker stdio: attach stream: {why}");
                return Ok(None);
            }
        };
        Pipes::open(entrypoint.unwrap_or_default(), init).map(Some)
    }
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

fn fastrand_u32() -> u32 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now()) as u32
}
