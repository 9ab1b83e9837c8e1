//! Digest authentication (RFC 3261 §22, RFC 7616 for the response formula, RFC 8760 for
//! SHA-256 in SIP): qop=auth, stateless nonces that expire (`stale=true`), and nonce-count
//! replay protection. Credentials are stored as HA1 hashes only.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use md5::Md5;
use sha2::{Digest, Sha256};

/// A digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
pub enum Algorithm {
    /// MD5 (RFC 2617), still what most phones speak.
    #[serde(rename = "MD5")]
    Md5,
    /// SHA-256 (RFC 7616, RFC 8760).
    #[serde(rename = "SHA-256")]
    Sha256,
}

impl Algorithm {
    /// The token used in the `algorithm` parameter.
    pub fn token(self) -> &'static str {
        match self {
            Self::Md5 => "MD5",
            Self::Sha256 => "SHA-256",
        }
    }

    fn from_token(t: &str) -> Option<Self> {
        match t.to_ascii_uppercase().as_str() {
            "MD5" => Some(Self::Md5),
            "SHA-256" => Some(Self::Sha256),
            _ => None,
        }
    }

    /// Lower-case hex of the hash of `data`.
    pub fn hex(self, data: &[u8]) -> String {
        match self {
            Self::Md5 => to_hex(&Md5::digest(data)),
            Self::Sha256 => to_hex(&Sha256::digest(data)),
        }
    }
}

fn to_hex(b: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(HEX[(x >> 4) as usize] as char);
        s.push(HEX[(x & 15) as usize] as char);
    }
    s
}

/// HA1 = H(username ":" realm ":" password), what `crest passwd` prints and the config stores.
pub fn ha1(alg: Algorithm, user: &str, realm: &str, password: &str) -> String {
    alg.hex(format!("{user}:{realm}:{password}").as_bytes())
}

/// The parameters of an `Authorization: Digest ...` header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Credentials {
    /// username
    pub username: String,
    /// realm
    pub realm: String,
    /// nonce
    pub nonce: String,
    /// digest-uri
    pub uri: String,
    /// the response hash
    pub response: String,
    /// algorithm (MD5 when absent)
    pub algorithm: String,
    /// cnonce
    pub cnonce: Option<String>,
    /// qop
    pub qop: Option<String>,
    /// nonce-count, hexadecimal
    pub nc: Option<u32>,
    /// opaque
    pub opaque: Option<String>,
}

/// The `name=value` parameters of a `Digest ...` header value (quotes removed, names in lower
/// case); `None` when the scheme is not Digest or a parameter has no `=`.
fn digest_params(v: &str) -> Option<Vec<(String, String)>> {
    let (scheme, rest) = v.trim().split_once([' ', '\t'])?;
    if !scheme.eq_ignore_ascii_case("Digest") {
        return None;
    }
    crate::header::split_list(rest)
        .map(|part| {
            let (k, val) = part.split_once('=')?;
            let val = val.trim();
            let val = val
                .strip_prefix('"')
                .and_then(|x| x.strip_suffix('"'))
                .unwrap_or(val);
            Some((k.trim().to_ascii_lowercase(), val.to_owned()))
        })
        .collect()
}

impl Credentials {
    /// Parses a header value; `None` when the scheme is not Digest (RFC 4475 §3.3.7: an
    /// unknown scheme is ignored, and the request is challenged).
    pub fn parse(v: &str) -> Option<Self> {
        let mut c = Self {
            algorithm: "MD5".into(),
            ..Self::default()
        };
        for (k, val) in digest_params(v)? {
            match k.as_str() {
                "username" => c.username = val,
                "realm" => c.realm = val,
                "nonce" => c.nonce = val,
                "uri" => c.uri = val,
                "response" => c.response = val.to_ascii_lowercase(),
                "algorithm" => c.algorithm = val,
                "cnonce" => c.cnonce = Some(val),
                "qop" => c.qop = Some(val),
                "nc" => c.nc = Some(u32::from_str_radix(&val, 16).ok()?),
                "opaque" => c.opaque = Some(val),
                _ => {}
            }
        }
        Some(c)
    }
}

