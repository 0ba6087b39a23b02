//! Who is calling and what they may do.
//!
//! [`authenticate`] turns an `Authorization: Bearer` token into a [`Principal`] (sessions are
//! stored under the token's sha256, never the token). [`authorize`] is the one place that
//! decides whether a principal may perform an [`Action`] on a tenant: today a platform admin
//! may do everything and a tenant user everything inside its own tenant except managing
//! tenants; roles with least privilege (issue 4) plug in here.
//!
//! It does not implement login (see `sessions`) or lockout.

use hyper::header::AUTHORIZATION;
use hyper::HeaderMap;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::ApiState;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// User id.
    pub user_id: String,
    /// Platform admins act on every tenant.
    pub platform_admin: bool,
    /// The user's tenant, if it belongs to one.
    pub tenant_id: Option<String>,
}

/// What a request wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Create a tenant.
    CreateTenant,
    /// List every tenant.
    ListTenants,
    /// Create a site.
    CreateSite,
    /// List sites.
    ReadSites,
    /// Mint an enrollment token.
    CreateEnrollmentToken,
    /// List agents.
    ReadAgents,
    /// Revoke an agent.
    RevokeAgent,
    /// List printers.
    ReadPrinters,
    /// Submit a label (PII).
    SubmitLabel,
    /// Read a job's state.
    ReadLabel,
    /// Read the audit log.
    ReadAudit,
}

/// The sha256 under which a session token is stored.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Finds the principal behind the request's bearer token.
///
/// # Errors
/// 401 when the header is missing or malformed, or the token unknown or expired.
pub fn authenticate(
    state: &ApiState,
    headers: &HeaderMap,
    now_ms: u64,
) -> Result<Principal, ApiError> {
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 256)
        .ok_or_else(|| ApiError::unauthenticated("a bearer token is required"))?;
    let session = state
        .store
        .session(&token_hash(token), now_ms)?
        .ok_or_else(|| ApiError::unauthenticated("the token is unknown or expired"))?;
    let user = state
        .store
        .user(&session.user_id)?
        .ok_or_else(|| ApiError::unauthenticated("the token is unknown or expired"))?;
    Ok(Principal {
        user_id: user.id,
        platform_admin: user.platform_admin,
        tenant_id: user.tenant_id,
    })
}

/// Whether `principal` may do `action` on `tenant_id` (`None` for platform-wide actions).
///
/// # Errors
/// 403 for a forbidden platform-wide action; 404 for another tenant's objects, so a caller
/// cannot learn which tenants exist.
pub fn authorize(
    principal: &Principal,
    tenant_id: Option<&str>,
    action: Action,
) -> Result<(), ApiError> {
    if principal.platform_admin {
        return Ok(());
    }
    match (action, tenant_id) {
        (Action::CreateTenant | Action::ListTenants, _) => Err(ApiError::forbidden()),
        (_, Some(t)) if principal.tenant_id.as_deref() == Some(t) => Ok(()),
        (_, Some(_)) => Err(ApiError::not_found("tenant")),
        (_, None) => Err(ApiError::forbidden()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_users_stay_in_their_tenant() {
        let user = Principal {
            user_id: "usr-1".into(),
            platform_admin: false,
            tenant_id: Some("tnt-a".into()),
        };
        assert_eq!(authorize(&user, Some("tnt-a"), Action::SubmitLabel), Ok(()));
        assert_eq!(
            authorize(&user, Some("tnt-b"), Action::SubmitLabel).map_err(|e| e.status),
            Err(hyper::StatusCode::NOT_FOUND)
        );
        assert_eq!(
            authorize(&user, None, Action::CreateTenant).map_err(|e| e.status),
            Err(hyper::StatusCode::FORBIDDEN)
        );
        let admin = Principal {
            platform_admin: true,
            ..user
        };
        assert_eq!(
            authorize(&admin, Some("tnt-b"), Action::RevokeAgent),
            Ok(())
        );
    }
}
