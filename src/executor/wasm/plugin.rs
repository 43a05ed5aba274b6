//! A plugin-world component's calls, whichever version of
//! `airlock:destination` it exports: 0.1.0 (newline-delimited batches) or 0.2.0
//! (batches with the host's framing table, output framed by the plugin).
//!
//! Owns converting between the versions' generated types and the host's, and
//! checking a 0.2.0 plugin's output table before a byte of it is read. It does
//! not decide what a call's result means for the run: `run_plugin` in the parent
//! module does.

use wasmtime::Store;
use wasmtime::component::ResourceAny;

use super::host::{HostState, v0_1, v0_2};
use crate::protocol::{
    FailureType, Frame, FrameKind, LineBatch, LinePeek, MessageType, Span, check_frames, peek_line,
};

/// A plugin's error: the message and who is to blame.
pub(super) struct PluginError {
    pub message: String,
    pub failure_type: FailureType,
}

/// What a write or close returned: output lines, and (0.2.0) the plugin's table.
pub(super) struct Output {
    pub messages: Vec<u8>,
    pub frames: Option<Vec<Frame>>,
}

/// An instantiated plugin of either version.
pub(super) enum Plugin {
    V0_1(v0_1::DestinationPlugin),
    V0_2(v0_2::Plugin),
}

type Call<T> = wasmtime::Result<Result<T, PluginError>>;

impl Plugin {
    pub async fn spec(&self, store: &mut Store<HostState>) -> wasmtime::Result<String> {
        match self {
            Self::V0_1(p) => p.airlock_destination_destination().call_spec(store).await,
            Self::V0_2(p) => p.airlock_destination_destination().call_spec(store).await,
        }
    }

    /// `check`: whether it succeeded, and the message.
    pub async fn check(
        &self,
        store: &mut Store<HostState>,
        config: &str,
    ) -> wasmtime::Result<(bool, Option<String>)> {
        Ok(match self {
            Self::V0_1(p) => {
                let s = p
                    .airlock_destination_destination()
                    .call_check(store, config)
                    .await?;
                (s.succeeded, s.message)
            }
            Self::V0_2(p) => {
                let s = p
                    .airlock_destination_destination()
                    .call_check(store, config)
                    .await?;
                (s.succeeded, s.message)
            }
        })
    }

    pub async fn open(
        &self,
        store: &mut Store<HostState>,
        config: &str,
        catalog: &str,
    ) -> Call<ResourceAny> {
        Ok(match self {
            Self::V0_1(p) => p
                .airlock_destination_destination()
                .writer()
                .call_open(store, config, catalog)
                .await?
                .map_err(error_v0_1),
            Self::V0_2(p) => p
                .airlock_destination_destination()
                .writer()
                .call_open(store, config, catalog)
                .await?
                .map_err(error_v0_2),
        })
    }

    /// `write-batch`. A 0.2.0 plugin gets `batch`'s frames (converted into
    /// `scratch`, reused between calls); an empty batch says the input ran dry.
    pub async fn write(
        &self,
        store: &mut Store<HostState>,
        writer: ResourceAny,
        batch: &LineBatch,
        scratch: &mut Vec<v0_2::airlock::destination::types::Frame>,
    ) -> Call<Output> {
        Ok(match self {
            Self::V0_1(p) => p
                .airlock_destination_destination()
                .writer()
                .call_write_batch(store, writer, batch.as_bytes())
                .await?
                .map(|messages| Output {
                    messages,
                    frames: None,
                })
                .map_err(error_v0_1),
            Self::V0_2(p) => {
                scratch.clear();
                scratch.extend(batch.frames().iter().map(frame_to_wit));
                p.airlock_destination_destination()
                    .writer()
                    .call_write_batch(store, writer, batch.as_bytes(), scratch)
                    .await?
                    .map(output_v0_2)
                    .map_err(error_v0_2)
            }
        })
    }

    pub async fn close(&self, store: &mut Store<HostState>, writer: ResourceAny) -> Call<Output> {
        Ok(match self {
            Self::V0_1(p) => p
                .airlock_destination_destination()
                .writer()
                .call_close(store, writer)
                .await?
                .map(|messages| Output {
                    messages,
                    frames: None,
                })
                .map_err(error_v0_1),
            Self::V0_2(p) => p
                .airlock_destination_destination()
                .writer()
                .call_close(store, writer)
                .await?
                .map(output_v0_2)
                .map_err(error_v0_2),
        })
    }
}

fn error_v0_1(e: v0_1::airlock::destination::types::DestinationError) -> PluginError {
    use v0_1::airlock::destination::types::FailureType as Wit;
    PluginError {
        message: e.message,
        failure_type: match e.failure_type {
            Wit::SystemError => FailureType::SystemError,
            Wit::ConfigError => FailureType::ConfigError,
            Wit::TransientError => FailureType::TransientError,
        },
    }
}

fn error_v0_2(e: v0_2::airlock::destination::types::DestinationError) -> PluginError {
    use v0_2::airlock::destination::types::FailureType as Wit;
    PluginError {
        message: e.message,
        failure_type: match e.failure_type {
            Wit::SystemError => FailureType::SystemError,
            Wit::ConfigError => FailureType::ConfigError,
            Wit::TransientError => FailureType::TransientError,
        },
    }
}

