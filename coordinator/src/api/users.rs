//! `POST /v1/tenants/{t}/users`, `GET /v1/tenants/{t}/users` and
//! `PATCH /v1/tenants/{t}/users/{id}` `{"roles"?, "disabled"?}`: a tenant's users and roles.
//!
//! A user belongs to exactly one tenant (platform admins, made by `init`, to none), has a
//! unique id and a unique email, and at least one role. Passwords follow
//! [`crate::core::accounts::check_password`] (the tenant's name and the email's local part are the
//! "personal" names) and are stored as argon2id hashes; the list never shows a hash.
//!
//! Granting rules (where the issue is silent): owners and platform admins grant any role;
//! admins grant `admin`, `operator` and `auditor`, never `owner` or `pii_reader`, so an admin
//! cannot give itself (or a friend) access to PII or the tenant itself. Every creation is
//! audited with the roles granted (a permission change), never the email.
//!
//! Changing a user (owners and admins): the new roles follow the same granting rules, and an
//! admin may only change a user all of whose current roles it could grant (so never an owner
//! or a `pii_reader`). Nobody can remove or disable the tenant's last enabled owner (409).
//! Disabling revokes the user's sessions and API keys at once (see `auth`); re-enabling does
//! not bring the old sessions back. Every change and refusal is audited (`user.updated`,
//! `user.update_refused`) with roles and the disabled flag, never the email.
//!
//! Not here: deleting users. API keys are in `access` (they follow [`may_grant`] too).

use std::sync::Mutex;

use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::info;
use zeroize::Zeroize;

use super::auth::{may_grant, Principal};
use super::error::ApiError;
use super::sessions::{check_new_password, hash};
use super::{parse_json, ApiState, Reply};
use crate::core::accounts::{self, Role};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewUser {
    email: String,
    password: String,
    #[schema(value_type = Vec<String>)]
    roles: Vec<Role>,
}

impl Drop for NewUser {
    fn drop(&mut self) {
        self.password.zeroize();
    }
}

