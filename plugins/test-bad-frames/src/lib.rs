//! `test-bad-frames`: an `airlock:destination@0.2.0` plugin written against the
//! WIT alone, without the SDK. It drops records and echoes each STATE it gets;
//! its config's `frames` says how it frames that output:
//!
//! - `ok` (the default): correctly, so it is a working dev-null;
//! - `out_of_bounds`: the first line reaches 1000 bytes past the output;
//! - `wrong_kind`: every line is said to be a LOG;
//! - `missing`: no frames at all.
//!
//! The host must refuse every table but `ok` with an error naming the plugin,
//! never read past the output, and confirm nothing it did not frame.

/// How the output is framed; from the config's `frames`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Correctly.
    Ok,
    /// The first line's length reaches past the output.
    OutOfBounds,
    /// Every line is said to be a LOG.
    WrongKind,
    /// No frames.
    Missing,
}

impl Mode {
    /// The mode a config (JSON text) names; `ok` when it names none.
    pub fn of_config(config: &str) -> Self {
        for (word, mode) in [
            ("out_of_bounds", Self::OutOfBounds),
            ("wrong_kind", Self::WrongKind),
            ("missing", Self::Missing),
        ] {
            if config.contains(&format!("\"{word}\"")) {
                return mode;
            }
        }
        Self::Ok
    }
}

#[cfg(target_arch = "wasm32")]
mod component {
    #![allow(
        missing_docs,
        unsafe_code,
        reason = "wit-bindgen's generated export glue"
    )]
    wit_bindgen::generate!({ path: "../../wit/destination-0.2.0", world: "plugin" });

    use super::Mode;
    use airlock::destination::types::{
        ConnectionStatus, DestinationError, Frame, Framed, MessageKind, Span,
    };
    use exports::airlock::destination::destination::{Guest, GuestWriter, Writer};

    struct BadFrames;

    struct FrameWriter(Mode);

    impl Guest for BadFrames {
        type Writer = FrameWriter;

        fn spec() -> String {
            r#"{"documentationUrl":"https://example.invalid","connectionSpecification":{"type":"object","properties":{"frames":{"type":"string"}}},"supported_destination_sync_modes":["append","overwrite"]}"#.into()
        }

        fn check(_config: String) -> ConnectionStatus {
            ConnectionStatus {
                succeeded: true,
                message: None,
            }
        }
    }

    impl GuestWriter for FrameWriter {
        fn open(config: String, _catalog: String) -> Result<Writer, DestinationError> {
            Ok(Writer::new(FrameWriter(Mode::of_config(&config))))
        }

        fn write_batch(
            &self,
            messages: Vec<u8>,
            frames: Vec<Frame>,
        ) -> Result<Framed, DestinationError> {
            let mut out = Vec::new();
            let mut table = Vec::new();
            for frame in frames.iter().filter(|f| f.kind == MessageKind::State) {
                let start = frame.line.start as usize;
                let line = &messages[start..start + frame.line.len as usize];
                table.push(Frame {
                    kind: MessageKind::State,
                    line: Span {
                        start: out.len() as u32,
                        len: line.len() as u32,
                    },
                    stream: 0,
                    data: Span { start: 0, len: 0 },
                    meta: None,
                    emitted_at: 0,
                });
                out.extend_from_slice(line);
                out.push(b'\n');
            }
            match self.0 {
                Mode::Ok => {}
                Mode::OutOfBounds => {
                    if let Some(first) = table.first_mut() {
                        first.line.len += 1000;
                    }
                }
                Mode::WrongKind => table.iter_mut().for_each(|f| f.kind = MessageKind::Log),
                Mode::Missing => table.clear(),
            }
            Ok(Framed {
                messages: out,
                frames: table,
            })
        }

        fn close(&self) -> Result<Framed, DestinationError> {
            Ok(Framed {
                messages: Vec::new(),
                frames: Vec::new(),
            })
        }
    }

    export!(BadFrames);
}
