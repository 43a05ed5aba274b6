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
