//! `airlock k8s job`: Kubernetes Job manifests that run one sync of a sync file,
//! or one Job per stream (`--fan-out streams`), built with the typed Kubernetes
//! API (`k8s-openapi`) so that they are schema-valid.
//!
//! Owns the mapping from a sync entry to a Job: the airlock image running `sync
//! --file`, the sync file from a ConfigMap, the secrets the file references from
//! a Secret (variables as `secretKeyRef`, files as mounted keys; `state_secret`
//! too), resource limits from the sandbox policy, `backoffLimit`, `activeDeadlineSeconds` from the deadline, and
//! the image's user (not root) on a read-only file system but for emptyDirs at its
//! home and `/tmp`.
//! A sync a pod cannot run is refused up front: state not in PostgreSQL (a
//! SQLite file would die with its pod), a connector from a Docker image or pip,
//! relative paths, secret files where the Job mounts its own folders.
//! It applies nothing: no cluster is contacted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    KeyToPath, PodSecurityContext, PodSpec, PodTemplateSpec, ResourceRequirements,
    SecretKeySelector, SecretVolumeSource, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use airlock::sync_file::{SyncEntry, SyncFile};

use crate::cli::report::{Failure, usage};

/// Where the sync file is mounted in the pod.
const FILE_DIR: &str = "/etc/airlock";
/// Memory airlock itself needs beside its sandboxed connectors.
const HOST_OVERHEAD_MIB: u64 = 256;
/// The writable folders of the image (`scripts/package-airlock.sh`): its home
/// (`AIRLOCK_HOME`: the compile cache, the read cache) and `/tmp`, each an
/// emptyDir; the rest of its file system is mounted read-only.
const WRITABLE_DIRS: [(&str, &str); 2] = [("home", "/var/lib/airlock"), ("tmp", "/tmp")];
/// The image's user and group (not root).
const IMAGE_USER: i64 = 65532;

/// `airlock k8s …`.
#[derive(Debug, Subcommand)]
pub enum K8sCommand {
    /// Print Job manifests (a JSON `List`) that run sync NAME of a sync file.
    Job(JobArgs),
}

/// How the syncs are split into Jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FanOut {
    /// One Job per stream the sync lists (they run at once, each with its lease).
    Streams,
}

/// `airlock k8s job`.
#[derive(Debug, Args)]
pub struct JobArgs {
    /// The sync file.
    #[arg(long, value_name = "FILE")]
    pub file: PathBuf,
    /// The sync to run.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// One Job per stream instead of one for the sync.
    #[arg(long, value_enum)]
    pub fan_out: Option<FanOut>,
    /// The airlock image the Jobs run.
    /// (`scripts/package-airlock.sh` builds it).
    #[arg(long, value_name = "IMAGE", default_value = concat!("airlock:", env!("CARGO_PKG_VERSION")))]
    pub image: String,
    /// The ConfigMap holding the sync file (key: its file name).
    #[arg(long, value_name = "NAME", default_value = "airlock-syncs")]
    pub config_map: String,
    /// The Secret holding the file's secrets (keys: the variables' names and the
    /// files' names), `state_secret`'s among them.
    #[arg(long, value_name = "NAME", default_value = "airlock-secrets")]
    pub secret: String,
    /// The namespace of the Jobs.
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Retries of a failed pod before the Job fails.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub backoff_limit: i32,
}

pub(crate) fn run(command: K8sCommand) -> Result<ExitCode, Failure> {
    let K8sCommand::Job(args) = command;
    let file = SyncFile::read(&args.file).map_err(|e| usage(anyhow::anyhow!(e)))?;
    let jobs = jobs(&file, &args).map_err(|e| usage(anyhow::anyhow!(e)))?;
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": jobs});
    println!(
        "{}",
        serde_json::to_string_pretty(&list).map_err(|e| usage(anyhow::anyhow!(e)))?
    );
    Ok(ExitCode::SUCCESS)
}

/// A Kubernetes name from `text`: lowercase letters, digits and dashes, at most
/// 63 characters. When that loses anything (case, other characters, length), a
/// hash of `text` ends it, so `a_b` and `a-b` never name the same Job.
fn dns_name(text: &str) -> String {
    use sha2::{Digest, Sha256};
    let name: String = text
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .collect();
    if name == text && name.len() <= 63 && !name.starts_with('-') && !name.ends_with('-') {
        return name;
    }
    let digest = Sha256::digest(text.as_bytes());
    let hash: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    let mut stem = name;
    stem.truncate(63 - hash.len() - 1);
    match stem.trim_matches('-') {
        "" => hash, // nothing of the text was a letter or digit
        stem => format!("{stem}-{hash}"),
    }
}

