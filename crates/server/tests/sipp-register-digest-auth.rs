//! sipp registers with digest authentication (401 challenge, then MD5 credentials); a wrong
//! password gets 403; the binding is counted.

mod common;
use common::*;

#[test]
fn register_with_digest_auth_and_wrong_password_is_forbidden() {
    let crest = Crest::start("register", "");
    let out = register(&crest, "alice", "secret", free_port(), "register_ok.xml");
    assert_ok("REGISTER alice/secret", &out, &crest);
    assert_eq!(crest.metric("crest_registered_aors"), 1);
    let out = register(
        &crest,
        "bob",
        "wrong",
        free_port(),
        "register_forbidden.xml",
    );
    assert_ok("REGISTER bob/wrong -> 403", &out, &crest);
    assert_eq!(crest.metric("crest_registrations_total"), 1);
    assert!(
        crest.metric("crest_sip_auth_rejected_total") >= 2,
        "two challenges and one 403"
    );
}
