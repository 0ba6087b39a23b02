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
//!   backend, and the device behind it asked where possible; printed with Print-Job to the
//!   queue.
//! - `usb:///dev/usb/lpN` (`usb`): the node, the sysfs IEEE 1284 device id and its serial.
//! - `winspool://NAME` (`winspool`): port and driver from the Windows spooler.
//!
//! Every kind re-checks identity and status before each job, on the same terms as a probe.
//!
//! # What it does not do
//! No PDF or PNG rendering (a printer gets a format it lists, or the job is refused), no
//! retries and no queueing: the caller decides where a refused label goes. Label bytes are
//! never logged, copied into errors or kept after [`Printer::print`] returns.

mod cups;
mod graphic;
mod http;
mod ipp;
mod uri;
mod usb;
mod winspool;
mod zpl;

/// The station self-check's view of the local print system (used by `crate::doctor`).
pub(crate) mod inventory {
    pub(crate) use super::cups::{all_queues, judge_device_uri, Device, Server};
    pub(crate) use super::ipp::names_a_writer;
    pub(crate) use super::winspool::{all as spooler_printers, virtual_reason as spooler_virtual};
}

use std::fmt;
use std::io;
use std::time::Duration;

use sealprint_protocol::{LabelFormat, PrinterReport, PrinterStatus, PrinterVerdict};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::{debug, info, warn, Instrument as _};

pub use uri::{PrinterUri, DEFAULT_IPP_PORT, DEFAULT_RAW_PORT};

use zpl::{Connection, HostIdentification, HostStatus, HqesErrors, QueryFailure};

/// The pool a printer serves when its config names none.
pub const DEFAULT_POOL: &str = "default";

/// The longest printer or pool name accepted.
const MAX_NAME_LEN: usize = 64;

/// The reason given for a device that accepts a connection and answers nothing.
const SILENT_REASON: &str =
    "device accepted the connection but did not answer ~HI/~HS like a printer";

fn default_pool() -> String {
    DEFAULT_POOL.to_owned()
}

/// Why a printer's configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PrinterError {
    /// A `--printer` flag was not `NAME=URI`.
    #[error("printer flag must be NAME=URI, for example zebra-1=raw://10.0.0.5:9100")]
    BadFlag,
    /// The printer's name is empty, too long or has control characters.
    #[error("invalid printer name: {0}")]
    InvalidName(&'static str),
    /// The pool's name is empty, too long or has control characters.
    #[error("invalid pool name: {0}")]
    InvalidPool(&'static str),
    /// The URI could not be parsed.
    #[error("invalid printer uri: {0}")]
    InvalidUri(String),
    /// The URI's scheme is not supported (yet); holds the lower-cased scheme.
    #[error(
        "unsupported printer uri scheme {0:?}: use raw://, ipp://, ipps://, cups://, \
         usb:///dev/usb/lpN or winspool://"
    )]
    UnsupportedScheme(String),
}

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

/// One `[[printer]]` entry of the agent config, or one `--printer NAME=URI` flag (pool
/// `default`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PrinterConfig {
    /// Name of the printer, unique on its agent (shown to admins; not PII).
    pub name: String,
    /// Where it is, for example `raw://10.0.0.5:9100` (see [`PrinterUri`]).
    pub uri: String,
    /// The pool it serves. Default: `default`.
    #[serde(default = "default_pool")]
    pub pool: String,
}

