//! airlock runs Airbyte-protocol connectors — above all destinations — as sandboxed
//! WebAssembly components, Docker containers or local executables, behind one
//! [`executor::Executor`] trait, and drives them through one write loop
//! ([`write`]) that persists only the states a destination confirmed ([`state`]).
//!
//! Start with [`get_destination`].

pub mod config;
mod destination;
pub mod executor;
#[doc(hidden)]
pub mod fuzzing;
pub mod protocol;
pub mod registry;
pub mod remedy;
pub mod state;
pub mod write;

pub use destination::{
    Destination, DestinationBuilder, DestinationError, get_destination, get_noop_destination,
};
pub mod bench;
pub mod cache;
pub mod cli;
pub mod conformance;
pub mod home;
pub mod scaffold;
pub mod source;
pub mod sync;
