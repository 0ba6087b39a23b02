//! Printers: the devices an agent delivers labels to, how it checks that each is a physical
//! printer (and the same one as before), and how it writes a label to it.
//!
//! # Main types
//! - [`PrinterConfig`]: one configured printer (`[[printer]]` in the config, or
//!   `--printer NAME=URI`).
//! - [`PrinterUri`]: where it is: `raw://`, `ipp://`/`ipps://`, `cups://`, `usb://`,
//!   `winspool://`.
//! - [`Printer`]: a configured printer and what the agent knows of it: [`Printer::probe`]
//!   verifies it and reads its status, [`Printer::print`] delivers one label.
//! - [`PrintError`]: tells "nothing was written, safe to send elsewhere" apart from "writing
//!   started, result unknown".
//!
//! # Verification (raw ZPL printers)
//! On one connection the agent asks `~HI`, then the serial (`! U1 getvar "device.unique_id"`),
//! then `~HS`. A device is [`PrinterVerdict::Verified`] only when all three answer in the
//! expected shapes within the answer timeout and it reports a serial; a model string proves
//! nothing, the serial is the identity. The first verification records the serial (the agent
//! persists it); a different serial later is refused until an admin accepts the new device.
//! A device that accepts the connection but stays silent is refused and never printed to.
//! Silence on `~HS` alone is read as a fault (some firmware is silent while out of paper or
//! with the head open), never as ready: the agent then asks `~HQES`, whose error bits say
//! which fault (media out, ribbon out, head open…).
//!
//! # Other kinds
//! - `ipp://`/`ipps://` (`ipp`, `http`): Get-Printer-Attributes; refused when it describes a
//!   PDF/XPS/file writer; identity = the device id's serial, printer-serial-number or
//!   printer-uuid; status from printer-state and printer-state-reasons; printed with Print-Job
//!   in a document format the printer lists. For `ipps://` the certificate is pinned for the
//!   process's lifetime.
//! - `cups://QUEUE` (`cups`): the queue's `device-uri` from the scheduler over IPP, judged by
//!   backend; the device behind it is verified and printed to directly as its own kind
//!   (`socket` as raw, `ipp`/`ipps` as IPP, `usb` through its usblp node), never through the
//!   scheduler, which would spool the label to disk.
//! - `usb:///dev/usb/lpN` (`usb`): the node, the sysfs IEEE 1284 device id and its serial.
//! - `winspool://NAME` (`winspool`): port and driver from the Windows spooler; refused when
//!   the spooler would keep the label on disk (not printing directly, or keeping printed
//!   documents).
//!
//! Transports: `raw` (TCP 9100, Zebra host queries), `ipp_job` (IPP over `http`, codec in
//! `ipp`, judgement of the attributes in `facts`), `usb`, `winspool`.
//!
//! Every kind re-checks identity and status before each job, on the same terms as a probe.
//!
//! # What it does not do
//! No PDF or PNG rendering (a printer gets a format it lists, or the job is refused), no
//! retries and no queueing: the caller decides where a refused label goes. Label bytes are
//! never logged, copied into errors or kept after [`Printer::print`] returns.

mod config;
mod cups;
mod facts;
#[doc(hidden)]
pub mod fuzzing;
mod graphic;
mod http;
mod ipp;
mod ipp_job;
mod raw;
mod uri;
mod usb;
mod winspool;
mod zpl;

/// The station self-check's view of the local print system (used by the doctor module).
pub(crate) mod inventory {
    pub(crate) use super::cups::{all_queues, judge_device_uri, Device, Server};
    pub(crate) use super::facts::names_a_writer;
    pub(crate) use super::winspool::{
        all as spooler_printers, disk_reason as spooler_disk, virtual_reason as spooler_virtual,
        DiskSettings, SpoolerPrinter,
    };
    #[cfg(test)]
    pub(crate) use super::winspool::{
        ATTRIBUTE_DIRECT as SPOOLER_DIRECT, ATTRIBUTE_KEEP_PRINTED_JOBS as SPOOLER_KEEP_PRINTED,
    };
}

use sealprint_protocol::{LabelFormat, PrinterReport, PrinterStatus, PrinterVerdict};
use tracing::{debug, info, warn, Instrument as _};

pub use config::{PrinterConfig, PrinterError, Timeouts, DEFAULT_POOL};
pub use uri::{PrinterUri, DEFAULT_IPP_PORT, DEFAULT_RAW_PORT};

use facts::PrinterFacts;
use zpl::Connection;

