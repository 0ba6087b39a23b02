//! SP-API records: seller connections and label fetches.
//!
//! - A connection's public part ([`SpapiConnectionRecord`]) is JSON in the
//!   `spapi_connections` tree; its secrets (LWA client secret and refresh token) are a
//!   separate value in `spapi_connection_secrets`, encrypted under the tenant's data key and
//!   bound to the tenant and connection id, so deleting the tenant key shreds them too.
//! - A label fetch ([`SpapiFetchRecord`]) is the life of an SP-API label request before it
//!   becomes a job: the print job (same id) is only created once the label is fetched and
//!   decoded, so the dispatcher never sees a job without a label.
//!
//! Keys are `"<tenant_id>/<id>"` like every tenant-scoped record. The trees are opened on use
//! (sled caches open trees), which keeps this file apart from the store's own fields.

use serde::{Deserialize, Serialize};
use sled::transaction::ConflictableTransactionError;
use sled::Transactional;
use zeroize::Zeroizing;

use super::{decode, encode, get, prefix, scan, scoped, tx_err, update, Store, StoreError};

const CONNECTIONS: &str = "spapi_connections";
const SECRETS: &str = "spapi_connection_secrets";
const FETCHES: &str = "spapi_fetches";

/// An SP-API region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpapiRegion {
    /// North America (CA, US, MX, BR).
    Na,
    /// Europe, Middle East, India.
    Eu,
    /// Far East (SG, AU, JP).
    Fe,
}

impl SpapiRegion {
    /// `na`, `eu` or `fe`.
    pub fn as_str(self) -> &'static str {
        match self {
            SpapiRegion::Na => "na",
            SpapiRegion::Eu => "eu",
            SpapiRegion::Fe => "fe",
        }
    }
}

/// A seller's SP-API connection, without its secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpapiConnectionRecord {
    /// `spc-…`.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Region (selects the host).
    pub region: SpapiRegion,
    /// The seller's marketplace id (selects the Shipping v2 business id).
    pub marketplace_id: String,
    /// The LWA client id of the application (not a secret).
    pub client_id: String,
    /// Whether the sandbox host is used.
    pub sandbox: bool,
    /// An https base URL replacing the regional host.
    pub endpoint: Option<String>,
    /// An https URL replacing the LWA token endpoint.
    pub lwa_endpoint: Option<String>,
    /// Creation time, unix ms.
    pub created_at_ms: u64,
}

/// Where a label fetch is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FetchState {
    /// The SP-API calls are running.
    Fetching,
    /// The label was fetched; the job of the same id exists.
    Fetched,
    /// It failed (final): see the error fields.
    Failed,
    /// A purchase may have happened; an operator settles it (getShipment, cancelShipment).
    InDoubt,
}

/// A label requested from SP-API. Holds ids and codes only: no label bytes, no addresses,
/// no SP-API messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpapiFetchRecord {
    /// The job id (the job record is created with it once the label is fetched).
    pub job_id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Connection used.
    pub connection_id: String,
    /// `mfn`, `mfn_shipment`, `shipping_v2`, `shipping_v2_shipment` or `shipping_v2_one_click`.
    pub source: String,
    /// State.
    pub state: FetchState,
    /// Pool asked for.
    pub pool: Option<String>,
    /// Printer asked for.
    pub printer: Option<String>,
    /// How long the job may wait for a printer once created, ms.
    pub job_ttl_ms: u64,
    /// The shipment id, once known.
    pub shipment_id: Option<String>,
    /// The tracking id, once known.
    pub tracking_id: Option<String>,
    /// The idempotency key of a Shipping v2 purchase.
    pub idempotency_key: Option<String>,
    /// The SP-API operation that failed.
    pub failed_call: Option<String>,
    /// Its error code.
    pub error_code: Option<String>,
    /// Its `x-amzn-RequestId`.
    pub request_id: Option<String>,
    /// What went wrong, for a person; no PII.
    pub error: Option<String>,
    /// What the label's MD5 covered (`received`, `decompressed`, `absent`).
    pub checksum: Option<String>,
    /// Whether the label is to be replaced by the redacted one (compliance gate at request).
    #[serde(default)]
    pub redacted: bool,
    /// Whether MFN createShipment refused the requested label format and the label was asked
    /// for again without it (so it comes in the service's default format).
    #[serde(default)]
    pub label_format_fallback: bool,
    /// Creation time, unix ms.
    pub created_at_ms: u64,
    /// Last change, unix ms.
    pub updated_at_ms: u64,
}

fn secrets_aad(tenant_id: &str, id: &str) -> Vec<u8> {
    format!("sealprint/spapi-connection/v1\0{tenant_id}\0{id}").into_bytes()
}

