//! `component`: the WASI component entry point — the `airlock:destination@0.1.0`
//! world exported from one [`Destination`] impl.
//!
//! Owns the generated bindings and the glue behind [`crate::export_destination!`].
//! All protocol rules stay in [`WriteSession`] and [`crate::command`]; this module
//! only moves bytes between the host's calls and them. Built only for `wasm32`.

use std::cell::RefCell;

use crate::{ConfiguredCatalog, Context, Destination, DestinationError, FailureType, WriteSession};

/// Bindings generated from `wit/destination-0.1.0`.
#[allow(missing_docs, reason = "generated code")]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/destination-0.1.0",
        world: "destination-plugin",
        pub_export_macro: true,
        export_macro_name: "export_airlock_component",
        default_bindings_module: "airlock_plugin_sdk::component::bindings",
    });
}

use bindings::airlock::destination::types as wit;

/// Where a component's files live: the host preopens its local root as `/local`.
pub const LOCAL_ROOT: &str = "/local";

fn to_wit(error: DestinationError) -> wit::DestinationError {
    wit::DestinationError {
        message: error.message,
        failure_type: match error.failure_type {
            FailureType::SystemError => wit::FailureType::SystemError,
            FailureType::ConfigError => wit::FailureType::ConfigError,
            FailureType::TransientError => wit::FailureType::TransientError,
        },
    }
}

/// Sends panic messages to the host's log before the trap, so the host's error
/// says why the plugin died.
fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            bindings::airlock::destination::host::log(
                wit::LogLevel::Fatal,
                &format!("panic: {info}"),
            );
        }));
    });
}

/// Writes a line to the host's log.
pub fn log(level: crate::LogLevel, message: &str) {
    use crate::LogLevel;
    let level = match level {
        LogLevel::Fatal => wit::LogLevel::Fatal,
        LogLevel::Error => wit::LogLevel::Error,
        LogLevel::Warn => wit::LogLevel::Warn,
        LogLevel::Info => wit::LogLevel::Info,
        LogLevel::Debug => wit::LogLevel::Debug,
        LogLevel::Trace => wit::LogLevel::Trace,
    };
    bindings::airlock::destination::host::log(level, message);
}

/// The `spec` export.
pub fn spec<D: Destination + ?Sized>(dest: &D) -> String {
    install_panic_hook();
    dest.spec().to_string()
}

/// The `check` export: a bad config is FAILED, never a trap.
pub fn check<D: Destination + ?Sized>(dest: &D, config: &str) -> wit::ConnectionStatus {
    install_panic_hook();
    let status = crate::command::parse_config(config.as_bytes())
        .map_err(|e| e.message)
        .and_then(|config| dest.check(&config, &Context::sandboxed(LOCAL_ROOT)));
    match status {
        Ok(()) => wit::ConnectionStatus {
            succeeded: true,
            message: None,
        },
        Err(message) => wit::ConnectionStatus {
            succeeded: false,
            message: Some(message),
        },
    }
}

/// The `writer` resource: one [`WriteSession`] behind the host's calls.
pub struct ComponentWriter {
    session: RefCell<Option<WriteSession>>,
}

impl ComponentWriter {
    /// `writer.open`.
    ///
    /// # Errors
    /// A config or catalog the destination refuses.
    pub fn open<D: Destination + ?Sized>(
        dest: &D,
        config: &str,
        catalog: &str,
    ) -> Result<Self, wit::DestinationError> {
        install_panic_hook();
        let config = crate::command::parse_config(config.as_bytes()).map_err(to_wit)?;
        let catalog = ConfiguredCatalog::from_json(catalog.as_bytes()).map_err(to_wit)?;
        let session = WriteSession::open(dest, &config, &catalog, &Context::sandboxed(LOCAL_ROOT))
            .map_err(to_wit)?;
        Ok(Self {
            session: RefCell::new(Some(session)),
        })
    }

    /// `writer.write-batch`: each line of `messages` through the session.
    ///
    /// # Errors
    /// The destination's error; the writer is then closed unclean (prior data kept).
    pub fn write_batch(&self, messages: &[u8]) -> Result<Vec<u8>, wit::DestinationError> {
        let mut slot = self.session.borrow_mut();
        let session = slot.as_mut().ok_or_else(|| {
            to_wit(DestinationError::system(
                "write-batch after the writer ended",
            ))
        })?;
        let mut out = Vec::new();
        for line in messages.split(|b| *b == b'\n') {
            if let Err(error) = session.push_line(line, &mut out) {
                if let Some(session) = slot.take() {
                    let mut discarded = Vec::new();
                    let _ = session.finish(&mut discarded);
                }
                return Err(to_wit(error));
            }
        }
        Ok(out)
    }

    /// `writer.close`: finishes the session and returns its last output.
    ///
    /// # Errors
    /// The destination's error from closing.
    pub fn close(&self) -> Result<Vec<u8>, wit::DestinationError> {
        let session = self.session.borrow_mut().take();
        let mut out = Vec::new();
        match session {
            Some(session) => session.finish(&mut out).map_err(to_wit)?,
            None => {
                return Err(to_wit(DestinationError::system(
                    "close after the writer ended",
                )));
            }
        }
        Ok(out)
    }
}
