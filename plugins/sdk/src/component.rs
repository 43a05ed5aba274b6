//! `component`: the WASI component entry point — the world
//! `airlock:destination@0.2.0`'s `destination-plugin` (or 0.1.0's, for older
//! hosts), exported from one [`Destination`] by
//! [`export_destination!`](crate::export_destination) — and [`host_log`], the
//! plugin's line into the host's log.
//!
//! The I/O-free part builds everywhere: [`BatchWriter`] is the `writer`
//! resource's logic (a [`WriteSession`] fed whole batches). On `wasm32` this
//! module also holds the generated `bindings` and the functions that the
//! macro's glue calls; they only convert between the WIT types and the SDK's.
//! All protocol rules stay in [`WriteSession`] and [`crate::command`].

use std::cell::RefCell;
use std::io::Write;
use std::sync::OnceLock;

use airbyte_protocol::{Frame, FrameKind, Span, check_frames};

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

    /// `writer.write-batch` of `airlock:destination@0.2.0`: `messages` with the
    /// host's framing table. The table is checked first (every range inside
    /// `messages`, every record's stream in the catalog); then each framed
    /// message goes to [`WriteSession::push_framed`], records without any
    /// envelope parse. Returns the output lines, as
    /// [`write_batch`](Self::write_batch) does; frame them with
    /// [`frame_output`].
    ///
    /// # Errors
    ///
    /// Only when the run had already ended. A wrong table fails the run like a
    /// failing writer does: unclean close, TRACE ERROR in the output.
    pub fn write_framed(
        &self,
        messages: &[u8],
        frames: &[Frame],
    ) -> Result<Vec<u8>, DestinationError> {
        let mut slot = self.session.borrow_mut();
        let Some(session) = slot.as_mut() else {
            return Err(ended("write-batch"));
        };
        let mut out = Vec::new();
        if frames.is_empty() && messages.is_empty() {
            if session.input_idle(&mut out).is_err()
                && let Some(session) = slot.take()
            {
                let _ = session.finish(&mut out);
            }
            return Ok(out);
        }
        if let Err(error) = check_frames(messages, frames, session.stream_count()) {
            if let Some(session) = slot.take() {
                let error = DestinationError::system(format!(
                    "the host sent a batch whose framing table is wrong: {error}"
                ));
                session.abort(error, &mut out);
            }
            return Ok(out);
        }
        for frame in frames {
            if session.push_framed(messages, frame, &mut out).is_err() {
                if let Some(session) = slot.take() {
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

/// The framing table of a destination's output (newline-delimited messages,
/// as [`BatchWriter`] returns them): one frame per non-blank line, its kind
/// the line's `type` (`Other` for a line that is not a message).
///
/// ```
/// use airlock_plugin_sdk::component::frame_output;
/// use airbyte_protocol::FrameKind;
/// let out = b"{\"type\":\"STATE\",\"state\":{}}\n\n{\"type\":\"LOG\",\"log\":{}}\n";
/// let frames = frame_output(out);
/// assert_eq!(frames.len(), 2);
/// assert_eq!((frames[0].kind, frames[0].line.start, frames[0].line.len), (FrameKind::State, 0, 27));
/// assert_eq!((frames[1].kind, frames[1].line.start), (FrameKind::Log, 29));
/// ```
pub fn frame_output(out: &[u8]) -> Vec<Frame> {
    #[derive(serde::Deserialize)]
    struct Kind<'a> {
        #[serde(rename = "type", borrow, default)]
        kind: Option<std::borrow::Cow<'a, str>>,
    }
    let mut frames = Vec::new();
    let mut start = 0usize;
    for line in out.split(|b| *b == b'\n') {
        let span = Span::of(start..start + line.len());
        start += line.len() + 1;
        let Some(span) = span.filter(|_| !line.iter().all(u8::is_ascii_whitespace)) else {
            continue;
        };
        let kind = serde_json::from_slice::<Kind<'_>>(line)
            .ok()
            .and_then(|k| k.kind)
            .map_or(FrameKind::Other, |k| FrameKind::of_type(&k));
        frames.push(Frame {
            data: Span {
                start: span.start,
                len: 0,
            },
            ..Frame::message(kind, span)
        });
    }
    frames
}

/// The error of a call on a writer whose run has ended.
fn ended(call: &str) -> DestinationError {
    DestinationError::system(format!(
        "{call} was called on a writer that has already ended (closed or failed)"
    ))
}

#[cfg(target_arch = "wasm32")]
pub use guest::*;

/// The `wasm32` half: bindings and the functions behind the macros' glue, for
/// `airlock:destination@0.2.0` (here) and 0.1.0 ([`v0_1`]).
#[cfg(target_arch = "wasm32")]
mod guest {
    use super::HOST_LOG;
    use crate::Context;
    use crate::context::SANDBOX_LOCAL_ROOT;

    /// The context of every component call: the host preopens the local
    /// root as `/local`.
    fn context() -> Context {
        Context::sandboxed(SANDBOX_LOCAL_ROOT)
    }

    /// Runs at the start of every export: routes [`host_log`](super::host_log)
    /// to the import (`log`, of the version the component exports) and
    /// installs, once, a panic hook that sends the panic message to the host's
    /// log at `fatal` before the trap, so the host's error says why the plugin
    /// died.
    fn enter(log: fn(LogLevel, &str)) {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            let _ = HOST_LOG.set(log);
            std::panic::set_hook(Box::new(|info| {
                if let Some(log) = HOST_LOG.get() {
                    log(LogLevel::Fatal, &format!("the plugin panicked: {info}"));
                }
            }));
        });
    }

    /// What both versions' glue has in common: `host.log`, errors, `spec`,
    /// `check` and `writer.open`, over the `bindings` module in scope.
    macro_rules! common_glue {
        () => {
            use crate::component::BatchWriter;
            use crate::{Destination, DestinationError, FailureType, LogLevel};
            use bindings::airlock::destination::{host, types as wit};

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
                crate::component::guest::enter(log_to_host);
                crate::command::spec_json(dest)
            }

            /// The `check` export: a bad configuration is FAILED, never a trap.
            pub fn check<D: Destination + ?Sized>(dest: &D, config: &str) -> wit::ConnectionStatus {
                crate::component::guest::enter(log_to_host);
                match crate::command::check_status(
                    dest,
                    config.as_bytes(),
                    &crate::component::guest::context(),
                ) {
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
                    crate::component::guest::enter(log_to_host);
                    BatchWriter::open(
                        dest,
                        config.as_bytes(),
                        catalog.as_bytes(),
                        &crate::component::guest::context(),
                    )
                    .map(Self)
                    .map_err(to_wit)
                }
            }
        };
    }

    /// Bindings generated from `wit/destination-0.2.0` (world `plugin`). Their export macro, `export_airlock_component!`,
    /// is what [`export_destination!`](crate::export_destination) expands to.
    #[allow(
        missing_docs,
        unsafe_code,
        clippy::all,
        reason = "code generated by wit-bindgen"
    )]
    pub mod bindings {
        wit_bindgen::generate!({
            path: "../../wit/destination-0.2.0",
            world: "plugin",
            pub_export_macro: true,
            export_macro_name: "export_airlock_component",
            default_bindings_module: "airlock_plugin_sdk::component::bindings",
        });
    }

    common_glue!();

    fn span_to_wit(span: airbyte_protocol::Span) -> wit::Span {
        wit::Span {
            start: span.start,
            len: span.len,
        }
    }

    fn span_from_wit(span: wit::Span) -> airbyte_protocol::Span {
        airbyte_protocol::Span {
            start: span.start,
            len: span.len,
        }
    }

    /// Output with its table, as 0.2.0 returns it.
    fn framed(messages: Vec<u8>) -> wit::Framed {
        use airbyte_protocol::FrameKind;
        let frames = super::frame_output(&messages)
            .into_iter()
            .map(|f| wit::Frame {
                kind: match f.kind {
                    FrameKind::Record => wit::MessageKind::Record,
                    FrameKind::State => wit::MessageKind::State,
                    FrameKind::Trace => wit::MessageKind::Trace,
                    FrameKind::Log => wit::MessageKind::Log,
                    FrameKind::Other => wit::MessageKind::Other,
                },
                line: span_to_wit(f.line),
                stream: f.stream,
                data: span_to_wit(f.data),
                meta: f.meta.map(span_to_wit),
                emitted_at: f.emitted_at,
            })
            .collect();
        wit::Framed { messages, frames }
    }

    impl ComponentWriter {
        /// `writer.write-batch`: the batch and the host's framing table.
        ///
        /// # Errors
        ///
        /// See [`BatchWriter::write_framed`].
        pub fn write_batch(
            &self,
            messages: &[u8],
            frames: Vec<wit::Frame>,
        ) -> Result<wit::Framed, wit::DestinationError> {
            use airbyte_protocol::{Frame, FrameKind};
            enter(log_to_host);
            let frames: Vec<Frame> = frames
                .into_iter()
                .map(|f| Frame {
                    kind: match f.kind {
                        wit::MessageKind::Record => FrameKind::Record,
                        wit::MessageKind::State => FrameKind::State,
                        wit::MessageKind::Trace => FrameKind::Trace,
                        wit::MessageKind::Log => FrameKind::Log,
                        wit::MessageKind::Other => FrameKind::Other,
                    },
                    line: span_from_wit(f.line),
                    stream: f.stream,
                    data: span_from_wit(f.data),
                    meta: f.meta.map(span_from_wit),
                    emitted_at: f.emitted_at,
                })
                .collect();
            self.0
                .write_framed(messages, &frames)
                .map(framed)
                .map_err(to_wit)
        }

        /// `writer.close`.
        ///
        /// # Errors
        ///
        /// See [`BatchWriter::close`].
        pub fn close(&self) -> Result<wit::Framed, wit::DestinationError> {
            enter(log_to_host);
            self.0.close().map(framed).map_err(to_wit)
        }
    }

    /// `airlock:destination@0.1.0`: what
    /// [`export_destination_v0_1!`](crate::export_destination_v0_1) exports, for
    /// a host that predates 0.2.0. Batches are newline-delimited lines that the
    /// plugin parses.
    pub mod v0_1 {
        use super::enter;

        /// Bindings generated from `wit/destination-0.1.0`.
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
                export_macro_name: "export_airlock_component_v0_1",
                default_bindings_module: "airlock_plugin_sdk::component::v0_1::bindings",
            });
        }

        common_glue!();

        impl ComponentWriter {
            /// `writer.write-batch`: newline-delimited messages.
            ///
            /// # Errors
            ///
            /// See [`BatchWriter::write_batch`].
            pub fn write_batch(&self, messages: &[u8]) -> Result<Vec<u8>, wit::DestinationError> {
                enter(log_to_host);
                self.0.write_batch(messages).map_err(to_wit)
            }

            /// `writer.close`.
            ///
            /// # Errors
            ///
            /// See [`BatchWriter::close`].
            pub fn close(&self) -> Result<Vec<u8>, wit::DestinationError> {
                enter(log_to_host);
                self.0.close().map_err(to_wit)
            }
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

    /// `lines` joined with their framing table, as the host builds it: records
    /// of stream 0, their data found by its key.
    fn framed(lines: &[String]) -> (Vec<u8>, Vec<Frame>) {
        let mut batch = Vec::new();
        let mut frames = Vec::new();
        for line in lines {
            let start = batch.len();
            let span =
                |from: usize, len: usize| Span::of(start + from..start + from + len).expect("fits");
            let frame = if line.contains("\"RECORD\"") {
                let data = line.find("\"data\":").expect("data") + 7;
                let end = line.find(",\"emitted_at\"").expect("emitted_at");
                Frame {
                    kind: FrameKind::Record,
                    line: span(0, line.len()),
                    stream: 0,
                    data: span(data, end - data),
                    meta: None,
                    emitted_at: 7,
                }
            } else {
                Frame::message(FrameKind::State, span(0, line.len()))
            };
            frames.push(frame);
            batch.extend_from_slice(line.as_bytes());
            batch.push(b'\n');
        }
        (batch, frames)
    }

    #[test]
    fn a_framed_batch_reaches_the_writer_without_a_parse_and_echoes_as_lines_do() {
        let (writer, closed) = open();
        let (batch, frames) = framed(&[record("{}"), record("{\"a\":1}"), state(1)]);
        let out = writer.write_framed(&batch, &frames).expect("batch");
        let echoes = lines(&out);
        assert_eq!(echoes.len(), 1);
        assert_eq!(echoes[0]["state"]["destinationStats"]["recordCount"], 2.0);
        // Its output is framed line by line.
        let table = frame_output(&out);
        assert_eq!(table.len(), 1);
        assert_eq!(table[0].kind, FrameKind::State);
        assert_eq!(table[0].line.len as usize, out.len() - 1);
        // The writer got the data slice as is: `boom` fails it.
        let (batch, frames) = framed(&[state(2), record("\"boom\""), state(3)]);
        let out = lines(
            &writer
                .write_framed(&batch, &frames)
                .expect("up to the failure"),
        );
        assert_eq!(out[0]["state"]["data"]["n"], 2);
        assert_eq!(out[1]["trace"]["error"]["message"], "boom");
        assert_eq!(*closed.lock().expect("lock"), Some(false));
    }

    #[test]
    fn a_wrong_framing_table_fails_the_run_without_reading_past_the_batch() {
        for damage in [
            |f: &mut Frame| f.line.len = 10_000,
            |f: &mut Frame| f.data.start = u32::MAX,
            |f: &mut Frame| f.stream = 5,
        ] {
            let (writer, closed) = open();
            let (batch, mut frames) = framed(&[record("{}"), state(1)]);
            damage(&mut frames[0]);
            let out = lines(
                &writer
                    .write_framed(&batch, &frames)
                    .expect("a failed run's output"),
            );
            assert_eq!(out.len(), 1, "{out:?}");
            let message = out[0]["trace"]["error"]["message"].as_str().expect("error");
            assert!(message.contains("framing table is wrong"), "{message}");
            assert_eq!(*closed.lock().expect("lock"), Some(false));
            assert!(writer.write_framed(b"", &[]).is_err(), "the run has ended");
        }
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
