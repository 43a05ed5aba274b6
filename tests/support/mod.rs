//! The harness: real binaries in fresh temp folders.
//!
//! Builds the plugin binaries once per test run (with the same cargo that runs the
//! tests), runs the real `airlock` binary, and writes small fake connectors (shell or
//! Python scripts) for the failure cases a real destination would not produce.

#![allow(dead_code, reason = "each test module uses part of the harness")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared/samples/airbyte-source-faker`.
pub fn faker_samples() -> PathBuf {
    root().join("../shared/samples/airbyte-source-faker")
}

/// Our native plugins and the adversary, as the tests build them once per run.
const NATIVE_PLUGINS: [&str; 5] = [
    "destination-dev-null",
    "destination-local-json",
    "destination-csv",
    "destination-postgres",
    "test-adversary",
];

/// `scripts/package-docker.sh`, building the tests' plugins with the dev profile into
/// `target/native-plugins` (their own folder: a plugin crate is also a cdylib, whose
/// rlib is named without a hash, so building it here with other features into the
/// shared folder would replace the one airlock linked).
fn package_script(extra: &[&str]) -> Command {
    let mut command = Command::new("bash");
    command
        .arg(root().join("scripts/package-docker.sh"))
        .args(extra)
        .args(NATIVE_PLUGINS)
        .env("AIRLOCK_PACKAGE_PROFILE", "dev")
        .env("AIRLOCK_PACKAGE_TAG", "test")
        .env(
            "AIRLOCK_PACKAGE_TARGET_DIR",
            root().join("target/native-plugins"),
        );
    command
}

/// A native plugin binary (`destination-dev-null`, `destination-local-json`, …),
/// built once per test run, statically linked: the Docker images are made of these
/// very files, so one build serves both.
pub fn plugin_bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let status = package_script(&["--build-only"])
            .status()
            .expect("run scripts/package-docker.sh --build-only");
        assert!(status.success(), "building the plugins failed");
        let host = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
            .arg("-vV")
            .output()
            .expect("rustc -vV");
        let host = String::from_utf8_lossy(&host.stdout)
            .lines()
            .find_map(|line| line.strip_prefix("host: ").map(str::to_owned))
            .expect("rustc names its host");
        root()
            .join("target/native-plugins")
            .join(host)
            .join("debug")
    });
    let path = dir.join(name);
    assert!(path.is_file(), "{} was not built", path.display());
    path
}

/// A fresh folder for one test, with an airlock home inside.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    /// A sandbox whose home shares one compile cache of WASM components with
    /// every other test's (`target/test-wasm-cache`): a component is compiled once
    /// per test run, not once per test. The cache's entries are written atomically
    /// and keyed by the component's hash and the engine's settings.
    pub fn new() -> Self {
        let sandbox = Self::isolated();
        let shared = root().join("target/test-wasm-cache");
        std::fs::create_dir_all(&shared).expect("shared compile cache");
        let cache = sandbox.home().join("cache");
        std::fs::create_dir_all(&cache).expect("home/cache");
        #[cfg(unix)]
        std::os::unix::fs::symlink(&shared, cache.join("wasm")).expect("link the compile cache");
        sandbox
    }

    /// A sandbox with a home of its own, compile cache included.
    pub fn isolated() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn home(&self) -> PathBuf {
        self.path().join("home")
    }

    pub fn state_db(&self) -> PathBuf {
        self.home().join("state.db")
    }

    /// Writes `contents` to `name` in the sandbox and returns its path.
    pub fn file(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&path, contents).expect("write file");
        path
    }

    /// Writes an executable script.
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        let path = self.file(name, body);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        path
    }

    /// The `airlock` binary with this sandbox's home.
    pub fn airlock(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_airlock"));
        cmd.env("AIRLOCK_HOME", self.home())
            .env_remove("AIRLOCK_LOG")
            .current_dir(self.path());
        cmd
    }

    /// Runs airlock with `args` and `stdin`.
    pub fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> Run {
        let mut cmd = self.airlock();
        cmd.args(args);
        run_command(cmd, stdin)
    }
}

