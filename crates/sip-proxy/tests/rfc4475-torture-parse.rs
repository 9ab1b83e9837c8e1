//! Walks `../shared/testdata/sip-torture-rfc4475/MANIFEST.tsv` at the message layer: every valid
//! message parses, validates and round-trips through its canonical form; every invalid one is
//! refused with the status the manifest names (or dropped, for responses); nothing panics.

use std::path::PathBuf;

use bytes::Bytes;
use crest_sip_proxy::{Framing, Message};

pub fn torture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/sip-torture-rfc4475")
}

/// What the message layer must do with a file of class other than `valid`.
fn expected(file: &str) -> Option<u16> {
    // None: parses and validates (the endpoint decides what to do with it).
    // Some(code): parse or validate fails with this status (0: a response, dropped).
    match file {
        "badinv01.dat" | "clerr.dat" | "ncl.dat" | "scalar02.dat" | "quotbal.dat"
        | "ltgtruri.dat" | "lwsruri.dat" | "lwsstart.dat" | "trws.dat" | "escruri.dat"
        | "regbadct.dat" | "baddn.dat" | "mismatch01.dat" | "mismatch02.dat" | "multi01.dat"
        | "mcl01.dat" | "insuf.dat" => Some(400),
        "badvers.dat" => Some(505),
        "scalarlg.dat" | "bigcode.dat" => Some(0),
        // "400 or tolerate": Crest tolerates spaces inside <> and a non-GMT Date.
        "badaspec.dat" | "baddate.dat" => None,
        _ => None,
    }
}

#[test]
fn every_manifest_entry_gets_its_handling() {
    let dir = torture_dir();
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv")).expect("MANIFEST.tsv");
    let mut checked = 0;
    for line in manifest
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let mut cols = line.split('\t');
        let (Some(file), Some(class)) = (cols.next(), cols.next()) else {
            panic!("manifest line without file and class: {line:?}");
        };
        let data = std::fs::read(dir.join(file)).unwrap();
        let parsed = Message::parse(Bytes::from(data), Framing::Datagram);
        let outcome = parsed
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|m| m.validate().map(|()| m));
        match (class, expected(file)) {
            ("valid", _) | (_, None) => {
                let m = outcome.unwrap_or_else(|e| panic!("{file} ({class}) must parse: {e}"));
                let canonical = m.to_canonical();
                let again = Message::parse(Bytes::from(canonical.clone()), Framing::Datagram)
                    .unwrap_or_else(|e| panic!("{file}: canonical form does not parse: {e}"));
                assert_eq!(
                    again.to_canonical(),
                    canonical,
                    "{file}: round trip differs"
                );
                assert_eq!(again.headers().len(), m.headers().len(), "{file}");
                assert_eq!(again.body(), m.body(), "{file}");
            }
            (_, Some(0)) => {
                let refused = match &outcome {
                    Err(_) => true,
                    Ok(m) => m.cseq().is_none(),
                };
                assert!(refused, "{file}: response with bad scalars must be dropped");
            }
            (_, Some(code)) => {
                // Framing must succeed so that the sender can be answered; validation fails.
                let m = parsed.unwrap_or_else(|e| panic!("{file}: must frame to be answered: {e}"));
                let e = m.validate().expect_err(file);
                assert_eq!(e.status(), code, "{file}: {e}");
            }
        }
        checked += 1;
    }
    assert_eq!(checked, 49, "the manifest lists 49 messages");
}

#[test]
fn dblreq_ignores_the_second_message() {
    let data = std::fs::read(torture_dir().join("dblreq.dat")).unwrap();
    let m = Message::parse(Bytes::from(data), Framing::Datagram).unwrap();
    assert_eq!(m.method(), Some("REGISTER"));
    assert!(m.body().is_empty());
}
