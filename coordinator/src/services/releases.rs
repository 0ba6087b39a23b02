//! Agent releases on the coordinator: accepting a signed manifest, receiving an artifact's
//! bytes into a file, serving slices of it to agents, and the offer an agent gets.
//!
//! A manifest is accepted only when it verifies against the release public key the
//! coordinator was configured with (`--release-public-key`); without one, uploads are
//! refused. An artifact is received only for a manifest already accepted, written to a
//! temporary file while its size (capped at the manifest's) and SHA-256 are measured, and
//! renamed into `releases/VERSION/NAME` only when both match: a file under that name is
//! always a checked artifact. Agents check everything again themselves; the coordinator's
//! checks keep a mistaken upload from ever being offered.
//!
//! What it does not do: decide who gets a release (see [`crate::core::rollout`]) or audit
//! (its callers do).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sealprint_protocol::{UpdateOffer, Version};
use sealprint_release::{Artifact, ReleaseError, ReleasePublicKey, SignedManifest};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::core::paths::releases_dir;
use crate::core::rollout::Desired;
use crate::store::{Store, StoreError};

/// The artifact names of the agent's own binary (Linux, Windows): the only artifacts offered
/// to running agents.
pub const AGENT_BINARIES: [&str; 2] = ["sealprint-agent", "sealprint-agent.exe"];

