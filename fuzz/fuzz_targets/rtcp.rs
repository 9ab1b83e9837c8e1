//! RTCP compound packets and RFC 4733 telephone-event payloads.
#![no_main]
use crest_media::dtmf::TelephoneEvent;
use crest_media::rtcp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = rtcp::parse_compound(data);
    let _ = TelephoneEvent::parse(data);
});
