//! What a guest's store holds: the WASI context the policy allows, the resource
//! table, the memory limiter, and the `host` import (`log`).
//!
//! Owns the store's data type and the `airlock:destination` bindings (0.1.0 and
//! 0.2.0, linked side by side). Nothing
//! outside `executor::wasm` names a `Store`, a `Linker` or this state.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{ResourceLimiter, Store, StoreContextMut};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::executor::Diagnostics;
use crate::executor::net::{Refusal, ResolvedGrants, SocketUse};
use crate::executor::sandbox::SandboxPolicy;

/// Bindings for `airlock:destination@0.1.0`.
pub(super) mod v0_1 {
    wasmtime::component::bindgen!({
        path: "wit/destination-0.1.0",
        world: "destination-plugin",
        imports: { default: trappable },
        exports: { default: async },
    });
}

/// Bindings for `airlock:destination@0.2.0`.
pub(super) mod v0_2 {
    wasmtime::component::bindgen!({
        path: "wit/destination-0.2.0",
        world: "plugin",
        imports: { default: trappable },
        exports: { default: async },
    });
}

/// Which sandbox rule a guest broke, if any; set by the enforcer, read when the
/// guest's call fails.
#[derive(Debug, Default)]
pub(super) struct Violations {
    pub memory: AtomicBool,
    pub output: AtomicBool,
    pub log: AtomicBool,
    /// The first network use the grants refused.
    pub network: std::sync::Mutex<Option<Refusal>>,
}

impl Violations {
    /// Keeps the first refusal, notes each in the log tail, and warns.
    pub fn refuse(&self, refusal: Refusal, diagnostics: &Diagnostics) {
        diagnostics.note(format!(
            "sandbox: refused {}: {}",
            refusal.what, refusal.rule
        ));
        tracing::warn!(
            "sandbox: refused {}: {} (fix: {})",
            refusal.what,
            refusal.rule,
            refusal.fix
        );
        let mut first = self.network.lock().unwrap_or_else(|p| p.into_inner());
        first.get_or_insert(refusal);
    }

