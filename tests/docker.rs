//! The Docker executor against a real engine, with images built FROM scratch from
//! our own binaries (no registry is needed). Skipped without an engine, except under
//! `AIRLOCK_REQUIRE_DOCKER=1` (CI), where that is a failure.

use serde_json::json;

use crate::support::*;

macro_rules! needs_docker {
    () => {
        if !docker_ready() {
            return;
        }
        let _serial = docker_lock();
        docker_images();
    };
}

fn input(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(record("users", json!({"id": i, "text": "a,b \"c\"\nd"})));
        if i % 10 == 9 {
            out.push(state("users", i as i64));
        }
    }
    lines(&out)
}

#[test]
fn docker_over_pipes_and_attach_wasm_and_process_write_the_same_output_and_states() {
    needs_docker!();
    let sb = Sandbox::new();
    let cat = catalog(&[("users", None)]);
    let data = input(100);
    let mut outputs = Vec::new();
    for (label, flags) in [
        (
            "docker",
            vec![
                "--docker-image".to_owned(),
                "airlock/destination-local-json:test".to_owned(),
            ],
        ),
        (
            "docker-attach",
            vec![
                "--docker-image".to_owned(),
                "airlock/destination-local-json:test".to_owned(),
                "--docker-attach".to_owned(),
            ],
        ),
        ("wasm", vec![]),
        (
            "process",
            vec![
                "--local-executable".to_owned(),
                plugin_bin("destination-local-json").display().to_string(),
            ],
        ),
    ] {
        let root = sb.path().join(label);
        let mut args = vec![
            "-v",
            "write",
            "destination-local-json",
            "--config",
            r#"{"destination_path":"/local/out"}"#,
            "--catalog",
            &cat,
            "--json",
            "--no-state",
            "--local-root",
            root.to_str().unwrap(),
        ];
        args.extend(flags.iter().map(String::as_str));
        let run = sb.run(&args, Some(&data));
        run.expect_code(0);
        // `-v` says which path a container's stdio took: by default records
        // cross a Unix socket through airlock-init, not the engine.
        let path = match label {
            "docker" => Some("docker stdio: pipes"),
            "docker-attach" => Some("docker stdio: the engine's attach stream"),
            _ => None,
        };
        if let Some(path) = path {
            assert!(run.stderr.contains(path), "{label}: {}", run.stderr);
        }
        let result = run.json();
        let rows: Vec<serde_json::Value> =
            std::fs::read_to_string(root.join("out/_airbyte_raw_users.jsonl"))
                .expect("output")
                .lines()
                .map(|l| {
                    serde_json::from_str::<serde_json::Value>(l).expect("row")["_airbyte_data"]
                        .clone()
                })
                .collect();
        outputs.push((
            label,
            rows,
            result["records_confirmed"].clone(),
            result["final_states"].clone(),
        ));
    }
    assert_eq!(outputs[0].1.len(), 100);
    for other in &outputs[1..] {
        assert_eq!(outputs[0].1, other.1, "rows: docker vs {}", other.0);
        assert_eq!(
            (&outputs[0].2, &outputs[0].3),
            (&other.2, &other.3),
            "confirmed: docker vs {}",
            other.0
        );
    }
    assert_eq!(airlock_containers(), 0, "every container was removed");
}

#[test]
fn spec_check_and_version_come_from_the_image() {
    needs_docker!();
    let sb = Sandbox::new();
    let run = sb.run(
        &[
            "spec",
            "destination-csv",
            "--docker-image",
            "airlock/destination-csv:test",
        ],
        None,
    );
    run.expect_code(0);
    assert!(
        run.stdout.contains("_airbyte") || run.stdout.contains("delimiter"),
        "{}",
        run.stdout
    );
    sb.run(
        &[
            "check",
            "destination-csv",
            "--docker-image",
            "airlock/destination-csv:test",
            "--config",
            r#"{"destination_path":"/local/x"}"#,
            "--local-root",
            sb.path().join("root").to_str().unwrap(),
        ],
        None,
    )
    .expect_code(0);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let version = runtime.block_on(async {
        let dest = airlock::get_destination("destination-csv")
            .docker_image("airlock/destination-csv:test")
            .build()
            .expect("build");
        dest.version().await.expect("version")
    });
    assert_eq!(
        version.as_deref(),
        Some(env!("CARGO_PKG_VERSION")),
        "the io.airbyte.version label"
    );
}

