//! The pip executor with the real airbyte-source-faker from PyPI: install into a
//! venv under airlock's home, reuse, reinstall on a changed spec, version, sync,
//! uninstall.

use crate::support::*;

#[test]
fn a_pip_installed_faker_is_reused_reinstalled_synced_and_removed() {
    if faker_bin().is_none() {
        return; // same requirement as the other faker tests: PyPI reachable, python3 -m venv
    }
    let sb = Sandbox::new();
    let venv = sb.home().join("venvs/source-faker");
    let run = sb.run(
        &[
            "spec",
            "source-faker",
            "--pip-url",
            "airbyte-source-faker==7.2.1",
        ],
        None,
    );
    run.expect_code(0);
    assert!(
        run.stdout.contains("records_per_slice"),
        "the real faker's spec: {}",
        run.stdout
    );
    let marker = venv.join(".airlock-installed");
    assert_eq!(
        std::fs::read_to_string(&marker).expect("marker"),
        "airbyte-source-faker==7.2.1"
    );
    let installed_at = std::fs::metadata(&marker)
        .expect("marker")
        .modified()
        .expect("mtime");

    // Reused: the same spec does not reinstall.
    sb.run(
        &[
            "spec",
            "source-faker",
            "--pip-url",
            "airbyte-source-faker==7.2.1",
        ],
        None,
    )
    .expect_code(0);
    assert_eq!(
        std::fs::metadata(&marker)
            .expect("marker")
            .modified()
            .expect("mtime"),
        installed_at
    );

    // A sync reads from it (a bare name finds the installed venv).
    let root = sb.path().join("root");
    let run = sb.run(
        &[
            "sync",
            "--source",
            "source-faker",
            "--source-config",
            r#"{"count": 20, "seed": 3}"#,
            "--destination",
            "destination-dev-null",
            "--destination-config",
            r#"{"test_destination":{"test_destination_type":"SILENT"}}"#,
            "--local-root",
            root.to_str().unwrap(),
            "--json",
        ],
        None,
    );
    run.expect_code(0);
    assert_eq!(
        run.json()["records_confirmed"],
        60,
        "20 per stream: {}",
        run.stdout
    );

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        use airlock::executor::Executor;
        use airlock::executor::pip::PipExecutor;
        // A changed spec reinstalls.
        let exec = PipExecutor::new("source-faker", "airbyte-source-faker>=7.2.1,<7.3", true)
            .venvs_folder(sb.home().join("venvs"));
        exec.install().await.expect("reinstall");
        assert_eq!(
            std::fs::read_to_string(&marker).expect("marker"),
            "airbyte-source-faker>=7.2.1,<7.3"
        );
        assert_eq!(
            exec.version().await.expect("version").as_deref(),
            Some("7.2.1")
        );
        exec.uninstall().await.expect("uninstall");
    });
    assert!(!venv.exists(), "uninstall removed the venv");
}

#[test]
fn a_package_that_does_not_install_is_named() {
    if faker_bin().is_none() {
        return;
    }
    let sb = Sandbox::new();
    let run = sb.run(
        &[
            "spec",
            "source-nope",
            "--pip-url",
            "airbyte-source-does-not-exist-anywhere-xyz==0.0.1",
        ],
        None,
    );
    run.expect_code(2);
    assert!(
        run.stderr.contains(
            "installing airbyte-source-does-not-exist-anywhere-xyz==0.0.1 failed while pip install"
        ),
        "{}",
        run.stderr
    );
}
