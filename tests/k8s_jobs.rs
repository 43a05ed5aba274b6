//! `airlock k8s job`: the manifests it prints, and those manifests' containers run
//! in the airlock image (`scripts/package-airlock.sh`) by Docker the way a kubelet
//! would run them. No Kubernetes cluster is reachable here, so no Job is applied:
//! what a cluster adds (scheduling, retries, the API server) is not tested.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use k8s_openapi::api::batch::v1::Job;

use crate::support::*;

/// `airlock k8s job` prints Jobs that parse back into the typed Kubernetes Job and
/// carry what a run needs. No cluster is reachable here: this checks the
/// manifests, not a run on Kubernetes.
#[test]
fn k8s_jobs_parse_back_into_typed_jobs_and_carry_the_sync() {
    let sb = Sandbox::new();
    let file = sb.file(
        "syncs.toml",
        r#"[sources.faker]
connector = "source-faker"
config = { count = 1000 }
[destinations.pg]
connector = "destination-postgres"
config = { host = "db", port = 5432, database = "dw", username = "loader", schema = "raw" }
secrets = { password = { file = "/run/secrets/dw/password" }, "tunnel.token" = { env = "TUNNEL_TOKEN" } }
[syncs.faker-to-pg]
source = "faker"
destination = "pg"
streams = ["users", "purchases"]
schedule = "0 * * * *"
state = "postgres://airlock@db/airlock"
[syncs.faker-to-pg.sandbox]
memory_limit_mib = 512
deadline_secs = 3600
"#,
    );
    let jobs = |extra: &[&str]| -> Vec<Job> {
        let mut args = vec![
            "k8s",
            "job",
            "--file",
            file.to_str().unwrap(),
            "faker-to-pg",
        ];
        args.extend_from_slice(extra);
        let run = sb.run(&args, None);
        run.expect_code(0);
        let list: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
        assert_eq!(list["kind"], "List");
        serde_json::from_value(list["items"].clone()).expect("typed Jobs")
    };
    let one = jobs(&[]);
    assert_eq!(one.len(), 1);
    let job = &one[0];
    assert_eq!(job.metadata.name.as_deref(), Some("airlock-faker-to-pg"));
    let spec = job.spec.as_ref().expect("spec");
    assert_eq!(spec.backoff_limit, Some(3));
    assert_eq!(spec.active_deadline_seconds, Some(3600));
    let pod = spec.template.spec.as_ref().expect("pod");
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    let container = &pod.containers[0];
    let args = container.args.as_ref().expect("args");
    assert_eq!(
        args[..4],
        ["sync", "--file", "/etc/airlock/syncs.toml", "faker-to-pg"].map(String::from)
    );
    // The state URL (no password) is the file's own: no flag overrides it.
    assert!(!args.contains(&"--state-db".to_owned()), "{args:?}");
    let env = container.env.as_ref().expect("env");
    let from_secret = |name: &str| {
        env.iter()
            .find(|e| e.name == name)
            .and_then(|e| e.value_from.as_ref()?.secret_key_ref.as_ref())
            .map(|r| (r.name.clone(), r.key.clone()))
    };
    assert_eq!(
        from_secret("TUNNEL_TOKEN"),
        Some(("airlock-secrets".into(), "TUNNEL_TOKEN".into()))
    );
    assert_eq!(from_secret("AIRLOCK_STATE_DB"), None);
    let mounts = container.volume_mounts.as_ref().expect("mounts");
    assert!(mounts.iter().any(|m| m.mount_path == "/etc/airlock"));
    assert!(mounts.iter().any(|m| m.mount_path == "/run/secrets/dw"));
    // The image's home and /tmp are emptyDirs; the rest is read-only, not root's.
    for dir in ["/var/lib/airlock", "/tmp"] {
        let mount = mounts.iter().find(|m| m.mount_path == dir).expect(dir);
        let volume = pod.volumes.iter().flatten().find(|v| v.name == mount.name);
        assert!(volume.and_then(|v| v.empty_dir.as_ref()).is_some(), "{dir}");
    }
    let security = container.security_context.as_ref().expect("security");
    assert_eq!(security.read_only_root_filesystem, Some(true));
    let pod_security = pod.security_context.as_ref().expect("pod security");
    assert_eq!(pod_security.run_as_non_root, Some(true));
    assert_eq!(pod_security.fs_group, pod_security.run_as_group);
    let limits = container
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .expect("limits");
    assert_eq!(
        limits["memory"].0, "1280Mi",
        "the sandbox's 512 MiB for each connector, and airlock's own"
    );

    let fanned = jobs(&["--fan-out", "streams"]);
    let names: Vec<_> = fanned
        .iter()
        .filter_map(|j| j.metadata.name.clone())
        .collect();
    assert_eq!(
        names,
        ["airlock-faker-to-pg-users", "airlock-faker-to-pg-purchases"]
    );
    let streams: Vec<_> = fanned
        .iter()
        .map(|j| {
            let args = j
                .spec
                .as_ref()
                .unwrap()
                .template
                .spec
                .as_ref()
                .unwrap()
                .containers[0]
                .args
                .clone()
                .unwrap();
            let at = args
                .iter()
                .position(|a| a == "--streams")
                .expect("--streams");
            args[at + 1].clone()
        })
        .collect();
    assert_eq!(streams, ["users", "purchases"]);
}

