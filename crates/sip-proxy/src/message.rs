//! Zero-copy SIP message parsing (RFC 3261 §7, §25).
//!
//! [`Message::parse`] frames one message (start line, header lines, body by Content-Length) and
//! records byte ranges into the received buffer; nothing is copied and no header value is
//! interpreted until asked for. [`Message::validate`] then applies the checks a server must make
//! before acting on a request (required headers, single-valued headers, scalar ranges, CSeq method,
//! Request-URI syntax), each failing with the status code the sender gets back.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use bytes::Bytes;

use crate::header::{self, HeaderName, NameAddr};
use crate::uri::Uri;

/// The largest message Crest accepts; longer ones are refused with 513 where framing allows.
pub const MAX_MESSAGE_SIZE: usize = 65_535;

/// What is wrong with a message, and the status a request that has it is answered with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The header section does not end with an empty line.
    #[error("message has no end of headers")]
    Incomplete,
    /// The start line is neither a Request-Line nor a Status-Line.
    #[error("malformed start line: {0}")]
    StartLine(&'static str),
    /// A header line has no colon or a name that is not a token.
    #[error("malformed header line {0}")]
    HeaderLine(usize),
    /// The SIP version is not 2.0 (answered 505).
    #[error("unsupported SIP version")]
    Version,
    /// Content-Length is missing on a stream, negative, not a number, repeated, or larger than
    /// the data.
    #[error("bad Content-Length: {0}")]
    ContentLength(&'static str),
    /// A header the method requires is absent.
    #[error("missing {0} header")]
    Missing(&'static str),
    /// A header that may appear once appears more than once.
    #[error("{0} header appears more than once")]
    Repeated(&'static str),
    /// A header value does not follow its grammar.
    #[error("invalid {0} header")]
    Invalid(&'static str),
    /// The CSeq method is not the request method.
    #[error("CSeq method does not match the request method")]
    CseqMismatch,
    /// The message is larger than [`MAX_MESSAGE_SIZE`].
    #[error("message too large")]
    TooLarge,
}

impl ParseError {
    /// The status code a request with this defect is answered with.
    pub fn status(&self) -> u16 {
        match self {
            Self::Version => 505,
            Self::TooLarge => 513,
            _ => 400,
        }
    }
}

/// The start line of a request or a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    /// `Method SP Request-URI SP SIP-Version`.
    Request {
        /// The method token.
        method: Range<usize>,
        /// The Request-URI as written.
        uri: Range<usize>,
        /// The version token.
        version: Range<usize>,
    },
    /// `SIP-Version SP Status-Code SP Reason-Phrase`.
    Response {
        /// The status code.
        code: u16,
        /// The reason phrase (may be empty).
        reason: Range<usize>,
    },
}

/// One header line: its name and the range of its value (leading and trailing white space
/// removed, folding still in place).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The header's name, with compact forms mapped to the full name.
    pub name: HeaderName,
    name_range: Range<usize>,
    value: Range<usize>,
    folded: bool,
}

/// A parsed SIP message that borrows nothing: ranges into a shared [`Bytes`] buffer.
#[derive(Clone)]
pub struct Message {
    buf: Bytes,
    /// A defect found while framing that still leaves a request answerable (a malformed
    /// Request-Line, bad Content-Length in a datagram); [`Message::validate`] reports it first.
    defect: Option<ParseError>,
    start: StartLine,
    headers: Vec<Header>,
    body: Range<usize>,
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("start", &self.start_line_str())
            .field("headers", &self.headers.len())
            .field("body", &self.body.len())
            .finish()
    }
}

/// How the message arrived, which decides what a missing Content-Length means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// A datagram: the body runs to Content-Length, or to the end when it is absent; octets
    /// beyond Content-Length are ignored (RFC 3261 §18.3).
    Datagram,
    /// A stream: Content-Length is mandatory.
    Stream,
}

fn is_token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&c)
}

pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&c| is_token_char(c))
}

