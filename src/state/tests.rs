use serde_json::json;

use super::*;
use crate::protocol::{AirbyteGlobalState, AirbyteStreamState, Extra};

/// A test's stores: SQLite in memory, and PostgreSQL in a database of its own
/// when `AIRLOCK_TEST_PG_URL` names a server (CI starts one; there its absence is
/// a failure). Every behaviour test runs against each.
fn stores() -> Vec<(&'static str, StateStore)> {
    let mut stores = vec![("sqlite", StateStore::open_in_memory().expect("open"))];
    if let Some(url) = fresh_pg_database() {
        stores.push(("postgres", StateStore::connect(&url).expect("connect")));
    }
    stores
}

/// A store on a new database of the test server holding one state (stream `a`,
/// cursor 1) of `src -> dst`: its URL, the store and the key.
fn pg_store_with_a_state() -> Option<(String, StateStore, SyncKey)> {
    let url = fresh_pg_database()?;
    let store = StateStore::connect(&url).expect("connect");
    let key = SyncKey::new("src", "dst");
    store
        .commit(&key, &[stream_state("a", None, 1)])
        .expect("first");
    Some((url, store, key))
}

/// A new, empty database on the test server, as a URL.
fn fresh_pg_database() -> Option<String> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let Ok(url) = std::env::var("AIRLOCK_TEST_PG_URL") else {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        assert!(
            !ci,
            "CI requires a PostgreSQL server: set AIRLOCK_TEST_PG_URL"
        );
        return None;
    };
    let name = format!(
        "airlock_state_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let mut admin = ::postgres::Client::connect(&url, ::postgres::NoTls).expect("test server");
    for sql in [
        format!("DROP DATABASE IF EXISTS {name}"),
        format!("CREATE DATABASE {name}"),
    ] {
        admin.batch_execute(&sql).expect("create the test database");
    }
    let (base, _db) = url.rsplit_once('/').expect("a database in the URL");
    Some(format!("{base}/{name}"))
}

fn stream_state(name: &str, ns: Option<&str>, cursor: i64) -> AirbyteStateMessage {
    AirbyteStateMessage::stream(
        StreamDescriptor::with_namespace(name, ns.map(str::to_owned)),
        json!({ "cursor": cursor }),
    )
}

#[test]
fn later_states_replace_earlier_ones_per_stream_and_namespace() {
    for (backend, store) in stores() {
        later_states_replace_earlier_ones(backend, &store);
    }
}

fn later_states_replace_earlier_ones(backend: &str, store: &StateStore) {
    let key = SyncKey::new("src", "dst");
    store
        .commit(
            &key,
            &[
                stream_state("a", None, 1),
                stream_state("a", Some("x"), 2),
                stream_state("a", None, 3),
            ],
        )
        .expect("commit");
    let stored = store.load(&key).expect("load");
    assert_eq!(
        stored.streams.len(),
        2,
        "{backend}: same name in two namespaces are two streams"
    );
    assert_eq!(
        store
            .stream_state(&key, &StreamDescriptor::new("a"))
            .expect("q")
            .expect("some")
            .stream
            .expect("s")
            .stream_state,
        Some(json!({"cursor": 3}))
    );
    assert!(
        store
            .load(&SyncKey::new("src", "other"))
            .expect("load")
            .is_empty(),
        "keyed by destination"
    );
}

#[test]
fn global_and_legacy_states_are_kept_and_handed_back() {
    for (_backend, store) in stores() {
        global_and_legacy_round_trip(&store);
    }
}

fn global_and_legacy_round_trip(store: &StateStore) {
    let key = SyncKey::new("src", "dst");
    let global = AirbyteStateMessage {
        state_type: Some(StateType::Global),
        global: Some(AirbyteGlobalState {
            shared_state: Some(json!({"lsn": 7})),
            stream_states: vec![AirbyteStreamState {
                stream_descriptor: StreamDescriptor::new("a"),
                stream_state: Some(json!({"c": 1})),
                extra: Extra::new(),
            }],
            extra: Extra::new(),
        }),
        ..stream_state("unused", None, 0)
    };
    let global = AirbyteStateMessage {
        stream: None,
        ..global
    };
    let legacy: AirbyteStateMessage =
        serde_json::from_value(json!({"data": {"v": 1}})).expect("legacy");
    store
        .commit(&key, &[global.clone(), legacy.clone()])
        .expect("commit");
    let stored = store.load(&key).expect("load");
    assert_eq!(stored.global, Some(global));
    assert_eq!(stored.legacy, Some(legacy));
    let input = stored.to_input_state().expect("input state");
    assert_eq!(input[0]["type"], "GLOBAL");
    assert_eq!(input[0]["global"]["shared_state"]["lsn"], 7);
}

