//! [`SandboxPolicy`]: what a sandboxed connector may do, granted one capability at a
//! time from deny-all.
//!
//! Owns the policy's shape, its defaults, and reading it from a policy file. The WASM
//! backend enforces it through WASI and wasmtime; the Docker backend maps it onto
//! container settings. This module enforces nothing itself.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::executor::net::NetGrant;

/// Default memory cap: 512 MiB.
pub const DEFAULT_MEMORY_LIMIT_BYTES: u64 = 512 * 1024 * 1024;
/// Default idle timeout: 300 s without the connector returning.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Default whole-run deadline: 6 hours.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(6 * 3600);
/// Default cap on protocol output: 1 GiB per run.
pub const DEFAULT_MAX_OUTPUT_BYTES: u64 = 1024 * 1024 * 1024;
/// Default cap on logs: 64 MiB per run.
pub const DEFAULT_MAX_LOG_BYTES: u64 = 64 * 1024 * 1024;

/// The largest memory cap: 1 TiB (more than any host here has; the setters
/// saturate at it, the CLI and policy files refuse more).
pub const MAX_MEMORY_LIMIT_MIB: u64 = 1024 * 1024;
/// The largest output or log cap: 1 PiB.
pub const MAX_CAP_MIB: u64 = 1024 * 1024 * 1024;
/// The longest timeout or deadline: ten years.
pub const MAX_TIMEOUT_SECS: u64 = 10 * 365 * 24 * 3600;

const MIB: u64 = 1024 * 1024;

/// A limit over its largest value. It names the setting it came from as data
/// (a policy key, or whatever name the caller gave it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting} {value} is too large: at most {max} {unit}; give a smaller value")]
pub struct LimitError {
    /// The setting, e.g. `memory_limit_mib`.
    pub setting: String,
    /// The value given.
    pub value: u64,
    /// The largest value allowed.
    pub max: u64,
    /// The unit of both, e.g. `MiB`.
    pub unit: &'static str,
}

impl From<LimitError> for String {
    fn from(error: LimitError) -> Self {
        error.to_string()
    }
}

/// Checks one limit given in `unit`s against its largest value; the error names
/// the `setting` it came from (a policy key, or the caller's name for it).
///
/// # Errors
/// A [`LimitError`] when `value` is over `max`.
pub fn check_limit(
    setting: &str,
    value: u64,
    max: u64,
    unit: &'static str,
) -> Result<u64, LimitError> {
    if value > max {
        Err(LimitError {
            setting: setting.to_owned(),
            value,
            max,
            unit,
        })
    } else {
        Ok(value)
    }
}

/// What a sandboxed connector may do.
///
/// [`SandboxPolicy::new`] denies everything that can be denied: no network, no
/// environment variables, no host files, no output folder. Each grant is one method.
/// The limits start at the `DEFAULT_*` constants of this module.
///
/// ```
/// use std::time::Duration;
/// use airlock::executor::sandbox::SandboxPolicy;
///
/// let policy = SandboxPolicy::new()
///     .allow_local_root("/tmp/airlock-out")
///     .memory_limit_bytes(256 * 1024 * 1024)
///     .idle_timeout(Duration::from_secs(30));
/// assert!(policy.local_root().is_some());
/// assert!(!policy.network_allowed());
/// assert!(policy.env().is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxPolicy {
    local_root: Option<PathBuf>,
    env: Vec<(String, String)>,
    network: bool,
    net: Vec<NetGrant>,
    derive_net: bool,
    memory_limit_bytes: u64,
    idle_timeout: Duration,
    deadline: Duration,
    max_output_bytes: u64,
    max_log_bytes: u64,
}

impl Default for SandboxPolicy {
    fn default() -> Self {
        Self::new()
    }
}

