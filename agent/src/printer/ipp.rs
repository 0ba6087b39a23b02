//! IPP messages (RFC 8010): a small encoder for the requests the agent sends and a bounded,
//! never-panicking decoder for the responses, plus the pure judgement of a printer's
//! attributes (is it a physical printer, what is its identity, is it ready).
//!
//! # Main types
//! - [`Request`]: builds one request (version 2.0, operation id, request id, attribute groups).
//! - [`Message`]: a decoded response (status code, request id, groups of attributes).
//! - [`DecodeError`]: tells "need more bytes" apart from "not IPP".
//! - [`PrinterFacts`]: the attributes verification reads, taken from a Get-Printer-Attributes
//!   response, and [`PrinterFacts::assess`].
//!
//! # What it does not do
//! No I/O (see `http`), no collections beyond skipping them, no dates, resolutions or ranges
//! beyond keeping their tag. It never sees label bytes: documents follow the encoded request
//! and are appended by the caller.

use sealprint_protocol::{LabelFormat, PrinterStatus, PrinterVerdict};

use super::Assessment;

/// IPP operation: Print-Job.
pub(crate) const OP_PRINT_JOB: u16 = 0x0002;
/// IPP operation: Get-Printer-Attributes.
pub(crate) const OP_GET_PRINTER_ATTRIBUTES: u16 = 0x000B;

/// Delimiter tag: operation-attributes group.
pub(crate) const TAG_OPERATION: u8 = 0x01;
/// Delimiter tag: end of attributes.
pub(crate) const TAG_END: u8 = 0x03;
/// Delimiter tag: printer-attributes group.
pub(crate) const TAG_PRINTER: u8 = 0x04;

/// Value tag: integer.
pub(crate) const TAG_INTEGER: u8 = 0x21;
/// Value tag: boolean.
pub(crate) const TAG_BOOLEAN: u8 = 0x22;
/// Value tag: enum.
pub(crate) const TAG_ENUM: u8 = 0x23;
/// Value tag: begCollection.
const TAG_BEG_COLLECTION: u8 = 0x34;
/// Value tag: textWithLanguage.
const TAG_TEXT_LANG: u8 = 0x35;
/// Value tag: nameWithLanguage.
const TAG_NAME_LANG: u8 = 0x36;
/// Value tag: endCollection.
const TAG_END_COLLECTION: u8 = 0x37;
/// Value tag: textWithoutLanguage.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) const TAG_TEXT: u8 = 0x41;
/// Value tag: nameWithoutLanguage.
pub(crate) const TAG_NAME: u8 = 0x42;
/// Value tag: keyword.
pub(crate) const TAG_KEYWORD: u8 = 0x44;
/// Value tag: uri.
pub(crate) const TAG_URI: u8 = 0x45;
/// Value tag: charset.
pub(crate) const TAG_CHARSET: u8 = 0x47;
/// Value tag: naturalLanguage.
pub(crate) const TAG_LANGUAGE: u8 = 0x48;
/// Value tag: mimeMediaType.
pub(crate) const TAG_MIME: u8 = 0x49;
/// Value tag: memberAttrName.
const TAG_MEMBER_NAME: u8 = 0x4A;
/// Extension tag (a 4-byte tag follows in the value); refused.
const TAG_EXTENSION: u8 = 0x7F;

/// The most attributes (values included) a decoded message may hold.
const MAX_VALUES: usize = 16 * 1024;
/// The deepest collection nesting accepted.
const MAX_DEPTH: usize = 16;
/// The longest string value kept (longer ones are cut; IPP allows 1023 octets for text).
const MAX_STRING: usize = 1023;

/// Why bytes are not an IPP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecodeError {
    /// The bytes so far are a valid beginning; more are needed.
    #[error("ipp message incomplete")]
    Incomplete,
    /// The bytes cannot be an IPP message.
    #[error("malformed ipp message: {0}")]
    Malformed(&'static str),
}

/// One attribute value, as far as the agent needs to understand it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    /// integer.
    Integer(i32),
    /// boolean.
    Boolean(bool),
    /// enum.
    Enum(i32),
    /// Any string-like value (text, name, keyword, uri, charset, language, mimeMediaType,
    /// with or without language), lossily decoded as UTF-8 and cut at 1023 bytes.
    Text(String),
    /// A value of another type (octetString, dateTime, resolution, range, collection,
    /// out-of-band…): its tag only.
    Other(u8),
}

impl Value {
    fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    fn as_int(&self) -> Option<i32> {
        match self {
            Value::Integer(n) | Value::Enum(n) => Some(*n),
            _ => None,
        }
    }
}

/// One attribute and its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attribute {
    /// The attribute's name.
    pub name: String,
    /// Its values, at least one.
    pub values: Vec<Value>,
}

