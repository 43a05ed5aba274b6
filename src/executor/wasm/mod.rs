//! The WASM backend: a WASI Preview 2 component run on wasmtime, in a sandbox.
//!
//! Owns loading (through the compile cache in [`engine`]), telling a plugin of the
//! `airlock:destination` world from a `wasi:cli` command, and running either behind
//! the [`Executor`] trait under a [`SandboxPolicy`]. Every guest call is async, so
//! the write loop keeps streaming while the guest works; the epoch ticker lets
//! timeouts interrupt a guest that never returns. [`WasmError`] is what can go
//! wrong before a guest runs.
//!
//! No other module names a `Store`, a `Linker` or a `Component`.

mod engine;
mod error;
mod host;
mod plugin;

pub use error::WasmError;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::{OnceCell, mpsc, oneshot};
use wasmtime::component::{HasSelf, Linker};
use wasmtime_wasi::cli::{AsyncStdinStream, AsyncStdoutStream};
use wasmtime_wasi::p2::bindings::CommandPre;

use super::job::JobFolder;
use super::net::{ResolvedGrants, grants_for_run};
use super::sandbox::SandboxPolicy;
use super::stdio::{
    Ended, FeedOutcome, exit_result, feed_stdin, joined_or_internal, pump_stderr, pump_stdout,
};
use super::{
    Diagnostics, Executor, ExecutorError, ExecutorErrorKind, FailureReason, Invocation,
    OutputEvent, RunError, SandboxLimit, Session,
};
use crate::protocol::{DEFAULT_MAX_LINE_BYTES, LineBatch};
use host::{Budgets, CappedWriter, HostState, WasiSetup, v0_1, v0_2};
use plugin::Plugin;

/// Output batches buffered ahead of the consumer.
const OUTPUT_QUEUE: usize = 16;
/// Input batches buffered ahead of the guest.
const INPUT_QUEUE: usize = 4;
/// Pipe buffer between the host and a command-mode guest's stdio.
const PIPE_BYTES: usize = 256 * 1024;

/// Where a component's bytes come from.
#[derive(Debug, Clone)]
pub enum WasmSource {
    /// A `.wasm` file.
    File(PathBuf),
    /// Bytes carried by the airlock binary (the built-in plugins).
    Builtin(&'static [u8]),
}

impl WasmSource {
    fn describe(&self) -> PathBuf {
        match self {
            Self::File(path) => path.clone(),
            Self::Builtin(_) => PathBuf::from("(built in)"),
        }
    }
}

/// Runs a WebAssembly component as a sandboxed connector.
///
/// A component exporting `airlock:destination/destination@0.2.x` or `@0.1.x` runs
/// as a plugin: records cross in batches through `write-batch` (with 0.2.0, each
/// batch carries the host's framing table, so the plugin parses no envelope). A component exporting
/// `wasi:cli/run` runs in command mode: it gets the Airbyte CLI arguments, the
/// config and catalog read-only under `/job`, and messages on stdin/stdout — so an
/// Airbyte-style CLI compiled to `wasm32-wasip2` works unchanged. Both run under
/// the same [`SandboxPolicy`].
///
/// ```no_run
/// # async fn demo() -> Result<(), airlock::executor::ExecutorError> {
/// use airlock::executor::{Executor, sandbox::SandboxPolicy, wasm::{WasmExecutor, WasmSource}};
/// let policy = SandboxPolicy::new().allow_local_root("/tmp/out");
/// let exec = WasmExecutor::new("destination-local-json", WasmSource::File("plugin.wasm".into()), policy);
/// println!("{}", exec.spec().await?.connection_specification);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct WasmExecutor {
    connector: String,
    source: WasmSource,
    policy: SandboxPolicy,
    cache_dir: Option<PathBuf>,
    loaded: OnceCell<Arc<Loaded>>,
    /// The spec, read once when network grants are derived from configs.
    spec: OnceCell<serde_json::Value>,
}

