//! An uploaded label: its JSON body, and the checks of its bytes (strict base64, 1 byte to
//! [`MAX_LABEL_LEN`] decoded, bytes that match the declared format: PDF `%PDF-`, PNG
//! signature, ZPL containing `^XA`) and of its `client_reference`. Decoded buffers are
//! zeroized.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sealprint_protocol::envelope::MAX_LABEL_LEN;
use sealprint_protocol::LabelFormat;
use serde::Deserialize;
use zeroize::{Zeroize, Zeroizing};

use super::SubmitError;
use crate::core::compliance;

/// Longest `client_reference`.
pub const MAX_CLIENT_REFERENCE: usize = 64;

/// Whether `s` is a valid `client_reference`: 1 to [`MAX_CLIENT_REFERENCE`] characters of
/// `[A-Za-z0-9._:/#-]` (an order number of the caller's system; no spaces, so it cannot
/// carry a name or an address by accident).
pub fn valid_client_reference(s: &str) -> bool {
    (1..=MAX_CLIENT_REFERENCE).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '/' | '#' | '-'))
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Format {
    Zpl,
    Pdf,
    Png,
}

impl From<Format> for LabelFormat {
    fn from(f: Format) -> LabelFormat {
        match f {
            Format::Zpl => LabelFormat::Zpl,
            Format::Pdf => LabelFormat::Pdf,
            Format::Png => LabelFormat::Png,
        }
    }
}

/// The body of an uploaded label.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upload {
    /// A printer id of the tenant (or `pool`).
    pub printer: Option<String>,
    /// A pool of the tenant (or `printer`).
    pub pool: Option<String>,
    format: Format,
    content_base64: String,
    /// Printed on a redacted label (1 to 64 of `[A-Za-z0-9 ._-]`).
    pub order_id: Option<String>,
    /// Printed on a redacted label.
    pub carrier: Option<String>,
    /// Printed on a redacted label.
    pub tracking: Option<String>,
    /// The caller's own reference (see [`valid_client_reference`]); stored and searchable.
    pub client_reference: Option<String>,
}

impl Drop for Upload {
    fn drop(&mut self) {
        self.content_base64.zeroize();
    }
}

impl Upload {
    /// Parses and checks the fields of `body` (not the label bytes: see [`Upload::label`]).
    ///
    /// # Errors
    /// [`SubmitError::Json`], [`SubmitError::Invalid`].
    pub fn parse(body: &[u8]) -> Result<Upload, SubmitError> {
        let req: Upload = serde_json::from_slice(body).map_err(SubmitError::Json)?;
        for field in [&req.order_id, &req.carrier, &req.tracking]
            .into_iter()
            .flatten()
        {
            if !compliance::valid_label_field(field) {
                return Err(SubmitError::Invalid(
                    "order_id, carrier and tracking must be 1 to 64 characters of letters, \
                     digits, space, '.', '_' or '-'"
                        .into(),
                ));
            }
        }
        if req
            .client_reference
            .as_deref()
            .is_some_and(|r| !valid_client_reference(r))
        {
            return Err(SubmitError::Invalid(format!(
                "client_reference must be 1 to {MAX_CLIENT_REFERENCE} characters of letters, \
                 digits, '.', '_', ':', '/', '#' or '-'"
            )));
        }
        Ok(req)
    }

    /// The decoded label and its format, checked.
    ///
    /// # Errors
    /// [`SubmitError::BadRequest`] (not base64), [`SubmitError::Invalid`] (size, format).
    pub fn label(&self) -> Result<(Zeroizing<Vec<u8>>, LabelFormat), SubmitError> {
        let format = LabelFormat::from(self.format);
        let label = decode_label(&self.content_base64)?;
        if !matches_format(format, &label) {
            return Err(SubmitError::Invalid(format!(
                "the content is not a {} label",
                format.as_str()
            )));
        }
        Ok((label, format))
    }
}

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Whether `bytes` look like `format`.
pub(crate) fn matches_format(format: LabelFormat, bytes: &[u8]) -> bool {
    match format {
        LabelFormat::Pdf => bytes.starts_with(b"%PDF-"),
        LabelFormat::Png => bytes.starts_with(PNG_MAGIC),
        LabelFormat::Zpl => bytes.windows(3).any(|w| w == b"^XA"),
    }
}

pub(crate) fn decode_label(b64: &str) -> Result<Zeroizing<Vec<u8>>, SubmitError> {
    // Bound the work before decoding: 4 base64 chars per 3 bytes.
    if b64.len() > MAX_LABEL_LEN.div_ceil(3) * 4 {
        return Err(SubmitError::Invalid(format!(
            "label is larger than {MAX_LABEL_LEN} bytes"
        )));
    }
    // Reserve the full size first so the buffer holding the label is never reallocated.
    let mut buf = Zeroizing::new(Vec::with_capacity(b64.len() / 4 * 3 + 3));
    STANDARD
        .decode_vec(b64, &mut buf)
        .map_err(|_| SubmitError::BadRequest("content_base64 is not valid base64".into()))?;
    if buf.is_empty() || buf.len() > MAX_LABEL_LEN {
        return Err(SubmitError::Invalid(format!(
            "label must be 1 to {MAX_LABEL_LEN} bytes"
        )));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_checks() {
        assert!(matches_format(LabelFormat::Pdf, b"%PDF-1.7 ..."));
        assert!(!matches_format(LabelFormat::Pdf, b"PDF"));
        assert!(matches_format(LabelFormat::Png, b"\x89PNG\r\n\x1a\n...."));
        assert!(!matches_format(LabelFormat::Png, b"\x89PNG"));
        assert!(matches_format(LabelFormat::Zpl, b"  ^XA^FO50,50^FDx^FS^XZ"));
        assert!(!matches_format(LabelFormat::Zpl, b"hello"));
    }

    #[test]
    fn base64_is_strict_and_bounded() {
        assert!(decode_label("Xlhh").is_ok());
        assert!(matches!(
            decode_label("Xlhh\n"),
            Err(SubmitError::BadRequest(_))
        ));
        assert!(matches!(
            decode_label("Xlh"),
            Err(SubmitError::BadRequest(_))
        ));
        assert!(matches!(decode_label(""), Err(SubmitError::Invalid(_))));
        let big = "A".repeat((MAX_LABEL_LEN / 3 + 1) * 4);
        assert!(matches!(decode_label(&big), Err(SubmitError::Invalid(_))));
    }

    #[test]
    fn client_references() {
        assert!(valid_client_reference("PO-2026/0042#3"));
        assert!(valid_client_reference(&"a".repeat(MAX_CLIENT_REFERENCE)));
        assert!(!valid_client_reference(""));
        assert!(!valid_client_reference(
            &"a".repeat(MAX_CLIENT_REFERENCE + 1)
        ));
        assert!(!valid_client_reference("Jane Doe"));
        assert!(!valid_client_reference("a@b"));
        assert!(!valid_client_reference("ü"));
    }
}
