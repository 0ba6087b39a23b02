//! `POST /v1/tenants/{t}/users` and `GET /v1/tenants/{t}/users`: a tenant's users and roles.
//!
//! A user belongs to exactly one tenant (platform admins, made by `init`, to none), has a
//! unique id and a unique email, and at least one role. Passwords follow
//! [`crate::accounts::check_password`] (the tenant's name and the email's local part are the
//! "personal" names) and are stored as argon2id hashes; the list never shows a hash.
//!
//! Granting rules (where the issue is silent): owners and platform admins grant any role;
//! admins grant `admin`, `operator` and `auditor`, never `owner` or `pii_reader`, so an admin
//! cannot give itself (or a friend) access to PII or the tenant itself. Every creation is
//! audited with the roles granted (a permission change), never the email.
//!
//! Not here yet: changing a user's roles, disabling or deleting users. API keys are in
//! `access` (they follow [`may_grant`] too).

use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::info;
use zeroize::Zeroize;

use super::auth::{Action, Principal};
use super::error::ApiError;
use super::sessions::{check_new_password, hash};
use super::{parse_json, tenant_scope, ApiState, Reply};
use crate::accounts::{self, Role};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    email: String,
    password: String,
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

/// Whether `who` may grant `role` in its tenant.
pub(super) fn may_grant(who: &Principal, role: Role) -> bool {
    who.platform_admin
        || who.roles.contains(&Role::Owner)
        || (who.roles.contains(&Role::Admin)
            && matches!(role, Role::Admin | Role::Operator | Role::Auditor))
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
    tenant_scope(state, who, tenant, Action::ManageUsers)?;
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
    let hash = hash(&req.password).await?;
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

pub(super) fn list(
    state: &ApiState,
    who: &Principal,
    tenant: &str,
    now: u64,
) -> Result<Reply, ApiError> {
    tenant_scope(state, who, tenant, Action::ReadUsers)?;
    let list: Vec<Value> = state
        .store
        .users(tenant)?
        .into_iter()
        .map(|u| {
            let set = u.password_set_at_ms();
            json!({
                "id": u.id,
                "email": u.email,
                "roles": u.roles,
                "created_at": u.created_at_ms,
                "password_expires_at": set + accounts::PASSWORD_MAX_AGE_MS,
                "password_expired": accounts::password_expired(set, now),
                "locked_until": accounts::locked_until(u.locked_until_ms, now),
            })
        })
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
