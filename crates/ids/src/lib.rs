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
//!
//! [`mask`] is how a caller's number is shown wherever it leaves the call's own state (logs,
//! the wallboard, the agent's screen): its first two and last two characters.
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

/// A number or user name as logs and screens show it: the first two and last two characters,
/// stars between (all stars up to four characters).
pub fn mask(user: &str) -> String {
    let n = user.chars().count();
    if n <= 4 {
        return "*".repeat(n);
    }
    user.chars()
        .enumerate()
        .map(|(i, c)| if i < 2 || i >= n - 2 { c } else { '*' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{CallId, mask};

    #[test]
    fn shows_as_a_number_sign_and_the_number() {
        assert_eq!(CallId(42).to_string(), "#42");
    }

    #[test]
    fn numbers_are_masked_but_their_ends() {
        assert_eq!(mask("+8613812345678"), "+8**********78");
        assert_eq!(mask("4001"), "****");
        assert_eq!(mask(""), "");
    }
}