/// A scripted Python source, written into the sandbox as `name`: it answers
/// `spec` (an object without properties), `check` (succeeded) and `discover`
/// (`streams`: a Python list of AirbyteStream objects), and runs `read`: Python
/// statements with `args`, `arg(flag)`, `config`, `out(message)`, `json`, `sys`
/// and `time` in scope.
pub fn python_source(sb: &Sandbox, name: &str, streams: &str, read: &str) -> PathBuf {
    let read: Vec<String> = read.lines().map(|line| format!("    {line}")).collect();
    sb.script(
        name,
        &format!(
            r#"#!/usr/bin/env python3
import json, sys, time
args = sys.argv[1:]
def out(m): print(json.dumps(m), flush=True)
def arg(name): return args[args.index(name) + 1] if name in args else None
if args[0] == "spec":
    out({{"type": "SPEC", "spec": {{"connectionSpecification": {{"type": "object"}}}}}})
    sys.exit(0)
config = json.load(open(arg("--config"))) if arg("--config") else {{}}
if args[0] == "check":
    out({{"type": "CONNECTION_STATUS", "connectionStatus": {{"status": "SUCCEEDED"}}}})
elif args[0] == "discover":
    out({{"type": "CATALOG", "catalog": {{"streams": {streams}}}}})
elif args[0] == "read":
{read}
"#,
            read = read.join("\n")
        ),
    )
}

/// `airlock sync` of `source` (its name, then its flags) with `source_config` into
/// the built-in local-json under `<sandbox>/root/out`, printing JSON, plus `extra`.
pub fn sync_to_local_json_command(
    sb: &Sandbox,
    source: &[&str],
    source_config: &str,
    extra: &[&str],
) -> Command {
    let root = sb.path().join("root");
    let mut cmd = sb.airlock();
    cmd.args(["sync", "--source"])
        .args(source)
        .args(["--source-config", source_config])
        .args([
            "--destination",
            "destination-local-json",
            "--destination-config",
            r#"{"destination_path":"/local/out"}"#,
            "--local-root",
        ])
        .arg(root)
        .args(extra);
    cmd
}

/// [`sync_to_local_json_command`], run to the end with `--json`.
pub fn sync_to_local_json(
    sb: &Sandbox,
    source: &[&str],
    source_config: &str,
    extra: &[&str],
) -> Run {
    let mut cmd = sync_to_local_json_command(sb, source, source_config, extra);
    cmd.arg("--json");
    run_command(cmd, None)
}

/// Runs a command to the end, feeding `stdin` from a thread.
pub fn run_command(mut cmd: Command, stdin: Option<&[u8]>) -> Run {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let feeder = stdin.map(|bytes| {
        let mut pipe = child.stdin.take().expect("stdin");
        let bytes = bytes.to_vec();
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = pipe.write_all(&bytes);
        })
    });
    let output = child.wait_with_output().expect("wait");
    if let Some(feeder) = feeder {
        let _ = feeder.join();
    }
    Run::from(output)
}

/// A finished run.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Asserts the exit code, showing both streams on failure.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// The last stdout line as JSON (for `--json`).
    pub fn json(&self) -> Value {
        let line = self.stdout.lines().last().unwrap_or_default();
        serde_json::from_str(line).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\n--- stderr\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// A configured catalog with the given streams (name, optional namespace), append.
pub fn catalog(streams: &[(&str, Option<&str>)]) -> String {
    catalog_with_mode(streams, "append")
}

/// A configured catalog with one destination sync mode for every stream.
pub fn catalog_with_mode(streams: &[(&str, Option<&str>)], mode: &str) -> String {
    let streams: Vec<Value> = streams
        .iter()
        .map(|(name, ns)| {
            let mut stream = serde_json::json!({"name": name, "json_schema": {"type": "object"}, "supported_sync_modes": ["full_refresh", "incremental"]});
            if let Some(ns) = ns {
                stream["namespace"] = Value::from(*ns);
            }
            serde_json::json!({"stream": stream, "sync_mode": "full_refresh", "destination_sync_mode": mode})
        })
        .collect();
    serde_json::json!({ "streams": streams }).to_string()
}

/// A RECORD line.
pub fn record(stream: &str, data: Value) -> String {
    serde_json::json!({"type": "RECORD", "record": {"stream": stream, "data": data, "emitted_at": 1_700_000_000_000i64}}).to_string()
}

/// A STREAM STATE line.
pub fn state(stream: &str, cursor: i64) -> String {
    serde_json::json!({"type": "STATE", "state": {"type": "STREAM", "stream": {"stream_descriptor": {"name": stream}, "stream_state": {"cursor": cursor}}}}).to_string()
}

/// Lines joined with newlines, with a final newline.
pub fn lines(lines: &[String]) -> Vec<u8> {
    let mut out = lines.join("\n");
    out.push('\n');
    out.into_bytes()
}

/// The stored states in a state database, as (stream, state JSON) pairs.
pub fn stored_states(db: &Path) -> Vec<(String, Value)> {
    keyed_states(
        db,
        "SELECT stream, state_json FROM stream_state ORDER BY stream",
    )
}

/// The stored GLOBAL and LEGACY states in a state database, as (kind, state JSON).
pub fn stored_pair_states(db: &Path) -> Vec<(String, Value)> {
    keyed_states(db, "SELECT kind, state_json FROM pair_state ORDER BY kind")
}

/// Runs `query` (a key column, then a JSON column) on the state database.
fn keyed_states(db: &Path, query: &str) -> Vec<(String, Value)> {
    let conn = rusqlite::Connection::open(db).expect("open state db");
    let mut stmt = conn.prepare(query).expect("prepare");
    stmt.query_map([], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
    })
    .expect("query")
    .map(|r| {
        let (key, json) = r.expect("row");
        (key, serde_json::from_str(&json).expect("state json"))
    })
    .collect()
}