/// One attribute group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Group {
    /// The delimiter tag (1 operation, 2 job, 4 printer, 5 unsupported…).
    pub tag: u8,
    /// Its attributes, in order.
    pub attributes: Vec<Attribute>,
}

/// A decoded IPP message (a response, for the agent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    /// Major and minor version.
    pub version: (u8, u8),
    /// Status code (responses) or operation id (requests).
    pub code: u16,
    /// Request id.
    pub request_id: u32,
    /// Attribute groups, in order.
    pub groups: Vec<Group>,
    /// Where the data after end-of-attributes starts.
    pub data_offset: usize,
}

impl Message {
    /// Whether the status code is one of the successful ones (0x0000–0x00FF).
    pub fn is_success(&self) -> bool {
        self.code <= 0x00FF
    }

    /// The first attribute named `name` in a group tagged `group`.
    pub fn attribute(&self, group: u8, name: &str) -> Option<&Attribute> {
        self.groups
            .iter()
            .filter(|g| g.tag == group)
            .flat_map(|g| g.attributes.iter())
            .find(|a| a.name == name)
    }

    /// The first text value of an attribute of a group.
    pub fn text(&self, group: u8, name: &str) -> Option<&str> {
        self.attribute(group, name)?
            .values
            .first()
            .and_then(Value::as_text)
    }

    /// Every text value of an attribute of a group.
    pub fn texts(&self, group: u8, name: &str) -> Vec<&str> {
        self.attribute(group, name)
            .map(|a| a.values.iter().filter_map(Value::as_text).collect())
            .unwrap_or_default()
    }

    /// The first integer or enum value of an attribute of a group.
    pub fn int(&self, group: u8, name: &str) -> Option<i32> {
        self.attribute(group, name)?
            .values
            .first()
            .and_then(Value::as_int)
    }

    /// The first boolean value of an attribute of a group.
    pub fn boolean(&self, group: u8, name: &str) -> Option<bool> {
        match self.attribute(group, name)?.values.first() {
            Some(Value::Boolean(b)) => Some(*b),
            _ => None,
        }
    }

    /// The status message of a response, if any (cut, for reasons).
    pub fn status_message(&self) -> Option<&str> {
        self.text(TAG_OPERATION, "status-message")
    }
}

/// A bounded cursor over the input.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Incomplete)?;
        let bytes = self.buf.get(self.pos..end).ok_or(DecodeError::Incomplete)?;
        self.pos = end;
        Ok(bytes)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

fn text(bytes: &[u8]) -> String {
    let bytes = &bytes[..bytes.len().min(MAX_STRING)];
    String::from_utf8_lossy(bytes).into_owned()
}

fn decode_value(tag: u8, bytes: &[u8]) -> Result<Value, DecodeError> {
    let int = |bytes: &[u8]| -> Result<i32, DecodeError> {
        let four: [u8; 4] = bytes
            .try_into()
            .map_err(|_| DecodeError::Malformed("integer value is not 4 bytes"))?;
        Ok(i32::from_be_bytes(four))
    };
    Ok(match tag {
        TAG_INTEGER => Value::Integer(int(bytes)?),
        TAG_ENUM => Value::Enum(int(bytes)?),
        TAG_BOOLEAN => match bytes {
            [0] => Value::Boolean(false),
            [1] => Value::Boolean(true),
            _ => return Err(DecodeError::Malformed("boolean value is not 0 or 1")),
        },
        TAG_TEXT_LANG | TAG_NAME_LANG => {
            let mut r = Reader { buf: bytes, pos: 0 };
            let inner = |r: &mut Reader<'_>| -> Result<Value, DecodeError> {
                let lang_len = usize::from(r.u16()?);
                r.take(lang_len)?;
                let text_len = usize::from(r.u16()?);
                let value = r.take(text_len)?;
                if r.pos != bytes.len() {
                    return Err(DecodeError::Incomplete);
                }
                Ok(Value::Text(text(value)))
            };
            // Inside a value of known length, running short is malformed, not incomplete.
            inner(&mut r)
                .map_err(|_| DecodeError::Malformed("malformed text-with-language value"))?
        }
        0x40..=0x5F => Value::Text(text(bytes)),
        other => Value::Other(other),
    })
}