/// A compiled component, pre-linked for the world it implements.
struct Loaded {
    world: World,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.world {
            World::PluginV0_1(_) => "Loaded(airlock:destination@0.1)",
            World::PluginV0_2(_) => "Loaded(airlock:destination@0.2)",
            World::Command(_) => "Loaded(wasi:cli/command)",
        })
    }
}

enum World {
    PluginV0_1(v0_1::DestinationPluginPre<HostState>),
    PluginV0_2(v0_2::PluginPre<HostState>),
    Command(CommandPre<HostState>),
}

/// The one linker: WASI Preview 2 as the sandbox allows it, and `host` of
/// `airlock:destination` 0.1.0 and 0.2.0 side by side.
/// Commands get `host` too (harmless if unused).
fn linker() -> Result<&'static Linker<HostState>, String> {
    static LINKER: OnceLock<Result<Linker<HostState>, String>> = OnceLock::new();
    LINKER
        .get_or_init(|| {
            let mut linker = Linker::new(engine::engine());
            wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| format!("{e:#}"))?;
            host::refuse_links(&mut linker).map_err(|e| format!("{e:#}"))?;
            host::filter_name_lookups(&mut linker).map_err(|e| format!("{e:#}"))?;
            v0_1::DestinationPlugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
                .map_err(|e| format!("{e:#}"))?;
            v0_2::Plugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
                .map_err(|e| format!("{e:#}"))?;
            Ok(linker)
        })
        .as_ref()
        .map_err(Clone::clone)
}

impl WasmExecutor {
    /// An executor for the component at `source`, sandboxed by `policy`. Nothing is
    /// read or compiled until first use.
    pub fn new(connector: impl Into<String>, source: WasmSource, policy: SandboxPolicy) -> Self {
        Self {
            connector: connector.into(),
            source,
            policy,
            cache_dir: Some(engine::cache_dir()),
            loaded: OnceCell::new(),
            spec: OnceCell::new(),
        }
    }

    /// Uses `dir` for the on-disk compile cache, or none.
    pub fn cache_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.cache_dir = dir;
        self
    }

    /// The policy this executor enforces.
    pub fn policy(&self) -> &SandboxPolicy {
        &self.policy
    }

    async fn load(&self) -> Result<Arc<Loaded>, ExecutorError> {
        self.loaded
            .get_or_try_init(|| async {
                let connector = self.connector.clone();
                let source = self.source.clone();
                let cache = self.cache_dir.clone();
                tokio::task::spawn_blocking(move || load(&connector, &source, cache.as_deref()))
                    .await
                    .map_err(|e| ExecutorError::internal(&self.connector, "compile", e))?
                    .map(Arc::new)
            })
            .await
            .cloned()
    }
}

