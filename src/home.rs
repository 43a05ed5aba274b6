//! airlock's home folder: where the state database, caches and installs live.
//!
//! `$AIRLOCK_HOME` if set, else `$HOME/.airlock`, else `./.airlock`. Owns only the
//! layout of that folder; each user of a path creates what it needs.

use std::path::PathBuf;

/// The home folder.
pub fn dir() -> PathBuf {
    if let Some(home) = std::env::var_os("AIRLOCK_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home);
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => PathBuf::from(home).join(".airlock"),
        None => PathBuf::from(".airlock"),
    }
}

/// The default state database: `<home>/state.db`.
pub fn state_db() -> PathBuf {
    dir().join("state.db")
}

/// The default read cache: `<home>/cache/default.sqlite`.
pub fn default_cache() -> PathBuf {
    dir().join("cache").join("default.sqlite")
}

/// The default local root, mapped to `/local` inside sandboxes: `<home>/local`.
pub fn local_root() -> PathBuf {
    dir().join("local")
}
