//! Encryption at rest: the master key, per-tenant data keys, AES-256-GCM, password hashes.
//!
//! - [`MasterKey`]: 32 bytes read from a file outside the data directory (mode 0600 or
//!   stricter). It wraps tenant data keys and the coordinator's identity secrets.
//! - [`DataKey`]: a tenant's random 32-byte key; label bytes and other PII are encrypted
//!   under it. Deleting the wrapped key destroys the tenant's data (crypto-shredding).
//! - [`seal`] / [`open`]: AES-256-GCM with a random 96-bit nonce and caller-chosen
//!   associated data that binds a ciphertext to where it belongs (tenant id, job id).
//! - [`hash_password`] / [`verify_password`]: argon2id (PHC strings).
//!
//! Every key lives in [`zeroize::Zeroizing`] and has a redacted `Debug`. This module does not
//! decide what to encrypt or where ciphertexts are stored: that is `store`.

use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use thiserror::Error;
use zeroize::Zeroizing;

/// Length of every symmetric key.
pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Why a key could not be loaded or a ciphertext not opened.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The master key file could not be read or written.
    #[error("master key file {path}: {source}")]
    KeyFileIo {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The master key file is readable or writable by group or others.
    #[error("master key file {path} has mode {mode:o}; it must be 0600 or stricter")]
    KeyFilePermissions {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The master key file does not hold exactly 32 bytes.
    #[error("master key file {path} must hold exactly 32 bytes, found {len}")]
    KeyFileLength {
        /// The file.
        path: String,
        /// What it holds.
        len: usize,
    },
    /// A ciphertext is truncated, was tampered with, was encrypted under another key, or is
    /// bound to other associated data.
    #[error("ciphertext does not open under this key")]
    Open,
    /// A stored key has the wrong length.
    #[error("stored key is malformed")]
    BadKey,
    /// argon2 refused to hash (a bug, not an input problem).
    #[error("password hashing failed")]
    Hash,
}

/// The master key. Never leaves memory except in its own file.
#[derive(Clone)]
pub struct MasterKey(Zeroizing<[u8; KEY_LEN]>);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// A key from raw bytes (tests, and the file loader).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> MasterKey {
        MasterKey(Zeroizing::new(bytes))
    }

    /// A fresh random key.
    pub fn generate() -> MasterKey {
        MasterKey(random_key())
    }

    /// Reads the key from `path`, refusing a file that group or others may access.
    ///
    /// # Errors
    /// [`CryptoError::KeyFileIo`], [`CryptoError::KeyFilePermissions`],
    /// [`CryptoError::KeyFileLength`].
    pub fn load(path: &Path) -> Result<MasterKey, CryptoError> {
        let shown = path.display().to_string();
        let io = |source| CryptoError::KeyFileIo {
            path: shown.clone(),
            source,
        };
        let meta = fs::metadata(path).map_err(io)?;
        let mode = meta.mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(CryptoError::KeyFilePermissions {
                path: shown.clone(),
                mode,
            });
        }
        let bytes = Zeroizing::new(fs::read(path).map_err(io)?);
        let key: [u8; KEY_LEN] =
            bytes
                .as_slice()
                .try_into()
                .map_err(|_| CryptoError::KeyFileLength {
                    path: shown.clone(),
                    len: bytes.len(),
                })?;
        Ok(MasterKey::from_bytes(key))
    }

    /// Creates `path` (which must not exist) with mode 0600 and a fresh random key.
    ///
    /// # Errors
    /// [`CryptoError::KeyFileIo`], also when the file already exists.
    pub fn create_file(path: &Path) -> Result<MasterKey, CryptoError> {
        let io = |source| CryptoError::KeyFileIo {
            path: path.display().to_string(),
            source,
        };
        let key = MasterKey::generate();
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        f.write_all(key.0.as_slice()).map_err(io)?;
        f.sync_all().map_err(io)?;
        Ok(key)
    }

    /// Encrypts `plaintext` under the master key, bound to `aad`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        seal(&self.0, aad, plaintext)
    }

    /// Opens what [`MasterKey::seal`] produced.
    ///
    /// # Errors
    /// [`CryptoError::Open`].
    pub fn open(&self, aad: &[u8], ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        open(&self.0, aad, ciphertext)
    }
}

/// A tenant's data key, unwrapped in memory only while it is used.
pub struct DataKey(Zeroizing<[u8; KEY_LEN]>);

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

impl DataKey {
    /// A fresh random data key.
    pub fn generate() -> DataKey {
        DataKey(random_key())
    }

    /// The key wrapped under `master` for storage, bound to `tenant_id`.
    pub fn wrap(&self, master: &MasterKey, tenant_id: &str) -> Vec<u8> {
        master.seal(&wrap_aad(tenant_id), self.0.as_slice())
    }

    /// Unwraps a stored key of `tenant_id`.
    ///
    /// # Errors
    /// [`CryptoError::Open`] or [`CryptoError::BadKey`].
    pub fn unwrap_from(
        master: &MasterKey,
        tenant_id: &str,
        wrapped: &[u8],
    ) -> Result<DataKey, CryptoError> {
        let raw = master.open(&wrap_aad(tenant_id), wrapped)?;
        let key: [u8; KEY_LEN] = raw.as_slice().try_into().map_err(|_| CryptoError::BadKey)?;
        Ok(DataKey(Zeroizing::new(key)))
    }

