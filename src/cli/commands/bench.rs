//! `airlock bench`: write-loop throughput, measured side by side in one run.
//!
//! Owns the synthetic faker-like input (records of about 300 bytes, a STATE every
//! 10 000 records) and the cases; `--sync` measures whole syncs from the built-in
//! faker instead. Figures are ratios between cases of the same run;
//! nothing here asserts a time.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use clap::Args;
use serde_json::json;

use airlock::executor::docker::{DockerExecutor, DockerOptions, DockerStdio};
use airlock::executor::process::ProcessExecutor;
use airlock::executor::sandbox::SandboxPolicy;
use airlock::executor::wasm::{WasmExecutor, WasmSource};
use airlock::protocol::{ConfiguredAirbyteCatalog, LinePeek, LineReader, peek_line};
use airlock::write::WriteJob;

/// `airlock bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Records to send through each case.
    #[arg(long, default_value_t = 1_000_000)]
    pub records: u64,
    /// The native local-json destination. Default: beside the airlock binary, else
    /// on PATH.
    #[arg(long, value_name = "PATH")]
    pub local_json: Option<PathBuf>,
    /// Input batch size in bytes for the write loop (the WASM batch bound).
    #[arg(long, default_value_t = 256 * 1024)]
    pub batch_bytes: usize,
    /// The native dev-null destination. Default: `destination-dev-null` beside the
    /// airlock binary, else on PATH.
    #[arg(long, value_name = "PATH")]
    pub dev_null: Option<PathBuf>,
    /// Print the table as JSON lines.
    #[arg(long)]
    pub json: bool,
    /// A folder with `airlock:destination@0.1.0` builds of dev-null and
    /// local-json (`destination_dev_null.wasm`, `destination_local_json.wasm`), for
    /// the 0.1.0 rows. Default: `target/plugins-v0-1/wasm32-wasip2/plugin` beside
    /// the binary's `target/`; the rows are skipped when it has none.
    #[arg(long, value_name = "DIR")]
    pub wasm_v0_1: Option<PathBuf>,
    /// Measure syncs instead: the built-in source-faker into the WASM dev-null and
    /// local-json, with the read cache on and off.
    #[arg(long)]
    pub sync: bool,
    /// Measure the state store instead: the latency of one commit of a confirmed
    /// state (as the write loop makes it), SQLite against the PostgreSQL at this
    /// URL when given. `--records` commits each.
    #[arg(long, value_name = "POSTGRES_URL", num_args = 0..=1, default_missing_value = "")]
    pub state_commits: Option<String>,
}

/// Records between two STATE messages in the synthetic input.
pub const STATE_EVERY: u64 = 10_000;

/// `n` faker-like `users` records of about 300 bytes each, with a STREAM state every
/// [`STATE_EVERY`] records and at the end, as newline-delimited Airbyte messages.
pub fn synthetic_input(n: u64) -> Vec<u8> {
    const FIRST: [&str; 8] = [
        "Ada", "Grace", "Linus", "Barbara", "Ken", "Margaret", "Dennis", "Frances",
    ];
    const CITY: [&str; 6] = ["Lisbon", "Osaka", "Nairobi", "Lima", "Oslo", "Perth"];
    let mut out = Vec::with_capacity(n as usize * 310);
    for i in 0..n {
        let name = FIRST[(i % 8) as usize];
        let city = CITY[(i % 6) as usize];
        let line = format!(
            concat!(
                r#"{{"type":"RECORD","record":{{"stream":"users","data":{{"id":{i},"name":"{name} {i}","#,
                r#""email":"{lower}.{i}@example.com","age":{age},"address":{{"city":"{city}","zip":"{zip:05}"}},"#,
                r#""created_at":"2024-01-01T00:00:00+00:00","updated_at":"2024-06-{day:02}T12:00:00+00:00"}},"#,
                r#""emitted_at":1700000000000}}}}"#
            ),
            i = i,
            name = name,
            lower = name.to_lowercase(),
            age = 18 + i % 60,
            city = city,
            zip = i % 100_000,
            day = 1 + i % 28,
        );
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
        if (i + 1) % STATE_EVERY == 0 || i + 1 == n {
            let state = json!({"type":"STATE","state":{"type":"STREAM","stream":{"stream_descriptor":{"name":"users"},"stream_state":{"updated_at": i}},"sourceStats":{"recordCount": STATE_EVERY as f64}}});
            out.extend_from_slice(state.to_string().as_bytes());
            out.push(b'\n');
        }
    }
    out
}