fn load(
    connector: &str,
    source: &WasmSource,
    cache: Option<&std::path::Path>,
) -> Result<Loaded, ExecutorError> {
    let invalid = |reason: String| {
        ExecutorError::new(
            connector,
            WasmError::InvalidComponent {
                path: source.describe(),
                reason,
            },
        )
    };
    let file_bytes;
    let bytes: &[u8] = match source {
        WasmSource::File(path) => {
            file_bytes = std::fs::read(path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => {
                    ExecutorError::new(connector, WasmError::NotFound { path: path.clone() })
                }
                _ => ExecutorError::io(connector, "reading the component", e),
            })?;
            &file_bytes
        }
        WasmSource::Builtin(bytes) => bytes,
    };
    if bytes.starts_with(b"\0asm\x01\0\0\0") {
        return Err(invalid(
            "it is a core WebAssembly module, not a component".into(),
        ));
    }
    let component = engine::compile(bytes, cache)
        .map_err(|reason| invalid(reason.split_whitespace().collect::<Vec<_>>().join(" ")))?;
    let engine = engine::engine();
    let exports: Vec<String> = component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    let unsupported = |detail: Option<String>| {
        ExecutorError::new(
            connector,
            WasmError::UnsupportedWorld {
                exports: exports.clone(),
                detail,
            },
        )
    };
    // A command first: a Rust bin linking a plugin crate exports the plugin
    // interface too, but was built to be run as a CLI.
    let linker = linker().map_err(|e| unsupported(Some(e)))?;
    let prelinked = |component: &wasmtime::component::Component| {
        linker
            .instantiate_pre(component)
            .map_err(|e| unsupported(Some(format!("{e:#}"))))
    };
    if exports.iter().any(|e| e.starts_with("wasi:cli/run@0.2.")) {
        let pre = CommandPre::new(prelinked(&component)?)
            .map_err(|e| unsupported(Some(format!("{e:#}"))))?;
        tracing::info!(connector, "loaded as a wasi:cli/command (command mode)");
        return Ok(Loaded {
            world: World::Command(pre),
        });
    }
    // The newest version a component exports wins.
    let exports_version = |version: &str| {
        let prefix = format!("airlock:destination/destination@{version}.");
        exports.iter().any(|e| e.starts_with(&prefix))
    };
    let relink = |e: wasmtime::Error| unsupported(Some(format!("{e:#}")));
    let (world, version) = if exports_version("0.2") {
        let pre = v0_2::PluginPre::new(prelinked(&component)?).map_err(relink)?;
        (World::PluginV0_2(pre), "0.2")
    } else if exports_version("0.1") {
        let pre = v0_1::DestinationPluginPre::new(prelinked(&component)?).map_err(relink)?;
        (World::PluginV0_1(pre), "0.1")
    } else {
        return Err(unsupported(None));
    };
    tracing::info!(
        connector,
        "loaded as an airlock:destination@{version} plugin"
    );
    Ok(Loaded { world })
}

/// What every guest call needs to enforce the policy and name the guest in errors.
#[derive(Clone)]
struct Guard {
    connector: String,
    diagnostics: Diagnostics,
    budgets: Arc<Budgets>,
    idle: Duration,
    deadline: Instant,
    deadline_total: Duration,
    memory_limit: u64,
    max_output: u64,
    max_log: u64,
}

impl Guard {
    fn new(connector: &str, policy: &SandboxPolicy, diagnostics: Diagnostics) -> Self {
        Self {
            connector: connector.to_owned(),
            diagnostics,
            budgets: Budgets::new(policy),
            idle: policy.idle_timeout_value(),
            deadline: Instant::now() + policy.deadline_value(),
            deadline_total: policy.deadline_value(),
            memory_limit: policy.memory_limit(),
            max_output: policy.max_output(),
            max_log: policy.max_log(),
        }
    }

    /// `error`, or the network refusal that most likely caused it: a guest
    /// refused a connection or a lookup usually fails for that reason, in its
    /// own words, and the user needs the address and the grant to add.
    fn refused_or(&self, error: ExecutorError) -> ExecutorError {
        let Some(refusal) = self.budgets.violations.network_refusal() else {
            return error;
        };
        if matches!(
            error.kind(),
            ExecutorErrorKind::Run(RunError::SandboxViolation { .. })
        ) {
            return error;
        }
        ExecutorError::new(
            &self.connector,
            RunError::NetworkRefused {
                refusal: Box::new(refusal),
                log_tail: self.diagnostics.tail(),
            },
        )
    }

    fn violation(&self, limit: SandboxLimit) -> ExecutorError {
        ExecutorError::new(
            &self.connector,
            RunError::SandboxViolation {
                limit,
                log_tail: self.diagnostics.tail(),
            },
        )
    }