/// Decodes one IPP message. Never panics; reads at most `buf.len()` bytes.
///
/// # Errors
/// [`DecodeError::Incomplete`] when `buf` ends before end-of-attributes,
/// [`DecodeError::Malformed`] when it cannot be IPP.
pub(crate) fn decode(buf: &[u8]) -> Result<Message, DecodeError> {
    let mut r = Reader { buf, pos: 0 };
    let major = r.u8()?;
    let minor = r.u8()?;
    if !(1..=2).contains(&major) {
        return Err(DecodeError::Malformed("unsupported ipp version"));
    }
    let code = r.u16()?;
    let request_id = r.u32()?;
    let mut groups: Vec<Group> = Vec::new();
    let mut values = 0usize;
    let mut depth = 0usize;
    loop {
        let tag = r.u8()?;
        if tag == TAG_END {
            if depth != 0 {
                return Err(DecodeError::Malformed("unterminated collection"));
            }
            break;
        }
        if tag <= 0x0F {
            if depth != 0 {
                return Err(DecodeError::Malformed(
                    "group delimiter inside a collection",
                ));
            }
            if tag == 0 {
                return Err(DecodeError::Malformed("reserved delimiter tag"));
            }
            groups.push(Group {
                tag,
                attributes: Vec::new(),
            });
            continue;
        }
        if tag == TAG_EXTENSION {
            return Err(DecodeError::Malformed("extension tags are not supported"));
        }
        let name_len = usize::from(r.u16()?);
        let name = r.take(name_len)?;
        let value_len = usize::from(r.u16()?);
        let value = r.take(value_len)?;
        values += 1;
        if values > MAX_VALUES {
            return Err(DecodeError::Malformed("too many attribute values"));
        }
        let Some(group) = groups.last_mut() else {
            return Err(DecodeError::Malformed("attribute before any group"));
        };
        // Collections: members are skipped, the attribute keeps a placeholder value.
        match tag {
            TAG_BEG_COLLECTION => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(DecodeError::Malformed("collections nested too deep"));
                }
                if depth > 1 {
                    continue;
                }
            }
            TAG_END_COLLECTION => {
                depth = depth.checked_sub(1).ok_or(DecodeError::Malformed(
                    "endCollection without begCollection",
                ))?;
                continue;
            }
            TAG_MEMBER_NAME if depth == 0 => {
                return Err(DecodeError::Malformed("member name outside a collection"));
            }
            _ if depth > 0 => continue,
            _ => {}
        }
        let value = decode_value(tag, value)?;
        if name.is_empty() {
            let Some(last) = group.attributes.last_mut() else {
                return Err(DecodeError::Malformed("additional value without attribute"));
            };
            last.values.push(value);
        } else {
            group.attributes.push(Attribute {
                name: text(name),
                values: vec![value],
            });
        }
    }
    Ok(Message {
        version: (major, minor),
        code,
        request_id,
        groups,
        data_offset: r.pos,
    })
}

/// An IPP request being built: header, then groups and attributes in order.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    buf: Vec<u8>,
}

impl Request {
    /// A version 2.0 request with an operation-attributes group holding `attributes-charset`
    /// (utf-8), `attributes-natural-language` (en) and `printer-uri`.
    pub fn new(operation: u16, request_id: u32, printer_uri: &str) -> Request {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&[2, 0]);
        buf.extend_from_slice(&operation.to_be_bytes());
        buf.extend_from_slice(&request_id.to_be_bytes());
        buf.push(TAG_OPERATION);
        Request { buf }
            .attribute(TAG_CHARSET, "attributes-charset", b"utf-8")
            .attribute(TAG_LANGUAGE, "attributes-natural-language", b"en")
            .attribute(TAG_URI, "printer-uri", printer_uri.as_bytes())
    }

    /// Adds an attribute with one value. Names and values longer than 65535 bytes are cut
    /// (the agent sends only short ones).
    pub fn attribute(mut self, tag: u8, name: &str, value: &[u8]) -> Request {
        self.push(tag, name.as_bytes(), value);
        self
    }

    /// Adds an attribute with several values (a `1setOf`).
    pub fn attributes(mut self, tag: u8, name: &str, values: &[&str]) -> Request {
        for (i, value) in values.iter().enumerate() {
            let name = if i == 0 { name.as_bytes() } else { b"" };
            self.push(tag, name, value.as_bytes());
        }
        self
    }

    fn push(&mut self, tag: u8, name: &[u8], value: &[u8]) {
        let name = &name[..name.len().min(usize::from(u16::MAX))];
        let value = &value[..value.len().min(usize::from(u16::MAX))];
        self.buf.push(tag);
        // Lengths fit: both were cut to u16::MAX above.
        self.buf
            .extend_from_slice(&u16::try_from(name.len()).unwrap_or(u16::MAX).to_be_bytes());
        self.buf.extend_from_slice(name);
        self.buf
            .extend_from_slice(&u16::try_from(value.len()).unwrap_or(u16::MAX).to_be_bytes());
        self.buf.extend_from_slice(value);
    }

    /// Ends the attributes; a document, if any, follows.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(TAG_END);
        self.buf
    }
}

