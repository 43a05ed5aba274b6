//! The command line's arguments: the clap structs (each `///` is the `--help` text),
//! their parse tests, and the step from flags to library options
//! ([`ExecutorOptions`], [`SandboxPolicy`]). Flag names live here and in
//! [`super::report`]; the library never sees them.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use airlock::executor::docker::{DockerOptions, DockerStdio};
use airlock::executor::sandbox::{
    MAX_CAP_MIB, MAX_MEMORY_LIMIT_MIB, MAX_TIMEOUT_SECS, PolicyFile, SandboxPolicy, check_limit,
};
use airlock::registry::ExecutorOptions;
use airlock::source::WriteStrategy;

/// The longest line `--max-line-bytes` may allow: 4 GiB.
pub(crate) const MAX_LINE_BYTES: usize = 4 << 30;

/// The most CPUs `--cpus` may ask for.
const MAX_CPUS: f64 = 4096.0;

/// `--strategy`: how records land (the library's [`WriteStrategy`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StrategyArg {
    /// Merge with a primary key, append with a cursor, else replace.
    Auto,
    /// Append.
    Append,
    /// Replace.
    Replace,
    /// Merge (dedupe on the primary key).
    Merge,
}

impl From<StrategyArg> for WriteStrategy {
    fn from(arg: StrategyArg) -> Self {
        match arg {
            StrategyArg::Auto => Self::Auto,
            StrategyArg::Append => Self::Append,
            StrategyArg::Replace => Self::Replace,
            StrategyArg::Merge => Self::Merge,
        }
    }
}

/// Run Airbyte-protocol destinations: sandboxed, in Docker, or as local executables.
#[derive(Debug, Parser)]
#[command(name = "airlock", version, about, long_about = None)]
pub struct Cli {
    /// More log output on stderr (-v: info, -vv: debug). `AIRLOCK_LOG` overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log lines on stderr as `text` (for people) or `json` (one object per line,
    /// with its spans: for machines).
    #[arg(long, global = true, value_enum, value_name = "FORMAT", default_value_t = super::logging::LogFormat::Text)]
    pub(crate) log_format: super::logging::LogFormat,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
#[allow(
    clippy::large_enum_variant,
    reason = "parsed once per run, never moved in bulk"
)]
pub enum Command {
    /// Print a connector's spec (its config's JSON Schema).
    Spec(SpecArgs),
    /// Print a source's catalog: its streams, schemas and sync modes.
    Discover(DiscoverArgs),
    /// Validate a config against the spec, then run the destination's check.
    Check(CheckArgs),
    /// Read a source into a destination, resuming from the last confirmed state.
    Sync(SyncArgs),
    /// Write Airbyte messages (a file or stdin) into a destination.
    Write(WriteArgs),
    /// Measure write-loop throughput.
    Bench(super::commands::bench::BenchArgs),
    /// Docker housekeeping.
    #[command(subcommand)]
    Docker(DockerCommand),
    /// For plugin authors: create a destination crate, run the conformance suite.
    #[command(subcommand)]
    Plugin(super::commands::plugin::PluginCommand),
    /// Kubernetes: print Job manifests that run a sync of a sync file.
    #[command(subcommand)]
    K8s(super::commands::k8s::K8sCommand),
}

/// `airlock docker …`.
#[derive(Debug, Subcommand)]
pub enum DockerCommand {
    /// Remove airlock containers left by a killed or crashed airlock.
    Gc,
}