#[test]
fn stats_are_not_handed_back_to_sources() {
    for (_backend, store) in stores() {
        stats_not_handed_back(&store);
    }
}

fn stats_not_handed_back(store: &StateStore) {
    let key = SyncKey::new("src", "dst");
    let mut state = stream_state("a", None, 1);
    state.destination_stats = Some(crate::protocol::AirbyteStateStats {
        record_count: Some(3.0),
        ..Default::default()
    });
    store.commit(&key, &[state]).expect("commit");
    let input = store
        .load(&key)
        .expect("load")
        .to_input_state()
        .expect("some");
    assert!(input[0].get("destinationStats").is_none());
}

#[test]
fn a_malformed_state_commits_nothing() {
    for (backend, store) in stores() {
        malformed_commits_nothing(backend, &store);
    }
}

fn malformed_commits_nothing(backend: &str, store: &StateStore) {
    let key = SyncKey::new("src", "dst");
    let mut broken = stream_state("b", None, 1);
    broken.stream = None;
    let err = store
        .commit(&key, &[stream_state("a", None, 1), broken])
        .expect_err("malformed");
    assert!(err.to_string().contains("`stream`"), "{backend}: {err}");
    assert!(
        store.load(&key).expect("load").is_empty(),
        "{backend}: the transaction rolled back"
    );
}

#[test]
fn a_file_store_survives_reopening_and_refuses_newer_schemas() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("nested/state.db");
    let key = SyncKey::new("src", "dst");
    {
        let store = StateStore::open(&path).expect("open");
        store
            .commit(&key, &[stream_state("a", None, 9)])
            .expect("commit");
    }
    let store = StateStore::open(&path).expect("reopen");
    assert_eq!(store.load(&key).expect("load").streams.len(), 1);
    drop(store);
    let conn = rusqlite::Connection::open(&path).expect("raw");
    conn.pragma_update(None, "user_version", 99).expect("bump");
    drop(conn);
    let err = StateStore::open(&path).expect_err("newer");
    assert!(err.to_string().contains("upgrade airlock"), "{err}");
}

#[test]
fn an_updated_config_is_filed_under_the_config_the_user_gave() {
    for (_backend, store) in stores() {
        updated_config_filed_under_given(&store);
    }
}