/// The attributes asked for when verifying an IPP printer (or a CUPS queue).
pub(crate) const VERIFY_ATTRIBUTES: &[&str] = &[
    "printer-make-and-model",
    "printer-device-id",
    "printer-uuid",
    "printer-serial-number",
    "document-format-supported",
    "printer-state",
    "printer-state-reasons",
    "printer-is-accepting-jobs",
    "device-uri",
];

/// The ZPL document formats, best first. ippeveprinter and Zebra's own IPP take the first;
/// `application/octet-stream` is used only when the printer lists it.
const ZPL_FORMATS: &[&str] = &["application/vnd.zebra-zpl", "application/octet-stream"];

/// What verification reads from a Get-Printer-Attributes response. All strings come from the
/// device (or CUPS) and prove nothing alone: an emulator can claim any of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PrinterFacts {
    /// printer-make-and-model.
    pub make_and_model: Option<String>,
    /// printer-device-id (IEEE 1284 device id).
    pub device_id: Option<String>,
    /// printer-uuid (`urn:uuid:…`).
    pub uuid: Option<String>,
    /// printer-serial-number (PWG 5100.13), when the printer has it.
    pub serial_number: Option<String>,
    /// document-format-supported.
    pub formats: Vec<String>,
    /// printer-state (3 idle, 4 processing, 5 stopped).
    pub state: Option<i32>,
    /// printer-state-reasons.
    pub state_reasons: Vec<String>,
    /// printer-is-accepting-jobs.
    pub accepting_jobs: Option<bool>,
    /// device-uri (CUPS queues only).
    pub device_uri: Option<String>,
}

impl PrinterFacts {
    /// Reads the facts from a response's printer-attributes group.
    pub fn from_message(message: &Message) -> PrinterFacts {
        let text = |name: &str| message.text(TAG_PRINTER, name).map(str::to_owned);
        let texts = |name: &str| {
            message
                .texts(TAG_PRINTER, name)
                .into_iter()
                .map(str::to_owned)
                .collect()
        };
        PrinterFacts {
            make_and_model: text("printer-make-and-model"),
            device_id: text("printer-device-id"),
            uuid: text("printer-uuid"),
            serial_number: text("printer-serial-number"),
            formats: texts("document-format-supported"),
            state: message.int(TAG_PRINTER, "printer-state"),
            state_reasons: texts("printer-state-reasons"),
            accepting_jobs: message.boolean(TAG_PRINTER, "printer-is-accepting-jobs"),
            device_uri: text("device-uri"),
        }
    }

    /// The model the printer claims, for reasons.
    pub fn model(&self) -> String {
        let from_id = self.device_id.as_deref().and_then(|id| {
            let id = DeviceId::parse(id);
            Some(format!(
                "{} {}",
                id.get(&["MFG", "MANUFACTURER"])?,
                id.get(&["MDL", "MODEL"])?
            ))
        });
        let model = self
            .make_and_model
            .clone()
            .or(from_id)
            .unwrap_or_else(|| "unnamed printer".to_owned());
        printable_cut(&model, 64)
    }

    /// The identity: the device id's serial (`SN:`/`SERN:`/`SERIALNUMBER:`), else
    /// printer-serial-number, else printer-uuid. When the device id's serial and
    /// printer-serial-number both exist they must agree.
    pub fn identity(&self) -> Result<Option<String>, String> {
        let from_id = self
            .device_id
            .as_deref()
            .and_then(|id| DeviceId::parse(id).serial());
        let attr = self.serial_number.as_deref().and_then(valid_identity);
        if let (Some(a), Some(b)) = (&from_id, &attr) {
            if a != b {
                return Err(format!(
                    "the device id's serial ({a}) and printer-serial-number ({b}) disagree"
                ));
            }
        }
        Ok(from_id
            .or(attr)
            .or_else(|| self.uuid.as_deref().and_then(valid_identity)))
    }

