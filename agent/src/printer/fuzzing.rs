//! Entry points for the fuzz targets in `fuzz/` (a separate workspace): the decoders of what
//! printers, print servers and sysfs answer, which are private to `printer`. Each function
//! runs the real decoder and returns a plain summary the targets check properties on. Not an
//! API: hidden from the docs and free to change with the targets.

use sealprint_protocol::LabelFormat;

use super::cups::{self, Device, Server};
use super::facts::{DeviceId, PrinterFacts};
use super::ipp::{self, DecodeError, Request};
use super::{usb, zpl, Assessment};

pub use super::graphic::{png_to_zpl, GraphicError, MAX_SIDE};

/// What the IPP decoder made of some bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ipp {
    /// A valid beginning; more bytes are needed.
    Incomplete,
    /// Not IPP.
    Malformed,
    /// A message.
    Decoded {
        /// Where the data after end-of-attributes starts.
        data_offset: usize,
        /// Attribute values kept, over every group.
        values: usize,
        /// The longest text value or attribute name kept, in bytes.
        longest_text: usize,
        /// The whole message, for comparisons.
        debug: String,
    },
}

/// The longest string [`ipp_decode`] keeps (1023 input bytes, each at most a 3-byte U+FFFD).
pub const IPP_MAX_TEXT: usize = 3 * 1023;
/// The most attribute values one decoded message holds.
pub const IPP_MAX_VALUES: usize = 16 * 1024;

/// Runs the agent's IPP response decoder.
pub fn ipp_decode(buf: &[u8]) -> Ipp {
    match ipp::decode(buf) {
        Err(DecodeError::Incomplete) => Ipp::Incomplete,
        Err(DecodeError::Malformed(_)) => Ipp::Malformed,
        Ok(m) => {
            let attributes = m.groups.iter().flat_map(|g| g.attributes.iter());
            let values = attributes.clone().map(|a| a.values.len()).sum();
            let longest_text = attributes
                .flat_map(|a| {
                    let texts = a.values.iter().filter_map(|v| match v {
                        ipp::Value::Text(s) => Some(s.len()),
                        _ => None,
                    });
                    std::iter::once(a.name.len()).chain(texts)
                })
                .max()
                .unwrap_or(0);
            Ipp::Decoded {
                data_offset: m.data_offset,
                values,
                longest_text,
                debug: format!("{m:?}"),
            }
        }
    }
}

/// How a printer was judged from its Get-Printer-Attributes answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    /// Verified or refused.
    pub verified: bool,
    /// The identity recorded, if any.
    pub identity: Option<String>,
    /// Every reason shown to a person (direct printer, CUPS queue, status, model).
    pub reasons: Vec<String>,
    /// The document formats chosen for PDF, PNG and ZPL labels.
    pub formats: [Option<&'static str>; 3],
}

fn note(reasons: &mut Vec<String>, a: &Assessment) {
    reasons.push(a.reason.clone());
}

/// Decodes `buf` as the agent does an IPP answer, then judges it as a directly reached
/// printer and as a CUPS queue (`queue`), as verification does. `None` when not decodable.
pub fn ipp_judge(buf: &[u8], queue: &str) -> Option<Judgement> {
    let message = ipp::decode(buf).ok()?;
    let facts = PrinterFacts::from_message(&message);
    let direct = facts.assess();
    let mut reasons = Vec::new();
    note(&mut reasons, &direct);
    reasons.push(facts.model());
    reasons.extend(facts.status().1);
    reasons.extend(facts.virtual_reason());
    if let Err(why) = facts.identity() {
        reasons.push(why);
    }
    match cups::judge_queue(queue, &facts) {
        Ok(device) => {
            reasons.extend(device_reason(&device));
            note(&mut reasons, &cups::combine(queue, &facts, direct.clone()));
        }
        Err(refused) => note(&mut reasons, &refused),
    }
    let formats =
        [LabelFormat::Pdf, LabelFormat::Png, LabelFormat::Zpl].map(|f| facts.document_format(f));
    Some(Judgement {
        verified: direct.verdict == sealprint_protocol::PrinterVerdict::Verified,
        identity: direct.identity,
        reasons,
        formats,
    })
}

