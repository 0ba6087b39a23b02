//! The judgement of a printer's IPP attributes (a Get-Printer-Attributes answer from a printer
//! or a CUPS queue): is it a physical printer, what is its identity, is it ready, which document
//! format it takes. Pure: no I/O and no decoding (see `ipp` for the codec).
//!
//! # Main types
//! - [`PrinterFacts`]: the attributes verification reads, and [`PrinterFacts::assess`].
//! - [`DeviceId`]: an IEEE 1284 device id (`MFG:…;MDL:…;SN:…;`), also read from USB printers.
//!
//! # What it does not do
//! It never trusts a make-and-model string for identity (emulators claim any); identity is a
//! serial or uuid.

use sealprint_protocol::{LabelFormat, PrinterStatus, PrinterVerdict};

use super::ipp::{Message, TAG_PRINTER};
use super::Assessment;

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
mod tests {
    use super::*;

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
}
