//! destination-postgres against a real PostgreSQL server (`AIRLOCK_TEST_PG_URL`,
//! started by `.ci/run` through scripts/postgres.sh): the conformance suite under
//! WASM, as a process and as a Docker image; a sync of the built-in faker from the
//! CLI and the library, sandboxed, with the network grant derived from the config;
//! and the bad input — credentials, databases, servers down or killed mid-sync,
//! grants, values, names, sync modes and schema changes.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::*;

/// A schema of this test's own, dropped first.
fn fresh_schema(pg: &PgServer, name: &str) -> String {
    let schema = format!("t_{name}_{}", std::process::id());
    pg.psql(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"));
    schema
}

/// `airlock write destination-postgres` (WASM) of `input` with `catalog`.
fn write(sb: &Sandbox, config: &Value, catalog: &Value, input: &[String], extra: &[&str]) -> Run {
    let config = config.to_string();
    let catalog = catalog.to_string();
    let mut args = vec![
        "write",
        "destination-postgres",
        "--config",
        &config,
        "--catalog",
        &catalog,
        "--json",
    ];
    args.extend_from_slice(extra);
    sb.run(&args, Some(&lines(input)))
}

/// A configured catalog of one stream.
fn one_stream(name: &str, properties: Value, mode: &str, pk: Value, cursor: Value) -> Value {
    json!({"streams": [{"stream": {"name": name, "json_schema": {"type": "object", "properties": properties},
        "supported_sync_modes": ["full_refresh", "incremental"]},
        "sync_mode": "incremental", "destination_sync_mode": mode,
        "primary_key": pk, "cursor_field": cursor}]})
}

fn complete(stream: &str) -> String {
    json!({"type": "TRACE", "trace": {"type": "STREAM_STATUS", "emitted_at": 1.0,
        "stream_status": {"stream_descriptor": {"name": stream}, "status": "COMPLETE"}}})
    .to_string()
}

/// `airlock plugin test destination-postgres ARGS` with the server's config: the
/// exit code, the outcome of each case, and the report followed by airlock's stderr.
fn suite(
    sb: &Sandbox,
    pg: &PgServer,
    prefix: &str,
    args: &[&str],
) -> (i32, BTreeMap<String, String>, String) {
    let config = pg.config(prefix).to_string();
    let mut all = vec!["destination-postgres", "--config", &config];
    all.extend_from_slice(args);
    let (code, outcomes, report, stderr) = crate::plugin_kit::plugin_test_run(sb, &all, &[]);
    (code, outcomes, format!("{report:#}\n{stderr}"))
}

fn assert_all_pass(
    executor: &str,
    (code, outcomes, report): (i32, BTreeMap<String, String>, String),
) {
    let not_passed: Vec<_> = outcomes.iter().filter(|(_, o)| *o != "pass").collect();
    assert!(
        not_passed.is_empty(),
        "{executor}: {not_passed:?}\n{report}"
    );
    assert_eq!(outcomes.len(), 17, "{executor}: every case ran");
    assert_eq!(code, 0, "{executor}");
}

#[test]
fn the_suite_passes_against_a_real_server_as_wasm_and_as_a_process() {
    let Some(pg) = test_postgres() else { return };
    let sb = Sandbox::new();
    let prefix = format!("suite_{}", std::process::id());
    assert_all_pass("WASM", suite(&sb, &pg, &prefix, &[]));
    let exe = plugin_bin("destination-postgres");
    assert_all_pass(
        "process",
        suite(
            &sb,
            &pg,
            &format!("{prefix}_p"),
            &["--local-executable", exe.to_str().unwrap()],
        ),
    );
}

#[test]
fn the_suite_passes_against_a_real_server_as_a_docker_image() {
    let Some(pg) = test_postgres() else { return };
    if !docker_ready() {
        assert!(!required_in_ci(), "CI needs a Docker engine for this test");
        return;
    }
    let _lock = docker_lock();
    docker_images();
    let sb = Sandbox::new();
    let prefix = format!("suite_{}_d", std::process::id());
    let result = suite(
        &sb,
        &pg,
        &prefix,
        &["--docker-image", "airlock/destination-postgres:test"],
    );
    assert!(
        result
            .2
            .contains("Docker cannot limit a container to the granted addresses"),
        "the grant Docker cannot enforce is said: {}",
        result.2
    );
    assert_all_pass("Docker", result);
}

#[test]
fn a_sync_of_the_builtin_faker_loads_typed_tables_from_the_sandbox() {
    let Some(pg) = test_postgres() else { return };
    let sb = Sandbox::new();
    let schema = fresh_schema(&pg, "sync");
    let config = pg.config(&schema).to_string();
    let sync = |extra: &[&str]| {
        let mut args = vec![
            "sync",
            "--source",
            "source-faker",
            "--source-config",
            r#"{"count": 3000, "seed": 7}"#,
            "--destination",
            "destination-postgres",
            "--destination-config",
            &config,
            "--json",
        ];
        args.extend_from_slice(extra);
        sb.run(&args, None)
    };
    let run = sync(&[]);
    run.expect_code(0);
    assert!(
        run.stderr.contains(&format!(
            "granted network: {}:{} (from the config's host and port",
            pg.host, pg.port
        )),
        "the derived grant is said: {}",
        run.stderr
    );
    assert!(
        !run.stderr.contains(&pg.password) || pg.password.len() < 4,
        "no password on stderr"
    );
    let result = run.json();
    assert_eq!(
        stream_json(&result, "users")["confirmed"],
        3000,
        "{result:#}"
    );
    assert_eq!(
        pg.psql(&format!("SELECT count(*) FROM \"{schema}\".users")),
        "3000"
    );
    assert_eq!(
        pg.psql(&format!(
            "SELECT count(DISTINCT id) FROM \"{schema}\".users"
        )),
        "3000"
    );
    let types = pg.psql(&format!(
        "SELECT column_name || ':' || data_type FROM information_schema.columns \
         WHERE table_schema = '{schema}' AND table_name = 'users' \
         AND column_name IN ('id', 'age', 'created_at', 'address', 'email', '_airbyte_meta', '_airbyte_extracted_at') \
         ORDER BY column_name"
    ));
    assert_eq!(
        types.lines().collect::<Vec<_>>(),
        [
            "_airbyte_extracted_at:timestamp with time zone",
            "_airbyte_meta:jsonb",
            "address:jsonb",
            "age:bigint",
            "created_at:timestamp with time zone",
            "email:text",
            "id:bigint",
        ]
    );
    for table in ["products", "purchases"] {
        let n: u64 = pg
            .psql(&format!("SELECT count(*) FROM \"{schema}\".{table}"))
            .parse()
            .expect("a count");
        assert!(n > 0, "{table} has rows");
    }

    // The second sync is incremental and deduplicated (faker's streams have
    // primary keys): the tables do not grow.
    sync(&[]).expect_code(0);
    assert_eq!(
        pg.psql(&format!("SELECT count(*) FROM \"{schema}\".users")),
        "3000"
    );
}

#[test]
fn the_library_loads_postgres_from_a_sandboxed_plugin() {
    let Some(pg) = test_postgres() else { return };
    let sb = Sandbox::new();
    let schema = fresh_schema(&pg, "library");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let source = airlock::source::get_source("source-faker")
            .config(json!({"count": 250}))
            .build()
            .expect("source");
        let cache = airlock::cache::Cache::open(sb.path().join("cache.sqlite")).expect("cache");
        let read = source.read(&cache).await.expect("read");
        let destination = airlock::get_destination("destination-postgres")
            .config(pg.config(&schema))
            .build()
            .expect("destination");
        destination.check().await.expect("check");
        let result = destination
            .write(&read)
            .streams(&["users"])
            .run()
            .await
            .expect("write");
        assert_eq!(result.write.records_confirmed, 250, "{:?}", result.write);
    });
    assert_eq!(
        pg.psql(&format!("SELECT count(*) FROM \"{schema}\".users")),
        "250"
    );
}

