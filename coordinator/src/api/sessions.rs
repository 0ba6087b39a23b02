//! `POST /v1/sessions`: login with email and password, answered with a bearer token; and
//! `POST /v1/sessions/password`: change a password (also an expired one) with the current one.
//!
//! The token is 32 random bytes (base64url), stored only as its sha256, valid 12 hours.
//! Password verification (argon2id) runs on the blocking pool; an unknown email is checked
//! against a dummy hash so both failures take the same time and get the same answer.
//!
//! The account rules of [`crate::core::accounts`] and the lockout rule of [`super::limits`] are
//! enforced here. Every attempt is reserved *before* its password is checked (per address,
//! per address and account, per account), so concurrent guesses cannot outrun the count: 5
//! failures of one address on one account within 15 minutes lock it for that address for 15
//! minutes ([`accounts::LOCKOUT_THRESHOLD`]), 20 from any addresses lock it for everyone
//! ([`accounts::ACCOUNT_LOCKOUT_THRESHOLD`]); a locked account is refused with 423 before its
//! password is checked (the right one included), and the failure that locks is answered 423
//! too. An address over its failure budget gets 429 with a Retry-After. argon2 runs under
//! [`super::limits::PasswordWork`]. A correct but expired password (90 days) is refused with
//! 403 `password_expired`, and the answer says how to change it. Every outcome is audited by
//! user id (or `unknown`), never by email or password.
//!
//! A disabled user is refused (403 `account_disabled`, only once its password checked, so
//! the answer tells nothing to whoever does not know it). Changing a password revokes every
//! session of the user made before (each session records when it was made; the user records
//! when its sessions were revoked), so a stolen token dies with the old password.

use std::net::IpAddr;
use std::sync::OnceLock;

use hyper::StatusCode;
use serde::Deserialize;
use serde_json::json;
use tracing::{debug, info};
use zeroize::{Zeroize, Zeroizing};

use super::auth::token_hash;
use super::error::ApiError;
use super::limits::{AddressKey, Refusal};
use super::{parse_json, ApiState, Reply};
use crate::core::accounts::{self, PasswordError};
use crate::core::crypto;
use crate::store::{SessionRecord, UserRecord};

/// Session lifetime, ms.
pub const SESSION_TTL_MS: u64 = 12 * 3600 * 1000;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Login {
    email: String,
    password: String,
}

impl Drop for Login {
    fn drop(&mut self) {
        self.password.zeroize();
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ChangePassword {
    email: String,
    password: String,
    new_password: String,
}

impl Drop for ChangePassword {
    fn drop(&mut self) {
        self.password.zeroize();
        self.new_password.zeroize();
    }
}

fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| crypto::hash_password("sealprint-dummy-password").unwrap_or_default())
}

fn bad_credentials() -> ApiError {
    ApiError::unauthenticated("email or password is wrong")
}

fn locked(until_ms: u64, now_ms: u64) -> ApiError {
    let minutes = until_ms.saturating_sub(now_ms).div_ceil(60_000).max(1);
    ApiError::locked(format!(
        "too many failed logins: the account is locked for {minutes} more minute(s)"
    ))
}

/// Refuses a login on a locked account (audited under `action`).
fn refuse_locked(
    state: &ApiState,
    user: &UserRecord,
    action: &str,
    until: u64,
    now: u64,
) -> ApiError {
    state.audit(
        user.tenant_id.as_deref(),
        &user.id,
        action,
        Some(&user.id),
        "refused: account locked",
        now,
    );
    info!(user = %user.id, "login refused: account locked");
    super::alerts::login_failed(state, user.tenant_id.as_deref(), now);
    locked(until, now)
}

/// Gives back the account-wide reservation made at `now` when no password was checked.
fn release_record(state: &ApiState, user_id: &str, now: u64) -> Result<(), ApiError> {
    state.store.update_user(user_id, |u| {
        if let Some(i) = u.failed_logins.iter().position(|&t| t == now) {
            u.failed_logins.swap_remove(i);
        }
    })?;
    Ok(())
}