#[test]
fn uninstall_removes_the_image() {
    needs_docker!();
    let tag = "airlock/destination-dev-null:uninstall-test";
    let status = std::process::Command::new("docker")
        .args(["tag", "airlock/destination-dev-null:test", tag])
        .status()
        .expect("docker tag");
    assert!(status.success());
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let dest = airlock::get_destination("destination-dev-null")
            .docker_image(tag)
            .build()
            .expect("build");
        dest.uninstall().await.expect("uninstall");
    });
    let inspect = std::process::Command::new("docker")
        .args(["image", "inspect", tag])
        .output()
        .expect("inspect");
    assert!(!inspect.status.success(), "the image is gone");
}

#[test]
fn a_missing_image_and_an_unreachable_engine_are_clear_errors() {
    needs_docker!();
    let sb = Sandbox::new();
    let run = sb.run(
        &[
            "spec",
            "destination-x",
            "--docker-image",
            "airlock/nope:test",
        ],
        None,
    );
    run.expect_code(2);
    assert!(
        run.stderr
            .contains("image airlock/nope:test is not available")
            && run.stderr.contains("docker load"),
        "{}",
        run.stderr
    );
    // --docker-image with no value: airbyte/<name>:<version>.
    let run = sb.run(
        &[
            "spec",
            "destination-x",
            "--docker-image",
            "--version",
            "1.2.3",
        ],
        None,
    );
    assert!(
        run.stderr.contains("airbyte/destination-x:1.2.3"),
        "{}",
        run.stderr
    );
    // With --install and no registry: the pull fails, named.
    let run = sb.run(
        &["spec", "destination-x", "--docker-image", "--install"],
        None,
    );
    assert!(run.stderr.contains("pulling it failed"), "{}", run.stderr);

    let mut cmd = sb.airlock();
    cmd.args([
        "spec",
        "destination-x",
        "--docker-image",
        "airlock/destination-csv:test",
    ])
    .env("DOCKER_HOST", "unix:///nonexistent/docker.sock");
    let run = run_command(cmd, None);
    run.expect_code(2);
    assert!(
        run.stderr
            .contains("cannot reach the Docker engine (unix:///nonexistent/docker.sock)")
            && run.stderr.contains("DOCKER_HOST"),
        "{}",
        run.stderr
    );
}

