//! CUPS queues (`cups://QUEUE`): the queue's full `device-uri` asked from the local scheduler
//! over IPP (never parsed from `lpstat -v`, which drops `file:` and is translated), judged by
//! its backend, and the device behind it verified where it can be asked.
//!
//! Backends that reach a device: `socket` (the device must answer Zebra host queries: identity
//! its serial, status its `~HS`), `ipp`/`ipps` (the device's Get-Printer-Attributes, as for
//! `ipp://`), `usb` (the usblp node whose device id has the URI's serial, verified as for
//! `usb://`); `lpd`, `dnssd` and HPLIP's `hp` reach a device but not one the agent can print
//! to directly. Refused as virtual: `file:` (including `file:/dev/null`), bare paths, `cups-pdf:`,
//! `cups-brf:`, fax backends, an `ipp://` device that is another local CUPS queue, a queue
//! whose make-and-model names a PDF/XPS writer, and any backend not known to reach a device.
//!
//! The scheduler is only asked where the device is: the label goes to the device directly
//! (`socket`: raw TCP; `ipp`/`ipps`: Print-Job to the device; `usb`: the printer's usblp node),
//! never to the scheduler, which writes every job to its spool directory (`RequestRoot`) and
//! keeps the file after printing (`PreserveJobFiles`, one day by default). A device the agent
//! cannot reach directly (`lpd`, `dnssd`, `hp`, a USB printer the scheduler holds through
//! libusb) is refused with what to configure instead.
//!
//! This module does not manage queues; `cupsd.conf` is read by the doctor only.

use std::path::{Path, PathBuf};

use sealprint_protocol::{PrinterStatus, PrinterVerdict};

use super::facts::{self, printable_cut, valid_identity, PrinterFacts};
use super::http::{self, Endpoint, Target, CUPS_SOCKET};
use super::ipp::{self, Request};
use super::Assessment;

/// IPP status client-error-not-found.
const STATUS_NOT_FOUND: u16 = 0x0406;

/// How to reach the CUPS scheduler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Server {
    /// Over TCP (`HOST[:PORT]`, port 631 by default).
    Tcp(String, u16),
    /// Over a unix socket.
    Socket(PathBuf),
}

impl Server {
    /// Reads a `CUPS_SERVER`-style value: an absolute socket path or `HOST[:PORT]`.
    pub fn parse(value: &str) -> Option<Server> {
        let value = value.trim();
        if value.starts_with('/') {
            return Some(Server::Socket(PathBuf::from(value)));
        }
        let (host, port) = match value.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') || h.starts_with('[') => (h, p.parse().ok()?),
            _ => (value, 631),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        (!host.is_empty() && port != 0).then(|| Server::Tcp(host.to_owned(), port))
    }

    /// `CUPS_SERVER` when set, else the scheduler's socket when it exists, else
    /// `localhost:631`.
    pub fn local() -> Server {
        if let Some(server) = std::env::var("CUPS_SERVER")
            .ok()
            .as_deref()
            .and_then(Server::parse)
        {
            return server;
        }
        if Path::new(CUPS_SOCKET).exists() {
            Server::Socket(PathBuf::from(CUPS_SOCKET))
        } else {
            Server::Tcp("localhost".to_owned(), 631)
        }
    }

    /// The endpoint of a queue on this server.
    pub fn queue(&self, queue: &str) -> Endpoint {
        let path = format!("/printers/{queue}");
        let target = match self {
            Server::Tcp(host, port) => Target::Tcp {
                tls: false,
                host: host.clone(),
                port: *port,
            },
            Server::Socket(path) => Target::Unix(path.clone()),
        };
        Endpoint { target, path }
    }

    /// The endpoint of the scheduler itself (for CUPS-Get-Printers).
    pub fn root(&self) -> Endpoint {
        let mut endpoint = self.queue("");
        endpoint.path = "/".to_owned();
        endpoint
    }
}

/// What a queue's device-uri leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Device {
    /// Not a physical printer; the reason says why.
    Virtual(String),
    /// A `socket://HOST:PORT` device: ask it with Zebra host queries.
    Socket {
        /// Host.
        host: String,
        /// Port.
        port: u16,
    },
    /// An `ipp://` or `ipps://` device: ask it with Get-Printer-Attributes.
    Ipp(Endpoint),
    /// A device that cannot be asked from here; identity from the URI.
    Named {
        /// The backend (usb, lpd, dnssd, hp).
        backend: String,
        /// The identity (a serial or uuid from the URI, else the URI without credentials).
        identity: Option<String>,
    },
}

