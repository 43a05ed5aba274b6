//! `cli`: the connector's command line, the one every Airbyte source has:
//! `spec`, `check --config F`, `discover --config F`,
//! `read --config F --catalog F [--state F]`. Flags also take the
//! `--flag=value` form; `--debug` is accepted and ignored.

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Print the SPEC.
    Spec,
    /// Check a config.
    Check {
        /// Path of the config file.
        config: String,
    },
    /// Print the CATALOG.
    Discover {
        /// Path of the config file.
        config: String,
    },
    /// Read the configured streams.
    Read {
        /// Path of the config file.
        config: String,
        /// Path of the configured catalog file.
        catalog: String,
        /// Path of the state file, if any.
        state: Option<String>,
    },
}

/// The usage text.
pub const USAGE: &str = "usage: source-faker spec\n       source-faker check --config CONFIG\n       source-faker discover --config CONFIG\n       source-faker read --config CONFIG --catalog CATALOG [--state STATE]";

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Command, String> {
    let (command, rest) = args
        .split_first()
        .ok_or_else(|| "no command given (spec, check, discover or read)".to_owned())?;
    let mut config = None;
    let mut catalog = None;
    let mut state = None;
    let mut i = 0;
    while i < rest.len() {
        let arg = rest[i].as_str();
        if arg == "--debug" {
            i += 1;
            continue;
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
            _ => (arg, None),
        };
        let slot = match flag {
            "--config" => &mut config,
            "--catalog" => &mut catalog,
            "--state" => &mut state,
            other => return Err(format!("unrecognized argument: {other}")),
        };
        let value = match inline {
            Some(v) => v,
            None => {
                i += 1;
                rest.get(i)
                    .cloned()
                    .ok_or_else(|| format!("argument {flag}: expected one argument"))?
            }
        };
        *slot = Some(value);
        i += 1;
    }
    let need = |v: Option<String>, flag: &str| {
        v.ok_or_else(|| format!("the following arguments are required: {flag}"))
    };
    let only = |allowed: &[&str]| -> Result<(), String> {
        for (name, v) in [
            ("--config", &config),
            ("--catalog", &catalog),
            ("--state", &state),
        ] {
            if v.is_some() && !allowed.contains(&name) {
                return Err(format!("unrecognized argument for {command}: {name}"));
            }
        }
        Ok(())
    };
    match command.as_str() {
        "spec" => {
            only(&[])?;
            Ok(Command::Spec)
        }
        "check" => {
            only(&["--config"])?;
            Ok(Command::Check {
                config: need(config, "--config")?,
            })
        }
        "discover" => {
            only(&["--config"])?;
            Ok(Command::Discover {
                config: need(config, "--config")?,
            })
        }
        "read" => Ok(Command::Read {
            config: need(config, "--config")?,
            catalog: need(catalog, "--catalog")?,
            state,
        }),
        other => Err(format!(
            "invalid command {other:?} (choose from spec, check, discover, read)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn parses_commands() {
        assert_eq!(parse(&args("spec")), Ok(Command::Spec));
        assert_eq!(
            parse(&args(
                "read --config c.json --catalog=cat.json --debug --state s.json"
            )),
            Ok(Command::Read {
                config: "c.json".into(),
                catalog: "cat.json".into(),
                state: Some("s.json".into()),
            })
        );
        assert!(parse(&args("read --config c.json")).is_err());
        assert!(parse(&args("check")).is_err());
        assert!(parse(&args("check --config")).is_err());
        assert!(parse(&args("write --config c")).is_err());
        assert!(parse(&[]).is_err());
    }
}
