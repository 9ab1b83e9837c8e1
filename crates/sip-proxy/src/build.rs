//! Writing messages: responses to a received request, and requests within a dialog leg.

use std::fmt::Write as _;
use std::net::SocketAddr;

use bytes::Bytes;

use crate::header::{HeaderName, Via};
use crate::message::{Framing, Message};
use crate::transport::Flow;

/// The standard reason phrase of a status code.
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => "Unknown",
    }
}

/// A response to `req`, sent back on `flow`: Via list (with `received`/`rport` on the top entry,
/// RFC 3581), From, To (with `to_tag` added when the request had none), Call-ID, CSeq, then
/// `extra` header lines (each ending in CRLF) and the body.
pub(crate) fn response(
    req: &Message,
    flow: &Flow,
    code: u16,
    to_tag: Option<&str>,
    extra: &str,
    body: Option<(&str, &[u8])>,
) -> Bytes {
    let mut out = String::with_capacity(512 + body.map_or(0, |b| b.1.len()));
    let _ = write!(out, "SIP/2.0 {code} {}\r\n", reason_phrase(code));
    for (i, v) in req.header_list(HeaderName::Via).iter().enumerate() {
        out.push_str("Via: ");
        if i == 0
            && let Ok(mut via) = Via::parse(v)
        {
            stamp_received(&mut via, flow.remote);
            let _ = write!(out, "{via}");
        } else {
            out.push_str(v);
        }
        out.push_str("\r\n");
    }
    for name in [
        HeaderName::From,
        HeaderName::To,
        HeaderName::CallId,
        HeaderName::CSeq,
    ] {
        if let Some(v) = req.header(name) {
            out.push_str(name.canonical().unwrap_or_default());
            out.push_str(": ");
            out.push_str(&v);
            if name == HeaderName::To
                && let Some(tag) = to_tag
                && req.to_hdr().is_some_and(|t| t.tag().is_none())
            {
                out.push_str(";tag=");
                out.push_str(tag);
            }
            out.push_str("\r\n");
        }
    }
    out.push_str(extra);
    finish(out, body)
}

fn stamp_received(via: &mut Via, source: SocketAddr) {
    let ip = source.ip().to_string();
    if via.host != ip {
        via.params.set("received", Some(ip));
    }
    if via.params.has("rport") {
        via.params.set("rport", Some(source.port().to_string()));
    }
}

/// Appends Content-Type/Content-Length and the body, and freezes the message.
pub(crate) fn finish(mut out: String, body: Option<(&str, &[u8])>) -> Bytes {
    match body {
        Some((ctype, b)) if !b.is_empty() => {
            let _ = write!(
                out,
                "Content-Type: {ctype}\r\nContent-Length: {}\r\n\r\n",
                b.len()
            );
            let mut bytes = out.into_bytes();
            bytes.extend_from_slice(b);
            Bytes::from(bytes)
        }
        _ => {
            out.push_str("Content-Length: 0\r\n\r\n");
            Bytes::from(out)
        }
    }
}

/// Parses a message Crest itself wrote (always well formed).
pub(crate) fn own(data: Bytes) -> Message {
    // Every message Crest writes has a start line, CRLF-terminated headers and Content-Length.
    Message::parse(data, Framing::Datagram).expect("messages Crest writes are well formed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_stamps_received_and_rport_and_adds_to_tag() {
        let req = own(Bytes::from_static(
            b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP phone.example;branch=z9hG4bK1;rport\r\n\
              Via: SIP/2.0/UDP p2;branch=z9hG4bK2\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\n\
              Call-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        ));
        let flow = Flow::udp("192.0.2.7:40000".parse().unwrap());
        let r = own(response(&req, &flow, 200, Some("t9"), "", None));
        let via = r.top_via().unwrap();
        assert_eq!(via.params.get("received"), Some("192.0.2.7"));
        assert_eq!(via.params.get("rport"), Some("40000"));
        assert_eq!(r.header_list(HeaderName::Via).len(), 2);
        assert_eq!(r.to_hdr().unwrap().tag(), Some("t9"));
        assert_eq!(r.status(), Some(200));
    }
}
