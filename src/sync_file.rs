//! `sync_file`: one declarative TOML file naming sources, destinations and the
//! syncs between them, so that a scheduler can run `airlock sync --file F NAME`
//! anywhere.
//!
//! Owns reading the file, checking it — every problem at once, each with its
//! line — and resolving an entry's config with its secrets, which the file only
//! ever names by reference (an environment variable or a file), never inline. It
//! runs nothing and opens no store.
//!
//! ```toml
//! [sources.faker]
//! connector = "source-faker"
//! config = { count = 1000, seed = 1 }
//! id = "faker"                   # what its states are filed under; default: the
//!                                # connector (two sources of one connector need ids)
//!
//! [destinations.warehouse]
//! connector = "destination-postgres"
//! config = { host = "db.internal", port = 5432, database = "dw", username = "loader" }
//! secrets = { password = { env = "DW_PASSWORD" } }   # config path = reference
//!
//! [syncs.faker-to-dw]
//! source = "faker"
//! destination = "warehouse"
//! streams = ["users", "purchases"]
//! strategy = "append"            # auto (default), append, replace, merge
//! schedule = "0 * * * *"         # a hint for the scheduler; airlock does not act on it
//! state = "/var/lib/airlock/state.db"   # default: $AIRLOCK_HOME/state.db; "none";
//!                                # or postgres://user@host/db: a URL with a password is
//!                                # a secret, so name where it is instead:
//! # state_secret = { env = "AIRLOCK_STATE_DB" }   # (or { file = "PATH" })
//! cache = "none"                 # default: $AIRLOCK_HOME/cache/default.sqlite; or a path
//! [syncs.faker-to-dw.sandbox]    # the sandbox policy file's keys
//! memory_limit_mib = 512
//! allow_net = ["db.internal:5432"]
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use crate::executor::sandbox::PolicyFile;

/// Keys a source or destination entry may have.
const CONNECTOR_KEYS: [&str; 10] = [
    "connector",
    "id",
    "config",
    "config_file",
    "secrets",
    "wasm",
    "local_executable",
    "docker_image",
    "pip_url",
    "version",
];

/// Keys a sync entry may have.
const SYNC_KEYS: [&str; 11] = [
    "source",
    "destination",
    "streams",
    "strategy",
    "schedule",
    "state",
    "state_secret",
    "cache",
    "full_refresh",
    "destination_id",
    "sandbox",
];

/// What a sync's `strategy` may say.
const STRATEGIES: [&str; 4] = ["auto", "append", "replace", "merge"];

/// A source or a destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorEntry {
    /// The connector's name (`source-faker`, `destination-postgres`, …).
    pub connector: String,
    /// What its states (and a source's cache log) are filed under. A source's
    /// default is its connector's name, so two sources of one connector need
    /// ids; a destination's default is its name and a fingerprint of its config
    /// (a sync's `destination_id` wins).
    #[serde(default)]
    pub id: Option<String>,
    /// Its config, without secrets.
    #[serde(default)]
    pub config: Map<String, Value>,
    /// A JSON file with (more of) its config; `config` wins key by key.
    #[serde(default)]
    pub config_file: Option<PathBuf>,
    /// Secrets by reference: config path (`password`, `credentials.token`) to
    /// where its value is.
    #[serde(default)]
    pub secrets: BTreeMap<String, SecretRef>,
    /// Run it from this WebAssembly component.
    #[serde(default)]
    pub wasm: Option<PathBuf>,
    /// Run it from this local executable.
    #[serde(default)]
    pub local_executable: Option<PathBuf>,
    /// Run its Docker image ("" for `airbyte/<connector>`).
    #[serde(default)]
    pub docker_image: Option<String>,
    /// Install it with pip from this requirement or URL.
    #[serde(default)]
    pub pip_url: Option<String>,
    /// The version wanted.
    #[serde(default)]
    pub version: Option<String>,
}