/// How to run a connector. Follows PyAirbyte's `get_destination` arguments.
#[derive(Debug, Clone, Args, Default)]
pub struct ExecutorFlags {
    /// Run this local executable (it must speak the Airbyte CLI: spec, check, write).
    #[arg(long, value_name = "PATH", conflicts_with = "wasm")]
    pub local_executable: Option<PathBuf>,
    /// Run this WebAssembly component (a plugin or a wasi:cli command), sandboxed.
    #[arg(long, value_name = "PATH")]
    pub wasm: Option<PathBuf>,
    /// Run a Docker image: with no value `airbyte/<DEST>:<--version or latest>`, with
    /// a value that image (a tag is added from --version when it has none).
    #[arg(long, value_name = "IMAGE", num_args = 0..=1, default_missing_value = "")]
    pub docker_image: Option<String>,
    /// Install a Python connector from this pip requirement or URL into its own venv
    /// under $AIRLOCK_HOME/venvs, and run it from there.
    #[arg(long, value_name = "URL")]
    pub pip_url: Option<String>,
    /// Docker: give the container the host's network (default: none).
    #[arg(long)]
    pub use_host_network: bool,
    /// Pull a missing Docker image on first use (PyAirbyte's install_if_missing).
    #[arg(long)]
    pub install: bool,
    /// Docker: CPU limit, in CPUs.
    #[arg(long, value_name = "N")]
    pub cpus: Option<f64>,
    /// Docker: send records over the engine's attach stream rather than over a
    /// Unix socket through airlock's init in the container (the default on a
    /// local engine).
    #[arg(long)]
    pub docker_attach: bool,
    /// The connector version wanted.
    #[arg(long = "version", value_name = "V")]
    pub connector_version: Option<String>,
    /// Host folder that the connector sees as `/local` (file outputs). For a local
    /// executable it is passed as `AIRLOCK_LOCAL_ROOT`, and the destination then
    /// resolves `/local/...` paths under it. Default for sandboxes: $AIRLOCK_HOME/local.
    #[arg(long, value_name = "DIR")]
    pub local_root: Option<PathBuf>,
    /// Sandbox policy file (TOML); the flags below override it.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Sandbox memory cap in MiB (default 512).
    #[arg(long, value_name = "MIB")]
    pub memory_limit: Option<u64>,
    /// Sandbox: fail a call into the connector that runs this long (default 300).
    #[arg(long, value_name = "SECS")]
    pub idle_timeout: Option<u64>,
    /// Sandbox: fail a run that takes this long in all (default 21600).
    #[arg(long, value_name = "SECS")]
    pub deadline: Option<u64>,
    /// Sandbox cap on protocol output per run, in MiB (default 1024).
    #[arg(long, value_name = "MIB")]
    pub max_output_mib: Option<u64>,
    /// Sandbox cap on logs per run, in MiB (default 64).
    #[arg(long, value_name = "MIB")]
    pub max_log_mib: Option<u64>,
    /// Grant the sandboxed connector this host environment variable (repeatable).
    #[arg(long, value_name = "NAME")]
    pub allow_env: Vec<String>,
    /// Sandbox: grant TCP connections to HOST:PORT (repeatable; a name is resolved
    /// here, and only its addresses on that port may be reached). With none given,
    /// the endpoints the config names are granted (see --no-derived-net).
    #[arg(long, value_name = "HOST:PORT")]
    pub allow_net: Vec<airlock::executor::net::NetGrant>,
    /// Sandbox: grant no network from the config's host and port fields.
    #[arg(long)]
    pub no_derived_net: bool,
}

impl ExecutorFlags {
    pub(crate) fn options(&self) -> Result<ExecutorOptions, String> {
        if let Some(cpus) = self.cpus
            && !(cpus > 0.0 && cpus <= MAX_CPUS)
        {
            return Err(format!(
                "--cpus {cpus}: give a number of CPUs above 0 and at most {MAX_CPUS}"
            ));
        }
        let mut options = ExecutorOptions {
            local_executable: self.local_executable.clone(),
            wasm: self.wasm.clone(),
            docker_image: self.docker_image.clone(),
            pip_url: self.pip_url.clone(),
            install_if_missing: self.install,
            docker: DockerOptions {
                cpus: self.cpus,
                stdio: if self.docker_attach {
                    DockerStdio::Attach
                } else {
                    DockerStdio::Auto
                },
                ..DockerOptions::default()
            },
            version: self.connector_version.clone(),
            policy: Some(self.policy()?),
            ..ExecutorOptions::default()
        };
        if let Some(root) = &self.local_root {
            options
                .env
                .push(("AIRLOCK_LOCAL_ROOT".into(), root.display().to_string()));
        }
        Ok(options)
    }

    /// The sandbox: the policy file, then the flags over it.
    pub(crate) fn policy(&self) -> Result<SandboxPolicy, String> {
        self.policy_over(SandboxPolicy::new())
    }

