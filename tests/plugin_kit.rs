//! The plugin author kit: `airlock plugin test` against our destinations under
//! every executor and against deliberately broken ones; `airlock plugin new` from
//! scaffold to a passing suite.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

use crate::support::*;

/// Runs the suite with `args` and returns (exit code, outcome per case, report).
fn plugin_test(
    sb: &Sandbox,
    args: &[&str],
    env: &[(&str, &str)],
) -> (i32, BTreeMap<String, String>, Value) {
    let (code, outcomes, report, _stderr) = plugin_test_run(sb, args, env);
    (code, outcomes, report)
}

/// [`plugin_test`], with airlock's stderr as well.
pub(crate) fn plugin_test_run(
    sb: &Sandbox,
    args: &[&str],
    env: &[(&str, &str)],
) -> (i32, BTreeMap<String, String>, Value, String) {
    let mut cmd = sb.airlock();
    cmd.args(["plugin", "test"])
        .args(args)
        .args(["--records", "5000", "--json"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let run = run_command(cmd, None);
    let report: Value = serde_json::from_str(run.stdout.trim())
        .unwrap_or_else(|e| panic!("not a JSON report ({e}): {}\n{}", run.stdout, run.stderr));
    let outcomes = report["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| {
            (
                c["case"].as_str().expect("case").to_owned(),
                c["outcome"].as_str().expect("outcome").to_owned(),
            )
        })
        .collect();
    (run.code.unwrap_or(-1), outcomes, report, run.stderr)
}

fn cases_with(outcomes: &BTreeMap<String, String>, outcome: &str) -> Vec<String> {
    outcomes
        .iter()
        .filter(|(_, o)| *o == outcome)
        .map(|(c, _)| c.clone())
        .collect()
}

/// What may be n/a for each of our destinations: dev-null writes nothing to read
/// back; local-json and csv do not offer append_dedup.
fn expected_not_applicable(destination: &str) -> Vec<&'static str> {
    match destination {
        "destination-dev-null" => vec![
            "append-dedup-composite-key",
            "append-then-overwrite",
            "fields-not-in-schema",
            "line-breaks",
            "namespaces",
        ],
        _ => vec!["append-dedup-composite-key"],
    }
}

fn assert_passes(
    destination: &str,
    executor: &str,
    code: i32,
    outcomes: &BTreeMap<String, String>,
    report: &Value,
) {
    assert_eq!(
        cases_with(outcomes, "fail"),
        Vec::<String>::new(),
        "{destination} under {executor}: {report:#}"
    );
    assert_eq!(code, 0, "{destination} under {executor}");
    assert_eq!(
        cases_with(outcomes, "not_applicable"),
        expected_not_applicable(destination),
        "{destination} under {executor}"
    );
    assert_eq!(outcomes.len(), 17, "every case ran");
}

#[test]
fn our_destinations_pass_the_suite_as_wasm_components_and_executables() {
    for destination in [
        "destination-dev-null",
        "destination-local-json",
        "destination-csv",
    ] {
        let sb = Sandbox::new();
        let (code, outcomes, report) = plugin_test(&sb, &[destination], &[]);
        assert_passes(destination, "WASM", code, &outcomes, &report);

        let exe = plugin_bin(destination);
        let (code, outcomes, report) = plugin_test(
            &sb,
            &[destination, "--local-executable", exe.to_str().unwrap()],
            &[],
        );
        assert_passes(destination, "process", code, &outcomes, &report);
    }
}

/// Old plugins keep working: the same destinations built as
/// `airlock:destination@0.1.0` components pass the suite, linked against the
/// 0.1.0 bindings (the built-ins, run above, are 0.2.0).
#[test]
fn our_destinations_pass_the_suite_under_both_wit_versions() {
    for destination in ["destination-dev-null", "destination-local-json"] {
        let sb = Sandbox::new();
        let wasm = wasm_artifact_v0_1(&format!("{}.wasm", destination.replace('-', "_")));
        let wasm = wasm.to_str().unwrap();
        let (code, outcomes, report) = plugin_test(&sb, &[destination, "--wasm", wasm], &[]);
        assert_passes(destination, "WASM 0.1.0", code, &outcomes, &report);
        for (flags, version) in [(vec!["--wasm", wasm], "0.1"), (vec![], "0.2")] {
            let mut args = vec!["-v", "spec", destination];
            args.extend(flags);
            let run = sb.run(&args, None);
            run.expect_code(0);
            assert!(
                run.stderr.contains(&format!(
                    "loaded as an airlock:destination@{version} plugin"
                )),
                "{destination} should load as {version}: {}",
                run.stderr
            );
        }
    }
}

#[test]
fn our_destinations_pass_the_suite_as_docker_images() {
    if !docker_ready() {
        assert!(!required_in_ci(), "CI needs a Docker engine for this test");
        eprintln!("skipped: no Docker engine");
        return;
    }
    let _lock = docker_lock();
    docker_images();
    for destination in [
        "destination-dev-null",
        "destination-local-json",
        "destination-csv",
    ] {
        let sb = Sandbox::new();
        let image = format!("airlock/{destination}:test");
        let (code, outcomes, report) =
            plugin_test(&sb, &[destination, "--docker-image", &image], &[]);
        assert_passes(destination, "Docker", code, &outcomes, &report);
    }
    assert_eq!(airlock_containers(), 0, "no container left behind");
}

