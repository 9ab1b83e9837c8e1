//! Header names and the typed headers a B2BUA reads: Via, CSeq, name-addr (From, To, Contact,
//! Route), and generic `;name=value` parameters. Parsers take the unfolded value text.

use std::fmt;

use crate::message::{is_token, parse_u32};
use crate::uri::Uri;

macro_rules! header_names {
    ($( $variant:ident => $full:literal $(, $compact:literal)? ;)*) => {
        /// A header name, with the compact forms of RFC 3261 §7.3.3 mapped to the full name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum HeaderName {
            $(
                #[doc = $full]
                $variant,
            )*
            /// Any other header.
            Other,
        }

        impl HeaderName {
            /// Maps a header name as written (any case, compact or full) to its variant.
            pub fn from_bytes(name: &[u8]) -> Self {
                $(
                    if name.eq_ignore_ascii_case($full.as_bytes()) $(|| name.eq_ignore_ascii_case($compact.as_bytes()))? {
                        return Self::$variant;
                    }
                )*
                Self::Other
            }

            /// The full name to write, `None` for [`HeaderName::Other`].
            pub fn canonical(self) -> Option<&'static str> {
                match self {
                    $(Self::$variant => Some($full),)*
                    Self::Other => None,
                }
            }
        }
    };
}

header_names! {
    Via => "Via", "v";
    From => "From", "f";
    To => "To", "t";
    CallId => "Call-ID", "i";
    CSeq => "CSeq";
    Contact => "Contact", "m";
    ContentLength => "Content-Length", "l";
    ContentType => "Content-Type", "c";
    MaxForwards => "Max-Forwards";
    Route => "Route";
    RecordRoute => "Record-Route";
    Require => "Require";
    ProxyRequire => "Proxy-Require";
    Supported => "Supported", "k";
    Expires => "Expires";
    MinExpires => "Min-Expires";
    Authorization => "Authorization";
    ProxyAuthorization => "Proxy-Authorization";
    WwwAuthenticate => "WWW-Authenticate";
    Accept => "Accept";
    SessionExpires => "Session-Expires", "x";
    MinSe => "Min-SE";
    Event => "Event", "o";
    Reason => "Reason";
    UserAgent => "User-Agent";
}

/// Splits a list header value on commas that are outside quotes and angle brackets.
pub fn split_list(v: &str) -> impl Iterator<Item = &str> {
    let bytes = v.as_bytes();
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut angle, mut i) = (0, false, false, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'<' if !quoted => angle = true,
            b'>' if !quoted => angle = false,
            b',' if !quoted && !angle => {
                parts.push(&v[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    parts.push(&v[start..]);
    parts.into_iter().map(str::trim).filter(|p| !p.is_empty())
}

/// Header or URI parameters: `;name=value;flag`, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, Option<String>)>);

impl Params {
    /// Parses `;a=b;c` (the leading `;` optional). Fails on an empty or non-token name.
    pub fn parse(s: &str) -> Result<Self, HeaderError> {
        let mut out = Vec::new();
        for p in split_unquoted(s, b';') {
            let p = p.trim();
            if p.is_empty() {
                continue;
            }
            let (n, v) = match p.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim().to_owned())),
                None => (p, None),
            };
            if !is_token(n.as_bytes()) {
                return Err(HeaderError("parameter name"));
            }
            out.push((n.to_owned(), v));
        }
        Ok(Self(out))
    }

    /// The value of a parameter (`Some("")` for a flag without value), case-insensitive name.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref().unwrap_or(""))
    }

    /// Whether the parameter is present.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Sets (or replaces) a parameter.
    pub fn set(&mut self, name: &str, value: Option<String>) {
        match self
            .0
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(slot) => slot.1 = value,
            None => self.0.push((name.to_owned(), value)),
        }
    }

    /// Removes a parameter.
    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }
}

impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, v) in &self.0 {
            match v {
                Some(v) => write!(f, ";{n}={v}")?,
                None => write!(f, ";{n}")?,
            }
        }
        Ok(())
    }
}