/// Checks email and password with the lockout rules of [`super::limits`]; the user on
/// success (whether or not its password has expired: callers decide). The attempt is
/// reserved (per address, per address and account, per account) before argon2 runs, and
/// argon2 runs under [`super::limits::PasswordWork`]. Audits failures under `action`.
async fn check_credentials(
    state: &ApiState,
    email: &str,
    password: &str,
    action: &str,
    peer: Option<IpAddr>,
    now: u64,
) -> Result<UserRecord, ApiError> {
    if email.len() > 254 || password.len() > 1024 {
        return Err(bad_credentials());
    }
    let user = state.store.user_by_email(email)?;
    if let Some(u) = &user {
        let tenant = u.tenant_id.as_deref().filter(|_| !u.platform_admin);
        super::access::check_ip_of(state, tenant, &u.id, action, peer, now)?;
    }
    let guard = &state.limits.logins;
    let user_id = user.as_ref().map(|u| u.id.as_str());
    let ticket = match guard.reserve(AddressKey::of(peer), user_id, now) {
        Ok(t) => t,
        Err(Refusal::Throttled(secs)) => {
            info!("login refused: address over its failure budget");
            return Err(ApiError::rate_limited(
                "too many failed logins from this address: retry later",
                secs,
            ));
        }
        Err(Refusal::Locked(until)) => {
            return Err(match &user {
                Some(u) => refuse_locked(state, u, action, until, now),
                // Only known accounts are ever locked.
                None => bad_credentials(),
            });
        }
    };
    if let Some(u) = &user {
        let mut refused = None;
        state.store.update_user(&u.id, |r| {
            refused = accounts::reserve_attempt(&mut r.failed_logins, r.locked_until_ms, now).err();
        })?;
        if let Some(until) = refused {
            guard.release(ticket);
            return Err(refuse_locked(state, u, action, until, now));
        }
    }
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let password = Zeroizing::new(password.to_owned());
    let checked = state
        .limits
        .passwords
        .run(move || {
            let hash = hash.as_deref().unwrap_or_else(|| dummy_hash());
            crypto::verify_password(&password, hash)
        })
        .await;
    let ok = match checked {
        Ok(ok) => ok,
        Err(e) => {
            guard.release(ticket);
            if let Some(u) = &user {
                release_record(state, &u.id, now)?;
            }
            return Err(e);
        }
    };
    debug!(
        user = user.as_ref().map_or("unknown", |u| u.id.as_str()),
        ok, "password checked"
    );
    match (user, ok) {
        (Some(user), true) => {
            guard.succeeded(ticket);
            state.store.update_user(&user.id, |u| {
                u.failed_logins.clear();
                u.locked_until_ms = None;
            })?;
            Ok(user)
        }
        (Some(user), false) => {
            let pair_lock = guard.failed(ticket, now);
            let mut account_lock = None;
            state.store.update_user(&user.id, |u| {
                account_lock = accounts::attempt_failed(&mut u.failed_logins, now);
                if account_lock.is_some() {
                    u.locked_until_ms = account_lock;
                }
            })?;
            let locks = account_lock.or(pair_lock);
            let outcome = if locks.is_some() {
                "bad credentials; account locked"
            } else {
                "bad credentials"
            };
            state.audit(
                user.tenant_id.as_deref(),
                &user.id,
                action,
                Some(&user.id),
                outcome,
                now,
            );
            info!(user = %user.id, locked = locks.is_some(), "login refused");
            super::alerts::login_failed(state, user.tenant_id.as_deref(), now);
            match locks {
                Some(until) => Err(locked(until, now)),
                None => Err(bad_credentials()),
            }
        }
        (None, _) => {
            guard.failed(ticket, now);
            // A stranger can try emails as fast as it can send: summarised per address.
            state.failures.record(
                &crate::services::failures::source_of(peer),
                crate::core::failures::FailureKind::UnknownLogin,
                action,
            );
            info!(user = "unknown", "login refused");
            Err(bad_credentials())
        }
    }
}

