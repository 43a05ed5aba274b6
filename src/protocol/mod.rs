//! `protocol`: the Airbyte protocol as data — messages, catalogs and line framing.
//!
//! Owns the wire format and nothing else: no I/O policy, no process handling, no state.
//! Everything that crosses a connector boundary is one of these types or a raw line.
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

mod catalog;
pub mod framing;
mod message;

pub use catalog::{
    AirbyteStream, ConfiguredAirbyteCatalog, ConfiguredAirbyteStream, DestinationSyncMode, SyncMode,
};
pub use framing::{
    DEFAULT_MAX_LINE_BYTES, FramingError, LineBatch, LinePeek, LineReader, OutputLine,
    classify_output, parse_message, peek_line,
};
pub use message::*;

#[cfg(test)]
mod tests;
