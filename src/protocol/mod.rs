//! `protocol`: the Airbyte protocol as data — messages, catalogs and line framing.
//!
//! Owns the wire format and nothing else: no I/O policy, no process handling, no state.
//! Everything that crosses a connector boundary is one of these types or a raw line.
//! The leaf vocabulary (stream descriptors, catalogs, sync modes, log levels, failure
//! types) is the `airbyte_protocol` crate's, re-exported here under the same names so
//! the host and the plugin SDK agree on it; the envelope, framing, peek and the
//! lossless message model stay here.
//!
//! ```
//! use airlock::protocol::{parse_message, Payload};
//!
//! let line = br#"{"type":"RECORD","record":{"stream":"users","data":{"id":1},"emitted_at":1,"x":true}}"#;
//! let message = parse_message(line).unwrap();
//! let Payload::Record(record) = &message.payload else { panic!("a record") };
//! assert_eq!(record.stream, "users");
//! // Fields the model does not name survive the round trip.
//! assert!(message.to_line().contains(r#""x":true"#));
//! ```

pub mod framing;
mod message;

// The vocabulary shared with the plugin SDK, defined once in `airbyte_protocol`.
pub use airbyte_protocol::{
    AirbyteCatalog, AirbyteStream, ConfiguredAirbyteCatalog, ConfiguredAirbyteStream,
    DestinationSyncMode, Extra, FailureType, Frame, FrameError, FrameKind, LogLevel, Span,
    StreamDescriptor, SyncMode, check_frames,
};
pub use framing::{
    DEFAULT_MAX_LINE_BYTES, FramingError, LineBatch, LinePeek, LineReader, OutputLine,
    classify_output, parse_message, peek_line,
};
pub use message::*;

#[cfg(test)]
mod sdk_roundtrip;
#[cfg(test)]
mod tests;
