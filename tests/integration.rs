//! airlock's integration tests: one binary, real processes, real files.
//!
//! Every test runs the real `airlock` binary or library against real connector
//! processes: our native plugins, small scripted fakes for failures, and (where
//! installed) the real `airbyte-source-faker` from PyPI.

#![allow(clippy::unwrap_used, reason = "a test that cannot unwrap should panic")]

mod support;

mod bad_input;
mod builtin_faker;
mod cache_sync;
mod cli_basics;
mod docker;
mod faker;
mod fuzz_regressions;
mod k8s_jobs;
mod layers;
mod many_syncs;
mod network;
mod pip;
mod plugin_kit;
mod postgres;
mod process_executor;
mod state_durability;
mod sync;
mod sync_file;
mod trust;
mod wasm;
mod wasm_sandbox;
