//! Printer URIs: where a configured printer is and how to talk to it.
//!
//! Understood: `raw://HOST:PORT` (a plain TCP socket, port 9100 style), `ipp://HOST:PORT/PATH`
//! and `ipps://…` (an IPP printer), `cups://QUEUE` (a queue of the local CUPS scheduler),
//! `usb:///dev/usb/lpN` (a Linux USB printer node) and `winspool://PRINTER NAME` (a Windows
//! spooler printer; parsed everywhere, usable only on Windows). Other schemes are recognised as
//! schemes and refused with [`PrinterError::UnsupportedScheme`], so a config written for a later
//! version fails loudly instead of being misread. This module does no I/O and no name
//! resolution. URIs with credentials (`user@host`) are refused: reports show URIs.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use super::PrinterError;

/// The port raw (AppSocket/JetDirect) printers listen on when a URI names none.
pub const DEFAULT_RAW_PORT: u16 = 9100;

/// The longest host name accepted (the DNS limit).
const MAX_HOST_LEN: usize = 253;

/// Where a printer is and which protocol reaches it.
///
/// Parsed with [`str::parse`]; [`fmt::Display`] gives the normalised form used in reports
/// (scheme, host and port only).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PrinterUri {
    /// `raw://HOST:PORT`: a printer taking ZPL on a plain TCP socket and answering host queries
    /// on the same socket. The port defaults to 9100 when omitted. IPv6 addresses go in
    /// brackets (`raw://[::1]:9100`); `host` holds them without brackets.
    Raw {
        /// Host name or IP address.
        host: String,
        /// TCP port, never 0.
        port: u16,
    },
    /// `ipp://HOST[:PORT]/PATH` (port 631 by default) or `ipps://…` (TLS, port 631 by
    /// default): an IPP printer, verified with Get-Printer-Attributes and printed to with
    /// Print-Job.
    Ipp {
        /// Whether to use TLS (`ipps://`).
        tls: bool,
        /// Host name or IP address (IPv6 without brackets).
        host: String,
        /// TCP port, never 0.
        port: u16,
        /// The resource path, starting with `/` (for example `/ipp/print`).
        path: String,
    },
    /// `cups://QUEUE`: a queue of the local CUPS scheduler, verified by its `device-uri`.
    Cups {
        /// The queue's name.
        queue: String,
    },
    /// `usb:///dev/usb/lpN`: a Linux USB printer node.
    Usb {
        /// The device node, `/dev/usb/lpN`.
        path: String,
    },
    /// `winspool://PRINTER NAME`: a printer of the Windows spooler (the name may hold spaces).
    Winspool {
        /// The printer's name as the spooler lists it.
        name: String,
    },
}

/// The port IPP printers listen on when a URI names none.
pub const DEFAULT_IPP_PORT: u16 = 631;

/// The longest queue, printer or path accepted.
const MAX_NAME_LEN: usize = 255;

impl FromStr for PrinterUri {
    type Err = PrinterError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(invalid("empty uri"));
        }
        if s.chars().any(|c| c.is_control()) {
            return Err(invalid("uri contains control characters"));
        }
        let Some((scheme, rest)) = s.split_once("://") else {
            return Err(invalid(
                "expected SCHEME://HOST:PORT, for example raw://10.0.0.5:9100",
            ));
        };
        let scheme_ok = scheme
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !scheme_ok {
            return Err(invalid("malformed uri scheme"));
        }
        let scheme = scheme.to_ascii_lowercase();
        // Only Windows printer names may hold blanks (they often do: "ZDesigner ZD421").
        if scheme != "winspool" && s.chars().any(char::is_whitespace) {
            return Err(invalid("uri contains whitespace"));
        }
        match scheme.as_str() {
            "raw" => parse_raw(rest),
            "ipp" => parse_ipp(false, rest),
            "ipps" => parse_ipp(true, rest),
            "cups" => parse_cups(rest),
            "usb" => parse_usb(rest),
            "winspool" => parse_winspool(rest),
            _ => Err(PrinterError::UnsupportedScheme(scheme)),
        }
    }
}

fn invalid(why: &str) -> PrinterError {
    PrinterError::InvalidUri(why.to_owned())
}

/// Parses the `HOST[:PORT]` part of a `raw://` URI (one trailing `/` is tolerated).
fn parse_raw(rest: &str) -> Result<PrinterUri, PrinterError> {
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#', '@']) {
        return Err(invalid(
            "a raw:// uri takes only HOST:PORT (no user, path, query or fragment)",
        ));
    }
    let (host, port) = parse_authority(rest, DEFAULT_RAW_PORT, "raw://[::1]:9100")?;
    Ok(PrinterUri::Raw { host, port })
}