/// A device-uri without credentials, printable and short, for reasons. Everything up to the
/// last `@` before the query is dropped: a password may hold an unencoded `@` or `/`.
pub(crate) fn shown(uri: &str) -> String {
    let cleaned = match uri.split_once("://") {
        Some((scheme, rest)) => {
            let before_query = &rest[..rest.find(['?', '#']).unwrap_or(rest.len())];
            match before_query.rfind('@') {
                Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
                None => uri.to_owned(),
            }
        }
        None => uri.to_owned(),
    };
    printable_cut(&cleaned, 128)
}

fn query_param<'a>(uri: &'a str, key: &str) -> Option<&'a str> {
    let query = uri.split_once('?')?.1;
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// Judges a queue's device-uri by its backend. Pure.
pub(crate) fn judge_device_uri(uri: &str) -> Device {
    let uri = uri.trim();
    let lower = uri.to_ascii_lowercase();
    if lower.starts_with('/') {
        return Device::Virtual(format!(
            "its device is a file or device path ({}), not a printer backend",
            shown(uri)
        ));
    }
    let Some((scheme, rest)) = lower.split_once(':') else {
        return Device::Virtual(format!("device-uri {:?} has no backend", shown(uri)));
    };
    let virtual_backend = |what: &str| Device::Virtual(format!("{what} ({})", shown(uri)));
    match scheme {
        "file" if rest.trim_start_matches('/').starts_with("dev/null") => {
            virtual_backend("it discards every job")
        }
        "file" => virtual_backend("it prints to a file"),
        "cups-pdf" | "pdf" | "pdf-writer" => virtual_backend("it writes PDF files"),
        "cups-brf" => virtual_backend("it writes Braille files"),
        "xps" | "xpsport" => virtual_backend("it writes XPS files"),
        "fax" | "hpfax" | "faxmodem" | "efax" => virtual_backend("it is a fax"),
        "socket" => {
            let authority = uri
                .split_once("://")
                .map(|(_, r)| r)
                .unwrap_or_default()
                .split(['/', '?'])
                .next()
                .unwrap_or_default();
            let authority = authority.rsplit('@').next().unwrap_or_default();
            if authority.is_empty() {
                return virtual_backend("socket device without a host");
            }
            match format!("raw://{authority}").parse::<super::PrinterUri>() {
                Ok(super::PrinterUri::Raw { host, port }) => Device::Socket { host, port },
                _ => virtual_backend("socket device uri is malformed"),
            }
        }
        "ipp" | "ipps" => {
            let stripped = match uri.split_once("://") {
                Some((s, r)) => format!("{s}://{}", r.rsplit_once('@').map_or(r, |(_, a)| a)),
                None => uri.to_owned(),
            };
            let without_query = stripped.split('?').next().unwrap_or_default();
            match without_query.parse::<super::PrinterUri>() {
                Ok(super::PrinterUri::Ipp {
                    tls,
                    host,
                    port,
                    path,
                }) => {
                    let local = matches!(host.as_str(), "localhost" | "127.0.0.1" | "::1");
                    if local && (path.starts_with("/printers/") || path.starts_with("/classes/")) {
                        return virtual_backend(
                            "it forwards to another local CUPS queue; point it at the device",
                        );
                    }
                    Device::Ipp(Endpoint {
                        target: Target::Tcp { tls, host, port },
                        path,
                    })
                }
                _ => virtual_backend("ipp device uri is malformed"),
            }
        }
        "usb" | "lpd" | "dnssd" | "hp" => {
            let identity = query_param(uri, "serial")
                .or_else(|| query_param(uri, "uuid"))
                .and_then(valid_identity)
                .or_else(|| (scheme != "usb").then(|| shown(uri.split('?').next().unwrap_or(uri))));
            Device::Named {
                backend: scheme.to_owned(),
                identity,
            }
        }
        other => Device::Virtual(format!(
            "backend {:?} is not known to reach a physical printer",
            printable_cut(other, 32)
        )),
    }
}

