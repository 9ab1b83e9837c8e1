//! Mutation testing of the parser (stable-toolchain stand-in for a cargo-fuzz target): the RFC
//! 4475 messages with bytes flipped, inserted, deleted and cut, and plain random bytes, never
//! panic; whatever parses and validates prints to a canonical form that parses to the same
//! message; and the endpoint survives every mutant.

mod common;

use std::path::PathBuf;

use bytes::Bytes;
use common::*;
use crest_sip_proxy::{Flow, Framing, Message};
use proptest::prelude::*;

fn corpus() -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata/sip-torture-rfc4475");
    let mut v: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "dat"))
        .map(|e| std::fs::read(e.path()).unwrap())
        .collect();
    v.sort();
    v
}

#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
}

fn apply(mut data: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        if data.is_empty() {
            break;
        }
        let n = data.len();
        match *e {
            Edit::Flip(i, b) => data[i % n] ^= b | 1,
            Edit::Insert(i, b) => data.insert(i % n, b),
            Edit::Delete(i) => {
                data.remove(i % n);
            }
            Edit::Truncate(i) => data.truncate(i % n),
        }
    }
    data
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Flip(i, b)),
        (
            any::<usize>(),
            prop::sample::select(b": ;,<>\"\r\n\t%@[]=".to_vec())
        )
            .prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<usize>().prop_map(Edit::Delete),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn check(data: Vec<u8>) {
    for framing in [Framing::Datagram, Framing::Stream] {
        let Ok(m) = Message::parse(Bytes::from(data.clone()), framing) else {
            continue;
        };
        if m.validate().is_ok() {
            let canonical = m.to_canonical();
            let again = Message::parse(Bytes::from(canonical.clone()), Framing::Datagram)
                .expect("the canonical form of a valid message parses");
            assert_eq!(again.to_canonical(), canonical);
            let _ = (
                again.top_via(),
                again.cseq(),
                again.from_hdr(),
                again.to_hdr(),
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn mutated_torture_messages(pick in any::<prop::sample::Index>(), edits in prop::collection::vec(edit(), 1..6)) {
        let corpus = corpus();
        let data = apply(corpus[pick.index(corpus.len())].clone(), &edits);
        check(data.clone());
        let mut h = Harness::new(default_sip());
        h.ep.handle_input(h.now, Flow::udp(addr(CALLER)), Bytes::from(data));
        while h.ep.poll_transmit().is_some() {}
    }

    #[test]
    fn random_bytes(data in prop::collection::vec(any::<u8>(), 0..600)) {
        check(data);
    }
}
