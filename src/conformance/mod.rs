//! `conformance`: `airlock plugin test` — a destination acceptance suite, after
//! Airbyte's destination tests, for any destination behind any executor (a WASM
//! component, a Docker image, an executable).
//!
//! Owns the cases, their inputs and verdicts, and the report. It drives the
//! destination only through [`Executor`] and the write loop ([`crate::write`]);
//! it never looks inside a backend. Cases that must read back what was written
//! use a [`Reader`] the plugin declares (or the user names); without one they
//! are marked not applicable, never passed.
//!
//! A plugin declares what the suite needs in its spec, under
//! `x-airlock-conformance`:
//!
//! ```json
//! "x-airlock-conformance": {
//!   "config": {"destination_path": "/local/conformance"},
//!   "reader": {"format": "airbyte-raw-jsonl", "path_field": "destination_path"}
//! }
//! ```
//!
//! A file reader gets a fresh folder per case under `/local`; the
//! `postgres-tables` reader gets a fresh schema per case on the server the
//! config names (`path_field` is then the schema field).

mod cases;
mod input;
mod reader;

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;

use crate::executor::Executor;

pub use reader::{Reader, ReaderFormat};

/// A case's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It checked what it says and found it so.
    Pass,
    /// It found the destination wrong.
    Fail,
    /// It could not be checked for this destination (and says why).
    NotApplicable,
}

impl Outcome {
    /// `pass`, `FAIL`, `n/a`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "FAIL",
            Self::NotApplicable => "n/a",
        }
    }
}

/// One case's result.
#[derive(Debug, Clone, Serialize)]
pub struct CaseReport {
    /// The case's name, e.g. `line-breaks`.
    pub case: &'static str,
    /// What it checks.
    pub checks: &'static str,
    /// The verdict.
    pub outcome: Outcome,
    /// Why it failed or was not applicable; what it saw when it passed.
    pub detail: String,
    /// The destination's last log lines, when it failed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub log_tail: Vec<String>,
    /// Wall time of the case, in seconds.
    pub secs: f64,
}

/// The suite's result.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The destination tested.
    pub destination: String,
    /// Every case, in order.
    pub cases: Vec<CaseReport>,
}

impl Report {
    /// Cases that failed.
    pub fn failed(&self) -> impl Iterator<Item = &CaseReport> {
        self.cases.iter().filter(|c| c.outcome == Outcome::Fail)
    }

    /// Whether no case failed.
    pub fn passed(&self) -> bool {
        self.failed().next().is_none()
    }

    /// The report as a Markdown-style table, with each failure's log tail.
    pub fn table(&self) -> String {
        let mut out = format!("conformance of {}\n\n", self.destination);
        out.push_str("| case | result | secs | checks / detail |\n|---|---|---:|---|\n");
        for case in &self.cases {
            out.push_str(&format!(
                "| {} | {} | {:.1} | {} — {} |\n",
                case.case,
                case.outcome.label(),
                case.secs,
                case.checks,
                case.detail.replace('\n', " ").replace('|', "\\|"),
            ));
        }
        for case in self.failed().filter(|c| !c.log_tail.is_empty()) {
            out.push_str(&format!(
                "\n{}: the destination's last log lines:\n",
                case.case
            ));
            for line in &case.log_tail {
                out.push_str(&format!("    {line}\n"));
            }
        }
        let count = |o| self.cases.iter().filter(|c| c.outcome == o).count();
        out.push_str(&format!(
            "\n{} passed, {} failed, {} not applicable\n",
            count(Outcome::Pass),
            count(Outcome::Fail),
            count(Outcome::NotApplicable)
        ));
        out
    }
}

/// What the suite runs against.
pub struct Suite<'a> {
    /// The destination.
    pub executor: &'a dyn Executor,
    /// A config for which `check` succeeds. When the suite has a reader, its path
    /// field is set per case.
    pub config: Value,
    /// How to read back what was written, if the plugin can be read.
    pub reader: Option<Reader>,
    /// The host folder the destination sees as `/local`.
    pub local_root: PathBuf,
    /// Records in the large-batch case.
    pub large_batch_records: u64,
    /// Only the cases whose names contain one of these (all when empty).
    pub only: Vec<String>,
}

/// The plugin's own declaration (`x-airlock-conformance` in its spec).
#[derive(Debug, Clone, Default)]
pub struct Declaration {
    /// A config to test with.
    pub config: Option<Value>,
    /// How to read back what it wrote.
    pub reader: Option<Reader>,
}

impl Declaration {
    /// Reads the declaration out of a spec (as JSON).
    ///
    /// # Errors
    /// A message naming the bad field.
    pub fn from_spec(spec: &Value) -> Result<Self, String> {
        let Some(declared) = spec.get("x-airlock-conformance") else {
            return Ok(Self::default());
        };
        let reader = match declared.get("reader") {
            None | Some(Value::Null) => None,
            Some(r) => Some(Reader::from_declaration(r)?),
        };
        Ok(Self {
            config: declared.get("config").cloned(),
            reader,
        })
    }
}

impl Suite<'_> {
    /// Runs every case, in order, and reports.
    pub async fn run(&self) -> Report {
        let mut reports = Vec::new();
        for case in cases::ALL {
            if !self.only.is_empty() && !self.only.iter().any(|o| case.name.contains(o.as_str())) {
                continue;
            }
            let started = Instant::now();
            tracing::info!("conformance case {}", case.name);
            let verdict = (case.run)(self).await;
            reports.push(CaseReport {
                case: case.name,
                checks: case.checks,
                outcome: verdict.outcome,
                detail: verdict.detail,
                log_tail: verdict.log_tail,
                secs: started.elapsed().as_secs_f64(),
            });
        }
        Report {
            destination: self.executor.connector().to_owned(),
            cases: reports,
        }
    }
}