/// What a Job cannot run, or would run wrong: the first problem, with its fix.
fn check_runnable(file: &SyncFile, args: &JobArgs, entry: &SyncEntry) -> Result<(), String> {
    let sync = &args.name;
    // A SQLite file on a pod's emptyDir lives and dies with the pod: every run
    // would start over, and fanned-out pods would not see each other's leases.
    let shared_state = entry.state_secret.is_some()
        || entry
            .state
            .as_deref()
            .is_some_and(airlock::config::is_postgres_url);
    if !shared_state {
        return Err(format!(
            "sync {sync}: a Job keeps its state in PostgreSQL, shared by every pod; set \
             `state_secret = {{ env = \"AIRLOCK_STATE_DB\" }}` (the URL, from the Secret) or \
             `state = \"postgres://USER@HOST/DB\"` in [syncs.{sync}]"
        ));
    }
    let connectors = [
        ("sources", &entry.source, file.sources.get(&entry.source)),
        (
            "destinations",
            &entry.destination,
            file.destinations.get(&entry.destination),
        ),
    ];
    for (table, name, connector) in connectors {
        let Some(connector) = connector else { continue };
        let what = format!("[{table}.{name}]");
        if connector.docker_image.is_some() {
            return Err(format!(
                "{what} runs a Docker image, and a Job's pod has no Docker engine: use a \
                 connector the airlock image carries, or its WASI component (`wasm`)"
            ));
        }
        if connector.pip_url.is_some() {
            return Err(format!(
                "{what} installs with pip, and the airlock image has no Python: use a \
                 connector the image carries, or its WASI component (`wasm`)"
            ));
        }
        let paths = [
            ("wasm", &connector.wasm),
            ("local_executable", &connector.local_executable),
            ("config_file", &connector.config_file),
        ];
        for (key, path) in paths {
            if let Some(path) = path
                && !path.is_absolute()
            {
                return Err(format!(
                    "{what}: {key} {} is relative, and only the sync file reaches the pod; \
                     give the absolute path where an image built FROM the airlock image \
                     keeps it",
                    path.display()
                ));
            }
        }
        for (field, reference) in &connector.secrets {
            if let Some(path) = &reference.file {
                mountable(path, &format!("{what}: the secret {field}"))?;
            }
        }
    }
    if let Some(path) = entry.state_secret.as_ref().and_then(|r| r.file.as_ref()) {
        mountable(path, &format!("[syncs.{sync}]: state_secret"))?;
    }
    Ok(())
}

/// Whether the Job can mount a secret file at `path` (absolute, outside the
/// folders it mounts itself); else what is wrong, for `what`.
fn mountable(path: &Path, what: &str) -> Result<(), String> {
    let reserved = [FILE_DIR, WRITABLE_DIRS[0].1, WRITABLE_DIRS[1].1];
    if !path.is_absolute() || reserved.iter().any(|dir| path.starts_with(dir)) {
        return Err(format!(
            "{what} is read from {}, where the Job cannot mount it; use an absolute path \
             outside {} (e.g. /run/secrets/…)",
            path.display(),
            reserved.join(", ")
        ));
    }
    Ok(())
}

/// The Jobs for `args.name`.
fn jobs(file: &SyncFile, args: &JobArgs) -> Result<Vec<Job>, String> {
    let entry = file.sync(&args.name).map_err(|e| e.to_string())?;
    check_runnable(file, args, entry)?;
    match args.fan_out {
        None => Ok(vec![job(file, args, entry, None)?]),
        Some(FanOut::Streams) if entry.streams.is_empty() => Err(format!(
            "sync {} lists no streams: --fan-out streams needs its `streams`",
            args.name
        )),
        Some(FanOut::Streams) => entry
            .streams
            .iter()
            .map(|stream| job(file, args, entry, Some(stream)))
            .collect(),
    }
}

