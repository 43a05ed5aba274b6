//! The framing table of a batch (`airlock:destination@0.2.0`): for each message
//! line, its type, where it lies, and for a record its stream (an index into the
//! configured catalog), its raw `data` and `meta` and its `emitted_at`.
//!
//! Whoever frames a batch (the host for input, a plugin for its output) builds
//! these; whoever receives one checks it with [`check_frames`] before slicing a
//! byte with it, so a wrong table is an error, never an out-of-bounds read.

use std::ops::Range;

/// The `type` of a framed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// RECORD.
    Record,
    /// STATE.
    State,
    /// TRACE.
    Trace,
    /// LOG.
    Log,
    /// Any other type.
    Other,
}

impl FrameKind {
    /// The kind of a message whose `type` is `message_type` (`"RECORD"`, …).
    pub fn of_type(message_type: &str) -> Self {
        match message_type {
            "RECORD" => Self::Record,
            "STATE" => Self::State,
            "TRACE" => Self::Trace,
            "LOG" => Self::Log,
            _ => Self::Other,
        }
    }

    /// The protocol's word for it (`"RECORD"`, …; `"other"` for the rest).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Record => "RECORD",
            Self::State => "STATE",
            Self::Trace => "TRACE",
            Self::Log => "LOG",
            Self::Other => "other",
        }
    }
}

/// A byte range of a batch: its first byte and its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// Offset of the first byte from the start of the batch.
    pub start: u32,
    /// Length in bytes.
    pub len: u32,
}

impl Span {
    /// The span of `range`; `None` if it does not fit in 32 bits (a batch lives
    /// in a 32-bit memory, so no framed batch is that large).
    pub fn of(range: Range<usize>) -> Option<Self> {
        Some(Self {
            start: u32::try_from(range.start).ok()?,
            len: u32::try_from(range.end.checked_sub(range.start)?).ok()?,
        })
    }

    /// One past the last byte, without overflow.
    pub fn end(self) -> u64 {
        u64::from(self.start) + u64::from(self.len)
    }

    /// The byte range, for slicing (after [`check_frames`]).
    pub fn range(self) -> Range<usize> {
        self.start as usize..self.end() as usize
    }

    fn within(self, outer: Span) -> bool {
        self.start >= outer.start && self.end() <= outer.end()
    }
}

/// One framed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// The message's type.
    pub kind: FrameKind,
    /// The whole line, without its `\n`.
    pub line: Span,
    /// A record's stream: its index in the configured catalog (0 otherwise).
    pub stream: u32,
    /// A record's `data`, raw, inside `line` (empty otherwise).
    pub data: Span,
    /// A record's `meta`, raw, inside `line`, when present and not null.
    pub meta: Option<Span>,
    /// A record's `emitted_at` in milliseconds (0 otherwise).
    pub emitted_at: i64,
}

impl Frame {
    /// The frame of a message other than a record.
    pub fn message(kind: FrameKind, line: Span) -> Self {
        Self {
            kind,
            line,
            stream: 0,
            data: Span::default(),
            meta: None,
            emitted_at: 0,
        }
    }
}

/// What is wrong with a framing table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// A range reaches past the end of the batch.
    OutOfBounds {
        /// The frame's position in the table.
        index: usize,
        /// Which range (`line`, `data`, `meta`).
        what: &'static str,
        /// One past its last byte.
        end: u64,
        /// The batch's length.
        len: usize,
    },
    /// A line starts before the previous one ends.
    Overlap {
        /// The frame's position in the table.
        index: usize,
    },
    /// A record's `data` or `meta` lies outside its line.
    OutsideLine {
        /// The frame's position in the table.
        index: usize,
        /// Which range.
        what: &'static str,
    },
    /// A record's stream index is not in the catalog.
    UnknownStream {
        /// The frame's position in the table.
        index: usize,
        /// The index given.
        stream: u32,
        /// Streams in the catalog.
        streams: usize,
    },
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::OutOfBounds {
                index,
                what,
                end,
                len,
            } => write!(
                f,
                "frame {index}: its {what} ends at byte {end}, past the end of the {len}-byte batch"
            ),
            Self::Overlap { index } => {
                write!(
                    f,
                    "frame {index}: its line starts before the previous line ends (frames must be in order and not overlap)"
                )
            }
            Self::OutsideLine { index, what } => {
                write!(f, "frame {index}: its {what} lies outside its line")
            }
            Self::UnknownStream {
                index,
                stream,
                streams,
            } => write!(
                f,
                "frame {index}: stream index {stream} is not in the catalog ({streams} streams)"
            ),
        }
    }
}

