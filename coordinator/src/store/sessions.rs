//! Login sessions, stored under the sha256 of their token; an expired one is removed when
//! read.

use serde::{Deserialize, Serialize};

use super::{get, put, Store, StoreError, UserRecord};

/// An API session; stored under the sha256 of its bearer token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The user.
    pub user_id: String,
    /// Expiry, unix ms.
    pub expires_at_ms: u64,
    /// Creation, unix ms (0 in records older than this field: revoked by any revocation).
    #[serde(default)]
    pub created_at_ms: u64,
}

impl SessionRecord {
    /// Whether `user` revoked this session (changed its password or was disabled after it
    /// was created).
    pub fn revoked_for(&self, user: &UserRecord) -> bool {
        user.disabled
            || user
                .sessions_revoked_at_ms
                .is_some_and(|at| self.created_at_ms <= at)
    }
}

impl Store {
    /// Stores a session under the sha256 of its token.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub fn create_session(
        &self,
        token_hash: &[u8; 32],
        rec: &SessionRecord,
    ) -> Result<(), StoreError> {
        put(&self.inner.sessions, token_hash, rec)
    }

    /// The session of a token hash, if it exists and has not expired at `now_ms` (an expired
    /// one is removed).
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn session(
        &self,
        token_hash: &[u8; 32],
        now_ms: u64,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let Some(rec) = get::<SessionRecord>(&self.inner.sessions, token_hash, "session")? else {
            return Ok(None);
        };
        if now_ms >= rec.expires_at_ms {
            self.inner.sessions.remove(token_hash)?;
            return Ok(None);
        }
        Ok(Some(rec))
    }
}
