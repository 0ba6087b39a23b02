//! Users, by id, with a unique lowercased email index (`user_emails`).

use serde::{Deserialize, Serialize};
use sled::transaction::ConflictableTransactionError;
use sled::Transactional;

use super::{encode, get, scan, tx_err, update, Store, StoreError};
use crate::core::accounts::Role;
use crate::core::crypto::random_id;

/// A user of the admin API.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// `usr-…`.
    pub id: String,
    /// Login email, lowercased.
    pub email: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// A platform admin may act on every tenant.
    pub platform_admin: bool,
    /// The tenant the user belongs to (`None` for platform admins).
    pub tenant_id: Option<String>,
    /// Creation time, unix ms.
    pub created_at_ms: u64,
    /// Roles in its tenant (platform admins have none).
    #[serde(default)]
    pub roles: Vec<Role>,
    /// When the password was last set, unix ms (`None`: at creation).
    #[serde(default)]
    pub password_changed_at_ms: Option<u64>,
    /// Times of recent failed logins, unix ms (pruned to the lockout window).
    #[serde(default)]
    pub failed_logins: Vec<u64>,
    /// Locked until, unix ms.
    #[serde(default)]
    pub locked_until_ms: Option<u64>,
    /// A disabled user cannot log in, and its sessions and API keys stop working.
    #[serde(default)]
    pub disabled: bool,
    /// Sessions created at or before this time, unix ms, are revoked (password change,
    /// disabling).
    #[serde(default)]
    pub sessions_revoked_at_ms: Option<u64>,
}

impl UserRecord {
    /// When the password was set, unix ms.
    pub fn password_set_at_ms(&self) -> u64 {
        self.password_changed_at_ms.unwrap_or(self.created_at_ms)
    }
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("id", &self.id)
            .field("platform_admin", &self.platform_admin)
            .field("tenant_id", &self.tenant_id)
            .field("roles", &self.roles)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Creates a user. The email is lowercased and must be unique.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the email is taken, [`StoreError::Db`].
    pub fn create_user(
        &self,
        email: &str,
        password_hash: String,
        platform_admin: bool,
        tenant_id: Option<String>,
        roles: Vec<Role>,
        now_ms: u64,
    ) -> Result<UserRecord, StoreError> {
        let rec = UserRecord {
            id: random_id("usr"),
            email: email.trim().to_lowercase(),
            password_hash,
            platform_admin,
            tenant_id,
            created_at_ms: now_ms,
            roles,
            password_changed_at_ms: Some(now_ms),
            failed_logins: Vec::new(),
            locked_until_ms: None,
            disabled: false,
            sessions_revoked_at_ms: None,
        };
        let value = encode(&rec);
        (&self.inner.users, &self.inner.user_emails)
            .transaction(|(users, emails)| {
                if emails.get(rec.email.as_bytes())?.is_some() {
                    return Err(ConflictableTransactionError::Abort(StoreError::Conflict));
                }
                emails.insert(rec.email.as_bytes(), rec.id.as_bytes())?;
                users.insert(rec.id.as_bytes(), value.clone())?;
                Ok(())
            })
            .map_err(tx_err)?;
        Ok(rec)
    }

    /// A user by id.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn user(&self, user_id: &str) -> Result<Option<UserRecord>, StoreError> {
        get(&self.inner.users, user_id.as_bytes(), "user")
    }

    /// Changes a user atomically with `f` (retried on races, so `f` may run more than once).
    /// Returns the new record, or `None` when there is no such user.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn update_user<F>(&self, user_id: &str, f: F) -> Result<Option<UserRecord>, StoreError>
    where
        F: FnMut(&mut UserRecord),
    {
        update(&self.inner.users, user_id.as_bytes(), "user", f)
    }

    /// The users of a tenant.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn users(&self, tenant_id: &str) -> Result<Vec<UserRecord>, StoreError> {
        let all: Vec<UserRecord> = scan(&self.inner.users, b"", "user")?;
        Ok(all
            .into_iter()
            .filter(|u| u.tenant_id.as_deref() == Some(tenant_id))
            .collect())
    }

    /// A user by email (case-insensitive).
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn user_by_email(&self, email: &str) -> Result<Option<UserRecord>, StoreError> {
        let email = email.trim().to_lowercase();
        match self.inner.user_emails.get(email.as_bytes())? {
            Some(id) => {
                let id = std::str::from_utf8(&id).map_err(|_| StoreError::Corrupt("email"))?;
                self.user(id)
            }
            None => Ok(None),
        }
    }
}