/// `airlock check destination-postgres --config CONFIG --json EXTRA…`: the
/// connection status message (or the whole output).
fn check(sb: &Sandbox, config: &Value, extra: &[&str]) -> (String, String) {
    let config = config.to_string();
    let mut args = vec![
        "check",
        "destination-postgres",
        "--config",
        &config,
        "--json",
    ];
    args.extend_from_slice(extra);
    let run = sb.run(&args, None);
    (format!("{}\n{}", run.stdout, run.stderr), run.stdout)
}

#[test]
fn bad_credentials_databases_and_servers_are_named_with_the_fix() {
    let Some(pg) = test_postgres() else { return };
    let sb = Sandbox::new();

    let mut wrong_password = pg.config("public");
    wrong_password["password"] = json!("not-the-password");
    let (all, _) = check(&sb, &wrong_password, &[]);
    assert!(all.contains("FAILED"), "{all}");
    assert!(all.contains("password authentication failed"), "{all}");
    assert!(all.contains("check username and password"), "{all}");
    assert!(
        !all.contains("not-the-password"),
        "the password is never printed: {all}"
    );

    let mut no_database = pg.config("public");
    no_database["database"] = json!("no_such_database");
    let (all, _) = check(&sb, &no_database, &[]);
    assert!(
        all.contains("FAILED") && all.contains("no_such_database"),
        "{all}"
    );
    assert!(all.contains("does not exist"), "{all}");
    assert!(all.contains("create the database"), "{all}");

    // A port where nothing listens: granted (it is the config's), refused by the OS.
    let idle = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let idle_port = idle.local_addr().expect("addr").port();
    drop(idle);
    let mut down = pg.config("public");
    down["port"] = json!(idle_port);
    let (all, _) = check(&sb, &down, &[]);
    assert!(all.contains("FAILED"), "{all}");
    assert!(
        all.contains(&format!(
            "could not connect to PostgreSQL at {}:{idle_port}",
            pg.host
        )),
        "{all}"
    );
    assert!(all.contains("is the server running there"), "{all}");

    // A write to a server that is down fails with the same words, and no state is kept.
    let catalog = one_stream(
        "s",
        json!({"id": {"type": "integer"}}),
        "append",
        json!(null),
        json!(null),
    );
    let run = write(
        &sb,
        &down,
        &catalog,
        &[record("s", json!({"id": 1})), state("s", 1)],
        &[],
    );
    assert_ne!(run.code, Some(0));
    assert!(
        run.stderr.contains("could not connect to PostgreSQL"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_connection_that_was_not_granted_is_refused_and_named() {
    let Some(pg) = test_postgres() else { return };
    let sb = Sandbox::new();
    let config = pg.config("public");
    let grant = format!("{}:{}", pg.host, pg.port);

    // No derived grant and none given: nothing may be reached.
    let (all, _) = check(&sb, &config, &["--no-derived-net"]);
    assert!(all.contains(&grant), "the address is named: {all}");
    // The refusal's warning names the fix in the library's words.
    assert!(
        all.contains(&format!("grant TCP to {grant}")),
        "the fix is named: {all}"
    );

    // A grant of another port does not reach this one.
    let (all, _) = check(&sb, &config, &["--allow-net", "127.0.0.1:1"]);
    assert!(all.contains(&format!("grant TCP to {grant}")), "{all}");

    // The exact grant works.
    let (all, stdout) = check(&sb, &config, &["--no-derived-net", "--allow-net", &grant]);
    assert!(stdout.contains("SUCCEEDED"), "{all}");
}

#[test]
fn values_that_do_not_fit_become_null_and_are_listed_in_airbyte_meta() {
    let Some(pg) = test_postgres() else { return };
    let sb = Sandbox::new();
    let schema = fresh_schema(&pg, "values");
    let properties = json!({
        "id": {"type": "integer"}, "n": {"type": "number"}, "ok": {"type": "boolean"},
        "day": {"type": "string", "format": "date"},
        "at": {"type": "string", "format": "date-time", "airbyte_type": "timestamp_with_timezone"},
        "naive": {"type": "string", "format": "date-time", "airbyte_type": "timestamp_without_timezone"},
        "t": {"type": "string", "format": "time", "airbyte_type": "time_without_timezone"},
        "s": {"type": "string"}, "o": {"type": "object"}, "u": {"type": ["string", "integer"]}
    });
    let catalog = one_stream("mixed", properties, "append", json!(null), json!(null));
    let big = "v".repeat(10 * 1024 * 1024);
    let input = [
        record(
            "mixed",
            json!({"id": 1, "n": 1.25, "ok": true, "day": "2024-02-29",
            "at": "2024-01-01T10:00:00+02:00", "naive": "2024-01-01T10:00:00", "t": "23:59:59.5",
            "s": big, "o": {"k": [1, 2]}, "u": 3}),
        ),
        record(
            "mixed",
            json!({"id": "one", "n": "lots", "ok": "yes", "day": "2023-02-29",
            "at": "soon", "naive": 5, "t": "25:00", "s": "nul\u{0}byte", "o": {"k": "nul\u{0}"}, "u": "x"}),
        ),
        record(
            "mixed",
            json!({"id": 9_223_372_036_854_775_807_i64, "n": 1e300}),
        ),
        state("mixed", 1),
    ];
    let run = write(&sb, &pg.config(&schema), &catalog, &input, &[]);
    run.expect_code(0);
    assert_eq!(run.json()["records_confirmed"], 3, "{}", run.stdout);
    let rows = pg.psql(&format!(
        "SELECT coalesce(id::text, 'NULL') || '|' || coalesce(length(s)::text, 'NULL') || '|' || \
         jsonb_array_length(_airbyte_meta->'changes') || '|' || coalesce(at::text, 'NULL') \
         FROM \"{schema}\".mixed ORDER BY _airbyte_raw_id IS NULL, id NULLS LAST"
    ));
    let rows: Vec<&str> = rows.lines().collect();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(
        rows.contains(&"1|10485760|0|2024-01-01 08:00:00+00"),
        "{rows:?}"
    );
    assert!(
        rows.contains(&"9223372036854775807|NULL|0|NULL"),
        "{rows:?}"
    );
    assert!(
        rows.contains(&"NULL|NULL|9|NULL"),
        "every bad value nulled and listed: {rows:?}"
    );
    let changes = pg.psql(&format!(
        "SELECT string_agg(c->>'field' || ':' || (c->>'change') || ':' || (c->>'reason'), ',' ORDER BY c->>'field') \
         FROM \"{schema}\".mixed, jsonb_array_elements(_airbyte_meta->'changes') AS c"
    ));
    assert_eq!(
        changes,
        ["at", "day", "id", "n", "naive", "o", "ok", "s", "t"]
            .map(|f| format!("{f}:NULLED:DESTINATION_SERIALIZATION_ERROR"))
            .join(",")
    );
}

#[test]
fn any_name_a_source_sends_becomes_a_table_and_long_names_do_not_collide() {
    let Some(pg) = test_postgres() else { return };
    let sb = Sandbox::new();
    let schema = fresh_schema(&pg, "names");
    let long_a = format!("{}_alpha", "a_very_long_stream_name".repeat(4));
    let long_b = format!("{}_beta", "a_very_long_stream_name".repeat(4));
    let names = [
        "Users.All",
        "my table",
        "select",
        "Ünïcødé-ström",
        "UPPER",
        "upper",
        &long_a,
        &long_b,
    ];
    let field =
        "Field With Spaces, \"Quotes\" and a name far beyond sixty-three bytes of identifier";
    let streams: Vec<Value> = names
        .iter()
        .map(|name| {
            json!({"stream": {"name": name, "json_schema": {"type": "object", "properties": {
                "id": {"type": "integer"}, "order": {"type": "string"}, field: {"type": "string"},
                format!("{field}, again"): {"type": "string"}}},
                "supported_sync_modes": ["full_refresh"]},
                "sync_mode": "full_refresh", "destination_sync_mode": "append"})
        })
        .collect();
    let mut input = Vec::new();
    for (i, name) in names.iter().enumerate() {
        input.push(record(
            name,
            json!({"id": i, "order": "by", field: "first", format!("{field}, again"): "second"}),
        ));
        input.push(state(name, 1));
    }
    let run = write(
        &sb,
        &pg.config(&schema),
        &json!({"streams": streams}),
        &input,
        &[],
    );
    run.expect_code(0);
    let tables = pg.psql(&format!(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = '{schema}'"
    ));
    assert_eq!(tables, names.len().to_string(), "one table per stream");
    for (i, name) in names.iter().enumerate() {
        let table = destination_postgres::schema::identifier(name).replace('"', "\"\"");
        assert!(table.len() <= 63);
        let row = pg.psql(&format!(
            "SELECT id, \"order\" FROM \"{schema}\".\"{table}\""
        ));
        assert_eq!(row, format!("{i}|by"), "{name}");
    }
    let columns = pg.psql(&format!(
        "SELECT count(DISTINCT column_name) FROM information_schema.columns \
         WHERE table_schema = '{schema}' AND table_name = 'select'"
    ));
    assert_eq!(
        columns, "8",
        "4 Airbyte columns and 4 fields, the two long ones apart"
    );
}

#[test]
fn sync_modes_dedup_overwrite_and_schema_changes() {
    let Some(pg) = test_postgres() else { return };
    let sb = Sandbox::new();
    let schema = fresh_schema(&pg, "modes");
    let config = pg.config(&schema);
    let properties = json!({"id": {"type": "integer"}, "v": {"type": "integer"},
        "name": {"type": "string"}, "_ab_cdc_deleted_at": {"type": ["null", "string"]}});

    // append_dedup: the latest cursor wins, an older one does not, CDC deletes delete.
    let dedup = one_stream(
        "accounts",
        properties.clone(),
        "append_dedup",
        json!([["id"]]),
        json!(["v"]),
    );
    let input = [
        record("accounts", json!({"id": 1, "v": 1, "name": "first"})),
        record("accounts", json!({"id": 2, "v": 1, "name": "two"})),
        record("accounts", json!({"id": 3, "v": 1, "name": "three"})),
        state("accounts", 1),
        record("accounts", json!({"id": 1, "v": 3, "name": "latest"})),
        record(
            "accounts",
            json!({"id": 1, "v": 2, "name": "late but older"}),
        ),
        record(
            "accounts",
            json!({"id": 2, "v": 2, "_ab_cdc_deleted_at": "2024-01-01T00:00:00Z"}),
        ),
        state("accounts", 2),
    ];
    write(&sb, &config, &dedup, &input, &[]).expect_code(0);
    let rows = pg.psql(&format!(
        "SELECT id, v, name FROM \"{schema}\".accounts ORDER BY id"
    ));
    assert_eq!(
        rows.lines().collect::<Vec<_>>(),
        ["1|3|latest", "3|1|three"]
    );

    // append_dedup without a primary key: a clear error, nothing written.
    let keyless = one_stream(
        "keyless",
        properties.clone(),
        "append_dedup",
        json!(null),
        json!(null),
    );
    let run = write(
        &sb,
        &config,
        &keyless,
        &[record("keyless", json!({"id": 1})), state("keyless", 1)],
        &[],
    );
    assert_ne!(run.code, Some(0));
    assert!(
        run.stderr
            .contains("stream keyless is configured append_dedup but has no primary key"),
        "{}",
        run.stderr
    );

    // overwrite: the old rows stay until the stream is COMPLETE.
    let overwrite = one_stream(
        "history",
        properties.clone(),
        "overwrite",
        json!(null),
        json!(null),
    );
    let append = one_stream(
        "history",
        properties.clone(),
        "append",
        json!(null),
        json!(null),
    );
    write(
        &sb,
        &config,
        &append,
        &[record("history", json!({"id": 1})), state("history", 1)],
        &[],
    )
    .expect_code(0);
    write(
        &sb,
        &config,
        &overwrite,
        &[record("history", json!({"id": 2})), state("history", 2)],
        &[],
    )
    .expect_code(0);
    let ids = pg.psql(&format!(
        "SELECT string_agg(id::text, ',' ORDER BY id) FROM \"{schema}\".history"
    ));
    assert_eq!(ids, "1,2", "no COMPLETE: the old row is kept");
    write(
        &sb,
        &config,
        &overwrite,
        &[
            record("history", json!({"id": 3})),
            state("history", 3),
            complete("history"),
        ],
        &[],
    )
    .expect_code(0);
    let ids = pg.psql(&format!(
        "SELECT string_agg(id::text, ',' ORDER BY id) FROM \"{schema}\".history"
    ));
    assert_eq!(ids, "3", "COMPLETE: replaced");

    // A new column in a later catalog is added; a changed type is refused with the fix.
    let mut wider = properties.as_object().expect("object").clone();
    wider.insert("extra".into(), json!({"type": "boolean"}));
    let wider = one_stream(
        "history",
        Value::Object(wider),
        "append",
        json!(null),
        json!(null),
    );
    write(
        &sb,
        &config,
        &wider,
        &[
            record("history", json!({"id": 4, "extra": true})),
            state("history", 4),
        ],
        &[],
    )
    .expect_code(0);
    assert_eq!(
        pg.psql(&format!(
            "SELECT extra FROM \"{schema}\".history WHERE id = 4"
        )),
        "t"
    );
    let changed = one_stream(
        "history",
        json!({"id": {"type": "string"}}),
        "append",
        json!(null),
        json!(null),
    );
    let run = write(
        &sb,
        &config,
        &changed,
        &[record("history", json!({"id": "x"})), state("history", 5)],
        &[],
    );
    assert_ne!(run.code, Some(0));
    assert!(
        run.stderr.contains("stream history: column \"id\"")
            && run
                .stderr
                .contains("is bigint, but the catalog now declares text")
            && run.stderr.contains("Fix:"),
        "{}",
        run.stderr
    );
}

/// A second server of this test's own, to kill.
struct OwnServer {
    dir: String,
    port: u16,
}

impl OwnServer {
    fn start(port: u16) -> Self {
        let dir = format!("/tmp/airlock-pg-kill-{}", std::process::id());
        let server = Self { dir, port };
        server.run("start");
        server
    }

    fn run(&self, verb: &str) {
        let status = Command::new("bash")
            .arg(root().join("scripts/postgres.sh"))
            .arg(verb)
            .env("AIRLOCK_PG_DIR", &self.dir)
            .env("AIRLOCK_PG_PORT", self.port.to_string())
            .stdout(Stdio::null())
            .status()
            .expect("scripts/postgres.sh");
        assert!(status.success(), "postgres.sh {verb}");
    }

    /// Kills the server at once, as a crash would (no checkpoint, no goodbye).
    fn kill(&self) {
        self.run("kill");
    }

    /// Starts the killed server again on its data (crash recovery).
    fn restart(&self) {
        self.run("resume");
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.run("stop");
    }
}

#[test]
fn a_server_killed_mid_sync_loses_no_row_and_the_rerun_resumes() {
    let Some(pg) = test_postgres() else { return };
    if std::env::var("AIRLOCK_PG_KILL_TEST").as_deref() == Ok("0") {
        return;
    }
    let port = pg.port + 1;
    let own = OwnServer::start(port);
    let server = PgServer {
        port,
        url: pg
            .url
            .replace(&format!(":{}/", pg.port), &format!(":{port}/")),
        ..pg.clone()
    };
    let sb = Sandbox::new();
    let config = server.config("killed").to_string();
    let count = 200_000;
    // always_updated false: given its last state, the faker sends nothing new
    // (with true it regenerates every user, which is the source's business).
    let source_config = json!({"count": count, "seed": 1, "always_updated": false}).to_string();
    let sync = || {
        let mut cmd = sb.airlock();
        cmd.args([
            "sync",
            "--source",
            "source-faker",
            "--source-config",
            &source_config,
        ])
        .args([
            "--destination",
            "destination-postgres",
            "--destination-config",
            &config,
        ])
        .args(["--streams", "users", "--strategy", "append", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        cmd
    };
    let child = sync().spawn().expect("spawn the sync");
    // Kill the server once many rows are committed, while the sync runs.
    let started = Instant::now();
    loop {
        let committed = Command::new("psql")
            .arg(&server.url)
            .args(["-X", "-A", "-t", "-c", "SELECT count(*) FROM killed.users"])
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(0);
        // Past the first few commits, so that states were echoed and stored.
        if committed >= 30_000 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no rows committed in 2 min"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    own.kill();
    let first: Run = child.wait_with_output().expect("wait").into();
    assert_ne!(
        first.code,
        Some(0),
        "the sync fails when its server dies: {}",
        first.stdout
    );
    assert!(
        first.stderr.contains("PostgreSQL") && first.stderr.contains("a rerun resumes"),
        "the error says what happened and what to do: {}",
        first.stderr
    );

    own.restart();
    let before: u64 = server
        .psql("SELECT count(*) FROM killed.users")
        .parse()
        .expect("count");
    assert!(
        before < count,
        "the kill landed mid-sync ({before} of {count} rows)"
    );
    let second: Run = sync().output().expect("rerun").into();
    second.expect_code(0);
    let total: u64 = server
        .psql("SELECT count(*) FROM killed.users")
        .parse()
        .expect("count");
    let distinct: u64 = server
        .psql("SELECT count(DISTINCT id) FROM killed.users")
        .parse()
        .expect("count");
    assert_eq!(distinct, count, "no row is lost ({total} rows in all)");
    // At least once: only rows after the last echoed state may arrive twice.
    assert!(
        total - distinct <= 10_000,
        "{} duplicates",
        total - distinct
    );
    let resent = stream_json(&second.json(), "users")["sent"]
        .as_u64()
        .unwrap_or(count);
    assert!(
        resent < count,
        "the rerun resumed from the last echoed state: sent {resent}"
    );
}
