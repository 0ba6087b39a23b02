//! Remote updates: checking a release the coordinator offers, replacing this agent's binary,
//! the trial of the new version, and the rollback.
//!
//! # What the agent trusts
//! Only the release public key it was enrolled with (the enrollment token carries it into
//! `coordinator.json`). An offer ([`sealprint_protocol::UpdateOffer`]) arrives on the agent's
//! own Noise connection to its pinned coordinator, but the coordinator's word proves nothing
//! about a binary: [`plan`] verifies the manifest's signature against that key, refuses a
//! version below the fleet minimum the coordinator last signed for this agent, and refuses a
//! version not above its own unless `allow_update_downgrade` is set. Once the bytes are
//! fetched, [`Plan::check_bytes`] checks their size and SHA-256 against the signed manifest.
//! Every refusal is a [`Refusal`] with a reason (no PII: versions, sizes, key ids), logged and
//! reported to the coordinator, which audits it. A relayed agent (no uplink of its own) does
//! not update: it logs why once (fetching tens of megabytes through a site peer's circuit is
//! not worth the load; an operator updates it by hand or gives it an uplink).
//!
//! # Replacing the binary (`install`)
//! The new bytes are written next to the running binary (`NAME.new`, mode 0755, synced), the
//! running binary is copied to `NAME.prev` (kept for rollback), and `NAME.new` is renamed over
//! `NAME`: a rename within one directory is atomic, so the path always holds a whole binary.
//!
//! # Restart, trial and rollback (`install::trial`)
//! The agent first drains (new jobs are answered "not printed", the coordinator holds it out
//! of dispatch), then stops its mesh endpoint. On Linux the same process (same pid, so
//! systemd or a test harness keeps tracking it) stays in the *previous* code and becomes the
//! trial's guard: it starts the new binary as a child with the same arguments and waits.
//! - The child, started with `SEALPRINT_UPDATE_TRIAL=VERSION`, writes `update-ack` in the data
//!   directory when the coordinator acknowledges its first heartbeat. The guard then stops it
//!   (SIGTERM: it drains) and re-executes the new binary at the same path with the same
//!   arguments, under its own pid: the update is done, and nothing of the old code runs.
//! - If the child exits before that, or `update_trial_secs` pass without an acknowledged
//!   heartbeat, the guard stops the child, restores `NAME.prev` over `NAME` (atomically
//!   again), records the rollback in `update-state.json`, and re-executes the restored binary.
//!   That agent reports `rolled_back` to the coordinator and never retries that version.
//!
//! - A stop request (SIGTERM) during the trial stops the child and ends the agent; unless the
//!   new version was acknowledged by then, the previous binary goes back first, so the next
//!   start never runs an untried version without its guard (not a rollback: the version is
//!   offered again). A stop during the handover or the rollback ends the agent instead of
//!   being lost in the re-execution.
//!
//! This works when the new binary exits at once, hangs, or cannot reach the coordinator,
//! because the process that decides is the old, known-good code. On Windows the agent exits
//! with [`RESTART_EXIT_CODE`] after the swap so the Service Control Manager's
//! restart-on-failure starts the new binary; the trial guard is Linux-only (see the README).

mod install;

use std::path::{Path, PathBuf};
use std::time::Duration;

use sealprint_protocol::{version_below, UpdateOffer, Version};
use sealprint_release::{Artifact, ReleaseError, ReleasePublicKey, SignedManifest};
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use install::{install, restore, trial, BinaryPaths, TrialOutcome};

/// The platform this agent was built for, as release manifests name it.
pub const PLATFORM: &str = if cfg!(windows) {
    "windows-x86_64"
} else if cfg!(all(target_os = "linux", target_arch = "aarch64")) {
    "linux-arm64"
} else {
    "linux-amd64"
};

/// The name of the agent binary in a release manifest (the only artifact it installs).
pub const AGENT_ARTIFACT: &str = if cfg!(windows) {
    "sealprint-agent.exe"
} else {
    "sealprint-agent"
};

/// The exit code of a Windows agent that replaced its binary: the service's recovery
/// settings restart it into the new one.
pub const RESTART_EXIT_CODE: i32 = 75;

/// The environment variable the trial's guard sets on the new binary: the version on trial.
pub const TRIAL_ENV: &str = "SEALPRINT_UPDATE_TRIAL";

/// The file the new version writes when its first heartbeat was acknowledged.
pub const ACK_FILE: &str = "update-ack";
/// Rolled-back versions and the report still owed to the coordinator.
pub const STATE_FILE: &str = "update-state.json";

