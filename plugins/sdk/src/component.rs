//! `component`: the WASI component entry point — the world
//! `airlock:destination@0.1.0`'s `destination-plugin`, exported from one
//! [`Destination`] by [`export_destination!`](crate::export_destination) —
//! and [`host_log`], the plugin's line into the host's log.
//!
//! The I/O-free part builds everywhere: [`BatchWriter`] is the `writer`
//! resource's logic (a [`WriteSession`] fed whole batches). On `wasm32` this
//! module also holds the generated `bindings` and the functions that the
//! macro's glue calls; they only convert between the WIT types and the SDK's.
//! All protocol rules stay in [`WriteSession`] and [`crate::command`].

use std::cell::RefCell;
use std::io::Write;
use std::sync::OnceLock;

use crate::message::write_log;
use crate::{Context, Destination, DestinationError, LogLevel, WriteSession};

/// Where [`host_log`] sends its lines once a component entry point has run:
/// the `host.log` import. Until then (natively, or in a `wasm32` CLI run as a
/// `wasi:cli/command`) lines go to stderr. Keeping the import behind this
/// pointer means that only the component's exports reference it, so a
/// command-mode build does not import the `host` interface.
static HOST_LOG: OnceLock<fn(LogLevel, &str)> = OnceLock::new();

/// Writes a line to the host's log.
///
/// In a component (once the host has called one of its exports) this is the
/// `host.log` import, whose last lines airlock shows in every error about the
/// plugin. Elsewhere — a native CLI, or the CLI compiled as a
/// `wasi:cli/command` — it writes an Airbyte LOG line to stderr.
///
/// Logs count against the sandbox's log cap; a writer reporting progress to
/// the user should rather use [`Emitter::log`](crate::Emitter::log), whose
/// lines travel with the output.
pub fn host_log(level: LogLevel, message: &str) {
    if let Some(log) = HOST_LOG.get() {
        log(level, message);
        return;
    }
    let mut line = Vec::new();
    write_log(&mut line, level, message);
    // Nowhere to report a failing stderr.
    let _ = std::io::stderr().write_all(&line);
}

/// The `writer` resource of the component world, without the WIT types: one
/// [`WriteSession`], fed whole batches of newline-delimited messages.
///
/// Once a batch fails, the session is ended at once, unclean, so that file
/// destinations keep their prior data and everything flushed (the host calls
/// nothing on a writer after an error). A writer dropped without
/// [`close`](Self::close) is ended the same way.
///
/// ```
/// use airlock_plugin_sdk::component::BatchWriter;
/// # use airlock_plugin_sdk::{ConfiguredCatalog, Context, Destination, DestinationError, Emitter, Record, RecordWriter};
/// # use serde_json::{Value, json};
/// # struct Discard;
/// # impl RecordWriter for Discard {
/// #     fn write(&mut self, _: &Record<'_>, _: &mut Emitter<'_>) -> Result<(), DestinationError> { Ok(()) }
/// #     fn flush(&mut self) -> Result<(), DestinationError> { Ok(()) }
/// #     fn close(self: Box<Self>, _: bool) -> Result<(), DestinationError> { Ok(()) }
/// # }
/// # struct DevNull;
/// # impl Destination for DevNull {
/// #     fn spec(&self) -> Value { json!({}) }
/// #     fn check(&self, _: &Value, _: &Context) -> Result<(), String> { Ok(()) }
/// #     fn open(&self, _: &Value, _: &ConfiguredCatalog, _: &Context)
/// #         -> Result<Box<dyn RecordWriter>, DestinationError> { Ok(Box::new(Discard)) }
/// # }
/// let catalog = br#"{"streams":[{"stream":{"name":"users"},"sync_mode":"full_refresh","destination_sync_mode":"append"}]}"#;
/// let writer = BatchWriter::open(&DevNull, b"{}", catalog, &Context::sandboxed("/local"))?;
/// let out = writer.write_batch(
///     b"{\"type\":\"RECORD\",\"record\":{\"stream\":\"users\",\"data\":{},\"emitted_at\":1}}\n\
///       {\"type\":\"STATE\",\"state\":{\"data\":{}}}\n",
/// )?;
/// assert!(out.starts_with(b"{\"type\":\"STATE\""));
/// assert!(writer.close()?.is_empty());
/// # Ok::<(), DestinationError>(())
/// ```
pub struct BatchWriter {
    /// `None` once the run has ended (closed or failed).
    session: RefCell<Option<WriteSession>>,
}