/// Where a secret's value is.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    /// An environment variable of airlock's.
    #[serde(default)]
    pub env: Option<String>,
    /// A file (its content, without a final newline), e.g. a mounted Secret.
    #[serde(default)]
    pub file: Option<PathBuf>,
}

impl SecretRef {
    /// The value, read now.
    ///
    /// # Errors
    /// A message naming the variable or file that is missing.
    pub fn resolve(&self) -> Result<String, String> {
        match (&self.env, &self.file) {
            (Some(name), None) => {
                std::env::var(name).map_err(|_| format!("environment variable {name} is not set"))
            }
            (None, Some(path)) => std::fs::read_to_string(path)
                .map(|text| text.strip_suffix('\n').unwrap_or(&text).to_owned())
                .map_err(|e| format!("secret file {} cannot be read: {e}", path.display())),
            _ => Err("a secret reference is { env = \"VAR\" } or { file = \"PATH\" }".into()),
        }
    }
}

/// One sync: a source into a destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncEntry {
    /// A key of `[sources]`.
    pub source: String,
    /// A key of `[destinations]`.
    pub destination: String,
    /// Only these streams (default: all).
    #[serde(default)]
    pub streams: Vec<String>,
    /// auto, append, replace or merge (default auto).
    #[serde(default)]
    pub strategy: Option<String>,
    /// When to run, for the scheduler (cron syntax); airlock does not act on it.
    #[serde(default)]
    pub schedule: Option<String>,
    /// The state database: a path, or "none" (default: `$AIRLOCK_HOME/state.db`).
    #[serde(default)]
    pub state: Option<String>,
    /// Where the state database's URL is, when it holds a password (instead of
    /// `state`).
    #[serde(default)]
    pub state_secret: Option<SecretRef>,
    /// The read cache: a path, or "none" for no cache (default: the home's cache).
    #[serde(default)]
    pub cache: Option<String>,
    /// Ignore stored state.
    #[serde(default)]
    pub full_refresh: bool,
    /// Who the destination is, for its stored states (see `--destination-id`).
    #[serde(default)]
    pub destination_id: Option<String>,
    /// The sandbox policy for both connectors (the policy file's keys).
    #[serde(default)]
    pub sandbox: Option<PolicyFile>,
}

/// One problem in a sync file: its line (1-based) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The line it is on.
    pub line: usize,
    /// What is wrong, and the fix when it is not obvious.
    pub message: String,
}

/// A sync file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SyncFileError {
    /// The file cannot be read.
    #[error("sync file {path} cannot be read: {source}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Everything wrong with it, each with its line.
    #[error(
        "sync file {path} has {} problem{}:{}",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" },
        problems.iter().map(|p| format!("\n  {}:{}: {}", path.display(), p.line, p.message)).collect::<String>()
    )]
    Problems {
        /// The file.
        path: PathBuf,
        /// The problems, in line order.
        problems: Vec<Problem>,
    },
    /// No sync of that name.
    #[error("sync file {path} has no sync {name:?} (it has: {})", known.join(", "))]
    NoSuchSync {
        /// The file.
        path: PathBuf,
        /// The name asked for.
        name: String,
        /// The syncs it has.
        known: Vec<String>,
    },
}

/// A checked sync file.
#[derive(Debug, Clone)]
pub struct SyncFile {
    path: PathBuf,
    /// Sources, by name.
    pub sources: BTreeMap<String, ConnectorEntry>,
    /// Destinations, by name.
    pub destinations: BTreeMap<String, ConnectorEntry>,
    /// Syncs, by name.
    pub syncs: BTreeMap<String, SyncEntry>,
    /// Where each secret reference is (`sources.NAME` / `destinations.NAME` and
    /// the config path), for problems found when resolving them.
    secret_lines: BTreeMap<(String, String), usize>,
}

