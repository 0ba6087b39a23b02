//! SP-API connections: a seller's credentials ([`ConnectionSecrets`]), the loaded
//! [`Connection`] with its hosts, and the Shipping v2 business id of a seller.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{auth, SpApi, SpApiError, LWA_ENDPOINT};
use crate::store::{SpapiConnectionRecord, SpapiRegion, StoreError};

/// A connection's secrets, as stored (encrypted) and held in memory (zeroized, redacted).
#[derive(Serialize, Deserialize)]
pub struct ConnectionSecrets {
    /// The LWA client secret.
    pub client_secret: auth::SecretString,
    /// The seller's LWA refresh token.
    pub refresh_token: auth::SecretString,
}

impl std::fmt::Debug for ConnectionSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnectionSecrets(<redacted>)")
    }
}

impl ConnectionSecrets {
    /// The JSON that is encrypted at rest.
    pub fn to_json(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(serde_json::to_vec(self).expect("two strings always serialise"))
    }
}

/// A connection with its secrets, ready to call.
#[derive(Debug)]
pub struct Connection {
    /// The public part.
    pub record: SpapiConnectionRecord,
    pub(super) secrets: ConnectionSecrets,
}

/// The regional host.
pub fn region_host(region: SpapiRegion, sandbox: bool) -> &'static str {
    match (region, sandbox) {
        (SpapiRegion::Na, false) => "https://sellingpartnerapi-na.amazon.com",
        (SpapiRegion::Eu, false) => "https://sellingpartnerapi-eu.amazon.com",
        (SpapiRegion::Fe, false) => "https://sellingpartnerapi-fe.amazon.com",
        (SpapiRegion::Na, true) => "https://sandbox.sellingpartnerapi-na.amazon.com",
        (SpapiRegion::Eu, true) => "https://sandbox.sellingpartnerapi-eu.amazon.com",
        (SpapiRegion::Fe, true) => "https://sandbox.sellingpartnerapi-fe.amazon.com",
    }
}

/// The Shipping v2 business of a seller: by marketplace where Amazon has one for it, else
/// the region's (US for NA, UK for EU, JP for FE). Never left to the UK default.
pub fn business_id(region: SpapiRegion, marketplace_id: &str) -> &'static str {
    match marketplace_id {
        "ATVPDKIKX0DER" => "AmazonShipping_US",
        "A1F83G8C2ARO7P" => "AmazonShipping_UK",
        "APJ6JRA9NG5V4" => "AmazonShipping_IT",
        "A1RKKUPIHCS9HS" => "AmazonShipping_ES",
        "A13V1IB3VIYZZH" => "AmazonShipping_FR",
        "A2VIGQ35RCS4UG" => "AmazonShipping_UAE",
        "A17E79C6D8DWNP" => "AmazonShipping_SA",
        "ARBP9OOSHTCHU" => "AmazonShipping_EG",
        "A21TJRUUN4KGV" => "AmazonShipping_IN",
        "A1VC38T7YXB528" => "AmazonShipping_JP",
        _ => match region {
            SpapiRegion::Na => "AmazonShipping_US",
            SpapiRegion::Eu => "AmazonShipping_UK",
            SpapiRegion::Fe => "AmazonShipping_JP",
        },
    }
}

impl Connection {
    pub(super) fn base_url(&self) -> &str {
        self.record
            .endpoint
            .as_deref()
            .unwrap_or_else(|| region_host(self.record.region, self.record.sandbox))
            .trim_end_matches('/')
    }

    pub(super) fn lwa_url(&self) -> &str {
        self.record.lwa_endpoint.as_deref().unwrap_or(LWA_ENDPOINT)
    }

    pub(super) fn key(&self) -> String {
        format!("{}/{}", self.record.tenant_id, self.record.id)
    }
}

impl SpApi {
    /// Loads a connection of `tenant_id` with its secrets.
    ///
    /// # Errors
    /// [`SpApiError::Connection`] when it does not exist or its secrets do not decrypt.
    pub fn connection(&self, tenant_id: &str, id: &str) -> Result<Connection, SpApiError> {
        let record = self
            .inner
            .store
            .spapi_connection(tenant_id, id)?
            .ok_or(SpApiError::Connection("not found"))?;
        let raw = match self.inner.store.spapi_connection_secrets(tenant_id, id) {
            Ok(r) => r,
            Err(StoreError::NotFound | StoreError::Crypto(_)) => {
                return Err(SpApiError::Connection("secrets unreadable"))
            }
            Err(e) => return Err(e.into()),
        };
        if !self.inner.opts.allow_endpoint_override
            && (record.endpoint.is_some() || record.lwa_endpoint.is_some())
        {
            return Err(SpApiError::Connection(
                "endpoint overrides are turned off on this coordinator",
            ));
        }
        let secrets: ConnectionSecrets = serde_json::from_slice(&raw)
            .map_err(|_| SpApiError::Connection("secrets unreadable"))?;
        Ok(Connection { record, secrets })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn business_ids_follow_the_seller() {
        for (region, marketplace, business) in [
            (SpapiRegion::Na, "ATVPDKIKX0DER", "AmazonShipping_US"),
            (SpapiRegion::Na, "A2EUQ1WTGCTBG2", "AmazonShipping_US"),
            (SpapiRegion::Eu, "A1PA6795UKMFR9", "AmazonShipping_UK"),
            (SpapiRegion::Eu, "A13V1IB3VIYZZH", "AmazonShipping_FR"),
            (SpapiRegion::Fe, "A39IBJ37TRP1C6", "AmazonShipping_JP"),
        ] {
            assert_eq!(business_id(region, marketplace), business, "{marketplace}");
        }
    }

    #[test]
    fn secrets_debug_is_redacted() {
        let s = ConnectionSecrets {
            client_secret: auth::SecretString("amzn1.oa2-cs.v1.SECRET".into()),
            refresh_token: auth::SecretString("Atzr|SECRET".into()),
        };
        assert!(!format!("{s:?}").contains("SECRET"));
        let json = s.to_json();
        let back: ConnectionSecrets = serde_json::from_slice(&json).expect("round trip");
        assert_eq!(back.refresh_token.0, "Atzr|SECRET");
    }
}
