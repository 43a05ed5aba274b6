//! Unit tests of the local-json destination, run through the SDK's
//! [`WriteSession`] as a host would.

use std::fs;
use std::path::Path;

use super::*;
use airlock_plugin_sdk::{FailureType, WriteSession};
use serde_json::json;

/// A catalog of `(name, namespace, destination_sync_mode)` streams.
fn catalog(streams: &[(&str, Option<&str>, &str)]) -> ConfiguredCatalog {
    let streams: Vec<Value> = streams
        .iter()
        .map(|(name, namespace, mode)| {
            json!({"stream": {"name": name, "namespace": namespace, "json_schema": {}},
                   "sync_mode": "full_refresh", "destination_sync_mode": mode})
        })
        .collect();
    serde_json::from_value(json!({ "streams": streams })).expect("catalog")
}

fn record(stream: &str, namespace: Option<&str>, data: &str, emitted_at: i64) -> String {
    let namespace = namespace
        .map(|ns| format!(r#","namespace":"{ns}""#))
        .unwrap_or_default();
    format!(
        r#"{{"type":"RECORD","record":{{"stream":"{stream}"{namespace},"data":{data},"emitted_at":{emitted_at}}}}}"#
    )
}

fn complete(stream: &str) -> String {
    format!(
        r#"{{"type":"TRACE","trace":{{"type":"STREAM_STATUS","emitted_at":1.0,"stream_status":{{"stream_descriptor":{{"name":"{stream}"}},"status":"COMPLETE"}}}}}}"#
    )
}

struct Run {
    output: Vec<Value>,
    ok: bool,
}

/// Runs `lines` through local-json writing natively into `folder`.
fn run(folder: &Path, catalog: &ConfiguredCatalog, lines: &[String]) -> Run {
    let config = json!({ "destination_path": folder.to_str().expect("utf8 path") });
    run_with(&config, &Context::native(), catalog, lines)
}

fn run_with(config: &Value, ctx: &Context, catalog: &ConfiguredCatalog, lines: &[String]) -> Run {
    let mut session = WriteSession::open(&LocalJson, config, catalog, ctx).expect("open");
    let mut out = Vec::new();
    for line in lines {
        if session.push_line(line.as_bytes(), &mut out).is_err() {
            break;
        }
    }
    let ok = session.finish(&mut out).is_ok();
    let output = out
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("JSON line"))
        .collect();
    Run { output, ok }
}

/// The `_airbyte_data` of each line of the `.jsonl` file `name` in `folder`.
fn data_of(folder: &Path, name: &str) -> Vec<Value> {
    let path = folder.join(name);
    fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON line")["_airbyte_data"].clone())
        .collect()
}

fn file_names(folder: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(folder)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn spec_requires_destination_path() {
    let spec = LocalJson.spec();
    assert_eq!(
        spec["connectionSpecification"]["required"],
        json!(["destination_path"])
    );
    assert_eq!(
        spec["connectionSpecification"]["properties"]["destination_path"]["type"],
        "string"
    );
    assert_eq!(
        spec["supported_destination_sync_modes"],
        json!(["overwrite", "append"])
    );
}

#[test]
fn records_are_written_in_airbyte_format() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lines = [
        record(
            "users",
            None,
            r#"{"id": 1, "name":"Ann"}"#,
            1_795_600_668_304,
        ),
        record("users", None, r#"{"id":2}"#, 7),
    ];
    let result = run(dir.path(), &catalog(&[("users", None, "append")]), &lines);
    assert!(result.ok);
    let text = fs::read_to_string(dir.path().join("_airbyte_raw_users.jsonl")).expect("read");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    // Field order and the raw data are exactly as Airbyte writes them.
    let (id, rest) = lines[0]
        .strip_prefix(r#"{"_airbyte_ab_id":""#)
        .and_then(|l| l.split_once('"'))
        .expect("id first");
    assert_eq!(
        rest,
        r#","_airbyte_emitted_at":1795600668304,"_airbyte_data":{"id": 1, "name":"Ann"}}"#
    );
    let id = uuid::Uuid::parse_str(id).expect("uuid");
    assert_eq!(id.get_version(), Some(uuid::Version::Random));
    let second: Value = serde_json::from_str(lines[1]).expect("json");
    assert_eq!(second["_airbyte_emitted_at"], 7);
    assert_ne!(second["_airbyte_ab_id"], json!(id.to_string()));
    assert_eq!(file_names(dir.path()), ["_airbyte_raw_users.jsonl"]);
}

#[test]
fn line_breaks_in_values_stay_on_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Escaped line breaks, and a raw U+2028 (valid unescaped in JSON).
    let data = concat!(r#"{"text":"a\nb\rc\u2028d","raw":"e"#, "\u{2028}", r#"f"}"#);
    run(
        dir.path(),
        &catalog(&[("s", None, "append")]),
        &[record("s", None, data, 1)],
    );
    let written = data_of(dir.path(), "_airbyte_raw_s.jsonl");
    assert_eq!(
        written,
        [json!({"text": "a\nb\rc\u{2028}d", "raw": "e\u{2028}f"})]
    );
}

#[test]
fn states_are_echoed_with_destination_stats_after_a_flush() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cat = catalog(&[("users", None, "append")]);
    let config = json!({ "destination_path": dir.path().to_str().expect("utf8") });
    let mut session =
        WriteSession::open(&LocalJson, &config, &cat, &Context::native()).expect("open");
    let mut out = Vec::new();
    for n in 1..=3 {
        session
            .push_line(
                record("users", None, &format!(r#"{{"n":{n}}}"#), n).as_bytes(),
                &mut out,
            )
            .expect("record");
    }
    session
        .push_line(
            br#"{"type":"STATE","state":{"type":"STREAM","stream":{"stream_descriptor":{"name":"users"},"stream_state":{"cursor":3}}}}"#,
            &mut out,
        )
        .expect("state");
    let state: Value = serde_json::from_slice(&out).expect("one state line");
    assert_eq!(
        state["state"]["destinationStats"],
        json!({"recordCount": 3.0})
    );
    assert_eq!(
        state["state"]["stream"]["stream_state"],
        json!({"cursor": 3})
    );
    // The records covered by the echoed state are in the temp file already.
    let temp = file_names(dir.path())
        .into_iter()
        .find(|n| n.starts_with("_airbyte_tmp_"))
        .expect("temp file");
    assert_eq!(data_of(dir.path(), &temp).len(), 3);
    session.finish(&mut out).expect("finish");
    assert_eq!(file_names(dir.path()), ["_airbyte_raw_users.jsonl"]);
}

#[test]
fn a_completed_overwrite_replaces_and_append_keeps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cat = catalog(&[("over", None, "overwrite"), ("app", None, "append")]);
    let sync = |n: i64| {
        [
            record("over", None, &format!(r#"{{"run":{n}}}"#), n),
            record("app", None, &format!(r#"{{"run":{n}}}"#), n),
            complete("over"),
            complete("app"),
        ]
    };
    assert!(run(dir.path(), &cat, &sync(1)).ok);
    assert!(run(dir.path(), &cat, &sync(2)).ok);
    assert_eq!(
        data_of(dir.path(), "_airbyte_raw_over.jsonl"),
        [json!({"run": 2})]
    );
    assert_eq!(
        data_of(dir.path(), "_airbyte_raw_app.jsonl"),
        [json!({"run": 1}), json!({"run": 2})]
    );
}

#[test]
fn an_overwrite_without_complete_keeps_prior_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cat = catalog(&[("over", None, "overwrite")]);
    run(
        dir.path(),
        &cat,
        &[record("over", None, "1", 1), complete("over")],
    );
    run(dir.path(), &cat, &[record("over", None, "2", 2)]);
    assert_eq!(
        data_of(dir.path(), "_airbyte_raw_over.jsonl"),
        [json!(1), json!(2)]
    );
}

#[test]
fn a_failed_run_keeps_prior_data_and_what_it_wrote() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cat = catalog(&[("over", None, "overwrite")]);
    run(
        dir.path(),
        &cat,
        &[record("over", None, "1", 1), complete("over")],
    );
    // Fail the second run from outside, as a host whose input broke would;
    // the stream had even completed.
    let config = json!({ "destination_path": dir.path().to_str().expect("utf8") });
    let mut session =
        WriteSession::open(&LocalJson, &config, &cat, &Context::native()).expect("open");
    let mut out = Vec::new();
    session
        .push_line(record("over", None, "2", 2).as_bytes(), &mut out)
        .expect("record");
    session
        .push_line(complete("over").as_bytes(), &mut out)
        .expect("complete");
    session.abort(DestinationError::system("input broke"), &mut out);
    assert_eq!(
        data_of(dir.path(), "_airbyte_raw_over.jsonl"),
        [json!(1), json!(2)]
    );
    let trace: Value = serde_json::from_slice(&out).expect("trace");
    assert_eq!(trace["trace"]["error"]["message"], "input broke");
}

#[test]
fn odd_stream_names_become_safe_file_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let names = [
        "camelCase",
        "ALL_CAPS",
        "spécial",
        "operator+1",
        "1abc",
        "with space",
    ];
    let streams: Vec<(&str, Option<&str>, &str)> =
        names.iter().map(|n| (*n, None, "append")).collect();
    let lines: Vec<String> = names.iter().map(|n| record(n, None, "{}", 1)).collect();
    assert!(run(dir.path(), &catalog(&streams), &lines).ok);
    assert_eq!(
        file_names(dir.path()),
        [
            "_airbyte_raw_1abc.jsonl",
            "_airbyte_raw_ALL_CAPS.jsonl",
            "_airbyte_raw_camelCase.jsonl",
            "_airbyte_raw_operator_1.jsonl",
            "_airbyte_raw_special.jsonl",
            "_airbyte_raw_with_space.jsonl",
        ]
    );
}

#[test]
fn namespaces_get_their_own_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cat = catalog(&[
        ("users", None, "append"),
        ("users", Some("crm"), "append"),
        ("users", Some("bill ing"), "append"),
    ]);
    let lines = [
        record("users", None, r#"{"at":"none"}"#, 1),
        record("users", Some("crm"), r#"{"at":"crm"}"#, 1),
        record("users", Some("bill ing"), r#"{"at":"billing"}"#, 1),
    ];
    assert!(run(dir.path(), &cat, &lines).ok);
    assert_eq!(
        data_of(dir.path(), "_airbyte_raw_users.jsonl"),
        [json!({"at": "none"})]
    );
    assert_eq!(
        data_of(&dir.path().join("crm"), "_airbyte_raw_users.jsonl"),
        [json!({"at": "crm"})]
    );
    assert_eq!(
        data_of(&dir.path().join("bill_ing"), "_airbyte_raw_users.jsonl"),
        [json!({"at": "billing"})]
    );
}

#[test]
fn streams_whose_names_collide_share_one_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cat = catalog(&[("a b", None, "overwrite"), ("a_b", None, "overwrite")]);
    run(
        dir.path(),
        &cat,
        &[
            record("a b", None, "0", 0),
            complete("a b"),
            complete("a_b"),
        ],
    );
    let lines = [
        record("a b", None, "1", 1),
        record("a_b", None, "2", 2),
        complete("a b"),
    ];
    run(dir.path(), &cat, &lines);
    // Only one of the two streams completed: the prior data is kept.
    assert_eq!(
        data_of(dir.path(), "_airbyte_raw_a_b.jsonl"),
        [json!(0), json!(1), json!(2)]
    );
    let mut lines = lines.to_vec();
    lines.push(complete("a_b"));
    run(dir.path(), &cat, &lines);
    assert_eq!(
        data_of(dir.path(), "_airbyte_raw_a_b.jsonl"),
        [json!(1), json!(2)]
    );
    assert_eq!(file_names(dir.path()), ["_airbyte_raw_a_b.jsonl"]);
}

#[test]
fn sandboxed_paths_resolve_under_the_local_root() {
    let root = tempfile::tempdir().expect("tempdir");
    let ctx = Context::sandboxed(root.path());
    let cat = catalog(&[("users", None, "append")]);
    let config = json!({"destination_path": "/json_data"});
    assert_eq!(LocalJson.check(&config, &ctx), Ok(()));
    assert!(run_with(&config, &ctx, &cat, &[record("users", None, "{}", 1)]).ok);
    assert_eq!(
        data_of(&root.path().join("json_data"), "_airbyte_raw_users.jsonl").len(),
        1
    );
}

#[test]
fn paths_escaping_local_are_refused_when_sandboxed() {
    let root = tempfile::tempdir().expect("tempdir");
    let ctx = Context::sandboxed(root.path().join("local"));
    let config = json!({"destination_path": "/local/../../escape"});
    let message = LocalJson.check(&config, &ctx).expect_err("refused");
    assert!(
        message.contains("/local/../../escape") && message.contains("inside /local"),
        "{message}"
    );
    let error = LocalJson
        .open(&config, &catalog(&[("users", None, "append")]), &ctx)
        .err()
        .expect("refused");
    assert_eq!(error.failure_type, FailureType::ConfigError);
    assert_eq!(file_names(root.path()), Vec::<String>::new());
}

#[test]
fn check_probes_the_folder_and_reports_problems() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("new/folder");
    let ctx = Context::native();
    let config = json!({"destination_path": target.to_str().expect("utf8")});
    assert_eq!(LocalJson.check(&config, &ctx), Ok(()));
    assert!(target.is_dir());
    assert!(file_names(&target).is_empty(), "the probe file is removed");

    assert_eq!(
        LocalJson.check(&json!({}), &ctx),
        Err("destination_path is required".to_string())
    );
    assert_eq!(
        LocalJson.check(&json!({"destination_path": 3}), &ctx),
        Err("destination_path must be a string, got 3".to_string())
    );
    let file = dir.path().join("plain-file");
    fs::write(&file, "x").expect("write");
    let message = LocalJson
        .check(
            &json!({"destination_path": file.join("sub").to_str().expect("utf8")}),
            &ctx,
        )
        .expect_err("not a folder");
    assert!(
        message.contains("could not create the destination folder"),
        "{message}"
    );
}

#[test]
fn records_of_unknown_streams_are_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let result = run(
        dir.path(),
        &catalog(&[("users", None, "append")]),
        &[
            record("ghost", None, "{}", 1),
            record("users", None, "{}", 1),
        ],
    );
    assert!(result.ok);
    assert_eq!(result.output.len(), 1, "one warning");
    assert_eq!(file_names(dir.path()), ["_airbyte_raw_users.jsonl"]);
}

#[test]
fn integers_are_written_in_decimal() {
    for n in [0, 7, -7, 1_795_600_668_304, i64::MAX, i64::MIN] {
        let mut line = Vec::new();
        push_integer(&mut line, n);
        assert_eq!(String::from_utf8(line).expect("utf8"), n.to_string());
    }
}
