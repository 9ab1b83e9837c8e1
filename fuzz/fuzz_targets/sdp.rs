//! SDP: parse, and an offer/answer round through the call anchor.
#![no_main]
use crest_media::anchor::{AnchorConfig, CallAnchor, Role};
use crest_media::bridge::Side;
use crest_media::codec::CodecKind;
use crest_media::sdp::Sdp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(sdp) = Sdp::parse(text) {
        let _ = Sdp::parse(&sdp.to_string()).expect("own output parses");
    }
    let cfg = AnchorConfig {
        address: "192.0.2.1".parse().expect("an address"),
        codecs: CodecKind::ALL.to_vec(),
        ptime: 20,
    };
    let mut a = CallAnchor::new(30000, 30002, 1);
    if a.exchange(&cfg, Side::A, Role::Offer, Some(text)).is_ok() {
        let _ = a.exchange(&cfg, Side::B, Role::Answer, Some(text));
    }
});