impl BatchWriter {
    /// `writer.open`: parses the configuration and the configured catalog
    /// and opens `dest` for a write.
    ///
    /// # Errors
    ///
    /// A [`FailureType::ConfigError`](crate::FailureType::ConfigError) for
    /// a configuration that is not a JSON object, a
    /// [`FailureType::SystemError`](crate::FailureType::SystemError) for a
    /// catalog that does not parse, and the error of [`Destination::open`].
    pub fn open<D: Destination + ?Sized>(
        dest: &D,
        config_json: &[u8],
        catalog_json: &[u8],
        ctx: &Context,
    ) -> Result<Self, DestinationError> {
        let config = crate::command::parse_config(config_json)?;
        let catalog = crate::catalog::parse_catalog(catalog_json)?;
        let session = WriteSession::open(dest, &config, &catalog, ctx)?;
        Ok(Self {
            session: RefCell::new(Some(session)),
        })
    }

    /// `writer.write-batch`: passes each line of `messages` (split on `\n`)
    /// to [`WriteSession::push_line`] and returns the output lines.
    ///
    /// When the destination fails mid-batch, the run ends unclean (prior data
    /// kept) and the batch's output is still returned — the states echoed before
    /// the failure (their records are durable) followed by the TRACE ERROR — so
    /// the host confirms what was written and then stops, exactly as it does for
    /// the native CLI. Later calls fail.
    ///
    /// # Errors
    ///
    /// Only when the run had already ended.
    pub fn write_batch(&self, messages: &[u8]) -> Result<Vec<u8>, DestinationError> {
        let mut slot = self.session.borrow_mut();
        let Some(session) = slot.as_mut() else {
            return Err(ended("write-batch"));
        };
        let mut out = Vec::new();
        // An empty batch is the host saying its input ran dry for now.
        if messages.is_empty() {
            if session.input_idle(&mut out).is_err()
                && let Some(session) = slot.take()
            {
                let _ = session.finish(&mut out);
            }
            return Ok(out);
        }
        for line in messages.split(|b| *b == b'\n') {
            if session.push_line(line, &mut out).is_err() {
                if let Some(session) = slot.take() {
                    // Closes the writer unclean and appends the TRACE ERROR.
                    let _ = session.finish(&mut out);
                }
                return Ok(out);
            }
        }
        Ok(out)
    }

    /// `writer.close`: the end of the input. Ends the run with
    /// [`WriteSession::finish`] and returns its last output lines.
    ///
    /// # Errors
    ///
    /// The error of [`RecordWriter::close`](crate::RecordWriter::close), or
    /// an error when the run had already ended.
    pub fn close(&self) -> Result<Vec<u8>, DestinationError> {
        let session = self.session.borrow_mut().take();
        let Some(session) = session else {
            return Err(ended("close"));
        };
        let mut out = Vec::new();
        session.finish(&mut out)?;
        Ok(out)
    }
}

impl Drop for BatchWriter {
    /// A writer dropped before [`close`](Self::close) ends its run unclean,
    /// keeping prior data.
    fn drop(&mut self) {
        if let Some(session) = self.session.get_mut().take() {
            let error = DestinationError::system("the writer was dropped before close");
            session.abort(error, &mut Vec::new());
        }
    }
}

/// The error of a call on a writer whose run has ended.
fn ended(call: &str) -> DestinationError {
    DestinationError::system(format!(
        "{call} was called on a writer that has already ended (closed or failed)"
    ))
}

#[cfg(target_arch = "wasm32")]
pub use guest::*;

/// The `wasm32` half: bindings and the functions behind the macro's glue.
#[cfg(target_arch = "wasm32")]
mod guest {
    use super::{BatchWriter, HOST_LOG};
    use crate::context::SANDBOX_LOCAL_ROOT;
    use crate::{Context, Destination, DestinationError, FailureType, LogLevel};

