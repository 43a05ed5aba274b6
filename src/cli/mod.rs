//! `cli`: the `airlock` command line, a part of the binary and not of the library.
//!
//! [`args`] holds the clap structs and turns flags into library options;
//! [`commands`] has one module per command, each calling the library; [`report`]
//! prints results and maps errors to exit codes (0 ok, 1 the connector failed, 2 bad
//! usage or bad input, 130 interrupted); [`logging`] sets up tracing on stderr;
//! [`progress`] draws the live panel. The library reports rules and causes; only
//! this module speaks of flags and exit codes. It holds no sync logic of its own.

mod args;
mod commands;
mod logging;
mod progress;
mod remedy;
mod report;
mod scaffold;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};
use report::Failure;

/// Parses the process arguments, runs the command and returns its exit code.
pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.verbose, cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("airlock: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    let outcome = runtime.block_on(async {
        tokio::select! {
            outcome = run(cli.command) => outcome,
            _ = tokio::signal::ctrl_c() => {
                // Nothing a connector started may outlive an interrupted run.
                airlock::executor::stop_all().await;
                Err(Failure { error: anyhow::anyhow!("interrupted"), code: 130 })
            }
        }
    });
    match outcome {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("airlock: {}", report::error_text(&failure.error));
            ExitCode::from(failure.code)
        }
    }
}

async fn run(command: Command) -> Result<ExitCode, Failure> {
    match command {
        Command::Spec(args) => commands::spec::run(args).await,
        Command::Discover(args) => commands::discover::run(args).await,
        Command::Plugin(command) => commands::plugin::run(command).await,
        Command::Check(args) => commands::check::run(args).await,
        Command::Write(args) => commands::write::run(args).await,
        Command::Sync(args) => commands::sync::run(args).await,
        Command::Docker(command) => commands::docker::run(command).await,
        Command::K8s(command) => commands::k8s::run(command),
        Command::Bench(args) => commands::bench::run(args)
            .await
            .map(|()| ExitCode::SUCCESS)
            .map_err(|error| Failure { error, code: 1 }),
    }
}
