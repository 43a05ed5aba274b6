//! The airlock plugin SDK: write an Airbyte-protocol destination once, as one
//! [`Destination`] implementation, and run it as a native CLI ([`run_cli`])
//! or as a WASI component ([`export_destination!`]), which reuse the same
//! I/O-free core ([`command::spec`], [`command::check`], [`WriteSession`],
//! [`component::BatchWriter`]).
//!
//! The SDK keeps Airbyte's destination contract so destinations do not have
//! to: junk input lines are logged and skipped, records of streams outside
//! the catalog are skipped, each STATE is echoed only after
//! [`RecordWriter::flush`], with `destinationStats.recordCount`, and failures
//! end as a TRACE ERROR. For file destinations it offers crash-safe
//! [`staging`], one file per stream ([`stream_files`]) and Airbyte's
//! stream-name [`naming`].
//!
//! Nothing here needs threads, processes, networking or an async runtime, so
//! every module builds for `wasm32-wasip2`.

#![deny(missing_docs)]

mod catalog;
mod cli;
pub mod command;
pub mod component;
mod context;
mod destination;
mod error;
mod export;
#[doc(hidden)]
pub mod fuzzing;
pub mod message;
pub mod naming;
mod session;
pub mod staging;
pub mod stream_files;

pub use catalog::{
    AirbyteStream, ConfiguredCatalog, ConfiguredStream, DestinationSyncMode, StreamDescriptor,
    SyncMode,
};
pub use cli::run_cli;
pub use component::host_log;
pub use context::{Context, LOCAL_ROOT_ENV, SANDBOX_LOCAL_ROOT};
pub use destination::{Destination, RecordWriter};
pub use error::{DestinationError, FailureType};
pub use message::{Emitter, LogLevel, Record};
pub use session::WriteSession;
