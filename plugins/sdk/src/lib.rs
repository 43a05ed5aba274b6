//! The airlock plugin SDK: write an Airbyte-protocol destination once, as one
//! [`Destination`] implementation, and run it as a native CLI ([`run_cli`])
//! or behind a WASM component export, which reuse the same I/O-free core
//! ([`command::spec`], [`command::check`], [`WriteSession`]).
//!
//! The SDK keeps Airbyte's destination contract so destinations do not have
//! to: junk input lines are logged and skipped, records of streams outside
//! the catalog are skipped, each STATE is echoed only after
//! [`RecordWriter::flush`], with `destinationStats.recordCount`, and failures
//! end as a TRACE ERROR. For file destinations it offers crash-safe
//! [`staging`] and Airbyte's stream-name [`naming`].
//!
//! Nothing here needs threads, processes, networking or an async runtime, so
//! every module builds for `wasm32-wasip2`.

#![deny(missing_docs)]

mod catalog;
mod cli;
pub mod command;
#[cfg(target_arch = "wasm32")]
pub mod component;
mod context;
mod destination;
mod error;
mod export;
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
pub use context::{Context, LOCAL_ROOT_ENV};
pub use destination::{Destination, RecordWriter};
pub use error::{DestinationError, FailureType};
pub use message::{Emitter, LogLevel, Record};
pub use session::WriteSession;

/// Writes a line to the host's log: through the `host.log` import in a component,
/// as an Airbyte LOG line on stderr in a native CLI.
pub fn host_log(level: LogLevel, message: &str) {
    #[cfg(target_arch = "wasm32")]
    component::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    {
        let mut line = Vec::new();
        message::write_log(&mut line, level, message);
        eprint!("{}", String::from_utf8_lossy(&line));
    }
}