/// What a pod cannot run is refused before any manifest is printed, naming the
/// entry and the fix; names that Kubernetes would merge get a hash each.
#[test]
fn k8s_jobs_refuse_what_a_pod_cannot_run_and_keep_job_names_apart() {
    let sb = Sandbox::new();
    let run = |body: &str, extra: &[&str]| {
        let file = sb.file("syncs.toml", body);
        let mut args = vec!["k8s", "job", "--file", file.to_str().unwrap(), "s"];
        args.extend_from_slice(extra);
        sb.run(&args, None)
    };
    let file = |source: &str, sync: &str| {
        format!(
            "[sources.src]\nconnector = \"source-faker\"\n{source}\n\
             [destinations.dst]\nconnector = \"destination-dev-null\"\n\
             [syncs.s]\nsource = \"src\"\ndestination = \"dst\"\n{sync}\n"
        )
    };
    let pg = r#"state_secret = { env = "AIRLOCK_STATE_DB" }"#;
    for (source, sync, expected) in [
        ("", "", "a Job keeps its state in PostgreSQL"),
        (
            "",
            r#"state = "/var/lib/state.db""#,
            "a Job keeps its state in PostgreSQL",
        ),
        (r#"docker_image = """#, pg, "has no Docker engine"),
        (r#"pip_url = "airbyte-source-faker""#, pg, "has no Python"),
        (r#"wasm = "faker.wasm""#, pg, "wasm faker.wasm is relative"),
        (
            r#"secrets = { token = { file = "/tmp/token" } }"#,
            pg,
            "the secret token is read from /tmp/token",
        ),
        (
            "",
            r#"state_secret = { file = "state-url" }"#,
            "state_secret is read from state-url",
        ),
    ] {
        let out = run(&file(source, sync), &[]);
        assert_eq!(out.code, Some(2), "{source} {sync}: {}", out.stderr);
        assert!(
            out.stderr.contains(expected),
            "{source} {sync}: {}",
            out.stderr
        );
        assert!(out.stdout.is_empty(), "no manifest: {}", out.stdout);
    }
    let out = run(
        &file("", &format!("{pg}\nstreams = [\"Users_A\", \"users-a\"]")),
        &["--fan-out", "streams"],
    );
    out.expect_code(0);
    let list: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    let jobs: Vec<Job> = serde_json::from_value(list["items"].clone()).expect("typed Jobs");
    let names: Vec<String> = jobs
        .iter()
        .filter_map(|j| j.metadata.name.clone())
        .collect();
    assert_eq!(names.len(), 2);
    assert_ne!(names[0], names[1], "{names:?}");
    assert_eq!(names[1], "airlock-s-users-a", "a clean name stays as it is");
    assert!(names.iter().all(|n| n.len() <= 63), "{names:?}");
}

/// The airlock image of this test run, `airlock:test`, made of the very binary the
/// tests run, once per run.
fn airlock_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let status = Command::new("bash")
            .arg(root().join("scripts/package-airlock.sh"))
            .env("AIRLOCK_IMAGE_BINARY", env!("CARGO_BIN_EXE_airlock"))
            .env("AIRLOCK_IMAGE_TAG", "test")
            .status()
            .expect("run scripts/package-airlock.sh");
        assert!(status.success(), "building the airlock image failed");
    });
    "airlock:test"
}

/// The Jobs of `airlock k8s job` with `args`.
fn k8s_jobs(sb: &Sandbox, args: &[&str]) -> Vec<Job> {
    let mut all = vec!["k8s", "job"];
    all.extend_from_slice(args);
    let run = sb.run(&all, None);
    run.expect_code(0);
    let list: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    serde_json::from_value(list["items"].clone()).expect("typed Jobs")
}