fn trim_range(buf: &[u8], mut r: Range<usize>) -> Range<usize> {
    while r.start < r.end && matches!(buf[r.start], b' ' | b'\t' | b'\r' | b'\n') {
        r.start += 1;
    }
    while r.end > r.start && matches!(buf[r.end - 1], b' ' | b'\t' | b'\r' | b'\n') {
        r.end -= 1;
    }
    r
}

/// Where the header section of `buf` ends (index just past the empty line), if it does.
/// Accepts bare LF line ends as RFC 3261 §7.5 asks of a tolerant receiver.
pub fn header_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(p) = buf.get(i..)?.iter().position(|&c| c == b'\n') {
        let nl = i + p;
        match buf.get(nl + 1) {
            Some(b'\n') => return Some(nl + 2),
            Some(b'\r') if buf.get(nl + 2) == Some(&b'\n') => return Some(nl + 3),
            Some(_) => i = nl + 1,
            None => return None,
        }
    }
    None
}

/// For a stream transport: the length of the first whole message in `buf` (headers plus
/// Content-Length octets), `Ok(None)` if more data is needed, or an error if the message cannot
/// be framed (no or bad Content-Length), after which the stream cannot be resynchronised.
pub fn stream_frame_len(buf: &[u8]) -> Result<Option<usize>, ParseError> {
    let Some(hend) = header_end(buf) else {
        return if buf.len() > MAX_MESSAGE_SIZE {
            Err(ParseError::TooLarge)
        } else {
            Ok(None)
        };
    };
    let mut content_length = None;
    for line in buf[..hend].split(|&c| c == b'\n') {
        let Some(colon) = line.iter().position(|&c| c == b':') else {
            continue;
        };
        if line.first().is_some_and(|c| *c == b' ' || *c == b'\t') {
            continue; // a folded continuation line
        }
        let name = trim_range(line, 0..colon);
        if HeaderName::from_bytes(&line[name]) == HeaderName::ContentLength {
            if content_length.is_some() {
                return Err(ParseError::Repeated("Content-Length"));
            }
            let v = trim_range(line, colon + 1..line.len());
            content_length = Some(
                parse_u32(&line[v]).ok_or(ParseError::ContentLength("not a number"))? as usize,
            );
        }
    }
    let n = content_length.ok_or(ParseError::ContentLength("missing on a stream"))?;
    if hend + n > MAX_MESSAGE_SIZE {
        return Err(ParseError::TooLarge);
    }
    Ok((buf.len() >= hend + n).then_some(hend + n))
}

impl Message {
    /// Frames and indexes one message. With [`Framing::Datagram`], trailing octets past
    /// Content-Length are ignored.
    pub fn parse(buf: Bytes, framing: Framing) -> Result<Self, ParseError> {
        let (msg, _) = Self::parse_prefix(buf, framing)?;
        Ok(msg)
    }