/// A `WWW-Authenticate: Digest ...` challenge, as a client reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// realm
    pub realm: String,
    /// nonce
    pub nonce: String,
    /// The algorithm (MD5 when absent); `None` for one this crate does not implement.
    pub algorithm: Option<Algorithm>,
    /// stale=true: the credentials were right but the nonce expired.
    pub stale: bool,
}

impl Challenge {
    /// Parses a header value; `None` when it is not a Digest challenge with a nonce.
    pub fn parse(v: &str) -> Option<Self> {
        let mut c = Self {
            realm: String::new(),
            nonce: String::new(),
            algorithm: Some(Algorithm::Md5),
            stale: false,
        };
        for (k, val) in digest_params(v)? {
            match k.as_str() {
                "realm" => c.realm = val,
                "nonce" => c.nonce = val,
                "algorithm" => c.algorithm = Algorithm::from_token(&val),
                "stale" => c.stale = val.eq_ignore_ascii_case("true"),
                _ => {}
            }
        }
        (!c.nonce.is_empty()).then_some(c)
    }

    /// The challenge for `alg` among a response's `WWW-Authenticate` values.
    pub fn find<'a>(values: impl IntoIterator<Item = &'a str>, alg: Algorithm) -> Option<Self> {
        values
            .into_iter()
            .filter_map(Self::parse)
            .find(|c| c.algorithm == Some(alg))
    }
}

/// Why credentials were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No Digest credentials for this realm: challenge.
    #[error("no credentials")]
    Missing,
    /// The nonce is well formed and ours but expired: challenge with stale=true.
    #[error("stale nonce")]
    Stale,
    /// The nonce was not issued by this server.
    #[error("unknown nonce")]
    BadNonce,
    /// The nonce-count did not increase: a replayed request.
    #[error("replayed nonce-count")]
    Replay,
    /// The user has no credentials for this algorithm.
    #[error("unknown user")]
    UnknownUser,
    /// qop other than auth, or an unknown algorithm.
    #[error("unsupported digest parameters")]
    Unsupported,
    /// The response hash is wrong.
    #[error("wrong password")]
    BadResponse,
}

/// Issues and checks digest challenges for one realm.
#[derive(Debug)]
pub struct DigestAuth {
    realm: String,
    secret: [u8; 32],
    epoch: Instant,
    nonce_ttl: Duration,
    algorithms: Vec<Algorithm>,
    /// Highest nonce-count seen per (nonce, username), keyed by a hash of the pair; pruned
    /// when the nonce expires. A nonce is shared by every challenge issued in the same
    /// millisecond, so the username is part of the key.
    seen: HashMap<u64, (u32, Instant)>,
    /// `seen` keys by expiry, so that pruning touches only what expired (a full scan of a
    /// million entries would pause the core).
    expiries: BinaryHeap<Reverse<(Instant, u64)>>,
}