/// Whether CI demands that optional real components be present.
pub fn required_in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A WASI component built from this workspace for `wasm32-wasip2`. The built-in
/// plugins (`destination_dev_null.wasm`, …, `source-faker.wasm`) are the very
/// files the `airlock` binary embeds, from the folder its build script built them
/// into. The rest — our destinations' command-mode CLIs (`destination-dev-null.wasm`,
/// …) and the test fixtures (`test_adversary.wasm`, `test-adversary.wasm`,
/// `test_wrong_world.wasm`) — are built once per test run with the `fixture`
/// profile (release without LTO) into their own folder, so they never rebuild what
/// the binary carries.
pub fn wasm_artifact(file: &str) -> PathBuf {
    let builtin = Path::new(env!("AIRLOCK_BUILTIN_WASM_DIR")).join(file);
    if builtin.is_file() {
        return builtin;
    }
    static BUILT: OnceLock<()> = OnceLock::new();
    let target = root().join("target/test-plugins");
    BUILT.get_or_init(|| {
        build_wasm_fixtures(
            &target,
            &[
                "-p",
                "test-adversary",
                "-p",
                "test-wrong-world",
                "-p",
                "test-bad-frames",
                "-p",
                "destination-dev-null",
                "-p",
                "destination-local-json",
                "-p",
                "destination-csv",
                "-p",
                "destination-postgres",
            ],
        )
    });
    let path = target.join("wasm32-wasip2/fixture").join(file);
    assert!(path.is_file(), "{} was not built", path.display());
    path
}

/// A destination built as an `airlock:destination@0.1.0` component: the same
/// crate, with the SDK's `abi-v0-1` feature (`destination_dev_null.wasm`,
/// `destination_local_json.wasm`), built once per test run into its own folder
/// (the feature must not reach the other builds).
pub fn wasm_artifact_v0_1(file: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let target = root().join("target/test-plugins-v0-1");
    BUILT.get_or_init(|| {
        build_wasm_fixtures(
            &target,
            &[
                "--lib",
                "-p",
                "destination-dev-null",
                "-p",
                "destination-local-json",
                "--features",
                "airlock-plugin-sdk/abi-v0-1",
            ],
        )
    });
    let path = target.join("wasm32-wasip2/fixture").join(file);
    assert!(path.is_file(), "{} was not built", path.display());
    path
}

/// `cargo build --profile fixture --target wasm32-wasip2 ARGS` into `target`,
/// without the outer build's settings.
fn build_wasm_fixtures(target: &Path, args: &[&str]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root())
        .args(["build", "--profile", "fixture", "--target", "wasm32-wasip2"])
        .args(args)
        .arg("--target-dir")
        .arg(target)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .expect("run cargo build for the wasm test fixtures");
    assert!(
        status.success(),
        "building the wasm test fixtures failed (is the wasm32-wasip2 target installed?)"
    );
}