    /// Why this looks like a virtual printer (a PDF/XPS/file writer), if it does.
    ///
    /// What is checked: the make-and-model and the device id's manufacturer, model, description
    /// and class name a writer (PDF, XPS, print to file, OneNote, fax, "virtual"); a device id's
    /// command set (`CMD:`) may list PDF (many real printers take PDF) and is not judged. A
    /// printer whose only document formats are PDF, PostScript or octet-stream *and* that gives
    /// no device id with a manufacturer and model has a PDF writer's semantics (real printers
    /// also list a raster or device language and identify themselves) and is refused too.
    pub fn virtual_reason(&self) -> Option<String> {
        let mut claims: Vec<String> = self.make_and_model.iter().cloned().collect();
        let id = self.device_id.as_deref().map(DeviceId::parse);
        if let Some(id) = &id {
            for keys in [
                &["MFG", "MANUFACTURER"][..],
                &["MDL", "MODEL"],
                &["DES", "DESCRIPTION"],
                &["CLS", "CLASS"],
            ] {
                claims.extend(id.get(keys).map(str::to_owned));
            }
        }
        if let Some(claim) = claims.iter().find(|c| names_a_writer(c)) {
            return Some(format!(
                "it describes itself as a virtual printer ({})",
                printable_cut(claim, 64)
            ));
        }
        let writer_formats = !self.formats.is_empty()
            && self.formats.iter().all(|f| {
                matches!(
                    f.to_ascii_lowercase().as_str(),
                    "application/pdf" | "application/postscript" | "application/octet-stream"
                )
            });
        let identified = id.is_some_and(|id| {
            id.get(&["MFG", "MANUFACTURER"]).is_some() && id.get(&["MDL", "MODEL"]).is_some()
        });
        if writer_formats && !identified {
            return Some(
                "it takes only PDF/PostScript documents and gives no device id: a document \
                 writer, not a printer"
                    .to_owned(),
            );
        }
        None
    }

    /// The printer's state as a [`PrinterStatus`], and the reasons that decided it.
    pub fn status(&self) -> (PrinterStatus, Option<String>) {
        // Only "-error" (or unsuffixed) reasons stop printing; "-warning" and "-report" inform.
        let stopping: Vec<&str> = self
            .state_reasons
            .iter()
            .map(String::as_str)
            .filter(|r| *r != "none" && !r.ends_with("-warning") && !r.ends_with("-report"))
            .collect();
        let base = |r: &str| r.strip_suffix("-error").unwrap_or(r).to_owned();
        let has = |names: &[&str]| {
            stopping
                .iter()
                .find(|r| names.contains(&base(r).as_str()))
                .map(|r| (*r).to_owned())
        };
        if let Some(r) = has(&[
            "media-empty",
            "media-needed",
            "marker-supply-empty",
            "toner-empty",
        ]) {
            return (PrinterStatus::PaperOut, Some(r));
        }
        if let Some(r) = has(&["door-open", "cover-open", "interlock-open"]) {
            return (PrinterStatus::HeadOpen, Some(r));
        }
        if let Some(r) = has(&["paused", "moving-to-paused"]) {
            return (PrinterStatus::Paused, Some(r));
        }
        if let Some(r) = has(&["offline", "shutdown", "timed-out", "connecting-to-device"]) {
            return (PrinterStatus::Offline, Some(r));
        }
        if self.accepting_jobs == Some(false) {
            return (PrinterStatus::Paused, Some("not accepting jobs".to_owned()));
        }
        if let Some(r) = stopping.first() {
            return (PrinterStatus::Unknown, Some(printable_cut(r, 64)));
        }
        match self.state {
            Some(3) | Some(4) => (PrinterStatus::Ready, None),
            Some(5) => (PrinterStatus::Paused, Some("stopped".to_owned())),
            _ => (PrinterStatus::Unknown, Some("no printer-state".to_owned())),
        }
    }

    /// The document format to send a label of `format` as, if the printer takes one.
    pub fn document_format(&self, format: LabelFormat) -> Option<&'static str> {
        let takes = |f: &str| self.formats.iter().any(|s| s.eq_ignore_ascii_case(f));
        match format {
            LabelFormat::Pdf => takes("application/pdf").then_some("application/pdf"),
            LabelFormat::Png => takes("image/png").then_some("image/png"),
            LabelFormat::Zpl => ZPL_FORMATS.iter().copied().find(|f| takes(f)),
        }
    }

    /// Judges a directly reached IPP printer: refused when virtual or without an identity,
    /// else verified with its status.
    pub fn assess(&self) -> Assessment {
        if let Some(why) = self.virtual_reason() {
            return Assessment::refused(format!("not a physical printer: {why}"), None);
        }
        let identity = match self.identity() {
            Ok(Some(identity)) => identity,
            Ok(None) => {
                return Assessment::refused(
                    format!(
                        "{} answered no printer-uuid and no serial in its device id; a printer \
                         without an identity cannot be verified",
                        self.model()
                    ),
                    None,
                )
            }
            Err(why) => return Assessment::refused(why, None),
        };
        let (status, why) = self.status();
        let mut reason = format!("verified: {} (ipp), identity {identity}", self.model());
        if let Some(why) = why {
            reason.push_str(&format!("; state: {why}"));
        }
        Assessment {
            verdict: PrinterVerdict::Verified,
            status,
            identity: Some(identity),
            reason,
        }
    }
}

