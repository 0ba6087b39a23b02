//! `EnrollmentToken::from_str` on arbitrary text: never panics, and a token it accepts
//! prints to a string that parses back to the same token.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealprint_protocol::EnrollmentToken;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(token) = text.parse::<EnrollmentToken>() else {
        return;
    };
    let again = token.to_string().parse::<EnrollmentToken>();
    assert_eq!(again.as_ref(), Ok(&token), "token does not round-trip");
    let _ = token.check_fresh(0);
});
