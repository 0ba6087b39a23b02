//! The checks that read the disk, run before any port is bound: the data directory, the
//! master key, the TLS files, the CA file and the secret files ([`load_secret`]).

use std::path::Path;

use zeroize::Zeroizing;

use super::{ConfigError, ServeConfig};

/// Shortest billing webhook secret accepted, bytes.
pub const MIN_SECRET_LEN: usize = 16;

/// Reads a secret file (surrounding whitespace trimmed): private (no group or other access)
/// and at least [`MIN_SECRET_LEN`] bytes. `None` reads nothing.
///
/// # Errors
/// [`ConfigError::Read`] when unreadable, [`ConfigError::Invalid`] when too open or short.
pub fn load_secret(path: Option<&Path>) -> Result<Option<Zeroizing<Vec<u8>>>, ConfigError> {
    use std::os::unix::fs::MetadataExt;
    let Some(path) = path else {
        return Ok(None);
    };
    let read = |source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    };
    let mode = std::fs::metadata(path).map_err(read)?.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(ConfigError::Invalid(vec![format!(
            "{} has mode {mode:o}; it must be 0600 or stricter",
            path.display()
        )]));
    }
    let raw = Zeroizing::new(std::fs::read(path).map_err(read)?);
    let secret = Zeroizing::new(raw.trim_ascii().to_vec());
    if secret.len() < MIN_SECRET_LEN {
        return Err(ConfigError::Invalid(vec![format!(
            "{} must hold at least {MIN_SECRET_LEN} bytes",
            path.display()
        )]));
    }
    Ok(Some(secret))
}

/// Reads the release public key file (64 hex digits). `None` reads nothing.
///
/// # Errors
/// [`ConfigError::Read`] when unreadable, [`ConfigError::Invalid`] when not a key.
pub fn load_release_key(
    path: Option<&Path>,
) -> Result<Option<sealprint_release::ReleasePublicKey>, ConfigError> {
    let Some(path) = path else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    sealprint_release::ReleasePublicKey::from_hex(&text)
        .map(Some)
        .map_err(|e| ConfigError::Invalid(vec![format!("{}: {e}", path.display())]))
}

impl ServeConfig {
    /// Checks what can be checked on disk before binding: the data directory is initialised,
    /// the master key file is readable, private and 32 bytes, the TLS files exist.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] listing every problem.
    pub fn check_paths(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if !self.data_dir.is_dir() {
            problems.push(format!(
                "data_dir: {} is not a directory",
                self.data_dir.display()
            ));
        } else if !crate::core::paths::db_path(&self.data_dir).is_dir() {
            problems.push(format!(
                "data_dir: {} is not initialised (run `sealprint-coordinator init`)",
                self.data_dir.display()
            ));
        } else {
            for f in [crate::core::paths::TLS_CERT, crate::core::paths::TLS_KEY] {
                if !self.data_dir.join(f).is_file() {
                    problems.push(format!("data_dir: {f} is missing"));
                }
            }
        }
        if let Err(e) = crate::core::crypto::MasterKey::load(&self.master_key_file) {
            problems.push(format!("master_key_file: {e}"));
        }
        if let Err(e) = load_secret(self.billing_webhook_secret_file.as_deref()) {
            problems.push(format!("billing_webhook_secret_file: {e}"));
        }
        if let Err(e) = load_release_key(self.release_public_key.as_deref()) {
            problems.push(format!("release_public_key: {e}"));
        }
        if let Some(p) = &self.spapi_ca_file {
            if let Err(e) = crate::outbound::client::read_ca_file(p) {
                problems.push(format!("spapi_ca_file: {e}"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }
}