impl PrinterConfig {
    /// Parses a `--printer NAME=URI` flag into a printer of the `default` pool.
    ///
    /// # Errors
    /// [`PrinterError::BadFlag`] without `=`, and any error of [`PrinterConfig::validate`].
    pub fn from_flag(s: &str) -> Result<PrinterConfig, PrinterError> {
        let (name, uri) = s.split_once('=').ok_or(PrinterError::BadFlag)?;
        let config = PrinterConfig {
            name: name.trim().to_owned(),
            uri: uri.trim().to_owned(),
            pool: default_pool(),
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks the name and pool and parses the URI.
    ///
    /// # Errors
    /// [`PrinterError::InvalidName`], [`PrinterError::InvalidPool`],
    /// [`PrinterError::InvalidUri`] or [`PrinterError::UnsupportedScheme`].
    pub fn validate(&self) -> Result<PrinterUri, PrinterError> {
        check_name(&self.name).map_err(PrinterError::InvalidName)?;
        check_name(&self.pool).map_err(PrinterError::InvalidPool)?;
        self.uri.parse()
    }
}

fn check_name(name: &str) -> Result<(), &'static str> {
    if name.trim().is_empty() {
        Err("empty")
    } else if name.chars().count() > MAX_NAME_LEN {
        Err("longer than 64 characters")
    } else if name.chars().any(char::is_control) {
        Err("control characters")
    } else {
        Ok(())
    }
}

/// How long the agent waits on a printer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// To open the TCP connection. Default: 2 s.
    pub connect: Duration,
    /// For each query's answer. Default: 2 s.
    pub answer: Duration,
    /// To write one whole label and close the sending side. Default: 10 s.
    pub write: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(2),
            answer: Duration::from_secs(2),
            write: Duration::from_secs(10),
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

/// Where a verified printer takes its job, with what the check learnt.
#[derive(Debug)]
enum Route {
    /// Nothing to print to (not verified).
    None,
    /// An IPP printer or CUPS queue: Print-Job to `endpoint`; `cups` picks CUPS's raw format.
    Ipp {
        endpoint: http::Endpoint,
        facts: Box<ipp::PrinterFacts>,
        cups: bool,
    },
    /// A Linux USB node.
    Usb(String),
    /// A Windows spooler printer.
    Winspool(String),
}

/// What talking to the device found out, before judging it.
#[derive(Debug)]
enum Findings {
    /// The TCP connection could not be opened.
    NoConnection(String),
    /// `~HI` got no usable answer.
    NoIdentification(QueryFailure),
    /// `~HI` answered, the serial query did not (or answered no serial).
    NoSerial(HostIdentification, Option<QueryFailure>),
    /// `~HI` and the serial answered, `~HS` did not; what `~HQES` answered, if anything.
    NoStatus(HostIdentification, String, QueryFailure, Option<HqesErrors>),
    /// All three answered.
    Complete(HostIdentification, String, HostStatus),
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
        // A raw ZPL printer takes ZPL; a PNG label becomes a ZPL graphic, in memory.
        let converted;
        let data = match (&self.uri, format) {
            (PrinterUri::Raw { .. }, LabelFormat::Png) => {
                converted = graphic::png_to_zpl(data).map_err(|e| {
                    PrintError::NotPrinted(format!("png label not converted to zpl: {e}"))
                })?;
                converted.as_slice()
            }
            (PrinterUri::Raw { .. }, LabelFormat::Pdf) => {
                return Err(PrintError::NotPrinted(
                    "format pdf not supported by a raw ZPL printer".to_owned(),
                ))
            }
            _ => data,
        };
        if data.is_empty() {
            return Err(PrintError::NotPrinted("empty label".to_owned()));
        }
        if self.recorded_identity.is_none() {
            return Err(PrintError::NotPrinted("printer not verified".to_owned()));
        }
        if let PrinterUri::Raw { host, port } = &self.uri {
            let stream = match connect_raw(host, *port, self.timeouts).await {
                Ok(stream) => stream,
                Err(findings) => {
                    self.last = self.settle(assess_raw(findings));
                    return Err(PrintError::NotPrinted(self.last.reason.clone()));
                }
            };
            let mut conn = Connection::new(stream);
            let findings = interrogate(&mut conn, self.timeouts).await;
            self.last = self.settle(assess_raw(findings));
            self.ready_to_print()?;
            before_deadline(deadline_ms)?;
            let mut stream = conn.into_stream();
            return write_label(&mut stream, data, self.timeouts).await;
        }
        let (assessment, route) = self.examine().await;
        self.last = self.settle(assessment);
        self.ready_to_print()?;
        before_deadline(deadline_ms)?;
        match route {
            Route::None => Err(PrintError::NotPrinted("printer not verified".to_owned())),
            Route::Ipp {
                endpoint,
                facts,
                cups,
            } => {
                let document_format = if cups {
                    cups::document_format(format, &facts)
                } else {
                    facts.document_format(format)
                };
                let Some(document_format) = document_format else {
                    return Err(PrintError::NotPrinted(format!(
                        "the printer does not take {} documents (document-format-supported)",
                        format.as_str()
                    )));
                };
                print_job(&endpoint, document_format, data, self.timeouts).await
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
                let findings = match connect_raw(&host, port, timeouts).await {
                    Ok(stream) => interrogate(&mut Connection::new(stream), timeouts).await,
                    Err(findings) => findings,
                };
                (assess_raw(findings), Route::None)
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
                match ipp_facts(&endpoint, timeouts).await {
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
                            cups: false,
                        };
                        (assessment, route)
                    }
                    Err(assessment) => (assessment, Route::None),
                }
            }
            PrinterUri::Cups { queue } => {
                let server = self.cups_server.clone().unwrap_or_else(cups::Server::local);
                self.examine_cups(&server, &queue).await
            }
            PrinterUri::Usb { path } => (usb::assess(&path, timeouts).await, Route::Usb(path)),
            PrinterUri::Winspool { name } => (winspool::assess(&name).await, Route::Winspool(name)),
        }
    }

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
        let assessment = match device {
            cups::Device::Virtual(why) => Assessment::refused(why, None),
            cups::Device::Socket { host, port } => {
                let findings = match connect_raw(&host, port, timeouts).await {
                    Ok(stream) => interrogate(&mut Connection::new(stream), timeouts).await,
                    Err(findings) => findings,
                };
                let mut a = assess_raw(findings);
                if a.reason == SILENT_REASON {
                    a.reason = format!(
                        "its socket://{} device did not answer Zebra host queries; a socket \
                         device must (use the printer's ipp:// address for other printers)",
                        uri::bracketed(&host)
                    );
                }
                a
            }
            cups::Device::Ipp(endpoint) => match ipp_facts(&endpoint, timeouts).await {
                Ok((device_facts, _)) => device_facts.assess(),
                Err(a) => a,
            },
            cups::Device::Named { backend, identity } => cups::named(&backend, identity, &facts),
        };
        let assessment = cups::combine(queue, &facts, assessment);
        let route = Route::Ipp {
            endpoint: server.queue(queue),
            facts: Box::new(facts),
            cups: true,
        };
        (assessment, route)
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

