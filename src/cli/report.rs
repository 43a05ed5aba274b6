//! Output and exit codes, in one place: how a result is printed (plain or `--json`),
//! and how each library error becomes an exit code — 0 ok, 1 the connector failed,
//! 2 bad usage or bad input, 130 interrupted.

use airlock::DestinationError;
use airlock::executor::ExecutorError;
use airlock::source::SourceError;
use airlock::sync::{SyncError, SyncResult};
use airlock::write::{WriteError, WriteFailure, WriteResult};

/// An error with the exit code it maps to.
/// The text of a failure, printed once: its cause chain, with the library's
/// `fix:` (in the library's terms: settings and policy keys) replaced by the CLI's
/// (in flags) where the CLI knows the remedy.
pub(crate) fn error_text(error: &anyhow::Error) -> String {
    let text = format!("{error:#}");
    match super::remedy::fix_line(error) {
        Some(fix) => {
            let mut lines: Vec<&str> = text
                .lines()
                .filter(|line| !line.starts_with("fix: "))
                .collect();
            lines.push(&fix);
            lines.join("\n")
        }
        None => text,
    }
}

pub(crate) struct Failure {
    pub(crate) error: anyhow::Error,
    pub(crate) code: u8,
}

pub(crate) fn usage(error: impl Into<anyhow::Error>) -> Failure {
    Failure {
        error: error.into(),
        code: 2,
    }
}

pub(crate) fn from_executor(error: ExecutorError) -> Failure {
    let code = if error.is_connector_failure() { 1 } else { 2 };
    Failure {
        error: error.into(),
        code,
    }
}

pub(crate) fn from_destination(error: DestinationError) -> Failure {
    match error {
        DestinationError::Executor(error) => from_executor(error),
        other => usage(other),
    }
}

/// A source's error as a failure: a connector's is exit 1, the user's 2.
pub(crate) fn source_failure(e: SourceError) -> Failure {
    match e {
        SourceError::Executor(e) => from_executor(e),
        other => usage(other),
    }
}

/// Prints what a failed write reached, and its error as a failure: the user's
/// (exit 2) for bad input or a connector that could not run, else the connector's (1).
pub(crate) fn write_failure(WriteError { cause, partial }: WriteError, json: bool) -> Failure {
    print_result(&partial, json);
    let code = match &cause {
        WriteFailure::Destination(e) if !e.is_connector_failure() => 2,
        WriteFailure::Input(_) => 2,
        _ => 1,
    };
    Failure {
        error: cause.into(),
        code,
    }
}

pub(crate) fn print_result(result: &WriteResult, json: bool) {
    if json {
        println!("{}", serde_json::to_string(result).unwrap_or_default());
        return;
    }
    let at_completion = |n: u64| {
        if n > 0 {
            format!(" ({n} at completion, without a state)")
        } else {
            String::new()
        }
    };
    println!(
        "{}: {} records sent, {} confirmed{}; {}/{} states confirmed; {:.2}s ({:.0} records/s, {:.1} MB/s){}",
        result.destination,
        result.records_sent,
        result.records_confirmed,
        at_completion(result.records_confirmed_at_completion),
        result.states_confirmed,
        result.states_sent,
        result.duration_secs,
        result.records_per_sec(),
        result.megabytes_per_sec(),
        if result.completed {
            ""
        } else {
            " — INCOMPLETE"
        },
    );
    for (name, totals) in &result.streams {
        println!(
            "  {name}: {} sent, {} confirmed{}",
            totals.sent,
            totals.confirmed,
            at_completion(totals.confirmed_at_completion)
        );
    }
    if result.lines_skipped > 0 || result.records_skipped > 0 {
        println!(
            "  skipped: {} lines that were not Airbyte messages, {} records of streams not in the catalog",
            result.lines_skipped, result.records_skipped
        );
    }
}

/// Prints a finished sync: plain lines and one `airlock: stats {…}` JSON record on
/// stderr, or one JSON object with `--json`; the destination's warnings either way.
pub(crate) fn print_sync_result(result: &SyncResult, json: bool) {
    if json {
        println!("{}", serde_json::to_string(result).unwrap_or_default());
    } else {
        if result.resumed_from_state {
            println!("{}: resumed from the state of its last run", result.source);
        }
        if let Some(cache) = &result.cache {
            println!(
                "{}: {} records read into the cache {}",
                result.source,
                result.records_read,
                cache.display()
            );
        }
        print_result(&result.write, false);
        // The same figures for logs and scripts: one JSON stats record.
        eprintln!(
            "airlock: stats {}",
            serde_json::to_string(result).unwrap_or_default()
        );
    }
    for warning in &result.write.warnings {
        eprintln!("airlock: warning: {warning}");
    }
}

/// A failed sync: what it reached is printed, and the error maps to its exit code —
/// the connector's failure 1, the user's input or setup 2.
pub(crate) fn sync_failure(error: SyncError, json: bool) -> Failure {
    match error {
        SyncError::Write(error) => write_failure(error, json),
        SyncError::SourceFailed { source, partial } => {
            print_result(&partial, json);
            Failure {
                error: SyncError::SourceFailed { source, partial }.into(),
                code: 1,
            }
        }
        SyncError::Source(e) => source_failure(e),
        other => usage(other),
    }
}
