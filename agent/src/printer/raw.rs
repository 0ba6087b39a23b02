//! The raw TCP transport (port 9100, AppSocket/JetDirect) to Zebra-like printers: the host
//! queries that verify a device on one connection (`~HI`, the serial, `~HS`, and `~HQES` when
//! `~HS` is silent), the judgement of what it answered, and the label written on that same
//! connection. Used for `raw://` printers and for CUPS queues whose device is `socket://`.
//!
//! # What it does not do
//! It does not compare identities with the recorded one (the printer state machine does) and
//! keeps nothing: the label is written from the caller's memory.

use std::fmt;
use std::io;

use sealprint_protocol::{PrinterStatus, PrinterVerdict};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::zpl::{self, Connection, HostIdentification, HostStatus, HqesErrors, QueryFailure};
use super::{Assessment, PrintError, Timeouts};

/// The reason given for a device that accepts a connection and answers nothing.
pub(crate) const SILENT_REASON: &str =
    "device accepted the connection but did not answer ~HI/~HS like a printer";

/// What talking to the device found out, before judging it.
#[derive(Debug)]
pub(crate) enum Findings {
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

/// Connects, asks the device and judges its answers; the open connection (after the queries)
/// is returned with the assessment when there was one, so a label can follow on it.
pub(crate) async fn examine(
    host: &str,
    port: u16,
    timeouts: Timeouts,
) -> (Assessment, Option<Connection>) {
    match connect(host, port, timeouts).await {
        Ok(stream) => {
            let mut conn = Connection::new(stream);
            let findings = interrogate(&mut conn, timeouts).await;
            (assess(findings), Some(conn))
        }
        Err(findings) => (assess(findings), None),
    }
}

pub(crate) async fn connect(
    host: &str,
    port: u16,
    timeouts: Timeouts,
) -> Result<TcpStream, Findings> {
    let connecting = TcpStream::connect((host, port));
    match tokio::time::timeout(timeouts.connect, connecting).await {
        Ok(Ok(stream)) => Ok(stream),
        // The error's text, not its kind: a name that does not resolve has no kind of its
        // own ("uncategorized error") but says so in its text.
        Ok(Err(e)) => Err(Findings::NoConnection(format!("connect failed: {e}"))),
        Err(_) => Err(Findings::NoConnection("connect timed out".to_owned())),
    }
}

/// Judges what a raw ZPL device answered (identity not compared yet).
pub(crate) fn assess(findings: Findings) -> Assessment {
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

/// Asks `~HI`, the serial and `~HS`, in that order, stopping at the first failure.
pub(crate) async fn interrogate(conn: &mut Connection, timeouts: Timeouts) -> Findings {
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

/// Writes the whole label, closes the sending side, then waits (at most the answer timeout)
/// for the device to close, so unread bytes on our side cannot reset the connection under
/// data the device has not read yet.
pub(crate) async fn write_label(
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