fn split_unquoted(s: &str, sep: u8) -> Vec<&str> {
    let b = s.as_bytes();
    let (mut out, mut start, mut quoted, mut i) = (Vec::new(), 0, false, 0);
    while i < b.len() {
        match b[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            c if c == sep && !quoted => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(&s[start.min(s.len())..]);
    out
}

/// A header value that does not follow its grammar; names the part that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {0}")]
pub struct HeaderError(pub &'static str);

/// One Via entry: `SIP/2.0/UDP host:port;branch=...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// The SIP version in the sent-protocol.
    pub version: String,
    /// The transport token (UDP, TCP, TLS, WS, WSS, or anything else).
    pub transport: String,
    /// The sent-by host (IPv6 without brackets).
    pub host: String,
    /// The sent-by port, if written.
    pub port: Option<u16>,
    /// The parameters.
    pub params: Params,
}

impl Via {
    /// Parses one Via value; white space around `/` is allowed.
    pub fn parse(v: &str) -> Result<Self, HeaderError> {
        let (proto, rest) = {
            // sent-protocol is three tokens separated by '/', possibly with LWS.
            let mut parts = Vec::with_capacity(3);
            let mut s = v.trim_start();
            for i in 0..3 {
                let end = if i < 2 {
                    s.find('/').ok_or(HeaderError("Via protocol"))?
                } else {
                    s.find([' ', '\t']).ok_or(HeaderError("Via sent-by"))?
                };
                parts.push(s[..end].trim());
                s = if i < 2 {
                    s[end + 1..].trim_start()
                } else {
                    &s[end..]
                };
            }
            (parts, s.trim())
        };
        if proto[0] != "SIP" || !proto.iter().all(|p| is_token(p.as_bytes())) {
            return Err(HeaderError("Via protocol"));
        }
        let (sent_by, params) = match rest.find(';') {
            Some(i) => (rest[..i].trim(), &rest[i..]),
            None => (rest, ""),
        };
        let (host, port) = split_host_port(sent_by)?;
        let params = Params::parse(params)?;
        Ok(Self {
            version: proto[1].to_owned(),
            transport: proto[2].to_ascii_uppercase(),
            host,
            port,
            params,
        })
    }

    /// The branch parameter.
    pub fn branch(&self) -> Option<&str> {
        self.params.get("branch")
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/{}/{} ", self.version, self.transport)?;
        write_host(f, &self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write!(f, "{}", self.params)
    }
}

/// Writes a host, bracketing IPv6 literals.
pub(crate) fn write_host(f: &mut impl fmt::Write, host: &str) -> fmt::Result {
    if host.contains(':') {
        write!(f, "[{host}]")
    } else {
        f.write_str(host)
    }
}

/// Splits `host[:port]`, `[v6]:port` into the host (without brackets) and the port.
pub(crate) fn split_host_port(s: &str) -> Result<(String, Option<u16>), HeaderError> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']').ok_or(HeaderError("IPv6 reference"))?;
        let host = &rest[..end];
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(HeaderError("IPv6 reference"));
        }
        let after = rest[end + 1..].trim();
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.trim().parse().map_err(|_| HeaderError("port"))?),
            None if after.is_empty() => None,
            None => return Err(HeaderError("host")),
        };
        return Ok((host.to_owned(), port));
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (
            h.trim(),
            Some(p.trim().parse().map_err(|_| HeaderError("port"))?),
        ),
        None => (s, None),
    };
    if host.is_empty()
        || !host
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-' || c == b'_')
    {
        return Err(HeaderError("host"));
    }
    Ok((host.to_owned(), port))
}

/// CSeq: sequence number and method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    /// The sequence number (at most 2**31 - 1, RFC 3261 §8.1.1.5).
    pub seq: u32,
    /// The method.
    pub method: String,
}

impl CSeq {
    /// Parses `1 INVITE`.
    pub fn parse(v: &str) -> Result<Self, HeaderError> {
        let mut it = v.split_whitespace();
        let seq = it
            .next()
            .and_then(|n| parse_u32(n.as_bytes()))
            .filter(|n| *n < 1 << 31)
            .ok_or(HeaderError("CSeq number"))?;
        let method = it.next().ok_or(HeaderError("CSeq method"))?;
        if it.next().is_some() || !is_token(method.as_bytes()) {
            return Err(HeaderError("CSeq method"));
        }
        Ok(Self {
            seq,
            method: method.to_owned(),
        })
    }
}

/// A name-addr or addr-spec with header parameters: From, To, Contact, Route, Record-Route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// The display name, unquoted, if any.
    pub display: Option<String>,
    /// The URI.
    pub uri: Uri,
    /// Header parameters (tag, expires, q, ...), after the URI.
    pub params: Params,
}