impl Store {
    fn spapi_tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        Ok(self.inner.db.open_tree(name)?)
    }

    /// Stores a new connection and its secrets (encrypted under the tenant's key), in one
    /// transaction.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] without a tenant key, [`StoreError::Conflict`] when the id
    /// exists, [`StoreError::Db`].
    pub fn create_spapi_connection(
        &self,
        rec: &SpapiConnectionRecord,
        secrets: &[u8],
    ) -> Result<(), StoreError> {
        let key = self.data_key(&rec.tenant_id)?;
        let sealed = key.seal(&secrets_aad(&rec.tenant_id, &rec.id), secrets);
        let k = scoped(&rec.tenant_id, &rec.id);
        let value = encode(rec);
        let (conns, secs) = (self.spapi_tree(CONNECTIONS)?, self.spapi_tree(SECRETS)?);
        (&conns, &secs)
            .transaction(|(c, s)| {
                if c.get(&k)?.is_some() {
                    return Err(ConflictableTransactionError::Abort(StoreError::Conflict));
                }
                c.insert(k.as_slice(), value.clone())?;
                s.insert(k.as_slice(), sealed.clone())?;
                Ok(())
            })
            .map_err(tx_err)?;
        self.flush()
    }

    /// A connection of a tenant.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn spapi_connection(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> Result<Option<SpapiConnectionRecord>, StoreError> {
        get(
            &self.spapi_tree(CONNECTIONS)?,
            &scoped(tenant_id, id),
            "spapi connection",
        )
    }

    /// The connections of a tenant.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn spapi_connections(
        &self,
        tenant_id: &str,
    ) -> Result<Vec<SpapiConnectionRecord>, StoreError> {
        scan(
            &self.spapi_tree(CONNECTIONS)?,
            &prefix(tenant_id),
            "spapi connection",
        )
    }

    /// A connection's secrets, decrypted.
    ///
    /// # Errors
    /// [`StoreError::NotFound`], [`StoreError::Crypto`] (tenant key shredded or data
    /// tampered with), [`StoreError::Db`].
    pub fn spapi_connection_secrets(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let sealed = self
            .spapi_tree(SECRETS)?
            .get(scoped(tenant_id, id))?
            .ok_or(StoreError::NotFound)?;
        let key = self.data_key(tenant_id)?;
        Ok(key.open(&secrets_aad(tenant_id, id), &sealed)?)
    }

    /// Stores a new label fetch.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the job id exists, [`StoreError::Db`].
    pub fn create_spapi_fetch(&self, rec: &SpapiFetchRecord) -> Result<(), StoreError> {
        self.spapi_tree(FETCHES)?
            .compare_and_swap(
                scoped(&rec.tenant_id, &rec.job_id),
                None as Option<&[u8]>,
                Some(encode(rec)),
            )?
            .map_err(|_| StoreError::Conflict)?;
        self.flush()
    }

    /// A label fetch.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn spapi_fetch(
        &self,
        tenant_id: &str,
        job_id: &str,
    ) -> Result<Option<SpapiFetchRecord>, StoreError> {
        get(
            &self.spapi_tree(FETCHES)?,
            &scoped(tenant_id, job_id),
            "spapi fetch",
        )
    }

    /// Changes a label fetch atomically and flushes; returns the new record.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn update_spapi_fetch(
        &self,
        tenant_id: &str,
        job_id: &str,
        f: impl FnMut(&mut SpapiFetchRecord),
    ) -> Result<Option<SpapiFetchRecord>, StoreError> {
        let out = update(
            &self.spapi_tree(FETCHES)?,
            &scoped(tenant_id, job_id),
            "spapi fetch",
            f,
        )?;
        self.flush()?;
        Ok(out)
    }

    /// Every label fetch in `state`, across tenants (to settle interrupted ones at start).
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn spapi_fetches_in(&self, state: FetchState) -> Result<Vec<SpapiFetchRecord>, StoreError> {
        let mut out = Vec::new();
        for kv in self.spapi_tree(FETCHES)?.iter() {
            let (_, v) = kv?;
            let rec: SpapiFetchRecord = decode(&v, "spapi fetch")?;
            if rec.state == state {
                out.push(rec);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::crypto::MasterKey;

    fn conn(tenant: &str, id: &str) -> SpapiConnectionRecord {
        SpapiConnectionRecord {
            id: id.into(),
            tenant_id: tenant.into(),
            region: SpapiRegion::Na,
            marketplace_id: "ATVPDKIKX0DER".into(),
            client_id: "amzn1.application-oa2-client.x".into(),
            sandbox: false,
            endpoint: None,
            lwa_endpoint: None,
            created_at_ms: 1,
        }
    }

    #[test]
    fn secrets_are_encrypted_and_bound() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), MasterKey::generate()).expect("store");
        let t = store.create_tenant("t", 1).expect("tenant");
        let secret = b"{\"refresh_token\":\"Atzr|MARKER-SECRET\"}";
        store
            .create_spapi_connection(&conn(&t.id, "spc-1"), secret)
            .expect("created");
        assert!(matches!(
            store.create_spapi_connection(&conn(&t.id, "spc-1"), secret),
            Err(StoreError::Conflict)
        ));
        assert_eq!(
            store
                .spapi_connection_secrets(&t.id, "spc-1")
                .expect("opens")
                .as_slice(),
            secret
        );
        assert_eq!(store.spapi_connections(&t.id).expect("list").len(), 1);
        // Not stored in the clear anywhere in the tree.
        let raw = store.spapi_tree(SECRETS).expect("tree");
        for kv in raw.iter() {
            let (_, v) = kv.expect("kv");
            assert!(!v.windows(6).any(|w| w == b"MARKER"));
        }
        // Swapping the ciphertext to another id does not open.
        let sealed = raw.get(scoped(&t.id, "spc-1")).expect("get").expect("some");
        raw.insert(scoped(&t.id, "spc-2"), sealed).expect("insert");
        assert!(store.spapi_connection_secrets(&t.id, "spc-2").is_err());
    }
}