fn updated_config_filed_under_given(store: &StateStore) {
    let given = json!({"api_key": "k", "region": "eu"});
    let same_given_reordered: Value =
        serde_json::from_str(r#"{"region": "eu", "api_key": "k"}"#).expect("json");
    let updated = json!({"api_key": "k", "region": "eu", "refresh_token": "t2"});
    assert_eq!(
        store.updated_config("source-x", &given).expect("load"),
        None
    );
    store
        .save_updated_config("source-x", &given, &updated)
        .expect("save");
    assert_eq!(
        store
            .updated_config("source-x", &same_given_reordered)
            .expect("load"),
        Some(updated),
        "key order in the given config does not matter"
    );
    assert_eq!(
        store
            .updated_config("source-x", &json!({"api_key": "other"}))
            .expect("load"),
        None,
        "a different given config does not pick up the stored one"
    );
    assert_eq!(
        store.updated_config("source-y", &given).expect("load"),
        None
    );
}

/// A password given as a URL parameter is as secret as one in the user part.
#[test]
fn a_password_parameter_is_masked_and_counts_as_a_password() {
    let url = "postgres://loader@127.0.0.1:1/nowhere?sslmode=disable&password=s3cretpw";
    let error = StateStore::connect(url).expect_err("nothing listens on port 1");
    let text = error.to_string();
    assert!(!text.contains("s3cretpw"), "{text}");
    assert!(text.contains("password=***"), "{text}");
    assert!(text.contains("sslmode=disable"), "{text}");
    assert!(crate::config::url_holds_password(url));
    assert!(crate::config::url_holds_password("postgresql://u:p@h/db"));
    assert!(!crate::config::url_holds_password(
        "postgres://u@h/db?sslmode=disable"
    ));
    assert!(!crate::config::url_holds_password(
        "/var/lib/airlock/state.db"
    ));
}

#[test]
fn postgres_is_reached_by_url_with_its_password_never_shown() {
    let error = StateStore::connect("postgres://loader:s3cretpw@127.0.0.1:1/nowhere")
        .expect_err("nothing listens on port 1");
    let text = error.to_string();
    assert!(
        text.contains("postgres://loader:***@127.0.0.1:1/nowhere"),
        "{text}"
    );
    assert!(!text.contains("s3cretpw"), "{text}");
}

/// The server drops the connection (a restart, a failover): the commit in flight
/// fails with a named error and stores nothing half-way; the next call connects
/// again and the rerun's commit lands.
#[test]
fn postgres_going_away_is_a_named_error_and_the_next_commit_reconnects() {
    let Some((url, store, key)) = pg_store_with_a_state() else {
        return;
    };
    let database = url.rsplit_once('/').expect("db").1.to_owned();
    let base = std::env::var("AIRLOCK_TEST_PG_URL").expect("url");
    let mut admin = ::postgres::Client::connect(&base, ::postgres::NoTls).expect("admin");
    admin
        .execute(
            // (waiting up to 5 s for each backend to end)
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&database],
        )
        .expect("terminate");
    // A connection the driver already knew to be closed is made again first, so
    // the commit may succeed; if it fails, the error names the store, not the
    // password, and the failure drops the connection.
    if let Err(error) = store.commit(&key, &[stream_state("a", None, 2)]) {
        let text = error.to_string();
        assert!(text.starts_with("state database postgres://"), "{text}");
        assert!(!text.contains(":airlock@"), "no password: {text}");
    }
    store
        .commit(&key, &[stream_state("a", None, 3)])
        .expect("reconnected");
    let stored = store.load(&key).expect("load");
    assert_eq!(
        stored.streams[0]
            .stream
            .as_ref()
            .and_then(|s| s.stream_state.clone()),
        Some(json!({"cursor": 3}))
    );
    // Another store on the same database shares the states and the id.
    let other = StateStore::connect(&url).expect("second worker");
    assert_eq!(other.id(), store.id());
    assert_eq!(other.load(&key).expect("load"), stored);
}

/// A stuck session holds a lock the commit needs: the commit fails with the
/// server's lock timeout, named, instead of hanging the run; once the lock is
/// gone the next commit lands.
#[test]
fn a_commit_blocked_by_a_stuck_lock_fails_instead_of_hanging() {
    let Some((url, store, key)) = pg_store_with_a_state() else {
        return;
    };
    let mut stuck = ::postgres::Client::connect(&url, ::postgres::NoTls).expect("stuck session");
    let mut hold = stuck.transaction().expect("begin");
    hold.batch_execute("LOCK TABLE airlock_stream_state IN ACCESS EXCLUSIVE MODE")
        .expect("lock");
    let error = store
        .commit(&key, &[stream_state("a", None, 2)])
        .expect_err("the lock is held");
    let text = error.to_string();
    assert!(text.starts_with("state database postgres://"), "{text}");
    assert!(text.contains("lock timeout"), "{text}");
    hold.rollback().expect("rollback");
    store
        .commit(&key, &[stream_state("a", None, 3)])
        .expect("the lock is gone");
}

