//! Sync files: `airlock sync --file FILE NAME` runs a sync the file declares (its
//! secrets read from where the file points, never written in it), and `airlock
//! check --file FILE` lists every problem at once, each with its line.

use crate::support::*;

#[test]
fn a_sync_named_in_a_file_runs_and_resumes_from_its_own_state() {
    let sb = Sandbox::new();
    let text = format!(
        r#"
[sources.faker]
connector = "source-faker"
config = {{ count = 120, seed = 1 }}

[destinations.lake]
connector = "destination-local-json"
config = {{ destination_path = "/local/lake" }}

[syncs.faker-to-lake]
source = "faker"
destination = "lake"
streams = ["users"]
strategy = "append"
schedule = "*/5 * * * *"
state = "state.db"
cache = "cache.sqlite"
[syncs.faker-to-lake.sandbox]
local_root = "{}"
memory_limit_mib = 256
"#,
        sb.path().join("root").display()
    );
    let file = sb.file("syncs.toml", text);
    let check = sb.run(&["check", "--file", file.to_str().unwrap()], None);
    check.expect_code(0);
    assert!(
        check
            .stdout
            .contains("ok (1 sources, 1 destinations, 1 syncs: faker-to-lake)"),
        "{}",
        check.stdout
    );

    let sync = || {
        let args = [
            "sync",
            "--file",
            file.to_str().unwrap(),
            "faker-to-lake",
            "--json",
        ];
        sb.run(&args, None)
    };
    let run = sync();
    run.expect_code(0);
    assert_eq!(run.json()["records_confirmed"], 120, "{}", run.stdout);
    let rows = std::fs::read_to_string(sb.path().join("root/lake/_airbyte_raw_users.jsonl"))
        .expect("the sandbox's local root comes from the file");
    assert_eq!(rows.lines().count(), 120);
    // The state and the cache are where the file says, beside it.
    assert!(sb.path().join("state.db").is_file());
    assert!(sb.path().join("cache.sqlite").is_file());

    // A rerun resumes from the state the file's state database holds.
    let again = sync();
    again.expect_code(0);
    assert_eq!(again.json()["resumed_from_state"], true, "{}", again.stdout);

    let unknown = sb.run(&["sync", "--file", file.to_str().unwrap(), "nope"], None);
    unknown.expect_code(2);
    assert!(
        unknown
            .stderr
            .contains("has no sync \"nope\" (it has: faker-to-lake)"),
        "{}",
        unknown.stderr
    );
}

#[test]
fn check_lists_every_problem_of_a_sync_file_with_its_line() {
    let sb = Sandbox::new();
    let file = sb.file(
        "syncs.toml",
        r#"[sources.faker]
connector = "source-faker"
colour = "blue"

[destinations.db]
connector = "destination-postgres"
config = { host = "db", password = "hunter22" }
secrets = { token = { env = "AIRLOCK_TEST_SURELY_UNSET" } }

[syncs.one]
source = "fakr"
destination = "db"
"#,
    );
    let run = sb.run(&["check", "--file", file.to_str().unwrap()], None);
    run.expect_code(2);
    for expected in [
        "has 3 problems",
        "syncs.toml:3: unknown key \"colour\" in sources.faker",
        "syncs.toml:7: destinations.db: config.password looks like a secret written inline",
        "syncs.toml:11: syncs.one: source \"fakr\" is not defined under [sources]",
    ] {
        assert!(run.stderr.contains(expected), "{expected}\n{}", run.stderr);
    }
    assert!(!run.stderr.contains("hunter22"), "{}", run.stderr);

    // Once the structure is right, the references are resolved: a missing
    // variable is named with its line.
    let file = sb.file(
        "ok.toml",
        r#"[sources.faker]
connector = "source-faker"
[destinations.db]
connector = "destination-local-json"
secrets = { token = { env = "AIRLOCK_TEST_SURELY_UNSET" } }
[syncs.one]
source = "faker"
destination = "db"
"#,
    );
    let run = sb.run(&["check", "--file", file.to_str().unwrap()], None);
    run.expect_code(2);
    assert!(
        run.stderr.contains("ok.toml:5: destinations.db: secrets.token: environment variable AIRLOCK_TEST_SURELY_UNSET is not set"),
        "{}",
        run.stderr
    );
}

/// A secret the file names by reference (a file, as a mounted Kubernetes Secret
/// is) reaches the connector.
#[test]
fn a_secret_referenced_by_file_reaches_the_destination() {
    let Some(pg) = test_postgres() else { return };
    let sb = Sandbox::new();
    let schema = format!("sync_file_{}", std::process::id());
    let password = sb.file("pg.secret", format!("{}\n", pg.password));
    // The state database's URL holds a password too: it is a reference as well.
    let state_url = sb.file("state-url.secret", format!("{}\n", pg.url));
    let file = sb.file(
        "syncs.toml",
        format!(
            r#"
[sources.faker]
connector = "source-faker"
config = {{ count = 50, seed = 2 }}

[destinations.pg]
connector = "destination-postgres"
config = {{ host = "{host}", port = {port}, database = "{database}", username = "{user}", schema = "{schema}", ssl_mode = {{ mode = "disable" }} }}
secrets = {{ password = {{ file = "{password}" }} }}

[syncs.faker-to-pg]
source = "faker"
destination = "pg"
streams = ["users"]
state_secret = {{ file = "{state_url}" }}
destination_id = "{schema}"
cache = "none"
[syncs.faker-to-pg.sandbox]
allow_net = ["{host}:{port}"]
"#,
            host = pg.host,
            port = pg.port,
            database = pg.database,
            user = pg.user,
            password = password.display(),
            state_url = state_url.display(),
        ),
    );
    let check = sb.run(&["check", "--file", file.to_str().unwrap()], None);
    check.expect_code(0);
    let run = sb.run(
        &[
            "-v",
            "sync",
            "--file",
            file.to_str().unwrap(),
            "faker-to-pg",
            "--json",
        ],
        None,
    );
    run.expect_code(0);
    assert_eq!(run.json()["records_confirmed"], 50, "{}", run.stdout);
    assert_eq!(
        pg.psql(&format!("SELECT count(*) FROM \"{schema}\".users")),
        "50"
    );
    // Its state is in PostgreSQL, where the referenced URL points.
    // (filed under this test's own destination id: the database is shared)
    assert_eq!(
        pg.psql(&format!(
            "SELECT count(*) FROM airlock_stream_state WHERE source = 'source-faker' \
             AND destination = '{schema}' AND stream = 'users'"
        )),
        "1"
    );
    // Nothing airlock prints carries the config (the test server's password,
    // "airlock", is too common a word to search for).
    assert!(!run.stdout.contains("password"), "{}", run.stdout);
    assert!(!run.stderr.contains("password"), "{}", run.stderr);
}
