//! `POST /v1/sessions`: login with email and password, answered with a bearer token.
//!
//! The token is 32 random bytes (base64url), stored only as its sha256, valid 12 hours.
//! Password verification (argon2id) runs on the blocking pool; an unknown email is checked
//! against a dummy hash so both failures take the same time and get the same answer. Both
//! outcomes are audited (the user id when the email is known, never the email or password).
//!
//! Not here yet: lockout after repeated failures, password rotation rules.

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hyper::StatusCode;
use rand::RngCore;
use serde::Deserialize;
use serde_json::json;
use tracing::info;
use zeroize::{Zeroize, Zeroizing};

use super::auth::token_hash;
use super::error::ApiError;
use super::{parse_json, ApiState, Reply};
use crate::crypto;
use crate::store::SessionRecord;

/// Session lifetime, ms.
pub const SESSION_TTL_MS: u64 = 12 * 3600 * 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    email: String,
    password: String,
}

impl Drop for Login {
    fn drop(&mut self) {
        self.password.zeroize();
    }
}

fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| crypto::hash_password("sealprint-dummy-password").unwrap_or_default())
}

pub(super) async fn create(state: &ApiState, body: &[u8]) -> Result<Reply, ApiError> {
    let login: Login = parse_json(body)?;
    if login.email.len() > 254 || login.password.len() > 1024 {
        return Err(ApiError::unauthenticated("email or password is wrong"));
    }
    let user = state.store.user_by_email(&login.email)?;
    let hash = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| dummy_hash().to_owned());
    let password = Zeroizing::new(login.password.clone());
    let ok = tokio::task::spawn_blocking(move || crypto::verify_password(&password, &hash))
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let now = crate::now_ms();
    let user = match (user, ok) {
        (Some(user), true) => user,
        (user, _) => {
            let (tenant, actor) = match &user {
                Some(u) => (u.tenant_id.as_deref(), u.id.as_str()),
                None => (None, "unknown"),
            };
            state.audit(
                tenant,
                actor,
                "session.failed",
                None,
                "bad credentials",
                now,
            );
            info!(user = %actor, "login refused");
            return Err(ApiError::unauthenticated("email or password is wrong"));
        }
    };
    let mut raw = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(raw.as_mut_slice());
    let token = Zeroizing::new(URL_SAFE_NO_PAD.encode(raw.as_slice()));
    let expires_at_ms = now + SESSION_TTL_MS;
    state.store.create_session(
        &token_hash(&token),
        &SessionRecord {
            user_id: user.id.clone(),
            expires_at_ms,
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