fn valid_email(email: &str) -> bool {
    let email = email.trim();
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    email.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn roles_str(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

pub(super) async fn create(
    state: &ApiState,
    who: &Principal,
    tenant: &str,
    body: &[u8],
    now: u64,
) -> Result<Reply, ApiError> {
    let req: NewUser = parse_json(body)?;
    if !valid_email(&req.email) {
        return Err(ApiError::unprocessable("email is not a valid address"));
    }
    let mut roles = req.roles.clone();
    roles.sort();
    roles.dedup();
    if roles.is_empty() {
        return Err(ApiError::unprocessable("give at least one role"));
    }
    if let Some(r) = roles.iter().find(|r| !may_grant(who, **r)) {
        state.audit(
            Some(tenant),
            &who.user_id,
            "user.create_refused",
            None,
            &format!("may not grant {}", r.as_str()),
            now,
        );
        return Err(ApiError::refused(
            "forbidden",
            format!("only an owner may grant the {} role", r.as_str()),
        ));
    }
    check_new_password(state, &req.password, &req.email, Some(tenant))?;
    let hash = hash(state, &req.password).await?;
    let user = state.store.create_user(
        &req.email,
        hash,
        false,
        Some(tenant.to_owned()),
        roles.clone(),
        now,
    )?;
    state.audit(
        Some(tenant),
        &who.user_id,
        "user.created",
        Some(&user.id),
        &format!("ok roles={}", roles_str(&roles)),
        now,
    );
    info!(tenant = %tenant, user = %user.id, "user created");
    Ok(Reply::json(
        StatusCode::CREATED,
        json!({
            "id": user.id,
            "roles": roles,
            "password_expires_at": now + accounts::PASSWORD_MAX_AGE_MS,
        }),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UserPatch {
    #[schema(value_type = Option<Vec<String>>)]
    roles: Option<Vec<Role>>,
    disabled: Option<bool>,
}

/// Serialises user changes: the last-owner check and the change it allows are one step.
static CHANGES: Mutex<()> = Mutex::new(());

fn refuse(
    state: &ApiState,
    who: &Principal,
    tenant: &str,
    user: &str,
    e: ApiError,
    now: u64,
) -> ApiError {
    state.audit(
        Some(tenant),
        &who.user_id,
        "user.update_refused",
        Some(user),
        &e.message,
        now,
    );
    e
}

pub(super) fn update(
    state: &ApiState,
    who: &Principal,
    tenant: &str,
    id: &str,
    body: &[u8],
    now: u64,
) -> Result<Reply, ApiError> {
    let req: UserPatch = parse_json(body)?;
    if req.roles.is_none() && req.disabled.is_none() {
        return Err(ApiError::unprocessable("give roles, disabled or both"));
    }
    let _guard = CHANGES.lock().unwrap_or_else(|p| p.into_inner());
    let target = state
        .store
        .user(id)?
        .filter(|u| u.tenant_id.as_deref() == Some(tenant))
        .ok_or_else(|| ApiError::not_found("user"))?;
    let forbid = |msg: String| {
        refuse(
            state,
            who,
            tenant,
            id,
            ApiError::refused("forbidden", msg),
            now,
        )
    };
    if let Some(r) = target.roles.iter().find(|r| !may_grant(who, **r)) {
        let r = r.as_str();
        return Err(forbid(format!(
            "only an owner may change a user with the {r} role"
        )));
    }
    let roles = match req.roles {
        Some(mut roles) => {
            roles.sort();
            roles.dedup();
            if roles.is_empty() {
                return Err(ApiError::unprocessable("give at least one role"));
            }
            if let Some(r) = roles.iter().find(|r| !may_grant(who, **r)) {
                let r = r.as_str();
                return Err(forbid(format!("only an owner may grant the {r} role")));
            }
            roles
        }
        None => target.roles.clone(),
    };
    let disabled = req.disabled.unwrap_or(target.disabled);
    let active_owner = |roles: &[Role], disabled: bool| !disabled && roles.contains(&Role::Owner);
    if active_owner(&target.roles, target.disabled) && !active_owner(&roles, disabled) {
        let others = state
            .store
            .users(tenant)?
            .iter()
            .filter(|u| u.id != target.id && active_owner(&u.roles, u.disabled))
            .count();
        if others == 0 {
            let e = ApiError::conflict(
                "the tenant's last owner cannot lose the owner role or be disabled: make \
                 another owner first",
            );
            return Err(refuse(state, who, tenant, id, e, now));
        }
    }
    let user = state
        .store
        .update_user(id, |u| {
            u.roles.clone_from(&roles);
            if disabled && !u.disabled {
                u.sessions_revoked_at_ms = Some(now);
            }
            u.disabled = disabled;
        })?
        .ok_or_else(|| ApiError::not_found("user"))?;
    state.audit(
        Some(tenant),
        &who.user_id,
        "user.updated",
        Some(id),
        &format!("ok roles={} disabled={disabled}", roles_str(&roles)),
        now,
    );
    info!(tenant = %tenant, user = %id, disabled, "user updated");
    Ok(Reply::ok(user_json(&user, now)))
}

fn user_json(u: &crate::store::UserRecord, now: u64) -> Value {
    let set = u.password_set_at_ms();
    json!({
        "id": u.id,
        "email": u.email,
        "roles": u.roles,
        "disabled": u.disabled,
        "created_at": u.created_at_ms,
        "password_expires_at": set + accounts::PASSWORD_MAX_AGE_MS,
        "password_expired": accounts::password_expired(set, now),
        "locked_until": accounts::locked_until(u.locked_until_ms, now),
    })
}

pub(super) fn list(state: &ApiState, tenant: &str, now: u64) -> Result<Reply, ApiError> {
    let list: Vec<Value> = state
        .store
        .users(tenant)?
        .iter()
        .map(|u| user_json(u, now))
        .collect();
    Ok(Reply::ok(Value::Array(list)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_and_grants() {
        assert!(valid_email("ops@acme.example"));
        for bad in ["", "x", "@a.b", "a@b", "a@.b", "a@b.", "a b@c.d", "a@b@c.d"] {
            assert!(!valid_email(bad), "{bad}");
        }
        let admin = Principal {
            user_id: "usr-1".into(),
            platform_admin: false,
            tenant_id: Some("tnt-a".into()),
            roles: vec![Role::Admin],
        };
        assert!(may_grant(&admin, Role::Operator));
        assert!(!may_grant(&admin, Role::Owner));
        assert!(!may_grant(&admin, Role::PiiReader));
        let owner = Principal {
            roles: vec![Role::Owner],
            ..admin
        };
        assert!(Role::ALL.iter().all(|r| may_grant(&owner, *r)));
    }
}
