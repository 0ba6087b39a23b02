//! Strict decoding of the label bytes SP-API returns.
//!
//! MFN v0 sends `FileContents {Contents, FileType, Checksum}` where `Contents` is base64 of
//! gzip; Shipping v2 sends `{contents, format}` with base64 of the raw file. Both go through
//! [`decode_label`]:
//!
//! 1. base64, strictly (padding required): the MFN sandbox's truncated, unpadded samples are
//!    refused with [`LabelError::Base64`];
//! 2. gunzip only when the bytes start with `1f 8b` (a PDF from some carriers is not gzipped),
//!    multi-member, with the output capped at [`MAX_LABEL_LEN`] (a decompression bomb stops
//!    there);
//! 3. the MD5 `Checksum` (base64 of the 16-byte digest) when one is given: neither the model
//!    nor the docs say whether it covers the gzip bytes or the file, so both are tried and
//!    the one that matched is reported;
//! 4. the file's magic (`%PDF-`, the PNG signature, ZPL's `^XA`) must agree with the declared
//!    type; an empty declared type (seen in real answers) is tolerated and the magic decides.
//!
//! Every buffer that holds label bytes is a [`Zeroizing`] vector that is never reallocated in
//! place (it grows by copying into a new zeroizing buffer), so no copy is left behind. What
//! it does not control: the inflater's internal window and hyper's receive buffers.

use std::io::Read;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use md5::{Digest, Md5};
use sealprint_protocol::envelope::MAX_LABEL_LEN;
use sealprint_protocol::LabelFormat;
use thiserror::Error;
use zeroize::Zeroizing;

use crate::core::buffer::push_zeroizing;

/// Why a label was refused. Messages never hold label bytes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum LabelError {
    /// The answer carried no label contents.
    #[error("the answer holds no label contents")]
    Empty,
    /// Not valid padded base64 (the MFN sandbox's truncated, unpadded samples end here).
    #[error("label contents are not valid padded base64 (truncated or unpadded)")]
    Base64,
    /// Larger than the cap, before or after gunzip.
    #[error("label is larger than {0} bytes")]
    TooLarge(usize),
    /// The bytes start like gzip but do not inflate.
    #[error("label gzip stream is corrupt")]
    Gzip,
    /// The checksum is not base64 of 16 bytes.
    #[error("label checksum is not base64 of an md5 digest")]
    ChecksumMalformed,
    /// The MD5 matches neither the compressed nor the decompressed bytes.
    #[error("label checksum does not match")]
    ChecksumMismatch,
    /// The declared file type is not one sealprint prints.
    #[error("label file type is not pdf, png or zpl")]
    UnknownFileType,
    /// The bytes are not a PDF, a PNG or ZPL.
    #[error("label bytes are not a pdf, png or zpl file")]
    Unrecognised,
    /// The bytes are another type than the declared one.
    #[error("label declared as {declared} but the bytes are {found}")]
    TypeMismatch {
        /// The declared type.
        declared: &'static str,
        /// What the magic says.
        found: &'static str,
    },
}

/// Which bytes the MD5 checksum covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumMatch {
    /// No checksum was given (Shipping v2, or an empty `Checksum`).
    Absent,
    /// It matched the bytes as received (after base64, before gunzip).
    Received,
    /// It matched the decompressed file.
    Decompressed,
}

impl ChecksumMatch {
    /// Name for job records and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ChecksumMatch::Absent => "absent",
            ChecksumMatch::Received => "received",
            ChecksumMatch::Decompressed => "decompressed",
        }
    }
}

/// A decoded label: the file's bytes (zeroized on drop) and what was learnt about them.
pub struct DecodedLabel {
    /// The file.
    pub bytes: Zeroizing<Vec<u8>>,
    /// Its format (from the magic, which agrees with the declared type).
    pub format: LabelFormat,
    /// Whether it arrived gzipped.
    pub gzipped: bool,
    /// What the checksum covered.
    pub checksum: ChecksumMatch,
}

