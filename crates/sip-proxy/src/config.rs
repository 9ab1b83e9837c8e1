//! The SIP core's configuration: the `sip:` section of `config/crest.yaml` (addresses are set by
//! the server, which owns the sockets). Every field has a documented default.

use std::net::{IpAddr, SocketAddr};

use crate::auth::Algorithm;
use crate::registrar::RegistrarConfig;
use crate::uri::Uri;

/// Timer base values in milliseconds (RFC 3261 Table 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimersConfig {
    /// T1, 500 ms.
    pub t1_ms: u64,
    /// T2, 4000 ms.
    pub t2_ms: u64,
    /// T4, 5000 ms.
    pub t4_ms: u64,
}

impl Default for TimersConfig {
    fn default() -> Self {
        Self {
            t1_ms: 500,
            t2_ms: 4000,
            t4_ms: 5000,
        }
    }
}

/// Digest authentication settings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// The realm in challenges; HA1 hashes are computed over it.
    pub realm: String,
    /// How long a nonce is accepted before `stale=true`.
    pub nonce_ttl_secs: u64,
    /// Algorithms offered, most preferred first (RFC 8760 asks for SHA-256 before MD5).
    pub algorithms: Vec<Algorithm>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            realm: "crest".into(),
            nonce_ttl_secs: 300,
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
        }
    }
}

/// A SIP user: credentials as HA1 hashes only (`crest passwd USER REALM` prints them).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The user name (the AoR user part and the digest username).
    pub name: String,
    /// MD5(name:realm:password), hex.
    #[serde(default)]
    pub ha1_md5: Option<String>,
    /// SHA-256(name:realm:password), hex.
    #[serde(default)]
    pub ha1_sha256: Option<String>,
}

/// One entry of `routes:`: a dialled number and where its calls go.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The Request-URI user part to match (after %-unescaping), e.g. `"1000"` or `"+4930123"`.
    pub number: String,
    /// Ring this registered user (one of `user`, `uri`, `ivr`, `queue`).
    #[serde(default)]
    pub user: Option<String>,
    /// Send the call to this SIP URI (one of `user`, `uri`, `ivr`, `queue`).
    #[serde(default)]
    pub uri: Option<String>,
    /// Crest answers the call itself and runs this IVR flow.
    #[serde(default)]
    pub ivr: Option<String>,
    /// Crest answers the call itself and puts the caller in this ACD queue.
    #[serde(default)]
    pub queue: Option<String>,
    /// Unauthenticated callers may reach a public route; others get a digest challenge
    /// (toll-fraud guard).
    #[serde(default)]
    pub public: bool,
    /// The bandwidth pool the callee's leg counts against (a seat pool, an outbound trunk).
    #[serde(default)]
    pub pool: Option<String>,
    /// The bandwidth pool the caller's leg counts against (the inbound trunk).
    #[serde(default)]
    pub caller_pool: Option<String>,
}

/// Per-source request rate limit (token bucket).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained requests per second from one IP address; 0 disables the limit.
    pub requests_per_sec: f64,
    /// Burst allowance.
    pub burst: f64,
    /// Addresses the limit does not apply to (trunks, load balancers).
    pub exempt: Vec<IpAddr>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            requests_per_sec: 50.0,
            burst: 100.0,
            exempt: Vec::new(),
        }
    }
}

/// Overload protection: past these, new calls and registrations get a fast 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OverloadConfig {
    /// Concurrent calls.
    pub max_calls: usize,
    /// Live transactions.
    pub max_transactions: usize,
    /// The Retry-After value sent with 503.
    pub retry_after_secs: u32,
}

impl Default for OverloadConfig {
    fn default() -> Self {
        Self {
            max_calls: 20_000,
            max_transactions: 200_000,
            retry_after_secs: 5,
        }
    }
}

/// RFC 4028 session timer settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionTimerConfig {
    /// The session interval Crest asks for, seconds.
    pub session_expires: u32,
    /// The smallest interval accepted (422 below it), seconds; at least 90.
    pub min_se: u32,
}

impl Default for SessionTimerConfig {
    fn default() -> Self {
        Self {
            session_expires: 1800,
            min_se: 90,
        }
    }
}

/// The `sip:` section of the configuration (addresses and ports are under `listen:`).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SipConfig {
    /// Transaction timers.
    pub timers: TimersConfig,
    /// Registrar limits.
    pub registrar: RegistrarConfig,
    /// Digest authentication.
    pub auth: AuthConfig,
    /// Users and their HA1 hashes.
    pub users: Vec<UserConfig>,
    /// Dialled numbers and their targets.
    pub routes: Vec<RouteConfig>,
    /// Per-source rate limit.
    pub rate_limit: RateLimitConfig,
    /// Overload protection.
    pub overload: OverloadConfig,
    /// Session timers.
    pub session_timer: SessionTimerConfig,
    /// Seconds a callee may ring before the call is given up with 480.
    pub ring_timeout_secs: u32,
    /// Answer to the source address and port of a request even without `rport` (symmetric
    /// signalling for callers behind NAT, RFC 3581 behaviour for everyone).
    pub force_rport: bool,
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            timers: TimersConfig::default(),
            registrar: RegistrarConfig::default(),
            auth: AuthConfig::default(),
            users: Vec::new(),
            routes: Vec::new(),
            rate_limit: RateLimitConfig::default(),
            overload: OverloadConfig::default(),
            session_timer: SessionTimerConfig::default(),
            ring_timeout_secs: 60,
            force_rport: true,
        }
    }
}

