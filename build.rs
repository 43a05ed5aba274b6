//! Builds the built-in plugins (destination-dev-null, destination-local-json,
//! destination-csv, destination-postgres as plugin-world components; source-faker as a wasi:cli
//! command) for wasm32-wasip2 and embeds them in the airlock binary.
//!
//! The plugins are built by a nested `cargo build --profile plugin --target
//! wasm32-wasip2` (the `plugin` profile of the workspace's Cargo.toml) into
//! `target/plugins` (its own target folder, so it never waits on the outer build's
//! lock). The tests load the same files (`AIRLOCK_BUILTIN_WASM_DIR`). Set `AIRLOCK_PLUGIN_WASM_DIR` to a folder holding the five
//! `.wasm` files to skip the nested build.

use std::path::{Path, PathBuf};
use std::process::Command;

const BUILTINS: [(&str, &str); 5] = [
    ("destination-dev-null", "destination_dev_null"),
    ("destination-local-json", "destination_local_json"),
    ("destination-csv", "destination_csv"),
    ("destination-postgres", "destination_postgres"),
    // A binary: its .wasm keeps the dashes.
    ("source-faker", "source-faker"),
];

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    docker_init(&root);
    for path in [
        "crates/airbyte-protocol",
        "plugins/sdk",
        "plugins/destination-dev-null",
        "plugins/destination-local-json",
        "plugins/destination-csv",
        "plugins/destination-postgres",
        "plugins/source-faker",
        "wit",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }
    println!("cargo:rerun-if-env-changed=AIRLOCK_PLUGIN_WASM_DIR");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("builtin_plugins.rs");
    if std::env::var_os("CARGO_FEATURE_WASM").is_none() {
        // Without the WASM backend there is nothing to run the plugins with.
        std::fs::write(out, "").expect("write builtin_plugins.rs");
        return;
    }

    let wasm_dir = match std::env::var_os("AIRLOCK_PLUGIN_WASM_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => build_plugins(&root),
    };
    let mut table = String::from(
        "/// The built-in plugins: (name, component bytes).\npub static BUILTIN_PLUGINS: &[(&str, &[u8])] = &[\n",
    );
    for (name, file) in BUILTINS {
        let path = wasm_dir.join(format!("{file}.wasm"));
        if !path.is_file() {
            panic!("built-in plugin {} is missing at {}", name, path.display());
        }
        table.push_str(&format!(
            "    ({name:?}, include_bytes!({:?})),\n",
            path.display().to_string()
        ));
    }
    table.push_str("];\n");
    // The tests load the very files the binary carries.
    println!(
        "cargo:rustc-env=AIRLOCK_BUILTIN_WASM_DIR={}",
        wasm_dir.display()
    );
    std::fs::write(out, table).expect("write builtin_plugins.rs");
}

fn build_plugins(root: &Path) -> PathBuf {
    let target_dir = root.join("target").join("plugins");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(root)
        .args([
            "build",
            "--profile",
            "plugin",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target_dir);
    for (name, _) in BUILTINS {
        command.args(["-p", name]);
    }
    // Only what is embedded: the destinations' component libraries and the
    // faker's command. Their command-mode CLIs are the tests' to build.
    command.args(["--lib", "--bin", "source-faker"]);
    // The outer build's settings are for the host, not for the plugins.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        command.env_remove(var);
    }
    let status = command
        .status()
        .expect("running cargo to build the built-in plugins");
    if !status.success() {
        panic!(
            "building the built-in plugins for wasm32-wasip2 failed (see above). \
             If the target is missing: rustup target add wasm32-wasip2 (scripts/setup-rust.sh does it)"
        );
    }
    target_dir.join("wasm32-wasip2").join("plugin")
}

/// Builds `crates/airlock-init` as a static binary for the host and embeds it
/// (`docker_init.rs`: `DOCKER_INIT`, empty without the `docker` feature). The
/// Docker backend bind-mounts it into containers, whose images may hold nothing
/// else (FROM scratch), so it must link statically. `AIRLOCK_DOCKER_INIT` names a
/// prebuilt one instead.
fn docker_init(root: &Path) {
    println!(
        "cargo:rerun-if-changed={}",
        root.join("crates/airlock-init").display()
    );
    println!("cargo:rerun-if-env-changed=AIRLOCK_DOCKER_INIT");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("docker_init.rs");
    if std::env::var_os("CARGO_FEATURE_DOCKER").is_none() {
        std::fs::write(out, "pub static DOCKER_INIT: &[u8] = &[];\n")
            .expect("write docker_init.rs");
        return;
    }
    let binary = match std::env::var_os("AIRLOCK_DOCKER_INIT") {
        Some(path) => PathBuf::from(path),
        None => {
            let host = std::env::var("TARGET").expect("TARGET");
            let target_dir = root.join("target").join("init");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut command = Command::new(cargo);
            command
                .current_dir(root)
                .args([
                    "build",
                    "--release",
                    "-p",
                    "airlock-init",
                    "--target",
                    &host,
                ])
                .args([
                    "--config",
                    "profile.release.strip=true",
                    "--config",
                    "profile.release.debug=false",
                ])
                .arg("--target-dir")
                .arg(&target_dir);
            for var in [
                "CARGO_ENCODED_RUSTFLAGS",
                "CARGO_BUILD_TARGET",
                "CARGO_TARGET_DIR",
                "RUSTC_WORKSPACE_WRAPPER",
            ] {
                command.env_remove(var);
            }
            // --target keeps the static flag off build scripts.
            command.env("RUSTFLAGS", "-C target-feature=+crt-static");
            let status = command
                .status()
                .expect("running cargo to build airlock-init");
            if !status.success() {
                panic!(
                    "building airlock-init (the Docker backend's static init) failed (see above)"
                );
            }
            target_dir.join(&host).join("release").join("airlock-init")
        }
    };
    if !binary.is_file() {
        panic!("airlock-init is missing at {}", binary.display());
    }
    std::fs::write(
        out,
        format!(
            "/// airlock-init, static: bind-mounted into containers.\npub static DOCKER_INIT: &[u8] = include_bytes!({:?});\n",
            binary.display().to_string()
        ),
    )
    .expect("write docker_init.rs");
}