/// Asks the scheduler for a queue's attributes.
///
/// # Errors
/// An unreachable assessment, with the reason.
pub(crate) async fn queue_facts(
    server: &Server,
    queue: &str,
    timeouts: super::Timeouts,
) -> Result<PrinterFacts, Assessment> {
    let endpoint = server.queue(queue);
    let body = Request::new(ipp::OP_GET_PRINTER_ATTRIBUTES, 1, &endpoint.printer_uri())
        .attributes(
            ipp::TAG_KEYWORD,
            "requested-attributes",
            facts::VERIFY_ATTRIBUTES,
        )
        .finish();
    let exchange = http::exchange(&endpoint, body.into(), timeouts)
        .await
        .map_err(|e| Assessment::unreachable(format!("CUPS scheduler not reachable: {e}")))?;
    let message = exchange.message;
    if message.code == STATUS_NOT_FOUND {
        return Err(Assessment::unreachable(format!(
            "CUPS has no queue named {queue}"
        )));
    }
    if !message.is_success() {
        return Err(Assessment::unreachable(format!(
            "CUPS refused the query (ipp status 0x{:04x}{})",
            message.code,
            message
                .status_message()
                .map(|m| format!(": {}", printable_cut(m, 80)))
                .unwrap_or_default()
        )));
    }
    Ok(PrinterFacts::from_message(&message))
}

/// Every queue of the scheduler with its device-uri and make-and-model (CUPS-Get-Printers),
/// for the station self-check.
///
/// # Errors
/// Why the scheduler could not be asked.
pub(crate) async fn all_queues(
    server: &Server,
    timeouts: super::Timeouts,
) -> Result<Vec<(String, PrinterFacts)>, String> {
    const OP_CUPS_GET_PRINTERS: u16 = 0x4002;
    let endpoint = server.root();
    let body = Request::new(OP_CUPS_GET_PRINTERS, 1, "ipp://localhost/")
        .attributes(
            ipp::TAG_KEYWORD,
            "requested-attributes",
            &["printer-name", "device-uri", "printer-make-and-model"],
        )
        .finish();
    let exchange = http::exchange(&endpoint, body.into(), timeouts)
        .await
        .map_err(|e| format!("CUPS scheduler not reachable: {e}"))?;
    let message = exchange.message;
    // client-error-not-found: no queues at all.
    if message.code == STATUS_NOT_FOUND {
        return Ok(Vec::new());
    }
    if !message.is_success() {
        return Err(format!(
            "CUPS refused the query (ipp status 0x{:04x})",
            message.code
        ));
    }
    let queues = message
        .groups
        .iter()
        .filter(|g| g.tag == ipp::TAG_PRINTER)
        .map(|g| {
            let single = ipp::Message {
                version: message.version,
                code: message.code,
                request_id: message.request_id,
                groups: vec![g.clone()],
                data_offset: 0,
            };
            let name = single
                .text(ipp::TAG_PRINTER, "printer-name")
                .map(|n| printable_cut(n, 64))
                .unwrap_or_else(|| "?".to_owned());
            (name, PrinterFacts::from_message(&single))
        })
        .collect();
    Ok(queues)
}

/// Judges a queue from its facts alone (no device asked): `Err` is a refusal.
pub(crate) fn judge_queue(queue: &str, facts: &PrinterFacts) -> Result<Device, Assessment> {
    let Some(device_uri) = facts.device_uri.as_deref() else {
        return Err(Assessment::refused(
            format!("CUPS did not give queue {queue}'s device-uri"),
            None,
        ));
    };
    match judge_device_uri(device_uri) {
        Device::Virtual(why) => Err(Assessment::refused(
            format!("CUPS queue {queue} is not a physical printer: {why}"),
            None,
        )),
        device => {
            if let Some(why) = facts.virtual_reason() {
                return Err(Assessment::refused(
                    format!("CUPS queue {queue} is not a physical printer: {why}"),
                    None,
                ));
            }
            Ok(device)
        }
    }
}

/// Combines the queue's state with the device's assessment: the queue must be ready too.
pub(crate) fn combine(queue: &str, facts: &PrinterFacts, device: Assessment) -> Assessment {
    let (queue_status, why) = facts.status();
    let mut assessment = device;
    assessment.reason = format!("CUPS queue {queue}: {}", assessment.reason);
    if assessment.verdict == PrinterVerdict::Verified && queue_status != PrinterStatus::Ready {
        assessment.status = queue_status;
        if let Some(why) = why {
            assessment.reason.push_str(&format!("; queue state: {why}"));
        }
    }
    assessment
}

/// How the agent reaches a device the scheduler names only by its URI (`usb`, `lpd`, `dnssd`,
/// `hp`), without going through the scheduler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Direct {
    /// The USB printer with the URI's serial, found as a usblp node: written to directly.
    Usb(String),
    /// It cannot be reached directly; the reason says what to configure instead.
    Refused(String),
}