impl std::fmt::Debug for DecodedLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodedLabel")
            .field("len", &self.bytes.len())
            .field("format", &self.format)
            .field("gzipped", &self.gzipped)
            .field("checksum", &self.checksum)
            .finish()
    }
}

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";
/// How far into a ZPL file that opens with `~` commands `^XA` is looked for.
const ZPL_PREAMBLE: usize = 64 * 1024;

/// The declared type: MFN's MIME types, Shipping v2's `PDF|PNG|ZPL`, and MFN's
/// `ZPL203`/`ZPL300` label formats; `""` means "not said".
fn declared(file_type: &str) -> Result<Option<LabelFormat>, LabelError> {
    let t = file_type.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let f = match t.to_ascii_lowercase().as_str() {
        "application/pdf" | "pdf" => LabelFormat::Pdf,
        "image/png" | "png" => LabelFormat::Png,
        "application/zpl" | "zpl" | "zpl203" | "zpl300" => LabelFormat::Zpl,
        _ => return Err(LabelError::UnknownFileType),
    };
    Ok(Some(f))
}

/// The format the bytes' magic says, if any.
pub fn sniff(bytes: &[u8]) -> Option<LabelFormat> {
    if bytes.starts_with(b"%PDF-") {
        return Some(LabelFormat::Pdf);
    }
    if bytes.starts_with(PNG_MAGIC) {
        return Some(LabelFormat::Png);
    }
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let rest = &bytes[start..];
    if rest.starts_with(b"^XA") {
        return Some(LabelFormat::Zpl);
    }
    if rest.starts_with(b"~") {
        let head = &rest[..rest.len().min(ZPL_PREAMBLE)];
        if head.windows(3).any(|w| w == b"^XA") {
            return Some(LabelFormat::Zpl);
        }
    }
    None
}

fn gunzip(compressed: &[u8], limit: usize) -> Result<Zeroizing<Vec<u8>>, LabelError> {
    let mut decoder = flate2::read::MultiGzDecoder::new(compressed);
    let mut out = Zeroizing::new(Vec::with_capacity(
        compressed.len().saturating_mul(4).min(limit),
    ));
    let mut chunk = Zeroizing::new([0u8; 16 * 1024]);
    loop {
        let n = decoder
            .read(chunk.as_mut_slice())
            .map_err(|_| LabelError::Gzip)?;
        if n == 0 {
            break;
        }
        if out.len() + n > limit {
            return Err(LabelError::TooLarge(limit));
        }
        push_zeroizing(&mut out, &chunk[..n], limit);
    }
    Ok(out)
}

/// Decodes label `contents` (base64) declared as `file_type`, checking `checksum` (base64
/// MD5) when it is non-empty. See the module docs for every step.
///
/// # Errors
/// A [`LabelError`] naming the first check that failed.
pub fn decode_label(
    contents: &str,
    file_type: &str,
    checksum: Option<&str>,
) -> Result<DecodedLabel, LabelError> {
    decode_label_capped(contents, file_type, checksum, MAX_LABEL_LEN)
}

