//! The Zebra answer parsers (`~HI`, `~HS`, SGD getvar, `~HQES`) on arbitrary bytes, as an
//! impostor device may answer. The first byte picks the parser and a split point. Never
//! panics; an answer uses only bytes it was given and parses the same from those bytes alone;
//! and the parsers are consistent with the agent's streaming reader, which stops at the first
//! `Malformed`: a malformed beginning stays malformed whatever follows, and an answer parsed
//! from a beginning is the same answer when more bytes follow.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealprint_agent::printer::fuzzing::{zebra_parse, Zebra, ZebraQuery};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let query = [
        ZebraQuery::Hi,
        ZebraQuery::Hs,
        ZebraQuery::Getvar,
        ZebraQuery::Hqes,
    ][usize::from(sel & 3)];
    let full = zebra_parse(query, rest);
    if let Zebra::Parsed { used, .. } = &full {
        assert!(*used <= rest.len(), "used {used} of {}", rest.len());
        assert_eq!(zebra_parse(query, &rest[..*used]), full, "{query:?}");
    }
    let split = rest.len() * usize::from(sel >> 2) / 63;
    match zebra_parse(query, &rest[..split]) {
        Zebra::Incomplete => {}
        Zebra::Malformed => assert_eq!(
            full,
            Zebra::Malformed,
            "{query:?}: malformed after {split} bytes, not after {}",
            rest.len()
        ),
        Zebra::Parsed { value, used } => match &full {
            Zebra::Parsed { value: v, used: u } => {
                assert_eq!(v, &value, "{query:?}: more bytes changed the answer");
                assert!(*u >= used);
            }
            other => panic!("{query:?}: parsed after {split} bytes, then {other:?}"),
        },
    }
});
