//! The agent's IPP response decoder on arbitrary bytes (what a printer or CUPS answers), then
//! the judgement of the decoded attributes as a direct printer and as a CUPS queue: never
//! panics; a message ends exactly at its `data_offset` (the same message from those bytes
//! alone, incomplete one byte earlier); values and strings stay within the decoder's bounds;
//! every reason shown to a person is printable ASCII; a verified printer has an identity.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealprint_agent::printer::fuzzing::{ipp_decode, ipp_judge, Ipp, IPP_MAX_TEXT, IPP_MAX_VALUES};

fuzz_target!(|data: &[u8]| {
    let Ipp::Decoded {
        data_offset,
        values,
        longest_text,
        debug,
    } = ipp_decode(data)
    else {
        return;
    };
    assert!(
        (9..=data.len()).contains(&data_offset),
        "data_offset {data_offset}"
    );
    assert!(values <= IPP_MAX_VALUES, "{values} values");
    assert!(
        longest_text <= IPP_MAX_TEXT,
        "a {longest_text}-byte string kept"
    );
    match ipp_decode(&data[..data_offset]) {
        Ipp::Decoded { debug: again, .. } => {
            assert_eq!(again, debug, "the data changed the message")
        }
        other => panic!("the message alone decodes as {other:?}"),
    }
    assert_eq!(ipp_decode(&data[..data_offset - 1]), Ipp::Incomplete);

    let judged = ipp_judge(data, "queue-1").expect("a decoded message is judged");
    for reason in &judged.reasons {
        assert!(
            reason.bytes().all(|b| (0x20..=0x7e).contains(&b)),
            "a device string reached a reason unfiltered: {reason:?}"
        );
    }
    if judged.verified {
        assert!(judged.identity.is_some(), "verified without an identity");
    }
    if let Some(id) = &judged.identity {
        assert!(
            (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic()),
            "identity {id:?}"
        );
    }
});