/// [`decode_label`] with another size cap (tests).
///
/// # Errors
/// As [`decode_label`].
pub fn decode_label_capped(
    contents: &str,
    file_type: &str,
    checksum: Option<&str>,
    limit: usize,
) -> Result<DecodedLabel, LabelError> {
    let declared = declared(file_type)?;
    if contents.is_empty() {
        return Err(LabelError::Empty);
    }
    // Bound the work before decoding: 4 base64 characters per 3 bytes.
    if contents.len() > limit.div_ceil(3) * 4 {
        return Err(LabelError::TooLarge(limit));
    }
    let expected = match checksum.map(str::trim).filter(|c| !c.is_empty()) {
        Some(c) => {
            let raw = STANDARD
                .decode(c)
                .map_err(|_| LabelError::ChecksumMalformed)?;
            let digest: [u8; 16] = raw
                .as_slice()
                .try_into()
                .map_err(|_| LabelError::ChecksumMalformed)?;
            Some(digest)
        }
        None => None,
    };
    let mut received = Zeroizing::new(Vec::with_capacity(contents.len() / 4 * 3 + 3));
    STANDARD
        .decode_vec(contents, &mut received)
        .map_err(|_| LabelError::Base64)?;
    if received.is_empty() {
        return Err(LabelError::Empty);
    }
    if received.len() > limit {
        return Err(LabelError::TooLarge(limit));
    }
    let gzipped = received.starts_with(GZIP_MAGIC);
    let bytes = if gzipped {
        gunzip(&received, limit)?
    } else {
        Zeroizing::new(Vec::new())
    };
    let file: &[u8] = if gzipped { &bytes } else { &received };
    if file.is_empty() {
        return Err(LabelError::Empty);
    }
    let checksum = match expected {
        None => ChecksumMatch::Absent,
        Some(d) if Md5::digest(received.as_slice()).as_slice() == d => ChecksumMatch::Received,
        Some(d) if gzipped && Md5::digest(file).as_slice() == d => ChecksumMatch::Decompressed,
        Some(_) => return Err(LabelError::ChecksumMismatch),
    };
    let found = sniff(file).ok_or(LabelError::Unrecognised)?;
    if let Some(d) = declared {
        if d != found {
            return Err(LabelError::TypeMismatch {
                declared: d.as_str(),
                found: found.as_str(),
            });
        }
    }
    let bytes = if gzipped { bytes } else { received };
    Ok(DecodedLabel {
        bytes,
        format: found,
        gzipped,
        checksum,
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use proptest::prelude::*;

    use super::*;

    const ZPL: &[u8] = b"^XA^FO50,50^ADN,36,20^FDSEALPRINT TEST^FS^XZ";

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).expect("gzip");
        e.finish().expect("gzip")
    }

    fn b64(data: &[u8]) -> String {
        STANDARD.encode(data)
    }

    fn md5b64(data: &[u8]) -> String {
        STANDARD.encode(Md5::digest(data))
    }

    fn png() -> Vec<u8> {
        let mut v = PNG_MAGIC.to_vec();
        v.extend_from_slice(b"\0\0\0\rIHDR fixture");
        v
    }

    #[test]
    fn mfn_gzip_with_checksum_of_either_form() {
        let z = gz(ZPL);
        let l = decode_label(&b64(&z), "application/zpl", Some(&md5b64(&z))).expect("ok");
        assert_eq!(l.bytes.as_slice(), ZPL);
        assert!(l.gzipped);
        assert_eq!(l.checksum, ChecksumMatch::Received);
        let l = decode_label(&b64(&z), "application/zpl", Some(&md5b64(ZPL))).expect("ok");
        assert_eq!(l.checksum, ChecksumMatch::Decompressed);
        assert_eq!(l.format, LabelFormat::Zpl);
    }

    #[test]
    fn plain_bytes_pass_without_gunzip() {
        let pdf = b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n%%EOF\n";
        let l = decode_label(&b64(pdf), "application/pdf", Some(&md5b64(pdf))).expect("ok");
        assert!(!l.gzipped);
        assert_eq!(l.format, LabelFormat::Pdf);
        let l = decode_label(&b64(&png()), "PNG", None).expect("ok");
        assert_eq!(l.format, LabelFormat::Png);
        assert_eq!(l.checksum, ChecksumMatch::Absent);
    }

    #[test]
    fn multi_member_gzip_is_joined() {
        let half = ZPL.len() / 2;
        let mut two = gz(&ZPL[..half]);
        two.extend_from_slice(&gz(&ZPL[half..]));
        let l = decode_label(&b64(&two), "", None).expect("ok");
        assert_eq!(l.bytes.as_slice(), ZPL);
    }

    #[test]
    fn sandbox_samples_are_refused_as_unpadded() {
        for s in ["H4sIAAAAAAAAAOR", "H4sIAAAAAAAAAOS6dV"] {
            assert_eq!(
                decode_label(s, "image/png", Some("d+eUxK5WTGxkGsTF0pmefQ==")).err(),
                Some(LabelError::Base64)
            );
        }
        // Padded, the sample is a bare gzip header: corrupt, not a panic.
        assert_eq!(
            decode_label("H4sIAAAAAAAAAOQ=", "image/png", None).err(),
            Some(LabelError::Gzip)
        );
    }

    #[test]
    fn checks_refuse_what_they_should() {
        let z = gz(ZPL);
        assert_eq!(
            decode_label(&b64(&z), "application/zpl", Some(&md5b64(b"other"))).err(),
            Some(LabelError::ChecksumMismatch)
        );
        assert_eq!(
            decode_label(&b64(&z), "application/zpl", Some("AAAA")).err(),
            Some(LabelError::ChecksumMalformed)
        );
        assert_eq!(
            decode_label(&b64(&z), "application/pdf", None).err(),
            Some(LabelError::TypeMismatch {
                declared: "pdf",
                found: "zpl"
            })
        );
        assert_eq!(
            decode_label(&b64(&z), "text/html", None).err(),
            Some(LabelError::UnknownFileType)
        );
        assert_eq!(
            decode_label(&b64(b"<html>"), "", None).err(),
            Some(LabelError::Unrecognised)
        );
        assert_eq!(decode_label("", "", None).err(), Some(LabelError::Empty));
        // Empty FileType and empty Checksum (the cancelShipment shape) are tolerated.
        let l = decode_label(&b64(&z), "", Some("")).expect("ok");
        assert_eq!(l.format, LabelFormat::Zpl);
    }

    #[test]
    fn zpl_with_tilde_preamble_and_whitespace() {
        assert_eq!(sniff(b"  \r\n^XA^XZ"), Some(LabelFormat::Zpl));
        assert_eq!(sniff(b"~JA~TA000^XA^XZ"), Some(LabelFormat::Zpl));
        assert_eq!(sniff(b"~JA no label"), None);
    }

    #[test]
    fn caps_hold_before_and_after_gunzip() {
        let limit = 1024;
        let big = vec![b'^'; 4096];
        assert_eq!(
            decode_label_capped(&b64(&big), "", None, limit).err(),
            Some(LabelError::TooLarge(limit))
        );
        // A tiny gzip that inflates past the cap (a bomb in miniature).
        let mut bomb = b"^XA".to_vec();
        bomb.extend(std::iter::repeat_n(b' ', 100_000));
        let z = gz(&bomb);
        assert!(z.len() < limit);
        assert_eq!(
            decode_label_capped(&b64(&z), "", None, limit).err(),
            Some(LabelError::TooLarge(limit))
        );
    }

    proptest! {
        #[test]
        fn garbage_never_panics(s in ".{0,512}", t in "[a-z/]{0,20}", c in proptest::option::of("[A-Za-z0-9+/=]{0,30}")) {
            let _ = decode_label(&s, &t, c.as_deref());
        }

        #[test]
        fn garbage_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..2048), gzip in any::<bool>()) {
            let mut data = raw.clone();
            if gzip {
                let mut g = GZIP_MAGIC.to_vec();
                g.extend_from_slice(&raw);
                data = g;
            }
            let _ = decode_label(&b64(&data), "", None);
        }

        #[test]
        fn zpl_round_trips(body in "[A-Z0-9^,]{0,200}", gzip in any::<bool>()) {
            let file = format!("^XA{body}^XZ").into_bytes();
            let sent = if gzip { gz(&file) } else { file.clone() };
            let l = decode_label(&b64(&sent), "ZPL", Some(&md5b64(&sent))).expect("decodes");
            prop_assert_eq!(l.bytes.as_slice(), file.as_slice());
            prop_assert_eq!(l.gzipped, gzip);
        }
    }
}
