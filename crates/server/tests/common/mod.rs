//! Starts a real `crest` process on free ports and drives it with real peers (sipp, raw
//! sockets). Every process is bounded by a timeout and killed on drop.
#![allow(dead_code, unreachable_pub)] // each test file uses a different part of the harness

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The HA1 of alice/crest/secret and bob/crest/secret (MD5 and SHA-256).
pub const USERS: &str = "
  users:
    - name: alice
      ha1_md5: 478a21be558e443c6ae3000c82c55aa2
      ha1_sha256: e4bd3e35e46d66ec17bbbdb243d7585e4005e6d7f5bdf06bc0dbda6be0cf613e
    - name: bob
      ha1_md5: a3ea0a68e34f0084984d744b9b38dca3
      ha1_sha256: 2a65f3e49cc48ea18621e2b78bc9e5cf581981f8058e962a8df62c1c2a1846d3
";

/// One agent, alice, in one pool taking the refund queue: ring 20 s, wrap-up 1 s (the agent
/// desktop's tests).
pub const ONE_AGENT_ACD: &str = "ring_secs: 20\nwrap_up_secs: 1\nmax_misses: 3\n\
pools:\n  - {name: office, neighbours: []}\n\
queues:\n  - {name: refund, skill: refund, pool: office}\n\
agents:\n  - {name: alice, pool: office, skills: {refund: 0.9}, rating: 0.9}\n";

impl Crest {
    /// Waits for the call's media to end, then checks that nothing of a browser leg stays:
    /// the legs calls hold, the shared WebRTC socket's routes and the addresses it learnt.
    pub fn assert_browser_legs_gone(&self) {
        wait_for("the call's media gone", || {
            self.metric("crest_media_calls_active") == 0
        });
        for m in [
            "crest_media_browser_legs",
            "crest_media_browser_routes",
            "crest_media_browser_addresses",
        ] {
            assert_eq!(self.metric(m), 0, "{m} after the call");
        }
    }

    /// What agent pages reported hearing (`?test=audio`), from the log: each report's
    /// `peak_hz`, `peak_db`, `db_1k` and `db_2k`.
    pub fn audio_checks(&self) -> Vec<std::collections::HashMap<String, f64>> {
        self.log()
            .lines()
            .filter(|l| l.contains("agent page audio check"))
            .map(|l| {
                ["peak_hz", "peak_db", "db_1k", "db_2k"]
                    .into_iter()
                    .filter_map(|k| {
                        let v = l.split(&format!("{k}=")).nth(1)?;
                        Some((k.to_owned(), v.split_whitespace().next()?.parse().ok()?))
                    })
                    .collect()
            })
            .collect()
    }
}

/// A port free for both UDP and TCP right now.
pub fn free_port() -> u16 {
    loop {
        let t = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = t.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", p)).is_ok()
            && UdpSocket::bind(("127.0.0.1", p + 1)).is_ok()
            && TcpListener::bind(("127.0.0.1", p + 1)).is_ok()
        {
            return p;
        }
    }
}

pub struct Crest {
    pub child: Child,
    pub sip: u16,
    pub tls: u16,
    pub admin: u16,
    pub dir: PathBuf,
}

