//! The process's one wasmtime [`Engine`], its epoch ticker, and the component cache
//! (in memory for the life of the process, on disk across runs).
//!
//! Owns compiling: nothing else in airlock calls `Component::from_binary` or reads
//! compiled artifacts. A disk entry is keyed by the component's sha256 and wasmtime's
//! compatibility hash, and carries a checksum of its own bytes: an entry that fails
//! the checksum, or that wasmtime refuses, is recompiled, never trusted.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Engine};

/// How often the epoch advances; a running guest yields to the host at each tick.
pub(super) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The engine shared by every WASM connector in this process.
pub(super) fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        config.cranelift_opt_level(wasmtime::OptLevel::Speed);
        // The default configuration is valid; a failure here is a build defect.
        let engine =
            Engine::new(&config).unwrap_or_else(|e| panic!("wasmtime engine configuration: {e:#}"));
        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("airlock-epoch".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .unwrap_or_else(|e| panic!("starting the epoch thread: {e}"));
        engine
    })
}

/// Where compiled components are kept: `<home>/cache/wasm`.
pub(super) fn cache_dir() -> PathBuf {
    crate::home::dir().join("cache").join("wasm")
}

fn compatibility_tag(engine: &Engine) -> String {
    let mut hasher = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compiles `bytes`, or takes it from the memory or disk cache.
///
/// # Errors
/// wasmtime's message when the bytes are not a valid component.
pub(super) fn compile(bytes: &[u8], cache: Option<&Path>) -> Result<Component, String> {
    static MEMORY: OnceLock<Mutex<HashMap<[u8; 32], Component>>> = OnceLock::new();
    let sha256: [u8; 32] = Sha256::digest(bytes).into();
    let memory = MEMORY.get_or_init(Default::default);
    if let Some(component) = memory
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&sha256)
    {
        return Ok(component.clone());
    }
    let engine = engine();
    let entry = cache.map(|dir| {
        dir.join(format!(
            "{}-{}.cwasm",
            hex(&sha256),
            compatibility_tag(engine)
        ))
    });
    let component = match entry.as_deref().and_then(|path| load_entry(engine, path)) {
        Some(component) => component,
        None => {
            let component = Component::from_binary(engine, bytes).map_err(|e| format!("{e:#}"))?;
            if let Some(path) = &entry
                && let Err(error) = store_entry(&component, path)
            {
                tracing::debug!("component cache {}: {error}", path.display());
            }
            component
        }
    };
    memory
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(sha256, component.clone());
    Ok(component)
}

/// Reads a cache entry: a sha256 of the artifact, then the artifact.
fn load_entry(engine: &Engine, path: &Path) -> Option<Component> {
    let data = std::fs::read(path).ok()?;
    let (checksum, artifact) = data.split_at_checked(32)?;
    if Sha256::digest(artifact).as_slice() != checksum {
        tracing::warn!(
            "component cache entry {} is corrupt; recompiling",
            path.display()
        );
        return None;
    }
    // SAFETY: `deserialize` trusts its input to be wasmtime's own output. This entry
    // was written by `store_entry` from `Component::serialize` with this engine's
    // compatibility hash in its name, and its checksum matched just above, so it is
    // the bytes we wrote. wasmtime still checks its version header and refuses a
    // stale artifact, which makes us recompile.
    #[allow(
        unsafe_code,
        reason = "loading our own checksummed compile cache, see SAFETY"
    )]
    let loaded = unsafe { Component::deserialize(engine, artifact) };
    match loaded {
        Ok(component) => Some(component),
        Err(error) => {
            tracing::warn!(
                "component cache entry {} refused ({error}); recompiling",
                path.display()
            );
            None
        }
    }
}

fn store_entry(component: &Component, path: &Path) -> std::io::Result<()> {
    let artifact = component.serialize().map_err(std::io::Error::other)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(&Sha256::digest(&artifact))?;
    tmp.write_all(&artifact)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