/// Decides how to reach a device named only by its URI: a USB printer with a serial through
/// its usblp node (looked up in sysfs), everything else refused, since printing through the
/// scheduler would spool the label to its disk.
pub(crate) fn direct(backend: &str, identity: Option<String>) -> Direct {
    if backend == "usb" {
        let Some(serial) = identity else {
            return Direct::Refused(
                "usb device without a serial in its uri; it cannot be verified".to_owned(),
            );
        };
        return match super::usb::node_with_serial(&serial) {
            Some(path) => Direct::Usb(path),
            None => Direct::Refused(usb_held(&serial)),
        };
    }
    Direct::Refused(format!(
        "the agent cannot print to a {backend} device directly, and printing through the CUPS \
         scheduler would spool the label to its disk; point the queue at the printer's network \
         address (lpadmin -p QUEUE -v socket://HOST:9100 or ipp://HOST/ipp/print), or configure \
         the printer as raw://HOST:9100 or ipp://HOST"
    ))
}

/// The reason for a USB printer that has no usblp node (the CUPS usb backend holds it
/// through libusb).
pub(crate) fn usb_held(serial: &str) -> String {
    format!(
        "its usb printer (serial {serial}) has no usblp device node the agent can write to \
         (the CUPS usb backend holds it), and printing through the scheduler would spool the \
         label to its disk; let the kernel's usblp driver take the printer and configure it as \
         usb:///dev/usb/lpN, or connect it to the network and use raw:// or ipp://"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judges_backends() {
        for (uri, refused) in [
            ("file:///tmp/out.prn", "prints to a file"),
            ("file:/dev/null", "discards every job"),
            ("/dev/null", "file or device path"),
            ("cups-pdf:/", "writes PDF"),
            ("CUPS-PDF:/", "writes PDF"),
            ("cups-brf:/", "Braille"),
            ("hpfax:/usb/x", "fax"),
            (
                "ipp://localhost:631/printers/PDF",
                "another local CUPS queue",
            ),
            ("implicitclass://q/", "not known"),
            ("nonsense", "no backend"),
        ] {
            match judge_device_uri(uri) {
                Device::Virtual(why) => assert!(why.contains(refused), "{uri}: {why}"),
                other => panic!("{uri} accepted as {other:?}"),
            }
        }
        assert_eq!(
            judge_device_uri("socket://10.0.0.5:9100"),
            Device::Socket {
                host: "10.0.0.5".to_owned(),
                port: 9100
            }
        );
        assert_eq!(
            judge_device_uri("socket://zebra"),
            Device::Socket {
                host: "zebra".to_owned(),
                port: 9100
            }
        );
        assert_eq!(
            judge_device_uri(
                "usb://Zebra%20Technologies/ZTC%20ZD230-203dpi%20ZPL?serial=D4J222603053"
            ),
            Device::Named {
                backend: "usb".to_owned(),
                identity: Some("D4J222603053".to_owned())
            }
        );
        assert_eq!(
            judge_device_uri("usb://Zebra/ZD230"),
            Device::Named {
                backend: "usb".to_owned(),
                identity: None
            }
        );
        assert_eq!(
            judge_device_uri("lpd://user:secret@10.0.0.9/queue"),
            Device::Named {
                backend: "lpd".to_owned(),
                identity: Some("lpd://10.0.0.9/queue".to_owned())
            }
        );
        match judge_device_uri("ipps://user:pw@10.0.0.7:443/ipp/print") {
            Device::Ipp(endpoint) => {
                assert_eq!(endpoint.printer_uri(), "ipps://10.0.0.7:443/ipp/print")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn hides_credentials() {
        assert_eq!(shown("ipp://u:p@h/x"), "ipp://h/x");
        assert_eq!(shown("file:///x"), "file:///x");
        // A password holding an unencoded '@' or '/' is hidden whole (fuzz target device_id).
        assert_eq!(shown("ipp://admin:se@cret@h/x"), "ipp://h/x");
        assert_eq!(shown("lpd://admin:se/cret@h/q?x=@"), "lpd://h/q?x=@");
    }

    #[test]
    fn parses_cups_server() {
        assert_eq!(
            Server::parse("/run/cups/cups.sock"),
            Some(Server::Socket(PathBuf::from("/run/cups/cups.sock")))
        );
        assert_eq!(
            Server::parse("localhost:8631"),
            Some(Server::Tcp("localhost".to_owned(), 8631))
        );
        assert_eq!(
            Server::parse("print.lan"),
            Some(Server::Tcp("print.lan".to_owned(), 631))
        );
        assert_eq!(Server::parse("h:0"), None);
    }
}