/// Why a label was not (or maybe not) printed. Reasons are for a person and never hold label
/// content or other PII.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrintError {
    /// Nothing was written to the printer: the label may safely go to another printer.
    #[error("not printed: {0}")]
    NotPrinted(String),
    /// Writing started but did not finish cleanly: the printer may or may not have printed
    /// the label, so sending it elsewhere risks a duplicate.
    #[error("print in doubt: {0}")]
    InDoubt(String),
}

impl PrintError {
    /// `not_printed` or `in_doubt` (a metric label).
    pub fn kind(&self) -> &'static str {
        match self {
            PrintError::NotPrinted(_) => "not_printed",
            PrintError::InDoubt(_) => "in_doubt",
        }
    }
}

/// One configured printer and what the agent knows of it.
#[derive(Debug)]
pub struct Printer {
    config: PrinterConfig,
    uri: PrinterUri,
    recorded_identity: Option<String>,
    timeouts: Timeouts,
    last: PrinterReport,
    /// The CUPS scheduler for `cups://` printers; `None`: [`cups::Server::local`].
    cups_server: Option<cups::Server>,
    /// SHA-256 of an `ipps://` printer's certificate, pinned at first verification.
    tls_pin: Option<[u8; 32]>,
}

/// A device's verdict, status, identity and reason, before the identity is compared with
/// the recorded one ([`Printer::settle`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Assessment {
    /// Verified means "answered like a physical printer with an identity".
    pub verdict: PrinterVerdict,
    /// Whether it can print now.
    pub status: PrinterStatus,
    /// The identity it answered, if any.
    pub identity: Option<String>,
    /// Why, for a person.
    pub reason: String,
}

impl Assessment {
    /// Not a physical printer (or not verifiable).
    pub fn refused(reason: String, identity: Option<String>) -> Assessment {
        Assessment {
            verdict: PrinterVerdict::Refused,
            status: PrinterStatus::Unknown,
            identity,
            reason,
        }
    }

    /// Did not answer.
    pub fn unreachable(reason: String) -> Assessment {
        Assessment {
            verdict: PrinterVerdict::Unreachable,
            status: PrinterStatus::Offline,
            identity: None,
            reason,
        }
    }
}

/// Where a verified printer takes its job, with what the check learnt. Every route reaches the
/// device itself: none goes through a spooler that would keep the label on disk.
enum Route {
    /// Nothing to print to (not verified).
    None,
    /// A raw ZPL device (`raw://`, or a CUPS queue's `socket://` device): the connection the
    /// device was just verified on, where the label follows.
    Raw(Connection),
    /// An IPP printer (`ipp://`, or a CUPS queue's `ipp://` device): Print-Job to `endpoint`.
    Ipp {
        endpoint: http::Endpoint,
        facts: Box<PrinterFacts>,
    },
    /// A Linux USB node (`usb://`, or a CUPS queue's USB device found as a usblp node).
    Usb(String),
    /// A Windows spooler printer that prints directly and keeps no documents.
    Winspool(String),
}

impl Printer {
    /// A printer from its config. `recorded_identity` is the serial recorded on an earlier run
    /// (the agent persists it), `None` on first sight. Does no I/O: the printer is reported
    /// unreachable until [`Printer::probe`] runs.
    ///
    /// # Errors
    /// Any error of [`PrinterConfig::validate`].
    pub fn new(
        config: PrinterConfig,
        recorded_identity: Option<String>,
        timeouts: Timeouts,
    ) -> Result<Printer, PrinterError> {
        let uri = config.validate()?;
        let last = PrinterReport {
            name: config.name.clone(),
            pool: config.pool.clone(),
            uri: uri.to_string(),
            verdict: PrinterVerdict::Unreachable,
            reason: "not probed yet".to_owned(),
            identity: None,
            status: PrinterStatus::Unknown,
        };
        Ok(Printer {
            config,
            uri,
            recorded_identity: recorded_identity.filter(|s| !s.is_empty()),
            timeouts,
            last,
            cups_server: None,
            tls_pin: None,
        })
    }

    /// Uses the CUPS scheduler at `server` for a `cups://` printer: an absolute unix socket
    /// path or `HOST[:PORT]`. Without it, `CUPS_SERVER`, then `/run/cups/cups.sock`, then
    /// `localhost:631`. An unparsable value is ignored.
    pub fn with_cups_server(mut self, server: &str) -> Printer {
        self.cups_server = cups::Server::parse(server);
        self
    }

    /// The printer's name, unique on its agent.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The pool the printer serves.
    pub fn pool(&self) -> &str {
        &self.config.pool
    }

