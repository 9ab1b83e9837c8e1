//! A small SIP-over-UDP phone with real RTP for media tests: it places or answers one call
//! with an SDP offer/answer, sends paced 20 ms frames of a tone (or silence) with a real
//! codec, and decodes what it receives so the test can look for the tone with Goertzel.
#![allow(unreachable_pub, dead_code)] // a test helper module shared by path

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crest_media::codec::{CodecKind, Decoder, Encoder};
use crest_media::dtmf::goertzel_power;
use crest_media::rtp::RtpPacket;

use crate::common::Crest;

/// A header's value in a SIP message (first occurrence, case-insensitive name).
pub fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The URI of a message's Contact header (the target of requests in its dialog).
pub fn contact_uri(msg: &str) -> String {
    header(msg, "Contact")
        .unwrap()
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap()
        .to_owned()
}

/// The body of a SIP message.
pub fn body(msg: &str) -> &str {
    msg.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

/// The audio port of an SDP body and the payload type of its first format.
pub fn sdp_audio(sdp: &str) -> (u16, u8) {
    let m = sdp
        .lines()
        .find(|l| l.starts_with("m=audio "))
        .expect("m=audio");
    let mut it = m.split_whitespace();
    let port = it.nth(1).unwrap().parse().unwrap();
    let pt = it.nth(1).unwrap().parse().unwrap();
    (port, pt)
}

/// The SDP of a phone at 127.0.0.1:`port` offering `formats` (e.g. `"0 101"`), with `extra`
/// attribute lines (rtpmaps, a direction).
pub fn sdp(port: u16, formats: &str, extra: &str) -> String {
    format!(
        "v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP {formats}\r\n{extra}"
    )
}

pub struct Phone {
    pub sip: UdpSocket,
    pub to: SocketAddr,
    pub call_id: String,
    pub tag: String,
    pub cseq: u32,
    /// The dialog's far end: To with tag, request target.
    pub remote: Option<(String, String)>,
}

impl Phone {
    pub fn new(to: SocketAddr) -> Self {
        let sip = UdpSocket::bind("127.0.0.1:0").unwrap();
        sip.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let port = sip.local_addr().unwrap().port();
        Self {
            sip,
            to,
            call_id: format!("media-test-{port}@127.0.0.1"),
            tag: format!("t{port}"),
            cseq: 0,
            remote: None,
        }
    }

    pub fn port(&self) -> u16 {
        self.sip.local_addr().unwrap().port()
    }

    pub fn send(&self, msg: &str) {
        self.sip.send_to(msg.as_bytes(), self.to).unwrap();
    }

    /// The next message within `limit`, skipping what `skip` rejects.
    pub fn recv_where(&self, limit: Duration, skip: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        let mut buf = [0u8; 8192];
        while Instant::now() < deadline {
            if let Ok((n, _)) = self.sip.recv_from(&mut buf) {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                if !skip(&m) {
                    return m;
                }
            }
        }
        panic!("no SIP message within {limit:?}");
    }

    /// A request in this phone's dialog (or the INVITE that starts it).
    pub fn request(
        &mut self,
        method: &str,
        uri: &str,
        to: &str,
        sdp: Option<(&str, &str)>,
    ) -> String {
        if method != "ACK" {
            self.cseq += 1;
        }
        let branch = format!("z9hG4bK{}{}", method.to_lowercase(), self.cseq);
        let (ctype, body) = sdp.unwrap_or(("", ""));
        let ctype = if body.is_empty() {
            String::new()
        } else {
            format!("Content-Type: {ctype}\r\n")
        };
        format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch={branch};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:caller@127.0.0.1>;tag={tag}\r\nTo: {to}\r\n\
             Call-ID: {cid}\r\nCSeq: {cseq} {method}\r\nContact: <sip:caller@127.0.0.1:{port}>\r\n\
             {ctype}Content-Length: {len}\r\n\r\n{body}",
            port = self.port(),
            tag = self.tag,
            cid = self.call_id,
            cseq = self.cseq,
            len = body.len()
        )
    }

    /// Sends INVITE (or a re-INVITE in the dialog) with `offer`; ACKs the 200; returns it.
    pub fn invite(&mut self, number: &str, offer: &str) -> String {
        let (uri, to) = match &self.remote {
            Some((to, target)) => (target.clone(), to.clone()),
            None => (
                format!("sip:{number}@{}", self.to),
                format!("<sip:{number}@{}>", self.to),
            ),
        };
        let invite = self.request("INVITE", &uri, &to, Some(("application/sdp", offer)));
        self.send(&invite);
        let seq = format!("{} INVITE", self.cseq);
        let ok = self.recv_where(Duration::from_secs(5), |m| {
            !(m.starts_with("SIP/2.0 ")
                && header(m, "CSeq") == Some(&seq)
                && !m.starts_with("SIP/2.0 1"))
        });
        assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
        let to = header(&ok, "To").unwrap().to_owned();
        let target = contact_uri(&ok);
        let ack = self.request("ACK", &target, &to, None);
        self.send(&ack);
        self.remote = Some((to, target));
        ok
    }

    /// Sends BYE and waits for its 200.
    pub fn bye(&mut self) {
        let (to, target) = self.remote.clone().expect("in a call");
        let bye = self.request("BYE", &target, &to, None);
        self.send(&bye);
        let ok = self.recv_where(Duration::from_secs(5), |m| !m.starts_with("SIP/2.0 "));
        assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    }

    /// Sends INFO with a DTMF key (application/dtmf-relay) and waits for its 200.
    pub fn info_key(&mut self, key: char) {
        let (to, target) = self.remote.clone().expect("in a call");
        let body = format!("Signal={key}\r\nDuration=160\r\n");
        let info = self.request(
            "INFO",
            &target,
            &to,
            Some(("application/dtmf-relay", &body)),
        );
        self.send(&info);
        let ok = self.recv_where(Duration::from_secs(5), |m| !m.starts_with("SIP/2.0 "));
        assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    }

    /// Answers a response to `req` with `code`, a To tag, Contact and an optional body.
    pub fn respond(&self, req: &str, code: u16, sdp: Option<&str>) -> String {
        let mut r = format!("SIP/2.0 {code} X\r\n");
        for l in req
            .lines()
            .filter(|l| l.starts_with("Via:") || l.starts_with("v:"))
        {
            r.push_str(l);
            r.push_str("\r\n");
        }
        let to = header(req, "To").unwrap();
        let to = if to.contains("tag=") {
            to.to_owned()
        } else {
            format!("{to};tag={}", self.tag)
        };
        r.push_str(&format!(
            "From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\nContact: <sip:callee@127.0.0.1:{}>\r\n",
            header(req, "From").unwrap(),
            header(req, "Call-ID").unwrap(),
            header(req, "CSeq").unwrap(),
            self.port()
        ));
        match sdp {
            Some(b) => r.push_str(&format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{b}",
                b.len()
            )),
            None => r.push_str("Content-Length: 0\r\n\r\n"),
        }
        r
    }

    /// Hangs up a call this phone answered (`ok` to `invite`, from `crest`): BYE in the dialog.
    pub fn hang_up_answered(&self, invite: &str, ok: &str, crest: SocketAddr) {
        let target = contact_uri(invite);
        let bye = format!(
            "BYE {target} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKcalleebye;rport\r\n\
             Max-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: 1 BYE\r\n\
             Content-Length: 0\r\n\r\n",
            port = self.port(),
            from = header(ok, "To").unwrap(),
            to = header(invite, "From").unwrap(),
            cid = header(invite, "Call-ID").unwrap(),
        );
        self.sip.send_to(bye.as_bytes(), crest).unwrap();
        let ok = self.recv_where(Duration::from_secs(5), |m| {
            !(m.starts_with("SIP/2.0 ") && header(m, "CSeq") == Some("1 BYE"))
        });
        assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    }

    /// Waits for a request of `method`; returns it and where it came from.
    pub fn expect_request(&self, method: &str, limit: Duration) -> (String, SocketAddr) {
        let deadline = Instant::now() + limit;
        let mut buf = [0u8; 8192];
        while Instant::now() < deadline {
            if let Ok((n, from)) = self.sip.recv_from(&mut buf) {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                if m.starts_with(&format!("{method} ")) {
                    return (m, from);
                }
            }
        }
        panic!("no {method} within {limit:?}");
    }

    /// Answers the next request of `method` with 200 (and `sdp`), to where it came from.
    pub fn answer(&self, method: &str, sdp: Option<&str>) -> String {
        let (req, from) = self.expect_request(method, Duration::from_secs(5));
        let ok = self.respond(&req, 200, sdp);
        self.sip.send_to(ok.as_bytes(), from).unwrap();
        req
    }
}

