//! SIP over TCP and TLS: pipelined messages framed by Content-Length, CRLF keep-alive, digest
//! REGISTER over TLS with a configured certificate, and a call to a user registered over TCP
//! that reaches it over its own connection (connection reuse) while the caller uses UDP.

mod common;
#[path = "common/stream.rs"]
mod stream;

use std::net::TcpStream;
use std::sync::Arc;

use common::*;
use stream::*;

fn options(crest_port: u16, transport: &str, call_id: &str) -> String {
    format!(
        "OPTIONS sip:crest@127.0.0.1:{crest_port} SIP/2.0\r\nVia: SIP/2.0/{transport} 127.0.0.1:1;branch=z9hG4bK{call_id}\r\n\
         From: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:crest@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\n\
         Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

fn register<S: std::io::Read + std::io::Write>(
    c: &mut SipStream<S>,
    transport: &str,
    port: u16,
    user: &str,
    contact_port: u16,
) {
    let base = |cseq: u32, auth: &str| {
        format!(
            "REGISTER sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/{transport} 127.0.0.1:{contact_port};branch=z9hG4bKreg{cseq}\r\n\
             From: <sip:{user}@127.0.0.1>;tag=r1\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: reg-{user}\r\nCSeq: {cseq} REGISTER\r\n\
             Contact: <sip:{user}@127.0.0.1:{contact_port};transport={}>\r\n{auth}Max-Forwards: 70\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n",
            transport.to_lowercase()
        )
    };
    c.send(&base(1, ""));
    let challenge = c.recv();
    assert_eq!(status(&challenge), Some(401), "{challenge}");
    let auth = register_authorization(&challenge, user, &format!("sip:127.0.0.1:{port}"));
    c.send(&base(2, &auth));
    let ok = c.recv();
    assert_eq!(status(&ok), Some(200), "{ok}");
}

#[test]
fn tcp_pipelining_keepalive_and_call_over_the_registered_connection() {
    let crest = Crest::start(
        "tcp",
        "  routes:\n    - {number: \"1000\", user: alice, public: true}\n",
    );
    let tcp = TcpStream::connect(crest.addr()).unwrap();
    tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut c = SipStream::new(tcp);
    // Two requests in one write, then a keep-alive ping.
    c.send(&format!(
        "{}{}",
        options(crest.sip, "TCP", "p1"),
        options(crest.sip, "TCP", "p2")
    ));
    let (a, b) = (c.recv(), c.recv());
    assert_eq!((status(&a), status(&b)), (Some(200), Some(200)));
    assert_eq!(header(&a, "Call-ID").as_deref(), Some("p1"));
    assert_eq!(header(&b, "Call-ID").as_deref(), Some("p2"));
    c.send("\r\n\r\n");
    assert_eq!(c.recv(), "\r\n", "CRLF pong (RFC 5626)");

    register(&mut c, "TCP", crest.sip, "alice", 40000);
    let target = crest.addr().to_string();
    let uac = std::thread::spawn(move || builtin_call(&target, "1000", 100));
    let invite = c.recv();
    assert!(
        invite.starts_with("INVITE sip:alice@127.0.0.1:40000;transport=tcp"),
        "{invite}"
    );
    assert!(header(&invite, "Via").unwrap().starts_with("SIP/2.0/TCP"));
    let to_tag = ";tag=callee";
    let answer = |code: u16, reason: &str, body: &str| {
        let mut r = format!("SIP/2.0 {code} {reason}\r\n");
        for l in invite.lines().filter(|l| l.starts_with("Via:")) {
            r.push_str(l);
            r.push_str("\r\n");
        }
        r.push_str(&format!(
            "From: {}\r\nTo: {}{to_tag}\r\nCall-ID: {}\r\nCSeq: {}\r\nContact: <sip:alice@127.0.0.1:40000;transport=tcp>\r\n",
            header(&invite, "From").unwrap(),
            header(&invite, "To").unwrap(),
            header(&invite, "Call-ID").unwrap(),
            header(&invite, "CSeq").unwrap()
        ));
        if body.is_empty() {
            r.push_str("Content-Length: 0\r\n\r\n");
        } else {
            r.push_str(&format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ));
        }
        r
    };
    c.send(&answer(180, "Ringing", ""));
    c.send(&answer(
        200,
        "OK",
        "v=0\r\no=alice 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40002 RTP/AVP 0\r\n",
    ));
    let ack = c.recv();
    assert!(ack.starts_with("ACK "), "{ack}");
    let bye = c.recv();
    assert!(bye.starts_with("BYE "), "{bye}");
    let mut ok = String::from("SIP/2.0 200 OK\r\n");
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        ok.push_str(&format!("{name}: {}\r\n", header(&bye, name).unwrap()));
    }
    ok.push_str("Content-Length: 0\r\n\r\n");
    c.send(&ok);
    let out = uac.join().unwrap();
    assert_ok("UDP caller to TCP callee", &out, &crest);
    assert_eq!(crest.metric("crest_calls_answered_total"), 1);
}

