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

    // `--source-pip-url` reaches the real faker although a built-in one has the
    // same name (a bare name means the built-in): the registry, which the CLI flags
    // feed, picks the pip executor for it.
    let options = |pip_url: Option<&str>| airlock::registry::ExecutorOptions {
        pip_url: pip_url.map(str::to_owned),
        ..Default::default()
    };
    let resolved = |pip_url| {
        format!(
            "{:?}",
            airlock::registry::resolve("source-faker", &options(pip_url)).expect("resolves")
        )
    };
    assert!(
        resolved(Some("airbyte-source-faker==7.2.1")).starts_with("PipExecutor"),
        "{}",
        resolved(Some("airbyte-source-faker==7.2.1"))
    );
    assert!(
        resolved(None).starts_with("WasmExecutor"),
        "{}",
        resolved(None)
    );

    // The incremental two-run sync CI asks for: the second run is handed the stored
    // state and receives only new or updated records (none, with always_updated=false).
    let sync = |extra: &[&str]| {
        let source = [
            "source-faker",
            "--source-pip-url",
            "airbyte-source-faker==7.2.1",
        ];
        sync_to_local_json(
            &sb,
            &source,
            r#"{"count": 20, "seed": 3, "always_updated": false}"#,
            extra,
        )
    };
    let first = sync(&[]);
    first.expect_code(0);
    let first = first.json();
    assert_eq!(first["records_confirmed"], 60, "20 per stream: {first}");
    assert_eq!(first["resumed_from_state"], false);
    let second = sync(&[]);
    second.expect_code(0);
    let second = second.json();
    assert_eq!(second["resumed_from_state"], true, "{second}");
    assert_eq!(second["records_read"], 0, "nothing new: {second}");
    assert_eq!(second["records_sent"], 0, "{second}");
    assert_eq!(
        stored_states(&sb.state_db()).len(),
        3,
        "a confirmed state per stream"
    );
    // The same without the cache: the destination-confirmed state goes to the source.
    let third = sync(&["--no-cache"]);
    third.expect_code(0);
    assert_eq!(third.json()["resumed_from_state"], true);
    assert_eq!(third.json()["records_sent"], 0);
    let rows = std::fs::read_to_string(sb.path().join("root/out/_airbyte_raw_users.jsonl"))
        .expect("users written");
    assert_eq!(rows.lines().count(), 20, "each user once");

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        use airlock::executor::Executor;
        use airlock::executor::pip::PipExecutor;
        // A changed spec reinstalls: here a one-file wheel of the same name (the real
        // package was installed above; a second real install would only cost a minute).
        let wheel = tiny_faker_wheel(sb.path());
        let exec = PipExecutor::new("source-faker", wheel.to_str().unwrap(), true)
            .venvs_folder(sb.home().join("venvs"));
        exec.install().await.expect("reinstall");
        assert_eq!(
            std::fs::read_to_string(&marker).expect("marker"),
            wheel.to_str().unwrap()
        );
        assert_eq!(
            exec.version().await.expect("version").as_deref(),
            Some("7.2.2"),
            "the new spec's package replaced the old one"
        );
        exec.uninstall().await.expect("uninstall");
    });
    assert!(!venv.exists(), "uninstall removed the venv");
}

/// A wheel named `airbyte-source-faker` 7.2.2 whose `source-faker` script only
/// prints a line, written into `dir`.
fn tiny_faker_wheel(dir: &std::path::Path) -> std::path::PathBuf {
    let wheel = dir.join("airbyte_source_faker-7.2.2-py3-none-any.whl");
    let script = r#"
import sys, zipfile
info = "airbyte_source_faker-7.2.2.dist-info"
files = {
    "tiny_faker.py": "def main():\n    print('tiny')\n",
    info + "/METADATA": "Metadata-Version: 2.1\nName: airbyte-source-faker\nVersion: 7.2.2\n",
    info + "/WHEEL": "Wheel-Version: 1.0\nGenerator: airlock-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    info + "/entry_points.txt": "[console_scripts]\nsource-faker = tiny_faker:main\n",
}
with zipfile.ZipFile(sys.argv[1], "w") as whl:
    for name, text in files.items():
        whl.writestr(name, text)
    whl.writestr(info + "/RECORD", "".join(n + ",,\n" for n in files) + info + "/RECORD,,\n")
"#;
    let status = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&wheel)
        .status()
        .expect("python3");
    assert!(status.success(), "writing the wheel");
    wheel
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
