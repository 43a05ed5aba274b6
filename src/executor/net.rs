//! `executor::net`: network grants — which addresses a sandboxed connector may
//! connect to.
//!
//! Owns the `HOST:PORT` grant ([`NetGrant`]), deriving grants from a spec's
//! `x-airlock-endpoints` and a config ([`derive_grants`]), resolving them on the
//! host ([`resolve`]), and the rule every socket address a guest uses is held to
//! ([`ResolvedGrants::check`]). It opens no sockets; it runs a connector only to
//! read its spec ([`grants_for_run`]), and [`GrantError`] (a grant that cannot be
//! used). The WASM backend applies the rule, the Docker backend maps grants onto
//! a container as well as Docker can.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use serde_json::Value;

use crate::remedy::Remedy;

/// A network grant cannot be used: its name does not resolve, or the config
/// names an endpoint badly.
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct GrantError {
    /// What is wrong, naming the grant or the config's field.
    pub reason: String,
    /// How to fix it, when a grant would.
    pub remedy: Option<Remedy>,
}

/// One grant: the connector may connect to `host` on `port`. `host` is a name
/// or an IP address; a name is resolved by the host, and the connector may
/// connect only to the addresses it resolved to.
///
/// ```
/// use airlock::executor::net::NetGrant;
///
/// let grant: NetGrant = "db.internal:5432".parse().unwrap();
/// assert_eq!(grant.host(), "db.internal");
/// assert_eq!(grant.port(), 5432);
/// let v6: NetGrant = "[::1]:5432".parse().unwrap();
/// assert_eq!(v6.host(), "::1");
/// assert!("db.internal".parse::<NetGrant>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetGrant {
    host: String,
    port: u16,
}

