//! airlock runs Airbyte-protocol connectors — above all destinations — as sandboxed
//! WebAssembly components, Docker containers or local executables, behind one
//! [`executor::Executor`] trait, and drives them through one write loop
//! ([`write`]) that persists only the states a destination confirmed ([`state`]).
//!
//! Start with [`get_destination`].
//!
//! # Layers
//!
//! Dependencies point one way, each module using only those listed before it
//! (`tests/layers.rs` checks it): [`home`], [`protocol`], [`config`] and the named
//! tracing events →
//! [`executor`] → [`registry`] and [`sync_file`] → [`write`] → [`cache`] and [`state`] →
//! [`source`] → [`sync`] → the destination API ([`get_destination`],
//! [`Destination`]) → [`conformance`]. The `airlock` binary's CLI sits on top and is
//! not part of the library.
//!
//! # Features
//!
//! All on by default: `wasm` (the sandboxed WASI backend, wasmtime, and the built-in
//! plugins), `docker` (the Docker backend, bollard), `pip` (Python connectors in a
//! venv), `conformance` (the plugin conformance suite), `cli` (the `airlock` binary).
//! A library user who needs only some backends turns the defaults off:
//! `airlock = { default-features = false, features = ["wasm"] }`.

pub mod cache;
pub mod config;
#[cfg(feature = "conformance")]
pub mod conformance;
mod destination;
pub mod events;
pub mod executor;
#[doc(hidden)]
pub mod fuzzing;
pub mod home;
pub mod protocol;
pub mod registry;
pub mod remedy;
pub mod source;
pub mod state;
pub mod sync;
pub mod sync_file;
pub mod write;

pub use destination::{
    Destination, DestinationBuilder, DestinationError, get_destination, get_noop_destination,
};