/// Where a route's calls go, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteTarget {
    /// A registered user.
    User(String),
    /// A SIP URI and the address it resolves to.
    Uri(Uri, SocketAddr),
    /// Crest answers the call itself and hands it to an application.
    App(App),
}

/// What Crest does with a call it answers itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum App {
    /// Run the IVR flow of this name.
    Ivr(String),
    /// Queue the caller in the ACD queue of this name.
    Queue(String),
    /// A callback Crest placed for this queue: the customer, then the reserved agent.
    Callback(String),
}

impl std::fmt::Display for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ivr(n) => write!(f, "ivr:{n}"),
            Self::Queue(n) => write!(f, "queue:{n}"),
            Self::Callback(n) => write!(f, "callback:{n}"),
        }
    }
}

/// A problem in the `sip:` section, with the key it concerns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    /// The offending key, e.g. `sip.routes[2].uri`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl SipConfig {
    /// Checks the semantics serde cannot: route targets, users, ranges. `resolve` turns a
    /// host and port into an address (the server passes a DNS lookup).
    pub fn resolve_routes(
        &self,
        resolve: impl Fn(&str, u16) -> Option<SocketAddr>,
    ) -> Result<Vec<(String, RouteTarget, bool)>, ConfigError> {
        let err = |key: String, message: &str| ConfigError {
            key,
            message: message.to_owned(),
        };
        if self.session_timer.min_se < 90 {
            return Err(err(
                "sip.session_timer.min_se".into(),
                "must be at least 90 (RFC 4028)",
            ));
        }
        if self.session_timer.session_expires < self.session_timer.min_se {
            return Err(err(
                "sip.session_timer.session_expires".into(),
                "must be at least min_se",
            ));
        }
        if self.auth.algorithms.is_empty() {
            return Err(err(
                "sip.auth.algorithms".into(),
                "name at least one algorithm",
            ));
        }
        for (i, u) in self.users.iter().enumerate() {
            for (alg, h, len) in [
                (Algorithm::Md5, &u.ha1_md5, 32),
                (Algorithm::Sha256, &u.ha1_sha256, 64),
            ] {
                if let Some(h) = h
                    && (h.len() != len || !h.bytes().all(|c| c.is_ascii_hexdigit()))
                {
                    return Err(err(
                        format!(
                            "sip.users[{i}].ha1_{}",
                            if alg == Algorithm::Md5 {
                                "md5"
                            } else {
                                "sha256"
                            }
                        ),
                        &format!("must be {len} hex digits (use `crest passwd`)"),
                    ));
                }
            }
            if u.ha1_md5.is_none() && u.ha1_sha256.is_none() {
                return Err(err(
                    format!("sip.users[{i}]"),
                    "needs ha1_md5 or ha1_sha256",
                ));
            }
        }
        let mut out = Vec::new();
        for (i, r) in self.routes.iter().enumerate() {
            let named = [&r.user, &r.uri, &r.ivr, &r.queue]
                .iter()
                .filter(|t| t.is_some())
                .count();
            if named != 1 {
                return Err(err(
                    format!("sip.routes[{i}]"),
                    "needs exactly one of user, uri, ivr, queue",
                ));
            }
            let target = match (&r.user, &r.uri) {
                (Some(u), _) => {
                    if !self.users.iter().any(|x| &x.name == u) {
                        return Err(err(
                            format!("sip.routes[{i}].user"),
                            &format!("no user named {u:?} in sip.users"),
                        ));
                    }
                    RouteTarget::User(u.clone())
                }
                (_, Some(u)) => {
                    let uri = Uri::parse(u).ok().filter(Uri::is_sip).ok_or_else(|| {
                        err(format!("sip.routes[{i}].uri"), "not a sip: or sips: URI")
                    })?;
                    let port = uri
                        .port
                        .unwrap_or(if uri.scheme == "sips" { 5061 } else { 5060 });
                    let addr = resolve(&uri.host, port).ok_or_else(|| {
                        err(
                            format!("sip.routes[{i}].uri"),
                            &format!("cannot resolve {}", uri.host),
                        )
                    })?;
                    RouteTarget::Uri(uri, addr)
                }
                _ => RouteTarget::App(match (&r.ivr, &r.queue) {
                    (Some(flow), _) => App::Ivr(flow.clone()),
                    (_, queue) => App::Queue(queue.clone().unwrap_or_default()),
                }),
            };
            if out.iter().any(|(n, _, _)| n == &r.number) {
                return Err(err(format!("sip.routes[{i}].number"), "duplicate number"));
            }
            out.push((r.number.clone(), target, r.public));
        }
        Ok(out)
    }
}
