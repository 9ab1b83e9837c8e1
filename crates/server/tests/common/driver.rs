#![allow(dead_code, unreachable_pub)] // each test file uses a part of the harness

//! Headless Chromium driven over WebDriver by Debian's chromium-driver, for the pages crest
//! serves (the wallboard, the agent desktop).

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use crate::common::{free_port, wait_for};

/// A ChromeDriver (Debian's chromium-driver) driving headless Chromium over WebDriver.
pub struct Driver {
    child: std::process::Child,
    port: u16,
    session: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// With more Chromium switches (`--use-fake-device-for-media-stream`, …).
    pub fn start_with(extra: &[&str]) -> Self {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("Debian's chromium-driver (./scripts/setup.sh installs it)");
        let mut d = Self {
            child,
            port,
            session: String::new(),
        };
        wait_for("chromedriver", || d.call("GET", "/status", None).is_ok());
        let mut args = vec![
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1280,800",
        ];
        args.extend_from_slice(extra);
        let caps = serde_json::json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "binary": "/usr/bin/chromium", "args": args}}}})
        .to_string();
        let v = d.call("POST", "/session", Some(&caps)).expect("a session");
        d.session = v["value"]["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        d
    }

    /// One WebDriver command: its JSON answer.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> std::io::Result<serde_json::Value> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        let body = body.unwrap_or("");
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
        // ChromeDriver keeps the connection open: read the head, then Content-Length bytes.
        let mut out = Vec::new();
        let mut buf = [0u8; 65536];
        let body_at = loop {
            let n = s.read(&mut buf)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            out.extend_from_slice(&buf[..n]);
            if let Some(p) = out.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
        };
        let head = String::from_utf8_lossy(&out[..body_at]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while out.len() < body_at + len {
            let n = s.read(&mut buf)?;
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        serde_json::from_slice(&out[body_at..]).map_err(std::io::Error::other)
    }

    pub fn go(&self, url: &str) {
        let body = serde_json::json!({ "url": url }).to_string();
        self.call(
            "POST",
            &format!("/session/{}/url", self.session),
            Some(&body),
        )
        .unwrap();
    }

    pub fn source(&self) -> String {
        let v = self
            .call("GET", &format!("/session/{}/source", self.session), None)
            .unwrap();
        v["value"].as_str().unwrap_or_default().to_owned()
    }

    /// Runs `script` in the page; its return value.
    pub fn script(&self, script: &str) -> serde_json::Value {
        let body = serde_json::json!({ "script": script, "args": [] }).to_string();
        let v = self
            .call(
                "POST",
                &format!("/session/{}/execute/sync", self.session),
                Some(&body),
            )
            .unwrap();
        v["value"].clone()
    }

    pub fn screenshot(&self) -> Vec<u8> {
        let v = self
            .call(
                "GET",
                &format!("/session/{}/screenshot", self.session),
                None,
            )
            .unwrap();
        base64(v["value"].as_str().unwrap())
    }
}

fn base64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let bytes: Vec<u8> = s
        .bytes()
        .filter(|c| *c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, c)| n | (u32::from(val(*c)) << (18 - 6 * i)));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}
