//! The sandbox, proven by an adversarial plugin: every attack fails cleanly, the
//! error names the rule and how to raise it, and the host keeps running plugins.

use std::time::Duration;

use airlock::config::SecretMask;
use airlock::executor::sandbox::SandboxPolicy;
use airlock::executor::wasm::{WasmExecutor, WasmSource};
use airlock::executor::{Executor, ExecutorError, ExecutorErrorKind, Remedy, RunError};
use airlock::protocol::ConnectionStatus;
use serde_json::json;

use crate::support::*;

fn adversary(policy: SandboxPolicy, cache: &std::path::Path) -> WasmExecutor {
    WasmExecutor::new(
        "adversary",
        WasmSource::File(wasm_artifact("test_adversary.wasm")),
        policy,
    )
    .cache_dir(Some(cache.to_path_buf()))
}

/// The host still runs a well-behaved plugin after an attack.
async fn host_still_works(sb: &Sandbox) {
    let exec = WasmExecutor::new(
        "dev-null",
        WasmSource::File(wasm_artifact("destination_dev_null.wasm")),
        SandboxPolicy::new(),
    )
    .cache_dir(Some(sb.path().join("cache")));
    let status = exec
        .check(
            &json!({"test_destination": {"test_destination_type": "SILENT"}}),
            &SecretMask::none(),
        )
        .await
        .expect("check");
    assert_eq!(status.status, ConnectionStatus::Succeeded);
}

#[tokio::test(flavor = "multi_thread")]
async fn probes_of_files_network_and_environment_are_denied() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.path().join("root")).expect("root");
    for attack in ["read_passwd", "write_outside", "socket", "env"] {
        let policy = SandboxPolicy::new().allow_local_root(sb.path().join("root"));
        let status = adversary(policy, &sb.path().join("cache"))
            .check(&json!({"attack": attack}), &SecretMask::none())
            .await
            .unwrap_or_else(|e| panic!("{attack}: {e}"));
        let message = status.message.clone().unwrap_or_default();
        assert_eq!(
            status.status,
            ConnectionStatus::Failed,
            "{attack} must be denied, got: {message}"
        );
        assert!(message.starts_with("denied"), "{attack}: {message}");
        host_still_works(&sb).await;
    }
    assert!(
        !std::path::Path::new("/tmp/airlock-escape.txt").exists(),
        "nothing escaped /local"
    );
    assert!(
        !sb.path().join("escape.txt").exists(),
        "nothing escaped /local"
    );
}

