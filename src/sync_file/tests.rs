use std::path::Path;

use serde_json::json;

use super::*;

const GOOD: &str = r#"
[sources.faker]
connector = "source-faker"
config = { count = 10, seed = 1 }

[destinations.lake]
connector = "destination-local-json"
config = { destination_path = "/local/lake", nested = { user = "me" } }
secrets = { "nested.password" = { env = "PATH" } }

[syncs.faker-to-lake]
source = "faker"
destination = "lake"
streams = ["users"]
strategy = "append"
schedule = "0 * * * *"
[syncs.faker-to-lake.sandbox]
memory_limit_mib = 256
"#;

fn problems(text: &str) -> Vec<Problem> {
    match SyncFile::parse(Path::new("syncs.toml"), text) {
        Err(SyncFileError::Problems { problems, .. }) => problems,
        other => panic!("expected problems, got {other:?}"),
    }
}

#[test]
fn a_good_file_names_its_entries_and_resolves_secrets_by_reference() {
    let file = SyncFile::parse(Path::new("syncs.toml"), GOOD).expect("valid");
    let sync = file.sync("faker-to-lake").expect("sync");
    assert_eq!(sync.streams, ["users"]);
    assert_eq!(sync.schedule.as_deref(), Some("0 * * * *"));
    assert_eq!(
        sync.sandbox.as_ref().and_then(|p| p.memory_limit_mib),
        Some(256)
    );
    // PATH stands in for a secret variable: tests cannot set one without unsafe.
    let config = file
        .resolve_config("destinations.lake", &file.destinations["lake"])
        .expect("resolved");
    let path = std::env::var("PATH").expect("PATH");
    assert_eq!(
        config,
        json!({"destination_path": "/local/lake", "nested": {"user": "me", "password": path}})
    );
    let missing = file.sync("nope").expect_err("no such sync").to_string();
    assert!(missing.contains("faker-to-lake"), "{missing}");
}

#[test]
fn secrets_come_from_files_without_the_final_newline() {
    let file =
        std::env::temp_dir().join(format!("airlock-sync-file-{}.secret", std::process::id()));
    std::fs::write(&file, "from-a-file\n").expect("write");
    let reference = SecretRef {
        env: None,
        file: Some(file.clone()),
    };
    assert_eq!(reference.resolve().expect("read"), "from-a-file");
    let missing = SecretRef {
        env: Some("AIRLOCK_SURELY_UNSET_VARIABLE".into()),
        file: None,
    };
    assert!(
        missing
            .resolve()
            .expect_err("unset")
            .contains("AIRLOCK_SURELY_UNSET_VARIABLE")
    );
    let _ = std::fs::remove_file(file);
}

#[test]
fn every_problem_is_listed_at_once_with_its_line() {
    let text = r#"[sources.faker]
connector = "source-faker"
colour = "blue"
config = { count = 10 }

[destinations.db]
connector = "destination-postgres"
config = { host = "db", password = "hunter22" }

[syncs.one]
source = "fakr"
destination = "db"
strategy = "sideways"

[syncs.two]
source = "faker"
destination = "nowhere"
streams = "users"

[syncs.three]
source = "faker"
destination = "db"
[syncs.three.sandbox]
memory_limit = 5

[extras]
x = 1
"#;
    let found = problems(text);
    let lines: Vec<(usize, &str)> = found.iter().map(|p| (p.line, p.message.as_str())).collect();
    let expect = [
        (3, "unknown key \"colour\" in sources.faker"),
        (8, "config.password looks like a secret written inline"),
        (11, "source \"fakr\" is not defined under [sources]"),
        (13, "strategy \"sideways\" is not one of"),
        (18, "syncs.two"),
        (24, "unknown key \"memory_limit\" in syncs.three.sandbox"),
        (26, "unknown key \"extras\" in the file"),
    ];
    for (line, says) in expect {
        assert!(
            lines.iter().any(|(l, m)| *l == line && m.contains(says)),
            "expected line {line}: {says}\nin {lines:#?}"
        );
    }
    let error = SyncFile::parse(Path::new("syncs.toml"), text)
        .expect_err("problems")
        .to_string();
    assert!(error.starts_with("sync file syncs.toml has"), "{error}");
    assert!(error.contains("\n  syncs.toml:3: unknown key"), "{error}");
    // The inline secret's value is never repeated in the message.
    assert!(!error.contains("hunter22"), "{error}");
}