impl DigestAuth {
    /// `secret` keys the nonce MAC (from the seeded RNG); `epoch` is any fixed instant.
    pub fn new(
        realm: &str,
        secret: [u8; 32],
        epoch: Instant,
        nonce_ttl: Duration,
        algorithms: Vec<Algorithm>,
    ) -> Self {
        Self {
            realm: realm.to_owned(),
            secret,
            epoch,
            nonce_ttl,
            algorithms,
            seen: HashMap::new(),
            expiries: BinaryHeap::new(),
        }
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    fn mac(&self, stamp: u64) -> String {
        let mut h = Sha256::new();
        h.update(self.secret);
        h.update(stamp.to_be_bytes());
        h.update(self.realm.as_bytes());
        to_hex(&h.finalize()[..12])
    }

    fn nonce(&self, now: Instant) -> String {
        let stamp = now.saturating_duration_since(self.epoch).as_millis() as u64;
        format!("{stamp:x}.{}", self.mac(stamp))
    }

    /// The `WWW-Authenticate` values to send, one per algorithm in order of preference.
    pub fn challenges(&self, now: Instant, stale: bool) -> Vec<String> {
        self.challenges_ending_with(now, stale, None)
    }

    /// The same with `last`'s challenge (when configured) moved to the end: browser SIP stacks
    /// (JsSIP 3.13) read only the last `WWW-Authenticate` and speak only MD5.
    pub fn challenges_ending_with(
        &self,
        now: Instant,
        stale: bool,
        last: Option<Algorithm>,
    ) -> Vec<String> {
        let nonce = self.nonce(now);
        let mut order: Vec<Algorithm> = self.algorithms.clone();
        if let Some(l) = last
            && let Some(i) = order.iter().position(|a| *a == l)
        {
            let a = order.remove(i);
            order.push(a);
        }
        order
            .iter()
            .map(|a| {
                format!(
                    "Digest realm=\"{}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"{}",
                    self.realm,
                    a.token(),
                    if stale { ", stale=true" } else { "" }
                )
            })
            .collect()
    }

    /// Checks credentials for `method`; `ha1` looks up the stored hash of (user, algorithm).
    pub fn verify(
        &mut self,
        now: Instant,
        method: &str,
        c: &Credentials,
        ha1: impl Fn(&str, Algorithm) -> Option<String>,
    ) -> Result<(), AuthError> {
        if c.realm != self.realm {
            return Err(AuthError::Missing);
        }
        let alg = Algorithm::from_token(&c.algorithm)
            .filter(|a| self.algorithms.contains(a))
            .ok_or(AuthError::Unsupported)?;
        let (stamp, mac) = c.nonce.split_once('.').ok_or(AuthError::BadNonce)?;
        let stamp = u64::from_str_radix(stamp, 16).map_err(|_| AuthError::BadNonce)?;
        if self.mac(stamp) != mac {
            return Err(AuthError::BadNonce);
        }
        let issued = self.epoch + Duration::from_millis(stamp);
        if now.saturating_duration_since(issued) > self.nonce_ttl {
            return Err(AuthError::Stale);
        }
        if c.qop.as_deref() != Some("auth") {
            return Err(AuthError::Unsupported);
        }
        let (Some(nc), Some(cnonce)) = (c.nc, c.cnonce.as_deref()) else {
            return Err(AuthError::Unsupported);
        };
        let h1 = ha1(&c.username, alg).ok_or(AuthError::UnknownUser)?;
        let h2 = alg.hex(format!("{method}:{}", c.uri).as_bytes());
        let expected =
            alg.hex(format!("{h1}:{}:{:08x}:{cnonce}:auth:{h2}", c.nonce, nc).as_bytes());
        if expected != c.response {
            return Err(AuthError::BadResponse);
        }
        let expires = issued + self.nonce_ttl;
        let key = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (&c.nonce, &c.username).hash(&mut h);
            h.finish()
        };
        match self.seen.get_mut(&key) {
            Some((last, _)) if nc <= *last => return Err(AuthError::Replay),
            Some((last, _)) => *last = nc,
            None => {
                self.seen.insert(key, (nc, expires));
                self.expiries.push(Reverse((expires, key)));
            }
        }
        Ok(())
    }

    /// Forgets nonce-counts of expired nonces.
    pub fn prune(&mut self, now: Instant) {
        while let Some(Reverse((at, key))) = self.expiries.peek().copied() {
            if at > now {
                break;
            }
            self.expiries.pop();
            self.seen.remove(&key);
        }
        if self.seen.capacity() > 1024 && self.seen.len() < self.seen.capacity() / 4 {
            self.seen.shrink_to(self.seen.len() * 2);
        }
    }
}

/// The client side of digest authentication (the tests, the load generator, and later
/// Crest's own registrations to trunks).
#[derive(Debug, Clone, Copy)]
pub struct DigestClient<'a> {
    /// The algorithm of the challenge answered.
    pub alg: Algorithm,
    /// The user name.
    pub user: &'a str,
    /// The password.
    pub password: &'a str,
    /// The realm of the challenge.
    pub realm: &'a str,
}