/// What an RTP end heard: decoded audio, and every packet as (payload type, payload).
pub type Heard = (Vec<i16>, Vec<(u8, Vec<u8>)>);

/// One end of an RTP stream.
pub struct Rtp {
    pub sock: UdpSocket,
    pub remote: Option<SocketAddr>,
    pub codec: CodecKind,
    pub pt: u8,
    enc: Encoder,
    dec: Decoder,
    seq: u16,
    ts: u32,
    sample: usize,
}

impl Rtp {
    pub fn new(codec: CodecKind, pt: u8) -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_nonblocking(true).unwrap();
        Self {
            sock,
            remote: None,
            codec,
            pt,
            enc: Encoder::new(codec).unwrap(),
            dec: Decoder::new(codec).unwrap(),
            seq: 1,
            ts: 0,
            sample: 0,
        }
    }

    pub fn port(&self) -> u16 {
        self.sock.local_addr().unwrap().port()
    }

    /// Discards what arrived so far (packets of an earlier phase still in flight).
    pub fn drain(&mut self) {
        std::thread::sleep(Duration::from_millis(100));
        let mut buf = [0u8; 2048];
        while self.sock.recv_from(&mut buf).is_ok() {}
    }

    /// Sends one raw packet with payload type `pt`.
    pub fn send_raw(&mut self, pt: u8, marker: bool, ts: u32, payload: &[u8]) {
        let mut v = Vec::new();
        RtpPacket {
            marker,
            payload_type: pt,
            sequence: self.seq,
            timestamp: ts,
            ssrc: 0x5EED_0000 | u32::from(self.pt),
            payload,
        }
        .write(&mut v);
        self.seq = self.seq.wrapping_add(1);
        let _ = self.sock.send_to(&v, self.remote.expect("remote set"));
    }

    /// For `dur`, sends a 20 ms frame of `tone` Hz (or silence) every 20 ms and decodes what
    /// arrives; returns the decoded audio and the raw packets received (payload type, payload).
    pub fn run(&mut self, dur: Duration, tone: Option<f64>) -> Heard {
        let rate = self.codec.sample_rate();
        let frame = (rate / 50) as usize;
        let ticks = self.codec.clock_rate() / 50;
        let start = Instant::now();
        let mut next = start;
        let (mut pcm, mut raw) = (Vec::new(), Vec::new());
        let mut payload = Vec::new();
        let mut buf = [0u8; 2048];
        while start.elapsed() < dur {
            if Instant::now() >= next {
                next += Duration::from_millis(20);
                let samples: Vec<i16> = (self.sample..self.sample + frame)
                    .map(|i| match tone {
                        Some(f) => {
                            (8000.0
                                * (2.0 * std::f64::consts::PI * f * i as f64 / f64::from(rate))
                                    .sin()) as i16
                        }
                        None => 0,
                    })
                    .collect();
                self.sample += frame;
                self.enc.encode(&samples, &mut payload).unwrap();
                self.ts = self.ts.wrapping_add(ticks);
                let (pt, ts, p) = (self.pt, self.ts, payload.clone());
                self.send_raw(pt, false, ts, &p);
            }
            while let Ok((n, _)) = self.sock.recv_from(&mut buf) {
                if let Ok(p) = RtpPacket::parse(&buf[..n]) {
                    raw.push((p.payload_type, p.payload.to_vec()));
                    if p.payload_type == self.pt {
                        let _ = self.dec.decode(p.payload, &mut pcm);
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        (pcm, raw)
    }
}

/// Which of 1 kHz and 600 Hz (the two tones the tests play) dominates 8 kHz `pcm` by 30
/// times in power, or neither (silence, or a mix).
pub fn which_tone(pcm: &[f64]) -> Option<u32> {
    let mean_square = pcm.iter().map(|v| v * v).sum::<f64>() / pcm.len().max(1) as f64;
    let p1 = goertzel_power(pcm, 1000.0, 8000);
    let p6 = goertzel_power(pcm, 600.0, 8000);
    if mean_square < 1.0e5 {
        None
    } else if p1 > 30.0 * p6 {
        Some(1000)
    } else if p6 > 30.0 * p1 {
        Some(600)
    } else {
        None
    }
}

/// Whether the second half of `pcm` holds a clear 1 kHz tone: loud (mean square above
/// -30 dBFS) and 1 kHz at least 100 times stronger than 1.7 kHz.
pub fn has_1khz(pcm: &[i16], rate: u32) -> bool {
    if pcm.len() < 1000 {
        return false;
    }
    let tail: Vec<f64> = pcm[pcm.len() / 2..].iter().map(|&s| f64::from(s)).collect();
    let mean_square = tail.iter().map(|x| x * x).sum::<f64>() / tail.len() as f64;
    let ratio = goertzel_power(&tail, 1000.0, rate) / goertzel_power(&tail, 1700.0, rate).max(1.0);
    mean_square > 1.0e6 && ratio > 100.0
}

pub struct Call {
    pub caller: Phone,
    pub callee: Phone,
    pub a: Rtp,
    pub b: Rtp,
}

/// Places a call: the caller offers `offer_formats` (+ `offer_extra`) on PCMU, the callee
/// answers with `answer_codec`/`answer_pt` and `answer_formats`/`answer_extra`.
pub fn place(
    crest: &Crest,
    callee: Phone,
    offer: (&str, &str),
    answer: (CodecKind, u8, &str, &str),
) -> Call {
    let mut caller = Phone::new(crest.addr());
    let mut a = Rtp::new(CodecKind::Pcmu, 0);
    let mut b = Rtp::new(answer.0, answer.1);
    let answer_sdp = sdp(b.port(), answer.2, answer.3);
    let callee_thread = std::thread::spawn(move || {
        let (invite, from) = callee.expect_request("INVITE", Duration::from_secs(5));
        let (crest_port, _) = sdp_audio(body(&invite));
        let ok = callee.respond(&invite, 200, Some(&answer_sdp));
        callee.sip.send_to(ok.as_bytes(), from).unwrap();
        callee.expect_request("ACK", Duration::from_secs(5));
        (callee, crest_port, invite)
    });
    let ok = caller.invite("2000", &sdp(a.port(), offer.0, offer.1));
    let (callee, b_crest, b_invite) = callee_thread.join().unwrap();
    let (a_crest, _) = sdp_audio(body(&ok));
    assert!(
        body(&b_invite).contains("c=IN IP4 127.0.0.1"),
        "Crest's own address toward the callee"
    );
    assert_ne!(a_crest, b_crest, "each leg has its own port");
    a.remote = Some(([127, 0, 0, 1], a_crest).into());
    b.remote = Some(([127, 0, 0, 1], b_crest).into());
    Call {
        caller,
        callee,
        a,
        b,
    }
}

/// Both ends send for `secs`: the caller `a_tone`, the callee `b_tone`; what each heard.
pub fn talk(
    call: &mut Call,
    secs: f64,
    a_tone: Option<f64>,
    b_tone: Option<f64>,
) -> (Heard, Heard) {
    let d = Duration::from_secs_f64(secs);
    let (a, b) = (&mut call.a, &mut call.b);
    std::thread::scope(|s| {
        let ha = s.spawn(|| a.run(d, a_tone));
        let hb = s.spawn(|| b.run(d, b_tone));
        (ha.join().unwrap(), hb.join().unwrap())
    })
}

/// Mean square of a 20 ms frame above which it counts as speech (about -40 dBFS).
const SPEECH_MS: f64 = 300.0 * 300.0;

fn loud(frame: &[i16]) -> bool {
    let e: f64 = frame.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    e / frame.len().max(1) as f64 > SPEECH_MS
}

impl Rtp {
    /// Sends `pcm` (8 kHz) paced at 20 ms, then a quiet line (low noise) until `stop` accepts
    /// what was heard so far (checked every frame) or `limit` passes; returns what was heard.
    pub fn speak_until(
        &mut self,
        pcm: &[i16],
        limit: Duration,
        stop: impl Fn(&[i16]) -> bool,
    ) -> Vec<i16> {
        let start = Instant::now();
        let mut next = start;
        let mut heard = Vec::new();
        let mut payload = Vec::new();
        let mut buf = [0u8; 2048];
        let mut x = 0x2545_F491u32;
        let mut at = 0usize;
        let mut heard_at_tick = 0usize;
        while start.elapsed() < limit {
            if Instant::now() >= next {
                next += Duration::from_millis(20);
                let frame: Vec<i16> = (0..160)
                    .map(|i| {
                        pcm.get(at + i).copied().unwrap_or_else(|| {
                            x ^= x << 13;
                            x ^= x >> 17;
                            x ^= x << 5;
                            (x % 61) as i16 - 30
                        })
                    })
                    .collect();
                at += 160;
                // Crest sends nothing while it has nothing to say: a tick without a packet
                // counts as 20 ms of quiet.
                if heard.len() < heard_at_tick + 160 {
                    heard.resize(heard_at_tick + 160, 0);
                }
                heard_at_tick = heard.len();
                self.enc.encode(&frame, &mut payload).unwrap();
                self.ts = self.ts.wrapping_add(160);
                let (pt, ts, p) = (self.pt, self.ts, payload.clone());
                self.send_raw(pt, false, ts, &p);
                if at >= pcm.len() && stop(&heard) {
                    break;
                }
            }
            while let Ok((n, _)) = self.sock.recv_from(&mut buf) {
                if let Ok(p) = RtpPacket::parse(&buf[..n])
                    && p.payload_type == self.pt
                {
                    let _ = self.dec.decode(p.payload, &mut heard);
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        heard
    }

    /// Keeps a quiet line until Crest has said at least `min_secs` of speech and then been
    /// quiet for `gap` (its prompt ended); returns what it said. Panics after `limit`.
    pub fn hear_prompt(&mut self, min_secs: f64, gap: Duration, limit: Duration) -> Vec<i16> {
        let heard = self.speak_until(&[], limit, prompt_ended(min_secs, gap));
        assert!(
            prompt_ended(min_secs, gap)(&heard),
            "Crest did not say {min_secs} s and stop within {limit:?}: {} s heard",
            speech_secs(&heard)
        );
        heard
    }

    /// Presses `key` by RFC 4733 (payload type `pt`), 100 ms, then 100 ms of quiet line.
    pub fn press(&mut self, pt: u8, key: char) {
        self.ts = self.ts.wrapping_add(160);
        let ts = self.ts;
        for (i, e) in crest_media::dtmf::event_payloads(key, 800, 160)
            .iter()
            .enumerate()
        {
            self.send_raw(pt, i == 0, ts, e);
            std::thread::sleep(Duration::from_millis(20));
        }
        self.ts = self.ts.wrapping_add(800);
        self.speak_until(&[], Duration::from_millis(100), |_| false);
    }
}

/// Whether what was heard holds `min_secs` of speech and ends with `gap` of quiet.
pub fn prompt_ended(min_secs: f64, gap: Duration) -> impl Fn(&[i16]) -> bool {
    let quiet = (gap.as_millis() / 20) as usize * 160;
    move |h: &[i16]| {
        h.len() > quiet && speech_secs(h) >= min_secs && speech_secs(&h[h.len() - quiet..]) == 0.0
    }
}

/// Seconds of speech-level audio in `pcm` (8 kHz).
pub fn speech_secs(pcm: &[i16]) -> f64 {
    pcm.chunks(160).filter(|f| loud(f)).count() as f64 * 0.02
}

impl Phone {
    /// Registers as `user` (password "secret") with digest authentication; binds this
    /// phone's address.
    pub fn register(&mut self, user: &str) {
        let uri = format!("sip:{}", self.to);
        let register = |cseq: u32, auth: &str| {
            format!(
                "REGISTER {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKreg{cseq};rport\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:{user}@127.0.0.1>;tag=r{port}\r\nTo: <sip:{user}@127.0.0.1>\r\n\
                 Call-ID: reg-{port}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@127.0.0.1:{port}>\r\n\
                 Expires: 600\r\n{auth}Content-Length: 0\r\n\r\n",
                port = self.port()
            )
        };
        self.send(&register(1, ""));
        let challenge = self.recv_where(Duration::from_secs(5), |m| !m.starts_with("SIP/2.0 "));
        assert!(challenge.starts_with("SIP/2.0 401"), "{challenge}");
        let auth = crate::common::register_authorization(&challenge, user, &uri);
        self.send(&register(2, &auth));
        let ok = self.recv_where(Duration::from_secs(5), |m| !m.starts_with("SIP/2.0 "));
        assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    }
}

/// The caller (left) and callee (right) channels of a stereo 16-bit WAV.
pub fn channels(wav: &[u8]) -> (Vec<f64>, Vec<f64>) {
    assert_eq!(&wav[..4], b"RIFF");
    let data = wav.windows(4).position(|w| w == b"data").unwrap() + 8;
    let len = u32::from_le_bytes(wav[data - 4..data].try_into().unwrap()) as usize;
    assert_eq!(len, wav.len() - data, "the WAV's data size is the real one");
    let s: Vec<f64> = wav[data..]
        .chunks(2)
        .map(|c| f64::from(i16::from_le_bytes([c[0], c[1]])))
        .collect();
    (
        s.iter().step_by(2).copied().collect(),
        s.iter().skip(1).step_by(2).copied().collect(),
    )
}
