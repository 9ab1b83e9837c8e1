#![allow(dead_code, unreachable_pub)] // each test file uses a part of the harness

//! Headless Firefox (Debian's firefox-esr) driven over WebDriver BiDi, which Firefox speaks
//! itself on its remote debugging port (no geckodriver: Debian does not package it). A fresh
//! profile per run: a fake microphone (Firefox's own 1 kHz test tone), no permission prompt, a
//! mock audio output (without a sound server an AudioContext never leaves "suspended"), and
//! host addresses unobfuscated (no mDNS names in candidates).

use std::net::TcpStream;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

use crate::common::{free_port, scratch_dir};

pub struct Firefox {
    child: Child,
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    context: String,
    next: u64,
}

impl Drop for Firefox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const PREFS: &str = r#"user_pref("media.navigator.streams.fake", true);
user_pref("media.navigator.permission.disabled", true);
user_pref("media.peerconnection.ice.obfuscate_host_addresses", false);
user_pref("media.autoplay.default", 0);
user_pref("media.cubeb.force_mock_context", true);
user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("toolkit.telemetry.reportingpolicy.firstRun", false);
"#;

impl Firefox {
    pub fn start(name: &str) -> Self {
        let profile = scratch_dir(&format!("{name}-firefox-profile"));
        std::fs::write(profile.join("user.js"), PREFS).unwrap();
        let port = free_port();
        let child = Command::new("firefox-esr")
            .args(["--headless", "--no-remote", "--profile"])
            .arg(&profile)
            .arg(format!("--remote-debugging-port={port}"))
            .arg("about:blank")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("Debian's firefox-esr (./scripts/setup.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(30);
        let ws = loop {
            match tungstenite::connect(format!("ws://127.0.0.1:{port}/session")) {
                Ok((ws, _)) => break ws,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("Firefox's WebDriver BiDi did not answer: {e}"),
            }
        };
        if let MaybeTlsStream::Plain(s) = ws.get_ref() {
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        }
        let mut f = Self {
            child,
            ws,
            context: String::new(),
            next: 1,
        };
        // Crest's self-signed certificate, as an agent accepts it once.
        f.call(
            "session.new",
            serde_json::json!({"capabilities": {"alwaysMatch": {"acceptInsecureCerts": true}}}),
        );
        let tree = f.call("browsingContext.getTree", serde_json::json!({}));
        f.context = tree["contexts"][0]["context"]
            .as_str()
            .expect("a browsing context")
            .to_owned();
        f
    }

    /// One BiDi command: its result (events in between are skipped).
    pub fn call(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        let id = self.next;
        self.next += 1;
        let cmd = serde_json::json!({"id": id, "method": method, "params": params});
        self.ws.send(Message::Text(cmd.to_string().into())).unwrap();
        loop {
            let Message::Text(t) = self.ws.read().expect("a BiDi message") else {
                continue;
            };
            let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
            if v["id"].as_u64() == Some(id) {
                assert_eq!(v["type"], "success", "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    pub fn go(&mut self, url: &str) {
        let c = self.context.clone();
        self.call(
            "browsingContext.navigate",
            serde_json::json!({"context": c, "url": url, "wait": "complete"}),
        );
    }

    /// Evaluates `expression` in the page: its value (strings, numbers, booleans).
    pub fn eval(&mut self, expression: &str) -> serde_json::Value {
        let c = self.context.clone();
        let r = self.call(
            "script.evaluate",
            serde_json::json!({"expression": expression, "target": {"context": c},
                "awaitPromise": false}),
        );
        assert_eq!(r["type"], "success", "{expression}: {r}");
        r["result"]["value"].clone()
    }
}