    /// Runs one guest call under the idle timeout and the run's deadline, and turns a
    /// trap into the rule it broke, if it broke one.
    async fn call<T>(
        &self,
        call: &'static str,
        future: impl std::future::Future<Output = wasmtime::Result<T>>,
    ) -> Result<T, ExecutorError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        let (limit, by_deadline) = if left < self.idle {
            (left, true)
        } else {
            (self.idle, false)
        };
        match tokio::time::timeout(limit, future).await {
            Err(_elapsed) if by_deadline => Err(self.violation(SandboxLimit::Deadline {
                secs: self.deadline_total.as_secs(),
            })),
            Err(_elapsed) => Err(self.violation(SandboxLimit::IdleTimeout {
                secs: self.idle.as_secs(),
            })),
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(self.trap(call, &error)),
        }
    }

    /// The sandbox limit this run broke, if any: what a trap, or a command that
    /// gave up after a refused write, is reported as.
    fn broken_limit(&self) -> Option<ExecutorError> {
        use std::sync::atomic::Ordering::Relaxed;
        let v = &self.budgets.violations;
        let limit = if v.memory.load(Relaxed) {
            SandboxLimit::Memory {
                limit_bytes: self.memory_limit,
            }
        } else if v.log.load(Relaxed) {
            SandboxLimit::Log {
                limit_bytes: self.max_log,
            }
        } else if v.output.load(Relaxed) {
            SandboxLimit::Output {
                limit_bytes: self.max_output,
            }
        } else {
            return None;
        };
        Some(self.violation(limit))
    }

    fn trap(&self, call: &'static str, error: &wasmtime::Error) -> ExecutorError {
        if let Some(broken) = self.broken_limit() {
            return broken;
        }
        let cause = match error.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::StackOverflow) => {
                "call stack exhausted (unbounded recursion?)".to_owned()
            }
            Some(trap) => trap.to_string(),
            // A host call that failed: its own words, not only "error while
            // executing at wasm backtrace".
            None => error.root_cause().to_string(),
        };
        ExecutorError::new(
            &self.connector,
            RunError::Trap {
                call,
                cause,
                log_tail: self.diagnostics.tail(),
            },
        )
    }

    fn plugin_error(&self, call: &'static str, error: plugin::PluginError) -> ExecutorError {
        self.diagnostics.note(format!("ERROR {}", error.message));
        ExecutorError::new(
            &self.connector,
            RunError::ConnectorFailed {
                reason: FailureReason::PluginError(call),
                failure_type: Some(error.failure_type),
                message: Some(self.diagnostics.mask(&error.message)),
                log_tail: self.diagnostics.tail(),
            },
        )
    }

    /// Hands a plugin's output on: a 0.2.0 plugin's only once its framing table
    /// checks out.
    async fn emit_output(
        &self,
        call: &'static str,
        output: plugin::Output,
        sink: &mpsc::Sender<OutputEvent>,
    ) -> Result<(), ExecutorError> {
        let bytes = match output.frames {
            None => output.messages,
            Some(frames) => plugin::framed_lines(&output.messages, &frames).map_err(|detail| {
                ExecutorError::new(
                    &self.connector,
                    RunError::BadFraming {
                        call,
                        detail,
                        log_tail: self.diagnostics.tail(),
                    },
                )
            })?,
        };
        self.emit(bytes, sink).await
    }

    /// Hands protocol output on, within the output cap.
    async fn emit(
        &self,
        bytes: Vec<u8>,
        output: &mpsc::Sender<OutputEvent>,
    ) -> Result<(), ExecutorError> {
        if bytes.is_empty() {
            return Ok(());
        }
        if !self.budgets.take_output(bytes.len() as u64) {
            return Err(self.violation(SandboxLimit::Output {
                limit_bytes: self.max_output,
            }));
        }
        let batch = LineBatch::from_lines(bytes);
        for line in batch.lines() {
            self.diagnostics.note_protocol_line(line);
        }
        let _ = output.send(OutputEvent::Lines(batch)).await;
        Ok(())
    }
}

/// Pipes for a guest's stdout/stderr that end in the diagnostics (plugin mode: a
/// plugin's prints are logs, not protocol).
fn log_pipe(guard: &Guard, output: &mpsc::Sender<OutputEvent>) -> AsyncStdoutStream {
    let (writer, reader) = tokio::io::duplex(PIPE_BYTES);
    tokio::spawn(pump_stderr(
        reader,
        output.clone(),
        guard.diagnostics.clone(),
    ));
    AsyncStdoutStream::new(
        64 * 1024,
        CappedWriter::new(writer, guard.budgets.clone(), true),
    )
}