fn frame_to_wit(frame: &Frame) -> v0_2::airlock::destination::types::Frame {
    use v0_2::airlock::destination::types as wit;
    let span = |s: Span| wit::Span {
        start: s.start,
        len: s.len,
    };
    wit::Frame {
        kind: match frame.kind {
            FrameKind::Record => wit::MessageKind::Record,
            FrameKind::State => wit::MessageKind::State,
            FrameKind::Trace => wit::MessageKind::Trace,
            FrameKind::Log => wit::MessageKind::Log,
            FrameKind::Other => wit::MessageKind::Other,
        },
        line: span(frame.line),
        stream: frame.stream,
        data: span(frame.data),
        meta: frame.meta.map(span),
        emitted_at: frame.emitted_at,
    }
}

fn output_v0_2(framed: v0_2::airlock::destination::types::Framed) -> Output {
    use v0_2::airlock::destination::types as wit;
    let span = |s: wit::Span| Span {
        start: s.start,
        len: s.len,
    };
    let frames = framed
        .frames
        .into_iter()
        .map(|f| Frame {
            kind: match f.kind {
                wit::MessageKind::Record => FrameKind::Record,
                wit::MessageKind::State => FrameKind::State,
                wit::MessageKind::Trace => FrameKind::Trace,
                wit::MessageKind::Log => FrameKind::Log,
                wit::MessageKind::Other => FrameKind::Other,
            },
            line: span(f.line),
            stream: f.stream,
            data: span(f.data),
            meta: f.meta.map(span),
            emitted_at: f.emitted_at,
        })
        .collect();
    Output {
        messages: framed.messages,
        frames: Some(frames),
    }
}

/// The output lines a plugin's table describes, each ending in `\n`; or what is
/// wrong with the table. Every non-blank line of `messages` must have exactly one
/// frame, in order, whose kind is the line's message type (`other` for a line that
/// is not one of RECORD, STATE, TRACE, LOG, e.g. plain text).
pub(super) fn framed_lines(messages: &[u8], frames: &[Frame]) -> Result<Vec<u8>, String> {
    check_frames(messages, frames, usize::MAX).map_err(|e| e.to_string())?;
    let lines = messages
        .split(|b| *b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .count();
    if lines != frames.len() {
        return Err(format!(
            "{} frames for {lines} non-blank output lines",
            frames.len()
        ));
    }
    let mut out = Vec::with_capacity(messages.len() + 1);
    for (index, frame) in frames.iter().enumerate() {
        let line = &messages[frame.line.range()];
        if memchr::memchr(b'\n', line).is_some() {
            return Err(format!("frame {index}: its line spans more than one line"));
        }
        let is = match peek_line(line) {
            LinePeek::Record { .. } => FrameKind::Record,
            LinePeek::Other(MessageType::State) => FrameKind::State,
            LinePeek::Other(MessageType::Trace) => FrameKind::Trace,
            LinePeek::Other(MessageType::Log) => FrameKind::Log,
            LinePeek::Empty => {
                return Err(format!("frame {index}: its line is blank"));
            }
            LinePeek::Other(_) | LinePeek::NotAMessage(_) => FrameKind::Other,
        };
        if is != frame.kind {
            return Err(format!(
                "frame {index}: it says {} but the line is {}",
                frame.kind.as_str(),
                is.as_str()
            ));
        }
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: FrameKind, start: u32, len: u32) -> Frame {
        Frame::message(kind, Span { start, len })
    }

    #[test]
    fn a_good_table_yields_its_lines() {
        let out = b"{\"type\":\"STATE\",\"state\":{}}\nplain text\n";
        let frames = [
            frame(FrameKind::State, 0, 27),
            frame(FrameKind::Other, 28, 10),
        ];
        assert_eq!(framed_lines(out, &frames).expect("good"), out.to_vec());
        assert_eq!(framed_lines(b"", &[]).expect("empty"), Vec::<u8>::new());
    }

    #[test]
    fn a_bad_table_is_named_never_read_past_its_batch() {
        let out = b"{\"type\":\"STATE\",\"state\":{}}\n{\"type\":\"LOG\",\"log\":{\"level\":\"INFO\",\"message\":\"m\"}}\n";
        for (frames, says) in [
            (vec![frame(FrameKind::State, 0, 4000)], "past the end"),
            (
                vec![frame(FrameKind::State, u32::MAX, u32::MAX)],
                "past the end",
            ),
            (vec![frame(FrameKind::State, 0, 27)], "1 frames for 2"),
            (
                vec![
                    frame(FrameKind::State, 28, 10),
                    frame(FrameKind::State, 0, 27),
                ],
                "before the previous line ends",
            ),
            (
                vec![frame(FrameKind::Log, 0, 27), frame(FrameKind::Log, 28, 51)],
                "frame 0: it says LOG but the line is STATE",
            ),
            (
                vec![
                    frame(FrameKind::State, 0, 79),
                    frame(FrameKind::Other, 79, 0),
                ],
                "more than one line",
            ),
            (
                vec![
                    frame(FrameKind::State, 0, 20),
                    frame(FrameKind::Log, 28, 51),
                ],
                "it says STATE but the line is other",
            ),
        ] {
            let error = framed_lines(out, &frames).expect_err("refused");
            assert!(error.contains(says), "{error} should say {says}");
        }
    }
}