    /// Frames one message at the start of `buf`, returning it and the number of octets it used
    /// (for a stream, the rest belongs to the next message).
    pub fn parse_prefix(buf: Bytes, framing: Framing) -> Result<(Self, usize), ParseError> {
        // Tolerate leading CRLFs (RFC 3261 §7.5).
        let skip = buf
            .iter()
            .position(|&c| c != b'\r' && c != b'\n')
            .unwrap_or(buf.len());
        let hend = match header_end(&buf[skip..]) {
            Some(h) => h + skip,
            // A datagram whose header section ends with the datagram (no empty line): the
            // datagram boundary frames it, so take it rather than drop an answerable request.
            None if framing == Framing::Datagram && buf.ends_with(b"\n") => buf.len(),
            None => return Err(ParseError::Incomplete),
        };
        if hend > MAX_MESSAGE_SIZE {
            return Err(ParseError::TooLarge);
        }
        let b = &buf[..];
        let line_end = b[skip..hend]
            .iter()
            .position(|&c| c == b'\n')
            .map(|p| p + skip)
            .ok_or(ParseError::StartLine("empty"))?;
        let sl_end = if line_end > skip && b[line_end - 1] == b'\r' {
            line_end - 1
        } else {
            line_end
        };
        let mut defect = None;
        let start = match parse_start_line(b, skip..sl_end) {
            Ok(s) => s,
            Err(e) if !b[skip..].starts_with(b"SIP/") && framing == Framing::Datagram => {
                // Keep going so that the request can still be answered with 400 or 505.
                let l = &b[skip..sl_end];
                let sp1 = l.iter().position(|&c| c == b' ').unwrap_or(l.len());
                let sp2 = l
                    .iter()
                    .rposition(|&c| c == b' ')
                    .filter(|&p| p > sp1)
                    .unwrap_or(l.len());
                defect = Some(e);
                StartLine::Request {
                    method: skip..skip + sp1,
                    uri: (skip + sp1 + 1).min(sl_end)..skip + sp2,
                    version: (skip + sp2 + 1).min(sl_end)..sl_end,
                }
            }
            Err(e) => return Err(e),
        };

        let mut headers = Vec::with_capacity(16);
        let mut pos = line_end + 1;
        let mut content_length: Option<usize> = None;
        while pos < hend {
            // Find the end of this header including folded continuation lines.
            let mut end = pos;
            let mut folded = false;
            loop {
                let nl = match b[end..hend].iter().position(|&c| c == b'\n') {
                    Some(p) => end + p,
                    None => hend,
                };
                end = nl + 1;
                if end < hend && matches!(b[end], b' ' | b'\t') {
                    folded = true;
                    continue;
                }
                break;
            }
            let line = trim_range(b, pos..end.min(hend));
            if line.is_empty() {
                break;
            }
            let colon = b[line.clone()]
                .iter()
                .position(|&c| c == b':')
                .map(|p| p + line.start)
                .ok_or(ParseError::HeaderLine(headers.len() + 1))?;
            let name_range = trim_range(b, line.start..colon);
            if !is_token(&b[name_range.clone()]) {
                return Err(ParseError::HeaderLine(headers.len() + 1));
            }
            let name = HeaderName::from_bytes(&b[name_range.clone()]);
            let value = trim_range(b, colon + 1..line.end);
            if name == HeaderName::ContentLength {
                let v = &b[value.clone()];
                let problem = if content_length.is_some() {
                    Some(ParseError::Repeated("Content-Length"))
                } else if v.first() == Some(&b'-') {
                    Some(ParseError::ContentLength("negative"))
                } else {
                    match parse_u32(v) {
                        Some(n) => {
                            content_length = Some(n as usize);
                            None
                        }
                        None => Some(ParseError::ContentLength("not a number")),
                    }
                };
                if let Some(p) = problem {
                    if framing == Framing::Stream {
                        return Err(p);
                    }
                    defect.get_or_insert(p);
                }
            }
            headers.push(Header {
                name,
                name_range,
                value,
                folded,
            });
            pos = end;
        }
        let available = buf.len() - hend;
        let body_len = match (content_length, framing) {
            (Some(_), Framing::Datagram) if defect.is_some() => available,
            (Some(n), Framing::Datagram) if n > available => {
                defect.get_or_insert(ParseError::ContentLength("larger than the datagram"));
                available
            }
            (Some(n), Framing::Stream) if n > available => return Err(ParseError::Incomplete),
            (Some(n), _) => n,
            (None, Framing::Datagram) => available,
            (None, Framing::Stream) => {
                return Err(ParseError::ContentLength("missing on a stream"));
            }
        };
        if hend + body_len > MAX_MESSAGE_SIZE {
            return Err(ParseError::TooLarge);
        }
        let used = hend + body_len;
        Ok((
            Self {
                buf,
                defect,
                start,
                headers,
                body: hend..used,
            },
            used,
        ))
    }

    /// The start line.
    pub fn start_line(&self) -> &StartLine {
        &self.start
    }

