//! `scaffold`: `airlock plugin new` — a new destination crate from a template.
//!
//! Owns the template (a small but real JSON Lines destination that passes
//! `airlock plugin test` as generated) and where the guest SDK comes from: a path
//! (absolute, so the crate builds wherever it is created) or a version, and the
//! lockfile that pins the crate's dependencies to the versions airlock is tested
//! with (`template/Cargo.lock.tmpl`, from `scripts/scaffold-lock.sh`). It writes
//! files only; building and testing the crate are the author's commands.

use std::path::{Path, PathBuf};

/// Where the new crate gets the guest SDK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdkSource {
    /// A local checkout of `plugins/sdk`.
    Path(PathBuf),
    /// A published version of `airlock-plugin-sdk`.
    Version(String),
}

impl SdkSource {
    /// The SDK of the airlock source tree this binary was built from, if it is
    /// still there.
    pub fn built_from() -> Option<Self> {
        let sdk = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("plugins")
            .join("sdk");
        sdk.join("Cargo.toml").is_file().then_some(Self::Path(sdk))
    }

    fn dependency(&self) -> String {
        match self {
            Self::Path(path) => format!(
                "airlock-plugin-sdk = {{ path = {:?} }}",
                path.display().to_string()
            ),
            Self::Version(version) => format!("airlock-plugin-sdk = {version:?}"),
        }
    }
}

/// Why a crate could not be created.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name cannot be a crate and binary name.
    #[error(
        "{0:?} is not a usable plugin name: use lowercase letters, digits and dashes, \
         starting with a letter (e.g. destination-my-files)"
    )]
    BadName(String),
    /// The folder exists and is not empty.
    #[error("{} already exists and is not empty; pick another name or --dir", .0.display())]
    Exists(PathBuf),
    /// The SDK path has no SDK.
    #[error("{} is not the airlock plugin SDK (no Cargo.toml); pass --sdk-path to plugins/sdk of an airlock checkout, or --sdk-version", .0.display())]
    NoSdk(PathBuf),
    /// Writing failed.
    #[error("writing {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

const TEMPLATE: [(&str, &str); 7] = [
    ("Cargo.toml", include_str!("template/Cargo.toml.tmpl")),
    // Pins the dependencies to the versions airlock is tested with
    // (scripts/scaffold-lock.sh regenerates it).
    ("Cargo.lock", include_str!("template/Cargo.lock.tmpl")),
    ("src/lib.rs", include_str!("template/lib.rs.tmpl")),
    ("src/main.rs", include_str!("template/main.rs.tmpl")),
    ("src/spec.json", include_str!("template/spec.json.tmpl")),
    ("README.md", include_str!("template/README.md.tmpl")),
    (".gitignore", include_str!("template/gitignore.tmpl")),
];

/// Creates the crate `name` in `folder` (which must not exist, or be empty) and
/// returns the files written.
///
/// # Errors
/// [`ScaffoldError`] for a bad name, an existing folder, a missing SDK, or I/O.
pub fn create(name: &str, folder: &Path, sdk: &SdkSource) -> Result<Vec<PathBuf>, ScaffoldError> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if !valid {
        return Err(ScaffoldError::BadName(name.to_owned()));
    }
    if let SdkSource::Path(path) = sdk
        && !path.join("Cargo.toml").is_file()
    {
        return Err(ScaffoldError::NoSdk(path.clone()));
    }
    if folder
        .read_dir()
        .is_ok_and(|mut entries| entries.next().is_some())
    {
        return Err(ScaffoldError::Exists(folder.to_owned()));
    }
    let crate_name = name.replace('-', "_");
    let type_name: String = name
        .split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{crate}}", &crate_name)
            .replace("{{type_name}}", &type_name)
            .replace("{{sdk_dependency}}", &sdk.dependency())
    };
    let mut written = Vec::new();
    for (file, text) in TEMPLATE {
        let path = folder.join(file);
        let write = || -> std::io::Result<()> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, fill(text))
        };
        write().map_err(|source| ScaffoldError::Write {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_is_filled_in_and_names_are_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let folder = dir.path().join("destination-my-files");
        let sdk = SdkSource::Version("0.1".into());
        let files = create("destination-my-files", &folder, &sdk).expect("created");
        assert_eq!(files.len(), TEMPLATE.len());
        let lib = std::fs::read_to_string(folder.join("src/lib.rs")).expect("lib");
        assert!(lib.contains("pub struct DestinationMyFiles;"), "{lib}");
        assert!(!lib.contains("{{"), "every placeholder filled");
        let manifest = std::fs::read_to_string(folder.join("Cargo.toml")).expect("manifest");
        assert!(
            manifest.contains(r#"airlock-plugin-sdk = "0.1""#),
            "{manifest}"
        );
        assert!(
            manifest.contains(r#"name = "destination_my_files""#),
            "{manifest}"
        );
        let spec: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(folder.join("src/spec.json")).expect("spec"),
        )
        .expect("the spec is JSON");
        assert_eq!(
            spec["x-airlock-conformance"]["reader"]["format"],
            "airbyte-raw-jsonl"
        );

        assert!(matches!(
            create("destination-my-files", &folder, &sdk),
            Err(ScaffoldError::Exists(_))
        ));
        for bad in ["My_Dest", "1dest", "dest-", ""] {
            assert!(matches!(
                create(bad, &dir.path().join("x"), &sdk),
                Err(ScaffoldError::BadName(_))
            ));
        }
        let err = create(
            "dest",
            &dir.path().join("y"),
            &SdkSource::Path(dir.path().join("nope")),
        )
        .expect_err("no sdk");
        assert!(err.to_string().contains("--sdk-path"), "{err}");
    }
}
