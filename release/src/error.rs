//! The one error type of release manifests: every way a key, a manifest or an artifact is refused.

/// Why a key, a manifest or an artifact was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReleaseError {
    /// A key file or variable is not the 64 hex digits of an Ed25519 key.
    #[error("malformed {what}: expected 64 hex digits")]
    MalformedKey {
        /// Which key (private or public).
        what: &'static str,
    },
    /// The manifest text is not a valid manifest (JSON, unknown field, bad value).
    #[error("malformed manifest: {0}")]
    MalformedManifest(String),
    /// The manifest was signed by another key than the one trusted.
    #[error("manifest signed by key {found}, expected key {expected}")]
    WrongKey {
        /// Id of the trusted key.
        expected: String,
        /// Id the manifest names.
        found: String,
    },
    /// The signature does not verify over the manifest's bytes with the trusted key.
    #[error("manifest signature does not verify")]
    BadSignature,
    /// The manifest lists no artifact of this name.
    #[error("artifact {0:?} is not in the manifest")]
    UnknownArtifact(String),
    /// The artifact's size differs from the manifest's.
    #[error("artifact {name:?} is {found} bytes, the manifest says {expected}")]
    SizeMismatch {
        /// Artifact file name.
        name: String,
        /// Size in the manifest.
        expected: u64,
        /// Size found.
        found: u64,
    },
    /// The artifact's SHA-256 differs from the manifest's.
    #[error("artifact {name:?} has SHA-256 {found}, the manifest says {expected}")]
    DigestMismatch {
        /// Artifact file name.
        name: String,
        /// Hex digest in the manifest.
        expected: String,
        /// Hex digest found.
        found: String,
    },
}
