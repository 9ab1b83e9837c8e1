//! REGISTER load generator with digest authentication, for `bench/sip_cps.sh --mode reg`.
//!
//! sipp cannot take a per-call digest username (its `[authentication username=...]` keyword
//! does not expand nested keywords), so this paced, single-socket generator registers users
//! `u1..uN` (password `secret`): REGISTER, 401, REGISTER with MD5 credentials, 200.
//!
//! ```text
//! reg_load TARGET RATE COUNT [FIRST_USER] [--reuse-nonce]
//! ```
//! `--reuse-nonce`: after the first challenge, every REGISTER carries credentials for the nonce
//! already held (as a phone does when it refreshes), so a registration is one round trip.
//! Prints one line: `sent=N ok=N failed=N achieved_per_s=R p50_ms=.. p99_ms=.. elapsed_s=..`.
//! Bounded: stops COUNT registrations or 30 s after the last send, whichever comes first.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crest_sip_proxy::auth::{Algorithm, Challenge, DigestClient};

fn register(target: SocketAddr, local: SocketAddr, user: u64, cseq: u32, auth: &str) -> String {
    format!(
        "REGISTER sip:{target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-{user}-{cseq}\r\n\
         From: <sip:u{user}@{ip}>;tag=r{user}\r\nTo: <sip:u{user}@{ip}>\r\nCall-ID: reg-{user}@load\r\n\
         CSeq: {cseq} REGISTER\r\nContact: <sip:u{user}@{local}>\r\n{auth}Expires: 3600\r\nMax-Forwards: 70\r\n\
         User-Agent: crest-reg-load\r\nContent-Length: 0\r\n\r\n",
        ip = target.ip()
    )
}

/// An Authorization header for user `u<user>` (password "secret") with nonce-count 1.
fn credentials(target: SocketAddr, realm: &str, user: u64, nonce: &str) -> String {
    let name = format!("u{user}");
    let client = DigestClient {
        alg: Algorithm::Md5,
        user: &name,
        password: "secret",
        realm,
    };
    format!(
        "Authorization: {}\r\n",
        client.authorization(nonce, "REGISTER", &format!("sip:{target}"), 1, "c0ffee")
    )
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: reg_load TARGET RATE COUNT [FIRST_USER]");
        std::process::exit(2);
    }
    let target: SocketAddr = args[1].parse().expect("TARGET is ip:port");
    assert!(target.ip().is_loopback(), "load tests target loopback only");
    let rate: f64 = args[2].parse().expect("RATE");
    let count: u64 = args[3].parse().expect("COUNT");
    let first: u64 = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(1);
    let reuse_nonce = args.iter().any(|a| a == "--reuse-nonce");
    let mut nonce_held: Option<String> = None;
    let realm = "crest";
    // A 4 MB receive buffer, as the sipp runs of the Kamailio baseline use (-buff_size).
    let sock = {
        use socket2::{Domain, Protocol, Socket, Type};
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).expect("socket");
        let _ = s.set_recv_buffer_size(4 << 20);
        let _ = s.set_send_buffer_size(4 << 20);
        s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .expect("bind");
        UdpSocket::from(s)
    };
    let _ = sock.set_nonblocking(true);
    let local = sock.local_addr().expect("local addr");
    let start = Instant::now();
    let mut started: HashMap<u64, Instant> = HashMap::new();
    let mut latencies: Vec<f64> = Vec::with_capacity(count as usize);
    let (mut sent, mut ok, mut failed) = (0u64, 0u64, 0u64);
    let mut buf = [0u8; 4096];
    let mut last_send = start;
    loop {
        let now = Instant::now();
        let due = ((now - start).as_secs_f64() * rate) as u64;
        while sent < count && sent < due && (!reuse_nonce || sent == 0 || nonce_held.is_some()) {
            let user = first + sent;
            let auth = match (&nonce_held, reuse_nonce) {
                (Some(n), true) => credentials(target, realm, user, n),
                _ => String::new(),
            };
            let msg = register(target, local, user, 1, &auth);
            if sock.send_to(msg.as_bytes(), target).is_ok() {
                started.insert(user, Instant::now());
                sent += 1;
                last_send = Instant::now();
            } else {
                break;
            }
        }
        let mut got = false;
        while let Ok((n, _)) = sock.recv_from(&mut buf) {
            got = true;
            let text = String::from_utf8_lossy(&buf[..n]);
            let Some(user) = header(&text, "Call-ID")
                .and_then(|c| c.strip_prefix("reg-"))
                .and_then(|c| c.split('@').next())
                .and_then(|u| u.parse::<u64>().ok())
            else {
                continue;
            };
            let code = text.get(8..11).unwrap_or("");
            match code {
                "401" => {
                    let www = text
                        .lines()
                        .filter_map(|l| l.strip_prefix("WWW-Authenticate:"));
                    let Some(challenge) = Challenge::find(www, Algorithm::Md5) else {
                        failed += 1;
                        continue;
                    };
                    let nonce = challenge.nonce.as_str();
                    let auth = credentials(target, realm, user, nonce);
                    if reuse_nonce {
                        nonce_held = Some(nonce.to_owned());
                    }
                    let _ =
                        sock.send_to(register(target, local, user, 2, &auth).as_bytes(), target);
                }
                "200" => {
                    if let Some(t) = started.remove(&user) {
                        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                        ok += 1;
                    }
                }
                "100" => {}
                _ => {
                    if started.remove(&user).is_some() {
                        failed += 1;
                    }
                }
            }
        }
        if sent >= count && (started.is_empty() || last_send.elapsed() > Duration::from_secs(30)) {
            break;
        }
        if !got {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    let elapsed = last_send.duration_since(start).as_secs_f64().max(1e-6);
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "sent={sent} ok={ok} failed={} achieved_per_s={:.0} p50_ms={:.2} p99_ms={:.2} elapsed_s={elapsed:.2}",
        failed + started.len() as u64,
        sent as f64 / elapsed,
        pct(0.5),
        pct(0.99)
    );
}
