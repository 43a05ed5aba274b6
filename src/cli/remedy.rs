//! The CLI's words for a [`Remedy`]: the library says the rule and the fix in its
//! own terms (settings, policy keys); this module turns the fix into the flags of
//! this CLI, for the `fix:` line printed under an error. It owns no error type and
//! changes no message; it only finds the remedy in a failure and words it.

use airlock::DestinationError;
use airlock::cache::CacheError;
use airlock::executor::ExecutorError;
use airlock::remedy::Remedy;
use airlock::source::SourceError;
use airlock::state::StateError;
use airlock::sync::SyncError;
use airlock::write::{WriteError, WriteFailure};

/// The fix for `remedy` in this CLI's flags (no leading "fix: ").
pub(crate) fn flag_hint(remedy: &Remedy) -> String {
    match remedy {
        Remedy::RaiseMemoryLimit => {
            "raise it with --memory-limit MIB (or memory_limit_mib in the --policy file)".into()
        }
        Remedy::RaiseIdleTimeout => {
            "raise it with --idle-timeout SECS (or idle_timeout_secs in the --policy file)".into()
        }
        Remedy::RaiseDeadline => {
            "raise it with --deadline SECS (or deadline_secs in the --policy file)".into()
        }
        Remedy::RaiseOutputLimit => {
            "raise it with --max-output-mib MIB (or max_output_mib in the --policy file)".into()
        }
        Remedy::RaiseLineLimit => "raise it with --max-line-bytes BYTES".into(),
        Remedy::RaiseLogLimit => {
            "raise it with --max-log-mib MIB (or max_log_mib in the --policy file)".into()
        }
        Remedy::AllowNet { endpoint } => {
            format!("--allow-net {endpoint} (or allow_net = [\"{endpoint}\"] in the --policy file)")
        }
        Remedy::CheckExecutablePath { path } => format!(
            "check the path given to --local-executable ({}), or install the connector",
            path.display()
        ),
        Remedy::CheckComponentPath { path } => {
            format!("check the path given to --wasm ({})", path.display())
        }
        Remedy::BuildComponent => {
            "build it with `cargo build --target wasm32-wasip2` (a component, not a core module)"
                .into()
        }
        Remedy::InstallConnector { package } => {
            format!("pass --install to install {package}, or install it first")
        }
        Remedy::CheckPipPackage => {
            "check the package name or --pip-url, and that PyPI (or the URL) is reachable".into()
        }
        Remedy::ProvideImage { image } => format!(
            "pull {image} where a registry is reachable and `docker load` it here, build it \
             locally (scripts/package-docker.sh builds ours), or allow pulling with --install"
        ),
        Remedy::StartDocker => {
            "start the engine, or point DOCKER_HOST at yours (e.g. unix:///var/run/docker.sock)"
                .into()
        }
        Remedy::WaitForLease => "pass --wait to wait for it".into(),
        Remedy::DockerAttach => {
            "pass --docker-attach to use the engine's attach stream instead".into()
        }
        Remedy::LocateConnector => {
            "pass --wasm PATH, --local-executable PATH or --docker-image IMAGE, put NAME.wasm in \
             the plugins folder, or put the connector's executable on PATH"
                .into()
        }
        Remedy::UseAnotherCache => "pass --cache-path to use another cache file".into(),
        Remedy::UseAnotherStateDatabase => "point --state-db at another database".into(),
        Remedy::GiveSourceConfig => "pass --source-config".into(),
        Remedy::GiveDestinationConfig => "pass --config".into(),
        Remedy::ChooseWriteStrategy => "use --strategy append or replace (or auto)".into(),
        // A remedy this CLI has no flag for: the library's own words.
        other => other.to_string(),
    }
}

/// The remedy of the first library error in `error`'s chain that has one.
///
/// Transparent wrappers (a [`SourceError`] around an [`ExecutorError`]) hide the
/// inner error from the chain, so each wrapper the CLI can receive is asked here.
pub(crate) fn remedy_in(error: &anyhow::Error) -> Option<Remedy> {
    error.chain().find_map(|link| {
        if let Some(e) = link.downcast_ref::<ExecutorError>() {
            return e.remedy();
        }
        if let Some(e) = link.downcast_ref::<SourceError>() {
            return e.remedy();
        }
        if let Some(e) = link.downcast_ref::<DestinationError>() {
            return e.remedy();
        }
        if let Some(e) = link.downcast_ref::<CacheError>() {
            return e.remedy();
        }
        if let Some(e) = link.downcast_ref::<StateError>() {
            return e.remedy();
        }
        if let Some(e) = link.downcast_ref::<WriteError>() {
            return write_remedy(&e.cause);
        }
        if let Some(e) = link.downcast_ref::<WriteFailure>() {
            return write_remedy(e);
        }
        if let Some(e) = link.downcast_ref::<SyncError>() {
            return match e {
                SyncError::Source(e) => e.remedy(),
                SyncError::NoDestinationConfig { .. } => Some(Remedy::GiveDestinationConfig),
                SyncError::State(e) => e.remedy(),
                SyncError::Cache(e) => e.remedy(),
                SyncError::Write(e) => write_remedy(&e.cause),
                SyncError::SourceFailed { source, .. } => source.remedy(),
            };
        }
        None
    })
}

fn write_remedy(cause: &WriteFailure) -> Option<Remedy> {
    match cause {
        WriteFailure::Destination(e) => e.remedy(),
        WriteFailure::Input(e) => e.remedy(),
        WriteFailure::State(e) => {
            e.0.downcast_ref::<StateError>()
                .and_then(StateError::remedy)
        }
        _ => None,
    }
}