/// Collects problems while the file is walked.
struct Checker<'a> {
    text: &'a str,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn line(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .bytes()
            .filter(|b| *b == b'\n')
            .count()
            + 1
    }

    fn add(&mut self, offset: usize, message: impl Into<String>) {
        let line = self.line(offset);
        self.problems.push(Problem {
            line,
            message: message.into(),
        });
    }

    /// Every key of `table` that is not in `known`, each a problem.
    fn unknown_keys(&mut self, table: &DeTable<'_>, known: &[&str], what: &str) -> bool {
        let mut clean = true;
        for key in table.keys() {
            if !known.contains(&key.get_ref().as_ref()) {
                clean = false;
                self.add(
                    key.span().start,
                    format!(
                        "unknown key {:?} in {what} (known: {})",
                        key.get_ref().as_ref(),
                        known.join(", ")
                    ),
                );
            }
        }
        clean
    }

    /// `value` as `T`, or a problem at the value (or where serde says).
    fn typed<T: for<'de> Deserialize<'de>>(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        what: &str,
    ) -> Option<T> {
        let start = value.span().start;
        match T::deserialize(ValueDeserializer::from(value.clone())) {
            Ok(typed) => Some(typed),
            Err(error) => {
                let at = error.span().map_or(start, |s| s.start);
                self.add(at, format!("{what}: {}", error.message().trim()));
                None
            }
        }
    }
}

/// The `NAME = { … }` entries of one top-level table (`sources`, …).
fn entries<'t, 'i>(
    checker: &mut Checker<'_>,
    root: &'t DeTable<'i>,
    section: &str,
) -> Vec<(
    &'t Spanned<toml::de::DeString<'i>>,
    &'t Spanned<DeValue<'i>>,
)> {
    let Some(value) = root.get(section) else {
        return Vec::new();
    };
    match value.get_ref() {
        DeValue::Table(table) => table.iter().collect(),
        _ => {
            checker.add(
                value.span().start,
                format!("[{section}] must be a table of named entries"),
            );
            Vec::new()
        }
    }
}

/// Secrets written inline in a config: keys that look like secrets with a string
/// value (at any depth).
fn inline_secrets(
    checker: &mut Checker<'_>,
    table: &DeTable<'_>,
    prefix: &str,
    what: &str,
    referenced: &BTreeMap<String, SecretRef>,
) {
    for (key, value) in table {
        let name = key.get_ref().as_ref();
        let path = if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}.{name}")
        };
        match value.get_ref() {
            DeValue::Table(inner) => inline_secrets(checker, inner, &path, what, referenced),
            DeValue::String(_) => {
                let lower = name.to_ascii_lowercase();
                if crate::config::SECRET_HINTS
                    .iter()
                    .any(|h| lower.contains(h))
                    && !referenced.contains_key(&path)
                {
                    checker.add(
                        value.span().start,
                        format!(
                            "{what}: config.{path} looks like a secret written inline; \
                             reference it instead: secrets = {{ {path:?} = {{ env = \"VAR\" }} }} \
                             (or {{ file = \"PATH\" }})"
                        ),
                    );
                }
            }
            _ => {}
        }
    }
}