    /// Where the printer is.
    pub fn uri(&self) -> &PrinterUri {
        &self.uri
    }

    /// The identity (serial) now recorded: the one given to [`Printer::new`], or the one
    /// recorded by the first successful verification. The agent persists it.
    pub fn recorded_identity(&self) -> Option<&str> {
        self.recorded_identity.as_deref()
    }

    /// Records `identity` in place of the one recorded before, after an admin accepted a
    /// swapped device; only if the device answered exactly that identity at its last check.
    /// Returns whether it was taken.
    pub fn accept_identity(&mut self, identity: &str) -> bool {
        if self.last.identity.as_deref() != Some(identity) {
            return false;
        }
        info!(printer = %self.config.name, %identity, "new device identity accepted by an admin");
        self.recorded_identity = Some(identity.to_owned());
        true
    }

    /// The report of the last [`Printer::probe`] or [`Printer::print`].
    pub fn last_report(&self) -> &PrinterReport {
        &self.last
    }

    /// Talks to the device, verifies it and reads its status; returns the report, also kept
    /// as [`Printer::last_report`]. Never fails: problems are in the report's verdict and
    /// reason. Records the serial on first successful verification.
    ///
    /// Cancel safe: if dropped, nothing is recorded and the last report is unchanged.
    pub async fn probe(&mut self) -> PrinterReport {
        let span = tracing::info_span!("printer_probe", printer = %self.config.name);
        async {
            let (assessment, _route) = self.examine().await;
            let report = self.settle(assessment);
            if report.verdict == PrinterVerdict::Verified {
                debug!(status = ?report.status, "printer verified");
            } else {
                warn!(verdict = ?report.verdict, reason = %report.reason, "printer not verified");
            }
            self.last = report.clone();
            report
        }
        .instrument(span)
        .await
    }

    /// Delivers one label. On a new connection it first re-checks the device (the serial must
    /// be the recorded one, the status must be ready), then writes all bytes on that same
    /// connection, closes its sending side and waits briefly for the device to close.
    ///
    /// Updates [`Printer::last_report`] with what the re-check found.
    ///
    /// Not cancel safe: dropping the future after writing began leaves the label in doubt
    /// with no one told.
    ///
    /// # Errors
    /// [`PrintError::NotPrinted`] when nothing was written: wrong format, never verified,
    /// unreachable, refused, not ready, or the first write failed. [`PrintError::InDoubt`]
    /// when writing started and did not finish cleanly.
    pub async fn print(&mut self, format: LabelFormat, data: &[u8]) -> Result<(), PrintError> {
        self.print_before(format, data, u64::MAX).await
    }

    /// Like [`Printer::print`], but writes nothing once the clock passes `deadline_ms` (unix
    /// ms): the deadline is checked after the re-check of the device, right before the first
    /// byte goes out, so a slow connection or status query cannot push a print past it.
    ///
    /// # Errors
    /// As [`Printer::print`]; a passed deadline is [`PrintError::NotPrinted`].
    pub async fn print_before(
        &mut self,
        format: LabelFormat,
        data: &[u8],
        deadline_ms: u64,
    ) -> Result<(), PrintError> {
        let span =
            tracing::info_span!("printer_print", printer = %self.config.name, bytes = data.len());
        async {
            let result = self.print_inner(format, data, deadline_ms).await;
            match &result {
                Ok(()) => info!("label written"),
                Err(PrintError::NotPrinted(reason)) => warn!(%reason, "label not printed"),
                Err(PrintError::InDoubt(reason)) => warn!(%reason, "label in doubt"),
            }
            result
        }
        .instrument(span)
        .await
    }