#[test]
fn failures_name_the_image_exit_code_and_log_tail() {
    needs_docker!();
    let sb = Sandbox::new();
    let failing = r#"{"test_destination":{"test_destination_type":"FAILING","num_messages":3}}"#;
    let run = sb.run(
        &[
            "write",
            "destination-dev-null",
            "--docker-image",
            "airlock/destination-dev-null:test",
            "--config",
            failing,
            "--catalog",
            &catalog(&[("users", None)]),
            "--no-state",
        ],
        Some(&input(20)),
    );
    run.expect_code(1);
    assert!(
        run.stderr.contains("exit code 1") && run.stderr.contains("failure_type: system_error"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("last log lines"), "{}", run.stderr);
    assert_eq!(airlock_containers(), 0);
}

#[test]
fn a_container_over_its_memory_limit_is_reported_as_oom_killed() {
    needs_docker!();
    let sb = Sandbox::new();
    let run = sb.run(
        &[
            "check",
            "test-adversary",
            "--docker-image",
            "airlock/test-adversary:test",
            "--config",
            r#"{"attack":"memory"}"#,
            "--memory-limit",
            "32",
        ],
        None,
    );
    run.expect_code(1);
    assert!(
        run.stderr
            .contains("OOM-killed at its memory limit of 32 MiB"),
        "{}",
        run.stderr
    );
    assert_eq!(airlock_containers(), 0);
}

#[test]
fn containers_have_no_network_and_only_the_named_environment() {
    needs_docker!();
    let sb = Sandbox::new();
    // A listener on the host's loopback: reachable only through the host's network.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    // Accept and close at once: the probe's greeting gets an end of stream.
    std::thread::spawn(move || for _ in listener.incoming() {});
    let check = |config: &str, extra: &[&str]| {
        let mut cmd = sb.airlock();
        cmd.args([
            "check",
            "test-adversary",
            "--docker-image",
            "airlock/test-adversary:test",
            "--json",
            "--config",
            config,
        ])
        .args(extra)
        .env("AIRLOCK_TEST_SECRET", "s3cret");
        run_command(cmd, None)
    };
    let socket = json!({"attack": "socket", "port": port}).to_string();
    let run = check(&socket, &[]);
    assert!(
        run.stdout.contains("denied"),
        "network none: {}{}",
        run.stdout,
        run.stderr
    );
    let run = check(&socket, &["--use-host-network"]);
    assert!(
        run.stdout
            .contains(&format!("connected to 127.0.0.1:{port}")),
        "host network: {}{}",
        run.stdout,
        run.stderr
    );
    let run = check(r#"{"attack":"env"}"#, &[]);
    assert!(
        !run.stdout.contains("AIRLOCK_TEST_SECRET"),
        "host env not passed: {}",
        run.stdout
    );
    let run = check(
        r#"{"attack":"env"}"#,
        &["--allow-env", "AIRLOCK_TEST_SECRET"],
    );
    assert!(
        run.stdout.contains("AIRLOCK_TEST_SECRET"),
        "a named variable is passed: {}{}",
        run.stdout,
        run.stderr
    );
}

#[test]
fn fifty_runs_with_failures_leave_no_container_behind() {
    needs_docker!();
    let before = airlock_containers();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let catalog: airlock::protocol::ConfiguredAirbyteCatalog =
            serde_json::from_str(&catalog(&[("users", None)])).expect("catalog");
        for i in 0..50 {
            let config = if i % 3 == 0 {
                json!({"test_destination": {"test_destination_type": "FAILING", "num_messages": 2}})
            } else {
                json!({"test_destination": {"test_destination_type": "SILENT"}})
            };
            let dest = airlock::get_destination("destination-dev-null")
                .docker_image("airlock/destination-dev-null:test")
                .config(config)
                .build()
                .expect("build");
            let result = dest
                .write_messages(std::io::Cursor::new(input(10)), catalog.clone())
                .expect("job")
                .run()
                .await;
            assert_eq!(
                result.is_err(),
                i % 3 == 0,
                "run {i}: {:?}",
                result.err().map(|e| e.to_string())
            );
        }
    });
    assert_eq!(
        airlock_containers(),
        before,
        "no container left after 50 runs"
    );
}

#[test]
fn a_stalled_container_is_stopped_and_removed() {
    needs_docker!();
    let sb = Sandbox::new();
    // THROTTLED at 1 s a record cannot take 20 000 records in 2 s.
    let throttled =
        r#"{"test_destination":{"test_destination_type":"THROTTLED","millis_per_record":1000}}"#;
    let run = sb.run(
        &[
            "write",
            "destination-dev-null",
            "--docker-image",
            "airlock/destination-dev-null:test",
            "--config",
            throttled,
            "--catalog",
            &catalog(&[("users", None)]),
            "--no-state",
            "--stall-timeout",
            "2",
        ],
        Some(&input(20_000)),
    );
    run.expect_code(1);
    assert!(run.stderr.contains("did not read for 2s"), "{}", run.stderr);
    assert_eq!(airlock_containers(), 0);
}