    fn start_line_str(&self) -> Cow<'_, str> {
        match &self.start {
            StartLine::Request { method, uri, .. } => Cow::Owned(format!(
                "{} {}",
                self.text(method.clone()),
                self.text(uri.clone())
            )),
            StartLine::Response { code, .. } => Cow::Owned(code.to_string()),
        }
    }

    fn text(&self, r: Range<usize>) -> &str {
        std::str::from_utf8(&self.buf[r]).unwrap_or("")
    }

    /// Whether this is a request.
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// The request method, or `None` for a response.
    pub fn method(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { method, .. } => Some(self.text(method.clone())),
            StartLine::Response { .. } => None,
        }
    }

    /// The Request-URI text, or `None` for a response.
    pub fn request_uri_str(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { uri, .. } => Some(self.text(uri.clone())),
            StartLine::Response { .. } => None,
        }
    }

    /// The status code, or `None` for a request.
    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    /// The reason phrase of a response.
    pub fn reason(&self) -> Option<&str> {
        match &self.start {
            StartLine::Response { reason, .. } => Some(self.text(reason.clone())),
            StartLine::Request { .. } => None,
        }
    }

    /// All header lines in order.
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// The header's name as it was written.
    pub fn header_name_str(&self, h: &Header) -> &str {
        self.text(h.name_range.clone())
    }

    /// A header line's value, with folding replaced by a single space.
    pub fn value<'a>(&'a self, h: &Header) -> Cow<'a, str> {
        let raw = String::from_utf8_lossy(&self.buf[h.value.clone()]);
        if !h.folded {
            return raw;
        }
        let mut out = String::with_capacity(raw.len());
        let mut ws = false;
        for c in raw.chars() {
            if matches!(c, '\r' | '\n' | ' ' | '\t') {
                ws = true;
            } else {
                if ws && !out.is_empty() {
                    out.push(' ');
                }
                ws = false;
                out.push(c);
            }
        }
        Cow::Owned(out)
    }

    /// The value of the first header with this name.
    pub fn header(&self, name: HeaderName) -> Option<Cow<'_, str>> {
        self.headers
            .iter()
            .find(|h| h.name == name)
            .map(|h| self.value(h))
    }

    /// Every comma-separated element of every header with this name, in order (for Via, Route,
    /// Record-Route, Contact and other list headers).
    pub fn header_list(&self, name: HeaderName) -> Vec<Cow<'_, str>> {
        let mut out = Vec::new();
        for h in self.headers.iter().filter(|h| h.name == name) {
            match self.value(h) {
                Cow::Borrowed(v) => out.extend(header::split_list(v).map(Cow::Borrowed)),
                Cow::Owned(v) => {
                    out.extend(header::split_list(&v).map(|s| Cow::Owned(s.to_owned())))
                }
            }
        }
        out
    }

    /// How many header lines carry this name.
    pub fn count(&self, name: HeaderName) -> usize {
        self.headers.iter().filter(|h| h.name == name).count()
    }

    /// The message body.
    pub fn body(&self) -> Bytes {
        self.buf.slice(self.body.clone())
    }

    /// The whole message as received (up to the end of the body).
    pub fn as_bytes(&self) -> Bytes {
        self.buf.slice(..self.body.end)
    }

    /// The Call-ID value.
    pub fn call_id(&self) -> Option<Cow<'_, str>> {
        self.header(HeaderName::CallId)
    }

    /// The top Via, parsed.
    pub fn top_via(&self) -> Option<header::Via> {
        let v = self.header_list(HeaderName::Via).into_iter().next()?;
        header::Via::parse(&v).ok()
    }

    /// The CSeq, parsed.
    pub fn cseq(&self) -> Option<header::CSeq> {
        header::CSeq::parse(&self.header(HeaderName::CSeq)?).ok()
    }

    /// The From header, parsed.
    pub fn from_hdr(&self) -> Option<NameAddr> {
        NameAddr::parse(&self.header(HeaderName::From)?).ok()
    }

    /// The To header, parsed.
    pub fn to_hdr(&self) -> Option<NameAddr> {
        NameAddr::parse(&self.header(HeaderName::To)?).ok()
    }

    /// Max-Forwards, if present and numeric.
    pub fn max_forwards(&self) -> Option<u32> {
        self.header(HeaderName::MaxForwards)
            .and_then(|v| parse_u32(v.as_bytes()))
    }

    /// The checks a server makes before acting on a message; the error names the response.
    pub fn validate(&self) -> Result<(), ParseError> {
        if let Some(d) = &self.defect {
            return Err(d.clone());
        }
        const SINGLE: [(HeaderName, &str); 6] = [
            (HeaderName::From, "From"),
            (HeaderName::To, "To"),
            (HeaderName::CallId, "Call-ID"),
            (HeaderName::CSeq, "CSeq"),
            (HeaderName::MaxForwards, "Max-Forwards"),
            (HeaderName::ContentType, "Content-Type"),
        ];
        for (name, label) in SINGLE {
            if self.count(name) > 1 {
                return Err(ParseError::Repeated(label));
            }
        }
        for (name, label) in [
            (HeaderName::Via, "Via"),
            (HeaderName::From, "From"),
            (HeaderName::To, "To"),
            (HeaderName::CallId, "Call-ID"),
            (HeaderName::CSeq, "CSeq"),
        ] {
            if self.count(name) == 0 {
                return Err(ParseError::Missing(label));
            }
        }
        let cseq = self.cseq().ok_or(ParseError::Invalid("CSeq"))?;
        for via in self.header_list(HeaderName::Via) {
            let via = header::Via::parse(&via).map_err(|_| ParseError::Invalid("Via"))?;
            if via.version != "2.0" {
                return Err(ParseError::Version);
            }
        }
        for (name, label) in [(HeaderName::From, "From"), (HeaderName::To, "To")] {
            if let Some(v) = self.header(name) {
                NameAddr::parse(&v).map_err(|_| ParseError::Invalid(label))?;
            }
        }
        for (name, label) in [
            (HeaderName::Expires, "Expires"),
            (HeaderName::MinExpires, "Min-Expires"),
        ] {
            if let Some(v) = self.header(name)
                && parse_u32(v.as_bytes()).is_none()
            {
                return Err(ParseError::Invalid(label));
            }
        }
        if let Some(v) = self.header(HeaderName::MaxForwards) {
            match parse_u32(v.as_bytes()) {
                Some(n) if n <= 255 => {}
                _ => return Err(ParseError::Invalid("Max-Forwards")),
            }
        }
        match &self.start {
            StartLine::Request { method, uri, .. } => {
                if cseq.method.as_bytes() != &self.buf[method.clone()] {
                    return Err(ParseError::CseqMismatch);
                }
                let uri_text = self.text(uri.clone());
                if uri_text.is_empty() || uri_text.starts_with('<') {
                    return Err(ParseError::StartLine("Request-URI in <>"));
                }
                if Uri::is_sip_scheme(uri_text) {
                    let uri = Uri::parse(uri_text)
                        .map_err(|_| ParseError::StartLine("bad Request-URI"))?;
                    if uri.headers.is_some() {
                        return Err(ParseError::StartLine("headers in the Request-URI"));
                    }
                }
                for c in self.header_list(HeaderName::Contact) {
                    if c.trim() != "*" {
                        NameAddr::parse(&c).map_err(|_| ParseError::Invalid("Contact"))?;
                    }
                }
            }
            StartLine::Response { .. } => {}
        }
        Ok(())
    }

    /// Writes the message in canonical form: full header names, unfolded values, each header
    /// on its own line, the body unchanged.
    pub fn to_canonical(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.end + 64);
        match &self.start {
            StartLine::Request {
                method,
                uri,
                version,
            } => {
                out.extend_from_slice(&self.buf[method.clone()]);
                out.push(b' ');
                out.extend_from_slice(&self.buf[uri.clone()]);
                out.push(b' ');
                out.extend_from_slice(&self.buf[version.clone()]);
            }
            StartLine::Response { code, reason } => {
                out.extend_from_slice(format!("SIP/2.0 {code} ").as_bytes());
                out.extend_from_slice(&self.buf[reason.clone()]);
            }
        }
        out.extend_from_slice(b"\r\n");
        for h in &self.headers {
            let name = h
                .name
                .canonical()
                .unwrap_or_else(|| self.header_name_str(h));
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(self.value(h).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.buf[self.body.clone()]);
        out
    }
}

