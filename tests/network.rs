//! Network grants: a sandboxed plugin reaches exactly the granted addresses —
//! given with `--allow-net` or a policy file, or derived from the config's
//! endpoint fields — and nothing else: other ports and hosts, listening, UDP and
//! lookups of names not granted are refused, each named with its fix.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

use serde_json::json;

use crate::support::*;

/// A listener on 127.0.0.1 that answers each connection's first line with
/// `welcome`; its port.
fn welcoming_listener() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut line = String::new();
            let mut reader = BufReader::new(&stream);
            if reader.read_line(&mut line).is_ok() {
                let _ = (&stream).write_all(b"welcome\n");
            }
        }
    });
    port
}

/// The adversary as a component and as a wasi:cli command.
fn sandboxed() -> [(&'static str, String); 2] {
    [
        (
            "component",
            wasm_artifact("test_adversary.wasm").display().to_string(),
        ),
        (
            "command",
            wasm_artifact("test-adversary.wasm").display().to_string(),
        ),
    ]
}

/// `airlock check test-adversary --wasm WASM --config CONFIG --json EXTRA…`.
fn check(sb: &Sandbox, wasm: &str, config: serde_json::Value, extra: &[&str]) -> Run {
    let config = config.to_string();
    let mut args = vec![
        "check",
        "test-adversary",
        "--wasm",
        wasm,
        "--config",
        &config,
        "--json",
    ];
    args.extend_from_slice(extra);
    sb.run(&args, None)
}

/// Whether the probe connected and the listener answered (`check --json`).
fn reached(run: &Run) -> bool {
    run.stdout.contains("LEAK: connected to") && run.stdout.contains("welcome")
}

#[test]
fn a_granted_address_is_reached_and_no_other() {
    let sb = Sandbox::new();
    let (granted, other) = (welcoming_listener(), welcoming_listener());
    let grant = format!("127.0.0.1:{granted}");
    for (label, wasm) in sandboxed() {
        let run = check(
            &sb,
            &wasm,
            json!({"attack": "socket", "port": granted}),
            &["--allow-net", &grant],
        );
        assert!(reached(&run), "{label}: {}\n{}", run.stdout, run.stderr);

        let run = check(
            &sb,
            &wasm,
            json!({"attack": "socket", "port": other}),
            &["--allow-net", &grant],
        );
        run.expect_code(1);
        assert!(run.stdout.contains("denied"), "{label}: {}", run.stdout);
        let refused = format!("sandbox: refused a connection to 127.0.0.1:{other}");
        assert!(run.stderr.contains(&refused), "{label}: {}", run.stderr);
        // A failed check prints no error, only the refusal's warning, in the
        // library's words (the policy key, not the flag).
        assert!(
            run.stderr
                .contains(&format!("fix: grant TCP to 127.0.0.1:{other}")),
            "{label}: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains(&format!("granted: {grant}")),
            "{label}: the rule says what is granted: {}",
            run.stderr
        );

        // A name is resolved by the host, and the plugin may look it up.
        let run = check(
            &sb,
            &wasm,
            json!({"attack": "socket", "host": "localhost", "port": granted}),
            &["--allow-net", &format!("localhost:{granted}")],
        );
        assert!(
            reached(&run),
            "{label} by name: {}\n{}",
            run.stdout,
            run.stderr
        );
    }
}

#[test]
fn the_endpoint_a_config_names_is_granted_and_said_unless_turned_off() {
    let sb = Sandbox::new();
    let port = welcoming_listener();
    for (label, wasm) in sandboxed() {
        let config = json!({"attack": "socket", "host": "127.0.0.1", "port": port});
        let run = check(&sb, &wasm, config.clone(), &[]);
        assert!(reached(&run), "{label}: {}\n{}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains(&format!(
                "granted network: 127.0.0.1:{port} (from the config's host and port"
            )),
            "{label}: {}",
            run.stderr
        );

        let run = check(&sb, &wasm, config.clone(), &["--no-derived-net"]);
        run.expect_code(1);
        assert!(run.stdout.contains("denied"), "{label}: {}", run.stdout);
        assert!(!run.stderr.contains("granted network"), "{}", run.stderr);

        // A grant given by hand replaces the derived one.
        let run = check(&sb, &wasm, config, &["--allow-net", "127.0.0.1:1"]);
        run.expect_code(1);
        assert!(
            run.stderr
                .contains(&format!("refused a connection to 127.0.0.1:{port}")),
            "{label}: {}",
            run.stderr
        );
    }
}

