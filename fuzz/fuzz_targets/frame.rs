//! `decode_frame::<Request>` and `decode_frame::<Response>` on arbitrary bytes, read as a
//! stream of frames: never panics, never claims more bytes than it was given, and every
//! decoded message re-encodes to a frame that decodes to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealprint_fuzz::MAX_FRAME;
use sealprint_protocol::{decode_frame, encode_frame, Request, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;

fn stream<T: DeserializeOwned + Serialize + PartialEq + Debug>(mut buf: &[u8]) {
    while let Ok(Some((msg, used))) = decode_frame::<T>(buf, MAX_FRAME) {
        assert!(
            used > 0 && used <= buf.len(),
            "frame used {used} of {} bytes",
            buf.len()
        );
        let frame = encode_frame(&msg, MAX_FRAME).expect("a decoded message re-encodes");
        let back = decode_frame::<T>(&frame, MAX_FRAME);
        assert_eq!(
            back,
            Ok(Some((msg, frame.len()))),
            "frame does not round-trip"
        );
        buf = &buf[used..];
    }
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the direction, so each seed is fed to the decoder it was made for.
    let Some((&dir, rest)) = data.split_first() else {
        return;
    };
    if dir & 1 == 0 {
        stream::<Request>(rest);
    } else {
        stream::<Response>(rest);
    }
});