    async fn print_inner(
        &mut self,
        format: LabelFormat,
        data: &[u8],
        deadline_ms: u64,
    ) -> Result<(), PrintError> {
        // A raw ZPL printer takes ZPL; a PNG label becomes a ZPL graphic, in memory. Checked
        // before the device is asked, so a label it cannot take costs no connection.
        let converted;
        let (format, data) = match &self.uri {
            PrinterUri::Raw { .. } => {
                converted = as_zpl(format, data)?;
                (LabelFormat::Zpl, converted.as_slice())
            }
            _ => (format, data),
        };
        if data.is_empty() {
            return Err(PrintError::NotPrinted("empty label".to_owned()));
        }
        if self.recorded_identity.is_none() {
            return Err(PrintError::NotPrinted("printer not verified".to_owned()));
        }
        let (assessment, route) = self.examine().await;
        self.last = self.settle(assessment);
        self.ready_to_print()?;
        before_deadline(deadline_ms)?;
        match route {
            Route::None => Err(PrintError::NotPrinted("printer not verified".to_owned())),
            Route::Raw(conn) => {
                let converted = as_zpl(format, data)?;
                let mut stream = conn.into_stream();
                raw::write_label(&mut stream, converted.as_slice(), self.timeouts).await
            }
            Route::Ipp { endpoint, facts } => {
                let Some(document_format) = facts.document_format(format) else {
                    return Err(PrintError::NotPrinted(format!(
                        "the printer does not take {} documents (document-format-supported)",
                        format.as_str()
                    )));
                };
                ipp_job::print_job(&endpoint, document_format, data, self.timeouts).await
            }
            Route::Usb(path) => usb::write(&path, format, data, self.timeouts).await,
            Route::Winspool(name) => {
                if format != LabelFormat::Zpl {
                    return Err(PrintError::NotPrinted(format!(
                        "format {} not supported: Windows printers get RAW ZPL only",
                        format.as_str()
                    )));
                }
                winspool::write(&name, data).await
            }
        }
    }

    /// After a re-check: the last report must be verified and ready.
    fn ready_to_print(&self) -> Result<(), PrintError> {
        let report = &self.last;
        if report.verdict != PrinterVerdict::Verified {
            let reason = if report.reason.starts_with("identity changed") {
                report.reason.clone()
            } else {
                format!("printer not verified: {}", report.reason)
            };
            return Err(PrintError::NotPrinted(reason));
        }
        if report.status != PrinterStatus::Ready {
            return Err(PrintError::NotPrinted(
                status_text(report.status).to_owned(),
            ));
        }
        Ok(())
    }

    /// Asks the device (any kind) and judges what it answered, without comparing identities.
    async fn examine(&mut self) -> (Assessment, Route) {
        let timeouts = self.timeouts;
        match self.uri.clone() {
            PrinterUri::Raw { host, port } => {
                let (assessment, conn) = raw::examine(&host, port, timeouts).await;
                (assessment, conn.map_or(Route::None, Route::Raw))
            }
            PrinterUri::Ipp {
                tls,
                host,
                port,
                path,
            } => {
                let endpoint = http::Endpoint {
                    target: http::Target::Tcp { tls, host, port },
                    path,
                };
                self.examine_ipp(endpoint).await
            }
            PrinterUri::Cups { queue } => {
                let server = self.cups_server.clone().unwrap_or_else(cups::Server::local);
                self.examine_cups(&server, &queue).await
            }
            PrinterUri::Usb { path } => (usb::assess(&path, timeouts).await, Route::Usb(path)),
            PrinterUri::Winspool { name } => (winspool::assess(&name).await, Route::Winspool(name)),
        }
    }

    /// An IPP printer's attributes, judged; an `ipps://` certificate is pinned.
    async fn examine_ipp(&mut self, endpoint: http::Endpoint) -> (Assessment, Route) {
        match ipp_job::printer_facts(&endpoint, self.timeouts).await {
            Ok((facts, certificate)) => {
                let mut assessment = facts.assess();
                if assessment.verdict == PrinterVerdict::Verified {
                    if let Some(reason) = self.check_pin(certificate) {
                        assessment = Assessment::refused(reason, assessment.identity);
                    }
                }
                let route = Route::Ipp {
                    endpoint,
                    facts: Box::new(facts),
                };
                (assessment, route)
            }
            Err(assessment) => (assessment, Route::None),
        }
    }

    /// A CUPS queue: its device-uri from the scheduler, then the device behind it, asked and
    /// printed to directly. The scheduler never gets the label: it would spool it to disk.
    async fn examine_cups(&mut self, server: &cups::Server, queue: &str) -> (Assessment, Route) {
        let timeouts = self.timeouts;
        let facts = match cups::queue_facts(server, queue, timeouts).await {
            Ok(facts) => facts,
            Err(assessment) => return (assessment, Route::None),
        };
        let device = match cups::judge_queue(queue, &facts) {
            Ok(device) => device,
            Err(refused) => return (refused, Route::None),
        };
        let (assessment, route) = match device {
            cups::Device::Virtual(why) => (Assessment::refused(why, None), Route::None),
            cups::Device::Socket { host, port } => {
                let (mut a, conn) = raw::examine(&host, port, timeouts).await;
                if a.reason == raw::SILENT_REASON {
                    a.reason = format!(
                        "its socket://{} device did not answer Zebra host queries; a socket \
                         device must (use the printer's ipp:// address for other printers)",
                        uri::bracketed(&host)
                    );
                }
                (a, conn.map_or(Route::None, Route::Raw))
            }
            cups::Device::Ipp(endpoint) => self.examine_ipp(endpoint).await,
            cups::Device::Named { backend, identity } => match cups::direct(&backend, identity) {
                cups::Direct::Usb(path) => (usb::assess(&path, timeouts).await, Route::Usb(path)),
                cups::Direct::Refused(why) => (
                    Assessment::refused(format!("CUPS queue {queue}: {why}"), None),
                    Route::None,
                ),
            },
        };
        (cups::combine(queue, &facts, assessment), route)
    }