#[test]
fn a_lease_is_held_by_one_run_fenced_by_its_token_and_taken_over_once_it_runs_out() {
    use std::time::Duration;
    for (backend, store) in stores() {
        let key = SyncKey::new("src", "dst");
        let ttl = Duration::from_millis(400);
        let LeaseOutcome::Acquired(first) =
            store.acquire_lease("s -> d", "worker-a", ttl).expect("a")
        else {
            panic!("{backend}: a free lease is taken");
        };
        assert_eq!(first.token, 1, "{backend}");
        match store.acquire_lease("s -> d", "worker-b", ttl).expect("b") {
            LeaseOutcome::Held { holder, .. } => assert_eq!(holder, "worker-a", "{backend}"),
            other => panic!("{backend}: two holders at once: {other:?}"),
        }
        store
            .commit_fenced(&key, &[stream_state("a", None, 1)], &first)
            .expect("the holder commits");
        assert!(
            store.renew_lease(&first, ttl).expect("renew").is_some(),
            "{backend}"
        );
        // The holder stops renewing (paused, cut off): the lease runs out and
        // another worker takes it with the next token.
        std::thread::sleep(ttl + Duration::from_millis(200));
        let LeaseOutcome::Acquired(second) =
            store.acquire_lease("s -> d", "worker-b", ttl).expect("b")
        else {
            panic!("{backend}: an expired lease is taken over");
        };
        assert_eq!(second.token, 2, "{backend}");
        // The first holder wakes up: it can neither renew nor commit.
        assert_eq!(
            store.renew_lease(&first, ttl).expect("renew"),
            None,
            "{backend}"
        );
        let refused = store
            .commit_fenced(&key, &[stream_state("a", None, 99)], &first)
            .expect_err("fenced off");
        assert!(
            matches!(&refused, StateError::LeaseLost { taken_by: Some(h), token: 1, .. } if h == "worker-b"),
            "{backend}: {refused}"
        );
        assert!(refused.to_string().contains("lost its lease"), "{refused}");
        store
            .commit_fenced(&key, &[stream_state("a", None, 2)], &second)
            .expect("the new holder commits");
        let stored = store.load(&key).expect("load");
        assert_eq!(
            stored.streams[0]
                .stream
                .as_ref()
                .and_then(|s| s.stream_state.clone()),
            Some(json!({"cursor": 2})),
            "{backend}: nothing of the fenced-off commit was stored"
        );
        store.release_lease(&second).expect("release");
        assert!(matches!(
            store.acquire_lease("s -> d", "worker-c", ttl).expect("c"),
            LeaseOutcome::Acquired(Lease { token: 3, .. })
        ));
    }
}

/// Four workers, each with its own connection to one store (as on four
/// machines), ask for one lease at the same moment: exactly one gets it.
#[test]
fn two_workers_asking_at_the_same_moment_get_one_lease() {
    use std::time::Duration;
    let dir = tempfile::tempdir().expect("tmp");
    let mut locations = vec![("sqlite", dir.path().join("state.db").display().to_string())];
    if let Some(url) = fresh_pg_database() {
        locations.push(("postgres", url));
    }
    for (backend, location) in locations {
        // Made once first, so the workers race for the lease, not for the schema.
        StateStore::connect(&location).expect("schema");
        let start = std::sync::Arc::new(std::sync::Barrier::new(4));
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let (location, start) = (location.clone(), start.clone());
                std::thread::spawn(move || {
                    let store = StateStore::connect(&location).expect("connect");
                    start.wait();
                    store
                        .acquire_lease("race", &format!("worker-{i}"), Duration::from_secs(30))
                        .expect("ask")
                })
            })
            .collect();
        let won = handles
            .into_iter()
            .map(|h| h.join().expect("join"))
            .filter(|o| matches!(o, LeaseOutcome::Acquired(_)))
            .count();
        assert_eq!(won, 1, "{backend}: exactly one worker holds the lease");
    }
}

#[test]
fn a_run_of_some_streams_cannot_commit_a_global_state() {
    use crate::write::Checkpoints;
    let store = std::sync::Arc::new(StateStore::open_in_memory().expect("open"));
    let target = StateTarget {
        store: store.clone(),
        key: SyncKey::new("source-cdc", "dst"),
        fence: Vec::new(),
        refuse_shared: true,
    };
    let global: AirbyteStateMessage = serde_json::from_value(json!({
        "type": "GLOBAL",
        "global": {"shared_state": {"lsn": 1}, "stream_states": []}
    }))
    .expect("global");
    let error = target.commit(&[global]).expect_err("refused").0.to_string();
    assert!(error.contains("cannot be synced apart"), "{error}");
    assert!(
        store
            .load(&SyncKey::new("source-cdc", "dst"))
            .expect("load")
            .is_empty()
    );
    // Nor a LEGACY one (a state without a type), which covers every stream too.
    let legacy: AirbyteStateMessage =
        serde_json::from_value(json!({"data": {"users": 1}})).expect("legacy");
    let error = target.commit(&[legacy]).expect_err("refused").0.to_string();
    assert!(error.contains("keeps a LEGACY state"), "{error}");
    target
        .commit(&[stream_state("users", None, 1)])
        .expect("a STREAM state is fine");
}
