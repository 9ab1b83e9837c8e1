//! Sends every RFC 4475 torture message over UDP to a running `crest` and checks the response
//! against the handling MANIFEST.tsv names; afterwards crest still answers normally.

mod common;
use std::net::UdpSocket;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;

fn torture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/sip-torture-rfc4475")
}

/// The final status Crest must answer each file with (None: no response, the message is
/// dropped). Crest has no route for the numbers in these files and requires auth on REGISTER.
fn expected(file: &str) -> Option<u16> {
    Some(match file {
        // valid requests: parsed and processed
        "wsinv.dat" => 481,   // To has a tag: in-dialog, no such dialog
        "intmeth.dat" => 501, // unknown method: 501, not 400 (3.1.1.2)
        "esc01.dat" => 404,   // parsed; no route for that number
        "escnull.dat" => 401, // REGISTER: challenged
        "esc02.dat" => 501,   // RE%47IST%45R is a method of its own
        "lwsdisp.dat" => 200, // OPTIONS
        "longreq.dat" => 404, // long values, many Vias: parsed; no route
        "dblreq.dat" => 401,  // first message (REGISTER) only
        "semiuri.dat" => 200,
        "transports.dat" => 200,
        "mpart01.dat" => 405, // MESSAGE with a multipart body: parsed; not served here
        // invalid: 400 (or 505)
        "badinv01.dat" | "clerr.dat" | "ncl.dat" | "scalar02.dat" | "quotbal.dat"
        | "ltgtruri.dat" | "lwsruri.dat" | "lwsstart.dat" | "trws.dat" | "escruri.dat"
        | "regbadct.dat" | "baddn.dat" | "mismatch01.dat" | "mismatch02.dat" | "multi01.dat"
        | "mcl01.dat" => 400,
        "badvers.dat" => 505,
        "baddate.dat" => 404,   // Date tolerated; no route
        "badaspec.dat" => 200,  // tolerated: OPTIONS answered
        "badbranch.dat" => 200, // its own transaction
        "unkscm.dat" | "novelsc.dat" => 416,
        "unksm2.dat" => 401, // REGISTER with odd schemes in To/From/Contact: processed
        "bext01.dat" => 420,
        "invut.dat" => 415,
        "regaut01.dat" => 401, // unknown auth scheme ignored: challenged
        "zeromf.dat" => 200,   // OPTIONS aimed at Crest is answered
        "cparam01.dat" | "cparam02.dat" | "regescrt.dat" => 401,
        "sdp01.dat" => 406,
        "inv2543.dat" => 404, // RFC 2543 INVITE: handled (no route)
        // responses and the like: dropped
        "unreason.dat" | "noreason.dat" | "scalarlg.dat" | "bigcode.dat" | "bcast.dat" => {
            return None;
        }
        "insuf.dat" => return None, // no Call-ID/From/To: nowhere to route a response
        other => panic!("{other} has no expectation"),
    })
}

/// The Call-ID of a message (full or compact header name, any case).
fn call_id_of(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        let name = name.trim();
        (name.eq_ignore_ascii_case("call-id") || name.eq_ignore_ascii_case("i"))
            .then(|| value.trim().to_owned())
    })
}

/// Status codes received within `wait` for messages with this Call-ID (late retransmissions
/// of earlier answers are ignored).
fn statuses(sock: &UdpSocket, call_id: Option<&str>, wait: Duration) -> Vec<u16> {
    let mut codes = Vec::new();
    let end = Instant::now() + wait;
    let mut buf = [0u8; 65536];
    while Instant::now() < end {
        sock.set_read_timeout(Some(
            end.saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        ))
        .unwrap();
        let Ok(n) = sock.recv(&mut buf) else { break };
        let text = String::from_utf8_lossy(&buf[..n]);
        if call_id_of(&text).as_deref() != call_id {
            continue;
        }
        if let Some(code) = text
            .strip_prefix("SIP/2.0 ")
            .and_then(|r| r.get(..3))
            .and_then(|c| c.parse().ok())
        {
            codes.push(code);
        }
    }
    codes
}

#[test]
fn every_torture_message_gets_the_manifest_handling_over_udp() {
    let crest = Crest::start("torture", "");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(crest.addr()).unwrap();
    let manifest = std::fs::read_to_string(torture_dir().join("MANIFEST.tsv")).unwrap();
    let mut failures = Vec::new();
    for line in manifest
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let file = line.split('\t').next().unwrap();
        let data = std::fs::read(torture_dir().join(file)).unwrap();
        sock.send(&data).unwrap();
        let data = data.clone();
        let wait = if expected(file).is_some() {
            Duration::from_millis(250)
        } else {
            Duration::from_millis(120)
        };
        let text = String::from_utf8_lossy(&data).into_owned();
        let codes: Vec<u16> = statuses(&sock, call_id_of(&text).as_deref(), wait)
            .into_iter()
            .filter(|c| *c >= 200)
            .collect();
        let got = codes.first().copied();
        if got != expected(file) {
            failures.push(format!(
                "{file}: expected {:?}, got {codes:?}",
                expected(file)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n{}",
        failures.join("\n"),
        crest.log()
    );
    // Still alive and answering.
    let opt = format!(
        "OPTIONS sip:crest@{0} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKalive;rport\r\nFrom: <sip:t@x>;tag=1\r\n\
         To: <sip:crest@{0}>\r\nCall-ID: alive\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        crest.addr()
    );
    sock.send(opt.as_bytes()).unwrap();
    assert_eq!(
        statuses(&sock, Some("alive"), Duration::from_millis(500)),
        [200]
    );
    assert!(crest.metric("crest_sip_bad_messages_total") >= 17);
}
