//! SP-API label decoding (`decode_label`: strict base64, gunzip with a cap, MD5 checksum,
//! magic against the declared type). The first byte picks a mode:
//! - raw: the rest is `contents\nfile_type\nchecksum`, taken as SP-API sent them;
//! - built: the rest is a label file, encoded as SP-API does (base64, gzipped or not, with a
//!   checksum over the received or the decompressed bytes, or none, under a declared type).
//!
//! Never panics; an accepted label is 1..=cap bytes whose magic is its format, agrees with
//! the declared type, and matches the checksum it reports; a built label whose file has a
//! known magic that agrees with the declared type comes back byte for byte, with the gzip
//! and checksum facts it was built with.
#![no_main]

use std::io::Write as _;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use md5::{Digest as _, Md5};
use sealprint_coordinator::services::spapi::label::{decode_label_capped, sniff};
use sealprint_coordinator::services::spapi::ChecksumMatch;
use sealprint_protocol::LabelFormat;

/// A small cap, so the size checks are reachable.
const CAP: usize = 64 * 1024;

/// Declared types: MFN MIME types, Shipping v2 names, MFN label formats, empty, unknown.
const TYPES: [(&str, Option<LabelFormat>); 10] = [
    ("", None),
    ("application/pdf", Some(LabelFormat::Pdf)),
    ("PDF", Some(LabelFormat::Pdf)),
    ("image/png", Some(LabelFormat::Png)),
    ("png", Some(LabelFormat::Png)),
    ("application/zpl", Some(LabelFormat::Zpl)),
    ("zpl", Some(LabelFormat::Zpl)),
    ("ZPL203", Some(LabelFormat::Zpl)),
    (" zpl300 ", Some(LabelFormat::Zpl)),
    ("text/plain", None),
];

fn declared(file_type: &str) -> Option<LabelFormat> {
    TYPES
        .iter()
        .find(|(t, _)| t.trim().eq_ignore_ascii_case(file_type.trim()))
        .and_then(|(_, f)| *f)
}

fn md5_b64(bytes: &[u8]) -> String {
    STANDARD.encode(Md5::digest(bytes))
}

fn check(contents: &str, file_type: &str, checksum: Option<&str>) {
    let Ok(label) = decode_label_capped(contents, file_type, checksum, CAP) else {
        return;
    };
    assert!((1..=CAP).contains(&label.bytes.len()));
    assert_eq!(sniff(&label.bytes), Some(label.format));
    if !file_type.trim().is_empty() {
        assert_eq!(declared(file_type), Some(label.format), "{file_type:?}");
    }
    let received = STANDARD
        .decode(contents)
        .expect("accepted contents are base64");
    let given = checksum.map(str::trim).filter(|c| !c.is_empty());
    match label.checksum {
        ChecksumMatch::Absent => assert!(given.is_none()),
        ChecksumMatch::Received => assert_eq!(given, Some(md5_b64(&received).as_str())),
        ChecksumMatch::Decompressed => {
            assert!(label.gzipped);
            assert_eq!(given, Some(md5_b64(&label.bytes).as_str()));
        }
    }
    if !label.gzipped {
        assert_eq!(&label.bytes[..], &received[..]);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        let Ok(text) = std::str::from_utf8(rest) else {
            return;
        };
        let mut parts = text.splitn(3, '\n');
        let contents = parts.next().unwrap_or("");
        let file_type = parts.next().unwrap_or("");
        let checksum = parts.next();
        check(contents, file_type, checksum);
        return;
    }
    let gzip = mode & 2 != 0;
    let (file_type, _) = TYPES[usize::from(mode >> 4) % TYPES.len()];
    let sent = if gzip {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(rest).expect("gzip to memory");
        e.finish().expect("gzip to memory")
    } else {
        rest.to_vec()
    };
    let checksum = match (mode >> 2) & 3 {
        1 => Some(md5_b64(&sent)),
        2 => Some(md5_b64(rest)),
        _ => None,
    };
    let contents = STANDARD.encode(&sent);
    check(&contents, file_type, checksum.as_deref());
    let result = decode_label_capped(&contents, file_type, checksum.as_deref(), CAP);
    let Some(format) = sniff(rest) else {
        assert!(result.is_err(), "a file without a known magic accepted");
        return;
    };
    let fits = sent.len() <= CAP && rest.len() <= CAP;
    let agrees = file_type.trim().is_empty() || declared(file_type) == Some(format);
    if !(fits && agrees) {
        assert!(result.is_err());
        return;
    }
    let label = result.unwrap_or_else(|e| panic!("a well-formed label refused: {e}"));
    assert_eq!(&label.bytes[..], rest, "the label changed");
    assert_eq!(label.format, format);
    assert_eq!(label.gzipped, gzip);
    let want = match ((mode >> 2) & 3, gzip) {
        (1, _) => ChecksumMatch::Received,
        (2, true) => ChecksumMatch::Decompressed,
        (2, false) => ChecksumMatch::Received,
        _ => ChecksumMatch::Absent,
    };
    assert_eq!(label.checksum, want);
});