pub(super) async fn create(
    state: &ApiState,
    body: &[u8],
    peer: Option<IpAddr>,
) -> Result<Reply, ApiError> {
    let login: Login = parse_json(body)?;
    let now = crate::core::clock::now_ms();
    let user = check_credentials(
        state,
        &login.email,
        &login.password,
        "session.failed",
        peer,
        now,
    )
    .await?;
    refuse_disabled(state, &user, "session.failed", now)?;
    if accounts::password_expired(user.password_set_at_ms(), now) {
        state.audit(
            user.tenant_id.as_deref(),
            &user.id,
            "session.failed",
            Some(&user.id),
            "refused: password expired",
            now,
        );
        return Err(ApiError::refused(
            "password_expired",
            "the password has expired (90 days): change it with POST /v1/sessions/password",
        ));
    }
    let token = crypto::random_secret("");
    let expires_at_ms = now + SESSION_TTL_MS;
    state.store.create_session(
        &token_hash(&token),
        &SessionRecord {
            user_id: user.id.clone(),
            expires_at_ms,
            created_at_ms: now,
        },
    )?;
    state.audit(
        user.tenant_id.as_deref(),
        &user.id,
        "session.created",
        Some(&user.id),
        "ok",
        now,
    );
    info!(user = %user.id, "session created");
    Ok(Reply::json(
        StatusCode::CREATED,
        json!({"token": token.as_str(), "expires_at": expires_at_ms}),
    ))
}

/// Refuses a disabled user (audited under `action`).
fn refuse_disabled(
    state: &ApiState,
    user: &UserRecord,
    action: &str,
    now: u64,
) -> Result<(), ApiError> {
    if !user.disabled {
        return Ok(());
    }
    state.audit(
        user.tenant_id.as_deref(),
        &user.id,
        action,
        Some(&user.id),
        "refused: account disabled",
        now,
    );
    info!(user = %user.id, "refused: account disabled");
    Err(ApiError::refused(
        "account_disabled",
        "the account is disabled: ask an owner or admin of the tenant",
    ))
}

/// The names a user's password must not contain: its tenant's name, its email's local part,
/// the product name.
pub(super) fn personal_names(
    state: &ApiState,
    email: &str,
    tenant_id: Option<&str>,
) -> Result<Vec<String>, ApiError> {
    let mut names = vec![
        email.split('@').next().unwrap_or_default().to_owned(),
        "sealprint".to_owned(),
    ];
    if let Some(t) = tenant_id
        .map(|t| state.store.tenant(t))
        .transpose()?
        .flatten()
    {
        names.push(t.name);
    }
    Ok(names)
}

/// Checks `password` against the rules for a user of `email` in `tenant_id`.
pub(super) fn check_new_password(
    state: &ApiState,
    password: &str,
    email: &str,
    tenant_id: Option<&str>,
) -> Result<(), ApiError> {
    let names = personal_names(state, email, tenant_id)?;
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    accounts::check_password(password, &names).map_err(|e| ApiError::unprocessable(e.to_string()))
}

/// Hashes a password on the blocking pool, under the bound on password work.
pub(super) async fn hash(state: &ApiState, password: &str) -> Result<String, ApiError> {
    let password = Zeroizing::new(password.to_owned());
    state
        .limits
        .passwords
        .run(move || crypto::hash_password(&password))
        .await?
        .map_err(|e| ApiError::internal(&e))
}

pub(super) async fn change_password(
    state: &ApiState,
    body: &[u8],
    peer: Option<IpAddr>,
) -> Result<Reply, ApiError> {
    let req: ChangePassword = parse_json(body)?;
    let now = crate::core::clock::now_ms();
    let user = check_credentials(
        state,
        &req.email,
        &req.password,
        "password.change_failed",
        peer,
        now,
    )
    .await?;
    refuse_disabled(state, &user, "password.change_failed", now)?;
    check_new_password(
        state,
        &req.new_password,
        &user.email,
        user.tenant_id.as_deref(),
    )?;
    let (new, old) = (
        Zeroizing::new(req.new_password.clone()),
        user.password_hash.clone(),
    );
    let reused = state
        .limits
        .passwords
        .run(move || crypto::verify_password(&new, &old))
        .await?;
    if reused {
        return Err(ApiError::unprocessable(PasswordError::Reused.to_string()));
    }
    let new_hash = hash(state, &req.new_password).await?;
    state
        .store
        .update_user(&user.id, |u| {
            u.password_hash.clone_from(&new_hash);
            u.password_changed_at_ms = Some(now);
            u.failed_logins.clear();
            u.locked_until_ms = None;
            u.sessions_revoked_at_ms = Some(now);
        })?
        .ok_or_else(bad_credentials)?;
    state.audit(
        user.tenant_id.as_deref(),
        &user.id,
        "password.changed",
        Some(&user.id),
        "ok sessions_revoked",
        now,
    );
    info!(user = %user.id, "password changed");
    Ok(Reply::ok(json!({
        "id": user.id,
        "password_expires_at": now + accounts::PASSWORD_MAX_AGE_MS,
    })))
}