/// Whether a make-and-model, device id field or Windows driver name names a document writer
/// (PDF, XPS, file, OneNote, fax). A bare "PDF" is not enough: real printers' drivers say
/// "… PDF" when they take PDF (cups-filters' "HP Color LaserJet CM3530 MFP PDF", "Generic PDF
/// Printer"); for CUPS queues the device-uri is what decides.
pub(crate) fn names_a_writer(claim: &str) -> bool {
    let lower = claim.to_ascii_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    const PHRASES: &[&str] = &[
        "cups-pdf",
        "pdf writer",
        "pdf creator",
        "pdf converter",
        "print to pdf",
        "print to file",
        "xps document writer",
        "xps writer",
        "document writer",
        "microsoft print to",
        "adobe pdf",
        "save as pdf",
    ];
    PHRASES.iter().any(|p| lower.contains(p))
        || words.iter().any(|w| {
            matches!(
                *w,
                "onenote"
                    | "fax"
                    | "virtual"
                    | "pdfwriter"
                    | "pdfcreator"
                    | "cutepdf"
                    | "bullzip"
                    | "pdf24"
            )
        })
}

/// An IEEE 1284 device id: `KEY:value;KEY:value;…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeviceId {
    pairs: Vec<(String, String)>,
}

impl DeviceId {
    /// Parses a device id; malformed pairs are skipped.
    pub fn parse(id: &str) -> DeviceId {
        let pairs = id
            .split(';')
            .filter_map(|pair| pair.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_uppercase(), v.trim().to_owned()))
            .filter(|(k, v)| !k.is_empty() && !v.is_empty())
            .take(64)
            .collect();
        DeviceId { pairs }
    }

    /// The first value of any of `keys`.
    pub fn get(&self, keys: &[&str]) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| keys.contains(&k.as_str()))
            .map(|(_, v)| v.as_str())
    }

    /// The serial (`SN:`, `SERN:` or `SERIALNUMBER:`), when it is a usable identity.
    pub fn serial(&self) -> Option<String> {
        self.get(&["SN", "SERN", "SERIALNUMBER"])
            .and_then(valid_identity)
    }
}

/// A serial, uuid or device id value usable as an identity: printable, no blanks, 1–128
/// bytes, not a placeholder.
pub(crate) fn valid_identity(value: &str) -> Option<String> {
    let value = value.trim();
    let placeholder = matches!(
        value.to_ascii_lowercase().as_str(),
        "?" | "0" | "none" | "unknown" | "n/a" | "000000000000"
    );
    let ok = !value.is_empty()
        && !placeholder
        && value.len() <= 128
        && value.bytes().all(|b| b.is_ascii_graphic());
    ok.then(|| value.to_owned())
}

