use serde_json::json;

use super::*;
use crate::protocol::{AirbyteGlobalState, AirbyteStreamState, Extra};

fn stream_state(name: &str, ns: Option<&str>, cursor: i64) -> AirbyteStateMessage {
    AirbyteStateMessage::stream(
        StreamDescriptor::with_namespace(name, ns.map(str::to_owned)),
        json!({ "cursor": cursor }),
    )
}

#[test]
fn later_states_replace_earlier_ones_per_stream_and_namespace() {
    let store = StateStore::open_in_memory().expect("open");
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
        "same name in two namespaces are two streams"
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
    let store = StateStore::open_in_memory().expect("open");
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
    let store = StateStore::open_in_memory().expect("open");
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
    let store = StateStore::open_in_memory().expect("open");
    let key = SyncKey::new("src", "dst");
    let mut broken = stream_state("b", None, 1);
    broken.stream = None;
    let err = store
        .commit(&key, &[stream_state("a", None, 1), broken])
        .expect_err("malformed");
    assert!(err.to_string().contains("`stream`"), "{err}");
    assert!(
        store.load(&key).expect("load").is_empty(),
        "the transaction rolled back"
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
    let conn = Connection::open(&path).expect("raw");
    conn.pragma_update(None, "user_version", 99).expect("bump");
    drop(conn);
    let err = StateStore::open(&path).expect_err("newer");
    assert!(err.to_string().contains("upgrade airlock"), "{err}");
}

#[test]
fn an_updated_config_is_filed_under_the_config_the_user_gave() {
    let store = StateStore::open_in_memory().expect("open");
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
