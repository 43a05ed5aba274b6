//! Syncs that keep their state in PostgreSQL (`--state-db postgres://…`), as
//! workers on many machines would: the states land there in one transaction per
//! hand-over, the next run resumes from them, and a state database that goes
//! away mid-sync stops the run with a named error and loses nothing committed.

use std::process::{Command, Stdio};

use crate::support::*;

/// A database of the test's own on the test server, as a URL.
fn own_database(pg: &PgServer, name: &str) -> String {
    pg.psql(&format!("DROP DATABASE IF EXISTS {name}"));
    pg.psql(&format!("CREATE DATABASE {name}"));
    let (base, _) = pg.url.rsplit_once('/').expect("a database in the URL");
    format!("{base}/{name}")
}

/// `sql` run with psql against `url`.
fn psql_at(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .arg(url)
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn sync_args<'a>(state: &'a str, config: &'a str, destination: &'a str) -> Vec<&'a str> {
    vec![
        "sync",
        "--source",
        "source-faker",
        "--source-config",
        config,
        "--destination",
        "destination-dev-null",
        "--destination-config",
        destination,
        "--streams",
        "users",
        "--state-db",
        state,
        "--json",
    ]
}

#[test]
fn states_kept_in_postgres_are_resumed_from_and_a_vanished_database_is_named() {
    let Some(pg) = test_postgres() else { return };
    let sb = Sandbox::new();
    let name = format!("airlock_many_{}", std::process::id());
    let url = own_database(&pg, &name);
    let silent = r#"{"test_destination":{"test_destination_type":"SILENT"}}"#;
    let config = r#"{"count": 200, "seed": 1}"#;

    let first = sb.run(&sync_args(&url, config, silent), None);
    first.expect_code(0);
    assert_eq!(first.json()["records_confirmed"], 200, "{}", first.stdout);
    assert_eq!(
        psql_at(
            &url,
            "SELECT count(*) FROM airlock_stream_state WHERE stream = 'users'"
        ),
        "1",
        "the users state is in PostgreSQL"
    );
    let again = sb.run(&sync_args(&url, config, silent), None);
    again.expect_code(0);
    assert_eq!(again.json()["resumed_from_state"], true, "{}", again.stdout);
    let before = psql_at(
        &url,
        "SELECT state_json FROM airlock_stream_state WHERE stream = 'users'",
    );

    // A slow sync; its state database goes away while it runs.
    let throttled =
        r#"{"test_destination":{"test_destination_type":"THROTTLED","millis_per_record":3}}"#;
    let slow_config = r#"{"count": 4000, "seed": 1}"#;
    let mut cmd = sb.airlock();
    cmd.args(sync_args(&url, slow_config, throttled))
        .arg("--no-cache")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().expect("spawn");
    std::thread::sleep(std::time::Duration::from_secs(3));
    pg.psql(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"));
    pg.psql(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    ));
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("state database postgres://"), "{stderr}");
    assert!(
        !stderr.contains(&format!(":{}@", pg.password)),
        "no password: {stderr}"
    );

    // Back again: what was committed is whole, and the rerun resumes from it.
    pg.psql(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"));
    // (one row per destination identity: the throttled config is another one)
    let after = psql_at(
        &url,
        "SELECT state_json FROM airlock_stream_state WHERE stream = 'users'",
    );
    assert!(
        after.lines().any(|line| line == before),
        "the first sync's state is untouched"
    );
    for line in after.lines() {
        let parsed: serde_json::Value = serde_json::from_str(line).expect("a whole state");
        assert!(parsed["stream"]["stream_state"].is_object(), "{line}");
    }
    let rerun = sb.run(&sync_args(&url, config, silent), None);
    rerun.expect_code(0);
    assert_eq!(rerun.json()["resumed_from_state"], true, "{}", rerun.stdout);
}