#[test]
fn a_secret_reference_must_name_exactly_one_place_and_toml_errors_have_lines() {
    let text = r#"[sources.s]
connector = "source-faker"
secrets = { token = { env = "A", file = "b" }, key = {} }
"#;
    let found = problems(text);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(
        found
            .iter()
            .all(|p| p.line == 3 && p.message.contains("exactly one"))
    );
    let found = problems("[sources.s]\nconnector = \n");
    assert_eq!(found[0].line, 2, "{found:#?}");
    assert!(found[0].message.contains("not valid TOML"), "{found:#?}");
}

#[test]
fn a_state_url_with_a_password_must_be_a_reference() {
    let text = r#"[sources.s]
connector = "source-faker"
[destinations.d]
connector = "destination-local-json"
[syncs.inline]
source = "s"
destination = "d"
state = "postgres://airlock:hunter22@db/airlock"
[syncs.both]
source = "s"
destination = "d"
state = "postgres://airlock@db/airlock"
state_secret = { env = "STATE_URL" }
[syncs.referenced]
source = "s"
destination = "d"
state_secret = { file = "/nonexistent/state-url" }
[syncs.parameter]
source = "s"
destination = "d"
state = "postgres://airlock@db/airlock?password=hunter22"
"#;
    let found = problems(text);
    assert!(
        found
            .iter()
            .any(|p| p.line == 8 && p.message.contains("holds a password inline")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p.line == 13 && p.message.contains("not both")),
        "{found:#?}"
    );
    assert!(
        found.iter().all(|p| !p.message.contains("hunter22")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p.line == 21 && p.message.contains("holds a password inline")),
        "a password parameter too: {found:#?}"
    );
    assert_eq!(found.len(), 3, "the reference alone is fine: {found:#?}");
    // Resolving it, as a run would, names what is missing, with its line.
    let text = r#"[sources.s]
connector = "source-faker"
[destinations.d]
connector = "destination-local-json"
[syncs.referenced]
source = "s"
destination = "d"
state_secret = { file = "/nonexistent/state-url" }
"#;
    let file = SyncFile::parse(Path::new("syncs.toml"), text).expect("valid");
    let error = file.check_secrets().expect_err("missing").to_string();
    assert!(
        error.contains(
            "syncs.toml:8: syncs.referenced: state_secret: secret file /nonexistent/state-url"
        ),
        "{error}"
    );
}

/// Two sources of one connector (two databases) would share their states and
/// cache log under the connector's name: each needs an id of its own.
#[test]
fn two_sources_of_one_connector_need_ids_of_their_own() {
    let text = r#"[sources.db1]
connector = "source-faker"
[sources.db2]
connector = "source-faker"
[destinations.d]
connector = "destination-local-json"
"#;
    let found = problems(text);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].line, 3, "{found:#?}");
    assert!(
        found[0]
            .message
            .contains("sources.db2: sources.db1 is filed under \"source-faker\" too")
            && found[0].message.contains("give each an `id`"),
        "{found:#?}"
    );
    let with_ids = text
        .replace("[sources.db1]\n", "[sources.db1]\nid = \"db1\"\n")
        .replace("[sources.db2]\n", "[sources.db2]\nid = \"db2\"\n");
    let file = SyncFile::parse(Path::new("syncs.toml"), &with_ids).expect("valid");
    assert_eq!(file.sources["db2"].id.as_deref(), Some("db2"));
}