#[test]
fn broken_destinations_fail_exactly_the_cases_they_should() {
    let fixture = root().join("tests/fixtures/jsonl_destination.py");
    let exe = fixture.to_str().unwrap();
    let run = |mode: &str| {
        let sb = Sandbox::new();
        plugin_test(
            &sb,
            &["fixture", "--local-executable", exe],
            &[("FIXTURE_MODE", mode)],
        )
    };

    // The same fixture, written correctly, passes: the suite is not tuned to our SDK.
    let (code, outcomes, report) = run("normal");
    assert_eq!(
        cases_with(&outcomes, "fail"),
        Vec::<String>::new(),
        "{report:#}"
    );
    assert_eq!(code, 0);

    // A destination that never echoes a state fails every case that needs an echo.
    let (code, outcomes, report) = run("drop-states");
    assert_eq!(code, 1);
    assert_eq!(
        cases_with(&outcomes, "fail"),
        [
            "append-then-overwrite",
            "cancelled-mid-stream",
            "fields-not-in-schema",
            "large-batch",
            "large-record",
            "last-state-echoed",
            "line-breaks",
            "malformed-line",
            "namespaces",
            "odd-stream-names",
            "states-in-order",
            "stream-and-global-states",
        ],
        "{report:#}"
    );
    let detail = |case: &str| {
        report["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["case"] == case)
            .map(|c| c["detail"].as_str().unwrap().to_owned())
            .unwrap()
    };
    assert!(
        detail("last-state-echoed").contains("0 of 3 states echoed"),
        "{}",
        detail("last-state-echoed")
    );
    for ok in [
        "spec",
        "check-good-config",
        "check-bad-config",
        "empty-input",
    ] {
        assert_eq!(outcomes[ok], "pass", "{ok}: {report:#}");
    }

    // One that echoes states in reverse fails where more than one state is sent,
    // and says the echo came out of order.
    let (code, outcomes, report) = run("reorder-states");
    assert_eq!(code, 1);
    assert_eq!(
        cases_with(&outcomes, "fail"),
        [
            "last-state-echoed",
            "namespaces",
            "odd-stream-names",
            "states-in-order",
            "stream-and-global-states",
        ],
        "{report:#}"
    );
    let order = report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["case"] == "states-in-order")
        .unwrap();
    assert!(
        order["detail"].as_str().unwrap().contains("out of order"),
        "{order:#}"
    );

    // One that crashes at its 30th record fails the cases that send 30 or more
    // in one write, with its last words.
    let (code, outcomes, report) = run("crash");
    assert_eq!(code, 1);
    assert_eq!(
        cases_with(&outcomes, "fail"),
        ["large-batch", "states-in-order", "stream-and-global-states"],
        "{report:#}"
    );
    let crashed = report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["case"] == "large-batch")
        .unwrap();
    assert!(
        crashed["log_tail"]
            .to_string()
            .contains("crashing on purpose"),
        "the failure shows the destination's log tail: {crashed:#}"
    );
}

#[test]
fn a_new_plugin_builds_both_ways_and_passes_the_suite_untouched() {
    let sb = Sandbox::new();
    let run = sb.run(&["plugin", "new", "destination-my-files"], None);
    run.expect_code(0);
    assert!(
        run.stdout
            .contains("airlock plugin test destination-my-files --wasm"),
        "{}",
        run.stdout
    );
    let crate_dir = sb.path().join("destination-my-files");
    // The crate itself is fresh, but it builds into the folder and with the profile
    // of the tests' WASM fixtures, so what it shares with them (serde, the SDK, the
    // bindings' macros) is compiled once per test run, not once more here.
    let target = root().join("target/test-plugins");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    for extra in [&["--target", "wasm32-wasip2"][..], &[][..]] {
        let status = Command::new(&cargo)
            .current_dir(&crate_dir)
            // The crate resolves from the lockfile `plugin new` ships: nothing newer
            // than what airlock is tested with (scripts/scaffold-lock.sh renews it).
            .args(["build", "--locked", "--profile", "fixture"])
            .args(["--config", "profile.fixture.inherits=\"release\""])
            .args(["--config", "profile.fixture.debug=false"])
            .args(extra)
            .arg("--target-dir")
            .arg(&target)
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .status()
            .expect("cargo build");
        assert!(
            status.success(),
            "the new plugin builds with {extra:?} from its shipped lockfile \
             (if it is stale, run scripts/scaffold-lock.sh)"
        );
    }
    let wasm = target.join("wasm32-wasip2/fixture/destination_my_files.wasm");
    let exe = target.join("fixture/destination-my-files");
    for flags in [
        ["--wasm", wasm.to_str().unwrap()],
        ["--local-executable", exe.to_str().unwrap()],
    ] {
        let (code, outcomes, report) =
            plugin_test(&sb, &["destination-my-files", flags[0], flags[1]], &[]);
        assert_eq!(
            cases_with(&outcomes, "fail"),
            Vec::<String>::new(),
            "{report:#}"
        );
        assert_eq!(code, 0);
        assert_eq!(
            cases_with(&outcomes, "not_applicable"),
            ["append-dedup-composite-key"]
        );
    }
}
