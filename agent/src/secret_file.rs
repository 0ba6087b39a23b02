//! Secret files at rest: the device's private keys (`device.key`, `x25519.key`).
//!
//! On Windows a secret file is sealed with DPAPI at machine scope (`CryptProtectData` with
//! `CRYPTPROTECT_LOCAL_MACHINE`, an entropy constant naming sealprint): only a process on
//! this machine can open it, and a copy of the data directory taken elsewhere is useless. The
//! file starts with a small versioned header ([`MAGIC`], a version byte, a scheme byte), so a
//! sealed file is recognised and a legacy unsealed one (written before sealing existed) is
//! told apart: [`open`] reports it as [`Stored::Plain`] and the caller re-seals it.
//!
//! On Unix the secret stays as it is, in a 0600 file in a 0700 directory
//! (the identity module's `write_private`); a sealed file there is refused with a clear error
//! (it was sealed on a Windows machine and cannot be opened anywhere else).
//!
//! The header parsing is platform-neutral and unit-tested on Linux; the DPAPI calls are in
//! `dpapi` (Windows only). This module does not decide which files are secret: the caller does.

#[cfg(windows)]
mod dpapi;

use thiserror::Error;
use zeroize::Zeroizing;

/// The first bytes of a sealed secret file.
pub const MAGIC: &[u8; 8] = b"SPSEALED";
/// The header's format version.
pub const VERSION: u8 = 1;
/// The length of the header: magic, version, scheme.
pub const HEADER_LEN: usize = MAGIC.len() + 2;

/// How a sealed file's body is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Scheme {
    /// DPAPI, machine scope (Windows), with [`DPAPI_ENTROPY`].
    DpapiMachine,
}

impl Scheme {
    fn to_byte(self) -> u8 {
        match self {
            Scheme::DpapiMachine => 1,
        }
    }

    fn from_byte(b: u8) -> Option<Scheme> {
        match b {
            1 => Some(Scheme::DpapiMachine),
            _ => None,
        }
    }
}

/// The extra entropy DPAPI mixes in: another program on the machine calling
/// `CryptUnprotectData` on the file without it gets nothing.
pub const DPAPI_ENTROPY: &[u8] = b"sealprint agent secret file v1";
/// The description DPAPI stores in the blob (not secret; shown by forensic tools).
pub const DPAPI_DESCRIPTION: &str = "sealprint agent key";

/// Why a secret file could not be sealed or opened. No variant carries secret bytes.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SealError {
    /// The file starts with the header but is cut short.
    #[error("sealed file is truncated")]
    Truncated,
    /// The header names a version this agent does not know.
    #[error("sealed file has format version {0}; this agent knows version {VERSION}")]
    UnknownVersion(u8),
    /// The header names a scheme this agent does not know.
    #[error("sealed file uses unknown scheme {0}")]
    UnknownScheme(u8),
    /// The file was sealed with a scheme this platform cannot open.
    #[error("the file was sealed with DPAPI on a Windows machine and cannot be opened here")]
    Unsupported,
    /// DPAPI refused (another machine's file, changed bytes, or the API failed).
    #[error("DPAPI {operation} failed: {detail}")]
    Dpapi {
        /// `seal` or `open`.
        operation: &'static str,
        /// The system's error.
        detail: String,
    },
}

/// A secret file's contents, as found on disk.
#[derive(Debug, PartialEq, Eq)]
pub enum Stored<'a> {
    /// A sealed body (after the header).
    Sealed {
        /// How the body is sealed.
        scheme: Scheme,
        /// The sealed bytes.
        body: &'a [u8],
    },
    /// No header: a legacy file (or a Unix one) holding the secret as it is.
    Plain(&'a [u8]),
}

