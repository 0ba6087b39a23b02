//! Releases and desired versions (remote updates).
//!
//! - `releases`: keyed by version, the signed manifest exactly as uploaded (JSON text), after
//!   the API checked its signature against the configured release key.
//! - `release_artifacts`: keyed `"<version>/<name>"`, present once the artifact's bytes were
//!   received and matched the manifest (the bytes live in files, see `core::paths`).
//! - `desired_versions`: keyed by tenant id, or `"<tenant_id>/<site_id>"` for a site's own
//!   choice (a tenant's deletion removes both with its prefix); the value is
//!   [`DesiredRecord`] as JSON.
//!
//! None of it is PII: versions, names, sizes and digests.

use serde::{Deserialize, Serialize};

use super::{Store, StoreError};

const RELEASES: &str = "releases";
const ARTIFACTS: &str = "release_artifacts";
const DESIRED: &str = "desired_versions";

/// A desired version of a tenant or a site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredRecord {
    /// The release version (`MAJOR.MINOR.PATCH`).
    pub version: String,
    /// How many agents in a hundred get it.
    pub rollout_percent: u8,
    /// When it was set, unix ms.
    pub set_at_ms: u64,
}

fn desired_key(tenant_id: &str, site_id: Option<&str>) -> String {
    match site_id {
        Some(site) => format!("{tenant_id}/{site}"),
        None => tenant_id.to_owned(),
    }
}

impl Store {
    /// Records a release's signed manifest (replacing an earlier upload of the same version).
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub fn put_release(&self, version: &str, manifest_json: &str) -> Result<(), StoreError> {
        let tree = self.inner.db.open_tree(RELEASES)?;
        tree.insert(version.as_bytes(), manifest_json.as_bytes())?;
        Ok(())
    }

    /// The signed manifest of `version`, as uploaded.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn release(&self, version: &str) -> Result<Option<String>, StoreError> {
        let tree = self.inner.db.open_tree(RELEASES)?;
        tree.get(version.as_bytes())?
            .map(|v| String::from_utf8(v.to_vec()).map_err(|_| StoreError::Corrupt("release")))
            .transpose()
    }

    /// Every release version with the names of its received artifacts.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub fn releases(&self) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        let tree = self.inner.db.open_tree(RELEASES)?;
        let mut out = Vec::new();
        for item in tree.iter() {
            let (k, _) = item?;
            let version = String::from_utf8_lossy(&k).into_owned();
            let artifacts = self.release_artifacts(&version)?;
            out.push((version, artifacts));
        }
        Ok(out)
    }

    /// Marks an artifact of `version` as received and checked.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub fn put_release_artifact(&self, version: &str, name: &str) -> Result<(), StoreError> {
        let tree = self.inner.db.open_tree(ARTIFACTS)?;
        tree.insert(format!("{version}/{name}").as_bytes(), b"ok".as_slice())?;
        Ok(())
    }

    /// Forgets the received artifacts of `version` (a new manifest replaces the old one).
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub fn clear_release_artifacts(&self, version: &str) -> Result<(), StoreError> {
        let tree = self.inner.db.open_tree(ARTIFACTS)?;
        for item in tree.scan_prefix(format!("{version}/").as_bytes()) {
            let (k, _) = item?;
            tree.remove(k)?;
        }
        Ok(())
    }

    /// The names of the received artifacts of `version`.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub fn release_artifacts(&self, version: &str) -> Result<Vec<String>, StoreError> {
        let tree = self.inner.db.open_tree(ARTIFACTS)?;
        let prefix = format!("{version}/");
        let mut out = Vec::new();
        for item in tree.scan_prefix(prefix.as_bytes()) {
            let (k, _) = item?;
            out.push(String::from_utf8_lossy(&k[prefix.len()..]).into_owned());
        }
        Ok(out)
    }

    /// Sets (`Some`) or removes (`None`) the desired version of a tenant, or of one of its
    /// sites.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub fn set_desired_version(
        &self,
        tenant_id: &str,
        site_id: Option<&str>,
        desired: Option<&DesiredRecord>,
    ) -> Result<(), StoreError> {
        let tree = self.inner.db.open_tree(DESIRED)?;
        let key = desired_key(tenant_id, site_id);
        match desired {
            Some(d) => {
                let json = serde_json::to_vec(d).map_err(|_| StoreError::Corrupt("desired"))?;
                tree.insert(key.as_bytes(), json)?;
            }
            None => {
                tree.remove(key.as_bytes())?;
            }
        }
        Ok(())
    }

    /// The desired version of a tenant, or of one of its sites (no fallback here).
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn desired_version(
        &self,
        tenant_id: &str,
        site_id: Option<&str>,
    ) -> Result<Option<DesiredRecord>, StoreError> {
        let tree = self.inner.db.open_tree(DESIRED)?;
        tree.get(desired_key(tenant_id, site_id).as_bytes())?
            .map(|v| serde_json::from_slice(&v).map_err(|_| StoreError::Corrupt("desired")))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::DesiredRecord;
    use crate::core::crypto::MasterKey;
    use crate::store::Store;

    #[test]
    fn releases_and_desired_versions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), MasterKey::from_bytes([7; 32])).expect("store");
        store.put_release("0.2.0", "{}").expect("put");
        store.put_release_artifact("0.2.0", "agent").expect("put");
        assert_eq!(
            store.releases().expect("list"),
            vec![("0.2.0".to_owned(), vec!["agent".to_owned()])]
        );
        store.clear_release_artifacts("0.2.0").expect("clear");
        assert!(store.release_artifacts("0.2.0").expect("list").is_empty());
        let d = DesiredRecord {
            version: "0.2.0".into(),
            rollout_percent: 34,
            set_at_ms: 1,
        };
        store
            .set_desired_version("t", Some("s"), Some(&d))
            .expect("set");
        assert_eq!(store.desired_version("t", None).expect("get"), None);
        assert_eq!(store.desired_version("t", Some("s")).expect("get"), Some(d));
        store
            .set_desired_version("t", Some("s"), None)
            .expect("clear");
        assert_eq!(store.desired_version("t", Some("s")).expect("get"), None);
    }
}
