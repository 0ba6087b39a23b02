//! The tenant's revoked devices as the coordinator last signed them, kept on disk.
//!
//! The list comes in heartbeat replies ([`SignedRevocations`], signed by the coordinator CA
//! and checked before it gets here). It names devices, not certificate serials, so a revoked
//! station is refused whatever certificate it presents, an older one included. It is saved
//! (`revocations.bin` in the data directory, written atomically) whenever a newer version
//! arrives and read back at start, so a restart does not forget a revocation. A list with a
//! lower version than the one held is older and is ignored.
//!
//! What it does not do: verify signatures of replies (see the `mesh` module) or decide anything
//! about jobs.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use sealprint_protocol::SignedRevocations;

use crate::identity::{write_private, IdentityError};

/// The file the list is kept in, inside the data directory.
pub const REVOCATIONS_FILE: &str = "revocations.bin";

/// The revoked devices this agent knows of.
#[derive(Debug)]
pub struct Revocations {
    path: PathBuf,
    version: Option<u64>,
    devices: HashSet<String>,
}

impl Revocations {
    /// Loads the saved list of `dir`, checking it is signed by the pinned CA for `tenant_id`;
    /// an empty set when none was saved yet.
    ///
    /// # Errors
    /// [`IdentityError::Corrupt`] when the file does not decode or verify: the agent then
    /// refuses to start rather than forget a revocation.
    pub fn load(dir: &Path, ca: &[u8; 32], tenant_id: &str) -> Result<Revocations, IdentityError> {
        let path = dir.join(REVOCATIONS_FILE);
        let mut r = Revocations {
            path: path.clone(),
            version: None,
            devices: HashSet::new(),
        };
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(r),
            Err(source) => return Err(IdentityError::Io { path, source }),
        };
        let corrupt = |reason: String| IdentityError::Corrupt {
            path: path.clone(),
            reason,
        };
        let signed: SignedRevocations =
            postcard::from_bytes(&bytes).map_err(|e| corrupt(e.to_string()))?;
        let list = signed
            .verify(ca, tenant_id)
            .map_err(|e| corrupt(e.to_string()))?;
        r.version = Some(list.version);
        r.devices = list.devices.iter().cloned().collect();
        Ok(r)
    }

    /// Whether `device_id` is revoked.
    pub fn contains(&self, device_id: &str) -> bool {
        self.devices.contains(device_id)
    }

    /// The version held, if any.
    pub fn version(&self) -> Option<u64> {
        self.version
    }

    /// Takes `signed` (already verified) when it is newer than the list held, and saves it.
    /// Returns whether the set changed.
    ///
    /// # Errors
    /// [`IdentityError::Io`] when it could not be saved; it is applied in memory anyway.
    pub fn update(&mut self, signed: &SignedRevocations) -> Result<bool, IdentityError> {
        if self.version.is_some_and(|v| signed.list.version <= v) {
            return Ok(false);
        }
        self.version = Some(signed.list.version);
        let devices: HashSet<String> = signed.list.devices.iter().cloned().collect();
        let changed = devices != self.devices;
        self.devices = devices;
        let bytes = postcard::to_allocvec(signed).map_err(|e| IdentityError::Corrupt {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        write_private(&self.path, &bytes)?;
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use sealprint_protocol::RevocationList;

    fn signed(version: u64, devices: &[&str]) -> SignedRevocations {
        SignedRevocations::sign(
            RevocationList {
                tenant_id: "tnt-1".into(),
                version,
                devices: devices.iter().map(|d| (*d).to_owned()).collect(),
            },
            &SigningKey::from_bytes(&[7u8; 32]),
        )
        .expect("signs")
    }

    #[test]
    fn kept_across_restarts_and_never_rolled_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = SigningKey::from_bytes(&[7u8; 32])
            .verifying_key()
            .to_bytes();
        let mut r = Revocations::load(dir.path(), &ca, "tnt-1").expect("loads");
        assert!(!r.contains("dev-9"));
        assert!(r.update(&signed(2, &["dev-9"])).expect("saves"));
        // An older list (say a replayed one) does not un-revoke.
        assert!(!r.update(&signed(1, &[])).expect("ignored"));
        assert!(r.contains("dev-9"));
        let again = Revocations::load(dir.path(), &ca, "tnt-1").expect("loads");
        assert!(again.contains("dev-9"));
        assert_eq!(again.version(), Some(2));
        // Another CA's list on disk, or another tenant's, is refused at start.
        let other = SigningKey::from_bytes(&[8u8; 32])
            .verifying_key()
            .to_bytes();
        assert!(Revocations::load(dir.path(), &other, "tnt-1").is_err());
        assert!(Revocations::load(dir.path(), &ca, "tnt-2").is_err());
        std::fs::write(dir.path().join(REVOCATIONS_FILE), b"junk").expect("writes");
        assert!(Revocations::load(dir.path(), &ca, "tnt-1").is_err());
    }
}