/// Parses the `HOST[:PORT]/PATH` part of an `ipp://` or `ipps://` URI.
fn parse_ipp(tls: bool, rest: &str) -> Result<PrinterUri, PrinterError> {
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    if authority.contains(['@', '?', '#']) {
        return Err(invalid("an ipp:// uri takes no user, query or fragment"));
    }
    if path.contains(['?', '#']) || path.len() > MAX_NAME_LEN {
        return Err(invalid("an ipp:// path takes no query or fragment"));
    }
    if !path.bytes().all(|b| b.is_ascii_graphic()) || path.contains("/../") {
        return Err(invalid("malformed ipp:// path"));
    }
    let (host, port) = parse_authority(authority, DEFAULT_IPP_PORT, "ipp://[::1]:631/ipp/print")?;
    Ok(PrinterUri::Ipp {
        tls,
        host,
        port,
        path: path.to_owned(),
    })
}

/// Checks a CUPS queue name: CUPS allows printable characters other than blanks, `/`, `#`
/// and `\`; `?`, `%`, quotes and `@` are refused too so the name needs no escaping in a URI.
pub(crate) fn valid_queue(queue: &str) -> bool {
    !queue.is_empty()
        && queue.len() <= 127
        && queue
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"/#\\?%\"'@".contains(&b))
}

fn parse_cups(rest: &str) -> Result<PrinterUri, PrinterError> {
    let queue = rest.strip_suffix('/').unwrap_or(rest);
    if !valid_queue(queue) {
        return Err(invalid(
            "expected cups://QUEUE with a CUPS queue name (letters, digits, '-', '_', '.')",
        ));
    }
    Ok(PrinterUri::Cups {
        queue: queue.to_owned(),
    })
}

fn parse_usb(rest: &str) -> Result<PrinterUri, PrinterError> {
    let number = rest.strip_prefix("/dev/usb/lp");
    let ok = number
        .is_some_and(|n| !n.is_empty() && n.len() <= 3 && n.bytes().all(|b| b.is_ascii_digit()));
    if !ok {
        return Err(invalid(
            "expected usb:///dev/usb/lpN (a Linux USB printer node); for a CUPS usb:// device \
             use cups://QUEUE",
        ));
    }
    Ok(PrinterUri::Usb {
        path: rest.to_owned(),
    })
}

fn parse_winspool(rest: &str) -> Result<PrinterUri, PrinterError> {
    let name = rest.trim();
    // The spooler refuses ',' and '\\' in local printer names; "\\\\server\\share" names
    // of shared printers are allowed.
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_NAME_LEN
        && !name.contains(',')
        && !name.chars().any(char::is_control);
    if !ok {
        return Err(invalid("expected winspool://PRINTER NAME"));
    }
    Ok(PrinterUri::Winspool {
        name: name.to_owned(),
    })
}

/// Parses `HOST[:PORT]`, with IPv6 addresses in brackets.
fn parse_authority(
    rest: &str,
    default_port: u16,
    example: &str,
) -> Result<(String, u16), PrinterError> {
    let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
        let Some((inside, after)) = bracketed.split_once(']') else {
            return Err(invalid("unclosed '[' in ipv6 address"));
        };
        if inside.parse::<Ipv6Addr>().is_err() {
            return Err(invalid("malformed ipv6 address"));
        }
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(p) => Some(p),
                None => return Err(invalid("expected ':' and a port after ']'")),
            },
        };
        (inside, port)
    } else {
        if rest.matches(':').count() > 1 {
            return Err(PrinterError::InvalidUri(format!(
                "ipv6 addresses must be in brackets, like {example}"
            )));
        }
        match rest.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    if host.is_empty() {
        return Err(invalid("missing host"));
    }
    if !rest.starts_with('[') {
        let host_ok = host.len() <= MAX_HOST_LEN
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
        if !host_ok {
            return Err(invalid("malformed host name"));
        }
    }
    let port = match port {
        None => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err(invalid("port must be a number from 1 to 65535")),
            Ok(n) => n,
        },
    };
    Ok((host.to_owned(), port))
}