/// `docker run` of a Job's container, as a kubelet would start its pod: the
/// ConfigMap's and the Secret's volumes as read-only mounts (`config_map_dir` holds
/// the ConfigMap's keys, `secret` the Secret's, written under `scratch`), emptyDirs as file systems owned
/// by the pod's `fsGroup`, the Secret's keys as variables, `$(VAR)` in the args
/// expanded, the security context and the memory limit. The pod network is the
/// host's (the test server is on loopback).
fn docker_run(
    job: &Job,
    config_map_dir: &Path,
    secret: &BTreeMap<&str, String>,
    scratch: &Path,
) -> Command {
    let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let container = &pod.containers[0];
    let mut cmd = Command::new("docker");
    cmd.args(["run", "--rm", "--network", "host"]);
    let pod_security = pod
        .security_context
        .as_ref()
        .expect("a pod security context");
    let user = pod_security.run_as_user.expect("runAsUser");
    let group = pod_security.run_as_group.expect("runAsGroup");
    let fs_group = pod_security.fs_group.expect("fsGroup");
    assert_eq!(pod_security.run_as_non_root, Some(true));
    assert_ne!(user, 0, "not root");
    cmd.args(["--user", &format!("{user}:{group}")]);
    let security = container
        .security_context
        .as_ref()
        .expect("a security context");
    if security.read_only_root_filesystem == Some(true) {
        cmd.arg("--read-only");
    }
    if security.allow_privilege_escalation == Some(false) {
        cmd.args(["--security-opt", "no-new-privileges"]);
    }
    for cap in security
        .capabilities
        .iter()
        .flat_map(|c| c.drop.iter().flatten())
    {
        cmd.args(["--cap-drop", cap]);
    }
    let limits = container.resources.as_ref().and_then(|r| r.limits.as_ref());
    if let Some(memory) = limits.and_then(|l| l.get("memory")) {
        let mib = memory.0.strip_suffix("Mi").expect("a limit in Mi");
        cmd.args(["--memory", &format!("{mib}m")]);
    }
    let volumes = pod.volumes.as_ref().expect("volumes");
    for mount in container.volume_mounts.iter().flatten() {
        let volume = volumes
            .iter()
            .find(|v| v.name == mount.name)
            .expect("the mount's volume");
        let path = &mount.mount_path;
        if volume.config_map.is_some() {
            cmd.args(["-v", &format!("{}:{path}:ro", config_map_dir.display())]);
        } else if let Some(source) = &volume.secret {
            // As the kubelet leaves them with an fsGroup: the pod's group owns the
            // keys and may read them.
            let dir = scratch.join(&volume.name);
            std::fs::create_dir_all(&dir).expect("secret volume");
            for item in source.items.iter().flatten() {
                let key = dir.join(&item.path);
                std::fs::write(&key, &secret[item.key.as_str()]).expect("key");
                let group = u32::try_from(fs_group).expect("a group id");
                let mode = match std::os::unix::fs::chown(&key, None, Some(group)) {
                    Ok(()) => item.mode.unwrap_or(0o644) as u32 | 0o440,
                    Err(_) => 0o444, // not root: readable by all instead
                };
                std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode))
                    .expect("chmod");
            }
            cmd.args(["-v", &format!("{}:{path}:ro", dir.display())]);
        } else if volume.empty_dir.is_some() {
            cmd.args([
                "--tmpfs",
                &format!("{path}:exec,uid={fs_group},gid={fs_group}"),
            ]);
        } else {
            panic!("a volume the test cannot mount: {volume:?}");
        }
    }
    let mut env = BTreeMap::new();
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (Some(value), _) => value.clone(),
            (None, Some(from)) => {
                let key = &from.secret_key_ref.as_ref().expect("from the Secret").key;
                secret[key.as_str()].clone()
            }
            (None, None) => String::new(),
        };
        cmd.args(["-e", &format!("{}={value}", var.name)]);
        env.insert(var.name.clone(), value);
    }
    cmd.arg(container.image.as_ref().expect("an image"));
    for arg in container.args.iter().flatten() {
        let mut arg = arg.clone();
        for (name, value) in &env {
            arg = arg.replace(&format!("$({name})"), value);
        }
        cmd.arg(arg);
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd
}

