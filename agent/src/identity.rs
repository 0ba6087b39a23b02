//! The device's identity on disk: keys generated on the device (never sent anywhere), the
//! certificate the coordinator issued, and what the agent pins of the coordinator.
//!
//! Layout of the data directory (mode 0700, key files 0600; on Windows a DACL for SYSTEM and
//! Administrators only, see [`crate::data_dir`]):
//! - `device.key`: the 32-byte ed25519 seed (the libp2p identity and relay signing key);
//! - `x25519.key`: the 32-byte X25519 secret that sealed labels are opened with;
//!   on Windows both are sealed with DPAPI at machine scope ([`crate::secret_file`]), and a
//!   legacy unsealed key file is sealed the first time it is loaded;
//! - `device.cert`: the encoded device certificate;
//! - `coordinator.json`: the coordinator's PeerId, multiaddrs, CA key and X25519 key.
//!
//! Label bytes never come here: this module stores keys and public metadata only.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rand::RngCore;
use sealprint_protocol::Certificate;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::{data_dir, secret_file};

/// Why the identity could not be loaded or saved.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A file holds something unexpected.
    #[error("{path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The data directory holds no enrolled identity.
    #[error("{0} is not enrolled: run `sealprint-agent enroll --data-dir DIR TOKEN` first")]
    NotEnrolled(PathBuf),
    /// The data directory already holds an enrolled identity.
    #[error("{0} is already enrolled; use a fresh data directory to enroll again")]
    AlreadyEnrolled(PathBuf),
}

/// What the agent pins of its coordinator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoordinatorPin {
    /// The coordinator's PeerId.
    pub peer_id: String,
    /// Where its mesh endpoint listens.
    pub addrs: Vec<String>,
    /// The CA's ed25519 public key, hex.
    pub ca_public: String,
    /// The coordinator's X25519 key, hex: the only sender of envelopes the agent opens.
    pub x25519_public: String,
    /// The release public key (hex) from the enrollment token: the only key whose signed
    /// releases this agent installs. Absent: the agent takes no remote update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_public: Option<String>,
}

/// Keys generated on the device. Secrets are wiped on drop and never printed.
pub struct DeviceKeys {
    /// ed25519 seed.
    pub ed25519_seed: Zeroizing<[u8; 32]>,
    /// X25519 secret.
    pub x25519_secret: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for DeviceKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceKeys(<redacted>)")
    }
}

impl DeviceKeys {
    /// Fresh random keys.
    pub fn generate() -> DeviceKeys {
        let mut ed = Zeroizing::new([0u8; 32]);
        let mut x = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(ed.as_mut());
        rand::rngs::OsRng.fill_bytes(x.as_mut());
        DeviceKeys {
            ed25519_seed: ed,
            x25519_secret: x,
        }
    }

    /// The libp2p identity built from the ed25519 seed.
    pub fn libp2p_keypair(&self) -> libp2p::identity::Keypair {
        let mut seed = *self.ed25519_seed;
        libp2p::identity::Keypair::ed25519_from_bytes(&mut seed)
            .expect("a 32-byte seed is always a valid ed25519 secret key")
    }

    /// The ed25519 signing key (for relayed messages).
    pub fn signing_key(&self) -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&self.ed25519_seed)
    }

    /// The ed25519 public key.
    pub fn ed25519_public(&self) -> [u8; 32] {
        self.signing_key().verifying_key().to_bytes()
    }

    /// The X25519 public key.
    pub fn x25519_public(&self) -> [u8; 32] {
        let secret = x25519_dalek::StaticSecret::from(*self.x25519_secret);
        x25519_dalek::PublicKey::from(&secret).to_bytes()
    }
}

/// An enrolled device: keys, certificate and coordinator pin.
#[derive(Debug)]
pub struct DeviceIdentity {
    /// The device's keys.
    pub keys: DeviceKeys,
    /// Its certificate.
    pub certificate: Certificate,
    /// What it pins of the coordinator.
    pub coordinator: CoordinatorPin,
    /// The CA key, decoded.
    pub ca_public: ed25519_dalek::VerifyingKey,
    /// The coordinator's X25519 key, decoded.
    pub coordinator_x25519: [u8; 32],
}

impl DeviceIdentity {
    /// The device id from the certificate.
    pub fn device_id(&self) -> &str {
        &self.certificate.body.device_id
    }