impl NetGrant {
    /// A grant of `host` on `port`.
    ///
    /// # Errors
    /// A message when `host` is empty, holds a space or a `/`, or `port` is 0.
    pub fn new(host: impl Into<String>, port: u16) -> Result<Self, String> {
        let host = host.into();
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if host.is_empty() || host.contains([' ', '/', '\t']) {
            return Err(format!("{host:?} is not a host name or an IP address"));
        }
        if port == 0 {
            return Err(format!("{host}: port 0 cannot be granted"));
        }
        Ok(Self {
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// The host name or IP address, lower case, without brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl FromStr for NetGrant {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let usage = "expected HOST:PORT, e.g. db.internal:5432, 10.0.0.5:5432 or [::1]:5432";
        let (host, port) = text
            .trim()
            .rsplit_once(':')
            .ok_or_else(|| format!("{text:?}: {usage}"))?;
        if host.contains(':') && !host.starts_with('[') {
            return Err(format!(
                "{text:?}: an IPv6 address goes in brackets ({usage})"
            ));
        }
        let port: u16 = port
            .parse()
            .map_err(|_| format!("{text:?}: the port must be a number 1..65535 ({usage})"))?;
        Self::new(host, port).map_err(|e| format!("{text:?}: {e}"))
    }
}

impl fmt::Display for NetGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl serde::Serialize for NetGrant {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for NetGrant {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A grant taken from a connector's config, with the fields it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerivedGrant {
    /// The grant.
    pub grant: NetGrant,
    /// Where it came from, e.g. "the config's host and port".
    pub from: String,
}

/// The grants a connector's config names, by the spec's `x-airlock-endpoints`
/// (in `connectionSpecification`, or at the spec's top level):
/// `[{"host": "/host", "port": "/port", "default_port": 5432}]`, each a JSON
/// pointer into the config (`port` optional when `default_port` is given). An
/// endpoint whose host field is absent or empty grants nothing.
///
/// ```
/// use airlock::executor::net::derive_grants;
/// use serde_json::json;
///
/// let spec = json!({"connectionSpecification": {"x-airlock-endpoints":
///     [{"host": "/host", "port": "/port", "default_port": 5432}]}});
/// let grants = derive_grants(&spec, &json!({"host": "db.internal"})).unwrap();
/// assert_eq!(grants[0].grant.to_string(), "db.internal:5432");
/// assert_eq!(grants[0].from, "the config's host (and the default port 5432)");
/// ```
///
/// # Errors
/// A message naming the field when the spec's entry is malformed or the
/// config's host or port is not usable (a port that is not a number 1..65535).
pub fn derive_grants(spec: &Value, config: &Value) -> Result<Vec<DerivedGrant>, String> {
    let endpoints = spec
        .get("connectionSpecification")
        .and_then(|s| s.get("x-airlock-endpoints"))
        .or_else(|| spec.get("x-airlock-endpoints"));
    let Some(endpoints) = endpoints else {
        return Ok(Vec::new());
    };
    let endpoints = endpoints
        .as_array()
        .ok_or("the spec's x-airlock-endpoints must be a list")?;
    let mut grants = Vec::new();
    for (i, endpoint) in endpoints.iter().enumerate() {
        let entry = format!("x-airlock-endpoints[{i}]");
        let pointer = |key: &str| -> Result<Option<&str>, String> {
            match endpoint.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(p)) if p.is_empty() || p.starts_with('/') => Ok(Some(p)),
                Some(other) => Err(format!(
                    "the spec's {entry}.{key} must be a JSON pointer such as \"/host\", not {other}"
                )),
            }
        };
        let host_at = pointer("host")?.ok_or_else(|| format!("the spec's {entry} has no host"))?;
        let port_at = pointer("port")?;
        let default_port = match endpoint.get("default_port") {
            None | Some(Value::Null) => None,
            Some(v) => Some(port_number(v).ok_or_else(|| {
                format!("the spec's {entry}.default_port must be a port 1..65535, not {v}")
            })?),
        };
        let host = match config.pointer(host_at) {
            Some(Value::String(h)) if !h.trim().is_empty() => h.trim().to_owned(),
            _ => continue,
        };
        let field = |pointer: &str| pointer.trim_start_matches('/').replace('/', ".");
        let (port, from) = match port_at.and_then(|p| config.pointer(p).map(|v| (p, v))) {
            Some((p, value)) => {
                let port = port_number(value).ok_or_else(|| {
                    format!(
                        "the config's {} must be a port 1..65535, not {value}",
                        field(p)
                    )
                })?;
                (
                    port,
                    format!("the config's {} and {}", field(host_at), field(p)),
                )
            }
            None => {
                let port = default_port.ok_or_else(|| {
                    format!(
                        "the config gives no {} and the spec's {entry} no default_port",
                        port_at.map(field).unwrap_or_else(|| "port".into())
                    )
                })?;
                (
                    port,
                    format!(
                        "the config's {} (and the default port {port})",
                        field(host_at)
                    ),
                )
            }
        };
        let grant = NetGrant::new(host, port)
            .map_err(|e| format!("the config's {}: {e}", field(host_at)))?;
        if !grants.iter().any(|g: &DerivedGrant| g.grant == grant) {
            grants.push(DerivedGrant { grant, from });
        }
    }
    Ok(grants)
}

/// A port from a config value: a whole number (or a string of one) 1..65535.
fn port_number(value: &Value) -> Option<u16> {
    let n = match value {
        Value::Number(n) => n.as_u64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    u16::try_from(n).ok().filter(|p| *p > 0)
}

/// A grant with the addresses its host resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedGrant {
    /// The grant.
    pub grant: NetGrant,
    /// Its addresses, each on the grant's port.
    pub addrs: Vec<SocketAddr>,
}

/// What a sandboxed connector may reach: resolved grants. Empty denies all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedGrants {
    grants: Vec<ResolvedGrant>,
}

/// What a guest does with a socket address, as far as the rule cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketUse {
    /// Binding a TCP socket (explicitly, or implicitly before a connect).
    TcpBind,
    /// Connecting a TCP socket to a remote address.
    TcpConnect,
    /// Listening or accepting on a TCP socket.
    TcpListen,
    /// Any use of a UDP socket.
    Udp,
}

/// Why an address was refused: what the guest tried, and what would allow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// What was refused, e.g. "a connection to 10.0.0.5:5433".
    pub what: String,
    /// The rule it broke.
    pub rule: String,
    /// How to allow it, in words; says why not when it cannot be allowed.
    pub fix: String,
    /// How to allow it, as data, when it can be allowed.
    pub remedy: Option<Remedy>,
}

impl Refusal {
    fn allow(what: String, rule: String, remedy: Remedy) -> Self {
        Self {
            what,
            rule,
            fix: remedy.to_string(),
            remedy: Some(remedy),
        }
    }
}

