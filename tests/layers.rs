//! The library's dependencies point one way: each module of `src/` may use only
//! the modules of lower layers (the order in `src/lib.rs`'s docs). A `use crate::x`
//! from a lower layer to a higher one, or between two modules of one layer, fails
//! here with the file and line. Doc comments may link anywhere, and unit tests
//! (`tests.rs` files, and what follows `#[cfg(test)]` in a file) may drive a module
//! through the layers above it: they are not part of the library.

use std::collections::BTreeMap;
use std::path::Path;

use crate::support::root;

/// Layer of each top-level library module, lowest first.
const LAYERS: &[(&str, u8)] = &[
    ("home", 0),
    ("remedy", 0),
    ("protocol", 1),
    ("config", 2),
    ("events", 2),
    ("executor", 3),
    ("registry", 4),
    ("sync_file", 4),
    ("write", 5),
    ("state", 6),
    ("cache", 7),
    ("source", 8),
    ("sync", 9),
    ("destination", 10),
    ("conformance", 11),
    ("fuzzing", 11),
];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

/// The `crate::x` paths a line of code names (comments and strings left out).
fn crate_paths(line: &str) -> Vec<String> {
    let code = match line.find("//") {
        Some(i) => &line[..i],
        None => line,
    };
    let mut paths = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            paths.push(name);
        } else if let Some(group) = after.strip_prefix('{') {
            // `use crate::{a, b::c}`: every first segment in the group.
            let group = group.split('}').next().unwrap_or("");
            for item in group.split(',') {
                let first: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !first.is_empty() {
                    paths.push(first);
                }
            }
        }
        rest = after;
    }
    paths
}

fn visit(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            visit(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// Every violation, as "file:line: from → to".
fn violations(src: &Path) -> (Vec<String>, BTreeMap<String, usize>) {
    let mut files = Vec::new();
    visit(src, &mut files);
    let mut found = Vec::new();
    let mut edges = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(src).unwrap();
        let first = relative.components().next().unwrap().as_os_str();
        let module = first.to_str().unwrap().trim_end_matches(".rs").to_owned();
        if matches!(module.as_str(), "lib" | "main" | "cli") {
            continue; // the crate root re-exports; the binary sits on top.
        }
        let from = layer(&module).unwrap_or_else(|| {
            panic!("src/{module} is not in the layer table of tests/layers.rs: add it")
        });
        if file.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (number, line) in lines.iter().enumerate() {
            if line.trim_start().starts_with("#[cfg(test)]") {
                // `mod tests;` (its file is skipped above) or the inline test
                // module, which ends the file.
                let item = lines[number + 1..]
                    .iter()
                    .find(|l| !l.trim_start().starts_with("#["));
                if item.is_some_and(|l| l.trim_end().ends_with(';')) {
                    continue;
                }
                break;
            }
            if line.trim_start().starts_with("//") {
                continue;
            }
            for target in crate_paths(line) {
                if target == module {
                    continue;
                }
                let Some(to) = layer(&target) else {
                    continue; // a re-export of the crate root, e.g. crate::Destination
                };
                *edges.entry(format!("{module} → {target}")).or_default() += 1;
                if to >= from {
                    found.push(format!(
                        "src/{}:{}: {module} (layer {from}) uses {target} (layer {to})",
                        relative.display(),
                        number + 1
                    ));
                }
            }
        }
    }
    (found, edges)
}

#[test]
fn library_dependencies_point_one_way() {
    let (found, edges) = violations(&root().join("src"));
    assert!(
        found.is_empty(),
        "dependencies that point up or sideways (see src/lib.rs, # Layers):\n{}",
        found.join("\n")
    );
    // The table is not vacuous: the main edges exist.
    for edge in [
        "write → executor",
        "sync → write",
        "destination → sync",
        "state → write",
    ] {
        assert!(edges.contains_key(edge), "{edge} missing: {edges:?}");
    }
}

#[test]
fn the_check_sees_an_upward_use() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("write")).unwrap();
    std::fs::write(
        dir.path().join("write/mod.rs"),
        "//! doc: [`crate::sync`] may be linked\n#[cfg(test)]\nmod tests;\n\
         use crate::{protocol, sync::SyncJob};\n\
         #[cfg(test)]\nmod more_tests { use crate::sync::SyncJob; }\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("write/tests.rs"),
        "use crate::sync::SyncJob;\n",
    )
    .unwrap();
    let (found, _) = violations(dir.path());
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("write/mod.rs:4: write (layer 5) uses sync"));
}