/// A device-supplied string made safe for a reason: printable ASCII only, at most `max`
/// characters.
pub(crate) fn printable_cut(s: &str, max: usize) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(max)
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A printer-attributes response as a test server sends it.
    pub(crate) fn response(status: u16, request_id: u32, attrs: &[(u8, &str, &[u8])]) -> Vec<u8> {
        let mut buf = vec![2, 0];
        buf.extend_from_slice(&status.to_be_bytes());
        buf.extend_from_slice(&request_id.to_be_bytes());
        buf.push(TAG_OPERATION);
        for (tag, name, value) in [
            (TAG_CHARSET, "attributes-charset", &b"utf-8"[..]),
            (TAG_LANGUAGE, "attributes-natural-language", b"en"),
        ] {
            push(&mut buf, tag, name, value);
        }
        buf.push(TAG_PRINTER);
        for (tag, name, value) in attrs {
            push(&mut buf, *tag, name, value);
        }
        buf.push(TAG_END);
        buf
    }

    fn push(buf: &mut Vec<u8>, tag: u8, name: &str, value: &[u8]) {
        buf.push(tag);
        buf.extend_from_slice(&(name.len() as u16).to_be_bytes());
        buf.extend_from_slice(name.as_bytes());
        buf.extend_from_slice(&(value.len() as u16).to_be_bytes());
        buf.extend_from_slice(value);
    }

    #[test]
    fn encodes_a_request_byte_for_byte() {
        let bytes = Request::new(OP_GET_PRINTER_ATTRIBUTES, 7, "ipp://h/p")
            .attributes(TAG_KEYWORD, "requested-attributes", &["a", "bc"])
            .finish();
        let mut want = vec![2, 0, 0, 0x0B, 0, 0, 0, 7, TAG_OPERATION];
        push(&mut want, TAG_CHARSET, "attributes-charset", b"utf-8");
        push(
            &mut want,
            TAG_LANGUAGE,
            "attributes-natural-language",
            b"en",
        );
        push(&mut want, TAG_URI, "printer-uri", b"ipp://h/p");
        push(&mut want, TAG_KEYWORD, "requested-attributes", b"a");
        push(&mut want, TAG_KEYWORD, "", b"bc");
        want.push(TAG_END);
        assert_eq!(bytes, want);
        let decoded = decode(&bytes).expect("decodes");
        assert_eq!(decoded.code, OP_GET_PRINTER_ATTRIBUTES);
        assert_eq!(decoded.request_id, 7);
        assert_eq!(
            decoded.texts(TAG_OPERATION, "requested-attributes"),
            vec!["a", "bc"]
        );
        assert_eq!(decoded.data_offset, bytes.len());
    }

    #[test]
    fn decodes_values_collections_and_data() {
        let mut bytes = response(
            0x0001,
            9,
            &[
                (TAG_ENUM, "printer-state", &3i32.to_be_bytes()),
                (TAG_BOOLEAN, "printer-is-accepting-jobs", &[1]),
                (TAG_TEXT_LANG, "printer-info", b"\x00\x02en\x00\x03abc"),
                (TAG_BEG_COLLECTION, "media-col-default", b""),
                (TAG_MEMBER_NAME, "", b"media-size"),
                (TAG_BEG_COLLECTION, "", b""),
                (TAG_END_COLLECTION, "", b""),
                (TAG_END_COLLECTION, "", b""),
                (TAG_KEYWORD, "printer-state-reasons", b"none"),
            ],
        );
        let end = bytes.len();
        bytes.extend_from_slice(b"DATA");
        let m = decode(&bytes).expect("decodes");
        assert!(m.is_success());
        assert_eq!(m.int(TAG_PRINTER, "printer-state"), Some(3));
        assert_eq!(
            m.boolean(TAG_PRINTER, "printer-is-accepting-jobs"),
            Some(true)
        );
        assert_eq!(m.text(TAG_PRINTER, "printer-info"), Some("abc"));
        assert_eq!(m.text(TAG_PRINTER, "printer-state-reasons"), Some("none"));
        assert_eq!(m.data_offset, end);
    }

    #[test]
    fn tells_incomplete_from_malformed() {
        let bytes = response(0, 1, &[(TAG_KEYWORD, "printer-state-reasons", b"none")]);
        for end in 0..bytes.len() {
            assert_eq!(decode(&bytes[..end]), Err(DecodeError::Incomplete), "{end}");
        }
        for bad in [
            &b"HTTP/1.1 200 OK\r\n\r\n"[..],
            b"\x02\x00\x00\x00\x00\x00\x00\x01\x44\x00\x01a\x00\x01b\x03",
            b"\x02\x00\x00\x00\x00\x00\x00\x01\x01\x21\x00\x01a\x00\x02xx\x03",
            b"\x02\x00\x00\x00\x00\x00\x00\x01\x01\x37\x00\x00\x00\x00\x03",
            b"\x02\x00\x00\x00\x00\x00\x00\x01\x01\x34\x00\x01a\x00\x00\x03",
        ] {
            assert!(
                matches!(decode(bad), Err(DecodeError::Malformed(_))),
                "{bad:?}"
            );
        }
    }

    fn facts(model: &str, device_id: &str, formats: &[&str]) -> PrinterFacts {
        PrinterFacts {
            make_and_model: Some(model.to_owned()),
            device_id: Some(device_id.to_owned()),
            uuid: Some("urn:uuid:0a6c4c1e-0000-4000-8000-000000000001".to_owned()),
            formats: formats.iter().map(|f| (*f).to_owned()).collect(),
            state: Some(3),
            state_reasons: vec!["none".to_owned()],
            accepting_jobs: Some(true),
            ..PrinterFacts::default()
        }
    }

    #[test]
    fn judges_virtual_printers() {
        let zebra = facts(
            "Zebra ZD421",
            "MFG:Zebra;MDL:ZD421;CMD:ZPL,PDF;SN:D4J222603053;",
            &["application/vnd.zebra-zpl", "application/pdf"],
        );
        assert_eq!(zebra.virtual_reason(), None);
        assert_eq!(zebra.identity(), Ok(Some("D4J222603053".to_owned())));
        let a = zebra.assess();
        assert_eq!(a.verdict, PrinterVerdict::Verified, "{}", a.reason);
        assert_eq!(a.status, PrinterStatus::Ready);
        for (model, id, formats) in [
            (
                "Generic CUPS-PDF Printer",
                "MFG:Generic;MDL:CUPS-PDF Printer;",
                &["application/pdf"][..],
            ),
            ("Microsoft Print To PDF", "", &["application/pdf"]),
            (
                "Zebra ZD421",
                "MFG:Microsoft;MDL:XPS Document Writer;",
                &["image/pwg-raster"],
            ),
            (
                "Label maker",
                "",
                &["application/pdf", "application/octet-stream"],
            ),
        ] {
            let f = facts(model, id, formats);
            assert!(f.virtual_reason().is_some(), "{model} {id}");
            assert_eq!(f.assess().verdict, PrinterVerdict::Refused);
        }
        for real in [
            "HP Color LaserJet CM3530 MFP PDF",
            "Generic PDF Printer",
            "Zebra ZD421",
        ] {
            assert!(!names_a_writer(real), "{real}");
        }
        // ippeveprinter's self-description is accepted (it is spoofable: see the README).
        let eve = facts(
            "Zebra ZD421",
            "MFG:Zebra;MDL:ZD421;CMD:PDF;",
            &["application/pdf"],
        );
        assert_eq!(eve.virtual_reason(), None);
        assert_eq!(
            eve.identity(),
            Ok(Some(
                "urn:uuid:0a6c4c1e-0000-4000-8000-000000000001".to_owned()
            ))
        );
    }

    #[test]
    fn identity_sources_must_agree() {
        let mut f = facts(
            "Zebra ZD421",
            "MFG:Zebra;MDL:ZD421;SERN:AAA1;",
            &["image/png"],
        );
        f.serial_number = Some("BBB2".to_owned());
        assert!(f.identity().is_err());
        assert_eq!(f.assess().verdict, PrinterVerdict::Refused);
        f.serial_number = Some("AAA1".to_owned());
        assert_eq!(f.identity(), Ok(Some("AAA1".to_owned())));
        let mut anonymous = facts("Zebra ZD421", "MFG:Zebra;MDL:ZD421;", &["image/png"]);
        anonymous.uuid = None;
        assert_eq!(anonymous.assess().verdict, PrinterVerdict::Refused);
    }

    #[test]
    fn reads_state_and_formats() {
        let mut f = facts(
            "Zebra",
            "MFG:Zebra;MDL:ZD421;SN:1;",
            &["application/vnd.zebra-zpl", "image/png"],
        );
        for (reasons, state, want) in [
            (&["none"][..], 3, PrinterStatus::Ready),
            (&["media-empty-error"], 3, PrinterStatus::PaperOut),
            (&["media-needed"], 4, PrinterStatus::PaperOut),
            (&["media-low-warning"], 3, PrinterStatus::Ready),
            (&["cover-open"], 3, PrinterStatus::HeadOpen),
            (&["paused"], 5, PrinterStatus::Paused),
            (&["offline-report"], 3, PrinterStatus::Ready),
            (&["shutdown"], 5, PrinterStatus::Offline),
            (&["media-jam-error"], 3, PrinterStatus::Unknown),
            (&["none"], 5, PrinterStatus::Paused),
        ] {
            f.state_reasons = reasons.iter().map(|r| (*r).to_owned()).collect();
            f.state = Some(state);
            assert_eq!(f.status().0, want, "{reasons:?}");
        }
        assert_eq!(
            f.document_format(LabelFormat::Zpl),
            Some("application/vnd.zebra-zpl")
        );
        assert_eq!(f.document_format(LabelFormat::Png), Some("image/png"));
        assert_eq!(f.document_format(LabelFormat::Pdf), None);
        f.formats = vec!["application/octet-stream".to_owned()];
        assert_eq!(
            f.document_format(LabelFormat::Zpl),
            Some("application/octet-stream")
        );
    }

    proptest! {
        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn decoder_never_panics_on_mutated_responses(
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8),
            cut in any::<usize>(),
        ) {
            let mut bytes = response(0, 1, &[
                (TAG_TEXT_LANG, "printer-info", b"\x00\x02en\x00\x03abc"),
                (TAG_BEG_COLLECTION, "c", b""),
                (TAG_MEMBER_NAME, "", b"m"),
                (TAG_INTEGER, "", &[0, 0, 0, 1]),
                (TAG_END_COLLECTION, "", b""),
                (TAG_ENUM, "printer-state", &[0, 0, 0, 3]),
            ]);
            for (at, b) in flips {
                let len = bytes.len();
                bytes[at % len] = b;
            }
            let cut = cut % (bytes.len() + 1);
            let _ = decode(&bytes[..cut]);
        }

        #[test]
        fn request_round_trips(
            id in any::<u32>(),
            values in proptest::collection::vec("[ -~]{0,40}", 1..6),
        ) {
            let refs: Vec<&str> = values.iter().map(String::as_str).collect();
            let bytes = Request::new(OP_PRINT_JOB, id, "ipp://h/p")
                .attributes(TAG_NAME, "job-name", &refs)
                .finish();
            let m = decode(&bytes).expect("own requests decode");
            prop_assert_eq!(m.request_id, id);
            prop_assert_eq!(m.code, OP_PRINT_JOB);
            prop_assert_eq!(m.texts(TAG_OPERATION, "job-name"), refs);
        }
    }
}