fn secret_env(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.to_owned(),
                key: key.to_owned(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn job(
    file: &SyncFile,
    args: &JobArgs,
    entry: &SyncEntry,
    stream: Option<&String>,
) -> Result<Job, String> {
    let file_name = args
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "syncs.toml".into());
    let mut command = vec![
        "sync".to_owned(),
        "--file".to_owned(),
        format!("{FILE_DIR}/{file_name}"),
        args.name.clone(),
        "--json".to_owned(),
    ];
    if let Some(stream) = stream {
        command.extend(["--streams".to_owned(), stream.clone()]);
    }
    // The secrets the file references: variables from the Secret's keys, files
    // mounted from its keys at their folders.
    let mut env = Vec::new();
    let mut files: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
    let connectors = [
        file.sources.get(&entry.source),
        file.destinations.get(&entry.destination),
    ];
    let references = connectors
        .into_iter()
        .flatten()
        .flat_map(|connector| connector.secrets.values())
        .chain(entry.state_secret.as_ref());
    for reference in references {
        if let Some(variable) = &reference.env
            && !env.iter().any(|e: &EnvVar| &e.name == variable)
        {
            env.push(secret_env(variable, &args.secret, variable));
        }
        if let Some(path) = &reference.file {
            let dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
            let key = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| format!("secret file {} has no file name", path.display()))?;
            files.entry(dir).or_default().push(key);
        }
    }
    let mut volumes = vec![Volume {
        name: "sync-file".into(),
        config_map: Some(ConfigMapVolumeSource {
            name: args.config_map.clone(),
            ..Default::default()
        }),
        ..Default::default()
    }];
    let mut mounts = vec![VolumeMount {
        name: "sync-file".into(),
        mount_path: FILE_DIR.into(),
        read_only: Some(true),
        ..Default::default()
    }];
    for (name, path) in WRITABLE_DIRS {
        volumes.push(Volume {
            name: name.into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        });
        mounts.push(VolumeMount {
            name: name.into(),
            mount_path: path.into(),
            ..Default::default()
        });
    }
    for (i, (dir, keys)) in files.iter().enumerate() {
        let name = format!("secret-files-{i}");
        volumes.push(Volume {
            name: name.clone(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(args.secret.clone()),
                items: Some(
                    keys.iter()
                        .map(|key| KeyToPath {
                            key: key.clone(),
                            path: key.clone(),
                            mode: Some(0o400),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        });
        mounts.push(VolumeMount {
            name,
            mount_path: dir.display().to_string(),
            read_only: Some(true),
            ..Default::default()
        });
    }
    let policy = entry.sandbox.as_ref();
    // Each connector's sandbox gets the limit, and source and destination run at once.
    let memory_mib = policy
        .and_then(|p| p.memory_limit_mib)
        .unwrap_or(airlock::executor::sandbox::DEFAULT_MEMORY_LIMIT_BYTES / (1024 * 1024))
        * 2
        + HOST_OVERHEAD_MIB;
    let memory = Quantity(format!("{memory_mib}Mi"));
    let resources = ResourceRequirements {
        limits: Some(BTreeMap::from([("memory".to_owned(), memory.clone())])),
        requests: Some(BTreeMap::from([
            ("memory".to_owned(), memory),
            ("cpu".to_owned(), Quantity("500m".into())),
        ])),
        ..Default::default()
    };
    let name = match stream {
        Some(stream) => dns_name(&format!("airlock-{}-{stream}", args.name)),
        None => dns_name(&format!("airlock-{}", args.name)),
    };
    let labels = BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "airlock".to_owned()),
        ("airlock.sync".to_owned(), dns_name(&args.name)),
    ]);
    let mut annotations = BTreeMap::new();
    if let Some(schedule) = &entry.schedule {
        // A CronJob's schedule, for whoever wraps this Job in one.
        annotations.insert("airlock.schedule".to_owned(), schedule.clone());
    }
    if let Some(stream) = stream {
        annotations.insert("airlock.stream".to_owned(), stream.clone());
    }
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: args.namespace.clone(),
            labels: Some(labels.clone()),
            annotations: (!annotations.is_empty()).then_some(annotations),
            ..Default::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(args.backoff_limit),
            active_deadline_seconds: policy.and_then(|p| p.deadline_secs).map(|s| s as i64),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    containers: vec![Container {
                        name: "airlock".into(),
                        image: Some(args.image.clone()),
                        args: Some(command),
                        env: (!env.is_empty()).then_some(env),
                        volume_mounts: Some(mounts),
                        resources: Some(resources),
                        security_context: Some(SecurityContext {
                            allow_privilege_escalation: Some(false),
                            read_only_root_filesystem: Some(true),
                            capabilities: Some(Capabilities {
                                drop: Some(vec!["ALL".into()]),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }],
                    volumes: Some(volumes),
                    // The emptyDirs belong to the image's group, so its user writes them.
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(IMAGE_USER),
                        run_as_group: Some(IMAGE_USER),
                        fs_group: Some(IMAGE_USER),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    })
}