    /// Loads the identity from `dir`.
    ///
    /// # Errors
    /// [`IdentityError::NotEnrolled`] when there is none, or what is wrong with the files.
    pub fn load(dir: &Path) -> Result<DeviceIdentity, IdentityError> {
        let cert_path = dir.join("device.cert");
        if !cert_path.exists() {
            return Err(IdentityError::NotEnrolled(dir.to_owned()));
        }
        let keys = DeviceKeys {
            ed25519_seed: read_key(&dir.join("device.key"))?,
            x25519_secret: read_key(&dir.join("x25519.key"))?,
        };
        let cert_bytes = read(&cert_path)?;
        let certificate = Certificate::decode(&cert_bytes).map_err(|e| corrupt(&cert_path, e))?;
        let pin_path = dir.join("coordinator.json");
        let coordinator: CoordinatorPin =
            serde_json::from_slice(&read(&pin_path)?).map_err(|e| corrupt(&pin_path, e))?;
        let ca_bytes = hex32(&coordinator.ca_public).map_err(|e| corrupt(&pin_path, e))?;
        let ca_public = ed25519_dalek::VerifyingKey::from_bytes(&ca_bytes)
            .map_err(|e| corrupt(&pin_path, e))?;
        let coordinator_x25519 =
            hex32(&coordinator.x25519_public).map_err(|e| corrupt(&pin_path, e))?;
        if certificate.body.ed25519_public != keys.ed25519_public()
            || certificate.body.x25519_public != keys.x25519_public()
        {
            return Err(corrupt(&cert_path, "certificate is for other keys"));
        }
        Ok(DeviceIdentity {
            keys,
            certificate,
            coordinator,
            ca_public,
            coordinator_x25519,
        })
    }

    /// Refuses when `dir` already holds an enrolled identity.
    ///
    /// # Errors
    /// [`IdentityError::AlreadyEnrolled`].
    pub fn ensure_not_enrolled(dir: &Path) -> Result<(), IdentityError> {
        if dir.join("device.cert").exists() {
            return Err(IdentityError::AlreadyEnrolled(dir.to_owned()));
        }
        Ok(())
    }

    /// Saves keys, certificate and pin to `dir` (created 0700 if missing). The certificate
    /// is written last, so a half-written directory is never taken as enrolled.
    ///
    /// # Errors
    /// [`IdentityError::Io`].
    pub fn save(&self, dir: &Path) -> Result<(), IdentityError> {
        create_private_dir(dir)?;
        write_secret(&dir.join("device.key"), self.keys.ed25519_seed.as_ref())?;
        write_secret(&dir.join("x25519.key"), self.keys.x25519_secret.as_ref())?;
        let pin = serde_json::to_vec_pretty(&self.coordinator).map_err(|e| corrupt(dir, e))?;
        write_private(&dir.join("coordinator.json"), &pin)?;
        write_private(&dir.join("device.cert"), &self.certificate.encode())
    }
}

fn corrupt(path: &Path, reason: impl std::fmt::Display) -> IdentityError {
    IdentityError::Corrupt {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, IdentityError> {
    fs::read(path).map_err(|source| IdentityError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Reads a key file: sealed on Windows ([`crate::secret_file`]), plain on Unix. A plain key
/// file on Windows (written before keys were sealed) is sealed in place.
fn read_key(path: &Path) -> Result<Zeroizing<[u8; 32]>, IdentityError> {
    let stored = Zeroizing::new(read(path)?);
    let (bytes, was_sealed) = secret_file::open(&stored).map_err(|e| corrupt(path, e))?;
    let mut key = Zeroizing::new([0u8; 32]);
    if bytes.len() != 32 {
        return Err(corrupt(path, "key file is not 32 bytes"));
    }
    key.copy_from_slice(&bytes);
    if secret_file::SEALS && !was_sealed {
        write_secret(path, key.as_ref())?;
        tracing::warn!(file = %path.display(), "sealed a legacy unsealed key file");
    }
    Ok(key)
}

/// Writes a secret file: sealed on Windows, as it is (0600) on Unix.
fn write_secret(path: &Path, secret: &[u8]) -> Result<(), IdentityError> {
    let sealed = secret_file::seal(secret).map_err(|e| corrupt(path, e))?;
    write_private(path, &sealed)
}

/// Decodes 64 hex characters.
pub(crate) fn hex32(s: &str) -> Result<[u8; 32], String> {
    let v = hex::decode(s).map_err(|e| e.to_string())?;
    v.try_into().map_err(|_| "expected 32 bytes".to_owned())
}

/// Creates `dir` (and parents) readable only by the agent's user (Unix: 0700; Windows: SYSTEM
/// and Administrators only).
///
/// # Errors
/// [`IdentityError::Io`].
pub fn create_private_dir(dir: &Path) -> Result<(), IdentityError> {
    let io = |source| IdentityError::Io {
        path: dir.to_owned(),
        source,
    };
    fs::create_dir_all(dir).map_err(io)?;
    data_dir::restrict(dir).map_err(io)
}

/// Writes `bytes` to `path` atomically (temp file + rename), mode 0600.
///
/// # Errors
/// [`IdentityError::Io`].
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), IdentityError> {
    let io = |source| IdentityError::Io {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    fs::rename(&tmp, path).map_err(io)
}