    /// The first refusal, if any.
    pub fn network_refusal(&self) -> Option<Refusal> {
        self.network
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Bytes a guest may still write to logs and output in this run.
#[derive(Debug)]
pub(super) struct Budgets {
    pub log_left: AtomicU64,
    pub output_left: AtomicU64,
    pub violations: Violations,
}

impl Budgets {
    pub fn new(policy: &SandboxPolicy) -> Arc<Self> {
        Arc::new(Self {
            log_left: AtomicU64::new(policy.max_log()),
            output_left: AtomicU64::new(policy.max_output()),
            violations: Violations::default(),
        })
    }

    /// Takes `n` bytes from a budget; false (and the violation flagged) when spent.
    fn take(left: &AtomicU64, flag: &AtomicBool, n: u64) -> bool {
        let ok = left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(n))
            .is_ok();
        if !ok {
            flag.store(true, Ordering::Relaxed);
        }
        ok
    }

    pub fn take_log(&self, n: u64) -> bool {
        Self::take(&self.log_left, &self.violations.log, n)
    }

    pub fn take_output(&self, n: u64) -> bool {
        Self::take(&self.output_left, &self.violations.output, n)
    }
}

/// The version of `wasi:filesystem` this wasmtime links (guests asking for any
/// 0.2.x are matched to it).
const WASI_FILESYSTEM_TYPES: &str = "wasi:filesystem/types@0.2.12";

/// Replaces WASI's `symlink-at` and `link-at` with refusals: a plugin may not
/// create links under the local root. Following a link inside the sandbox is
/// refused anyway, but a link left in the user's folder would be followed by a
/// native process, a Docker container bound to the same folder, or a person —
/// to wherever its target points (`/local/x -> ../../../../etc`).
pub(super) fn refuse_links(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    use wasmtime::component::Resource;
    use wasmtime_wasi::filesystem::Descriptor;
    use wasmtime_wasi::p2::bindings::filesystem::types::{ErrorCode, PathFlags};
    linker.allow_shadowing(true);
    let mut types = linker.instance(WASI_FILESYSTEM_TYPES)?;
    types.func_wrap(
        "[method]descriptor.symlink-at",
        |mut store: StoreContextMut<'_, HostState>,
         (_dir, target, path): (Resource<Descriptor>, String, String)| {
            store
                .data_mut()
                .refused_link("a symbolic link", &path, Some(&target));
            Ok((Err::<(), _>(ErrorCode::NotPermitted),))
        },
    )?;
    types.func_wrap(
        "[method]descriptor.link-at",
        |mut store: StoreContextMut<'_, HostState>,
         (_dir, _flags, old, _new_dir, new): (
            Resource<Descriptor>,
            PathFlags,
            String,
            Resource<Descriptor>,
            String,
        )| {
            store
                .data_mut()
                .refused_link("a hard link", &new, Some(&old));
            Ok((Err::<(), _>(ErrorCode::NotPermitted),))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// The version of `wasi:sockets` this wasmtime links.
const WASI_IP_NAME_LOOKUP: &str = "wasi:sockets/ip-name-lookup@0.2.12";

/// Replaces WASI's `resolve-addresses` with one that looks up only granted
/// names (and IP addresses, which need no lookup): an ungranted lookup fails
/// as unresolvable, so name lookups are no side channel out of the sandbox.
pub(super) fn filter_name_lookups(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    use wasmtime::component::Resource;
    use wasmtime_wasi::p2::Network;
    use wasmtime_wasi::p2::bindings::sockets::ip_name_lookup::{Host, ResolveAddressStream};
    use wasmtime_wasi::p2::bindings::sockets::network::ErrorCode;
    use wasmtime_wasi::sockets::WasiSocketsView;
    linker.allow_shadowing(true);
    let mut lookup = linker.instance(WASI_IP_NAME_LOOKUP)?;
    lookup.func_wrap(
        "resolve-addresses",
        |mut store: StoreContextMut<'_, HostState>,
         (network, name): (Resource<Network>, String)| {
            let state = store.data_mut();
            let checked = match state.all_network {
                true => Ok(()),
                false => state.net.check_lookup(&name),
            };
            if let Err(refusal) = checked {
                state.budgets.violations.refuse(refusal, &state.diagnostics);
                return Ok((Err::<Resource<ResolveAddressStream>, _>(
                    ErrorCode::NameUnresolvable,
                ),));
            }
            match Host::resolve_addresses(&mut state.sockets(), network, name) {
                Ok(stream) => Ok((Ok(stream),)),
                Err(error) => Ok((Err(error.downcast()?),)),
            }
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// The store's data.
pub(super) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: MemoryLimiter,
    diagnostics: Diagnostics,
    budgets: Arc<Budgets>,
    net: Arc<ResolvedGrants>,
    /// The policy grants all network: lookups are not filtered.
    all_network: bool,
}

impl HostState {
    /// Notes a refused link in the connector's log tail and as a warning.
    fn refused_link(&mut self, kind: &str, path: &str, target: Option<&str>) {
        let to = target.map(|t| format!(" -> {t}")).unwrap_or_default();
        self.diagnostics.note(format!(
            "sandbox: refused to create {kind} {path}{to} (plugins may not create links under /local)"
        ));
        tracing::warn!("sandbox: refused to create {kind} {path}{to}");
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// A WASI context with exactly what `policy` grants, plus `extra_dirs` (read-only
/// job folders for command mode) and the given stdio.
pub(super) struct WasiSetup<'a> {
    pub policy: &'a SandboxPolicy,
    /// The network grants, resolved (empty: no network unless the policy grants
    /// all of it).
    pub net: Arc<ResolvedGrants>,
    pub args: Vec<String>,
    pub read_only_dirs: Vec<(std::path::PathBuf, &'static str)>,
    pub stdin: Option<wasmtime_wasi::cli::AsyncStdinStream>,
    pub stdout: Option<wasmtime_wasi::cli::AsyncStdoutStream>,
    pub stderr: Option<wasmtime_wasi::cli::AsyncStdoutStream>,
}

impl HostState {
    pub fn new(
        setup: WasiSetup<'_>,
        diagnostics: Diagnostics,
        budgets: Arc<Budgets>,
    ) -> Result<Self, String> {
        let mut builder = WasiCtxBuilder::new();
        builder.args(&setup.args);
        // File I/O on the guest's own task instead of a hop to the blocking pool per
        // call (wasi-libc writes files in 4 KiB chunks): set before the preopens,
        // which capture it.
        builder.allow_blocking_current_thread(true);
        // Deny-all, spelled out rather than trusted to defaults. TCP sockets may
        // be made, but every address is held to the grants (none: all refused,
        // and named), and name lookups to the granted names.
        builder
            .allow_tcp(true)
            .allow_udp(false)
            .allow_ip_name_lookup(true);
        {
            let net = setup.net.clone();
            let budgets = budgets.clone();
            let diagnostics = diagnostics.clone();
            builder.socket_addr_check(move |addr, used| {
                use wasmtime_wasi::sockets::SocketAddrUse as Use;
                let how = match used {
                    Use::TcpBind => SocketUse::TcpBind,
                    Use::TcpConnect => SocketUse::TcpConnect,
                    Use::TcpListen | Use::TcpAccept => SocketUse::TcpListen,
                    Use::UdpBind | Use::UdpSend | Use::UdpReceive => SocketUse::Udp,
                };
                let allowed = match net.check(addr, how) {
                    Ok(()) => true,
                    Err(refusal) => {
                        budgets.violations.refuse(refusal, &diagnostics);
                        false
                    }
                };
                Box::pin(async move { allowed })
            });
        }
        if setup.policy.network_allowed() {
            builder
                .allow_tcp(true)
                .allow_udp(true)
                .allow_ip_name_lookup(true)
                .inherit_network();
        }
        for (k, v) in setup.policy.env() {
            builder.env(k, v);
        }
        if let Some(root) = setup.policy.local_root() {
            std::fs::create_dir_all(root)
                .map_err(|e| format!("creating the local root {}: {e}", root.display()))?;
            builder
                .preopened_dir(root, "/local", FsPerms::ReadWrite)
                .map_err(|e| format!("opening the local root {}: {e:#}", root.display()))?;
        }
        for (dir, guest) in &setup.read_only_dirs {
            builder
                .preopened_dir(dir, guest, FsPerms::ReadOnly)
                .map_err(|e| format!("opening {}: {e:#}", dir.display()))?;
        }
        if let Some(stdin) = setup.stdin {
            builder.stdin(stdin);
        }
        if let Some(stdout) = setup.stdout {
            builder.stdout(stdout);
        }
        if let Some(stderr) = setup.stderr {
            builder.stderr(stderr);
        }
        Ok(Self {
            wasi: builder.build(),
            table: ResourceTable::new(),
            limits: MemoryLimiter {
                limit: setup.policy.memory_limit() as usize,
                budgets: budgets.clone(),
            },
            diagnostics,
            budgets,
            net: setup.net,
            all_network: setup.policy.network_allowed(),
        })
    }

    /// A store for this state, with the memory limiter and epoch yielding set.
    pub fn into_store(self) -> Store<HostState> {
        let mut store = Store::new(super::engine::engine(), self);
        store.limiter(|state| &mut state.limits);
        // Yield to the async executor at every epoch tick, so timeouts can fire
        // even while the guest loops.
        store.epoch_deadline_async_yield_and_update(1);
        store
    }
}

impl HostState {
    /// `host.log`, in any version: within the log cap, into the diagnostics.
    fn plugin_log(
        &mut self,
        level: crate::protocol::LogLevel,
        message: &str,
    ) -> wasmtime::Result<()> {
        if !self.budgets.take_log(message.len() as u64 + 1) {
            return Err(wasmtime::format_err!("log cap exceeded"));
        }
        self.diagnostics.note_log(level, message);
        Ok(())
    }
}

/// The host's log level for a plugin's, in either version (the enums are the same).
macro_rules! log_level {
    ($wit:path, $level:expr) => {{
        use crate::protocol::LogLevel as L;
        use $wit as W;
        match $level {
            W::Fatal => L::Fatal,
            W::Error => L::Error,
            W::Warn => L::Warn,
            W::Info => L::Info,
            W::Debug => L::Debug,
            W::Trace => L::Trace,
        }
    }};
}

impl v0_1::airlock::destination::types::Host for HostState {}

impl v0_1::airlock::destination::host::Host for HostState {
    fn log(
        &mut self,
        level: v0_1::airlock::destination::types::LogLevel,
        message: String,
    ) -> wasmtime::Result<()> {
        let level = log_level!(v0_1::airlock::destination::types::LogLevel, level);
        self.plugin_log(level, &message)
    }
}

impl v0_2::airlock::destination::types::Host for HostState {}

impl v0_2::airlock::destination::host::Host for HostState {
    fn log(
        &mut self,
        level: v0_2::airlock::destination::types::LogLevel,
        message: String,
    ) -> wasmtime::Result<()> {
        let level = log_level!(v0_2::airlock::destination::types::LogLevel, level);
        self.plugin_log(level, &message)
    }
}

/// Caps linear memory; a denied growth is flagged and traps with the rule's name.
struct MemoryLimiter {
    limit: usize,
    budgets: Arc<Budgets>,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.budgets
                .violations
                .memory
                .store(true, Ordering::Relaxed);
            return Err(wasmtime::format_err!(
                "memory limit of {} bytes exceeded",
                self.limit
            ));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// An `AsyncWrite` that stops (with an error) once a byte budget is spent. It keeps
/// a guest's stdout and stderr from growing without bound.
pub(super) struct CappedWriter<W> {
    inner: W,
    budgets: Arc<Budgets>,
    is_log: bool,
    capped: bool,
}

impl<W> CappedWriter<W> {
    pub fn new(inner: W, budgets: Arc<Budgets>, is_log: bool) -> Self {
        Self {
            inner,
            budgets,
            is_log,
            capped: true,
        }
    }

    /// Whether the budget applies at all (a source's read is not capped).
    pub fn capped(mut self, capped: bool) -> Self {
        self.capped = capped;
        self
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for CappedWriter<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let n = buf.len() as u64;
        let ok = if !self.capped {
            true
        } else if self.is_log {
            self.budgets.take_log(n)
        } else {
            self.budgets.take_output(n)
        };
        if !ok {
            return Poll::Ready(Err(std::io::Error::other("sandbox output cap exceeded")));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
