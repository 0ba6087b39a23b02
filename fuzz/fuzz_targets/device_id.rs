//! What printers and the CUPS scheduler say about devices, on arbitrary strings: IEEE 1284
//! device ids (sysfs, IPP `printer-device-id`), CUPS `device-uri`s. The first byte picks.
//! Never panics; a serial is 1..=128 graphic ASCII bytes and a USB printer's serial is its
//! device id's; every reason is printable ASCII; `shown` never reveals the password of a
//! `scheme://user:password@host` URI, even one holding '@' or '/'.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealprint_agent::printer::fuzzing::{cups_device_uri, cups_shown, device_id};

fn printable(s: &str) -> bool {
    s.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

const SECRET: &str = "S3CRETPW";

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let Ok(s) = std::str::from_utf8(rest) else {
        return;
    };
    match sel % 3 {
        0 => {
            let judged = device_id(s);
            if let Some(serial) = &judged.serial {
                assert!((1..=128).contains(&serial.len()));
                assert!(serial.bytes().all(|b| b.is_ascii_graphic()), "{serial:?}");
            }
            match &judged.usb {
                Ok((serial, model, _)) => {
                    assert_eq!(Some(serial), judged.serial.as_ref());
                    assert!(model.len() <= 64 && printable(model), "{model:?}");
                }
                Err(reason) => assert!(printable(reason), "{reason:?}"),
            }
        }
        1 => {
            let (_, text) = cups_device_uri(s);
            if let Some(text) = text {
                assert!(printable(&text), "{text:?}");
            }
            assert!(printable(&cups_shown(s)));
        }
        _ => {
            // `SCHEME://USER:PASSWORD@REST`, the fuzzer choosing all but the password's end
            // (a password may hold '@' or '/': people write them unencoded).
            let mut parts = s.splitn(4, '\n');
            let mut part = || parts.next().unwrap_or("");
            let (scheme, user, password, rest) = (part(), part(), part(), part());
            if [scheme, user]
                .iter()
                .any(|p| p.contains(['/', '?', '#', '@', ':']))
                || password.contains(['?', '#'])
                || [scheme, user, rest].iter().any(|p| p.contains(SECRET))
            {
                return;
            }
            let uri = format!("{scheme}://{user}:{password}{SECRET}@{rest}");
            assert!(
                !cups_shown(&uri).contains(SECRET),
                "the password of {uri:?} is shown"
            );
            if let (_, Some(text)) = cups_device_uri(&uri) {
                assert!(
                    !text.contains(SECRET),
                    "the password of {uri:?} is in {text:?}"
                );
            }
        }
    }
});