    /// Encrypts `plaintext` under this key, bound to `aad`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        seal(&self.0, aad, plaintext)
    }

    /// Opens what [`DataKey::seal`] produced.
    ///
    /// # Errors
    /// [`CryptoError::Open`].
    pub fn open(&self, aad: &[u8], ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        open(&self.0, aad, ciphertext)
    }
}

fn wrap_aad(tenant_id: &str) -> Vec<u8> {
    let mut aad = b"sealprint/tenant-key/v1\0".to_vec();
    aad.extend_from_slice(tenant_id.as_bytes());
    aad
}

/// 32 random bytes from the OS.
pub fn random_key() -> Zeroizing<[u8; KEY_LEN]> {
    let mut k = Zeroizing::new([0u8; KEY_LEN]);
    rand::rngs::OsRng.fill_bytes(k.as_mut_slice());
    k
}

/// A secret to show once: `prefix` and 256 random bits in base64url (43 characters).
pub fn random_secret(prefix: &str) -> Zeroizing<String> {
    use base64::Engine as _;
    let raw = random_key();
    Zeroizing::new(format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw.as_slice())
    ))
}

/// A random id `<prefix>-<32 hex>` (128 bits).
pub fn random_id(prefix: &str) -> String {
    let mut raw = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    format!("{prefix}-{}", hex::encode(raw))
}

/// AES-256-GCM: `nonce || ciphertext || tag`.
fn seal(key: &[u8; KEY_LEN], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let cipher = Aes256Gcm::new(key.into());
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("aes-gcm encryption only fails on inputs longer than 64 GiB");
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

fn open(key: &[u8; KEY_LEN], aad: &[u8], data: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if data.len() < NONCE_LEN + TAG_LEN {
        return Err(CryptoError::Open);
    }
    let (nonce, ct) = data.split_at(NONCE_LEN);
    let cipher = Aes256Gcm::new(key.into());
    cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::Open)
}

fn argon2() -> argon2::Argon2<'static> {
    // Unit tests hash many passwords in debug builds: use cheap parameters there only.
    #[cfg(test)]
    let params = argon2::Params::new(1024, 1, 1, None).expect("valid argon2 parameters");
    #[cfg(not(test))]
    let params = argon2::Params::default();
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
}

/// An argon2id PHC string for `password`. Slow by design: call it off the async runtime.
///
/// # Errors
/// [`CryptoError::Hash`].
pub fn hash_password(password: &str) -> Result<String, CryptoError> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| CryptoError::Hash)
}

/// Whether `password` matches the PHC string `hash`. A malformed hash never matches. Slow by
/// design: call it off the async runtime.
pub fn verify_password(password: &str, hash: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    match PasswordHash::new(hash) {
        Ok(parsed) => argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_roundtrip_and_aad_binding() {
        let k = DataKey::generate();
        let ct = k.seal(b"tnt-1/job-1", b"secret label");
        assert_eq!(
            k.open(b"tnt-1/job-1", &ct)
                .ok()
                .as_deref()
                .map(|v| v.as_slice()),
            Some(&b"secret label"[..])
        );
        assert!(matches!(
            k.open(b"tnt-2/job-1", &ct),
            Err(CryptoError::Open)
        ));
        assert!(matches!(
            k.open(b"tnt-1/job-1", &ct[..10]),
            Err(CryptoError::Open)
        ));
        let other = DataKey::generate();
        assert!(matches!(
            other.open(b"tnt-1/job-1", &ct),
            Err(CryptoError::Open)
        ));
    }

    #[test]
    fn wrapped_key_is_bound_to_tenant() {
        let m = MasterKey::generate();
        let k = DataKey::generate();
        let w = k.wrap(&m, "tnt-a");
        let back = DataKey::unwrap_from(&m, "tnt-a", &w).expect("unwraps");
        let ct = k.seal(b"x", b"y");
        assert!(back.open(b"x", &ct).is_ok());
        assert!(DataKey::unwrap_from(&m, "tnt-b", &w).is_err());
    }

    #[test]
    fn master_key_file_rules() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("master.key");
        let k = MasterKey::create_file(&path).expect("created");
        let loaded = MasterKey::load(&path).expect("loads");
        assert_eq!(loaded.0.as_slice(), k.0.as_slice());
        assert!(MasterKey::create_file(&path).is_err(), "never overwrites");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            MasterKey::load(&path),
            Err(CryptoError::KeyFilePermissions { mode: 0o644, .. })
        ));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        fs::write(&path, b"short").expect("write");
        assert!(matches!(
            MasterKey::load(&path),
            Err(CryptoError::KeyFileLength { len: 5, .. })
        ));
        assert!(!format!("{k:?}").contains(&format!("{:?}", &k.0[..4])));
    }

    #[test]
    fn passwords() {
        let h = hash_password("correct horse battery").expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a hash"));
    }
}
