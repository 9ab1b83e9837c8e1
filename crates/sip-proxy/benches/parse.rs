//! Parse throughput on a typical INVITE with SDP and on a REGISTER with digest credentials.
use bytes::Bytes;
use crest_sip_proxy::{Framing, Message};

fn main() {
    divan::main();
}

const INVITE: &[u8] = b"INVITE sip:service@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bK-1234-1-0\r\n\
From: sipp <sip:sipp@127.0.0.1:5090>;tag=1234SIPpTag001\r\n\
To: service <sip:service@127.0.0.1:5060>\r\n\
Call-ID: 1-1234@127.0.0.1\r\n\
CSeq: 1 INVITE\r\n\
Contact: sip:sipp@127.0.0.1:5090\r\n\
Max-Forwards: 70\r\n\
Subject: Performance Test\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 129\r\n\r\n\
v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

/// Framing and header indexing only (what every packet costs).
#[divan::bench]
fn invite_frame() -> Message {
    Message::parse(
        Bytes::from_static(divan::black_box(INVITE)),
        Framing::Datagram,
    )
    .unwrap()
}

/// Framing plus the full validation a request gets before it is acted on.
#[divan::bench]
fn invite_frame_and_validate() -> Message {
    let m = Message::parse(
        Bytes::from_static(divan::black_box(INVITE)),
        Framing::Datagram,
    )
    .unwrap();
    m.validate().unwrap();
    m
}