#[test]
fn tls_with_configured_certificate_registers_with_digest() {
    let dir = scratch_dir("tls-cert");
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.join("cert.pem"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), ck.signing_key.serialize_pem()).unwrap();
    let top = format!(
        "tls:\n  cert_file: {}\n  key_file: {}\n",
        dir.join("cert.pem").display(),
        dir.join("key.pem").display()
    );
    let crest = Crest::start_with("tls", "", &top);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ck.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn =
        rustls::ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap()).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", crest.tls)).unwrap();
    tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut c = SipStream::new(rustls::StreamOwned::new(conn, tcp));
    c.send(&options(crest.tls, "TLS", "tls1"));
    let r = c.recv();
    assert_eq!(status(&r), Some(200), "{r}");
    register(&mut c, "TLS", crest.tls, "bob", 40001);
    assert_eq!(crest.metric("crest_registered_aors"), 1);
    assert_eq!(crest.metric("crest_sip_connections"), 1);
}

#[test]
fn calls_to_a_sips_route_go_out_over_verified_tls() {
    let dir = scratch_dir("tls-out-ca");
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    std::fs::write(dir.join("ca.pem"), ck.cert.pem()).unwrap();
    // The callee: a TLS server with that certificate.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let key = rustls::pki_types::PrivateKeyDer::try_from(ck.signing_key.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server_cfg = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![ck.cert.der().clone()], key)
            .unwrap(),
    );
    let callee = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
        let conn = rustls::ServerConnection::new(server_cfg).unwrap();
        let mut c = SipStream::new(rustls::StreamOwned::new(conn, tcp));
        let invite = c.recv();
        let mut busy = String::from("SIP/2.0 486 Busy Here\r\n");
        for l in invite.lines().filter(|l| l.starts_with("Via:")) {
            busy.push_str(l);
            busy.push_str("\r\n");
        }
        for name in ["From", "Call-ID", "CSeq"] {
            busy.push_str(&format!("{name}: {}\r\n", header(&invite, name).unwrap()));
        }
        busy.push_str(&format!(
            "To: {};tag=tlscallee\r\nContent-Length: 0\r\n\r\n",
            header(&invite, "To").unwrap()
        ));
        c.send(&busy);
        let ack = c.recv();
        (invite, ack)
    });
    let top = format!("tls:\n  ca_file: {}\n", dir.join("ca.pem").display());
    let crest = Crest::start_with(
        "tls-out",
        &format!(
            "  routes:\n    - {{number: \"7000\", uri: \"sips:127.0.0.1:{port}\", public: true}}\n"
        ),
        &top,
    );
    let busy = scenario_with_code(&crest, "uac_expect_failure.xml", 486);
    let out = uac(&crest, &busy, "7000", &[]);
    assert_ok("UDP caller gets the TLS callee's 486", &out, &crest);
    let (invite, ack) = callee.join().unwrap();
    assert!(invite.starts_with("INVITE sips:127.0.0.1:"), "{invite}");
    assert!(
        header(&invite, "Via").unwrap().starts_with("SIP/2.0/TLS"),
        "{invite}"
    );
    assert!(ack.starts_with("ACK "), "{ack}");
}