impl SandboxPolicy {
    /// Deny-all with the default limits.
    pub fn new() -> Self {
        Self {
            local_root: None,
            env: Vec::new(),
            network: false,
            net: Vec::new(),
            derive_net: true,
            memory_limit_bytes: DEFAULT_MEMORY_LIMIT_BYTES,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            deadline: DEFAULT_DEADLINE,
            max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
            max_log_bytes: DEFAULT_MAX_LOG_BYTES,
        }
    }

    /// Grants read-write access to `dir`, which the connector sees as `/local`.
    pub fn allow_local_root(mut self, dir: impl Into<PathBuf>) -> Self {
        self.local_root = Some(dir.into());
        self
    }

    /// Grants one environment variable.
    pub fn allow_env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Grants all network access (Docker: host network; WASM: TCP/UDP and name
    /// lookup). [`SandboxPolicy::allow_net`] grants one address instead.
    pub fn allow_network(mut self) -> Self {
        self.network = true;
        self
    }

    /// Grants TCP connections to one host and port: the host resolves the name
    /// and the connector may connect only to those addresses on that port, and
    /// look up only granted names. With any grant given, none is derived from
    /// the config.
    pub fn allow_net(mut self, grant: NetGrant) -> Self {
        if !self.net.contains(&grant) {
            self.net.push(grant);
        }
        self
    }

    /// Whether a connector with no [`SandboxPolicy::allow_net`] grant is granted
    /// the endpoints its config names (fields its spec lists in
    /// `x-airlock-endpoints`). On by default.
    pub fn derive_net_from_config(mut self, yes: bool) -> Self {
        self.derive_net = yes;
        self
    }

    /// Caps the connector's memory.
    pub fn memory_limit_bytes(mut self, bytes: u64) -> Self {
        self.memory_limit_bytes = bytes.min(MAX_MEMORY_LIMIT_MIB * MIB);
        self
    }

    /// Fails a call into the connector that takes longer than this.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout.min(Duration::from_secs(MAX_TIMEOUT_SECS));
        self
    }

    /// Fails a run that takes longer than this in all.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline.min(Duration::from_secs(MAX_TIMEOUT_SECS));
        self
    }

    /// Caps the protocol output of one run.
    pub fn max_output_bytes(mut self, bytes: u64) -> Self {
        self.max_output_bytes = bytes.min(MAX_CAP_MIB * MIB);
        self
    }

    /// Caps the logs of one run.
    pub fn max_log_bytes(mut self, bytes: u64) -> Self {
        self.max_log_bytes = bytes.min(MAX_CAP_MIB * MIB);
        self
    }

    /// The folder seen as `/local`, if granted.
    pub fn local_root(&self) -> Option<&Path> {
        self.local_root.as_deref()
    }

    /// Granted environment variables.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// Whether all network access is granted.
    pub fn network_allowed(&self) -> bool {
        self.network
    }

    /// The addresses granted one by one.
    pub fn net_grants(&self) -> &[NetGrant] {
        &self.net
    }

    /// Whether grants may be derived from the config (none given, derivation on,
    /// and not all network granted anyway).
    pub fn derives_net(&self) -> bool {
        self.derive_net && self.net.is_empty() && !self.network
    }

    /// The memory cap.
    pub fn memory_limit(&self) -> u64 {
        self.memory_limit_bytes
    }

    /// The idle timeout.
    pub fn idle_timeout_value(&self) -> Duration {
        self.idle_timeout
    }

    /// The whole-run deadline.
    pub fn deadline_value(&self) -> Duration {
        self.deadline
    }

    /// The output cap.
    pub fn max_output(&self) -> u64 {
        self.max_output_bytes
    }

    /// The log cap.
    pub fn max_log(&self) -> u64 {
        self.max_log_bytes
    }

    /// Applies a policy file's settings over this policy (limits saturate at
    /// their maxima; [`PolicyFile::read`] refuses larger ones).
    pub fn with_file(mut self, file: &PolicyFile) -> Self {
        if let Some(root) = &file.local_root {
            self.local_root = Some(root.clone());
        }
        for (k, v) in &file.env {
            self.env.push((k.clone(), v.clone()));
        }
        self.network |= file.network;
        for grant in &file.allow_net {
            self = self.allow_net(grant.clone());
        }
        if let Some(derive) = file.derive_net {
            self.derive_net = derive;
        }
        if let Some(mib) = file.memory_limit_mib {
            self = self.memory_limit_bytes(mib.saturating_mul(MIB));
        }
        if let Some(secs) = file.idle_timeout_secs {
            self = self.idle_timeout(Duration::from_secs(secs));
        }
        if let Some(secs) = file.deadline_secs {
            self = self.deadline(Duration::from_secs(secs));
        }
        if let Some(mib) = file.max_output_mib {
            self = self.max_output_bytes(mib.saturating_mul(MIB));
        }
        if let Some(mib) = file.max_log_mib {
            self = self.max_log_bytes(mib.saturating_mul(MIB));
        }
        self
    }
}