/// Why a release operation failed.
#[derive(Debug, Error)]
pub enum ReleaseServiceError {
    /// No release public key is configured.
    #[error("no release public key is configured (--release-public-key)")]
    NoKey,
    /// The manifest does not parse, validate or verify.
    #[error(transparent)]
    Manifest(#[from] ReleaseError),
    /// The manifest's version is not the one in the path, or not `MAJOR.MINOR.PATCH`.
    #[error("manifest version does not match")]
    VersionMismatch,
    /// The release or artifact is unknown.
    #[error("unknown release or artifact")]
    Unknown,
    /// The body is larger than the manifest says.
    #[error("artifact is larger than its manifest says")]
    TooLarge,
    /// Reading or writing files failed.
    #[error("release file: {0}")]
    Io(#[from] std::io::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The release settings and the directory of artifacts. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Releases {
    key: Option<ReleasePublicKey>,
    dir: PathBuf,
}

/// An artifact being received: bytes go to a temporary file while they are measured.
pub struct ArtifactUpload {
    file: File,
    tmp: PathBuf,
    dest: PathBuf,
    expected: Artifact,
    hasher: Sha256,
    size: u64,
}

impl Releases {
    /// Releases under `data_dir`, verified with `key` (none: uploads are refused).
    pub fn new(key: Option<ReleasePublicKey>, data_dir: &Path) -> Releases {
        Releases {
            key,
            dir: releases_dir(data_dir),
        }
    }

    /// The configured release public key.
    pub fn public_key(&self) -> Option<&ReleasePublicKey> {
        self.key.as_ref()
    }

    fn artifact_path(&self, version: &str, name: &str) -> PathBuf {
        // Both were checked as identifiers (no `/`, no `..` alone) by the callers.
        self.dir.join(version).join(name)
    }

    /// Verifies and records the signed manifest of `version` (replacing an earlier one and
    /// forgetting its artifacts).
    ///
    /// # Errors
    /// [`ReleaseServiceError`] saying why it was refused.
    pub fn accept_manifest(
        &self,
        store: &Store,
        version: &str,
        json: &str,
    ) -> Result<SignedManifest, ReleaseServiceError> {
        let key = self.key.as_ref().ok_or(ReleaseServiceError::NoKey)?;
        let signed = SignedManifest::from_json(json)?;
        signed.verify(key)?;
        if signed.manifest.version != version || version.parse::<Version>().is_err() {
            return Err(ReleaseServiceError::VersionMismatch);
        }
        store.put_release(version, json)?;
        store.clear_release_artifacts(version)?;
        Ok(signed)
    }

    /// Starts receiving artifact `name` of `version`, whose manifest was accepted.
    ///
    /// # Errors
    /// [`ReleaseServiceError::Unknown`] when the release or the artifact is not known.
    pub fn begin_artifact(
        &self,
        store: &Store,
        version: &str,
        name: &str,
    ) -> Result<ArtifactUpload, ReleaseServiceError> {
        let key = self.key.as_ref().ok_or(ReleaseServiceError::NoKey)?;
        let json = store
            .release(version)?
            .ok_or(ReleaseServiceError::Unknown)?;
        let signed = SignedManifest::from_json(&json)?;
        let verified = signed.verify(key)?;
        let expected = verified
            .manifest()
            .artifact(name)
            .cloned()
            .ok_or(ReleaseServiceError::Unknown)?;
        let dest = self.artifact_path(version, name);
        let parent = dest.parent().ok_or(ReleaseServiceError::Unknown)?;
        std::fs::create_dir_all(parent)?;
        let tmp = parent.join(format!(".{name}.upload-{}", std::process::id()));
        let file = File::create(&tmp)?;
        Ok(ArtifactUpload {
            file,
            tmp,
            dest,
            expected,
            hasher: Sha256::new(),
            size: 0,
        })
    }

    /// `len` bytes (at most) of artifact `name` of `version` from `offset`, when the artifact
    /// was received; fewer at its end.
    ///
    /// # Errors
    /// [`ReleaseServiceError::Unknown`] for an artifact not received, I/O errors.
    pub fn read_chunk(
        &self,
        store: &Store,
        version: &str,
        name: &str,
        offset: u64,
        len: u32,
    ) -> Result<Vec<u8>, ReleaseServiceError> {
        if !store.release_artifacts(version)?.iter().any(|a| a == name) {
            return Err(ReleaseServiceError::Unknown);
        }
        let mut file = File::open(self.artifact_path(version, name))?;
        file.seek(SeekFrom::Start(offset))?;
        let mut out = Vec::with_capacity(len as usize);
        file.take(u64::from(len)).read_to_end(&mut out)?;
        Ok(out)
    }

    /// The offer for an agent of `platform` reporting `agent_version`, under `desired`:
    /// `None` when the agent is not in the rollout, already runs the version, or the release
    /// has no received agent binary for its platform (an artifact named [`AGENT_BINARIES`]:
    /// a release's `.deb` or MSI is for installers, never offered to a running agent).
    ///
    /// # Errors
    /// Store failures.
    pub fn offer(
        &self,
        store: &Store,
        desired: &Desired,
        device_id: &str,
        agent_version: &str,
        platform: &str,
    ) -> Result<Option<UpdateOffer>, ReleaseServiceError> {
        if !desired.offered_to(device_id, agent_version) {
            return Ok(None);
        }
        let version = desired.version.to_string();
        let Some(json) = store.release(&version)? else {
            return Ok(None);
        };
        let signed = SignedManifest::from_json(&json)?;
        let received = store.release_artifacts(&version)?;
        let artifact = signed.manifest.artifacts.iter().find(|a| {
            a.platform == platform
                && AGENT_BINARIES.contains(&a.name.as_str())
                && received.contains(&a.name)
        });
        Ok(artifact.map(|a| UpdateOffer {
            version,
            platform: platform.to_owned(),
            artifact: a.name.clone(),
            manifest: json,
        }))
    }
}

impl ArtifactUpload {
    /// Writes the next bytes of the body.
    ///
    /// # Errors
    /// [`ReleaseServiceError::TooLarge`] past the manifest's size, I/O errors.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), ReleaseServiceError> {
        self.size += bytes.len() as u64;
        if self.size > self.expected.size {
            return Err(ReleaseServiceError::TooLarge);
        }
        self.hasher.update(bytes);
        self.file.write_all(bytes)?;
        Ok(())
    }

    /// Checks size and SHA-256 against the manifest, then moves the file into place and
    /// records it.
    ///
    /// # Errors
    /// [`ReleaseServiceError::Manifest`] with a size or digest mismatch, I/O or store errors.
    pub fn finish(self, store: &Store, version: &str) -> Result<Artifact, ReleaseServiceError> {
        let found = Artifact {
            name: self.expected.name.clone(),
            platform: self.expected.platform.clone(),
            size: self.size,
            sha256: hex::encode(self.hasher.clone().finalize()),
        };
        let check = if found.size != self.expected.size {
            Err(ReleaseError::SizeMismatch {
                name: found.name.clone(),
                expected: self.expected.size,
                found: found.size,
            })
        } else if found.sha256 != self.expected.sha256 {
            Err(ReleaseError::DigestMismatch {
                name: found.name.clone(),
                expected: self.expected.sha256.clone(),
                found: found.sha256.clone(),
            })
        } else {
            Ok(())
        };
        if let Err(e) = check {
            let _ = std::fs::remove_file(&self.tmp);
            return Err(e.into());
        }
        self.file.sync_all()?;
        std::fs::rename(&self.tmp, &self.dest)?;
        store.put_release_artifact(version, &found.name)?;
        Ok(found)
    }

    /// Drops the partial file (a refused or broken upload).
    pub fn abort(self) {
        let _ = std::fs::remove_file(&self.tmp);
    }
}