/// A sync file's fan-out Jobs, run at once in the airlock image: each loads its
/// stream into PostgreSQL from the sandboxed destination-postgres, reading the
/// password from the mounted Secret and the state URL from its variable; both
/// streams' states land in the PostgreSQL state store; a rerun of one resumes.
#[test]
fn fan_out_jobs_run_in_the_airlock_image_as_a_kubelet_would_run_them() {
    if !docker_ready() {
        return;
    }
    let Some(pg) = test_postgres() else { return };
    let sb = Sandbox::new();
    let schema = format!("k8s_jobs_{}", std::process::id());
    pg.psql(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"));
    let state_db = format!("airlock_k8s_{}", std::process::id());
    pg.psql(&format!("DROP DATABASE IF EXISTS {state_db}"));
    pg.psql(&format!("CREATE DATABASE {state_db}"));
    let (base, _) = pg.url.rsplit_once('/').expect("a database in the URL");
    let state_url = format!("{base}/{state_db}");
    let file = sb.file(
        "syncs.toml",
        format!(
            r#"[sources.faker]
connector = "source-faker"
config = {{ count = 300, seed = 7 }}
[destinations.pg]
connector = "destination-postgres"
config = {{ host = "{host}", port = {port}, database = "{database}", username = "{user}", schema = "{schema}", ssl_mode = {{ mode = "disable" }} }}
secrets = {{ password = {{ file = "/run/secrets/pg/password" }} }}
[syncs.faker-to-pg]
source = "faker"
destination = "pg"
streams = ["users", "purchases"]
state_secret = {{ env = "AIRLOCK_STATE_DB" }}
[syncs.faker-to-pg.sandbox]
memory_limit_mib = 512
allow_net = ["{host}:{port}"]
"#,
            host = pg.host,
            port = pg.port,
            database = pg.database,
            user = pg.user,
        ),
    );
    let secret = BTreeMap::from([
        ("password", pg.password.clone()),
        ("AIRLOCK_STATE_DB", state_url.clone()),
    ]);
    let image = airlock_image();
    // On its own (no emptyDirs, as `docker run` would start it), the image's
    // user writes its home: the compile cache, the read cache, the state.
    let alone = Command::new("docker")
        .args(["run", "--rm", image, "sync", "--source", "source-faker"])
        .args(["--source-config", r#"{"count": 10}"#])
        .args([
            "--destination",
            "destination-dev-null",
            "--destination-config",
        ])
        .arg(r#"{"test_destination":{"test_destination_type":"SILENT"}}"#)
        .arg("--json")
        .output()
        .expect("docker run");
    assert!(
        alone.status.success(),
        "{}",
        String::from_utf8_lossy(&alone.stderr)
    );
    let result: serde_json::Value =
        serde_json::from_slice(alone.stdout.trim_ascii()).expect("the sync's JSON");
    assert_eq!(result["records_confirmed"], 30, "{result}");
    let jobs = k8s_jobs(
        &sb,
        &[
            "--file",
            file.to_str().unwrap(),
            "faker-to-pg",
            "--fan-out",
            "streams",
            "--image",
            image,
        ],
    );
    assert_eq!(jobs.len(), 2);
    let config_map = file.parent().unwrap();
    let pods: Vec<_> = jobs
        .iter()
        .map(|job| {
            docker_run(job, config_map, &secret, sb.path())
                .spawn()
                .expect("docker run")
        })
        .collect();
    for (job, pod) in jobs.iter().zip(pods) {
        let out = pod.wait_with_output().expect("the pod");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{:?}: {stderr}",
            job.metadata.name
        );
        let result: serde_json::Value =
            serde_json::from_slice(out.stdout.trim_ascii()).expect("the sync's JSON");
        assert_eq!(result["completed"], true, "{result}");
        assert_eq!(
            result["streams"].as_array().map(Vec::len),
            Some(1),
            "{result}"
        );
    }
    assert_eq!(
        pg.psql(&format!("SELECT count(*) FROM \"{schema}\".users")),
        "300"
    );
    assert_ne!(
        pg.psql(&format!("SELECT count(*) FROM \"{schema}\".purchases")),
        "0"
    );
    let mut states = BTreeMap::new();
    for line in Command::new("psql")
        .arg(&state_url)
        .args([
            "-X",
            "-A",
            "-t",
            "-c",
            "SELECT stream FROM airlock_stream_state ORDER BY 1",
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .expect("psql")
        .lines()
    {
        states.insert(line.to_owned(), ());
    }
    assert_eq!(
        states.keys().map(String::as_str).collect::<Vec<_>>(),
        ["purchases", "users"],
        "both streams' states are in the PostgreSQL state store"
    );
    // The users Job again: it resumes from the state the first pod committed.
    let again = docker_run(&jobs[0], config_map, &secret, sb.path())
        .output()
        .expect("rerun");
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let result: serde_json::Value =
        serde_json::from_slice(again.stdout.trim_ascii()).expect("the rerun's JSON");
    assert_eq!(result["resumed_from_state"], true, "{result}");
    assert_eq!(
        pg.psql(&format!("SELECT count(*) FROM \"{schema}\".users")),
        "300"
    );
}