    /// The policy: `base` (a sync file's `sandbox`), then `--policy`, then the
    /// flags, each over the one before.
    pub(crate) fn policy_over(&self, base: SandboxPolicy) -> Result<SandboxPolicy, String> {
        let mut policy = base;
        if let Some(path) = &self.policy {
            policy = policy.with_file(&PolicyFile::read(path)?);
        }
        if let Some(root) = &self.local_root {
            policy = policy.allow_local_root(root);
        }
        const MIB: u64 = 1024 * 1024;
        if let Some(mib) = self.memory_limit {
            let mib = check_limit("--memory-limit", mib, MAX_MEMORY_LIMIT_MIB, "MiB")?;
            policy = policy.memory_limit_bytes(mib * MIB);
        }
        if let Some(secs) = self.idle_timeout {
            let secs = check_limit("--idle-timeout", secs, MAX_TIMEOUT_SECS, "seconds")?;
            policy = policy.idle_timeout(Duration::from_secs(secs));
        }
        if let Some(secs) = self.deadline {
            let secs = check_limit("--deadline", secs, MAX_TIMEOUT_SECS, "seconds")?;
            policy = policy.deadline(Duration::from_secs(secs));
        }
        if let Some(mib) = self.max_output_mib {
            let mib = check_limit("--max-output-mib", mib, MAX_CAP_MIB, "MiB")?;
            policy = policy.max_output_bytes(mib * MIB);
        }
        if let Some(mib) = self.max_log_mib {
            let mib = check_limit("--max-log-mib", mib, MAX_CAP_MIB, "MiB")?;
            policy = policy.max_log_bytes(mib * MIB);
        }
        if self.use_host_network {
            policy = policy.allow_network();
        }
        for grant in &self.allow_net {
            policy = policy.allow_net(grant.clone());
        }
        if self.no_derived_net {
            policy = policy.derive_net_from_config(false);
        }
        for name in &self.allow_env {
            let value = std::env::var(name).map_err(|_| {
                format!("--allow-env {name}: no such variable in airlock's environment")
            })?;
            policy = policy.allow_env(name, value);
        }
        Ok(policy)
    }
}

/// `airlock spec`.
#[derive(Debug, Args)]
pub struct SpecArgs {
    /// Destination name, e.g. destination-local-json.
    pub destination: String,
    #[command(flatten)]
    #[allow(missing_docs, reason = "flattened")]
    pub executor: ExecutorFlags,
}

/// `airlock discover`.
#[derive(Debug, Args)]
pub struct DiscoverArgs {
    /// Source name, e.g. source-faker.
    pub source: String,
    /// Config: a JSON file path, or inline JSON.
    #[arg(long, value_name = "CFG")]
    pub config: String,
    #[command(flatten)]
    #[allow(missing_docs, reason = "flattened")]
    pub executor: ExecutorFlags,
}

/// `airlock check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Destination name.
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    pub destination: Option<String>,
    /// Config: a JSON file path, or inline JSON.
    #[arg(long, value_name = "CFG", required_unless_present = "file")]
    pub config: Option<String>,
    /// Check a sync file instead: every source, destination and sync in it, all
    /// problems listed at once with their lines (secret references resolved).
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Print the status as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    #[allow(missing_docs, reason = "flattened")]
    pub executor: ExecutorFlags,
}