/// Parses a decimal that fits in u32 (no sign, no white space).
pub fn parse_u32(v: &[u8]) -> Option<u32> {
    if v.is_empty() || v.len() > 10 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

fn parse_start_line(b: &[u8], line: Range<usize>) -> Result<StartLine, ParseError> {
    let l = &b[line.clone()];
    if l.starts_with(b"SIP/") {
        // Status-Line: SIP-Version SP Status-Code SP Reason-Phrase
        let sp1 = l
            .iter()
            .position(|&c| c == b' ')
            .ok_or(ParseError::StartLine("status line"))?;
        if &l[..sp1] != b"SIP/2.0" {
            return Err(ParseError::Version);
        }
        let rest = &l[sp1 + 1..];
        let sp2 = rest.iter().position(|&c| c == b' ').unwrap_or(rest.len());
        let code = parse_u32(&rest[..sp2])
            .filter(|c| (100..=699).contains(c))
            .ok_or(ParseError::StartLine("status code"))?;
        let rs = line.start + sp1 + 1 + (sp2 + 1).min(rest.len());
        return Ok(StartLine::Response {
            code: code as u16,
            reason: rs..line.end,
        });
    }
    // Request-Line: exactly two single spaces, no trailing space.
    let sp: Vec<usize> = l
        .iter()
        .enumerate()
        .filter(|(_, c)| **c == b' ' || **c == b'\t')
        .map(|(i, _)| i)
        .collect();
    if sp.len() < 2 {
        return Err(ParseError::StartLine("request line"));
    }
    let (first, last) = (sp[0], sp[sp.len() - 1]);
    if !is_token(&l[..first]) {
        return Err(ParseError::StartLine("method"));
    }
    let version = &l[last + 1..];
    if version.is_empty() {
        return Err(ParseError::StartLine("trailing white space"));
    }
    if !version.starts_with(b"SIP/") {
        return Err(ParseError::StartLine("version"));
    }
    if version != b"SIP/2.0" {
        return Err(ParseError::Version);
    }
    if sp.len() != 2 {
        return Err(ParseError::StartLine("white space in the Request-URI"));
    }
    Ok(StartLine::Request {
        method: line.start..line.start + first,
        uri: line.start + first + 1..line.start + last,
        version: line.start + last + 1..line.end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Message, ParseError> {
        Message::parse(Bytes::copy_from_slice(s.as_bytes()), Framing::Datagram)
    }

    #[test]
    fn compact_folded_and_comma_joined() {
        let m = parse(
            "BYE sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h1;branch=z9hG4bK1, SIP/2.0/TCP h2;branch=z9hG4bK2\r\n\
             f: <sip:x@y>;tag=1\r\nt: <sip:a@b>\r\n ;tag=2\r\ni: abc\r\nCSeq: 2 BYE\r\nl: 0\r\n\r\n",
        )
        .unwrap();
        m.validate().unwrap();
        let vias = m.header_list(HeaderName::Via);
        assert_eq!(vias.len(), 2);
        assert_eq!(
            header::Via::parse(&vias[1]).unwrap().branch(),
            Some("z9hG4bK2")
        );
        assert_eq!(m.to_hdr().unwrap().tag(), Some("2"));
        assert_eq!(m.call_id().unwrap(), "abc");
    }

    #[test]
    fn stream_needs_content_length_and_waits_for_body() {
        let full = "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 4\r\n\r\nabcdNEXT";
        let (m, used) =
            Message::parse_prefix(Bytes::from_static(full.as_bytes()), Framing::Stream).unwrap();
        assert_eq!(&m.body()[..], b"abcd");
        assert_eq!(&full[used..], "NEXT");
        let short = "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 9\r\n\r\nabcd";
        assert_eq!(
            Message::parse_prefix(Bytes::from_static(short.as_bytes()), Framing::Stream)
                .unwrap_err(),
            ParseError::Incomplete
        );
    }
}
