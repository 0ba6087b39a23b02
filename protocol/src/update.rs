//! Remote updates on the mesh: what an agent asks its coordinator about releases, and the
//! answers.
//!
//! An agent on a direct uplink asks after each acknowledged heartbeat which release the
//! coordinator wants it on ([`UpdateRequest::Offer`]); when the answer names one
//! ([`UpdateOffer`]), it fetches the artifact in chunks ([`UpdateRequest::Chunk`], each at
//! most [`MAX_CHUNK`] bytes, well inside the frame limit) and reports each step
//! ([`UpdateRequest::Report`]) so the coordinator audits it.
//!
//! Why a request of its own rather than a field of the heartbeat reply: the reply is postcard
//! signed over its exact encoding, and a new field breaks every deployed agent (see
//! `reply::compat`). These requests travel only on the agent's own Noise connection to the
//! coordinator it pinned at enrollment; their content needs no signature of the coordinator
//! because the release manifest inside an offer is signed by the release key, which is what
//! the agent trusts, and the artifact is checked against the manifest's size and SHA-256.
//!
//! Nothing here checks a signature or a digest: the agent's updater does, with the
//! `sealprint-release` crate. This module only bounds sizes ([`UpdateOffer::validate`]).

use serde::{Deserialize, Serialize};

use crate::ident::validate_id;

/// Most bytes of artifact one chunk carries.
pub const MAX_CHUNK: u32 = 512 * 1024;
/// Longest signed manifest (JSON text) an offer carries.
pub const MAX_MANIFEST_LEN: usize = 64 * 1024;
/// Longest reason text in a report.
pub const MAX_REASON_LEN: usize = 512;

/// What an agent asks the coordinator about updates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpdateRequest {
    /// Which release the coordinator wants this agent on, given the agent's own version and
    /// platform (`linux-amd64`, `windows-x86_64`).
    Offer {
        /// The agent's version.
        version: String,
        /// The agent's platform.
        platform: String,
    },
    /// A slice of an artifact of a release.
    Chunk {
        /// The release version.
        version: String,
        /// The artifact's name in its manifest.
        artifact: String,
        /// Where the slice starts.
        offset: u64,
        /// How many bytes (at most [`MAX_CHUNK`]).
        len: u32,
    },
    /// A step of an update, for the coordinator's audit.
    Report(UpdateReport),
}

/// The coordinator's answer to an [`UpdateRequest`] (inside `Response::Update`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpdateResponse {
    /// No release for this agent now (none set, not selected by the rollout, or up to date).
    None,
    /// The release the agent should run.
    Offer(UpdateOffer),
    /// The bytes asked for (fewer only at the artifact's end).
    Chunk(Vec<u8>),
    /// The report was recorded.
    Recorded,
}

/// A release offered to one agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateOffer {
    /// The release version.
    pub version: String,
    /// The platform of the artifact.
    pub platform: String,
    /// The artifact's name in the manifest.
    pub artifact: String,
    /// The signed manifest as published (JSON), verified by the agent against its release key.
    pub manifest: String,
}

impl UpdateOffer {
    /// Checks the sizes and names of an offer from the wire.
    ///
    /// # Errors
    /// A static reason when a field is empty, too long or not an identifier.
    pub fn validate(&self) -> Result<(), &'static str> {
        validate_id(&self.version).map_err(|_| "offer version")?;
        validate_id(&self.platform).map_err(|_| "offer platform")?;
        validate_id(&self.artifact).map_err(|_| "offer artifact")?;
        if self.manifest.is_empty() || self.manifest.len() > MAX_MANIFEST_LEN {
            return Err("offer manifest size");
        }
        Ok(())
    }
}

/// One step of an update as the agent reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateReport {
    /// The release version the step is about.
    pub version: String,
    /// The step.
    pub step: UpdateStep,
    /// Why, for a refusal or a rollback (no PII: versions, sizes, key ids).
    pub reason: String,
}

/// The steps of an update the coordinator audits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpdateStep {
    /// The artifact was fetched and matched its signed manifest.
    Fetched,
    /// The new binary replaced the old one; the agent restarts into it.
    Applied,
    /// The release was refused (bad signature, wrong key, changed byte, downgrade…).
    Refused,
    /// The new version did not heartbeat in time; the previous binary was restored.
    RolledBack,
    /// The new version runs and its heartbeat was acknowledged.
    Running,
}

impl UpdateStep {
    /// The step's name in audit entries.
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateStep::Fetched => "fetched",
            UpdateStep::Applied => "applied",
            UpdateStep::Refused => "refused",
            UpdateStep::RolledBack => "rolled_back",
            UpdateStep::Running => "running",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode_frame, encode_frame, DEFAULT_MAX_FRAME};
    use crate::{Request, Response};

    #[test]
    fn requests_round_trip_and_a_full_chunk_fits_a_frame() {
        let req = Request::Update(UpdateRequest::Chunk {
            version: "0.2.0".into(),
            artifact: "sealprint-agent".into(),
            offset: 7,
            len: MAX_CHUNK,
        });
        let frame = encode_frame(&req, DEFAULT_MAX_FRAME).expect("encodes");
        let (back, _) = decode_frame::<Request>(&frame, DEFAULT_MAX_FRAME)
            .expect("decodes")
            .expect("whole");
        assert_eq!(back, req);
        let resp = Response::Update(UpdateResponse::Chunk(vec![0xAB; MAX_CHUNK as usize]));
        assert!(encode_frame(&resp, DEFAULT_MAX_FRAME).is_ok());
    }

    #[test]
    fn offers_are_bounded() {
        let ok = UpdateOffer {
            version: "0.2.0".into(),
            platform: "linux-amd64".into(),
            artifact: "sealprint-agent".into(),
            manifest: "{}".into(),
        };
        assert_eq!(ok.validate(), Ok(()));
        let mut big = ok.clone();
        big.manifest = "x".repeat(MAX_MANIFEST_LEN + 1);
        assert!(big.validate().is_err());
        let mut path = ok;
        path.artifact = "../x".into();
        assert!(path.validate().is_err());
    }
}
