//! sealprint release manifests: what a release is and who vouches for it.
//!
//! A release is a [`Manifest`]: its version and, for each artifact (a `.deb`, an MSI, a
//! binary), the file name, the platform it is for, its size and its SHA-256. The release
//! operator signs the manifest's canonical bytes ([`Manifest::signed_bytes`]) with the
//! project's Ed25519 release key ([`ReleaseKey`]); a [`SignedManifest`] carries the manifest,
//! the id of the key and the signature. Whoever installs or updates (an operator, the agent's
//! updater) verifies the signature against the public key it trusts ([`ReleasePublicKey`]) and
//! then each artifact's size and digest ([`SignedManifest::check_artifact`]).
//!
//! This crate does no network I/O and holds no key in source: the private key is read from a
//! file or an environment variable by the `sealprint-release` binary.

mod error;
mod key;
mod manifest;
mod signed;

pub use error::ReleaseError;
pub use key::{ReleaseKey, ReleasePublicKey};
pub use manifest::{Artifact, Manifest, MANIFEST_FORMAT};
pub use signed::{SignedManifest, VerifiedManifest};