pub fn scratch_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("crest-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

impl Crest {
    /// Starts crest with `sip_extra` appended under `sip:` (indented two spaces).
    pub fn start(name: &str, sip_extra: &str) -> Self {
        Self::start_with(name, sip_extra, "")
    }

    pub fn start_with(name: &str, sip_extra: &str, top_extra: &str) -> Self {
        Self::start_full(name, sip_extra, top_extra, "")
    }

    /// With `admin_extra` under `admin:` (indented two spaces). The index database (API
    /// tokens, the audit log) is the test's own unless `top_extra` names one.
    pub fn start_full(name: &str, sip_extra: &str, top_extra: &str, admin_extra: &str) -> Self {
        let dir = scratch_dir(name);
        let sip = free_port();
        let tls = sip + 1;
        let admin = free_port();
        let index = format!(
            "recording:\n  index: \"sqlite:{}/index.db\"\n",
            dir.display()
        );
        let top_extra = if !top_extra.contains("recording:\n") {
            format!("{top_extra}{index}")
        } else if !top_extra.contains("  index:") {
            top_extra.replacen("recording:\n", &index, 1)
        } else {
            top_extra.to_owned()
        };
        let cfg = format!(
            "listen:\n  udp: \"127.0.0.1:{sip}\"\n  tcp: \"127.0.0.1:{sip}\"\n  tls: \"127.0.0.1:{tls}\"\n\
             admin:\n  listen: \"127.0.0.1:{admin}\"\n{admin_extra}log:\n  level: debug\n{top_extra}\
             sip:\n  auth:\n    algorithms: [MD5, SHA-256]\n{USERS}{sip_extra}"
        );
        let path = dir.join("crest.yaml");
        std::fs::write(&path, cfg).unwrap();
        let log = std::fs::File::create(dir.join("crest.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_crest"))
            .args(["run", "--config"])
            .arg(&path)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("crest starts");
        let c = Self {
            child,
            sip,
            tls,
            admin,
            dir,
        };
        if admin_extra.contains("tls: true") {
            wait_for("crest's HTTPS admin", || {
                c.curl(&["/healthz"]).is_some_and(|b| b.contains("ok"))
            });
        } else {
            c.wait_ready();
        }
        c
    }

    /// curl -sk on the HTTPS admin listener: `args` end with the path; the body when curl
    /// succeeds.
    pub fn curl(&self, args: &[&str]) -> Option<String> {
        let (path, rest) = args.split_last()?;
        let out = Command::new("curl")
            .args(["-sk", "--max-time", "5"])
            .args(rest)
            .arg(format!("https://127.0.0.1:{}{path}", self.admin))
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.http_get("/healthz").is_some_and(|b| b.contains("ok")) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("crest did not start: {}", self.log());
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.sip))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("crest.log")).unwrap_or_default()
    }

    /// GET on the admin server; the body.
    pub fn http_get(&self, path: &str) -> Option<String> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.admin)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())
    }

    /// An HTTP request to the admin server: (status, Content-Type, body).
    pub fn http(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, String, String) {
        let (status, head, body) = self.http_raw(method, path, token, body);
        let ctype = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-type:")
                    .map(|v| v.trim().to_owned())
            })
            .unwrap_or_default();
        (status, ctype, String::from_utf8_lossy(&body).into_owned())
    }

    /// An HTTP request to the admin server: (status, the response's head, its body's bytes).
    pub fn http_raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, String, Vec<u8>) {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.admin)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        let body = body.unwrap_or("");
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        let split = out
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(out.len(), |p| p + 4);
        let head = String::from_utf8_lossy(&out[..split]).into_owned();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (status, head, out[split..].to_vec())
    }

    /// `crest ARGS --config` this crest's configuration.
    pub fn cli(&self, args: &[&str]) -> Output {
        crest_cli(&self.dir.join("crest.yaml"), args)
    }

    /// A new API token with `role`, made by `crest token create` on this crest's config.
    pub fn token(&self, name: &str, role: &str) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_crest"))
            .args([
                "token", "create", "--name", name, "--role", role, "--config",
            ])
            .arg(self.dir.join("crest.yaml"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// One metric's value from /metrics.
    pub fn metric(&self, name: &str) -> u64 {
        let body = self.http_get("/metrics").unwrap_or_default();
        body.lines()
            .find_map(|l| {
                l.strip_prefix(&format!("{name} "))
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or_else(|| panic!("metric {name} missing"))
    }
}

impl Drop for Crest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The sipp scenarios shipped with the tests.
pub fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(name)
}

/// Runs sipp to completion (bounded by `-timeout` and a kill after `limit`).
pub fn sipp(args: &[&str], limit: Duration) -> Output {
    let mut cmd = Command::new("sipp");
    cmd.args(args)
        .args([
            "-nostdin",
            "-timeout",
            &format!("{}s", limit.as_secs()),
            "-timeout_error",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().expect("sipp is installed (scripts/setup.sh)");
    child.wait_with_output().expect("sipp runs")
}

/// Starts sipp in the background (a UAS), killed on drop.
pub struct Background(pub Child);

impl Background {
    pub fn sipp(args: &[&str], limit: Duration) -> Self {
        let child = Command::new("sipp")
            .args(args)
            .args(["-nostdin", "-timeout", &format!("{}s", limit.as_secs())])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sipp is installed (scripts/setup.sh)");
        std::thread::sleep(Duration::from_millis(300));
        Self(child)
    }

    /// Waits for it to finish; its output.
    pub fn finish(mut self, limit: Duration) -> Output {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let child = std::mem::replace(&mut self.0, Command::new("true").spawn().unwrap());
        child.wait_with_output().unwrap()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn assert_ok(what: &str, out: &Output, crest: &Crest) {
    assert!(
        out.status.success(),
        "{what}: sipp exited with {:?}\nstdout:\n{}\nstderr:\n{}\ncrest log:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        crest.log()
    );
}

/// Writes a scenario template with `@CODE@` filled in; its path.
pub fn scenario_with_code(crest: &Crest, name: &str, code: u16) -> PathBuf {
    let text = std::fs::read_to_string(scenario(name))
        .unwrap()
        .replace("@CODE@", &code.to_string());
    let p = crest.dir.join(format!("{code}-{name}"));
    std::fs::write(&p, text).unwrap();
    p
}

/// Registers `user` (password `password`) from 127.0.0.1:`port` with sipp; the sipp output.
pub fn register(
    crest: &Crest,
    user: &str,
    password: &str,
    port: u16,
    scenario_name: &str,
) -> Output {
    let target = crest.addr().to_string();
    let sc = scenario(scenario_name);
    sipp(
        &[
            &target,
            "-sf",
            sc.to_str().unwrap(),
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-s",
            user,
            "-au",
            user,
            "-ap",
            password,
            "-m",
            "1",
            "-l",
            "1",
        ],
        Duration::from_secs(15),
    )
}

/// A `routes:` entry (under `sip:`) sending `number` to the sipp UAS on `port`.
pub fn route_to_port(number: &str, port: u16) -> String {
    format!(
        "  routes:\n    - {{number: \"{number}\", uri: \"sip:127.0.0.1:{port}\", public: true}}\n"
    )
}

/// A sipp UAS registered as alice (password "secret") on a free port, answering one call with
/// the scenario `scenario_name` and `extra` arguments, in the background.
pub fn registered_uas(crest: &Crest, scenario_name: &str, extra: &[&str]) -> Background {
    let port = free_port();
    assert_ok(
        "REGISTER",
        &register(crest, "alice", "secret", port, "register_ok.xml"),
        crest,
    );
    let sc = scenario(scenario_name);
    let port = port.to_string();
    let mut args = vec![
        "-sf",
        sc.to_str().unwrap(),
        "-i",
        "127.0.0.1",
        "-p",
        &port,
        "-m",
        "1",
    ];
    args.extend_from_slice(extra);
    Background::sipp(&args, Duration::from_secs(30))
}

/// A sipp UAS running `scenario_file` on `port`, for one call, in the background.
pub fn uas(scenario_file: &Path, port: u16) -> Background {
    Background::sipp(
        &[
            "-sf",
            scenario_file.to_str().unwrap(),
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-m",
            "1",
        ],
        Duration::from_secs(20),
    )
}

/// A sipp UAC making one call to `number` through crest at `target`: `scenario` is
/// `["-sf", file]` or `["-sn", "uac"]`, `extra` more arguments; its output.
fn one_call(target: &str, scenario: &[&str], number: &str, extra: &[&str]) -> Output {
    let port = free_port().to_string();
    let mut args = vec![target];
    args.extend_from_slice(scenario);
    args.extend_from_slice(&["-s", number, "-i", "127.0.0.1", "-p", &port, "-m", "1"]);
    args.extend_from_slice(extra);
    sipp(&args, Duration::from_secs(20))
}

/// A sipp UAC running `scenario_file` once, dialling `number` through crest; its output.
pub fn uac(crest: &Crest, scenario_file: &Path, number: &str, extra: &[&str]) -> Output {
    let target = crest.addr().to_string();
    one_call(
        &target,
        &["-sf", scenario_file.to_str().unwrap()],
        number,
        extra,
    )
}

/// sipp's built-in UAC: one call to `number` through crest at `target`, held `hold_ms`.
pub fn builtin_call(target: &str, number: &str, hold_ms: u32) -> Output {
    one_call(
        target,
        &["-sn", "uac"],
        number,
        &["-d", &hold_ms.to_string()],
    )
}

/// Polls `f` every 50 ms for up to 10 s; panics with `what` if it never holds.
pub fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what}");
}

/// The Authorization header answering `challenge` (a 401 to a REGISTER of `user`, password
/// "secret", to `uri`) with MD5.
pub fn register_authorization(challenge: &str, user: &str, uri: &str) -> String {
    use crest_sip_proxy::auth::{Algorithm, Challenge, DigestClient};
    let www = challenge
        .lines()
        .filter_map(|l| l.strip_prefix("WWW-Authenticate:").map(str::trim_start));
    let c = Challenge::find(www, Algorithm::Md5).expect("an MD5 challenge");
    let client = DigestClient {
        alg: Algorithm::Md5,
        user,
        password: "secret",
        realm: "crest",
    };
    format!(
        "Authorization: {}\r\n",
        client.authorization(&c.nonce, "REGISTER", uri, 1, "cn")
    )
}

/// `crest ARGS --config CONFIG`.
pub fn crest_cli(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_crest"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}