    /// Pins an `ipps://` certificate on first verification; a different one later is refused.
    fn check_pin(&mut self, certificate: Option<[u8; 32]>) -> Option<String> {
        let certificate = certificate?;
        match self.tls_pin {
            None => {
                self.tls_pin = Some(certificate);
                None
            }
            Some(pin) if pin == certificate => None,
            Some(_) => Some(
                "the printer's tls certificate changed since it was verified; restart the \
                 agent after checking the device"
                    .to_owned(),
            ),
        }
    }

    /// Compares an assessment's identity with the recorded one (recording it on first
    /// verification) and turns it into a report.
    fn settle(&mut self, assessment: Assessment) -> PrinterReport {
        let Assessment {
            mut verdict,
            mut status,
            identity,
            mut reason,
        } = assessment;
        if let Some(changed) = identity.as_deref().and_then(|id| self.identity_change(id)) {
            verdict = PrinterVerdict::Refused;
            status = PrinterStatus::Unknown;
            reason = changed;
        } else if verdict == PrinterVerdict::Verified {
            match (&self.recorded_identity, &identity) {
                (None, Some(id)) => {
                    info!(identity = %id, "printer verified for the first time; identity recorded");
                    self.recorded_identity = Some(id.clone());
                    reason.push_str(", recorded on first sight");
                }
                (_, None) => {
                    // Backends never verify without an identity; refuse rather than trust.
                    verdict = PrinterVerdict::Refused;
                    status = PrinterStatus::Unknown;
                    reason = "printer answered no identity".to_owned();
                }
                _ => {}
            }
        }
        PrinterReport {
            name: self.config.name.clone(),
            pool: self.config.pool.clone(),
            uri: self.uri.to_string(),
            verdict,
            reason,
            identity,
            status,
        }
    }

    fn identity_change(&self, answered: &str) -> Option<String> {
        let recorded = self.recorded_identity.as_deref()?;
        (recorded != answered).then(|| {
            format!(
                "identity changed (recorded serial {recorded}, device answered {answered}); \
                 an admin must accept the new device"
            )
        })
    }
}

/// A label as a raw device takes it: ZPL as given, or a PNG converted to a ZPL graphic (in
/// memory, wiped when dropped).
enum Zpl<'a> {
    Given(&'a [u8]),
    Converted(zeroize::Zeroizing<Vec<u8>>),
}

impl Zpl<'_> {
    fn as_slice(&self) -> &[u8] {
        match self {
            Zpl::Given(data) => data,
            Zpl::Converted(data) => data,
        }
    }
}

/// ZPL as is, PNG converted to a ZPL graphic, PDF refused.
fn as_zpl(format: LabelFormat, data: &[u8]) -> Result<Zpl<'_>, PrintError> {
    match format {
        LabelFormat::Zpl => Ok(Zpl::Given(data)),
        LabelFormat::Png => graphic::png_to_zpl(data)
            .map(Zpl::Converted)
            .map_err(|e| PrintError::NotPrinted(format!("png label not converted to zpl: {e}"))),
        LabelFormat::Pdf => Err(PrintError::NotPrinted(
            "format pdf not supported by a raw ZPL printer".to_owned(),
        )),
    }
}

fn status_text(status: PrinterStatus) -> &'static str {
    match status {
        PrinterStatus::Ready => "ready",
        PrinterStatus::PaperOut => "paper out",
        PrinterStatus::HeadOpen => "head open",
        PrinterStatus::Paused => "paused",
        PrinterStatus::Offline => "offline",
        PrinterStatus::Unknown => "status unknown",
    }
}

/// Nothing may be written once a job's deadline has passed: the coordinator may already
/// have sent it to another printer.
fn before_deadline(deadline_ms: u64) -> Result<(), PrintError> {
    if crate::now_ms() > deadline_ms {
        return Err(PrintError::NotPrinted(
            "deadline passed before printing".to_owned(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