/// A sandbox policy file (TOML). Every field is optional; absent fields keep the
/// defaults, and the CLI's flags win over the file.
///
/// ```toml
/// local_root = "/srv/airlock/out"   # seen as /local
/// memory_limit_mib = 256
/// idle_timeout_secs = 60
/// deadline_secs = 3600
/// max_output_mib = 512
/// max_log_mib = 16
/// network = false
/// allow_net = ["db.internal:5432"]   # TCP to these only
/// derive_net = true                  # else: grant what the config names
/// [env]
/// TZ = "UTC"
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Host folder seen as `/local`.
    #[serde(default)]
    pub local_root: Option<PathBuf>,
    /// Memory cap in MiB.
    #[serde(default)]
    pub memory_limit_mib: Option<u64>,
    /// Idle timeout in seconds.
    #[serde(default)]
    pub idle_timeout_secs: Option<u64>,
    /// Whole-run deadline in seconds.
    #[serde(default)]
    pub deadline_secs: Option<u64>,
    /// Output cap in MiB.
    #[serde(default)]
    pub max_output_mib: Option<u64>,
    /// Log cap in MiB.
    #[serde(default)]
    pub max_log_mib: Option<u64>,
    /// Grant all network access.
    #[serde(default)]
    pub network: bool,
    /// TCP grants, `HOST:PORT` each.
    #[serde(default)]
    pub allow_net: Vec<NetGrant>,
    /// Grant the endpoints the config names when `allow_net` is empty (default
    /// true).
    #[serde(default)]
    pub derive_net: Option<bool>,
    /// Environment variables to grant.
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
}

impl PolicyFile {
    /// The keys a policy file (or a sync file's `sandbox` table) may have.
    pub const KEYS: [&'static str; 10] = [
        "local_root",
        "memory_limit_mib",
        "idle_timeout_secs",
        "deadline_secs",
        "max_output_mib",
        "max_log_mib",
        "network",
        "allow_net",
        "derive_net",
        "env",
    ];