/// The catalog of [`synthetic_input`]: one `users` stream, append.
pub fn synthetic_catalog() -> ConfiguredAirbyteCatalog {
    serde_json::from_value(json!({"streams":[{
        "stream":{"name":"users","json_schema":{"type":"object"},"supported_sync_modes":["full_refresh","incremental"]},
        "sync_mode":"incremental","destination_sync_mode":"append","cursor_field":["updated_at"],"primary_key":[["id"]]
    }]}))
    .unwrap_or_default()
}

/// One measured case.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CaseResult {
    /// What ran.
    pub case: String,
    /// Records through.
    pub records: u64,
    /// Bytes through.
    pub bytes: u64,
    /// Wall seconds.
    pub secs: f64,
}

impl CaseResult {
    /// Records per second.
    pub fn records_per_sec(&self) -> f64 {
        self.records as f64 / self.secs.max(1e-9)
    }
    /// MB (10^6 bytes) per second.
    pub fn megabytes_per_sec(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.secs.max(1e-9)
    }
}

/// Framing and peeking alone, in-process: the floor under every executor.
pub async fn parse_only(input: &[u8]) -> anyhow::Result<CaseResult> {
    let started = Instant::now();
    let mut reader = LineReader::new(input, airlock::protocol::DEFAULT_MAX_LINE_BYTES);
    let mut buf = Vec::with_capacity(4096);
    let mut records = 0u64;
    loop {
        buf.clear();
        let Some(range) = reader.read_line_into(&mut buf).await? else {
            break;
        };
        if let LinePeek::Record { .. } = peek_line(&buf[range]) {
            records += 1;
        }
    }
    Ok(CaseResult {
        case: "framing + peek, in-process".into(),
        records,
        bytes: input.len() as u64,
        secs: started.elapsed().as_secs_f64(),
    })
}

/// The same destination code called in-process, with no executor and no loop: the
/// ceiling for every packaging of it.
pub fn in_process<D: airlock_plugin_sdk::Destination>(
    case: &str,
    destination: &D,
    config: serde_json::Value,
    input: &[u8],
) -> anyhow::Result<CaseResult> {
    let catalog = airlock_plugin_sdk::ConfiguredCatalog::from_json(
        serde_json::to_string(&synthetic_catalog())?.as_bytes(),
    )?;
    let started = Instant::now();
    let mut session = airlock_plugin_sdk::WriteSession::open(
        destination,
        &config,
        &catalog,
        &airlock_plugin_sdk::Context::native(),
    )
    .map_err(|e| anyhow::anyhow!("{case}: {}", e.message))?;
    let mut out = Vec::new();
    let mut records = 0u64;
    for line in input.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        records += u64::from(line.starts_with(br#"{"type":"RECORD""#));
        session
            .push_line(line, &mut out)
            .map_err(|e| anyhow::anyhow!("{case}: {}", e.message))?;
        out.clear();
    }
    session
        .finish(&mut out)
        .map_err(|e| anyhow::anyhow!("{case}: {}", e.message))?;
    Ok(CaseResult {
        case: case.into(),
        records,
        bytes: input.len() as u64,
        secs: started.elapsed().as_secs_f64(),
    })
}

/// The write loop into `executor`'s destination, with `config`.
pub async fn through_executor(
    case: &str,
    executor: &dyn airlock::executor::Executor,
    config: serde_json::Value,
    input: &[u8],
    batch_bytes: usize,
) -> anyhow::Result<CaseResult> {
    let started = Instant::now();
    let options = airlock::write::WriteOptions {
        batch_bytes,
        ..Default::default()
    };
    let result = WriteJob::new(executor, config, synthetic_catalog())
        .options(options)
        .input(std::io::Cursor::new(input.to_vec()))
        .run()
        .await
        .with_context(|| format!("bench case {case}"))?;
    anyhow::ensure!(
        result.records_confirmed == result.records_sent,
        "bench case {case}: only {} of {} records confirmed",
        result.records_confirmed,
        result.records_sent
    );
    Ok(CaseResult {
        case: case.into(),
        records: result.records_sent,
        bytes: result.bytes_sent,
        secs: started.elapsed().as_secs_f64(),
    })
}

/// `target/plugins-v0-1/wasm32-wasip2/plugin` of the `target/` the binary runs from.
fn default_v0_1_dir() -> PathBuf {
    let target = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| PathBuf::from("target"));
    target.join("plugins-v0-1/wasm32-wasip2/plugin")
}

