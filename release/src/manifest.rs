//! The release manifest: version and artifacts (name, platform, size, SHA-256), its validation
//! and the canonical bytes a signature covers.

use std::io::Read;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ReleaseError;

/// The manifest format this crate writes and accepts.
pub const MANIFEST_FORMAT: &str = "sealprint-release-manifest/1";

/// What the signature covers: this prefix, then the manifest as compact JSON in field order.
const SIGNED_PREFIX: &[u8] = b"sealprint-release-manifest/1\0";

/// A release: one version, its artifacts sorted by name, each name unique.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    /// The release version (`0.1.0`, `0.2.0-rc.1`): digits, letters, `.`, `-`, `+`.
    pub version: String,
    /// The artifacts, sorted by name.
    pub artifacts: Vec<Artifact>,
}

/// One file of a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    /// File name, no directory (`sealprint-agent_0.1.0_amd64.deb`).
    pub name: String,
    /// What it installs on (`linux-amd64`, `windows-x86_64`): lowercase letters, digits, `-`, `_`.
    pub platform: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the bytes, 64 lowercase hex digits.
    pub sha256: String,
}

fn malformed(why: impl Into<String>) -> ReleaseError {
    ReleaseError::MalformedManifest(why.into())
}

fn all_chars(s: &str, ok: impl Fn(char) -> bool) -> bool {
    !s.is_empty() && s.len() <= 128 && s.chars().all(ok)
}

impl Artifact {
    /// Measures an artifact: reads `bytes` to the end for its size and SHA-256.
    ///
    /// # Errors
    /// Any error reading `bytes`.
    pub fn measure(name: &str, platform: &str, mut bytes: impl Read) -> std::io::Result<Artifact> {
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut size = 0u64;
        loop {
            let n = bytes.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            size += n as u64;
        }
        Ok(Artifact {
            name: name.to_owned(),
            platform: platform.to_owned(),
            size,
            sha256: hex::encode(hasher.finalize()),
        })
    }

    fn validate(&self) -> Result<(), ReleaseError> {
        let name_ok = all_chars(&self.name, |c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+' | '~')
        }) && !self.name.starts_with('.');
        if !name_ok {
            return Err(malformed(format!("artifact name {:?}", self.name)));
        }
        if !all_chars(&self.platform, |c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_')
        }) {
            return Err(malformed(format!("platform of {:?}", self.name)));
        }
        let hex_ok = self.sha256.len() == 64
            && self
                .sha256
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
        if !hex_ok {
            return Err(malformed(format!("sha256 of {:?}", self.name)));
        }
        Ok(())
    }
}

impl Manifest {
    /// A manifest of `version` over `artifacts` (sorted here by name).
    ///
    /// # Errors
    /// [`ReleaseError::MalformedManifest`] for a bad version, name, platform or digest, or
    /// two artifacts of one name.
    pub fn new(version: &str, mut artifacts: Vec<Artifact>) -> Result<Manifest, ReleaseError> {
        artifacts.sort_by(|a, b| a.name.cmp(&b.name));
        let manifest = Manifest {
            format: MANIFEST_FORMAT.to_owned(),
            version: version.to_owned(),
            artifacts,
        };
        manifest.validate()?;
        Ok(manifest)
    }

    /// Checks every field (a parsed manifest is checked before its signature is).
    ///
    /// # Errors
    /// [`ReleaseError::MalformedManifest`] saying which field.
    pub fn validate(&self) -> Result<(), ReleaseError> {
        if self.format != MANIFEST_FORMAT {
            return Err(malformed(format!("format {:?}", self.format)));
        }
        let version_ok = all_chars(&self.version, |c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+')
        }) && self.version.starts_with(|c: char| c.is_ascii_digit());
        if !version_ok {
            return Err(malformed("version"));
        }
        if self.artifacts.is_empty() {
            return Err(malformed("no artifacts"));
        }
        for a in &self.artifacts {
            a.validate()?;
        }
        if self.artifacts.windows(2).any(|w| w[0].name >= w[1].name) {
            return Err(malformed("artifacts not sorted by name, or a name twice"));
        }
        Ok(())
    }

    /// The bytes the release signature covers: a fixed prefix, then the manifest as compact
    /// JSON with fields in declaration order. Serialising the same values gives the same
    /// bytes, so a verifier re-derives them from the parsed manifest.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut out = SIGNED_PREFIX.to_vec();
        // Serialising plain strings and integers into a Vec cannot fail.
        out.extend(serde_json::to_vec(self).expect("manifest serialises"));
        out
    }

    /// The artifact of this name.
    pub fn artifact(&self, name: &str) -> Option<&Artifact> {
        self.artifacts.iter().find(|a| a.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact(name: &str) -> Artifact {
        Artifact::measure(name, "linux-amd64", name.as_bytes()).expect("in memory")
    }

    #[test]
    fn measures_sorts_and_refuses_bad_fields() {
        let a = artifact("b.deb");
        assert_eq!(a.size, 5);
        assert_eq!(a.sha256, hex::encode(Sha256::digest(b"b.deb")));
        let m = Manifest::new("0.1.0", vec![a.clone(), artifact("a.msi")]).expect("valid");
        assert_eq!(m.artifacts[0].name, "a.msi");
        assert!(Manifest::new("0.1.0", vec![a.clone(), a.clone()]).is_err());
        assert!(Manifest::new("v1", vec![a.clone()]).is_err());
        assert!(Manifest::new("0.1.0", vec![]).is_err());
        for bad in ["../x", "a/b", ".hidden", ""] {
            assert!(
                Manifest::new("0.1.0", vec![artifact(bad)]).is_err(),
                "{bad}"
            );
        }
        let mut upper = a;
        upper.sha256 = upper.sha256.to_uppercase();
        assert!(Manifest::new("0.1.0", vec![upper]).is_err());
    }

    #[test]
    fn signed_bytes_follow_every_field() {
        let m = Manifest::new("0.1.0", vec![artifact("a.deb")]).expect("valid");
        let mut other = m.clone();
        other.artifacts[0].size += 1;
        assert_ne!(m.signed_bytes(), other.signed_bytes());
        assert!(m.signed_bytes().starts_with(SIGNED_PREFIX));
    }
}
