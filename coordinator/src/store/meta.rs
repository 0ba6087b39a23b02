//! The coordinator's own records in the `meta` tree: whether `init` completed, its secrets
//! (sealed under the master key) and the certificate serial counter.

use zeroize::Zeroizing;

use super::{Store, StoreError};

const INITIALISED: &[u8] = b"initialised";
const SERIAL: &[u8] = b"serial";

impl Store {
    /// Whether `init` completed on this store.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub fn is_initialised(&self) -> Result<bool, StoreError> {
        Ok(self.inner.meta.contains_key(INITIALISED)?)
    }

    /// Records that `init` completed.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub fn mark_initialised(&self) -> Result<(), StoreError> {
        self.inner.meta.insert(INITIALISED, &b"1"[..])?;
        self.flush()
    }

    /// Stores a coordinator secret `name`, encrypted under the master key. Refuses to
    /// overwrite one.
    ///
    /// # Errors
    /// [`StoreError::Conflict`], [`StoreError::Db`].
    pub fn put_secret(&self, name: &str, secret: &[u8]) -> Result<(), StoreError> {
        let key = format!("secret/{name}");
        let sealed = self.inner.master.seal(key.as_bytes(), secret);
        self.inner
            .meta
            .compare_and_swap(key.as_bytes(), None as Option<&[u8]>, Some(sealed))?
            .map_err(|_| StoreError::Conflict)
    }

    /// A coordinator secret stored with [`Store::put_secret`], decrypted.
    ///
    /// # Errors
    /// [`StoreError::NotFound`], [`StoreError::Crypto`], [`StoreError::Db`].
    pub fn secret(&self, name: &str) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let key = format!("secret/{name}");
        let sealed = self
            .inner
            .meta
            .get(key.as_bytes())?
            .ok_or(StoreError::NotFound)?;
        Ok(self.inner.master.open(key.as_bytes(), &sealed)?)
    }

    /// The next certificate serial (from 1, never reused).
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn next_serial(&self) -> Result<u64, StoreError> {
        let read = |v: Option<&[u8]>| -> u64 {
            v.and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes)
                .unwrap_or(0)
        };
        let new = self
            .inner
            .meta
            .update_and_fetch(SERIAL, |old| Some((read(old) + 1).to_be_bytes().to_vec()))?;
        let n = read(new.as_deref());
        if n == 0 {
            return Err(StoreError::Corrupt("serial counter"));
        }
        Ok(n)
    }
}