impl ResolvedGrants {
    /// Grants already resolved (tests, or addresses only).
    pub fn new(grants: Vec<ResolvedGrant>) -> Self {
        Self { grants }
    }

    /// Whether nothing is granted.
    pub fn is_empty(&self) -> bool {
        self.grants.is_empty()
    }

    /// The grants.
    pub fn grants(&self) -> &[ResolvedGrant] {
        &self.grants
    }

    /// The grants as the user would write them, e.g. `db:5432 (127.0.0.1:5432)`.
    pub fn describe(&self) -> String {
        if self.grants.is_empty() {
            return "none".into();
        }
        self.grants
            .iter()
            .map(|g| {
                let addrs: Vec<String> = g.addrs.iter().map(ToString::to_string).collect();
                if addrs.len() == 1 && addrs[0] == g.grant.to_string() {
                    addrs[0].clone()
                } else {
                    format!("{} ({})", g.grant, addrs.join(", "))
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The rule: a TCP connection only to a granted address; a bind only to
    /// the wildcard address and port 0 (the implicit one before a connect); no
    /// listening, no UDP.
    ///
    /// # Errors
    /// The [`Refusal`] naming the address, the rule and the fix.
    pub fn check(&self, addr: SocketAddr, how: SocketUse) -> Result<(), Refusal> {
        let granted = format!("granted: {}", self.describe());
        match how {
            SocketUse::TcpConnect => {
                let addr = canonical(addr);
                if self.grants.iter().any(|g| g.addrs.contains(&addr)) {
                    Ok(())
                } else {
                    Err(Refusal::allow(
                        format!("a connection to {addr}"),
                        format!("no network grant covers it ({granted})"),
                        Remedy::AllowNet {
                            endpoint: addr.to_string(),
                        },
                    ))
                }
            }
            // The implicit bind before a connect: harmless alone (no listening),
            // and the connect that follows is checked, and named if refused.
            SocketUse::TcpBind if addr.ip().is_unspecified() && addr.port() == 0 => Ok(()),
            SocketUse::TcpBind | SocketUse::TcpListen => Err(Refusal {
                what: format!("listening on {addr}"),
                rule: "plugins may connect out only, never listen".into(),
                fix: "none: a destination has no need to accept connections".into(),
                remedy: None,
            }),
            SocketUse::Udp => Err(Refusal {
                what: format!("a UDP datagram to or from {addr}"),
                rule: "network grants are for TCP only".into(),
                fix: "none: only TCP can be granted".into(),
                remedy: None,
            }),
        }
    }

    /// Whether a guest may look `name` up: a granted name, or an IP address
    /// (which needs no lookup). The answer comes from the host's resolver.
    ///
    /// # Errors
    /// The [`Refusal`] naming the name.
    pub fn check_lookup(&self, name: &str) -> Result<(), Refusal> {
        let bare = name.trim_start_matches('[').trim_end_matches(']');
        if bare.parse::<IpAddr>().is_ok()
            || self
                .grants
                .iter()
                .any(|g| g.grant.host.eq_ignore_ascii_case(bare))
        {
            return Ok(());
        }
        Err(Refusal::allow(
            format!("a name lookup of {name}"),
            format!(
                "only granted names may be looked up (granted: {})",
                self.describe()
            ),
            Remedy::AllowNet {
                endpoint: format!("{bare}:PORT"),
            },
        ))
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Resolves `grants` with the host's resolver.
///
/// # Errors
/// A message naming the grant whose host cannot be resolved.
pub async fn resolve(grants: &[NetGrant]) -> Result<ResolvedGrants, String> {
    let mut resolved = Vec::with_capacity(grants.len());
    for grant in grants {
        let addrs: Vec<SocketAddr> = match grant.host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, grant.port)],
            Err(_) => tokio::net::lookup_host((grant.host.as_str(), grant.port))
                .await
                .map_err(|e| {
                    format!(
                        "the network grant {grant}: {} cannot be resolved ({e}); \
                         check the name, or grant its IP address",
                        grant.host
                    )
                })?
                .map(canonical)
                .collect(),
        };
        let mut unique: Vec<SocketAddr> = Vec::new();
        for addr in addrs {
            if !unique.contains(&addr) {
                unique.push(addr);
            }
        }
        resolved.push(ResolvedGrant {
            grant: grant.clone(),
            addrs: unique,
        });
    }
    Ok(ResolvedGrants { grants: resolved })
}

/// The grants of one run of `executor` under `policy`: the policy's own, else
/// (when it [derives](crate::executor::sandbox::SandboxPolicy::derives_net))
/// those the invocation's config names by the connector's spec, which is read
/// once into `spec`. Each derived grant is announced at WARN ("granted
/// network: db:5432 (from the config's host and port)").
///
/// # Errors
/// A [`GrantError`] when a grant does not resolve or the config names an
/// endpoint badly; the spec's error when it cannot be read.
pub async fn grants_for_run(
    executor: &(dyn crate::executor::Executor + '_),
    policy: &crate::executor::sandbox::SandboxPolicy,
    invocation: &crate::executor::Invocation,
    spec: &tokio::sync::OnceCell<Value>,
) -> Result<ResolvedGrants, crate::executor::ExecutorError> {
    let bad = |reason: String| {
        crate::executor::ExecutorError::new(
            executor.connector(),
            GrantError {
                reason,
                remedy: None,
            },
        )
    };
    if policy.network_allowed() {
        return Ok(ResolvedGrants::default());
    }
    if !policy.net_grants().is_empty() {
        return resolve(policy.net_grants()).await.map_err(bad);
    }
    let Some(config) = invocation.config().filter(|_| policy.derives_net()) else {
        return Ok(ResolvedGrants::default());
    };
    let spec = spec
        .get_or_try_init(|| async {
            let spec = executor.spec().await?;
            Ok::<_, crate::executor::ExecutorError>(serde_json::to_value(spec).unwrap_or_default())
        })
        .await?;
    let derived = derive_grants(spec, config).map_err(|e| {
        let remedy = Remedy::AllowNet {
            endpoint: "HOST:PORT".into(),
        };
        crate::executor::ExecutorError::new(
            executor.connector(),
            GrantError {
                reason: format!("{e}\nfix: correct the config, or {remedy}"),
                remedy: Some(remedy),
            },
        )
    })?;
    if derived.is_empty() {
        return Ok(ResolvedGrants::default());
    }
    // Said once per connector and grant in a process: a suite or a job runs
    // the same plugin with the same config many times.
    static SAID: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());
    for d in &derived {
        let key = (executor.connector().to_owned(), d.grant.to_string());
        let mut said = SAID
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if said.contains(&key) {
            continue;
        }
        said.push(key);
        tracing::warn!(
            connector = executor.connector(),
            "granted network: {} (from {}; derive_net = false in a policy turns this off)",
            d.grant,
            d.from
        );
    }
    let grants: Vec<NetGrant> = derived.into_iter().map(|d| d.grant).collect();
    resolve(&grants).await.map_err(bad)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test that cannot unwrap should panic")]
mod tests {
    use serde_json::json;

    use super::*;

    fn granted(addr: &str) -> ResolvedGrants {
        let addr: SocketAddr = addr.parse().unwrap();
        ResolvedGrants::new(vec![ResolvedGrant {
            grant: NetGrant::new("db", addr.port()).unwrap(),
            addrs: vec![addr],
        }])
    }

    #[test]
    fn grants_parse_and_print() {
        for (text, shown) in [
            ("db:5432", "db:5432"),
            ("DB.Internal:1", "db.internal:1"),
            ("10.0.0.5:5433", "10.0.0.5:5433"),
            ("[::1]:5432", "[::1]:5432"),
        ] {
            let grant: NetGrant = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(grant.to_string(), shown);
        }
        for bad in [
            "db", "db:", "db:0", "db:70000", ":5432", "::1:5432", "a b:1",
        ] {
            let error = bad.parse::<NetGrant>().expect_err(bad);
            assert!(error.contains(bad), "{error}");
        }
    }

    #[test]
    fn only_granted_connections_pass() {
        let grants = granted("127.0.0.1:5432");
        let at = |a: &str| a.parse::<SocketAddr>().unwrap();
        assert!(
            grants
                .check(at("127.0.0.1:5432"), SocketUse::TcpConnect)
                .is_ok()
        );
        assert!(
            grants
                .check(at("[::ffff:127.0.0.1]:5432"), SocketUse::TcpConnect)
                .is_ok()
        );
        let refused = grants
            .check(at("127.0.0.1:5433"), SocketUse::TcpConnect)
            .expect_err("another port");
        assert_eq!(refused.what, "a connection to 127.0.0.1:5433");
        assert_eq!(
            refused.remedy,
            Some(Remedy::AllowNet {
                endpoint: "127.0.0.1:5433".into()
            })
        );
        assert!(!refused.fix.contains("--"), "{}", refused.fix);
        assert!(
            refused.rule.contains("db:5432 (127.0.0.1:5432)"),
            "{}",
            refused.rule
        );
        assert!(
            grants
                .check(at("10.0.0.5:5432"), SocketUse::TcpConnect)
                .is_err()
        );
        assert!(grants.check(at("0.0.0.0:0"), SocketUse::TcpBind).is_ok());
        assert!(
            grants
                .check(at("0.0.0.0:8080"), SocketUse::TcpBind)
                .is_err()
        );
        assert!(
            grants
                .check(at("127.0.0.1:5432"), SocketUse::TcpListen)
                .is_err()
        );
        assert!(grants.check(at("127.0.0.1:5432"), SocketUse::Udp).is_err());
        let none = ResolvedGrants::default();
        let refused = none
            .check(at("127.0.0.1:5432"), SocketUse::TcpConnect)
            .expect_err("nothing granted");
        assert!(refused.rule.contains("granted: none"), "{}", refused.rule);
    }

    #[test]
    fn only_granted_names_are_looked_up() {
        let grants = granted("127.0.0.1:5432");
        assert!(grants.check_lookup("db").is_ok());
        assert!(grants.check_lookup("DB").is_ok());
        assert!(
            grants.check_lookup("10.1.2.3").is_ok(),
            "an address needs no lookup"
        );
        let refused = grants.check_lookup("exfil.example").expect_err("ungranted");
        assert_eq!(refused.what, "a name lookup of exfil.example");
    }

    #[test]
    fn grants_come_from_the_fields_the_spec_names() {
        let spec = json!({"connectionSpecification": {"x-airlock-endpoints": [
            {"host": "/host", "port": "/port", "default_port": 5432},
            {"host": "/tunnel/host", "port": "/tunnel/port"}
        ]}});
        let grants = derive_grants(
            &spec,
            &json!({"host": "db", "port": "6543", "tunnel": {"host": "jump", "port": 22}}),
        )
        .unwrap();
        let shown: Vec<String> = grants
            .iter()
            .map(|g| format!("{} from {}", g.grant, g.from))
            .collect();
        assert_eq!(
            shown,
            [
                "db:6543 from the config's host and port",
                "jump:22 from the config's tunnel.host and tunnel.port"
            ]
        );
        // No host in the config: nothing granted. No port and no default: an error.
        assert!(derive_grants(&spec, &json!({})).unwrap().is_empty());
        let error = derive_grants(&spec, &json!({"tunnel": {"host": "jump"}})).unwrap_err();
        assert!(error.contains("tunnel.port"), "{error}");
        let error = derive_grants(&spec, &json!({"host": "db", "port": 0})).unwrap_err();
        assert!(error.contains("the config's port"), "{error}");
        // No endpoints in the spec: nothing.
        assert!(
            derive_grants(&json!({}), &json!({"host": "db"}))
                .unwrap()
                .is_empty()
        );
        let error =
            derive_grants(&json!({"x-airlock-endpoints": [{"host": 3}]}), &json!({})).unwrap_err();
        assert!(error.contains("x-airlock-endpoints[0].host"), "{error}");
    }

    #[tokio::test]
    async fn names_resolve_on_the_host() {
        let grants = resolve(&[
            "localhost:5432".parse().unwrap(),
            "10.0.0.5:1".parse().unwrap(),
        ])
        .await
        .unwrap();
        assert!(
            grants.grants()[0]
                .addrs
                .contains(&"127.0.0.1:5432".parse().unwrap()),
            "{grants:?}"
        );
        assert_eq!(grants.grants()[1].addrs, ["10.0.0.5:1".parse().unwrap()]);
        let error = resolve(&["no-such-host.invalid:1".parse().unwrap()])
            .await
            .unwrap_err();
        assert!(error.contains("no-such-host.invalid:1"), "{error}");
    }
}