async fn connect_raw(host: &str, port: u16, timeouts: Timeouts) -> Result<TcpStream, Findings> {
    let connecting = TcpStream::connect((host, port));
    match tokio::time::timeout(timeouts.connect, connecting).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(Findings::NoConnection(format!(
            "connect failed: {}",
            e.kind()
        ))),
        Err(_) => Err(Findings::NoConnection("connect timed out".to_owned())),
    }
}

/// Judges what a raw ZPL device answered (identity not compared yet).
fn assess_raw(findings: Findings) -> Assessment {
    use PrinterStatus as S;
    use PrinterVerdict as V;
    let (verdict, status, identity, reason) = match findings {
        Findings::NoConnection(reason) => (V::Unreachable, S::Offline, None, reason),
        Findings::NoIdentification(QueryFailure::Silent) => {
            (V::Refused, S::Unknown, None, SILENT_REASON.to_owned())
        }
        Findings::NoIdentification(QueryFailure::Garbled(why)) => (
            V::Refused,
            S::Unknown,
            None,
            format!("device did not answer ~HI like a printer ({why})"),
        ),
        Findings::NoIdentification(failure) => (
            V::Unreachable,
            S::Offline,
            None,
            format!("connection lost before ~HI was answered ({failure})"),
        ),
        Findings::NoSerial(id, failure) => {
            let why = failure.map_or_else(|| "no serial".to_owned(), |f| f.to_string());
            (
                V::Refused,
                S::Unknown,
                None,
                format!(
                    "device answered ~HI (claims {}) but not its serial (getvar \
                     device.unique_id: {why}); a printer without a serial cannot be verified",
                    id.model
                ),
            )
        }
        Findings::NoStatus(id, serial, failure, hqes) => match (failure, hqes) {
            // Silent on ~HS but ~HQES names the fault: a verified printer that is not ready.
            (QueryFailure::Silent, Some(errors)) if errors.any() => (
                V::Verified,
                errors.status(),
                Some(serial.clone()),
                format!(
                    "verified: {} (firmware {}), serial {serial}; silent on ~HS, ~HQES reports {}",
                    id.model,
                    id.firmware,
                    errors.describe()
                ),
            ),
            (QueryFailure::Silent, hqes) => (
                V::Unreachable,
                S::Offline,
                Some(serial),
                format!(
                    "{} answered ~HI and its serial but not ~HS{}; some firmware is silent \
                     while faulted (paper out, head open): check the printer",
                    id.model,
                    if hqes.is_some() {
                        " (~HQES reports no error)"
                    } else {
                        ""
                    }
                ),
            ),
            (QueryFailure::Garbled(why), _) => (
                V::Refused,
                S::Unknown,
                Some(serial),
                format!("device did not answer ~HS like a printer ({why})"),
            ),
            (failure, _) => (
                V::Unreachable,
                S::Offline,
                Some(serial),
                format!("connection lost before ~HS was answered ({failure})"),
            ),
        },
        Findings::Complete(id, serial, host_status) => (
            V::Verified,
            host_status.status(),
            Some(serial.clone()),
            format!(
                "verified: {} (firmware {}), serial {serial}",
                id.model, id.firmware
            ),
        ),
    };
    Assessment {
        verdict,
        status,
        identity,
        reason,
    }
}