/// `airlock sync`. The unprefixed executor flags choose the destination's backend
/// (as for `write`); the sandbox flags apply to both sides.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Run the sync NAME of this sync file (its sources, destinations, streams,
    /// strategy, state, cache and sandbox); the flags below still apply on top.
    #[arg(long, value_name = "FILE", requires = "name")]
    pub file: Option<PathBuf>,
    /// The sync to run from --file.
    #[arg(value_name = "NAME", requires = "file")]
    pub name: Option<String>,
    /// Source name, e.g. source-faker.
    #[arg(
        long,
        value_name = "NAME",
        required_unless_present = "file",
        conflicts_with = "file"
    )]
    pub source: Option<String>,
    /// Source config: a JSON file path, or inline JSON.
    #[arg(
        long,
        value_name = "CFG",
        required_unless_present = "file",
        conflicts_with = "file"
    )]
    pub source_config: Option<String>,
    /// Run the source from this local executable.
    #[arg(long, value_name = "PATH")]
    pub source_local_executable: Option<PathBuf>,
    /// Run the source from this WebAssembly command component, sandboxed.
    #[arg(long, value_name = "PATH")]
    pub source_wasm: Option<PathBuf>,
    /// Run the source's Docker image (no value: airbyte/<SOURCE>:<version>).
    #[arg(long, value_name = "IMAGE", num_args = 0..=1, default_missing_value = "")]
    pub source_docker_image: Option<String>,
    /// Install the source from this pip requirement or URL into its own venv.
    #[arg(long, value_name = "URL")]
    pub source_pip_url: Option<String>,
    /// The source version wanted.
    #[arg(long, value_name = "V")]
    pub source_version: Option<String>,
    /// Destination name.
    #[arg(
        long,
        value_name = "NAME",
        required_unless_present = "file",
        conflicts_with = "file"
    )]
    pub destination: Option<String>,
    /// Destination config: a JSON file path, or inline JSON.
    #[arg(
        long,
        value_name = "CFG",
        required_unless_present = "file",
        conflicts_with = "file"
    )]
    pub destination_config: Option<String>,
    /// Who the destination is, for its stored states and positions. Default: its
    /// name and a fingerprint of its config without secrets (and of --local-root),
    /// so another folder or database starts from nothing. Set it to keep history
    /// across a config change.
    #[arg(long, value_name = "ID")]
    pub destination_id: Option<String>,
    /// What the source's states and cache log are filed under. Default: its name.
    /// Give one to each of two sources of one connector that read different
    /// things (two databases), or their states would be one.
    #[arg(long, value_name = "ID")]
    pub source_id: Option<String>,

    /// Only these streams (comma-separated). Default: all.
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    pub streams: Vec<String>,
    /// How records land: auto (merge with a primary key, append with a cursor,
    /// else replace), append, replace, merge.
    #[arg(long, value_enum, default_value_t = StrategyArg::Auto)]
    pub strategy: StrategyArg,
    /// Ignore stored state: read everything.
    #[arg(long)]
    pub full_refresh: bool,
    /// Stream the source straight into the destination, with no cache.
    #[arg(long)]
    pub no_cache: bool,
    /// The read cache. Default: $AIRLOCK_HOME/cache/default.sqlite.
    #[arg(long, value_name = "PATH", conflicts_with = "no_cache")]
    pub cache_path: Option<PathBuf>,
    /// State database: a SQLite file, or a postgres:// URL shared by many machines.
    /// Default: $AIRLOCK_HOME/state.db.
    #[arg(long, value_name = "PATH")]
    pub state_db: Option<PathBuf>,
    /// Neither read nor store state.
    #[arg(long, conflicts_with = "state_db")]
    pub no_state: bool,
    /// When another run holds this sync's lease (in the state database), wait for
    /// it instead of stopping.
    #[arg(long)]
    pub wait: bool,
    /// Seconds a run's lease on the sync lasts unless renewed (renewed every third
    /// of it); a run that misses its renewals commits nothing more.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub lease_secs: u64,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    #[allow(missing_docs, reason = "flattened")]
    pub executor: ExecutorFlags,
}