/// Whether a Docker engine answers (`DOCKER_HOST` or the default socket). With
/// `AIRLOCK_REQUIRE_DOCKER=1` (CI) a missing engine fails the test; otherwise the
/// test says it was skipped.
pub fn docker_ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    let ready = *READY.get_or_init(|| {
        Command::new("docker")
            .arg("info")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if !ready {
        let required = std::env::var("AIRLOCK_REQUIRE_DOCKER").as_deref() == Ok("1");
        assert!(
            !required,
            "AIRLOCK_REQUIRE_DOCKER=1 but no Docker engine answers (start one with scripts/docker-engine.sh)"
        );
        eprintln!(
            "SKIPPED: no Docker engine (set DOCKER_HOST or run scripts/docker-engine.sh start)"
        );
    }
    ready
}

/// Builds the `airlock/<plugin>:test` images once per test run (ours and the
/// adversary), FROM scratch, from the binaries [`plugin_bin`] runs.
pub fn docker_images() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        plugin_bin(NATIVE_PLUGINS[0]);
        let status = package_script(&[])
            .status()
            .expect("run scripts/package-docker.sh");
        assert!(status.success(), "building the test images failed");
    });
}

/// Containers airlock created that still exist.
pub fn airlock_containers() -> usize {
    let out = Command::new("docker")
        .args(["ps", "-a", "-q", "--filter", "label=airlock.managed=true"])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

/// Docker tests run one at a time: they count the engine's airlock containers.
pub fn docker_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The real `source-faker` from PyPI (scripts/setup-python.sh installs it), or
/// `None` with a SKIPPED note; under CI its absence fails the test.
pub fn faker_bin() -> Option<PathBuf> {
    let path = std::env::var_os("AIRLOCK_FAKER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv-faker/bin/source-faker"));
    if path.is_file() {
        return Some(path);
    }
    assert!(
        !required_in_ci(),
        "CI requires the real source-faker at {}: run scripts/setup-python.sh",
        path.display()
    );
    eprintln!(
        "SKIPPED: real source-faker not installed at {} (run scripts/setup-python.sh)",
        path.display()
    );
    None
}

/// The totals of stream `name` (no namespace) in a write or sync `--json` result,
/// whose `streams` is a list of per-stream objects.
pub fn stream_json(result: &Value, name: &str) -> Value {
    result["streams"]
        .as_array()
        .and_then(|streams| {
            streams
                .iter()
                .find(|s| s["name"] == name && s.get("namespace").is_none())
        })
        .cloned()
        .unwrap_or(Value::Null)
}

/// The test PostgreSQL server (`AIRLOCK_TEST_PG_URL`, which `.ci/run` sets from
/// scripts/postgres.sh), or `None` with a SKIPPED note; with `CI=true` its
/// absence fails the test.
pub fn test_postgres() -> Option<PgServer> {
    match std::env::var("AIRLOCK_TEST_PG_URL") {
        Ok(url) if !url.trim().is_empty() => Some(PgServer::parse(url.trim())),
        _ => {
            assert!(
                !required_in_ci(),
                "CI requires a PostgreSQL server: set AIRLOCK_TEST_PG_URL (scripts/postgres.sh start prints it)"
            );
            eprintln!(
                "SKIPPED: no PostgreSQL server (export AIRLOCK_TEST_PG_URL=\"$(bash scripts/postgres.sh start)\")"
            );
            None
        }
    }
}

/// A PostgreSQL server to test against: `postgres://USER:PASSWORD@HOST:PORT/DB`.
#[derive(Debug, Clone)]
pub struct PgServer {
    pub url: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub database: String,
}

impl PgServer {
    fn parse(url: &str) -> Self {
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .expect("AIRLOCK_TEST_PG_URL starts with postgres://");
        let (auth, rest) = rest.split_once('@').expect("USER:PASSWORD@ in the URL");
        let (user, password) = auth.split_once(':').unwrap_or((auth, ""));
        let (hostport, database) = rest.split_once('/').unwrap_or((rest, "postgres"));
        let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "5432"));
        Self {
            url: url.to_owned(),
            host: host.to_owned(),
            port: port.parse().expect("a port in the URL"),
            user: user.to_owned(),
            password: password.to_owned(),
            database: database.to_owned(),
        }
    }

    /// A destination-postgres config for this server, writing into `schema`.
    pub fn config(&self, schema: &str) -> Value {
        serde_json::json!({
            "host": self.host, "port": self.port, "database": self.database,
            "username": self.user, "password": self.password, "schema": schema,
            "ssl_mode": {"mode": "disable"}
        })
    }

    /// Runs `sql` with psql and returns its unaligned, tuples-only output.
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .arg(&self.url)
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .expect("run psql (Debian's postgresql-client)");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}