/// Get-Printer-Attributes on an IPP printer: its facts and (ipps) certificate hash.
async fn ipp_facts(
    endpoint: &http::Endpoint,
    timeouts: Timeouts,
) -> Result<(ipp::PrinterFacts, Option<[u8; 32]>), Assessment> {
    let body = ipp::Request::new(ipp::OP_GET_PRINTER_ATTRIBUTES, 1, &endpoint.printer_uri())
        .attributes(
            ipp::TAG_KEYWORD,
            "requested-attributes",
            ipp::VERIFY_ATTRIBUTES,
        )
        .finish();
    let exchange = match http::exchange(endpoint, body.into(), timeouts).await {
        Ok(exchange) => exchange,
        Err(e @ (http::HttpError::Connect(_) | http::HttpError::Timeout { .. })) => {
            return Err(Assessment::unreachable(format!(
                "ipp printer not reachable: {e}"
            )))
        }
        Err(e) => {
            return Err(Assessment::refused(
                format!("device did not answer like an ipp printer ({e})"),
                None,
            ))
        }
    };
    let message = exchange.message;
    if !message.is_success() {
        return Err(Assessment::refused(
            format!(
                "Get-Printer-Attributes refused (ipp status 0x{:04x}{})",
                message.code,
                message
                    .status_message()
                    .map(|m| format!(": {}", ipp::printable_cut(m, 80)))
                    .unwrap_or_default()
            ),
            None,
        ));
    }
    Ok((
        ipp::PrinterFacts::from_message(&message),
        exchange.certificate,
    ))
}

