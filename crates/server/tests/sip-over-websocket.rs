//! SIP over WebSocket (RFC 7118) on the admin listener, as a browser phone uses it: the
//! upgrade needs the `sip` subprotocol; a REGISTER with JsSIP's `.invalid` Via and Contact
//! hosts is challenged and bound to the socket (the 200 echoes the Contact with its
//! `+sip.instance`), the agent logs in, a call to them arrives over the same socket, a
//! `\r\n\r\n` keep-alive is answered, and closing the socket unregisters them (the agent logs
//! out). The client is tungstenite, a WebSocket implementation of its own.

mod common;

use std::net::TcpStream;
use std::time::Duration;

use common::*;
use tungstenite::client::IntoClientRequest as _;
use tungstenite::{Message, WebSocket};

const ACD: &str = "ring_secs: 10\nwrap_up_secs: 1\nmax_misses: 2\n\
pools:\n  - {name: office, neighbours: []}\n\
queues:\n  - {name: refund, skill: refund, pool: office}\n\
agents:\n  - {name: alice, pool: office, skills: {refund: 0.9}, rating: 0.9}\n";

#[path = "common/peer.rs"]
mod peer;

fn connect(crest: &Crest, protocol: Option<&str>) -> Result<WebSocket<TcpStream>, String> {
    let url = format!("ws://127.0.0.1:{}/sip", crest.admin);
    let mut req = url.into_client_request().unwrap();
    if let Some(p) = protocol {
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", p.parse().unwrap());
    }
    let tcp = TcpStream::connect(("127.0.0.1", crest.admin)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    match tungstenite::client(req, tcp) {
        Ok((ws, resp)) => {
            let p = resp
                .headers()
                .get("Sec-WebSocket-Protocol")
                .and_then(|v| v.to_str().ok());
            assert_eq!(p, Some("sip"), "the subprotocol is agreed");
            Ok(ws)
        }
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(r))) => {
            Err(r.status().as_u16().to_string())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// The next text frame that is a SIP message (skipping control frames).
fn next_sip(ws: &mut WebSocket<TcpStream>) -> String {
    loop {
        match ws.read().expect("a frame within 5 s") {
            Message::Text(t) => return t.as_str().to_owned(),
            Message::Binary(b) => return String::from_utf8_lossy(&b).into_owned(),
            _ => {}
        }
    }
}

/// JsSIP's REGISTER: Via and Contact on a made-up `.invalid` host, an instance id.
fn register(cseq: u32, auth: &str, expires: u32) -> String {
    format!(
        "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK{cseq}ws\r\n\
         Max-Forwards: 69\r\nTo: <sip:alice@127.0.0.1>\r\nFrom: <sip:alice@127.0.0.1>;tag=jssip1\r\n\
         Call-ID: ws-reg-1\r\nCSeq: {cseq} REGISTER\r\n\
         Contact: <sip:k3b9q2rs@df7jal23ls0d.invalid;transport=ws>;+sip.ice;reg-id=1;+sip.instance=\"<urn:uuid:0e3e6f22-0bfd-4d2f-8c8e-1d0f0c6a9f11>\";expires={expires}\r\n\
         Expires: {expires}\r\nAllow: INVITE,ACK,CANCEL,BYE,UPDATE,MESSAGE,OPTIONS,REFER,INFO,NOTIFY\r\n\
         Supported: path,gruu,outbound\r\nUser-Agent: JsSIP 3.13.8\r\n{auth}Content-Length: 0\r\n\r\n"
    )
}

fn agent_state(crest: &Crest, token: &str) -> (String, bool) {
    let (status, _, body) = crest.http("GET", "/api/v1/agents", Some(token), None);
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    (
        v[0]["state"].as_str().unwrap().to_owned(),
        v[0]["registered"].as_bool().unwrap(),
    )
}

#[test]
fn a_browser_phone_registers_over_a_websocket_takes_a_call_and_leaves_with_its_socket() {
    let dir = scratch_dir("sip-ws-files");
    std::fs::write(dir.join("acd.yaml"), ACD).unwrap();
    let crest = Crest::start_with(
        "sip-ws",
        "  routes:\n    - {number: \"4001\", queue: refund, public: true}\n",
        &format!("acd:\n  file: \"{}/acd.yaml\"\n", dir.display()),
    );
    let lead = crest.token("lead", "supervisor");
    assert_eq!(
        connect(&crest, None).err().as_deref(),
        Some("426"),
        "no sip subprotocol, no socket"
    );
    assert_eq!(connect(&crest, Some("chat")).err().as_deref(), Some("426"));
    // A page of another origin may not open it; this listener's own pages may.
    let mut req = format!("ws://127.0.0.1:{}/sip", crest.admin)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "sip".parse().unwrap());
    req.headers_mut()
        .insert("Origin", "https://evil.example".parse().unwrap());
    match tungstenite::connect(req) {
        Err(tungstenite::Error::Http(r)) => assert_eq!(r.status().as_u16(), 403),
        other => panic!("another origin got in: {:?}", other.map(|_| ())),
    }
    let mut ws = connect(&crest, Some("sip")).unwrap();

    // Challenged, then bound to this socket.
    ws.send(Message::Text(register(1, "", 600).into())).unwrap();
    let challenge = next_sip(&mut ws);
    assert!(challenge.starts_with("SIP/2.0 401"), "{challenge}");
    assert!(
        challenge.contains("Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK1ws"),
        "{challenge}"
    );
    // JsSIP reads only the last challenge and speaks only MD5: MD5 comes last on a WebSocket
    // (this crest prefers MD5 first elsewhere).
    let last = challenge
        .lines()
        .rfind(|l| l.starts_with("WWW-Authenticate:"))
        .unwrap();
    assert!(last.contains("algorithm=MD5"), "{challenge}");
    let auth = register_authorization(&challenge, "alice", "sip:127.0.0.1");
    ws.send(Message::Text(register(2, &auth, 600).into()))
        .unwrap();
    let ok = next_sip(&mut ws);
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    assert!(
        ok.contains("<sip:k3b9q2rs@df7jal23ls0d.invalid;transport=ws>")
            && ok.contains("+sip.instance=\"<urn:uuid:0e3e6f22-0bfd-4d2f-8c8e-1d0f0c6a9f11>\""),
        "the Contact echoed as registered: {ok}"
    );
    assert_eq!(
        crest.metric("crest_sip_connections"),
        1,
        "the socket is a connection"
    );
    wait_for("alice logged in by her browser", || {
        agent_state(&crest, &lead) == ("available".into(), true)
    });

    // The keep-alive of RFC 5626 over a WebSocket frame.
    ws.send(Message::Text("\r\n\r\n".into())).unwrap();
    assert_eq!(next_sip(&mut ws), "\r\n");

    // A caller for refunds: Crest rings alice over her socket, at her .invalid contact.
    let mut caller = peer::Phone::new(crest.addr());
    let rtp = peer::Rtp::new(crest_media::codec::CodecKind::Pcmu, 0);
    caller.invite("4001", &peer::sdp(rtp.port(), "0 101", ""));
    let invite = next_sip(&mut ws);
    assert!(
        invite.starts_with("INVITE sip:k3b9q2rs@df7jal23ls0d.invalid;transport=ws SIP/2.0"),
        "{invite}"
    );
    assert!(invite.contains("Via: SIP/2.0/WS "), "{invite}");

    // The browser closes: alice is unregistered and logged out at once, the ringing call
    // goes back to the queue.
    ws.close(None).unwrap();
    let _ = ws.read();
    wait_for("alice logged out with her socket", || {
        agent_state(&crest, &lead) == ("offline".into(), false)
    });
    assert_eq!(crest.metric("crest_registered_aors"), 0);
    // The socket's connection is gone from the SIP core too (the refused upgrades never made
    // one).
    wait_for("no SIP connection left", || {
        crest.metric("crest_sip_connections") == 0
    });
    let log = crest.log();
    assert!(
        log.contains("SIP WebSocket open") && log.contains("unregistered: its WebSocket closed"),
        "{log}"
    );
    caller.bye();
}