/// `host` as it goes in a URI or a Host header: IPv6 addresses in brackets.
pub(crate) fn bracketed(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

impl fmt::Display for PrinterUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrinterUri::Raw { host, port } => write!(f, "raw://{}:{port}", bracketed(host)),
            PrinterUri::Ipp {
                tls,
                host,
                port,
                path,
            } => {
                let scheme = if *tls { "ipps" } else { "ipp" };
                write!(f, "{scheme}://{}:{port}{path}", bracketed(host))
            }
            PrinterUri::Cups { queue } => write!(f, "cups://{queue}"),
            PrinterUri::Usb { path } => write!(f, "usb://{path}"),
            PrinterUri::Winspool { name } => write!(f, "winspool://{name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(host: &str, port: u16) -> PrinterUri {
        PrinterUri::Raw {
            host: host.to_owned(),
            port,
        }
    }

    #[test]
    fn parses_raw_uris() {
        assert_eq!("raw://10.0.0.5:9100".parse(), Ok(raw("10.0.0.5", 9100)));
        assert_eq!(
            "RAW://printer-1.lan:6101".parse(),
            Ok(raw("printer-1.lan", 6101))
        );
        assert_eq!("raw://zebra".parse(), Ok(raw("zebra", 9100)));
        assert_eq!("raw://zebra:9100/".parse(), Ok(raw("zebra", 9100)));
        assert_eq!("raw://[::1]:9101".parse(), Ok(raw("::1", 9101)));
        assert_eq!("raw://[fe80::1]".parse(), Ok(raw("fe80::1", 9100)));
    }

    #[test]
    fn displays_normalised() {
        assert_eq!(raw("::1", 9101).to_string(), "raw://[::1]:9101");
        assert_eq!(
            "RAW://zebra".parse::<PrinterUri>().map(|u| u.to_string()),
            Ok("raw://zebra:9100".to_owned())
        );
    }

    #[test]
    fn parses_other_kinds() {
        let ipp = |tls, host: &str, port, path: &str| PrinterUri::Ipp {
            tls,
            host: host.to_owned(),
            port,
            path: path.to_owned(),
        };
        assert_eq!(
            "ipp://localhost:631/printers/z".parse(),
            Ok(ipp(false, "localhost", 631, "/printers/z"))
        );
        assert_eq!("IPPS://host/p".parse(), Ok(ipp(true, "host", 631, "/p")));
        assert_eq!("ipp://[::1]:8631".parse(), Ok(ipp(false, "::1", 8631, "/")));
        assert_eq!(
            "cups://Zebra_1".parse(),
            Ok(PrinterUri::Cups {
                queue: "Zebra_1".to_owned()
            })
        );
        assert_eq!(
            "usb:///dev/usb/lp0".parse(),
            Ok(PrinterUri::Usb {
                path: "/dev/usb/lp0".to_owned()
            })
        );
        assert_eq!(
            "winspool://ZDesigner ZD421-203dpi ZPL".parse(),
            Ok(PrinterUri::Winspool {
                name: "ZDesigner ZD421-203dpi ZPL".to_owned()
            })
        );
        for uri in [
            "ipps://[::1]:8631/ipp/print",
            "cups://Zebra_1",
            "usb:///dev/usb/lp3",
            "winspool://ZDesigner ZD421",
        ] {
            assert_eq!(
                uri.parse::<PrinterUri>().map(|u| u.to_string()).as_deref(),
                Ok(uri)
            );
        }
        for bad in [
            "ipp://user:pw@host/p",
            "ipp://host/p?x=1",
            "ipp://host:0/p",
            "ipp://host/a b",
            "cups://",
            "cups://a/b",
            "cups://a b",
            "usb://Zebra/ZD421?serial=D4J2",
            "usb:///dev/sda",
            "usb:///dev/usb/lp",
            "winspool://",
            "winspool://a,b",
        ] {
            assert!(
                matches!(bad.parse::<PrinterUri>(), Err(PrinterError::InvalidUri(_))),
                "{bad:?} should be invalid"
            );
        }
    }

    #[test]
    fn refuses_other_schemes() {
        for (uri, scheme) in [
            ("socket://host:9100", "socket"),
            ("lpd://host/q", "lpd"),
            ("file:///tmp/out.prn", "file"),
        ] {
            assert_eq!(
                uri.parse::<PrinterUri>(),
                Err(PrinterError::UnsupportedScheme(scheme.to_owned())),
                "{uri}"
            );
        }
    }

    #[test]
    fn refuses_garbage() {
        for uri in [
            "",
            "10.0.0.5:9100",
            "raw://",
            "raw://:9100",
            "raw://host:",
            "raw://host:0",
            "raw://host:65536",
            "raw://host:http",
            "raw://user@host:9100",
            "raw://host:9100/path",
            "raw://host:9100?x=1",
            "raw://::1:9100",
            "raw://[::1",
            "raw://[::1]9100",
            "raw://[not-v6]:9100",
            "raw://ho st:9100",
            "raw://host\n:9100",
            "raw://h\u{e9}te:9100",
            "://host",
            "1raw://host",
        ] {
            assert!(
                matches!(uri.parse::<PrinterUri>(), Err(PrinterError::InvalidUri(_))),
                "{uri:?} should be invalid"
            );
        }
    }
}