/// A plugin-world component, pre-linked, of either version.
enum PluginPre {
    V0_1(v0_1::DestinationPluginPre<HostState>),
    V0_2(v0_2::PluginPre<HostState>),
}

async fn run_plugin(
    pre: PluginPre,
    policy: SandboxPolicy,
    net: Arc<ResolvedGrants>,
    guard: Guard,
    invocation: Invocation,
    input: Option<mpsc::Receiver<LineBatch>>,
    output: mpsc::Sender<OutputEvent>,
) -> Result<(), ExecutorError> {
    let setup = WasiSetup {
        policy: &policy,
        net,
        args: vec![guard.connector.clone()],
        read_only_dirs: Vec::new(),
        stdin: None,
        stdout: Some(log_pipe(&guard, &output)),
        stderr: Some(log_pipe(&guard, &output)),
    };
    let state =
        HostState::new(setup, guard.diagnostics.clone(), guard.budgets.clone()).map_err(|e| {
            ExecutorError::io(
                &guard.connector,
                "preparing the sandbox",
                std::io::Error::other(e),
            )
        })?;
    let mut store = state.into_store();
    let plugin = match pre {
        PluginPre::V0_1(pre) => Plugin::V0_1(
            guard
                .call("instantiate", pre.instantiate_async(&mut store))
                .await?,
        ),
        PluginPre::V0_2(pre) => Plugin::V0_2(
            guard
                .call("instantiate", pre.instantiate_async(&mut store))
                .await?,
        ),
    };
    match invocation {
        Invocation::Discover { .. } | Invocation::Read { .. } => {
            return Err(ExecutorError::new(
                &guard.connector,
                WasmError::Unsupported {
                    command: invocation.command(),
                    reason: "it is an airlock:destination plugin; a source runs as a wasi:cli command component",
                },
            ));
        }
        Invocation::Spec => {
            let spec = guard.call("spec", plugin.spec(&mut store)).await?;
            let spec: serde_json::Value =
                serde_json::from_str(&spec).unwrap_or(serde_json::Value::String(spec));
            let line = serde_json::json!({"type": "SPEC", "spec": spec}).to_string();
            guard
                .emit(format!("{line}\n").into_bytes(), &output)
                .await?;
        }
        Invocation::Check { config, .. } => {
            let (succeeded, message) = guard
                .call("check", plugin.check(&mut store, &config.to_string()))
                .await?;
            let status = serde_json::json!({"type": "CONNECTION_STATUS", "connectionStatus": {
                "status": if succeeded { "SUCCEEDED" } else { "FAILED" },
                "message": message,
            }});
            guard
                .emit(format!("{status}\n").into_bytes(), &output)
                .await?;
        }
        Invocation::Write {
            config, catalog, ..
        } => {
            let streams = catalog.descriptors();
            let catalog = serde_json::to_string(&catalog).unwrap_or_default();
            let writer = guard
                .call(
                    "open",
                    plugin.open(&mut store, &config.to_string(), &catalog),
                )
                .await?
                .map_err(|e| guard.plugin_error("open", e))?;
            let mut scratch = Vec::new();
            let empty = LineBatch::default();
            let mut input = input.unwrap_or_else(|| mpsc::channel(1).1);
            let mut idle_told = true;
            loop {
                // When the input runs dry, an empty batch tells the plugin so: a
                // destination that holds states back to commit several at once
                // commits them now rather than when the source next speaks.
                let batch = match input.try_recv() {
                    Ok(batch) => {
                        idle_told = false;
                        Some(batch)
                    }
                    Err(mpsc::error::TryRecvError::Empty) if !idle_told => {
                        idle_told = true;
                        None
                    }
                    Err(mpsc::error::TryRecvError::Empty) => match input.recv().await {
                        Some(batch) => {
                            idle_told = false;
                            Some(batch)
                        }
                        None => break,
                    },
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                };
                // A batch built elsewhere than the write loop is framed here.
                let batch = match batch {
                    Some(batch) if !batch.is_framed() && matches!(plugin, Plugin::V0_2(_)) => {
                        Some(crate::protocol::framing::framed(batch, &streams))
                    }
                    batch => batch,
                };
                let out = guard
                    .call(
                        "write",
                        plugin.write(
                            &mut store,
                            writer,
                            batch.as_ref().unwrap_or(&empty),
                            &mut scratch,
                        ),
                    )
                    .await?
                    .map_err(|e| guard.plugin_error("write", e))?;
                guard.emit_output("write", out, &output).await?;
                // A TRACE ERROR among the output ends the write: the states before
                // it were accepted by the loop already.
                if let Some(trace) = guard.diagnostics.trace_error() {
                    return Err(ExecutorError::new(
                        &guard.connector,
                        RunError::ConnectorFailed {
                            reason: FailureReason::PluginError("write"),
                            failure_type: trace.failure_type,
                            message: Some(trace.message),
                            log_tail: guard.diagnostics.tail(),
                        },
                    ));
                }
            }
            let out = guard
                .call("close", plugin.close(&mut store, writer))
                .await?
                .map_err(|e| guard.plugin_error("close", e))?;
            guard.emit_output("close", out, &output).await?;
            guard
                .call("close", writer.resource_drop_async(&mut store))
                .await?;
        }
    }
    drop(store);
    match guard.diagnostics.trace_error() {
        Some(trace) => Err(ExecutorError::new(
            &guard.connector,
            RunError::ConnectorFailed {
                reason: FailureReason::TraceError,
                failure_type: trace.failure_type,
                message: Some(trace.message),
                log_tail: guard.diagnostics.tail(),
            },
        )),
        None => Ok(()),
    }
}

