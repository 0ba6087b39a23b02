//! A printer's configuration: its name, URI and pool (`[[printer]]` in the config file or
//! `--printer NAME=URI`), validated, and how long the agent waits on a printer.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::PrinterUri;

/// The pool a printer serves when its config names none.
pub const DEFAULT_POOL: &str = "default";

/// The longest printer or pool name accepted.
const MAX_NAME_LEN: usize = 64;

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
