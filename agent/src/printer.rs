//! Printers: the devices an agent delivers labels to, how it checks that each is a physical
//! printer (and the same one as before), and how it writes a label to it.
//!
//! # Main types
//! - [`PrinterConfig`]: one configured printer (`[[printer]]` in the config, or
//!   `--printer NAME=URI`).
//! - [`PrinterUri`]: where it is; only `raw://HOST:PORT` for now.
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
//! with the head open), never as ready.
//!
//! # What it does not do
//! No USB, IPP, CUPS or Windows spooler printers yet, no PDF or PNG rendering, no retries and
//! no queueing: the caller decides where a refused label goes. Label bytes are never logged,
//! copied into errors or kept after [`Printer::print`] returns.

mod uri;
mod zpl;

use std::fmt;
use std::io;
use std::time::Duration;

use sealprint_protocol::{LabelFormat, PrinterReport, PrinterStatus, PrinterVerdict};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::{debug, info, warn, Instrument as _};

pub use uri::{PrinterUri, DEFAULT_RAW_PORT};

use zpl::{Connection, HostIdentification, HostStatus, QueryFailure};

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
    #[error("unsupported printer uri scheme {0:?}: only raw://HOST:PORT is supported")]
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
    /// `~HI` and the serial answered, `~HS` did not.
    NoStatus(HostIdentification, String, QueryFailure),
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
        })
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
            let findings = match self.connect().await {
                Ok(stream) => interrogate(&mut Connection::new(stream), self.timeouts).await,
                Err(findings) => findings,
            };
            let report = self.judge(findings);
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
        let span =
            tracing::info_span!("printer_print", printer = %self.config.name, bytes = data.len());
        async {
            let result = self.print_inner(format, data).await;
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

    async fn print_inner(&mut self, format: LabelFormat, data: &[u8]) -> Result<(), PrintError> {
        if format != LabelFormat::Zpl {
            return Err(PrintError::NotPrinted(format!(
                "format {} not supported by a raw ZPL printer",
                format.as_str()
            )));
        }
        if data.is_empty() {
            return Err(PrintError::NotPrinted("empty label".to_owned()));
        }
        if self.recorded_identity.is_none() {
            return Err(PrintError::NotPrinted("printer not verified".to_owned()));
        }
        let stream = match self.connect().await {
            Ok(stream) => stream,
            Err(findings) => {
                self.last = self.judge(findings);
                return Err(PrintError::NotPrinted(self.last.reason.clone()));
            }
        };
        let mut conn = Connection::new(stream);
        let findings = interrogate(&mut conn, self.timeouts).await;
        self.last = self.judge(findings);
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
        let mut stream = conn.into_stream();
        write_label(&mut stream, data, self.timeouts).await
    }

    async fn connect(&self) -> Result<TcpStream, Findings> {
        let PrinterUri::Raw { host, port } = &self.uri;
        let connecting = TcpStream::connect((host.as_str(), *port));
        match tokio::time::timeout(self.timeouts.connect, connecting).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => Err(Findings::NoConnection(format!(
                "connect failed: {}",
                e.kind()
            ))),
            Err(_) => Err(Findings::NoConnection("connect timed out".to_owned())),
        }
    }

    /// Turns findings into a report, recording the serial on first verification.
    fn judge(&mut self, findings: Findings) -> PrinterReport {
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
            Findings::NoStatus(id, serial, failure) => match self.identity_change(&serial) {
                Some(reason) => (V::Refused, S::Unknown, Some(serial), reason),
                None => match failure {
                    QueryFailure::Silent => (
                        V::Unreachable,
                        S::Offline,
                        Some(serial),
                        format!(
                            "{} answered ~HI and its serial but not ~HS; some firmware is \
                             silent while faulted (paper out, head open): check the printer",
                            id.model
                        ),
                    ),
                    QueryFailure::Garbled(why) => (
                        V::Refused,
                        S::Unknown,
                        Some(serial),
                        format!("device did not answer ~HS like a printer ({why})"),
                    ),
                    failure => (
                        V::Unreachable,
                        S::Offline,
                        Some(serial),
                        format!("connection lost before ~HS was answered ({failure})"),
                    ),
                },
            },
            Findings::Complete(id, serial, host_status) => match self.identity_change(&serial) {
                Some(reason) => (V::Refused, S::Unknown, Some(serial), reason),
                None => {
                    let first = self.recorded_identity.is_none();
                    if first {
                        info!(serial = %serial, "printer verified for the first time; serial recorded");
                        self.recorded_identity = Some(serial.clone());
                    }
                    let reason = format!(
                        "verified: {} (firmware {}), serial {serial}{}",
                        id.model,
                        id.firmware,
                        if first {
                            ", recorded on first sight"
                        } else {
                            ""
                        }
                    );
                    (V::Verified, host_status.status(), Some(serial), reason)
                }
            },
        };
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
        Err(failure) => Findings::NoStatus(id, serial, failure),
    }
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
