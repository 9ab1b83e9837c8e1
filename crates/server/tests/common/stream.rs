//! A blocking SIP-over-stream client for tests (TCP or TLS): frames by Content-Length.
#![allow(unreachable_pub)] // a test helper module shared by path

use std::io::{Read, Write};
use std::time::Duration;

pub struct SipStream<S: Read + Write> {
    pub s: S,
    buf: Vec<u8>,
}

impl<S: Read + Write> SipStream<S> {
    pub fn new(s: S) -> Self {
        Self { s, buf: Vec::new() }
    }

    pub fn send(&mut self, text: &str) {
        self.s.write_all(text.as_bytes()).unwrap();
        self.s.flush().unwrap();
    }

    /// The next whole message (or a bare CRLF pong, returned as "\r\n").
    pub fn recv(&mut self) -> String {
        loop {
            if self.buf.starts_with(b"\r\n") && !self.buf.starts_with(b"\r\n\r\n") {
                self.buf.drain(..2);
                return "\r\n".into();
            }
            if let Some(h) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..h]).to_string();
                let cl: usize = head
                    .lines()
                    .find_map(|l| {
                        let (n, v) = l.split_once(':')?;
                        (n.trim().eq_ignore_ascii_case("content-length") || n.trim() == "l")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                if self.buf.len() >= h + 4 + cl {
                    let msg: Vec<u8> = self.buf.drain(..h + 4 + cl).collect();
                    return String::from_utf8_lossy(&msg).into_owned();
                }
            }
            let mut tmp = [0u8; 8192];
            let n = self.s.read(&mut tmp).expect("read from crest");
            assert!(n > 0, "crest closed the connection");
            self.buf.extend_from_slice(&tmp[..n]);
        }
    }
}

/// A header's value from a message text.
pub fn header(msg: &str, name: &str) -> Option<String> {
    msg.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

pub fn status(msg: &str) -> Option<u16> {
    msg.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

pub const TIMEOUT: Duration = Duration::from_secs(10);