fn native_plugin(name: &str) -> Option<PathBuf> {
    let beside = std::env::current_exe().ok()?.with_file_name(name);
    if beside.is_file() {
        return Some(beside);
    }
    airlock::registry::find_on_path(name)
}

/// Median wall time of `airlock spec destination-dev-null` (built-in, warm compile
/// cache) over `runs` runs, in milliseconds.
///
/// # Errors
/// When the spec command fails.
pub fn spec_latency_ms(runs: usize) -> anyhow::Result<f64> {
    let exe = std::env::current_exe()?;
    let mut times = Vec::with_capacity(runs);
    for i in 0..=runs {
        let started = Instant::now();
        let status = std::process::Command::new(&exe)
            .args(["spec", "destination-dev-null"])
            .stdout(std::process::Stdio::null())
            .status()?;
        anyhow::ensure!(status.success(), "airlock spec failed");
        if i > 0 {
            times.push(started.elapsed().as_secs_f64() * 1000.0); // the first run warms the cache
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// The local-json image built by scripts/package-docker.sh, if an engine has it,
/// with its stdio over `stdio`.
async fn docker_local_json(
    policy: SandboxPolicy,
    stdio: DockerStdio,
) -> Result<DockerExecutor, String> {
    let image = "airlock/destination-local-json:dev";
    let docker = airlock::executor::docker::connect("bench")
        .await
        .map_err(|e| e.to_string())?;
    docker
        .inspect_image(image)
        .await
        .map_err(|_| format!("no image {image}; build it with scripts/package-docker.sh"))?;
    Ok(DockerExecutor::new(
        "destination-local-json",
        image,
        policy,
        DockerOptions {
            stdio,
            ..DockerOptions::default()
        },
    ))
}

/// One sync of `records` faker users into `destination`: with no cache, or through
/// `cache` (the default path, where the destination follows the read slice by slice).
async fn sync_case(
    case: &str,
    records: u64,
    destination: &airlock::Destination,
    cache: Option<std::sync::Arc<airlock::cache::Cache>>,
) -> anyhow::Result<CaseResult> {
    let source = faker(records)?;
    // Compiling the components and discovery are not the part measured.
    source.discover().await?;
    destination.spec().await?;
    let started = Instant::now();
    let job = destination.write(&source).streams(&["users"]);
    let job = match cache {
        Some(cache) => job.cache(cache),
        None => job.no_cache(),
    };
    let result = all_confirmed(case, records, job).await?;
    Ok(CaseResult {
        case: case.into(),
        records,
        bytes: result.write.bytes_sent,
        secs: started.elapsed().as_secs_f64(),
    })
}

/// A read into `cache`, then its replay into `destination`, one after the other:
/// the two parts of a cached sync, each timed on its own.
async fn read_then_replay(
    case: &str,
    records: u64,
    destination: &airlock::Destination,
    cache: std::sync::Arc<airlock::cache::Cache>,
) -> anyhow::Result<Vec<CaseResult>> {
    let source = faker(records)?;
    source.discover().await?;
    destination.spec().await?;
    let options = airlock::source::ReadOptions {
        streams: Some(vec!["users".into()]),
        ..Default::default()
    };
    let started = Instant::now();
    let read = source.read_with(&cache, options).await?;
    let read_secs = started.elapsed().as_secs_f64();
    let replay_started = Instant::now();
    let result = all_confirmed(case, records, destination.write(&read)).await?;
    let bytes = result.write.bytes_sent;
    Ok(vec![
        CaseResult {
            case: format!("{case}: the read into the cache alone"),
            records,
            bytes,
            secs: read_secs,
        },
        CaseResult {
            case: format!("{case}: the replay from the cache alone"),
            records,
            bytes,
            secs: replay_started.elapsed().as_secs_f64(),
        },
    ])
}

/// Runs `job`, which must confirm all `records`.
async fn all_confirmed(
    case: &str,
    records: u64,
    job: airlock::sync::SyncJob<'_>,
) -> anyhow::Result<airlock::sync::SyncResult> {
    let result = job
        .run()
        .await
        .with_context(|| format!("bench case {case}"))?;
    anyhow::ensure!(
        result.write.records_confirmed == records,
        "bench case {case}: {} of {records} records confirmed",
        result.write.records_confirmed
    );
    Ok(result)
}

/// The built-in faker, `records` users.
fn faker(records: u64) -> anyhow::Result<airlock::source::Source> {
    Ok(airlock::source::get_source("source-faker")
        .config(json!({"count": records, "seed": 1}))
        .build()?)
}

/// The built-in faker alone: its output read and dropped.
async fn faker_alone(records: u64) -> anyhow::Result<CaseResult> {
    let mut source = airlock::source::get_source("source-faker")
        .config(json!({"count": records, "seed": 1}))
        .build()?;
    source.select_streams(&["users"]).await?;
    let catalog = source
        .configured_catalog(airlock::source::WriteStrategy::Append, true)
        .await?;
    let started = Instant::now();
    let mut stream = source.read_stream(catalog, None).await?;
    let bytes = tokio::io::copy(&mut stream.reader, &mut tokio::io::sink()).await?;
    stream.session.exit.await?;
    Ok(CaseResult {
        case: "source-faker (WASM command) alone, output dropped".into(),
        records,
        bytes,
        secs: started.elapsed().as_secs_f64(),
    })
}

/// The sync cases: the built-in faker into the built-in WASM destinations.
///
/// # Errors
/// When a case fails.
pub async fn run_sync(args: &BenchArgs) -> anyhow::Result<()> {
    let scratch = tempfile::tempdir()?;
    let policy = SandboxPolicy::new().allow_local_root(scratch.path());
    let destination = |name: &str, config: serde_json::Value| {
        let bytes = airlock::registry::builtin(name).unwrap_or_default();
        airlock::Destination::from_executor(
            name,
            Box::new(WasmExecutor::new(
                name,
                WasmSource::Builtin(bytes),
                policy.clone(),
            )),
            Some(config),
            None,
        )
    };
    let cache =
        |name: &str| airlock::cache::Cache::open(scratch.path().join(format!("{name}.sqlite")));
    let n = args.records;
    let mut rows = vec![faker_alone(n).await?];
    let mut ratios = Vec::new();
    for (label, name, config) in [
        (
            "dev-null",
            "destination-dev-null",
            std::array::from_fn(
                |_| json!({"test_destination": {"test_destination_type": "SILENT"}}),
            ),
        ),
        (
            "local-json",
            "destination-local-json",
            [
                json!({"destination_path": "/local/no-cache"}),
                json!({"destination_path": "/local/cache"}),
                json!({"destination_path": "/local/parts"}),
            ],
        ),
    ] {
        let [no_cache, cached, parts] = config.map(|config| destination(name, config));
        let streamed = sync_case(
            &format!("faker → WASM {label}, no cache"),
            n,
            &no_cache,
            None,
        )
        .await?;
        let through = sync_case(
            &format!("faker → WASM {label}, cache (the default)"),
            n,
            &cached,
            Some(cache(&format!("{label}-sync"))?),
        )
        .await?;
        ratios.push(format!(
            "WASM {label}: a cached sync runs at {:.2}× the no-cache sync",
            through.records_per_sec() / streamed.records_per_sec()
        ));
        rows.push(streamed);
        rows.push(through);
        rows.extend(
            read_then_replay(
                &format!("faker → WASM {label}, cache"),
                n,
                &parts,
                cache(&format!("{label}-parts"))?,
            )
            .await?,
        );
    }
    print_table(&rows, args.json);
    if !args.json {
        println!();
        for ratio in ratios {
            println!("{ratio}");
        }
    }
    Ok(())
}

/// Runs every case and prints the table.
///
/// # Errors
/// When a case fails or a plugin binary is missing.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.sync {
        return run_sync(&args).await;
    }
    if let Some(url) = &args.state_commits {
        return state_commits(args.records.min(100_000), url, args.json);
    }
    let input = synthetic_input(args.records);
    let dev_null = args.dev_null.clone().or_else(|| native_plugin("destination-dev-null")).context(
        "no destination-dev-null binary found; build it (cargo build --release -p destination-dev-null) or pass --dev-null PATH",
    )?;
    let local_json = args.local_json.clone().or_else(|| native_plugin("destination-local-json")).context(
        "no destination-local-json binary found; build it (cargo build --release -p destination-local-json) or pass --local-json PATH",
    )?;
    let scratch = tempfile::tempdir()?;
    let silent = json!({"test_destination": {"test_destination_type": "SILENT"}});
    let host_path = |name: &str| json!({"destination_path": scratch.path().join(name)});
    let policy = SandboxPolicy::new().allow_local_root(scratch.path());
    let wasm = |name: &str| {
        let bytes = airlock::registry::builtin(name).unwrap_or_default();
        WasmExecutor::new(name, WasmSource::Builtin(bytes), policy.clone())
    };
    let batch = args.batch_bytes;
    let v0_1_dir = args.wasm_v0_1.clone().unwrap_or_else(default_v0_1_dir);

    let mut rows = vec![parse_only(&input).await?];
    rows.push(in_process(
        "dev-null, in-process (no executor)",
        &destination_dev_null::DevNull,
        silent.clone(),
        &input,
    )?);
    rows.push(
        through_executor(
            "dev-null, native process",
            &ProcessExecutor::new("destination-dev-null", &dev_null),
            silent.clone(),
            &input,
            batch,
        )
        .await?,
    );
    rows.push(
        through_executor(
            "dev-null, WASM component (0.2.0, framed)",
            &wasm("destination-dev-null"),
            silent.clone(),
            &input,
            batch,
        )
        .await?,
    );
    let v0_1 = |name: &str| {
        let file = v0_1_dir.join(format!("{}.wasm", name.replace('-', "_")));
        file.is_file()
            .then(|| WasmExecutor::new(name, WasmSource::File(file), policy.clone()))
    };
    if let Some(executor) = v0_1("destination-dev-null") {
        rows.push(
            through_executor(
                "dev-null, WASM component (0.1.0)",
                &executor,
                silent.clone(),
                &input,
                batch,
            )
            .await?,
        );
    }
    rows.push(in_process(
        "local-json, in-process (no executor)",
        &destination_local_json::LocalJson,
        host_path("in-process"),
        &input,
    )?);
    rows.push(
        through_executor(
            "local-json, native process",
            &ProcessExecutor::new("destination-local-json", &local_json),
            host_path("process"),
            &input,
            batch,
        )
        .await?,
    );
    rows.push(
        through_executor(
            "local-json, WASM component (0.2.0, framed)",
            &wasm("destination-local-json"),
            json!({"destination_path": "/local/wasm"}),
            &input,
            batch,
        )
        .await?,
    );
    if let Some(executor) = v0_1("destination-local-json") {
        rows.push(
            through_executor(
                "local-json, WASM component (0.1.0)",
                &executor,
                json!({"destination_path": "/local/wasm-v0-1"}),
                &input,
                batch,
            )
            .await?,
        );
    } else {
        eprintln!(
            "bench: 0.1.0 rows skipped: no builds in {} (cargo build --profile plugin --target \
             wasm32-wasip2 --lib -p destination-dev-null -p destination-local-json --features \
             airlock-plugin-sdk/abi-v0-1 --target-dir target/plugins-v0-1)",
            v0_1_dir.display()
        );
    }
    let mut docker_fixed = Vec::new();
    for (case, stdio, dir) in [
        (
            "local-json, Docker image, pipes (airlock-init, Unix socket)",
            DockerStdio::Auto,
            "/local/docker-pipes",
        ),
        (
            "local-json, Docker image, the engine's attach stream",
            DockerStdio::Attach,
            "/local/docker-attach",
        ),
    ] {
        match docker_local_json(policy.clone(), stdio).await {
            Ok(docker) => {
                let row = through_executor(
                    case,
                    &docker,
                    json!({ "destination_path": dir }),
                    &input,
                    batch,
                )
                .await?;
                // A container's start and stop cost the same for any input: timed
                // alone (one record), so the stream's own rate can be told apart.
                let alone = through_executor(
                    case,
                    &docker,
                    json!({ "destination_path": format!("{dir}-one") }),
                    &synthetic_input(1),
                    batch,
                )
                .await?;
                docker_fixed.push((case, row.records, row.secs, alone.secs));
                rows.push(row);
            }
            Err(reason) => {
                eprintln!("bench: Docker cases skipped: {reason}");
                break;
            }
        }
    }
    print_table(&rows, args.json);
    let native = rows
        .iter()
        .find(|r| r.case == "local-json, native process")
        .map(|r| r.records_per_sec());
    for (case, records, secs, fixed) in docker_fixed {
        let streaming = records as f64 / (secs - fixed).max(1e-9);
        let ratio = native.map_or(String::new(), |n| {
            format!(", {:.2}x the native process", streaming / n)
        });
        let line = format!(
            "{case}: the container's start and stop alone (one record) took {fixed:.2} s; \
             without them, {streaming:.0} records/s{ratio}"
        );
        if args.json {
            println!(
                "{}",
                json!({"case": case, "start_stop_secs": fixed, "records_per_sec_without_start_stop": streaming})
            );
        } else {
            println!("{line}");
        }
    }
    let latency = spec_latency_ms(10)?;
    if args.json {
        println!(
            "{}",
            json!({"case": "airlock spec destination-dev-null (warm cache), median ms", "ms": latency})
        );
    } else {
        println!(
            "\n`airlock spec destination-dev-null`, warm compile cache: median {latency:.1} ms over 10 runs"
        );
    }
    Ok(())
}

/// Prints rows with their ratio to the first row.
pub fn print_table(rows: &[CaseResult], json: bool) {
    let base = rows.first().map_or(1.0, CaseResult::records_per_sec);
    if json {
        for row in rows {
            let mut value = serde_json::to_value(row).unwrap_or_default();
            value["records_per_sec"] = json!(row.records_per_sec());
            value["mb_per_sec"] = json!(row.megabytes_per_sec());
            value["ratio_to_first"] = json!(row.records_per_sec() / base);
            println!("{value}");
        }
        return;
    }
    println!("| case | records | records/s | MB/s | ratio to first |");
    println!("|---|---:|---:|---:|---:|");
    for row in rows {
        println!(
            "| {} | {} | {:.0} | {:.1} | {:.2} |",
            row.case,
            row.records,
            row.records_per_sec(),
            row.megabytes_per_sec(),
            row.records_per_sec() / base
        );
    }
}

/// `--state-commits`: per-commit latency of the state stores (median and 99th
/// percentile), each commit one STREAM state, fenced by a lease as a sync's are.
fn state_commits(commits: u64, pg_url: &str, json: bool) -> anyhow::Result<()> {
    use airlock::protocol::{AirbyteStateMessage, StreamDescriptor};
    use airlock::state::{LeaseOutcome, StateStore, SyncKey};
    let scratch = tempfile::tempdir()?;
    let mut stores = vec![(
        "SQLite (WAL, synchronous=NORMAL), local file".to_owned(),
        StateStore::open(scratch.path().join("state.db"))?,
    )];
    if !pg_url.is_empty() {
        stores.push((
            format!("PostgreSQL, {}", StateStore::connect(pg_url)?.location()),
            StateStore::connect(pg_url)?,
        ));
    }
    for (name, store) in stores {
        let key = SyncKey::new("bench-source", format!("bench-{}", std::process::id()));
        let LeaseOutcome::Acquired(lease) = store.acquire_lease(
            &format!("bench {}", std::process::id()),
            "bench",
            std::time::Duration::from_secs(600),
        )?
        else {
            anyhow::bail!("the bench's lease is held");
        };
        let mut times = Vec::with_capacity(commits as usize);
        for i in 0..commits.max(1) {
            let state = AirbyteStateMessage::stream(
                StreamDescriptor::new("users"),
                json!({"cursor": i, "updated_at": "2026-12-07T00:00:00Z"}),
            );
            let started = Instant::now();
            store.commit_fenced(&key, std::slice::from_ref(&state), &lease)?;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        store.release_lease(&lease)?;
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        let p99 = times[(times.len() * 99 / 100).min(times.len() - 1)];
        if json {
            println!(
                "{}",
                json!({"case": name, "commits": times.len(), "median_ms": median, "p99_ms": p99})
            );
        } else {
            println!(
                "{name}: {} commits, median {median:.3} ms, p99 {p99:.3} ms",
                times.len()
            );
        }
    }
    Ok(())
}