async fn run_command(
    pre: CommandPre<HostState>,
    policy: SandboxPolicy,
    net: Arc<ResolvedGrants>,
    guard: Guard,
    invocation: Invocation,
    input: Option<mpsc::Receiver<LineBatch>>,
    output: mpsc::Sender<OutputEvent>,
) -> Result<(), ExecutorError> {
    let io_error = |context: &'static str| {
        let connector = guard.connector.clone();
        move |source: std::io::Error| ExecutorError::io(connector, context, source)
    };
    let job = JobFolder::write(&invocation).map_err(io_error("writing the job folder"))?;
    let mut args = vec![guard.connector.clone()];
    args.extend(
        job.args(std::path::Path::new("/job"))
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned()),
    );

    let (stdin_host, stdin_guest) = tokio::io::duplex(PIPE_BYTES);
    let feeder = input.map(|input| tokio::spawn(feed_stdin(stdin_host, input)));
    let (stdout_guest, stdout_host) = tokio::io::duplex(PIPE_BYTES);
    // A source's read is its data, which flows on with backpressure: the output
    // cap guards the host against a plugin's floods of everything else.
    let stdout_capped = !matches!(invocation, Invocation::Read { .. });
    let stdout_pump = tokio::spawn(pump_stdout(
        stdout_host,
        output.clone(),
        guard.diagnostics.clone(),
        DEFAULT_MAX_LINE_BYTES,
    ));
    let setup = WasiSetup {
        policy: &policy,
        net,
        args,
        read_only_dirs: vec![(job.path().to_path_buf(), "/job")],
        stdin: Some(AsyncStdinStream::new(stdin_guest)),
        stdout: Some(AsyncStdoutStream::new(
            64 * 1024,
            CappedWriter::new(stdout_guest, guard.budgets.clone(), false).capped(stdout_capped),
        )),
        stderr: Some(log_pipe(&guard, &output)),
    };
    let state = HostState::new(setup, guard.diagnostics.clone(), guard.budgets.clone())
        .map_err(|e| io_error("preparing the sandbox")(std::io::Error::other(e)))?;
    let mut store = state.into_store();
    let command = guard
        .call("instantiate", pre.instantiate_async(&mut store))
        .await?;
    let call = guard
        .call("run", async {
            command.wasi_cli_run().call_run(&mut store).await
        })
        .await;
    let ended = match call {
        Ok(Ok(())) => Ended::Code(0),
        Ok(Err(())) => Ended::Code(1),
        Err(error) => match error.kind() {
            ExecutorErrorKind::Run(RunError::Trap { cause, .. })
                if cause.starts_with("Exited with i32 exit status") =>
            {
                Ended::Code(
                    cause
                        .rsplit(' ')
                        .next()
                        .and_then(|c| c.parse().ok())
                        .unwrap_or(1),
                )
            }
            _ => return Err(error),
        },
    };
    drop(store); // closes the guest's ends of the pipes
    // A command that failed after a write was refused (the faker returns the
    // error and exits 1) broke that limit, whatever its exit code says.
    if ended != Ended::Code(0)
        && let Some(broken) = guard.broken_limit()
    {
        return Err(broken);
    }
    let framing = joined_or_internal(&guard.connector, "read stdout", stdout_pump.await)?;
    let fed = match feeder {
        Some(handle) => joined_or_internal(&guard.connector, "feed stdin", handle.await)?,
        None => FeedOutcome::Completed,
    };
    exit_result(&guard.connector, ended, &guard.diagnostics, framing, fed)
}

