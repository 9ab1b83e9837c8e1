//! Crest media plane (placeholder crate of the workspace).
//!
//! Will hold the anchored RTP/RTCP sessions, SDP offer/answer, codecs, DTMF, jitter buffer,
//! bridging, prompts and bandwidth accounting (issue "Media plane"). Until then the SIP core relays
//! SDP between the legs of a call unchanged.
