//! The ids Crest's crates share.
//!
//! A call has one [`CallId`] from the moment the SIP core takes its INVITE (or mints it for a
//! callback it dials) until its last leg is gone. The SIP core, the media plane, the bandwidth
//! ledger, the call controller, the ACD and the recorder all key the call by it, so a call's
//! state cannot be looked up with some other number by mistake.
//!
//! ```text
//!   INVITE ─► sip-proxy mints CallId ─► media (sockets, ledger) ─► call controller ─► ACD
//!                                                 └──────────────► recorder
//! ```
//!
//! It is not the SIP `Call-ID` header: that names one leg's dialog (a call has two, with
//! different Call-IDs), and logs carry it as `call_id`; this one is logged as `call`.
#![forbid(unsafe_code)]

use std::fmt;

/// Crest's id of a call (both its legs), unique within a running node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::CallId;

    #[test]
    fn shows_as_a_number_sign_and_the_number() {
        assert_eq!(CallId(42).to_string(), "#42");
    }
}