impl std::error::Error for FrameError {}

/// Checks that every range of `frames` lies inside `messages`, lines in order
/// and not overlapping, a record's `data` and `meta` inside its line, and a
/// record's stream below `streams` (pass `usize::MAX` when records are not
/// expected to name one). Afterwards every [`Span::range`] of the table slices
/// `messages` safely.
///
/// # Errors
/// The first problem found, naming the frame.
///
/// ```
/// use airbyte_protocol::{Frame, FrameKind, Span, check_frames};
/// let batch = b"{\"type\":\"STATE\",\"state\":{}}\n";
/// let line = Span { start: 0, len: 27 };
/// assert!(check_frames(batch, &[Frame::message(FrameKind::State, line)], 1).is_ok());
/// let beyond = Span { start: 10, len: 40 };
/// assert!(check_frames(batch, &[Frame::message(FrameKind::State, beyond)], 1).is_err());
/// ```
pub fn check_frames(messages: &[u8], frames: &[Frame], streams: usize) -> Result<(), FrameError> {
    let mut previous_end = 0u64;
    for (index, frame) in frames.iter().enumerate() {
        let end = frame.line.end();
        if end > messages.len() as u64 {
            return Err(FrameError::OutOfBounds {
                index,
                what: "line",
                end,
                len: messages.len(),
            });
        }
        if u64::from(frame.line.start) < previous_end {
            return Err(FrameError::Overlap { index });
        }
        previous_end = end;
        if frame.kind != FrameKind::Record {
            continue;
        }
        if !frame.data.within(frame.line) {
            return Err(FrameError::OutsideLine {
                index,
                what: "data",
            });
        }
        if frame.meta.is_some_and(|meta| !meta.within(frame.line)) {
            return Err(FrameError::OutsideLine {
                index,
                what: "meta",
            });
        }
        if frame.stream as usize >= streams {
            return Err(FrameError::UnknownStream {
                index,
                stream: frame.stream,
                streams,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(line: (u32, u32), data: (u32, u32), stream: u32) -> Frame {
        Frame {
            kind: FrameKind::Record,
            line: Span {
                start: line.0,
                len: line.1,
            },
            stream,
            data: Span {
                start: data.0,
                len: data.1,
            },
            meta: None,
            emitted_at: 1,
        }
    }

    #[test]
    fn a_table_is_checked_for_bounds_order_nesting_and_streams() {
        let batch = [b'x'; 100];
        let good = [record((0, 40), (10, 20), 0), record((41, 40), (50, 30), 1)];
        assert_eq!(check_frames(&batch, &good, 2), Ok(()));
        assert!(matches!(
            check_frames(&batch, &[record((90, 20), (90, 1), 0)], 2),
            Err(FrameError::OutOfBounds {
                what: "line",
                end: 110,
                ..
            })
        ));
        assert_eq!(
            check_frames(
                &batch,
                &[record((0, 40), (0, 1), 0), record((39, 2), (39, 1), 0)],
                2
            ),
            Err(FrameError::Overlap { index: 1 })
        );
        assert_eq!(
            check_frames(&batch, &[record((0, 40), (30, 20), 0)], 2),
            Err(FrameError::OutsideLine {
                index: 0,
                what: "data"
            })
        );
        assert_eq!(
            check_frames(&batch, &[record((0, 40), (0, 1), 2)], 2),
            Err(FrameError::UnknownStream {
                index: 0,
                stream: 2,
                streams: 2
            })
        );
        // Offsets near u32::MAX do not overflow.
        assert!(check_frames(&batch, &[record((u32::MAX, u32::MAX), (0, 0), 0)], 2).is_err());
        let mut meta = record((0, 40), (1, 2), 0);
        meta.meta = Some(Span { start: 39, len: 5 });
        assert_eq!(
            check_frames(&batch, &[meta], 2),
            Err(FrameError::OutsideLine {
                index: 0,
                what: "meta"
            })
        );
    }
}
