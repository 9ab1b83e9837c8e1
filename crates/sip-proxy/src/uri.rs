//! SIP and SIPS URIs (RFC 3261 §19.1). Other schemes (tel:, im:, ...) are kept opaque.

use std::fmt;

use crate::header::{HeaderError, Params, split_host_port, write_host};

/// A URI as a B2BUA needs it: scheme, user (still escaped), host, port, parameters, headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    /// `sip`, `sips`, or another scheme in lower case.
    pub scheme: String,
    /// The user part, as written (percent-escapes kept).
    pub user: Option<String>,
    /// The password, if any.
    pub password: Option<String>,
    /// The host, without IPv6 brackets; for an opaque URI, everything after the scheme.
    pub host: String,
    /// The port.
    pub port: Option<u16>,
    /// URI parameters.
    pub params: Params,
    /// URI headers after `?`, as written.
    pub headers: Option<String>,
}

impl Uri {
    /// Whether the text starts with `sip:` or `sips:` (any case).
    pub fn is_sip_scheme(s: &str) -> bool {
        let l = s.len().min(5);
        let p = s[..l].to_ascii_lowercase();
        p.starts_with("sip:") || p.starts_with("sips:")
    }

    /// Parses a URI; SIP and SIPS are parsed in full, other schemes kept opaque.
    pub fn parse(s: &str) -> Result<Self, HeaderError> {
        let (scheme, rest) = s.split_once(':').ok_or(HeaderError("URI scheme"))?;
        if scheme.is_empty()
            || !scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            || !scheme
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(&c))
        {
            return Err(HeaderError("URI scheme"));
        }
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "sip" && scheme != "sips" {
            if rest.is_empty() || rest.contains([' ', '\t']) {
                return Err(HeaderError("URI"));
            }
            return Ok(Self {
                scheme,
                user: None,
                password: None,
                host: rest.to_owned(),
                port: None,
                params: Params::default(),
                headers: None,
            });
        }
        if rest.contains([' ', '\t', '<', '>']) {
            return Err(HeaderError("URI"));
        }
        // userinfo ends at the last '@' (the user part may contain ';', '?' and ',').
        let (userinfo, hostpart) = match rest.rfind('@') {
            Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
            None => (None, rest),
        };
        let (hostpart, headers) = match hostpart.split_once('?') {
            Some((r, h)) => (r, Some(h.to_owned())),
            None => (hostpart, None),
        };
        let (user, password) = match userinfo {
            Some(u) => match u.split_once(':') {
                Some((u, p)) => (Some(u.to_owned()), Some(p.to_owned())),
                None => (Some(u.to_owned()), None),
            },
            None => (None, None),
        };
        if user.as_deref() == Some("") {
            return Err(HeaderError("URI user"));
        }
        let (hp, params) = match hostpart.find(';') {
            Some(i) => (&hostpart[..i], &hostpart[i..]),
            None => (hostpart, ""),
        };
        let (host, port) = split_host_port(hp)?;
        Ok(Self {
            scheme,
            user,
            password,
            host,
            port,
            params: Params::parse(params)?,
            headers,
        })
    }

    /// A plain `sip:user@host:port` URI.
    pub fn sip(user: Option<&str>, host: &str, port: Option<u16>) -> Self {
        Self {
            scheme: "sip".into(),
            user: user.map(str::to_owned),
            password: None,
            host: host.to_owned(),
            port,
            params: Params::default(),
            headers: None,
        }
    }

    /// The user part with percent-escapes decoded (for matching numbers and AoRs).
    pub fn user_unescaped(&self) -> Option<String> {
        self.user.as_deref().map(unescape)
    }

    /// Whether this is a sip: or sips: URI.
    pub fn is_sip(&self) -> bool {
        self.scheme == "sip" || self.scheme == "sips"
    }

    /// The address-of-record form `user@host` used as the registrar key (lower-case host).
    pub fn aor(&self) -> String {
        match self.user_unescaped() {
            Some(u) => format!("{u}@{}", self.host.to_ascii_lowercase()),
            None => self.host.to_ascii_lowercase(),
        }
    }
}

/// Decodes `%HH` escapes; invalid escapes are kept literally.
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.scheme)?;
        if !self.is_sip() {
            return f.write_str(&self.host);
        }
        if let Some(u) = &self.user {
            f.write_str(u)?;
            if let Some(p) = &self.password {
                write!(f, ":{p}")?;
            }
            f.write_str("@")?;
        }
        write_host(f, &self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write!(f, "{}", self.params)?;
        if let Some(h) = &self.headers {
            write!(f, "?{h}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_user_and_params() {
        let u = Uri::parse("sip:sips%3Auser%40example.com@example.net;transport=tcp").unwrap();
        assert_eq!(u.user_unescaped().as_deref(), Some("sips:user@example.com"));
        assert_eq!(u.params.get("transport"), Some("tcp"));
        assert_eq!(
            u.to_string(),
            "sip:sips%3Auser%40example.com@example.net;transport=tcp"
        );
    }

    #[test]
    fn semicolon_in_user_and_ipv6() {
        let u = Uri::parse("sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(u.user.as_deref(), Some("user;par=u%40example.net"));
        let v = Uri::parse("sip:[2001:db8::10]:5070").unwrap();
        assert_eq!(v.host, "2001:db8::10");
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.to_string(), "sip:[2001:db8::10]:5070");
    }

    #[test]
    fn opaque_schemes() {
        let u = Uri::parse("tel:+1-201-555-0123").unwrap();
        assert!(!u.is_sip());
        assert_eq!(u.to_string(), "tel:+1-201-555-0123");
        assert!(Uri::parse("sip:user@exa mple.com").is_err());
    }
}
