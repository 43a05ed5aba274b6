//! `destination`: the two traits a destination implements — [`Destination`]
//! for the `spec`, `check` and `write` commands, and [`RecordWriter`] for the
//! records and checkpoints of one `write`.

use crate::{ConfiguredCatalog, Context, DestinationError, Emitter, Record};

/// An Airbyte destination: one implementation serves the native CLI and the
/// WASM component alike.
pub trait Destination {
    /// The SPEC payload: the whole ConnectorSpecification object, with its
    /// `connectionSpecification` JSON Schema, `documentationUrl`,
    /// `supported_destination_sync_modes` and so on.
    fn spec(&self) -> serde_json::Value;

    /// Checks that `config` is usable: `Ok(())` is reported as
    /// CONNECTION_STATUS SUCCEEDED, `Err(message)` as FAILED with that
    /// message. A bad configuration is a FAILED status, never a crash.
    fn check(&self, config: &serde_json::Value, ctx: &Context) -> Result<(), String>;

    /// Like [`check`](Self::check), with a message on success too:
    /// `Ok(Some(message))` is reported as SUCCEEDED with that message. Every
    /// entry point calls this one; the default calls [`check`](Self::check)
    /// and gives no message.
    fn check_with_message(
        &self,
        config: &serde_json::Value,
        ctx: &Context,
    ) -> Result<Option<String>, String> {
        self.check(config, ctx).map(|()| None)
    }

    /// Starts a `write`: validates `config` and prepares to receive the
    /// records of `catalog`'s streams.
    ///
    /// # Errors
    ///
    /// A [`DestinationError`] when the configuration is unusable or the
    /// destination cannot be prepared; the run then ends with a TRACE ERROR.
    fn open(
        &self,
        config: &serde_json::Value,
        catalog: &ConfiguredCatalog,
        ctx: &Context,
    ) -> Result<Box<dyn RecordWriter>, DestinationError>;
}

/// Receives the records of one `write` run and makes them durable when asked.
///
/// The run calls [`write`](Self::write) for each record of a catalog stream,
/// [`flush`](Self::flush) before each STATE message is echoed,
/// [`stream_complete`](Self::stream_complete) when a stream is reported
/// COMPLETE, and [`close`](Self::close) exactly once at the end.
///
/// Writers are [`Send`] so that a host may run a session on a blocking
/// thread of its choice.
pub trait RecordWriter: Send {
    /// Writes one record. `record.stream_index()` is its stream's position in
    /// the catalog given to [`Destination::open`]. Logs go through `out`.
    ///
    /// # Errors
    ///
    /// A [`DestinationError`] ends the run: no later state is echoed.
    fn write(&mut self, record: &Record<'_>, out: &mut Emitter<'_>)
    -> Result<(), DestinationError>;

    /// Makes every record written so far durable: after this returns, a
    /// crash of the destination must not lose them. Called before each STATE
    /// message is echoed.
    ///
    /// # Errors
    ///
    /// A [`DestinationError`] ends the run and the state is not echoed.
    fn flush(&mut self) -> Result<(), DestinationError>;

    /// A STATE arrived: may its echo wait for a later [`flush`](Self::flush)?
    /// `true` holds it back (in order, with its `destinationStats`) until the
    /// next state for which this returns `false`, until the input runs dry
    /// (the host has nothing more to send for now), or until a clean end —
    /// so that a destination whose commit is costly commits many states at
    /// once. The default, `false`, flushes at every state.
    fn may_defer_state(&mut self) -> bool {
        false
    }

    /// A TRACE STREAM_STATUS COMPLETE arrived for the catalog stream at
    /// `stream_index`: the source has sent all of its records. An overwrite
    /// may only replace prior data for a stream that completed.
    ///
    /// # Errors
    ///
    /// A [`DestinationError`] ends the run.
    fn stream_complete(&mut self, stream_index: usize) -> Result<(), DestinationError> {
        let _ = stream_index;
        Ok(())
    }

    /// The end of the input. `clean` is false when the run is ending on an
    /// error: the writer must then keep prior data and everything it flushed.
    ///
    /// # Errors
    ///
    /// A [`DestinationError`] makes the run fail.
    fn close(self: Box<Self>, clean: bool) -> Result<(), DestinationError>;
}
