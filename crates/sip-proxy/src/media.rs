//! The media layer as the SIP core sees it: every SDP body that crosses the B2BUA, and the
//! absence of one where an offer was due, goes through a [`MediaHook`], which anchors the
//! call's RTP (crest-media) and returns the SDP for the other leg. Without a hook, SDP is
//! relayed unchanged.

use std::fmt;

use crest_ids::CallId;
use std::time::Instant;

use crate::call::Side;
use crate::config::App;

/// Whether a body (or its absence) is an offer or an answer (RFC 3264).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdpRole {
    /// An INVITE, re-INVITE or UPDATE.
    Offer,
    /// A response to one, or the ACK that answers an offer made in a 2xx.
    Answer,
}

/// The call a hook call is about.
#[derive(Debug, Clone, Copy)]
pub struct CallInfo<'a> {
    /// The endpoint's key for the call (as in [`crate::Endpoint::hang_up`]).
    pub key: CallId,
    /// The caller's Call-ID, for logs.
    pub call_id: &'a str,
    /// The number dialled (the route).
    pub number: &'a str,
    /// The caller's user part (their number), as the From header gives it.
    pub caller: &'a str,
    /// What Crest does with a call it answers itself (`None`: a call Crest bridges).
    pub app: Option<&'a App>,
}

/// What became of the leg Crest placed towards an agent (or a transfer target) for a call it
/// answered itself ([`crate::Endpoint::connect`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegEvent {
    /// The far end rings.
    Ringing,
    /// The far end answered: the legs are bridged.
    Answered,
    /// The far end did not answer: its status (480 when it rang out, 408 when it never
    /// responded, 486 busy, …). The caller stays with Crest.
    Failed(u16),
    /// The far end hung up after answering (its BYE was answered): the caller stays with
    /// Crest, which plays to them again or hangs up.
    Ended,
}

/// What the media layer does for the SIP core.
pub trait MediaHook: fmt::Debug + Send {
    /// An SDP body from leg `from` (or none where one could be), on its way to the other leg.
    /// Returns the body to send there (`None`: no body), or the SIP status refusing it
    /// (488 for no common codec, 400 for unreadable SDP, 503 when no port or bandwidth).
    fn exchange(
        &mut self,
        now: Instant,
        call: &CallInfo<'_>,
        from: Side,
        role: SdpRole,
        sdp: Option<&[u8]>,
    ) -> Result<Option<Vec<u8>>, u16>;

    /// An INFO request in the call; `true` when the media layer took it (a DTMF key it
    /// passes on in the media): Crest answers 200 and does not relay it.
    fn info(
        &mut self,
        now: Instant,
        call: CallId,
        from: Side,
        content_type: &str,
        body: &[u8],
    ) -> bool;

    /// Crest answers leg A of a call itself (an application route): the caller's offer (or
    /// none: Crest offers in the 200 and the answer comes in the ACK, through
    /// [`Self::exchange`]) in, Crest's SDP for leg A out.
    fn answer(
        &mut self,
        now: Instant,
        call: &CallInfo<'_>,
        sdp: Option<&[u8]>,
    ) -> Result<Vec<u8>, u16>;

    /// Crest's offer for a new leg B of a call it answered itself; the answer comes through
    /// [`Self::exchange`] from leg B.
    fn offer_b(&mut self, now: Instant, call: CallId) -> Result<Vec<u8>, u16>;

    /// What became of that leg B.
    fn leg_b(&mut self, now: Instant, call: CallId, event: LegEvent);

    /// Crest places a call itself ([`crate::Endpoint::originate`], a callback): Crest's offer
    /// for leg A (the customer); the answer comes through [`Self::exchange`] from leg A.
    fn originate(&mut self, now: Instant, call: &CallInfo<'_>) -> Result<Vec<u8>, u16>;

    /// What became of the leg A Crest placed.
    fn leg_a(&mut self, now: Instant, call: CallId, event: LegEvent);

    /// The call ended: release its media.
    fn ended(&mut self, now: Instant, call: CallId);
}