impl DigestClient<'_> {
    /// The `Digest ...` credentials (qop=auth) for `method` on `uri` with this nonce,
    /// nonce-count and client nonce.
    pub fn authorization(
        &self,
        nonce: &str,
        method: &str,
        uri: &str,
        nc: u32,
        cnonce: &str,
    ) -> String {
        let h1 = ha1(self.alg, self.user, self.realm, self.password);
        let h2 = self.alg.hex(format!("{method}:{uri}").as_bytes());
        let response = self
            .alg
            .hex(format!("{h1}:{nonce}:{nc:08x}:{cnonce}:auth:{h2}").as_bytes());
        format!(
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", \
             algorithm={}, cnonce=\"{cnonce}\", qop=auth, nc={nc:08x}",
            self.user,
            self.realm,
            self.alg.token()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_get_the_md5_challenge_last() {
        let t0 = Instant::now();
        let a = DigestAuth::new(
            "crest",
            [7; 32],
            t0,
            Duration::from_secs(30),
            vec![Algorithm::Md5, Algorithm::Sha256],
        );
        let algs = |v: Vec<String>| -> Vec<Algorithm> {
            v.iter()
                .map(|c| Challenge::parse(c).unwrap().algorithm.unwrap())
                .collect()
        };
        assert_eq!(
            algs(a.challenges(t0, false)),
            [Algorithm::Md5, Algorithm::Sha256]
        );
        assert_eq!(
            algs(a.challenges_ending_with(t0, false, Some(Algorithm::Md5))),
            [Algorithm::Sha256, Algorithm::Md5]
        );
        let sha_only = DigestAuth::new(
            "crest",
            [7; 32],
            t0,
            Duration::from_secs(30),
            vec![Algorithm::Sha256],
        );
        assert_eq!(
            algs(sha_only.challenges_ending_with(t0, false, Some(Algorithm::Md5))),
            [Algorithm::Sha256],
            "not offered when not configured"
        );
    }

    fn creds(
        auth: &DigestAuth,
        now: Instant,
        alg: Algorithm,
        nc: u32,
        password: &str,
    ) -> Credentials {
        let challenge = Challenge::parse(&auth.challenges(now, false)[0]).unwrap();
        let nonce = challenge.nonce.as_str();
        let client = DigestClient {
            alg,
            user: "alice",
            password,
            realm: "crest",
        };
        let header = client.authorization(nonce, "REGISTER", "sip:crest", nc, "c0ffee");
        Credentials::parse(&header).unwrap()
    }

    #[test]
    fn md5_and_sha256_verify_and_replay_is_refused() {
        let t0 = Instant::now();
        for alg in [Algorithm::Md5, Algorithm::Sha256] {
            let mut a = DigestAuth::new("crest", [7; 32], t0, Duration::from_secs(30), vec![alg]);
            let lookup = |u: &str, al: Algorithm| {
                (u == "alice").then(|| ha1(al, "alice", "crest", "secret"))
            };
            let c1 = creds(&a, t0, alg, 1, "secret");
            assert_eq!(a.verify(t0, "REGISTER", &c1, lookup), Ok(()));
            assert_eq!(
                a.verify(t0, "REGISTER", &c1, lookup),
                Err(AuthError::Replay)
            );
            let c2 = creds(&a, t0, alg, 2, "secret");
            assert_eq!(a.verify(t0, "REGISTER", &c2, lookup), Ok(()));
            let bad = creds(&a, t0, alg, 3, "wrong");
            assert_eq!(
                a.verify(t0, "REGISTER", &bad, lookup),
                Err(AuthError::BadResponse)
            );
            let late = t0 + Duration::from_secs(31);
            let c4 = creds(&a, t0, alg, 4, "secret");
            assert_eq!(
                a.verify(late, "REGISTER", &c4, lookup),
                Err(AuthError::Stale)
            );
        }
    }

    #[test]
    fn forged_nonce_and_hex_nc() {
        let t0 = Instant::now();
        let mut a = DigestAuth::new(
            "crest",
            [1; 32],
            t0,
            Duration::from_secs(30),
            vec![Algorithm::Md5],
        );
        let mut c = creds(&a, t0, Algorithm::Md5, 0x100, "secret");
        assert_eq!(c.nc, Some(256));
        c.nonce = "0.deadbeef".into();
        assert_eq!(
            a.verify(t0, "REGISTER", &c, |_, _| None),
            Err(AuthError::BadNonce)
        );
        assert!(Credentials::parse("Basic dXNlcjpwYXNz").is_none());
    }
}