/// A sync into the WASM dev-null, throttled so that it runs a while.
fn slow_sync(sb: &Sandbox, state: &str, count: u32, millis: u32, extra: &[&str]) -> Command {
    let config = format!(r#"{{"count": {count}, "seed": 1}}"#);
    let throttled = format!(
        r#"{{"test_destination":{{"test_destination_type":"THROTTLED","millis_per_record":{millis}}}}}"#
    );
    let mut cmd = sb.airlock();
    cmd.args(sync_args(state, &config, &throttled))
        .args(["--destination-id", "the-same-destination"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Waits until the state database at `db` has a lease row (the run has started).
fn wait_for_lease(db: &std::path::Path) {
    let started = std::time::Instant::now();
    loop {
        let leased = rusqlite::Connection::open(db)
            .and_then(|c| {
                c.query_row("SELECT count(*) FROM lease WHERE expires_at > 0", [], |r| {
                    r.get::<_, i64>(0)
                })
            })
            .unwrap_or(0);
        if leased > 0 {
            return;
        }
        assert!(
            started.elapsed().as_secs() < 30,
            "the first run never took its lease"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn a_second_run_of_a_running_sync_is_refused_naming_the_holder_or_waits_with_wait() {
    let sb = Sandbox::new();
    let db = sb.path().join("state.db");
    let state = db.to_str().unwrap().to_owned();
    let first = slow_sync(&sb, &state, 300, 5, &["--no-cache"])
        .spawn()
        .expect("spawn");
    wait_for_lease(&db);
    let refused = slow_sync(&sb, &state, 300, 0, &["--no-cache"])
        .output()
        .expect("second");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_ne!(refused.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("is already running"), "{stderr}");
    assert!(
        stderr.contains(&format!("(pid {})", first.id())),
        "names the holder: {stderr}"
    );
    assert!(stderr.contains("--wait"), "{stderr}");
    // With --wait the next run starts once the first has ended, and resumes.
    let waited = slow_sync(&sb, &state, 300, 0, &["--no-cache", "--wait"])
        .output()
        .expect("third");
    let out = first.wait_with_output().expect("first");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        waited.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&waited.stderr)
    );
    let result: serde_json::Value =
        serde_json::from_slice(waited.stdout.trim_ascii()).expect("json");
    assert_eq!(result["resumed_from_state"], true, "{result}");
}

/// Two workers start the same sync at the same instant (spawned back to back, so
/// both ask for the lease while starting): exactly one runs and delivers every
/// record, the other is refused naming the holder. On each backend.
#[test]
fn two_workers_started_at_the_same_instant_exactly_one_runs() {
    let sb = Sandbox::new();
    let sqlite = sb.path().join("state.db").to_str().unwrap().to_owned();
    let mut backends = vec![("sqlite", sqlite)];
    if let Some(pg) = test_postgres() {
        let name = format!("airlock_race_{}", std::process::id());
        backends.push(("postgres", own_database(&pg, &name)));
    }
    for (backend, state) in backends {
        let mut workers = [0, 1].map(|_| slow_sync(&sb, &state, 400, 5, &["--no-cache"]));
        let a = workers[0].spawn().expect("spawn a");
        let b = workers[1].spawn().expect("spawn b");
        let pids = [a.id(), b.id()];
        let outs = [
            a.wait_with_output().expect("a"),
            b.wait_with_output().expect("b"),
        ];
        let ran: Vec<usize> = (0..2)
            .filter(|&i| outs[i].status.code() == Some(0))
            .collect();
        let stderr = |i: usize| String::from_utf8_lossy(&outs[i].stderr).into_owned();
        assert_eq!(
            ran.len(),
            1,
            "{backend}: exactly one worker runs: {} / {}",
            stderr(0),
            stderr(1)
        );
        let (winner, loser) = (ran[0], 1 - ran[0]);
        let result: serde_json::Value =
            serde_json::from_slice(outs[winner].stdout.trim_ascii()).expect("json");
        assert_eq!(result["records_confirmed"], 400, "{backend}: {result}");
        let refused = stderr(loser);
        assert!(
            refused.contains("is already running"),
            "{backend}: {refused}"
        );
        assert!(
            refused.contains(&format!("(pid {})", pids[winner])),
            "{backend}: names the holder: {refused}"
        );
        assert!(
            outs[loser].stdout.is_empty(),
            "{backend}: the loser sent nothing"
        );
    }
}

/// Another worker takes the lease over while this run has no state to commit (a
/// long quiet stretch of records): the run stops as soon as its renewal finds
/// the lease gone, naming the new holder, without waiting for a commit or for
/// the source to end.
#[test]
fn a_run_whose_lease_is_taken_over_stops_at_its_next_renewal() {
    lease_taken_over_under("3", &[]);
}

/// The same with the destination in a Docker container: the stopped run leaves
/// no container behind.
#[test]
fn a_run_in_docker_whose_lease_is_taken_over_stops_and_leaves_no_container() {
    if !docker_ready() {
        return;
    }
    let _serial = docker_lock();
    docker_images();
    // A 1 s lease is found lost a third of a second in: most often while the
    // container is still being created, which is when one was left behind.
    lease_taken_over_under(
        "1",
        &["--docker-image", "airlock/destination-dev-null:test"],
    );
    assert_eq!(airlock_containers(), 0, "every container was removed");
}

/// A run into dev-null (with `destination` flags, a lease of `lease_secs`) under
/// a source that has no state to commit for a minute; its lease is taken over
/// once it holds it.
fn lease_taken_over_under(lease_secs: &str, destination: &[&str]) {
    let sb = Sandbox::new();
    let db = sb.path().join("state.db");
    let finished = sb.path().join("source-finished");
    let source = python_source(
        &sb,
        "quiet-source.py",
        r#"[{"name": "s", "json_schema": {}, "supported_sync_modes": ["full_refresh"]}]"#,
        &format!(
            r#"for n in range(600):
    out({{"type": "RECORD", "record": {{"stream": "s", "data": {{"n": n}}, "emitted_at": 1}}}})
    time.sleep(0.1)
open("{finished}", "w").write("done")"#,
            finished = finished.display()
        ),
    );
    let mut cmd = scripted_sync(&sb, "source-quiet", &source, &db);
    cmd.args(["--lease-secs", lease_secs])
        .args(destination)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let run = cmd.spawn().expect("spawn");
    wait_for_lease(&db);
    // The takeover another worker would make once the lease ran out: the next
    // token, its own holder.
    let far = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 600_000;
    let taken = rusqlite::Connection::open(&db)
        .and_then(|c| {
            c.execute(
                "UPDATE lease SET holder = 'intruder (pid 1)', token = token + 1, expires_at = ?1",
                [far],
            )
        })
        .expect("take the lease over");
    assert_eq!(taken, 1);
    let out = run.wait_with_output().expect("the run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("lost its lease"), "{stderr}");
    assert!(stderr.contains("now held by intruder (pid 1)"), "{stderr}");
    assert!(
        !finished.exists(),
        "the run stopped while its source was still reading"
    );
}

/// A CDC source keeps one GLOBAL state for all its streams: a run of some of
/// them is refused (at its commit, or up front once a GLOBAL state is stored),
/// while a run naming every stream is a run of all and keeps it.
#[test]
fn a_global_state_cannot_be_split_but_naming_every_stream_is_a_run_of_all() {
    let sb = Sandbox::new();
    let db = sb.path().join("state.db");
    let stream = |name: &str| {
        format!(
            r#"{{"name": "{name}", "json_schema": {{}}, "supported_sync_modes": ["full_refresh", "incremental"], "source_defined_cursor": True}}"#
        )
    };
    let source = python_source(
        &sb,
        "cdc-source.py",
        &format!("[{}, {}]", stream("a"), stream("b")),
        r#"for n in range(1, 4):
    for s in ("a", "b"):
        out({"type": "RECORD", "record": {"stream": s, "data": {"n": n}, "emitted_at": 1}})
    out({"type": "STATE", "state": {"type": "GLOBAL", "global": {"shared_state": {"lsn": n},
        "stream_states": [{"stream_descriptor": {"name": s}, "stream_state": {"n": n}} for s in ("a", "b")]}}})"#,
    );
    let run = |streams: &str| {
        let mut cmd = scripted_sync(&sb, "source-cdc", &source, &db);
        cmd.args(["--streams", streams]);
        run_command(cmd, None)
    };
    let split = run("a");
    assert_ne!(split.code, Some(0), "{}", split.stderr);
    assert!(
        split.stderr.contains("keeps a GLOBAL (CDC) state")
            && split.stderr.contains("cannot be synced apart"),
        "{}",
        split.stderr
    );
    let all = run("b,a");
    all.expect_code(0);
    assert_eq!(all.json()["states_confirmed"], 3, "{}", all.stdout);
    let stored: i64 = rusqlite::Connection::open(&db)
        .and_then(|c| {
            c.query_row(
                "SELECT count(*) FROM pair_state WHERE kind = 'GLOBAL'",
                [],
                |r| r.get(0),
            )
        })
        .expect("the GLOBAL state is stored");
    assert_eq!(stored, 1);
    let refused = run("a");
    assert_ne!(refused.code, Some(0), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("keeps a GLOBAL (CDC) state"),
        "{}",
        refused.stderr
    );
}

/// Two sources of one connector that read different things (here: other seeds)
/// into one destination keep their states and cache logs apart under their ids:
/// the second does not resume from the first's cursor.
#[test]
fn two_sources_of_one_connector_with_ids_keep_their_states_apart() {
    let sb = Sandbox::new();
    let db = sb.path().join("state.db");
    let cache = sb.path().join("cache.sqlite");
    let run = |id: &str, seed: u32| {
        let config = format!(r#"{{"count": 100, "seed": {seed}, "always_updated": false}}"#);
        let mut args = sync_args(
            db.to_str().unwrap(),
            &config,
            r#"{"test_destination":{"test_destination_type":"SILENT"}}"#,
        )
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
        args.extend(["--source-id".into(), id.into()]);
        args.extend(["--cache-path".into(), cache.display().to_string()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = sb.run(&args, None);
        out.expect_code(0);
        out.json()
    };
    let first = run("db1", 1);
    assert_eq!(first["records_confirmed"], 100, "{first}");
    let second = run("db2", 2);
    assert_eq!(second["resumed_from_state"], false, "{second}");
    assert_eq!(second["records_confirmed"], 100, "{second}");
    let again = run("db1", 1);
    assert_eq!(again["resumed_from_state"], true, "{again}");
    assert_eq!(again["records_sent"], 0, "{again}");
    let keys: std::collections::BTreeSet<String> = rusqlite::Connection::open(&db)
        .and_then(|c| {
            let mut q = c.prepare("SELECT source FROM stream_state")?;
            let rows = q.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect()
        })
        .expect("keys");
    assert_eq!(keys, ["db1", "db2"].map(String::from).into());
}

/// The holder is stopped (SIGSTOP) past its lease; another run takes the sync
/// over and finishes; the first, continued, is refused at its next commit and
/// exits non-zero, and nothing it tried to commit after losing the lease lands.
#[test]
fn a_paused_holder_that_lost_its_lease_is_fenced_off_when_it_wakes() {
    let sb = Sandbox::new();
    let db = sb.path().join("state.db");
    let state = db.to_str().unwrap().to_owned();
    let first = slow_sync(&sb, &state, 3000, 3, &["--no-cache", "--lease-secs", "1"])
        .spawn()
        .expect("spawn");
    wait_for_lease(&db);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let pid = first.id().to_string();
    let signal = |sig: &str| {
        assert!(
            Command::new("kill")
                .args([sig, &pid])
                .status()
                .expect("kill")
                .success()
        );
    };
    signal("-STOP");
    std::thread::sleep(std::time::Duration::from_millis(2500)); // past its 1 s lease
    let second = slow_sync(&sb, &state, 3000, 0, &["--no-cache", "--lease-secs", "1"])
        .output()
        .expect("second");
    assert_eq!(
        second.status.code(),
        Some(0),
        "the second run takes over: {}",
        String::from_utf8_lossy(&second.stderr)
    );
    let taken_over = stored_states(&db);
    signal("-CONT");
    let out = first.wait_with_output().expect("first");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("lost its lease"), "{stderr}");
    assert_eq!(
        stored_states(&db),
        taken_over,
        "nothing the first run sent after losing its lease was committed"
    );
}

/// Fan-out by stream: runs of disjoint stream sets of one source and destination
/// go side by side (each stream its own lease, their states merged in one
/// store); a run of all streams waits for none of them and is refused.
#[test]
fn disjoint_stream_sets_run_at_once_and_a_run_of_all_streams_is_kept_out() {
    let sb = Sandbox::new();
    let db = sb.path().join("state.db");
    let state = db.to_str().unwrap().to_owned();
    let throttled =
        r#"{"test_destination":{"test_destination_type":"THROTTLED","millis_per_record":5}}"#;
    let silent = r#"{"test_destination":{"test_destination_type":"SILENT"}}"#;
    let config = r#"{"count": 300, "seed": 1}"#;
    let run = |streams: Option<&str>, destination: &str| {
        let mut cmd = sb.airlock();
        cmd.args([
            "sync",
            "--source",
            "source-faker",
            "--source-config",
            config,
            "--destination",
            "destination-dev-null",
            "--destination-config",
            destination,
            "--destination-id",
            "one-destination",
            "--state-db",
            &state,
            "--no-cache",
            "--json",
        ]);
        if let Some(streams) = streams {
            cmd.args(["--streams", streams]);
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd
    };
    let users = run(Some("users"), throttled).spawn().expect("users");
    wait_for_lease(&db);
    let products = run(Some("products"), silent).output().expect("products");
    assert_eq!(
        products.status.code(),
        Some(0),
        "a disjoint stream set runs beside it: {}",
        String::from_utf8_lossy(&products.stderr)
    );
    let all = run(None, silent).output().expect("all");
    let stderr = String::from_utf8_lossy(&all.stderr);
    assert_ne!(all.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(":: users") && stderr.contains("is already running"),
        "{stderr}"
    );
    let overlap = run(Some("users,purchases"), silent)
        .output()
        .expect("overlap");
    let stderr = String::from_utf8_lossy(&overlap.stderr);
    assert_ne!(
        overlap.status.code(),
        Some(0),
        "an overlapping set is kept out: {stderr}"
    );
    let out = users.wait_with_output().expect("users");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let streams: Vec<String> = stored_states(&db).into_iter().map(|(key, _)| key).collect();
    assert!(
        streams.iter().any(|k| k.contains("users"))
            && streams.iter().any(|k| k.contains("products")),
        "both runs' states are in the one store: {streams:?}"
    );
}

/// The holder is SIGKILLed: its lease stays until it runs out, then the next run
/// takes the sync over, resumes from the last confirmed state, and every record
/// arrives (at least once).
#[test]
fn a_killed_holder_is_replaced_once_its_lease_runs_out_and_every_record_arrives() {
    let sb = Sandbox::new();
    let db = sb.path().join("state.db");
    let root = sb.path().join("root");
    let run = |extra: &[&str]| {
        let mut cmd = sb.airlock();
        cmd.args([
            "sync",
            "--source",
            "source-faker",
            "--source-config",
            r#"{"count": 2000, "seed": 3}"#,
            "--destination",
            "destination-local-json",
            "--destination-config",
            r#"{"destination_path":"/local/out"}"#,
            "--streams",
            "users",
            "--state-db",
            db.to_str().unwrap(),
            "--local-root",
            root.to_str().unwrap(),
            "--no-cache",
            "--lease-secs",
            "2",
            "--json",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        cmd
    };
    // The holder is killed as soon as its first state is stored.
    let mut first = run(&[]).spawn().expect("spawn");
    let started = std::time::Instant::now();
    while stored_states_or_empty(&db).is_empty() {
        assert!(started.elapsed().as_secs() < 30, "no state was stored");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    first.kill().expect("SIGKILL the holder");
    first.wait().expect("reap");
    let refused = run(&[]).output().expect("too early");
    let finished_before_kill = refused.status.code() == Some(0);
    if !finished_before_kill {
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains("is already running"), "{stderr}");
    }
    let waited = run(&["--wait"]).output().expect("takes over");
    assert_eq!(
        waited.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&waited.stderr)
    );
    let rows = std::fs::read_to_string(root.join("out/_airbyte_raw_users.jsonl")).expect("rows");
    let ids: std::collections::BTreeSet<i64> = rows
        .lines()
        .map(|l| {
            let row: serde_json::Value = serde_json::from_str(l).expect("row");
            row["_airbyte_data"]["id"].as_i64().expect("id")
        })
        .collect();
    assert_eq!(ids.len(), 2000, "every user arrived");
}

/// `airlock sync` of the scripted source `name` at `source` into the silent
/// dev-null, uncached, with its state in the SQLite file `db`, printing JSON.
fn scripted_sync(
    sb: &Sandbox,
    name: &str,
    source: &std::path::Path,
    db: &std::path::Path,
) -> Command {
    let mut cmd = sb.airlock();
    cmd.args(["sync", "--source", name, "--source-local-executable"])
        .arg(source)
        .args([
            "--source-config",
            "{}",
            "--destination",
            "destination-dev-null",
        ])
        .args([
            "--destination-config",
            r#"{"test_destination":{"test_destination_type":"SILENT"}}"#,
        ])
        .arg("--state-db")
        .arg(db)
        .args(["--no-cache", "--json"]);
    cmd
}

/// The stored states, or none while the database has no table yet.
fn stored_states_or_empty(db: &std::path::Path) -> Vec<String> {
    rusqlite::Connection::open(db)
        .and_then(|c| {
            let mut q = c.prepare("SELECT stream FROM stream_state")?;
            let rows = q.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect()
        })
        .unwrap_or_default()
}