#[async_trait]
impl Executor for WasmExecutor {
    fn connector(&self) -> &str {
        &self.connector
    }

    async fn run(&self, invocation: Invocation) -> Result<Session, ExecutorError> {
        let secrets = invocation.secrets();
        let loaded = self.load().await?;
        let net = Arc::new(
            grants_for_run(self, &self.policy, &invocation, &self.spec)
                .await
                .map_err(|e| e.masked(&secrets))?,
        );
        let diagnostics = Diagnostics::new(&self.connector, secrets.clone());
        let guard = Guard::new(&self.connector, &self.policy, diagnostics);
        let guard_for_refusals = guard.clone();
        let (output_tx, output_rx) = mpsc::channel(OUTPUT_QUEUE);
        let (input_tx, input_rx) = match invocation {
            Invocation::Write { .. } => {
                let (tx, rx) = mpsc::channel(INPUT_QUEUE);
                (Some(tx), Some(rx))
            }
            _ => (None, None),
        };
        let (abort_tx, abort_rx) = oneshot::channel::<()>();
        let policy = self.policy.clone();
        let connector = self.connector.clone();
        let work: std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<(), ExecutorError>> + Send>,
        > = match &loaded.world {
            World::PluginV0_1(pre) => Box::pin(run_plugin(
                PluginPre::V0_1(pre.clone()),
                policy,
                net,
                guard,
                invocation,
                input_rx,
                output_tx,
            )),
            World::PluginV0_2(pre) => Box::pin(run_plugin(
                PluginPre::V0_2(pre.clone()),
                policy,
                net,
                guard,
                invocation,
                input_rx,
                output_tx,
            )),
            World::Command(pre) => Box::pin(run_command(
                pre.clone(),
                policy,
                net,
                guard,
                invocation,
                input_rx,
                output_tx,
            )),
        };
        let watch = guard_for_refusals.clone();
        // The guest runs on a thread of its own, not on a runtime worker: woken by
        // each batch the feed sends, a task would land in that worker's LIFO slot,
        // which no other worker may steal, and the feed and the guest would take
        // turns on one core instead of running side by side. The runtime's timers,
        // I/O and spawned tasks are still the caller's (`Handle::block_on`).
        let runtime = tokio::runtime::Handle::current();
        let task = tokio::task::spawn_blocking(move || {
            runtime.block_on(async move {
                tokio::select! {
                result = work => result.map_err(|error| watch.refused_or(error)),
                _ = abort_rx => Err(ExecutorError::new(
                    connector,
                    RunError::ConnectorFailed {
                        reason: FailureReason::Signal(9),
                        failure_type: None,
                        message: Some("stopped by airlock".into()),
                        log_tail: Default::default(),
                    },
                )),
                }
            })
        });
        Ok(Session::from_task(
            &self.connector,
            secrets,
            input_tx,
            output_rx,
            task,
            abort_tx,
        ))
    }
}