    /// Bindings generated from `wit/destination-0.1.0` (world
    /// `destination-plugin`). Their export macro, `export_airlock_component!`,
    /// is what [`export_destination!`](crate::export_destination) expands to.
    #[allow(
        missing_docs,
        unsafe_code,
        clippy::all,
        reason = "code generated by wit-bindgen"
    )]
    pub mod bindings {
        wit_bindgen::generate!({
            path: "../../wit/destination-0.1.0",
            world: "destination-plugin",
            pub_export_macro: true,
            export_macro_name: "export_airlock_component",
            default_bindings_module: "airlock_plugin_sdk::component::bindings",
        });
    }

    use bindings::airlock::destination::{host, types as wit};

    /// The context of every component call: the host preopens the local
    /// root as `/local`.
    fn context() -> Context {
        Context::sandboxed(SANDBOX_LOCAL_ROOT)
    }

    /// Runs at the start of every export: routes [`host_log`](super::host_log)
    /// to the import and installs, once, a panic hook that sends the panic
    /// message to the host's log at `fatal` before the trap, so the host's
    /// error says why the plugin died.
    fn enter() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            let _ = HOST_LOG.set(log_to_host);
            std::panic::set_hook(Box::new(|info| {
                log_to_host(LogLevel::Fatal, &format!("the plugin panicked: {info}"));
            }));
        });
    }

    fn log_to_host(level: LogLevel, message: &str) {
        let level = match level {
            LogLevel::Fatal => wit::LogLevel::Fatal,
            LogLevel::Error => wit::LogLevel::Error,
            LogLevel::Warn => wit::LogLevel::Warn,
            LogLevel::Info => wit::LogLevel::Info,
            LogLevel::Debug => wit::LogLevel::Debug,
            LogLevel::Trace => wit::LogLevel::Trace,
        };
        host::log(level, message);
    }

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

    /// The `spec` export: the ConnectorSpecification as JSON text.
    pub fn spec<D: Destination + ?Sized>(dest: &D) -> String {
        enter();
        crate::command::spec_json(dest)
    }

    /// The `check` export: a bad configuration is FAILED, never a trap.
    pub fn check<D: Destination + ?Sized>(dest: &D, config: &str) -> wit::ConnectionStatus {
        enter();
        match crate::command::check_status(dest, config.as_bytes(), &context()) {
            Ok(message) => wit::ConnectionStatus {
                succeeded: true,
                message,
            },
            Err(message) => wit::ConnectionStatus {
                succeeded: false,
                message: Some(message),
            },
        }
    }

    /// The `writer` resource: a [`BatchWriter`] with WIT errors.
    pub struct ComponentWriter(BatchWriter);

    impl ComponentWriter {
        /// `writer.open`, in the sandbox's `/local`.
        ///
        /// # Errors
        ///
        /// See [`BatchWriter::open`].
        pub fn open<D: Destination + ?Sized>(
            dest: &D,
            config: &str,
            catalog: &str,
        ) -> Result<Self, wit::DestinationError> {
            enter();
            BatchWriter::open(dest, config.as_bytes(), catalog.as_bytes(), &context())
                .map(Self)
                .map_err(to_wit)
        }

        /// `writer.write-batch`.
        ///
        /// # Errors
        ///
        /// See [`BatchWriter::write_batch`].
        pub fn write_batch(&self, messages: &[u8]) -> Result<Vec<u8>, wit::DestinationError> {
            enter();
            self.0.write_batch(messages).map_err(to_wit)
        }

        /// `writer.close`.
        ///
        /// # Errors
        ///
        /// See [`BatchWriter::close`].
        pub fn close(&self) -> Result<Vec<u8>, wit::DestinationError> {
            enter();
            self.0.close().map_err(to_wit)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ConfiguredCatalog, Emitter, FailureType, Record, RecordWriter};
    use serde_json::{Value, json};
    use std::sync::{Arc, Mutex};

    /// Fails on a record whose data is `"boom"`; remembers how it closed.
    struct Boom {
        closed: Arc<Mutex<Option<bool>>>,
    }

    struct BoomWriter {
        closed: Arc<Mutex<Option<bool>>>,
    }

    impl RecordWriter for BoomWriter {
        fn write(
            &mut self,
            record: &Record<'_>,
            _out: &mut Emitter<'_>,
        ) -> Result<(), DestinationError> {
            if record.data.get() == "\"boom\"" {
                return Err(DestinationError::system("boom"));
            }
            Ok(())
        }
        fn flush(&mut self) -> Result<(), DestinationError> {
            Ok(())
        }
        fn close(self: Box<Self>, clean: bool) -> Result<(), DestinationError> {
            *self.closed.lock().expect("lock") = Some(clean);
            Ok(())
        }
    }

    impl Destination for Boom {
        fn spec(&self) -> Value {
            json!({})
        }
        fn check(&self, _config: &Value, _ctx: &Context) -> Result<(), String> {
            Ok(())
        }
        fn open(
            &self,
            config: &Value,
            _catalog: &ConfiguredCatalog,
            _ctx: &Context,
        ) -> Result<Box<dyn RecordWriter>, DestinationError> {
            if config.get("refuse").is_some() {
                return Err(DestinationError::config("refused"));
            }
            Ok(Box::new(BoomWriter {
                closed: Arc::clone(&self.closed),
            }))
        }
    }

    const CATALOG: &[u8] = br#"{"streams":[{"stream":{"name":"s"},"sync_mode":"full_refresh","destination_sync_mode":"append"}]}"#;

    fn record(data: &str) -> String {
        format!(r#"{{"type":"RECORD","record":{{"stream":"s","data":{data},"emitted_at":1}}}}"#)
    }

    fn state(n: u32) -> String {
        format!(r#"{{"type":"STATE","state":{{"data":{{"n":{n}}}}}}}"#)
    }

    fn open() -> (BatchWriter, Arc<Mutex<Option<bool>>>) {
        let closed = Arc::new(Mutex::new(None));
        let dest = Boom {
            closed: Arc::clone(&closed),
        };
        let writer = BatchWriter::open(&dest, b"{}", CATALOG, &Context::native()).expect("open");
        (writer, closed)
    }

    fn lines(out: &[u8]) -> Vec<Value> {
        out.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).expect("JSON line"))
            .collect()
    }

    #[test]
    fn batches_are_split_into_lines_and_states_echoed() {
        let (writer, closed) = open();
        let batch = [
            record("{}"),
            record("{}"),
            state(1),
            String::new(),
            record("{}"),
        ]
        .join("\n");
        let out = lines(&writer.write_batch(batch.as_bytes()).expect("batch"));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["state"]["data"]["n"], 1);
        assert_eq!(out[0]["state"]["destinationStats"]["recordCount"], 2.0);
        // A batch without a trailing newline ends with a whole line too.
        let out = lines(&writer.write_batch(state(2).as_bytes()).expect("batch"));
        assert_eq!(out[0]["state"]["destinationStats"]["recordCount"], 1.0);
        assert!(writer.close().expect("close").is_empty());
        assert_eq!(*closed.lock().expect("lock"), Some(true));
    }

    #[test]
    fn a_failed_batch_returns_the_states_before_it_then_the_error_and_ends_the_run() {
        let (writer, closed) = open();
        let batch = [state(1), record("\"boom\""), state(2)].join("\n");
        let out = lines(
            &writer
                .write_batch(batch.as_bytes())
                .expect("output up to the failure"),
        );
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(
            out[0]["state"]["data"]["n"], 1,
            "the state before the failure is echoed"
        );
        assert_eq!(
            out[1]["trace"]["error"]["message"], "boom",
            "then the TRACE ERROR"
        );
        assert_eq!(*closed.lock().expect("lock"), Some(false));
        assert!(writer.write_batch(b"").is_err());
        assert!(
            writer
                .close()
                .expect_err("ended")
                .message
                .contains("already ended")
        );
    }

    #[test]
    fn close_twice_fails_and_dropping_an_open_writer_closes_it_unclean() {
        let (writer, _) = open();
        writer.close().expect("close");
        assert!(writer.close().is_err());

        let (writer, closed) = open();
        drop(writer);
        assert_eq!(*closed.lock().expect("lock"), Some(false));
    }

    #[test]
    fn open_refuses_bad_configs_and_catalogs() {
        let dest = Boom {
            closed: Arc::default(),
        };
        let ctx = Context::native();
        for (config, catalog, failure_type) in [
            (&b"nope"[..], CATALOG, FailureType::ConfigError),
            (b"[]", CATALOG, FailureType::ConfigError),
            (br#"{"refuse":1}"#, CATALOG, FailureType::ConfigError),
            (b"{}", b"{", FailureType::SystemError),
        ] {
            let error = BatchWriter::open(&dest, config, catalog, &ctx)
                .err()
                .expect("refused");
            assert_eq!(error.failure_type, failure_type);
        }
    }
}
