//! Sets up N anchored calls through a running crest for the RTP relay benchmark and writes the
//! port map the shared `run_rtp_baseline.sh --relay map` needs.
//!
//!   anchor_calls CREST_ADDR NUMBER CALLS UAS_ADDR A_MEDIA B_MEDIA MAP_FILE
//!
//! Every call offers A_MEDIA (the blaster's A socket) as the caller's RTP address; a built-in
//! UAS on UAS_ADDR (where crest routes NUMBER) answers with B_MEDIA. Crest's port toward the
//! caller (from the 200) and toward the callee (from its INVITE) make one map line:
//! "crest:Pa crest:Pb". The calls stay up (no BYE) until crest stops. Loopback only; bounded
//! by CALLS and a 2 s wait per call.

use std::io::Write as _;
use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn audio_port(msg: &str) -> Option<u16> {
    let m = msg.lines().find(|l| l.starts_with("m=audio "))?;
    m.split_whitespace().nth(1)?.parse().ok()
}

fn sdp(media: SocketAddr) -> String {
    format!(
        "v=0\r\no=bench 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
        ip = media.ip(),
        port = media.port()
    )
}

/// Answers every INVITE with 200 + `media`; reports (Call-ID, crest's port) for each.
fn uas(sock: UdpSocket, media: SocketAddr, found: mpsc::Sender<(String, u16)>) {
    let mut buf = [0u8; 8192];
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            return;
        };
        let req = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !req.starts_with("INVITE ") {
            continue;
        }
        let (Some(port), Some(call_id)) = (audio_port(&req), header(&req, "Call-ID")) else {
            continue;
        };
        // The caller's Call-ID is not on leg B; crest's From user is the caller's number.
        let from_user = header(&req, "From").unwrap_or_default().to_owned();
        let body = sdp(media);
        let mut r = String::from("SIP/2.0 200 OK\r\n");
        for l in req.lines().filter(|l| l.starts_with("Via:")) {
            r.push_str(l);
            r.push_str("\r\n");
        }
        r.push_str(&format!(
            "From: {from_user}\r\nTo: {};tag=uas\r\nCall-ID: {call_id}\r\nCSeq: {}\r\n\
             Contact: <sip:uas@{}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            header(&req, "To").unwrap_or_default(),
            header(&req, "CSeq").unwrap_or_default(),
            sock.local_addr().expect("bound"),
            body.len()
        ));
        let _ = sock.send_to(r.as_bytes(), from);
        let caller = from_user
            .split("sip:")
            .nth(1)
            .and_then(|u| u.split('@').next())
            .unwrap_or_default()
            .to_owned();
        if found.send((caller, port)).is_err() {
            return;
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 8 {
        eprintln!("usage: anchor_calls CREST_ADDR NUMBER CALLS UAS_ADDR A_MEDIA B_MEDIA MAP_FILE");
        std::process::exit(2);
    }
    let parse = |s: &str| -> SocketAddr { s.parse().expect("ip:port") };
    let (crest, number) = (parse(&args[1]), args[2].clone());
    let calls: usize = args[3].parse().expect("a call count");
    let (uas_addr, a_media, b_media) = (parse(&args[4]), parse(&args[5]), parse(&args[6]));
    for a in [crest, uas_addr, a_media, b_media] {
        assert!(a.ip().is_loopback(), "loopback only: {a}");
    }
    let uas_sock = UdpSocket::bind(uas_addr).expect("UAS address free");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || uas(uas_sock, b_media, tx));
    let uac = UdpSocket::bind("127.0.0.1:0").expect("bind");
    uac.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let local = uac.local_addr().expect("bound");
    let mut map = std::fs::File::create(&args[7]).expect("map file");
    let started = Instant::now();
    let mut buf = [0u8; 8192];
    let mut made = 0;
    for i in 0..calls {
        let body = sdp(a_media);
        let invite = format!(
            "INVITE sip:{number}@{crest} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKbench{i};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:c{i}@{local}>;tag=b{i}\r\nTo: <sip:{number}@{crest}>\r\n\
             Call-ID: bench-{i}@{local}\r\nCSeq: 1 INVITE\r\nContact: <sip:c{i}@{local}>\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        uac.send_to(invite.as_bytes(), crest).expect("send");
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut answered = None;
        while Instant::now() < deadline && answered.is_none() {
            let Ok((n, _)) = uac.recv_from(&mut buf) else {
                continue;
            };
            let resp = String::from_utf8_lossy(&buf[..n]).into_owned();
            if resp.starts_with("SIP/2.0 200")
                && header(&resp, "Call-ID") == Some(&format!("bench-{i}@{local}"))
            {
                answered = Some(resp);
            } else if !resp.starts_with("SIP/2.0 1") {
                eprintln!("call {i}: {}", resp.lines().next().unwrap_or_default());
                break;
            }
        }
        let Some(ok) = answered else {
            eprintln!("call {i} not answered; stopping at {made} calls");
            break;
        };
        let (Some(pa), Ok((caller, pb))) =
            (audio_port(&ok), rx.recv_timeout(Duration::from_secs(1)))
        else {
            eprintln!("call {i}: no SDP");
            break;
        };
        assert_eq!(caller, format!("c{i}"), "answers arrive in order");
        let to = header(&ok, "To").unwrap_or_default();
        let target = header(&ok, "Contact")
            .unwrap_or_default()
            .trim_matches(['<', '>']);
        let ack = format!(
            "ACK {target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKack{i};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:c{i}@{local}>;tag=b{i}\r\nTo: {to}\r\n\
             Call-ID: bench-{i}@{local}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
        );
        uac.send_to(ack.as_bytes(), crest).expect("send");
        writeln!(map, "{}:{pa} {}:{pb}", crest.ip(), crest.ip()).expect("write");
        made += 1;
    }
    println!(
        "calls={made} setup_secs={:.2} map={}",
        started.elapsed().as_secs_f64(),
        args[7]
    );
}
