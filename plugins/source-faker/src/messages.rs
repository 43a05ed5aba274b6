//! `messages`: the Airbyte protocol messages the connector prints, one JSON
//! object per line, shaped like the Python CDK's output (field order,
//! `sourceStats.recordCount` as a float such as `100.0`, float
//! `emitted_at` on STREAM_STATUS traces, integer on ESTIMATE and ERROR).
//!
//! RECORD lines are the hot path: [`RecordLine`] writes them by hand into a
//! reused buffer. Everything else goes through `serde_json`. Log levels and
//! failure types are the shared `airbyte_protocol` ones.

use std::io::{self, Write};

pub use airbyte_protocol::{FailureType, LogLevel};
use serde_json::{Value, json};

/// Writes `value` as one line.
pub fn line(out: &mut impl Write, value: &Value) -> io::Result<()> {
    serde_json::to_writer(&mut *out, value).map_err(io::Error::other)?;
    out.write_all(b"\n")
}

/// A LOG message.
pub fn log(out: &mut impl Write, level: LogLevel, message: &str) -> io::Result<()> {
    line(
        out,
        &json!({"type": "LOG", "log": {"level": level, "message": message}}),
    )
}

/// A TRACE STREAM_STATUS (`STARTED`, `RUNNING`, `COMPLETE`, `INCOMPLETE`).
pub fn stream_status(
    out: &mut impl Write,
    emitted_at: f64,
    stream: &str,
    status: &str,
) -> io::Result<()> {
    line(
        out,
        &json!({"type": "TRACE", "trace": {
            "type": "STREAM_STATUS",
            "emitted_at": emitted_at,
            "stream_status": {"stream_descriptor": {"name": stream}, "status": status},
        }}),
    )
}

/// A TRACE ESTIMATE of a stream's rows and bytes.
pub fn estimate(
    out: &mut impl Write,
    emitted_at: i64,
    stream: &str,
    rows: u64,
    bytes: u64,
) -> io::Result<()> {
    line(
        out,
        &json!({"type": "TRACE", "trace": {
            "type": "ESTIMATE",
            "emitted_at": emitted_at,
            "estimate": {"name": stream, "type": "STREAM", "row_estimate": rows, "byte_estimate": bytes},
        }}),
    )
}

/// A TRACE ERROR.
pub fn error(
    out: &mut impl Write,
    emitted_at: i64,
    message: &str,
    internal_message: &str,
    failure_type: FailureType,
) -> io::Result<()> {
    line(
        out,
        &json!({"type": "TRACE", "trace": {
            "type": "ERROR",
            "emitted_at": emitted_at,
            "error": {
                "message": message,
                "internal_message": internal_message,
                "failure_type": failure_type,
            },
        }}),
    )
}

/// A CONNECTION_STATUS, `SUCCEEDED` when `failure` is `None`.
pub fn connection_status(out: &mut impl Write, failure: Option<&str>) -> io::Result<()> {
    let status = match failure {
        None => json!({"status": "SUCCEEDED"}),
        Some(message) => json!({"status": "FAILED", "message": message}),
    };
    line(
        out,
        &json!({"type": "CONNECTION_STATUS", "connectionStatus": status}),
    )
}

/// A STATE of type STREAM: `stream_state` is already-serialized JSON;
/// `record_count` is the number of records of the stream since its
/// previous state (the CDK's `sourceStats.recordCount`).
pub fn stream_state(
    out: &mut impl Write,
    stream_json: &str,
    stream_state: &[u8],
    record_count: u64,
) -> io::Result<()> {
    out.write_all(b"{\"type\":\"STATE\",\"state\":{\"type\":\"STREAM\",\"stream\":{\"stream_descriptor\":{\"name\":")?;
    out.write_all(stream_json.as_bytes())?;
    out.write_all(b"},\"stream_state\":")?;
    out.write_all(stream_state)?;
    writeln!(
        out,
        "}},\"sourceStats\":{{\"recordCount\":{record_count}.0}}}}}}"
    )
}

/// Builds RECORD lines of one stream in a reused buffer.
#[derive(Debug)]
pub struct RecordLine {
    /// `{"type":"RECORD","record":{"stream":"<name>","data":`.
    prefix: Vec<u8>,
    buf: Vec<u8>,
}

impl RecordLine {
    /// A builder for records of `stream_json` (the stream name as a JSON
    /// string, quotes included).
    pub fn new(stream_json: &str) -> Self {
        let mut prefix = b"{\"type\":\"RECORD\",\"record\":{\"stream\":".to_vec();
        prefix.extend_from_slice(stream_json.as_bytes());
        prefix.extend_from_slice(b",\"data\":");
        Self {
            prefix,
            buf: Vec::with_capacity(1024),
        }
    }

    /// Starts a new line and returns the buffer to append the `data`
    /// object to.
    #[inline]
    pub fn begin(&mut self) -> &mut Vec<u8> {
        self.buf.clear();
        self.buf.extend_from_slice(&self.prefix);
        &mut self.buf
    }

    /// Ends the line with `emitted_at` and writes it.
    #[inline]
    pub fn finish(&mut self, out: &mut impl Write, emitted_at: i64) -> io::Result<()> {
        self.buf.extend_from_slice(b",\"emitted_at\":");
        push_int(&mut self.buf, emitted_at);
        self.buf.extend_from_slice(b"}}\n");
        out.write_all(&self.buf)
    }
}

/// Appends the decimal form of `v`.
#[inline]
pub fn push_int(buf: &mut Vec<u8>, v: i64) {
    if v < 0 {
        buf.push(b'-');
    }
    push_uint(buf, v.unsigned_abs());
}

/// Appends the decimal form of `v`.
#[inline]
pub fn push_uint(buf: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

/// Appends `"s"` where `s` is already JSON-escaped.
#[inline]
pub fn push_str(buf: &mut Vec<u8>, escaped: &str) {
    buf.push(b'"');
    buf.extend_from_slice(escaped.as_bytes());
    buf.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_and_state_lines() {
        let mut out = Vec::new();
        let mut rec = RecordLine::new("\"users\"");
        rec.begin().extend_from_slice(b"{\"id\":1}");
        rec.finish(&mut out, 1_795_600_668_390).expect("write");
        stream_state(&mut out, "\"users\"", b"{\"seed\":1}", 200).expect("write");
        let text = String::from_utf8(out).expect("utf8");
        assert_eq!(
            text,
            "{\"type\":\"RECORD\",\"record\":{\"stream\":\"users\",\"data\":{\"id\":1},\"emitted_at\":1795600668390}}\n\
             {\"type\":\"STATE\",\"state\":{\"type\":\"STREAM\",\"stream\":{\"stream_descriptor\":{\"name\":\"users\"},\"stream_state\":{\"seed\":1}},\"sourceStats\":{\"recordCount\":200.0}}}\n"
        );
        for l in text.lines() {
            serde_json::from_str::<Value>(l).expect("valid JSON");
        }
    }

    #[test]
    fn integers() {
        let mut b = Vec::new();
        push_int(&mut b, 0);
        b.push(b' ');
        push_int(&mut b, -42);
        b.push(b' ');
        push_uint(&mut b, u64::MAX);
        assert_eq!(b, b"0 -42 18446744073709551615");
    }
}
