//! [`WasmError`]: what the WASM backend can get wrong before a guest runs — the
//! component file, its world, or a command its world cannot do. What a running
//! guest does wrong is a [`RunError`](crate::executor::RunError).

use std::path::PathBuf;

use crate::remedy::Remedy;

/// The WASM backend could not load or run the component.
#[derive(Debug, thiserror::Error)]
pub enum WasmError {
    /// The component file does not exist.
    #[error(
        "component {} not found: the file does not exist\nfix: {}",
        path.display(),
        Remedy::CheckComponentPath { path: path.clone() }
    )]
    NotFound {
        /// The path tried.
        path: PathBuf,
    },

    /// The file is not a WebAssembly component airlock can compile.
    #[error(
        "{} is not a usable WebAssembly component: {reason}\nfix: {}",
        path.display(),
        Remedy::BuildComponent
    )]
    InvalidComponent {
        /// Where the bytes came from.
        path: PathBuf,
        /// wasmtime's reason.
        reason: String,
    },

    /// The component implements a world airlock does not run.
    #[error(
        "the component implements another world or an incompatible version; \
         it exports [{}], but airlock runs `airlock:destination/destination@0.2.x` and `@0.1.x` plugins \
         and `wasi:cli/run@0.2.x` commands{}",
        exports.join(", "), detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default()
    )]
    UnsupportedWorld {
        /// What the component exports.
        exports: Vec<String>,
        /// More detail (e.g. an import the sandbox does not provide).
        detail: Option<String>,
    },

    /// The component cannot do what was asked (a destination plugin asked to read).
    #[error("cannot run `{command}`: {reason}")]
    Unsupported {
        /// The command asked for.
        command: &'static str,
        /// Why, and what would.
        reason: &'static str,
    },
}

impl WasmError {
    /// How to fix it, when the library knows.
    pub fn remedy(&self) -> Option<Remedy> {
        match self {
            Self::NotFound { path } => Some(Remedy::CheckComponentPath { path: path.clone() }),
            Self::InvalidComponent { .. } => Some(Remedy::BuildComponent),
            Self::UnsupportedWorld { .. } | Self::Unsupported { .. } => None,
        }
    }
}
