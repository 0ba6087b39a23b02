//! Login sessions, stored under the sha256 of their token; an expired one is removed when
//! read.

use super::{get, put, SessionRecord, Store, StoreError};

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