/// Encodes a request with the agent's IPP encoder and decodes it again: the value texts of
/// attribute `name` (tag keyword) as decoded, or `None` when the request did not decode.
pub fn ipp_request_round_trip(
    request_id: u32,
    printer_uri: &str,
    name: &str,
    values: &[&str],
) -> Option<(u32, Vec<String>, usize, usize)> {
    let bytes = Request::new(ipp::OP_GET_PRINTER_ATTRIBUTES, request_id, printer_uri)
        .attributes(ipp::TAG_KEYWORD, name, values)
        .finish();
    let m = ipp::decode(&bytes).ok()?;
    let texts = m
        .texts(ipp::TAG_OPERATION, name)
        .into_iter()
        .map(str::to_owned)
        .collect();
    Some((m.request_id, texts, m.data_offset, bytes.len()))
}

/// Which Zebra answer parser to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZebraQuery {
    /// `~HI`.
    Hi,
    /// `~HS`.
    Hs,
    /// SGD `getvar` (the serial).
    Getvar,
    /// `~HQES`.
    Hqes,
}

/// What a Zebra answer parser made of some bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Zebra {
    /// A valid beginning; more bytes are needed.
    Incomplete,
    /// Cannot become the expected answer.
    Malformed,
    /// The answer (its value printed, with what the agent derives from it) and the bytes used.
    Parsed {
        /// The value and what is derived from it (status, description, serial check).
        value: String,
        /// Bytes of the input used.
        used: usize,
    },
}

/// The most bytes the agent buffers while waiting for one Zebra answer.
pub const ZEBRA_MAX_ANSWER: usize = zpl::MAX_ANSWER_LEN;

/// Runs one of the Zebra answer parsers the agent reads a raw printer's answers with.
pub fn zebra_parse(query: ZebraQuery, buf: &[u8]) -> Zebra {
    fn out<T>(r: Result<(T, usize), zpl::AnswerError>, show: impl FnOnce(T) -> String) -> Zebra {
        match r {
            Err(zpl::AnswerError::Incomplete) => Zebra::Incomplete,
            Err(zpl::AnswerError::Malformed(_)) => Zebra::Malformed,
            Ok((v, used)) => Zebra::Parsed {
                value: show(v),
                used,
            },
        }
    }
    match query {
        ZebraQuery::Hi => out(zpl::parse_hi(buf), |v| format!("{v:?}")),
        ZebraQuery::Hs => out(zpl::parse_hs(buf), |v| format!("{v:?} {:?}", v.status())),
        ZebraQuery::Getvar => out(zpl::parse_quoted(buf), |v| {
            format!("{v:?} serial={:?}", zpl::valid_serial(&v))
        }),
        ZebraQuery::Hqes => out(zpl::parse_hqes(buf), |v| {
            format!("{v:?} {:?} {}", v.status(), v.describe())
        }),
    }
}

/// What a device-supplied identification string was judged as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceJudgement {
    /// The IEEE 1284 serial, if usable.
    pub serial: Option<String>,
    /// A USB printer with this device id: `(serial, model, takes ZPL)` or the refusal reason.
    pub usb: Result<(String, String, bool), String>,
}

/// Judges an IEEE 1284 device id (from sysfs or an IPP printer) as the agent does.
pub fn device_id(id: &str) -> DeviceJudgement {
    DeviceJudgement {
        serial: DeviceId::parse(id).serial(),
        usb: usb::judge_device_id(id).map_err(|a| a.reason),
    }
}

/// Judges a CUPS queue's device-uri: `(kind, text shown to a person)`, where the text is the
/// reason of a refusal or the identity of a named device.
pub fn cups_device_uri(uri: &str) -> (&'static str, Option<String>) {
    match cups::judge_device_uri(uri) {
        Device::Virtual(why) => ("virtual", Some(why)),
        Device::Socket { .. } => ("socket", None),
        Device::Ipp(_) => ("ipp", None),
        Device::Named { identity, .. } => ("named", identity),
    }
}

fn device_reason(device: &Device) -> Option<String> {
    match device {
        Device::Virtual(why) => Some(why.clone()),
        Device::Named { identity, .. } => identity.clone(),
        _ => None,
    }
}

/// A device-uri as shown in reasons (credentials removed).
pub fn cups_shown(uri: &str) -> String {
    cups::shown(uri)
}

/// Reads a `CUPS_SERVER` value: `Some(true)` for a socket path, `Some(false)` for a host.
pub fn cups_server(value: &str) -> Option<bool> {
    Server::parse(value).map(|s| matches!(s, Server::Socket(_)))
}