/// Default seconds the new version has to get a heartbeat acknowledged.
pub const DEFAULT_TRIAL_SECS: u64 = 120;

/// How the agent takes updates.
#[derive(Debug, Clone)]
pub struct UpdatePolicy {
    /// The release key from enrollment; `None`: no update is taken.
    pub release_key: Option<ReleasePublicKey>,
    /// Whether a version not above this one may be installed (never one below the minimum).
    pub allow_downgrade: bool,
    /// How long the new version has to heartbeat before it is rolled back.
    pub trial: Duration,
    /// The running binary (captured at start, before any swap).
    pub exe: Option<PathBuf>,
    /// The arguments this process was started with (without the program).
    pub args: Vec<std::ffi::OsString>,
    /// The version on trial when this process is a trial's new binary.
    pub on_trial: Option<String>,
}

/// Why an offered release was not installed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The agent was enrolled without a release key.
    #[error("no release key was pinned at enrollment")]
    NoReleaseKey,
    /// The offer or manifest is malformed.
    #[error("malformed release: {0}")]
    Malformed(String),
    /// The manifest names another signing key.
    #[error("release signed by another key (trusted {expected}, found {found})")]
    WrongKey {
        /// The trusted key's id.
        expected: String,
        /// The id the manifest names.
        found: String,
    },
    /// The signature does not verify.
    #[error("release signature does not verify")]
    BadSignature,
    /// No agent binary for this platform, or the offer names another artifact.
    #[error("no agent binary for platform {0} in the release")]
    NoArtifact(String),
    /// The offered version is below the fleet minimum.
    #[error("version {version} is below the fleet minimum {min}")]
    BelowMinimum {
        /// The offered version.
        version: String,
        /// The minimum.
        min: String,
    },
    /// The offered version is not above this agent's own.
    #[error("version {version} is not above this agent's {own} (downgrades not allowed)")]
    NotNewer {
        /// The offered version.
        version: String,
        /// This agent's version.
        own: String,
    },
    /// The fetched bytes are not the signed artifact.
    #[error("artifact does not match its signed manifest: {0}")]
    Mismatch(String),
    /// The binary could not be written or swapped.
    #[error("binary not replaced: {0}")]
    Install(String),
}

/// An offer that passed every check but the bytes': what to fetch and what they must be.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The release version.
    pub version: String,
    /// The artifact to fetch (name, platform, size, SHA-256) from the signed manifest.
    pub artifact: Artifact,
    manifest: SignedManifest,
}

fn from_release(e: ReleaseError) -> Refusal {
    match e {
        ReleaseError::WrongKey { expected, found } => Refusal::WrongKey { expected, found },
        ReleaseError::BadSignature => Refusal::BadSignature,
        ReleaseError::SizeMismatch { .. } | ReleaseError::DigestMismatch { .. } => {
            Refusal::Mismatch(e.to_string())
        }
        other => Refusal::Malformed(other.to_string()),
    }
}

/// Checks an offer: the manifest's signature against the pinned release key, the artifact of
/// this platform, the fleet minimum and the direction of the change.
///
/// # Errors
/// The [`Refusal`] saying why.
pub fn plan(
    offer: &UpdateOffer,
    own: &str,
    min: Option<&Version>,
    policy: &UpdatePolicy,
) -> Result<Plan, Refusal> {
    let key = policy.release_key.as_ref().ok_or(Refusal::NoReleaseKey)?;
    offer
        .validate()
        .map_err(|e| Refusal::Malformed(e.to_owned()))?;
    let manifest = SignedManifest::from_json(&offer.manifest).map_err(from_release)?;
    let verified = manifest.verify(key).map_err(from_release)?;
    let version = verified.manifest().version.clone();
    if version != offer.version {
        return Err(Refusal::Malformed(
            "offer and manifest versions differ".into(),
        ));
    }
    let artifact = verified
        .manifest()
        .artifact(&offer.artifact)
        .filter(|a| a.platform == PLATFORM && a.name == AGENT_ARTIFACT)
        .cloned()
        .ok_or_else(|| Refusal::NoArtifact(PLATFORM.to_owned()))?;
    let parsed: Version = version
        .parse()
        .map_err(|_| Refusal::Malformed("release version is not MAJOR.MINOR.PATCH".into()))?;
    if let Some(min) = min {
        if parsed < *min {
            return Err(Refusal::BelowMinimum {
                version,
                min: min.to_string(),
            });
        }
    }
    if !policy.allow_downgrade && !version_below(own, &parsed) {
        return Err(Refusal::NotNewer {
            version,
            own: own.to_owned(),
        });
    }
    Ok(Plan {
        version,
        artifact,
        manifest,
    })
}