/// Print-Job: the encoded request followed by the label, from memory, in one POST.
async fn print_job(
    endpoint: &http::Endpoint,
    document_format: &str,
    data: &[u8],
    timeouts: Timeouts,
) -> Result<(), PrintError> {
    let header = ipp::Request::new(ipp::OP_PRINT_JOB, 2, &endpoint.printer_uri())
        .attribute(ipp::TAG_NAME, "requesting-user-name", b"sealprint")
        .attribute(ipp::TAG_NAME, "job-name", b"sealprint label")
        .attribute(ipp::TAG_MIME, "document-format", document_format.as_bytes())
        .finish();
    let mut body = zeroize::Zeroizing::new(Vec::with_capacity(header.len() + data.len()));
    body.extend_from_slice(&header);
    body.extend_from_slice(data);
    // The body owns the only extra copy of the label and wipes it when hyper drops it.
    let body = bytes::Bytes::from_owner(body);
    let message = match http::exchange(endpoint, body, timeouts).await {
        Ok(exchange) => exchange.message,
        Err(e) if e.nothing_sent() => return Err(PrintError::NotPrinted(format!("ipp: {e}"))),
        Err(e) => return Err(PrintError::InDoubt(format!("ipp: {e}"))),
    };
    if message.is_success() {
        let job = message.int(0x02, "job-id");
        debug!(job_id = ?job, "ipp job accepted");
        return Ok(());
    }
    // An IPP error status means the printer did not accept the job.
    Err(PrintError::NotPrinted(format!(
        "Print-Job refused (ipp status 0x{:04x}{})",
        message.code,
        message
            .status_message()
            .map(|m| format!(": {}", ipp::printable_cut(m, 80)))
            .unwrap_or_default()
    )))
}

impl fmt::Display for QueryFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryFailure::Silent => f.write_str("no answer"),
            QueryFailure::Garbled(why) => f.write_str(why),
            QueryFailure::Closed => f.write_str("device closed the connection"),
            QueryFailure::Io(kind) => write!(f, "{kind}"),
        }
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

/// Asks `~HI`, the serial and `~HS`, in that order, stopping at the first failure.
async fn interrogate(conn: &mut Connection, timeouts: Timeouts) -> Findings {
    let within = timeouts.answer;
    let id = match conn.query(zpl::QUERY_HI, zpl::parse_hi, within).await {
        Ok(id) => id,
        Err(failure) => return Findings::NoIdentification(failure),
    };
    let serial = match conn
        .query(zpl::QUERY_UNIQUE_ID, zpl::parse_quoted, within)
        .await
    {
        Ok(value) => match zpl::valid_serial(&value) {
            Some(serial) => serial.to_owned(),
            None => return Findings::NoSerial(id, None),
        },
        Err(failure) => return Findings::NoSerial(id, Some(failure)),
    };
    match conn.query(zpl::QUERY_HS, zpl::parse_hs, within).await {
        Ok(status) => Findings::Complete(id, serial, status),
        Err(QueryFailure::Silent) => {
            // Some firmware is silent on ~HS while faulted but answers ~HQES.
            let hqes = conn
                .query(zpl::QUERY_HQES, zpl::parse_hqes, within)
                .await
                .ok();
            Findings::NoStatus(id, serial, QueryFailure::Silent, hqes)
        }
        Err(failure) => Findings::NoStatus(id, serial, failure, None),
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

/// Writes the whole label, closes the sending side, then waits (at most the answer timeout)
/// for the device to close, so unread bytes on our side cannot reset the connection under
/// data the device has not read yet.
async fn write_label(
    stream: &mut TcpStream,
    data: &[u8],
    timeouts: Timeouts,
) -> Result<(), PrintError> {
    let mut written = 0usize;
    let outcome = tokio::time::timeout(timeouts.write, async {
        while written < data.len() {
            let n = stream.write(&data[written..]).await?;
            if n == 0 {
                return Err(io::Error::from(io::ErrorKind::WriteZero));
            }
            written += n;
        }
        stream.flush().await?;
        stream.shutdown().await
    })
    .await;
    let failure = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("write failed: {}", e.kind())),
        Err(_) => Some("write timed out".to_owned()),
    };
    if let Some(failure) = failure {
        return Err(if written == 0 {
            PrintError::NotPrinted(format!("{failure} before any byte was sent"))
        } else {
            PrintError::InDoubt(format!("{failure} after {written} of {} bytes", data.len()))
        });
    }
    let mut scratch = [0u8; 256];
    let _ = tokio::time::timeout(timeouts.answer, async {
        while let Ok(n) = stream.read(&mut scratch).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    Ok(())
}

#[cfg(test)]
mod tests;