/// The `fix: …` line to print under `error`, in this CLI's flags, if the
/// library knows a fix.
pub(crate) fn fix_line(error: &anyhow::Error) -> Option<String> {
    remedy_in(error).map(|remedy| format!("fix: {}", flag_hint(&remedy)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hint(remedy: Remedy) -> String {
        flag_hint(&remedy)
    }

    #[test]
    fn raise_memory_limit_names_its_flag() {
        assert!(hint(Remedy::RaiseMemoryLimit).contains("--memory-limit MIB"));
    }

    #[test]
    fn raise_idle_timeout_names_its_flag() {
        assert!(hint(Remedy::RaiseIdleTimeout).contains("--idle-timeout SECS"));
    }

    #[test]
    fn raise_deadline_names_its_flag() {
        assert!(hint(Remedy::RaiseDeadline).contains("--deadline SECS"));
    }

    #[test]
    fn raise_output_limit_names_its_flag() {
        assert!(hint(Remedy::RaiseOutputLimit).contains("--max-output-mib MIB"));
    }

    #[test]
    fn raise_log_limit_names_its_flag() {
        assert!(hint(Remedy::RaiseLogLimit).contains("--max-log-mib MIB"));
    }

    #[test]
    fn allow_net_names_the_endpoint_after_the_flag() {
        let text = hint(Remedy::AllowNet {
            endpoint: "127.0.0.1:5433".into(),
        });
        assert!(text.starts_with("--allow-net 127.0.0.1:5433"), "{text}");
    }

    #[test]
    fn check_executable_path_names_the_flag_and_the_path() {
        let text = hint(Remedy::CheckExecutablePath {
            path: "/opt/dest".into(),
        });
        assert!(
            text.contains("--local-executable") && text.contains("/opt/dest"),
            "{text}"
        );
    }

    #[test]
    fn check_component_path_names_the_flag_and_the_path() {
        let text = hint(Remedy::CheckComponentPath {
            path: "/opt/dest.wasm".into(),
        });
        assert!(
            text.contains("--wasm") && text.contains("/opt/dest.wasm"),
            "{text}"
        );
    }

    #[test]
    fn build_component_names_the_target() {
        assert!(hint(Remedy::BuildComponent).contains("--target wasm32-wasip2"));
    }

    #[test]
    fn install_connector_names_install() {
        let text = hint(Remedy::InstallConnector {
            package: "airbyte-source-faker".into(),
        });
        assert!(
            text.contains("--install") && text.contains("airbyte-source-faker"),
            "{text}"
        );
    }

    #[test]
    fn check_pip_package_names_pip_url() {
        assert!(hint(Remedy::CheckPipPackage).contains("--pip-url"));
    }

    #[test]
    fn provide_image_names_the_script_and_install() {
        let text = hint(Remedy::ProvideImage {
            image: "airbyte/x:1".into(),
        });
        assert!(
            text.contains("scripts/package-docker.sh")
                && text.contains("--install")
                && text.contains("airbyte/x:1"),
            "{text}"
        );
    }

    #[test]
    fn start_docker_names_docker_host() {
        assert!(hint(Remedy::StartDocker).contains("DOCKER_HOST"));
    }

    #[test]
    fn locate_connector_names_each_way() {
        let text = hint(Remedy::LocateConnector);
        for flag in [
            "--wasm PATH",
            "--local-executable PATH",
            "--docker-image IMAGE",
        ] {
            assert!(text.contains(flag), "{text}");
        }
    }

    #[test]
    fn use_another_cache_names_cache_path() {
        assert!(hint(Remedy::UseAnotherCache).contains("--cache-path"));
    }

    #[test]
    fn use_another_state_database_names_state_db() {
        assert!(hint(Remedy::UseAnotherStateDatabase).contains("--state-db"));
    }

    #[test]
    fn give_source_config_names_source_config() {
        assert!(hint(Remedy::GiveSourceConfig).contains("--source-config"));
    }

    #[test]
    fn give_destination_config_names_config() {
        assert!(hint(Remedy::GiveDestinationConfig).contains("--config"));
    }

    #[test]
    fn choose_write_strategy_names_strategy() {
        assert!(hint(Remedy::ChooseWriteStrategy).contains("--strategy append"));
    }

    #[test]
    fn the_fix_line_is_found_behind_a_transparent_wrapper() {
        let inner = ExecutorError::new(
            "d",
            airlock::executor::RunError::SandboxViolation {
                limit: airlock::executor::SandboxLimit::Memory {
                    limit_bytes: 1024 * 1024,
                },
                log_tail: airlock::executor::LogTail::default(),
            },
        );
        let error = anyhow::Error::from(SourceError::Executor(inner));
        let line = fix_line(&error).expect("a fix");
        assert!(
            line.starts_with("fix: raise it with --memory-limit"),
            "{line}"
        );
        let refused = ExecutorError::new(
            "d",
            airlock::executor::process::ProcessError::NotFound {
                path: "/opt/d".into(),
            },
        );
        let error = anyhow::Error::from(WriteFailure::Destination(refused));
        let line = fix_line(&error).expect("a fix");
        assert!(line.contains("--local-executable (/opt/d)"), "{line}");
        let none = anyhow::anyhow!("no remedy here");
        assert_eq!(fix_line(&none), None);
    }
}
