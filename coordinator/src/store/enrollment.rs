//! One-time enrollment tokens, stored under the sha256 of their secret and redeemed once,
//! atomically, only while the tenant may provision devices.

use serde::{Deserialize, Serialize};
use sled::transaction::ConflictableTransactionError;

use super::{decode, encode, get, tx_err, Store, StoreError};
use crate::core::compliance::{provisioning_gate, GateRefusal};

/// A stored enrollment token (only its secret's hash is the key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentTokenRecord {
    /// Tenant the device joins.
    pub tenant_id: String,
    /// Site the device joins.
    pub site_id: String,
    /// Expiry, unix seconds (as in the token).
    pub expires_at_s: u64,
    /// Whether it was redeemed.
    pub used: bool,
}

/// What redeeming an enrollment token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    /// Tenant the device joins.
    pub tenant_id: String,
    /// Site the device joins.
    pub site_id: String,
}

impl Store {
    /// Stores an enrollment token under its secret's hash.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] if the hash is taken, [`StoreError::Db`].
    pub fn put_enrollment_token(
        &self,
        secret_hash: &[u8; 32],
        rec: &EnrollmentTokenRecord,
    ) -> Result<(), StoreError> {
        self.inner
            .tokens
            .compare_and_swap(secret_hash, None as Option<&[u8]>, Some(encode(rec)))?
            .map_err(|_| StoreError::Conflict)
    }

    /// Redeems a token once, atomically: of two concurrent redemptions exactly one succeeds.
    /// The token's tenant must be allowed to provision devices (active subscription, not
    /// suspended); a refused token stays unused.
    ///
    /// # Errors
    /// [`StoreError::TokenUnknown`], [`StoreError::TokenUsed`], [`StoreError::TokenExpired`],
    /// [`StoreError::ProvisioningRefused`], [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn redeem_enrollment_token(
        &self,
        secret_hash: &[u8; 32],
        now_s: u64,
    ) -> Result<TokenGrant, StoreError> {
        if let Some(rec) =
            get::<EnrollmentTokenRecord>(&self.inner.tokens, secret_hash, "enrollment token")?
        {
            let tenant = self
                .tenant(&rec.tenant_id)?
                .ok_or(StoreError::TokenUnknown)?;
            match provisioning_gate(tenant.suspension.as_ref(), tenant.subscription.state) {
                Ok(()) => {}
                Err(GateRefusal::Suspended(_)) => {
                    return Err(StoreError::ProvisioningRefused("the tenant is suspended"))
                }
                Err(GateRefusal::SubscriptionInactive(_)) => {
                    return Err(StoreError::ProvisioningRefused(
                        "the tenant's subscription is not active",
                    ))
                }
                Err(GateRefusal::Restricted(_)) => {
                    return Err(StoreError::ProvisioningRefused("the tenant is restricted"))
                }
            }
        }
        self.inner
            .tokens
            .transaction(|t| {
                let abort = |e| Err(ConflictableTransactionError::Abort(e));
                let Some(raw) = t.get(secret_hash)? else {
                    return abort(StoreError::TokenUnknown);
                };
                let mut rec: EnrollmentTokenRecord = match decode(&raw, "enrollment token") {
                    Ok(r) => r,
                    Err(e) => return abort(e),
                };
                if rec.used {
                    return abort(StoreError::TokenUsed);
                }
                if now_s > rec.expires_at_s {
                    return abort(StoreError::TokenExpired);
                }
                rec.used = true;
                t.insert(&secret_hash[..], encode(&rec))?;
                Ok(TokenGrant {
                    tenant_id: rec.tenant_id,
                    site_id: rec.site_id,
                })
            })
            .map_err(tx_err)
    }
}