#[test]
fn listening_udp_and_lookups_of_names_not_granted_are_refused() {
    let sb = Sandbox::new();
    let port = welcoming_listener();
    let grant = format!("localhost:{port}");
    for (label, wasm) in sandboxed() {
        for attack in ["listen", "udp"] {
            let run = check(
                &sb,
                &wasm,
                json!({"attack": attack}),
                &["--allow-net", &grant],
            );
            run.expect_code(1);
            assert!(
                run.stdout.contains("denied"),
                "{label} {attack}: {}\n{}",
                run.stdout,
                run.stderr
            );
        }
        let run = check(
            &sb,
            &wasm,
            json!({"attack": "listen"}),
            &["--allow-net", &grant],
        );
        assert!(
            run.stderr.contains("sandbox: refused listening on"),
            "{label}: {}",
            run.stderr
        );

        let run = check(
            &sb,
            &wasm,
            json!({"attack": "lookup", "host": "db.example", "port": port}),
            &["--allow-net", &grant],
        );
        run.expect_code(1);
        assert!(run.stdout.contains("denied"), "{label}: {}", run.stdout);
        assert!(
            run.stderr
                .contains("sandbox: refused a name lookup of db.example"),
            "{label}: {}",
            run.stderr
        );

        let run = check(
            &sb,
            &wasm,
            json!({"attack": "lookup", "host": "localhost", "port": port}),
            &["--allow-net", &grant],
        );
        assert!(
            run.stdout.contains("LEAK: resolved localhost"),
            "{label}: a granted name resolves: {}\n{}",
            run.stdout,
            run.stderr
        );
    }
}

#[test]
fn a_refused_connection_fails_the_write_naming_the_address_the_rule_and_the_fix() {
    let sb = Sandbox::new();
    let port = welcoming_listener();
    let input = sb.file("in.jsonl", lines(&[record("users", json!({"id": 1}))]));
    let catalog = catalog(&[("users", None)]);
    for (label, wasm) in sandboxed() {
        let config = json!({"attack": "socket", "port": port, "phase": "open"}).to_string();
        let run = sb.run(
            &[
                "write",
                "test-adversary",
                "--wasm",
                &wasm,
                "--config",
                &config,
                "--catalog",
                &catalog,
                "--input",
                input.to_str().unwrap(),
            ],
            None,
        );
        run.expect_code(1);
        for said in [
            format!("was refused a connection to 127.0.0.1:{port}"),
            "no network grant covers it (granted: none)".to_owned(),
            format!("fix: --allow-net 127.0.0.1:{port}"),
        ] {
            assert!(
                run.stderr.contains(&said),
                "{label}: {said}\n{}",
                run.stderr
            );
        }
    }
}

#[test]
fn grants_come_from_a_policy_file_and_bad_ones_are_named() {
    let sb = Sandbox::new();
    let port = welcoming_listener();
    let (_, wasm) = &sandboxed()[0];
    let policy = sb.file(
        "policy.toml",
        format!("allow_net = [\"127.0.0.1:{port}\"]\n"),
    );
    let run = check(
        &sb,
        wasm,
        json!({"attack": "socket", "port": port}),
        &["--policy", policy.to_str().unwrap()],
    );
    assert!(reached(&run), "{}\n{}", run.stdout, run.stderr);

    let bad = sb.file("bad.toml", "allow_net = [\"db.internal\"]\n");
    let run = check(
        &sb,
        wasm,
        json!({"attack": "none"}),
        &["--policy", bad.to_str().unwrap()],
    );
    run.expect_code(2);
    assert!(
        run.stderr.contains("db.internal") && run.stderr.contains("HOST:PORT"),
        "{}",
        run.stderr
    );

    let run = check(
        &sb,
        wasm,
        json!({"attack": "none"}),
        &["--allow-net", "db:x"],
    );
    run.expect_code(2);
    assert!(run.stderr.contains("--allow-net"), "{}", run.stderr);

    // A granted name that does not resolve is named before the plugin runs.
    let run = check(
        &sb,
        wasm,
        json!({"attack": "none"}),
        &["--allow-net", "no-such-host.invalid:5432"],
    );
    assert_ne!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("no-such-host.invalid:5432: no-such-host.invalid cannot be resolved"),
        "{}",
        run.stderr
    );
}

#[test]
fn docker_gets_the_host_network_for_a_grant_and_says_it_cannot_limit_it() {
    let _lock = docker_lock();
    if !docker_ready() {
        return;
    }
    docker_images();
    let sb = Sandbox::new();
    let port = welcoming_listener();
    let config = json!({"attack": "socket", "host": "127.0.0.1", "port": port}).to_string();
    let run = sb.run(
        &[
            "check",
            "test-adversary",
            "--docker-image",
            "airlock/test-adversary:test",
            "--config",
            &config,
            "--json",
        ],
        None,
    );
    assert!(reached(&run), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains("Docker cannot limit a container to the granted addresses"),
        "{}",
        run.stderr
    );
    let run = sb.run(
        &[
            "check",
            "test-adversary",
            "--docker-image",
            "airlock/test-adversary:test",
            "--config",
            &config,
            "--no-derived-net",
            "--json",
        ],
        None,
    );
    assert!(
        run.stdout.contains("denied"),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
}