/// Tells a sealed file from a plain one.
///
/// # Errors
/// [`SealError::Truncated`], [`SealError::UnknownVersion`], [`SealError::UnknownScheme`].
pub fn parse(bytes: &[u8]) -> Result<Stored<'_>, SealError> {
    let Some(rest) = bytes.strip_prefix(MAGIC.as_slice()) else {
        return Ok(Stored::Plain(bytes));
    };
    let [version, scheme, body @ ..] = rest else {
        return Err(SealError::Truncated);
    };
    if *version != VERSION {
        return Err(SealError::UnknownVersion(*version));
    }
    let scheme = Scheme::from_byte(*scheme).ok_or(SealError::UnknownScheme(*scheme))?;
    if body.is_empty() {
        return Err(SealError::Truncated);
    }
    Ok(Stored::Sealed { scheme, body })
}

/// The header followed by `body`.
pub fn frame(scheme: Scheme, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(scheme.to_byte());
    out.extend_from_slice(body);
    out
}

/// Whether this platform seals secret files (Windows) or keeps them as they are (Unix).
pub const SEALS: bool = cfg!(windows);

/// What to write to disk for `secret`: sealed on Windows, as it is elsewhere.
///
/// # Errors
/// [`SealError::Dpapi`] when DPAPI refuses.
pub fn seal(secret: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
    #[cfg(windows)]
    {
        let body = dpapi::protect(secret)?;
        Ok(Zeroizing::new(frame(Scheme::DpapiMachine, &body)))
    }
    #[cfg(not(windows))]
    {
        Ok(Zeroizing::new(secret.to_vec()))
    }
}

/// The secret in a file's `bytes`, and whether the file was sealed (`false`: a plain file,
/// which on Windows the caller should re-seal).
///
/// # Errors
/// What [`parse`] finds wrong; [`SealError::Unsupported`] for a sealed file off Windows;
/// [`SealError::Dpapi`] when DPAPI cannot open it.
pub fn open(bytes: &[u8]) -> Result<(Zeroizing<Vec<u8>>, bool), SealError> {
    match parse(bytes)? {
        Stored::Plain(plain) => Ok((Zeroizing::new(plain.to_vec()), false)),
        Stored::Sealed {
            scheme: Scheme::DpapiMachine,
            body,
        } => {
            #[cfg(windows)]
            {
                Ok((dpapi::unprotect(body)?, true))
            }
            #[cfg(not(windows))]
            {
                let _ = body;
                Err(SealError::Unsupported)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_framed_body_parses_back() {
        let framed = frame(Scheme::DpapiMachine, b"blob");
        assert_eq!(&framed[..8], MAGIC);
        assert_eq!(framed.len(), HEADER_LEN + 4);
        assert_eq!(
            parse(&framed),
            Ok(Stored::Sealed {
                scheme: Scheme::DpapiMachine,
                body: b"blob"
            })
        );
    }

    #[test]
    fn a_legacy_key_is_plain() {
        let key = [7u8; 32];
        assert_eq!(parse(&key), Ok(Stored::Plain(&key)));
        assert_eq!(parse(b""), Ok(Stored::Plain(b"")));
    }

    #[test]
    fn broken_headers_are_refused() {
        assert_eq!(parse(MAGIC), Err(SealError::Truncated));
        assert_eq!(parse(b"SPSEALED\x01"), Err(SealError::Truncated));
        assert_eq!(parse(b"SPSEALED\x01\x01"), Err(SealError::Truncated));
        assert_eq!(
            parse(b"SPSEALED\x02\x01xx"),
            Err(SealError::UnknownVersion(2))
        );
        assert_eq!(
            parse(b"SPSEALED\x01\x09xx"),
            Err(SealError::UnknownScheme(9))
        );
    }

    #[cfg(not(windows))]
    #[test]
    fn unix_keeps_secrets_as_they_are_and_refuses_sealed_files() {
        let key = [9u8; 32];
        assert_eq!(seal(&key).expect("no sealing on unix").as_slice(), &key);
        let (opened, sealed) = open(&key).expect("plain");
        assert_eq!((opened.as_slice(), sealed), (key.as_slice(), false));
        let framed = frame(Scheme::DpapiMachine, b"blob");
        assert_eq!(open(&framed).map(|_| ()), Err(SealError::Unsupported));
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = parse(&bytes);
        }
    }
}