#[test]
fn containers_of_a_killed_host_are_collected() {
    needs_docker!();
    let sb = Sandbox::new();
    let throttled =
        r#"{"test_destination":{"test_destination_type":"THROTTLED","millis_per_record":50}}"#;
    let input_file = sb.file("in.jsonl", input(200));
    let mut cmd = sb.airlock();
    cmd.args([
        "write",
        "destination-dev-null",
        "--docker-image",
        "airlock/destination-dev-null:test",
        "--config",
        throttled,
        "--catalog",
        &catalog(&[("users", None)]),
        "--no-state",
        "--input",
        input_file.to_str().unwrap(),
    ])
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().expect("spawn");
    let started = std::time::Instant::now();
    while airlock_containers() == 0 && started.elapsed().as_secs() < 20 {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    child.kill().expect("SIGKILL the host");
    child.wait().expect("reap");
    assert!(
        airlock_containers() >= 1,
        "the killed host left its container"
    );
    let run = sb.run(&["docker", "gc"], None);
    run.expect_code(0);
    assert!(run.stdout.contains("removed"), "{}", run.stdout);
    assert_eq!(airlock_containers(), 0);
}

/// An image whose entrypoint airlock-init cannot start: the run fails with a
/// named error (not a bare exit code), the fix is the attach stream, and the
/// container is removed.
#[test]
fn an_init_that_cannot_start_the_entrypoint_is_a_named_error() {
    needs_docker!();
    let sb = Sandbox::new();
    let image = "airlock/test-missing-entrypoint:test";
    let context = sb.path().join("image");
    std::fs::create_dir_all(&context).expect("context");
    std::fs::copy(
        plugin_bin("destination-dev-null"),
        context.join("destination-dev-null"),
    )
    .expect("copy the binary");
    std::fs::write(
        context.join("Dockerfile"),
        "FROM scratch\nCOPY destination-dev-null /airbyte/destination-dev-null\n\
         ENV AIRBYTE_ENTRYPOINT=/airbyte/missing\n",
    )
    .expect("Dockerfile");
    let built = std::process::Command::new("docker")
        .args(["build", "--quiet", "-t", image])
        .arg(&context)
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .expect("docker build");
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let run = sb.run(
        &[
            "write",
            "destination-dev-null",
            "--docker-image",
            image,
            "--config",
            "{}",
            "--catalog",
            &catalog(&[("users", None)]),
            "--no-state",
        ],
        Some(&input(10)),
    );
    run.expect_code(2);
    for expected in [
        &format!("airlock's init in the container of image {image}"),
        "cannot start the image's entrypoint \"/airbyte/missing\"",
        "--docker-attach",
    ] {
        assert!(run.stderr.contains(expected), "{expected}\n{}", run.stderr);
    }
    assert_eq!(airlock_containers(), 0, "the container was removed");
}

/// The container (its init with it) is killed in the middle of a write: the run
/// stops with a named error, the container is removed, and the states confirmed
/// before it are kept.
#[test]
fn pipes_cut_mid_write_are_a_named_error_and_confirmed_states_are_kept() {
    needs_docker!();
    let sb = Sandbox::new();
    let throttled =
        r#"{"test_destination":{"test_destination_type":"THROTTLED","millis_per_record":20}}"#;
    let input_file = sb.file("in.jsonl", input(2000));
    let db = sb.state_db();
    let mut cmd = sb.airlock();
    cmd.args([
        "write",
        "destination-dev-null",
        "--docker-image",
        "airlock/destination-dev-null:test",
        "--config",
        throttled,
        "--catalog",
        &catalog(&[("users", None)]),
        "--state-db",
        db.to_str().unwrap(),
        "--input",
        input_file.to_str().unwrap(),
    ])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().expect("spawn");
    let started = std::time::Instant::now();
    while airlock_containers() == 0 && started.elapsed().as_secs() < 30 {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // At 20 ms a record and a state every 10, states are confirmed within a second;
    // 2000 records take 40 s, so the write is still running.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let ids = std::process::Command::new("docker")
        .args(["ps", "-q", "--filter", "label=airlock.managed=true"])
        .output()
        .expect("docker ps");
    let ids = String::from_utf8_lossy(&ids.stdout).to_string();
    assert!(!ids.trim().is_empty(), "the write's container runs");
    for id in ids.split_whitespace() {
        let killed = std::process::Command::new("docker")
            .args(["kill", id])
            .output()
            .expect("docker kill");
        assert!(killed.status.success());
    }
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("died before the connector ended"),
        "{stderr}"
    );
    let kept = stored_states(&db);
    assert!(!kept.is_empty(), "the confirmed states are kept");
    assert_eq!(airlock_containers(), 0, "the container was removed");
}