impl Plan {
    /// Checks fetched bytes against the signed manifest: the signature again, then size and
    /// SHA-256.
    ///
    /// # Errors
    /// [`Refusal::Mismatch`] (or a signature refusal).
    pub fn check_bytes(&self, key: &ReleasePublicKey, bytes: &[u8]) -> Result<(), Refusal> {
        let verified = self.manifest.verify(key).map_err(from_release)?;
        let found = Artifact::measure(&self.artifact.name, &self.artifact.platform, bytes)
            .map_err(|e| Refusal::Mismatch(e.to_string()))?;
        verified.check_artifact(&found).map_err(from_release)?;
        Ok(())
    }
}

/// What the agent remembers of updates across restarts (`update-state.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateState {
    /// Versions rolled back here: never tried again.
    #[serde(default)]
    pub rolled_back: Vec<String>,
    /// A rollback not yet reported to the coordinator: (version, reason).
    #[serde(default)]
    pub unreported: Option<(String, String)>,
}

impl UpdateState {
    /// Reads the state (missing or unreadable: empty, the safe default is to try again).
    pub fn load(data_dir: &Path) -> UpdateState {
        std::fs::read(data_dir.join(STATE_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Writes the state.
    ///
    /// # Errors
    /// I/O errors.
    pub fn save(&self, data_dir: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        let tmp = data_dir.join(format!("{STATE_FILE}.tmp"));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(tmp, data_dir.join(STATE_FILE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealprint_release::{Manifest, ReleaseKey};

    fn offer(key: &ReleaseKey, version: &str, bytes: &[u8]) -> UpdateOffer {
        let a = Artifact::measure(AGENT_ARTIFACT, PLATFORM, bytes).expect("in memory");
        let m = Manifest::new(version, vec![a]).expect("manifest");
        UpdateOffer {
            version: version.into(),
            platform: PLATFORM.into(),
            artifact: AGENT_ARTIFACT.into(),
            manifest: SignedManifest::sign(m, key).expect("signs").to_json(),
        }
    }

    fn policy(key: &ReleaseKey) -> UpdatePolicy {
        UpdatePolicy {
            release_key: Some(key.public()),
            allow_downgrade: false,
            trial: Duration::from_secs(1),
            exe: None,
            args: Vec::new(),
            on_trial: None,
        }
    }

    #[test]
    fn accepts_a_newer_signed_release_and_checks_its_bytes() {
        let key = ReleaseKey::generate();
        let p = plan(&offer(&key, "0.2.0", b"new"), "0.1.0", None, &policy(&key)).expect("ok");
        assert_eq!(p.check_bytes(&key.public(), b"new"), Ok(()));
        assert!(matches!(
            p.check_bytes(&key.public(), b"neW"),
            Err(Refusal::Mismatch(_))
        ));
        assert!(matches!(
            p.check_bytes(&key.public(), b"new!"),
            Err(Refusal::Mismatch(_))
        ));
    }

    #[test]
    fn refuses_wrong_key_bad_signature_downgrades() {
        let key = ReleaseKey::generate();
        let other = ReleaseKey::generate();
        let pol = policy(&key);
        assert!(matches!(
            plan(&offer(&other, "0.2.0", b"x"), "0.1.0", None, &pol),
            Err(Refusal::WrongKey { .. })
        ));
        let mut forged = offer(&key, "0.2.0", b"x");
        forged.manifest = forged.manifest.replace("0.2.0", "0.3.0");
        forged.version = "0.3.0".into();
        assert_eq!(
            plan(&forged, "0.1.0", None, &pol).err(),
            Some(Refusal::BadSignature)
        );
        assert!(matches!(
            plan(&offer(&key, "0.1.0", b"x"), "0.1.0", None, &pol),
            Err(Refusal::NotNewer { .. })
        ));
        let mut lenient = pol.clone();
        lenient.allow_downgrade = true;
        let min = Version::new(0, 1, 0);
        assert!(matches!(
            plan(&offer(&key, "0.0.9", b"x"), "0.1.0", Some(&min), &lenient),
            Err(Refusal::BelowMinimum { .. })
        ));
        assert!(plan(&offer(&key, "0.1.0", b"x"), "0.1.1", Some(&min), &lenient).is_ok());
        let none = UpdatePolicy {
            release_key: None,
            ..pol
        };
        assert_eq!(
            plan(&offer(&key, "0.2.0", b"x"), "0.1.0", None, &none).err(),
            Some(Refusal::NoReleaseKey)
        );
    }
}