impl SyncFile {
    /// Reads and checks `path`.
    ///
    /// # Errors
    /// [`SyncFileError::Unreadable`], or every problem found, with its line.
    pub fn read(path: &Path) -> Result<Self, SyncFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| SyncFileError::Unreadable {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Checks `text`, the content of `path` (named in problems).
    ///
    /// # Errors
    /// Every problem found: TOML syntax, unknown keys, wrong types, references to
    /// sources or destinations that do not exist, secrets written inline, secret
    /// references that are neither `env` nor `file`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, SyncFileError> {
        let problems = |problems| SyncFileError::Problems {
            path: path.to_owned(),
            problems,
        };
        let mut checker = Checker {
            text,
            problems: Vec::new(),
        };
        let (root, syntax) = DeTable::parse_recoverable(text);
        for error in syntax {
            let at = error.span().map_or(0, |s| s.start);
            checker.add(at, format!("not valid TOML: {}", error.message().trim()));
        }
        let root = root.into_inner();
        checker.unknown_keys(&root, &["sources", "destinations", "syncs"], "the file");

        let mut file = Self {
            path: path.to_owned(),
            sources: BTreeMap::new(),
            destinations: BTreeMap::new(),
            syncs: BTreeMap::new(),
            secret_lines: BTreeMap::new(),
        };
        for section in ["sources", "destinations"] {
            for (name, value) in entries(&mut checker, &root, section) {
                let name = name.get_ref().as_ref().to_owned();
                let what = format!("{section}.{name}");
                let DeValue::Table(table) = value.get_ref() else {
                    checker.add(value.span().start, format!("{what} must be a table"));
                    continue;
                };
                if !checker.unknown_keys(table, &CONNECTOR_KEYS, &what) {
                    continue;
                }
                let Some(entry) = checker.typed::<ConnectorEntry>(value, &what) else {
                    continue;
                };
                if let Some(DeValue::Table(config)) = table.get("config").map(|v| v.get_ref()) {
                    inline_secrets(&mut checker, config, "", &what, &entry.secrets);
                }
                if let Some(DeValue::Table(secrets)) = table.get("secrets").map(|v| v.get_ref()) {
                    for (key, reference) in secrets {
                        let at = reference.span().start;
                        let path = key.get_ref().as_ref().to_owned();
                        let valid = entry
                            .secrets
                            .get(&path)
                            .is_some_and(|r| r.env.is_some() != r.file.is_some());
                        if !valid {
                            checker.add(
                                at,
                                format!(
                                    "{what}: secrets.{path} must be {{ env = \"VAR\" }} or \
                                     {{ file = \"PATH\" }}, exactly one"
                                ),
                            );
                        }
                        let line = checker.line(at);
                        file.secret_lines.insert((what.clone(), path), line);
                    }
                }
                let executors = [
                    entry.wasm.is_some(),
                    entry.local_executable.is_some(),
                    entry.docker_image.is_some(),
                    entry.pip_url.is_some(),
                ];
                if executors.iter().filter(|set| **set).count() > 1 {
                    checker.add(
                        value.span().start,
                        format!(
                            "{what}: name at most one of wasm, local_executable, docker_image, pip_url"
                        ),
                    );
                }
                match section {
                    "sources" => file.sources.insert(name, entry),
                    _ => file.destinations.insert(name, entry),
                };
            }
        }
        // Two sources filed under one key would share their states and cache log:
        // a run of the second would resume from the first's cursor.
        let mut keys: BTreeMap<&str, &str> = BTreeMap::new();
        for (name, entry) in &file.sources {
            let key = entry.id.as_deref().unwrap_or(&entry.connector);
            if let Some(first) = keys.insert(key, name) {
                checker.add(
                    entry_at(&root, "sources", name),
                    format!(
                        "sources.{name}: sources.{first} is filed under {key:?} too, and their \
                         states would be one; give each an `id` (e.g. id = \"{name}\")"
                    ),
                );
            }
        }
        for (name, value) in entries(&mut checker, &root, "syncs") {
            let name = name.get_ref().as_ref().to_owned();
            let what = format!("syncs.{name}");
            let DeValue::Table(table) = value.get_ref() else {
                checker.add(value.span().start, format!("{what} must be a table"));
                continue;
            };
            let mut clean = checker.unknown_keys(table, &SYNC_KEYS, &what);
            if let Some(sandbox) = table.get("sandbox")
                && let DeValue::Table(policy) = sandbox.get_ref()
            {
                clean &=
                    checker.unknown_keys(policy, &PolicyFile::KEYS, &format!("{what}.sandbox"));
            }
            if !clean {
                continue;
            }
            let Some(entry) = checker.typed::<SyncEntry>(value, &what) else {
                continue;
            };
            let at = |key: &str| {
                table
                    .get(key)
                    .map_or(value.span().start, |v| v.span().start)
            };
            if !root_has(&root, "sources", &entry.source) {
                checker.add(
                    at("source"),
                    format!(
                        "{what}: source {:?} is not defined under [sources]",
                        entry.source
                    ),
                );
            }
            if !root_has(&root, "destinations", &entry.destination) {
                checker.add(
                    at("destination"),
                    format!(
                        "{what}: destination {:?} is not defined under [destinations]",
                        entry.destination
                    ),
                );
            }
            if let Some(strategy) = &entry.strategy
                && !STRATEGIES.contains(&strategy.as_str())
            {
                checker.add(
                    at("strategy"),
                    format!(
                        "{what}: strategy {strategy:?} is not one of {}",
                        STRATEGIES.join(", ")
                    ),
                );
            }
            if let Some(policy) = &entry.sandbox
                && let Err(e) = policy.check()
            {
                checker.add(at("sandbox"), format!("{what}.sandbox: {e}"));
            }
            if entry.state.is_some() && entry.state_secret.is_some() {
                checker.add(
                    at("state_secret"),
                    format!("{what}: give `state` or `state_secret`, not both"),
                );
            }
            if let Some(reference) = &entry.state_secret {
                let line = checker.line(at("state_secret"));
                if reference.env.is_some() == reference.file.is_some() {
                    checker.add(
                        at("state_secret"),
                        format!(
                            "{what}: state_secret must be {{ env = \"VAR\" }} or {{ file = \"PATH\" }}, exactly one"
                        ),
                    );
                }
                file.secret_lines
                    .insert((what.clone(), "state_secret".into()), line);
            }
            if let Some(state) = &entry.state
                && crate::config::url_holds_password(state)
            {
                checker.add(
                    at("state"),
                    format!(
                        "{what}: the state URL holds a password inline; put the URL where a \
                         reference points: state_secret = {{ env = \"VAR\" }} (or {{ file = \"PATH\" }})"
                    ),
                );
            } else if let Some(state) = &entry.state
                && state.contains("://")
                && !crate::config::is_postgres_url(state)
            {
                checker.add(
                    at("state"),
                    format!(
                        "{what}: state {:?}: give a SQLite path, a postgres:// URL or \"none\"",
                        state.split('@').next_back().unwrap_or(state)
                    ),
                );
            }
            file.syncs.insert(name, entry);
        }
        if checker.problems.is_empty() {
            Ok(file)
        } else {
            let mut found = checker.problems;
            found.sort_by_key(|p| p.line);
            Err(problems(found))
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The sync named `name`.
    ///
    /// # Errors
    /// [`SyncFileError::NoSuchSync`], listing the names it has.
    pub fn sync(&self, name: &str) -> Result<&SyncEntry, SyncFileError> {
        self.syncs
            .get(name)
            .ok_or_else(|| SyncFileError::NoSuchSync {
                path: self.path.clone(),
                name: name.to_owned(),
                known: self.syncs.keys().cloned().collect(),
            })
    }

    /// `entry`'s config: `config_file`'s object, then `config` over it, then each
    /// secret read from where it is referenced. `what` is `sources.NAME` or
    /// `destinations.NAME`.
    ///
    /// # Errors
    /// Each problem (an unreadable config file, a missing variable or secret
    /// file), with its line, at once.
    pub fn resolve_config(
        &self,
        what: &str,
        entry: &ConnectorEntry,
    ) -> Result<Value, SyncFileError> {
        let mut problems = Vec::new();
        let mut config = Map::new();
        if let Some(path) = &entry.config_file {
            let path = self.relative(path);
            match crate::config::read_config_arg(&path.display().to_string()) {
                Ok(Value::Object(map)) => config = map,
                Ok(_) => problems.push(Problem {
                    line: 1,
                    message: format!(
                        "{what}: config_file {} is not a JSON object",
                        path.display()
                    ),
                }),
                Err(e) => problems.push(Problem {
                    line: 1,
                    message: format!("{what}: config_file: {e}"),
                }),
            }
        }
        config.extend(entry.config.clone());
        let mut config = Value::Object(config);
        for (path, reference) in &entry.secrets {
            let line = self
                .secret_lines
                .get(&(what.to_owned(), path.clone()))
                .copied()
                .unwrap_or(1);
            match reference.resolve() {
                Ok(value) => set_path(&mut config, path, Value::String(value)),
                Err(message) => problems.push(Problem {
                    line,
                    message: format!("{what}: secrets.{path}: {message}"),
                }),
            }
        }
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(SyncFileError::Problems {
                path: self.path.clone(),
                problems,
            })
        }
    }

    /// Where sync `name`'s states are, as its entry says: `state`, or the URL
    /// its `state_secret` points to (`None` when the entry names neither).
    ///
    /// # Errors
    /// A missing variable or unreadable file, with its line.
    pub fn state_location(
        &self,
        name: &str,
        entry: &SyncEntry,
    ) -> Result<Option<String>, SyncFileError> {
        let Some(reference) = &entry.state_secret else {
            return Ok(entry.state.clone());
        };
        let what = format!("syncs.{name}");
        reference
            .resolve()
            .map(Some)
            .map_err(|message| SyncFileError::Problems {
                path: self.path.clone(),
                problems: vec![Problem {
                    line: self
                        .secret_lines
                        .get(&(what.clone(), "state_secret".into()))
                        .copied()
                        .unwrap_or(1),
                    message: format!("{what}: state_secret: {message}"),
                }],
            })
    }

    /// Resolves every entry's config, as a run would: all problems at once.
    ///
    /// # Errors
    /// Every missing variable, unreadable secret or config file, with its line.
    pub fn check_secrets(&self) -> Result<(), SyncFileError> {
        let mut problems = Vec::new();
        let entries = self
            .sources
            .iter()
            .map(|(n, e)| (format!("sources.{n}"), e))
            .chain(
                self.destinations
                    .iter()
                    .map(|(n, e)| (format!("destinations.{n}"), e)),
            );
        for (what, entry) in entries {
            if let Err(SyncFileError::Problems {
                problems: found, ..
            }) = self.resolve_config(&what, entry)
            {
                problems.extend(found);
            }
        }
        for (name, entry) in &self.syncs {
            if let Err(SyncFileError::Problems {
                problems: found, ..
            }) = self.state_location(name, entry)
            {
                problems.extend(found);
            }
        }
        if problems.is_empty() {
            return Ok(());
        }
        problems.sort_by_key(|p| p.line);
        Err(SyncFileError::Problems {
            path: self.path.clone(),
            problems,
        })
    }

    /// A path in the file, relative to the file's folder.
    pub fn relative(&self, path: &Path) -> PathBuf {
        match self.path.parent() {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_owned(),
        }
    }
}

/// Where entry `name` of `section` starts in the file (its start if absent).
fn entry_at(root: &DeTable<'_>, section: &str, name: &str) -> usize {
    match root.get(section).map(|v| v.get_ref()) {
        Some(DeValue::Table(table)) => table.get(name).map_or(0, |v| v.span().start),
        _ => 0,
    }
}

fn root_has(root: &DeTable<'_>, section: &str, name: &str) -> bool {
    matches!(
        root.get(section).map(|v| v.get_ref()),
        Some(DeValue::Table(table)) if table.contains_key(name)
    )
}

/// Sets `value` at the dotted `path` of `config`, making objects on the way.
fn set_path(config: &mut Value, path: &str, value: Value) {
    let mut at = config;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        if !at.is_object() {
            *at = Value::Object(Map::new());
        }
        let Value::Object(map) = at else { return };
        if parts.peek().is_none() {
            map.insert(part.to_owned(), value);
            return;
        }
        at = map
            .entry(part.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

#[cfg(test)]
mod tests;
