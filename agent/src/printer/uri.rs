//! Printer URIs: where a configured printer is and how to talk to it.
//!
//! Only `raw://HOST:PORT` (a plain TCP socket, port 9100 style) is understood for now. Other
//! schemes are recognised as schemes and refused with [`PrinterError::UnsupportedScheme`], so a
//! config written for a later version fails loudly instead of being misread. This module does no
//! I/O and no name resolution.

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
}

impl FromStr for PrinterUri {
    type Err = PrinterError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(invalid("empty uri"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("uri contains whitespace or control characters"));
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
        match scheme.as_str() {
            "raw" => parse_raw(rest),
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
            return Err(invalid(
                "ipv6 addresses must be in brackets, like raw://[::1]:9100",
            ));
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
        None => DEFAULT_RAW_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err(invalid("port must be a number from 1 to 65535")),
            Ok(n) => n,
        },
    };
    Ok(PrinterUri::Raw {
        host: host.to_owned(),
        port,
    })
}

impl fmt::Display for PrinterUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrinterUri::Raw { host, port } if host.contains(':') => {
                write!(f, "raw://[{host}]:{port}")
            }
            PrinterUri::Raw { host, port } => write!(f, "raw://{host}:{port}"),
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
    fn refuses_other_schemes() {
        for (uri, scheme) in [
            ("usb://Zebra/ZD421?serial=D4J2", "usb"),
            ("ipp://localhost:631/printers/z", "ipp"),
            ("IPPS://host/p", "ipps"),
            ("cups://Zebra", "cups"),
            ("winspool://Zebra", "winspool"),
            ("socket://host:9100", "socket"),
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
