//! `airlock plugin new` and `airlock plugin test`: the plugin author's commands.
//!
//! Owns their flags and output only; the template is [`crate::cli::scaffold`], the
//! suite [`airlock::conformance`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::build_destination;
use crate::cli::args::ExecutorFlags;
use crate::cli::report::{Failure, usage};
use crate::cli::scaffold::{self, SdkSource};
use airlock::conformance::{Declaration, Reader, ReaderFormat, Suite};

/// `airlock plugin …`.
#[derive(Debug, Subcommand)]
#[allow(
    clippy::large_enum_variant,
    reason = "parsed once per run, never moved in bulk"
)]
pub enum PluginCommand {
    /// Create a destination crate: a small JSON Lines destination that builds as a
    /// native CLI and a WASI component and passes `airlock plugin test`.
    New(NewArgs),
    /// Run the conformance suite against a destination (WASM, Docker or executable).
    Test(TestArgs),
}

/// `airlock plugin new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The plugin's name, e.g. destination-my-files.
    pub name: String,
    /// Create it here (default: ./NAME).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Depend on the SDK at this path (default: the SDK of the airlock source tree
    /// this binary was built from).
    #[arg(long, value_name = "PATH", conflicts_with = "sdk_version")]
    pub sdk_path: Option<PathBuf>,
    /// Depend on this published version of airlock-plugin-sdk instead.
    #[arg(long, value_name = "V")]
    pub sdk_version: Option<String>,
}

/// `airlock plugin test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// The destination's name (with the executor flags, how to run it).
    pub destination: String,
    /// A config `check` accepts: a JSON file path, or inline JSON. Default: the
    /// plugin's declared `x-airlock-conformance.config`.
    #[arg(long, value_name = "CFG")]
    pub config: Option<String>,
    /// How to read back what it wrote: airbyte-raw-jsonl or airbyte-raw-csv.
    /// Default: the plugin's declared reader, else cases that must read back are
    /// not applicable.
    #[arg(long, value_name = "FORMAT")]
    pub reader: Option<String>,
    /// The config field that names the output folder, for --reader.
    #[arg(long, value_name = "FIELD", default_value = "destination_path")]
    pub reader_path_field: String,
    /// Records in the large-batch case.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub records: u64,
    /// Only the cases whose names contain this (repeatable).
    #[arg(long = "case", value_name = "NAME")]
    pub cases: Vec<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    #[allow(missing_docs, reason = "flattened")]
    pub executor: ExecutorFlags,
}

pub(crate) async fn run(command: PluginCommand) -> Result<ExitCode, Failure> {
    match command {
        PluginCommand::New(args) => new(args),
        PluginCommand::Test(args) => test(args).await,
    }
}

fn new(args: NewArgs) -> Result<ExitCode, Failure> {
    let sdk = match (&args.sdk_path, &args.sdk_version) {
        (Some(path), _) => SdkSource::Path(std::path::absolute(path).map_err(usage)?),
        (None, Some(version)) => SdkSource::Version(version.clone()),
        (None, None) => SdkSource::built_from().ok_or_else(|| {
            usage(anyhow::anyhow!(
                "this airlock was not built from a source tree that is still here, so it cannot \
                 find the plugin SDK; pass --sdk-path <airlock>/plugins/sdk or --sdk-version V"
            ))
        })?,
    };
    let folder = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    scaffold::create(&args.name, &folder, &sdk).map_err(usage)?;
    let crate_name = args.name.replace('-', "_");
    println!(
        "created {name} in {dir}\n\nnext:\n  cd {dir}\n  cargo build --release --target wasm32-wasip2\n  \
         airlock plugin test {name} --wasm target/wasm32-wasip2/release/{crate_name}.wasm\n  \
         cargo build --release\n  airlock plugin test {name} --local-executable target/release/{name}",
        name = args.name,
        dir = folder.display(),
    );
    Ok(ExitCode::SUCCESS)
}

async fn test(mut args: TestArgs) -> Result<ExitCode, Failure> {
    // A fresh /local for the suite, unless the user names one.
    let scratch = tempfile::tempdir().map_err(usage)?;
    let local_root = match &args.executor.local_root {
        Some(root) => root.clone(),
        None => {
            args.executor.local_root = Some(scratch.path().to_owned());
            scratch.path().to_owned()
        }
    };
    let destination = build_destination(&args.destination, &args.executor, None)?;
    let declared = match destination.spec().await {
        Ok(spec) => Declaration::from_spec(&serde_json::to_value(spec).unwrap_or_default())
            .map_err(|e| usage(anyhow::anyhow!("{}: {e}", args.destination)))?,
        Err(_) => Declaration::default(), // the spec case reports why
    };
    let config = match (&args.config, declared.config) {
        (Some(arg), _) => airlock::config::read_config_arg(arg).map_err(usage)?,
        (None, Some(config)) => config,
        (None, None) => {
            return Err(usage(anyhow::anyhow!(
                "no config to test {} with: pass --config, or declare x-airlock-conformance.config in its spec",
                args.destination
            )));
        }
    };
    let reader = match &args.reader {
        Some(format) => Some(Reader {
            format: ReaderFormat::parse(format).map_err(|e| usage(anyhow::anyhow!(e)))?,
            path_field: args.reader_path_field.clone(),
        }),
        None => declared.reader,
    };
    let suite = Suite {
        executor: destination.executor(),
        config,
        reader,
        local_root,
        large_batch_records: args.records,
        only: args.cases.clone(),
    };
    let report = suite.run().await;
    if args.json {
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
    } else {
        print!("{}", report.table());
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