/// Runs `attack` in `check` under `policy` and returns the error.
async fn attack_error(sb: &Sandbox, attack: &str, policy: SandboxPolicy) -> ExecutorError {
    let adversary = adversary(policy, &sb.path().join("cache"));
    // Compiling the component (slow in a debug build, on a busy machine) is not
    // what is timed: only the attack is.
    let _ = adversary.spec().await;
    let started = std::time::Instant::now();
    let result = adversary
        .check(&json!({"attack": attack}), &SecretMask::none())
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{attack} was stopped promptly"
    );
    match result {
        Err(error) => error,
        Ok(status) => panic!("{attack} was not stopped: {status:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_that_loops_forever_hits_the_idle_timeout() {
    let sb = Sandbox::new();
    let err = attack_error(
        &sb,
        "loop",
        SandboxPolicy::new().idle_timeout(Duration::from_secs(1)),
    )
    .await;
    let text = err.to_string();
    assert!(
        matches!(
            err.kind(),
            ExecutorErrorKind::Run(RunError::SandboxViolation { .. })
        ),
        "{text}"
    );
    assert!(
        text.contains("idle timeout of 1s")
            && text.contains("fix: raise the sandbox's idle timeout"),
        "{text}"
    );
    assert_eq!(err.remedy(), Some(Remedy::RaiseIdleTimeout));
    host_still_works(&sb).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_that_loops_forever_hits_the_run_deadline() {
    let sb = Sandbox::new();
    let policy = SandboxPolicy::new()
        .idle_timeout(Duration::from_secs(100))
        .deadline(Duration::from_secs(1));
    let err = attack_error(&sb, "loop", policy).await;
    let text = err.to_string();
    assert!(
        text.contains("run deadline of 1s")
            && text.contains("fix: raise the sandbox's run deadline"),
        "{text}"
    );
    assert_eq!(err.remedy(), Some(Remedy::RaiseDeadline));
    host_still_works(&sb).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_that_grows_memory_without_bound_hits_the_memory_limit() {
    let sb = Sandbox::new();
    let err = attack_error(
        &sb,
        "memory",
        SandboxPolicy::new().memory_limit_bytes(64 * 1024 * 1024),
    )
    .await;
    let text = err.to_string();
    assert!(
        text.contains("memory limit of 64 MiB")
            && text.contains("fix: raise the sandbox's memory limit"),
        "{text}"
    );
    assert_eq!(err.remedy(), Some(Remedy::RaiseMemoryLimit));
    host_still_works(&sb).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_that_recurses_without_bound_traps_cleanly() {
    let sb = Sandbox::new();
    let err = attack_error(&sb, "recurse", SandboxPolicy::new()).await;
    assert!(
        matches!(err.kind(), ExecutorErrorKind::Run(RunError::Trap { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("call stack exhausted"), "{err}");
    host_still_works(&sb).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_that_floods_logs_or_stdout_hits_the_log_cap() {
    let sb = Sandbox::new();
    for attack in ["flood_log", "flood_stdout"] {
        let err = attack_error(&sb, attack, SandboxPolicy::new().max_log_bytes(1024 * 1024)).await;
        let text = err.to_string();
        assert!(
            text.contains("log cap of 1 MiB") && text.contains("fix: raise the sandbox's log cap"),
            "{attack}: {text}"
        );
        assert_eq!(err.remedy(), Some(Remedy::RaiseLogLimit), "{attack}");
        host_still_works(&sb).await;
    }
}

#[test]
fn a_guest_that_floods_output_hits_the_output_cap() {
    let sb = Sandbox::new();
    let adversary = wasm_artifact("test_adversary.wasm");
    let run = sb.run(
        &[
            "write",
            "adversary",
            "--config",
            r#"{"attack":"flood_output","phase":"write"}"#,
            "--catalog",
            &catalog(&[("users", None)]),
            "--wasm",
            adversary.to_str().unwrap(),
            "--max-output-mib",
            "1",
            "--no-state",
        ],
        Some(&lines(&[record("users", json!({})), state("users", 1)])),
    );
    run.expect_code(1);
    assert!(
        run.stderr.contains("output cap") && run.stderr.contains("--max-output-mib"),
        "{}",
        run.stderr
    );
}

#[test]
fn limits_come_from_a_policy_file_too() {
    let sb = Sandbox::new();
    let policy = sb.file("policy.toml", "idle_timeout_secs = 1\n");
    let adversary = wasm_artifact("test_adversary.wasm");
    let run = sb.run(
        &[
            "check",
            "adversary",
            "--config",
            r#"{"attack":"loop"}"#,
            "--wasm",
            adversary.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
        ],
        None,
    );
    run.expect_code(1);
    assert!(run.stderr.contains("idle timeout of 1s"), "{}", run.stderr);
}

#[test]
fn a_sources_read_is_its_data_and_not_capped_but_its_other_output_is() {
    let faker = |cap: u64| {
        airlock::source::get_source("source-faker")
            .config(json!({"count": 200, "seed": 1}))
            .sandbox(SandboxPolicy::new().max_output_bytes(cap))
            .build()
            .expect("source")
    };
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(async {
            // Its catalog alone is more than 1000 bytes: the faker's write is refused,
            // it gives up with exit code 1, and the error names the cap, not the code.
            let err = faker(1000)
                .discover()
                .await
                .expect_err("over the output cap");
            let text = format!("{err:#}");
            assert!(text.contains("output cap"), "{text}");
            assert_eq!(err.remedy(), Some(Remedy::RaiseOutputLimit), "{text}");
            // Under a 64 kB cap the catalog fits, and a read of 200 users (about
            // 120 kB) all arrive: a read is the source's data.
            let source = faker(64 * 1024);
            let dest = airlock::get_destination("destination-dev-null")
                .config(json!({"test_destination": {"test_destination_type": "SILENT"}}))
                .build()
                .expect("dest");
            let result = dest
                .write(&source)
                .streams(&["users"])
                .no_cache()
                .run()
                .await
                .expect("an uncapped read");
            assert_eq!(result.write.records_confirmed, 200);
            assert!(
                result.write.bytes_sent > 64 * 1024,
                "{}",
                result.write.bytes_sent
            );
        });
}
