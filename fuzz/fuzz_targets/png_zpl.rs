//! PNG→ZPL conversion (`png_to_zpl`, the agent's path for PNG labels to raw Zebra printers)
//! on arbitrary bytes. Chunk CRCs are recomputed first when the input starts with the PNG
//! signature, so the fuzzer gets past the CRC checks into the decoder and the conversion.
//! Never panics; a converted label is one `^GF` graphic of exactly the image's size: the
//! header's width and height, `ceil(w/8) * h` bytes, as many hex digit pairs, `^FS^XZ`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealprint_agent::printer::fuzzing::{png_to_zpl, MAX_SIDE};
use sealprint_fuzz::fix_png_crcs;

fuzz_target!(|data: &[u8]| {
    let png = fix_png_crcs(data);
    let Ok(zpl) = png_to_zpl(&png) else {
        return;
    };
    let text = std::str::from_utf8(&zpl).expect("zpl is ascii");
    let rest = text.strip_prefix("^XA^PW").expect("starts with ^XA^PW");
    let (w, rest) = rest.split_once("^LL").expect("^LL");
    let (h, rest) = rest.split_once("^FO0,0^GFA,").expect("^GFA");
    let (w, h): (u32, u32) = (w.parse().expect("width"), h.parse().expect("height"));
    assert!(
        (1..=MAX_SIDE).contains(&w) && (1..=MAX_SIDE).contains(&h),
        "{w}x{h}"
    );
    let mut fields = rest.splitn(4, ',');
    let total: usize = fields.next().and_then(|f| f.parse().ok()).expect("total");
    let again: usize = fields
        .next()
        .and_then(|f| f.parse().ok())
        .expect("total again");
    let row: usize = fields
        .next()
        .and_then(|f| f.parse().ok())
        .expect("row bytes");
    let hex = fields
        .next()
        .and_then(|f| f.strip_suffix("^FS^XZ"))
        .expect("ends with ^FS^XZ");
    assert_eq!(row, (w as usize).div_ceil(8));
    assert_eq!(total, row * h as usize);
    assert_eq!(again, total);
    assert_eq!(hex.len(), 2 * total);
    assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()));
});
