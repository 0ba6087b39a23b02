//! A signed manifest: signing with the release key, verifying against the trusted public key,
//! and checking an artifact against a verified manifest.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::{Artifact, Manifest, ReleaseError, ReleaseKey, ReleasePublicKey};

/// A manifest with the id of the key that signed it and the signature (base64) over
/// [`Manifest::signed_bytes`]. This is the `.json` file published beside the artifacts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedManifest {
    /// The release.
    pub manifest: Manifest,
    /// [`ReleasePublicKey::id`] of the signing key (a hint: the signature is the proof).
    pub key_id: String,
    /// Ed25519 signature, standard base64.
    pub signature: String,
}

/// A manifest whose signature verified: only through it are artifacts checked.
#[derive(Debug, Clone, Copy)]
pub struct VerifiedManifest<'a>(&'a Manifest);

impl SignedManifest {
    /// Signs a manifest with the release key.
    ///
    /// # Errors
    /// [`ReleaseError::MalformedManifest`] when the manifest does not validate.
    pub fn sign(manifest: Manifest, key: &ReleaseKey) -> Result<SignedManifest, ReleaseError> {
        manifest.validate()?;
        let signature = key.sign(&manifest.signed_bytes());
        Ok(SignedManifest {
            manifest,
            key_id: key.public().id(),
            signature: base64::engine::general_purpose::STANDARD.encode(signature),
        })
    }

    /// Parses the published JSON (unknown fields refused).
    ///
    /// # Errors
    /// [`ReleaseError::MalformedManifest`] when the text is not a signed manifest.
    pub fn from_json(text: &str) -> Result<SignedManifest, ReleaseError> {
        serde_json::from_str(text).map_err(|e| {
            // serde_json's message names a position and the field, never the values.
            ReleaseError::MalformedManifest(format!("json: {e}"))
        })
    }

    /// The published JSON, pretty-printed.
    pub fn to_json(&self) -> String {
        // Plain strings and integers: serialising cannot fail.
        serde_json::to_string_pretty(self).expect("signed manifest serialises")
    }

    /// Verifies the signature with the trusted public key.
    ///
    /// # Errors
    /// [`ReleaseError::MalformedManifest`] for an invalid manifest, [`ReleaseError::WrongKey`]
    /// when another key signed it, [`ReleaseError::BadSignature`] when the signature does not
    /// verify over these exact values.
    pub fn verify(&self, trusted: &ReleasePublicKey) -> Result<VerifiedManifest<'_>, ReleaseError> {
        self.manifest.validate()?;
        let expected = trusted.id();
        if self.key_id != expected {
            return Err(ReleaseError::WrongKey {
                expected,
                found: self.key_id.chars().take(64).collect(),
            });
        }
        let sig: [u8; 64] = base64::engine::general_purpose::STANDARD
            .decode(self.signature.as_bytes())
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or(ReleaseError::BadSignature)?;
        if !trusted.verify(&self.manifest.signed_bytes(), &sig) {
            return Err(ReleaseError::BadSignature);
        }
        Ok(VerifiedManifest(&self.manifest))
    }
}

impl<'a> VerifiedManifest<'a> {
    /// The verified release.
    pub fn manifest(&self) -> &'a Manifest {
        self.0
    }

    /// Checks a measured file against the manifest's entry of the same name: same size, same
    /// SHA-256 (the platform is the manifest's to say, not the file's).
    ///
    /// # Errors
    /// [`ReleaseError::UnknownArtifact`], [`ReleaseError::SizeMismatch`] or
    /// [`ReleaseError::DigestMismatch`].
    pub fn check_artifact(&self, found: &Artifact) -> Result<&'a Artifact, ReleaseError> {
        let listed = self
            .0
            .artifact(&found.name)
            .ok_or_else(|| ReleaseError::UnknownArtifact(found.name.clone()))?;
        if listed.size != found.size {
            return Err(ReleaseError::SizeMismatch {
                name: found.name.clone(),
                expected: listed.size,
                found: found.size,
            });
        }
        if listed.sha256 != found.sha256 {
            return Err(ReleaseError::DigestMismatch {
                name: found.name.clone(),
                expected: listed.sha256.clone(),
                found: found.sha256.clone(),
            });
        }
        Ok(listed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(key: &ReleaseKey) -> (SignedManifest, Artifact) {
        let a = Artifact::measure("sealprint-agent.msi", "windows-x86_64", &b"MZ..."[..])
            .expect("in memory");
        let m = Manifest::new("0.1.0", vec![a.clone()]).expect("valid");
        (SignedManifest::sign(m, key).expect("signs"), a)
    }

    #[test]
    fn verifies_round_trip_and_checks_artifacts() {
        let key = ReleaseKey::generate();
        let (s, a) = signed(&key);
        let parsed = SignedManifest::from_json(&s.to_json()).expect("parses");
        let ok = parsed.verify(&key.public()).expect("verifies");
        assert_eq!(
            ok.check_artifact(&a).expect("matches").platform,
            "windows-x86_64"
        );
        let changed = Artifact::measure(&a.name, "x", &b"MZ..!"[..]).expect("in memory");
        assert!(matches!(
            ok.check_artifact(&changed),
            Err(ReleaseError::DigestMismatch { .. })
        ));
        let longer = Artifact::measure(&a.name, "x", &b"MZ...."[..]).expect("in memory");
        assert!(matches!(
            ok.check_artifact(&longer),
            Err(ReleaseError::SizeMismatch { .. })
        ));
        let other = Artifact::measure("other", "x", &b""[..]).expect("in memory");
        assert!(matches!(
            ok.check_artifact(&other),
            Err(ReleaseError::UnknownArtifact(_))
        ));
    }

    #[test]
    fn refuses_wrong_key_changed_value_and_bad_signature() {
        let key = ReleaseKey::generate();
        let (s, _) = signed(&key);
        let stranger = ReleaseKey::generate();
        assert!(matches!(
            s.verify(&stranger.public()),
            Err(ReleaseError::WrongKey { .. })
        ));

        // Another key claiming the trusted key's id still fails on the signature.
        let (mut forged, _) = signed(&stranger);
        forged.key_id = key.public().id();
        assert_eq!(
            forged.verify(&key.public()).err(),
            Some(ReleaseError::BadSignature)
        );

        let mut bumped = s.clone();
        bumped.manifest.version = "0.1.1".into();
        assert_eq!(
            bumped.verify(&key.public()).err(),
            Some(ReleaseError::BadSignature)
        );
        let mut digest = s.clone();
        digest.manifest.artifacts[0].sha256 = "0".repeat(64);
        assert_eq!(
            digest.verify(&key.public()).err(),
            Some(ReleaseError::BadSignature)
        );
        let mut garbage = s;
        garbage.signature = "not base64!".into();
        assert_eq!(
            garbage.verify(&key.public()).err(),
            Some(ReleaseError::BadSignature)
        );
        assert!(SignedManifest::from_json("{\"manifest\":1}").is_err());
    }
}