/// `airlock write`.
#[derive(Debug, Args)]
pub struct WriteArgs {
    /// Destination name (not with --noop).
    #[arg(required_unless_present = "noop", conflicts_with = "noop")]
    pub destination: Option<String>,
    /// Write into the built-in no-op destination (WASM dev-null, SILENT).
    #[arg(long)]
    pub noop: bool,
    /// Config: a JSON file path, or inline JSON.
    #[arg(long, value_name = "CFG", required_unless_present = "noop")]
    pub config: Option<String>,
    /// Configured catalog: a JSON file path, or inline JSON.
    #[arg(long, value_name = "CAT")]
    pub catalog: String,
    /// Messages to write, one JSON object per line; `-` is stdin.
    #[arg(long, value_name = "FILE", default_value = "-")]
    pub input: String,
    /// State database: a SQLite file, or a postgres:// URL shared by many machines.
    /// Default: $AIRLOCK_HOME/state.db.
    #[arg(long, value_name = "PATH")]
    pub state_db: Option<PathBuf>,
    /// Do not persist confirmed states.
    #[arg(long, conflicts_with = "state_db")]
    pub no_state: bool,
    /// The source name states are stored under.
    #[arg(long, value_name = "NAME", default_value = "input")]
    pub source_name: String,
    /// Who the destination is, for its stored states and positions. Default: its
    /// name and a fingerprint of its config without secrets (and of --local-root),
    /// so another folder or database starts from nothing. Set it to keep history
    /// across a config change.
    #[arg(long, value_name = "ID")]
    pub destination_id: Option<String>,

    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Longest accepted input line, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = airlock::protocol::DEFAULT_MAX_LINE_BYTES)]
    pub max_line_bytes: usize,
    /// Seconds the destination may refuse input before the write fails.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    pub stall_timeout: u64,
    #[command(flatten)]
    #[allow(missing_docs, reason = "flattened")]
    pub executor: ExecutorFlags,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn write_takes_the_documented_flags() {
        let cli = Cli::try_parse_from([
            "airlock",
            "write",
            "destination-dev-null",
            "--config",
            "{}",
            "--catalog",
            "c.json",
            "--input",
            "m.jsonl",
            "--state-db",
            "s.db",
            "--json",
            "--local-executable",
            "/bin/x",
            "--version",
            "1.2.3",
        ])
        .expect("parses");
        let Command::Write(args) = cli.command else {
            panic!("write")
        };
        assert_eq!(args.input, "m.jsonl");
        assert!(args.json);
        assert_eq!(
            args.executor.local_executable,
            Some(PathBuf::from("/bin/x"))
        );
        assert_eq!(args.executor.connector_version.as_deref(), Some("1.2.3"));
    }

    #[test]
    fn write_reads_stdin_by_default_and_refuses_state_db_with_no_state() {
        let cli =
            Cli::try_parse_from(["airlock", "write", "d", "--config", "{}", "--catalog", "{}"])
                .expect("parses");
        let Command::Write(args) = cli.command else {
            panic!("write")
        };
        assert_eq!(args.input, "-");
        assert!(
            Cli::try_parse_from([
                "airlock",
                "write",
                "d",
                "--config",
                "{}",
                "--catalog",
                "{}",
                "--no-state",
                "--state-db",
                "x"
            ])
            .is_err()
        );
    }

    #[test]
    fn check_requires_a_config() {
        assert!(Cli::try_parse_from(["airlock", "check", "d"]).is_err());
        assert!(Cli::try_parse_from(["airlock", "check", "d", "--config", "{}"]).is_ok());
    }

    #[test]
    fn local_root_reaches_the_connector_environment() {
        let flags = ExecutorFlags {
            local_root: Some(PathBuf::from("/tmp/root")),
            ..ExecutorFlags::default()
        };
        let options = flags.options().expect("options");
        assert!(
            options
                .env
                .contains(&("AIRLOCK_LOCAL_ROOT".into(), "/tmp/root".into()))
        );
        assert_eq!(
            options.policy.expect("policy").local_root(),
            Some(std::path::Path::new("/tmp/root"))
        );
    }

    #[test]
    fn sandbox_flags_override_the_policy_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("p.toml");
        std::fs::write(&file, "memory_limit_mib = 64\nidle_timeout_secs = 9\n").expect("write");
        let cli = Cli::try_parse_from([
            "airlock",
            "spec",
            "d",
            "--policy",
            file.to_str().expect("utf8"),
            "--memory-limit",
            "128",
            "--deadline",
            "60",
        ])
        .expect("parses");
        let Command::Spec(args) = cli.command else {
            panic!("spec")
        };
        let policy = args.executor.policy().expect("policy");
        assert_eq!(policy.memory_limit(), 128 * 1024 * 1024, "the flag wins");
        assert_eq!(
            policy.idle_timeout_value(),
            Duration::from_secs(9),
            "the file applies"
        );
        assert_eq!(policy.deadline_value(), Duration::from_secs(60));
    }

    #[test]
    fn write_noop_needs_no_destination_or_config() {
        let cli =
            Cli::try_parse_from(["airlock", "write", "--noop", "--catalog", "{}"]).expect("parses");
        let Command::Write(args) = cli.command else {
            panic!("write")
        };
        assert!(args.noop && args.destination.is_none());
        assert!(
            Cli::try_parse_from(["airlock", "write", "d", "--noop", "--catalog", "{}"]).is_err()
        );
    }

    #[test]
    fn limits_too_large_for_their_unit_are_refused_naming_the_flag() {
        for flag in [
            "--memory-limit",
            "--idle-timeout",
            "--deadline",
            "--max-output-mib",
            "--max-log-mib",
        ] {
            let cli = Cli::try_parse_from(["airlock", "spec", "d", flag, "18446744073709551615"])
                .expect("parses");
            let Command::Spec(args) = cli.command else {
                panic!("spec")
            };
            let error = args.executor.policy().expect_err(flag);
            assert!(
                error.starts_with(flag) && error.contains("too large"),
                "{error}"
            );
        }
        for cpus in ["-1", "NaN", "1e300"] {
            let flag = format!("--cpus={cpus}");
            let cli = Cli::try_parse_from(["airlock", "spec", "d", &flag]).expect("parses");
            let Command::Spec(args) = cli.command else {
                panic!("spec")
            };
            let error = args.executor.options().expect_err(cpus);
            assert!(error.starts_with("--cpus"), "{error}");
        }
    }
}