impl NameAddr {
    /// Parses `"Name" <uri>;params`, `Name <uri>;params` or `uri;params`. In the last form
    /// every `;` parameter belongs to the header (RFC 3261 §20.10) and `?` or `,` in the URI is
    /// an error.
    pub fn parse(v: &str) -> Result<Self, HeaderError> {
        let v = v.trim();
        let (display, uri_text, params) = if let Some(rest) = v.strip_prefix('"') {
            let mut end = None;
            let b = rest.as_bytes();
            let mut i = 0;
            while i < b.len() {
                match b[i] {
                    b'\\' => i += 1,
                    b'"' => {
                        end = Some(i);
                        break;
                    }
                    _ => {}
                }
                i += 1;
            }
            let end = end.ok_or(HeaderError("quoted display name"))?;
            let after = rest[end + 1..].trim_start();
            let inner = after.strip_prefix('<').ok_or(HeaderError("name-addr"))?;
            let close = inner.find('>').ok_or(HeaderError("name-addr"))?;
            (
                Some(rest[..end].to_owned()),
                &inner[..close],
                &inner[close + 1..],
            )
        } else if let Some(open) = v.find('<') {
            let dn = v[..open].trim();
            if !dn.split_whitespace().all(|w| is_token(w.as_bytes())) {
                return Err(HeaderError("display name"));
            }
            let close = v[open..].find('>').ok_or(HeaderError("name-addr"))? + open;
            (
                (!dn.is_empty()).then(|| dn.to_owned()),
                &v[open + 1..close],
                &v[close + 1..],
            )
        } else {
            let (u, p) = match v.find(';') {
                Some(i) => (v[..i].trim(), &v[i..]),
                None => (v, ""),
            };
            if u.contains(['?', ',', ' ']) {
                return Err(HeaderError("addr-spec"));
            }
            (None, u, p)
        };
        let uri_text = uri_text.trim();
        let uri = Uri::parse(uri_text).map_err(|_| HeaderError("URI"))?;
        let params = params.trim();
        if !params.is_empty() && !params.starts_with(';') {
            return Err(HeaderError("header parameters"));
        }
        Ok(Self {
            display,
            uri,
            params: Params::parse(params)?,
        })
    }

    /// The tag parameter.
    pub fn tag(&self) -> Option<&str> {
        self.params.get("tag")
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display {
            write!(f, "\"{}\" ", d.replace('\\', "\\\\").replace('"', "\\\""))?;
        }
        write!(f, "<{}>{}", self.uri, self.params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn via_with_lws_ipv6_and_params() {
        let v = Via::parse("SIP / 2.0 / UDP [2001:db8::9:1]:5060;branch=z9hG4bKx;rport").unwrap();
        assert_eq!(v.host, "2001:db8::9:1");
        assert_eq!(v.port, Some(5060));
        assert_eq!(v.branch(), Some("z9hG4bKx"));
        assert!(v.params.has("rport"));
        assert_eq!(Via::parse(&v.to_string()).unwrap(), v);
    }

    #[test]
    fn name_addr_forms() {
        let a = NameAddr::parse("\"Bell, A\" <sip:a@b;lr>;tag=9").unwrap();
        assert_eq!(a.display.as_deref(), Some("Bell, A"));
        assert_eq!(a.tag(), Some("9"));
        assert!(a.uri.params.has("lr"));
        let b = NameAddr::parse("sip:user@host;expires=30").unwrap();
        assert_eq!(b.params.get("expires"), Some("30"));
        assert!(b.uri.params.get("expires").is_none());
        assert!(NameAddr::parse("\"unterminated <sip:a@b>").is_err());
        assert!(NameAddr::parse("Bell, Alexander <sip:a@b>").is_err());
        assert!(NameAddr::parse("sip:user@example.com?Route=x").is_err());
    }

    #[test]
    fn list_split_respects_quotes_and_brackets() {
        let v: Vec<_> = split_list("\"a,b\" <sip:x@y;p=1,2>, <sip:z@w>").collect();
        assert_eq!(v, ["\"a,b\" <sip:x@y;p=1,2>", "<sip:z@w>"]);
    }

    proptest! {
        #[test]
        fn via_print_parse_round_trip(host in "[a-z][a-z0-9]{0,10}(\\.[a-z]{2,5})?", port in proptest::option::of(1u16..),
                                      branch in "[A-Za-z0-9]{1,20}", transport in "(UDP|TCP|TLS|WS|WSS)") {
            let text = match port {
                Some(p) => format!("SIP/2.0/{transport} {host}:{p};branch=z9hG4bK{branch};rport"),
                None => format!("SIP/2.0/{transport} {host};branch=z9hG4bK{branch}"),
            };
            let v = Via::parse(&text).unwrap();
            prop_assert_eq!(v.to_string(), text);
        }

        #[test]
        fn cseq_print_parse(seq in 0u32..(1 << 31), m in "[A-Z]{3,10}") {
            let c = CSeq::parse(&format!("{seq} {m}")).unwrap();
            prop_assert_eq!(c.seq, seq);
            prop_assert_eq!(c.method, m);
        }
    }
}