    /// Reads a policy file.
    ///
    /// # Errors
    /// A message naming the file and the problem (unreadable, bad TOML, unknown
    /// key, a limit over its maximum).
    pub fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("policy file {}: {e}", path.display()))?;
        let file: Self =
            toml::from_str(&text).map_err(|e| format!("policy file {}: {e}", path.display()))?;
        file.check()
            .map_err(|e| format!("policy file {}: {e}", path.display()))?;
        Ok(file)
    }

    /// Checks every limit against its maximum.
    ///
    /// # Errors
    /// The first limit that is too large, naming its key.
    pub fn check(&self) -> Result<(), LimitError> {
        let limits = [
            (
                "memory_limit_mib",
                self.memory_limit_mib,
                MAX_MEMORY_LIMIT_MIB,
                "MiB",
            ),
            (
                "idle_timeout_secs",
                self.idle_timeout_secs,
                MAX_TIMEOUT_SECS,
                "seconds",
            ),
            (
                "deadline_secs",
                self.deadline_secs,
                MAX_TIMEOUT_SECS,
                "seconds",
            ),
            ("max_output_mib", self.max_output_mib, MAX_CAP_MIB, "MiB"),
            ("max_log_mib", self.max_log_mib, MAX_CAP_MIB, "MiB"),
        ];
        for (key, value, max, unit) in limits {
            if let Some(value) = value {
                check_limit(key, value, max, unit)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_defaults_hold() {
        let p = SandboxPolicy::new();
        assert_eq!(p.local_root(), None);
        assert!(p.env().is_empty());
        assert!(!p.network_allowed());
        assert_eq!(p.memory_limit(), 512 * 1024 * 1024);
        assert_eq!(p.idle_timeout_value(), Duration::from_secs(300));
    }

    #[test]
    fn a_policy_file_round_trips_and_applies() {
        let file = PolicyFile {
            local_root: Some("/srv/out".into()),
            memory_limit_mib: Some(64),
            idle_timeout_secs: Some(5),
            env: [("TZ".to_owned(), "UTC".to_owned())].into(),
            ..PolicyFile::default()
        };
        let text = toml::to_string(&file).expect("serialise");
        let parsed: PolicyFile = toml::from_str(&text).expect("parse");
        assert_eq!(parsed, file);
        let policy = SandboxPolicy::new().with_file(&parsed);
        assert_eq!(policy.memory_limit(), 64 * 1024 * 1024);
        assert_eq!(policy.idle_timeout_value(), Duration::from_secs(5));
        assert_eq!(policy.env(), &[("TZ".to_owned(), "UTC".to_owned())]);
    }

    #[test]
    fn unknown_keys_in_a_policy_file_are_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("policy.toml");
        std::fs::write(&path, "memory_limit = 5\n").expect("write");
        let err = PolicyFile::read(&path).expect_err("unknown key");
        assert!(
            err.contains("memory_limit") && err.contains("policy.toml"),
            "{err}"
        );
    }

    #[test]
    fn limits_saturate_in_the_library_and_are_refused_in_files() {
        let policy = SandboxPolicy::new()
            .memory_limit_bytes(u64::MAX)
            .deadline(Duration::MAX)
            .idle_timeout(Duration::MAX)
            .max_output_bytes(u64::MAX)
            .max_log_bytes(u64::MAX);
        assert_eq!(policy.memory_limit(), MAX_MEMORY_LIMIT_MIB * MIB);
        assert_eq!(
            policy.deadline_value(),
            Duration::from_secs(MAX_TIMEOUT_SECS)
        );
        // A deadline this far ahead can still be added to now.
        assert!(
            std::time::Instant::now()
                .checked_add(policy.deadline_value())
                .is_some()
        );
        let saturated = SandboxPolicy::new().with_file(&PolicyFile {
            memory_limit_mib: Some(u64::MAX),
            max_log_mib: Some(u64::MAX),
            ..PolicyFile::default()
        });
        assert_eq!(saturated.memory_limit(), MAX_MEMORY_LIMIT_MIB * MIB);
        assert_eq!(saturated.max_log(), MAX_CAP_MIB * MIB);

        let dir = tempfile::tempdir().expect("tmp");
        for (key, value) in [
            ("memory_limit_mib", "9223372036854775807"),
            ("deadline_secs", "9223372036854775807"),
            ("idle_timeout_secs", "999999999999"),
            ("max_output_mib", "9223372036854775807"),
            ("max_log_mib", "9223372036854775807"),
        ] {
            let file = dir.path().join("p.toml");
            std::fs::write(&file, format!("{key} = {value}\n")).expect("write");
            let error = PolicyFile::read(&file).expect_err(key);
            assert!(
                error.contains(key) && error.contains("too large"),
                "{key}: {error}"
            );
        }
    }
}
