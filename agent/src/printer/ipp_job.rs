//! The IPP transport: Get-Printer-Attributes and Print-Job over HTTP (`ipp://`, `ipps://`, and
//! the `ipp`/`ipps` device behind a CUPS queue), the label sent from memory in the request body.
//!
//! # What it does not do
//! It never talks to the CUPS scheduler for printing (a scheduler spools the document to its
//! disk), and judges nothing itself: the facts are judged in `facts`.

use tracing::debug;

use super::facts::{self, PrinterFacts};
use super::{http, ipp, Assessment, PrintError, Timeouts};

/// Get-Printer-Attributes on an IPP printer: its facts and (ipps) certificate hash.
pub(crate) async fn printer_facts(
    endpoint: &http::Endpoint,
    timeouts: Timeouts,
) -> Result<(PrinterFacts, Option<[u8; 32]>), Assessment> {
    let body = ipp::Request::new(ipp::OP_GET_PRINTER_ATTRIBUTES, 1, &endpoint.printer_uri())
        .attributes(
            ipp::TAG_KEYWORD,
            "requested-attributes",
            facts::VERIFY_ATTRIBUTES,
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
                    .map(|m| format!(": {}", facts::printable_cut(m, 80)))
                    .unwrap_or_default()
            ),
            None,
        ));
    }
    Ok((PrinterFacts::from_message(&message), exchange.certificate))
}

/// Print-Job: the encoded request followed by the label, from memory, in one POST.
pub(crate) async fn print_job(
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
            .map(|m| format!(": {}", facts::printable_cut(m, 80)))
            .unwrap_or_default()
    )))
}
