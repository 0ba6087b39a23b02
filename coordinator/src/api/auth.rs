//! Who is calling and what they may do.
//!
//! [`authenticate`] turns an `Authorization: Bearer` token into a [`Principal`] (sessions are
//! stored under the token's sha256, never the token); the user is read at every request, so a
//! role change applies at once, and a revoked session (password changed, user disabled) or an
//! API key of a disabled user stops working at once. [`authorize`] is the one place that
//! decides whether a principal may perform an [`Action`] on a tenant:
//!
//! - a user of another tenant gets 404 for everything of this one (it learns nothing);
//! - a platform admin may do everything except the PII actions ([`Action::Reprint`],
//!   [`Action::ReadShipment`]), which only a tenant's `pii_reader` may do;
//! - platform-wide actions and tenant lifecycle actions (subscription, suspension) are for
//!   platform admins only (403 for tenant users);
//! - otherwise the user needs one of the roles of [`Action::roles`] (403 without).
//!
//! It does not implement login or lockout (see `sessions`).

use sha2::{Digest, Sha256};

use super::error::ApiError;
use crate::core::accounts::Role;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// User id.
    pub user_id: String,
    /// Platform admins act on every tenant.
    pub platform_admin: bool,
    /// The user's tenant, if it belongs to one.
    pub tenant_id: Option<String>,
    /// Its roles in that tenant.
    pub roles: Vec<Role>,
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
    /// Accept a printer's new identity after its device was swapped.
    AcceptPrinter,
    /// Submit a label (PII).
    SubmitLabel,
    /// Read a job's state.
    ReadLabel,
    /// Resolve a job in doubt or cancel a queued job (operator or above).
    SettleLabel,
    /// Read the audit log, or verify its chain.
    ReadAudit,
    /// Create users and grant roles.
    ManageUsers,
    /// List users.
    ReadUsers,
    /// Set a tenant's subscription (platform admins only).
    UpdateSubscription,
    /// Suspend or resume a tenant (platform admins only).
    SuspendTenant,
    /// Make the security attestation or accept the terms.
    Attest,
    /// Read the compliance state.
    ReadCompliance,
    /// Reprint a label (fetches PII again).
    Reprint,
    /// Read a shipment's details (PII).
    ReadShipment,
    /// Read the tenant's alerts.
    ReadAlerts,
    /// Clear an alert (lifts the restriction it put on labels).
    ClearAlert,
    /// Read and set the canary orders.
    ManageCanaries,
    /// Create, list and revoke API keys.
    ManageApiKeys,
    /// Set the IP allowlist.
    ManageNetwork,
    /// Crypto-shred the tenant.
    DeleteTenant,
    /// Read the notifications and the webhook (without its secret).
    ReadNotifications,
    /// Set or remove the outgoing webhook.
    ManageWebhook,
    /// Read and set the tenant's minimum agent version.
    ManageAgentPolicy,
}

impl Action {
    /// Every action (for table-driven tests).
    pub const ALL: [Action; 30] = [
        Action::CreateTenant,
        Action::ListTenants,
        Action::CreateSite,
        Action::ReadSites,
        Action::CreateEnrollmentToken,
        Action::ReadAgents,
        Action::RevokeAgent,
        Action::ReadPrinters,
        Action::AcceptPrinter,
        Action::SubmitLabel,
        Action::ReadLabel,
        Action::SettleLabel,
        Action::ReadAudit,
        Action::ManageUsers,
        Action::ReadUsers,
        Action::UpdateSubscription,
        Action::SuspendTenant,
        Action::Attest,
        Action::ReadCompliance,
        Action::Reprint,
        Action::ReadShipment,
        Action::ReadAlerts,
        Action::ClearAlert,
        Action::ManageCanaries,
        Action::ManageApiKeys,
        Action::ManageNetwork,
        Action::DeleteTenant,
        Action::ReadNotifications,
        Action::ManageWebhook,
        Action::ManageAgentPolicy,
    ];

    /// The tenant roles that allow this action; empty for platform-admin-only actions.
    pub fn roles(self) -> &'static [Role] {
        use Role::*;
        match self {
            Action::CreateTenant
            | Action::ListTenants
            | Action::UpdateSubscription
            | Action::SuspendTenant => &[],
            Action::CreateSite
            | Action::CreateEnrollmentToken
            | Action::RevokeAgent
            | Action::AcceptPrinter
            | Action::ManageUsers
            | Action::ManageApiKeys
            | Action::ManageWebhook
            | Action::ManageAgentPolicy => &[Owner, Admin],
            Action::ReadSites | Action::ReadAgents | Action::ReadPrinters => {
                &[Owner, Admin, Operator, Auditor]
            }
            Action::ReadUsers | Action::ReadAlerts | Action::ReadNotifications => {
                &[Owner, Admin, Auditor]
            }
            Action::SubmitLabel => &[Operator],
            Action::SettleLabel => &[Owner, Admin, Operator],
            Action::ReadLabel => &[Operator, PiiReader],
            Action::ReadAudit | Action::ReadCompliance => &[Owner, Auditor],
            Action::Attest
            | Action::ClearAlert
            | Action::ManageCanaries
            | Action::ManageNetwork
            | Action::DeleteTenant => &[Owner],
            Action::Reprint | Action::ReadShipment => &[PiiReader],
        }
    }

    /// Whether the action reveals buyer PII (platform admins may not).
    pub fn reveals_pii(self) -> bool {
        matches!(self, Action::Reprint | Action::ReadShipment)
    }
}

/// The sha256 under which a session token is stored.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether `who` may grant `role` in its tenant. Only a tenant's owner grants `pii_reader`:
/// a platform admin, who may not see PII, may not hand out the role that does.
pub(super) fn may_grant(who: &Principal, role: Role) -> bool {
    (who.platform_admin && role != Role::PiiReader)
        || who.roles.contains(&Role::Owner)
        || (who.roles.contains(&Role::Admin)
            && matches!(role, Role::Admin | Role::Operator | Role::Auditor))
}

/// Whether `principal` may do `action` on `tenant_id` (`None` for platform-wide actions).
///
/// # Errors
/// 404 for another tenant's objects, so a caller cannot learn which tenants exist; 403 for an
/// action its roles do not allow.
pub fn authorize(
    principal: &Principal,
    tenant_id: Option<&str>,
    action: Action,
) -> Result<(), ApiError> {
    if principal.platform_admin {
        return if action.reveals_pii() {
            Err(ApiError::forbidden())
        } else {
            Ok(())
        };
    }
    let Some(t) = tenant_id else {
        return Err(ApiError::forbidden());
    };
    if principal.tenant_id.as_deref() != Some(t) {
        return Err(ApiError::not_found("tenant"));
    }
    if principal.roles.iter().any(|r| action.roles().contains(r)) {
        Ok(())
    } else {
        Err(ApiError::forbidden())
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
            roles: vec![Role::Operator],
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
            tenant_id: None,
            roles: vec![],
            ..user
        };
        assert_eq!(
            authorize(&admin, Some("tnt-b"), Action::RevokeAgent),
            Ok(())
        );
    }

    /// Every action × every role, in the user's own tenant and in another one.
    #[test]
    fn least_privilege_table() {
        use Action as A;
        use Role as R;
        let table: [(Action, &[Role]); 30] = [
            (A::CreateTenant, &[]),
            (A::ListTenants, &[]),
            (A::CreateSite, &[R::Owner, R::Admin]),
            (A::ReadSites, &[R::Owner, R::Admin, R::Operator, R::Auditor]),
            (A::CreateEnrollmentToken, &[R::Owner, R::Admin]),
            (
                A::ReadAgents,
                &[R::Owner, R::Admin, R::Operator, R::Auditor],
            ),
            (A::RevokeAgent, &[R::Owner, R::Admin]),
            (
                A::ReadPrinters,
                &[R::Owner, R::Admin, R::Operator, R::Auditor],
            ),
            (A::AcceptPrinter, &[R::Owner, R::Admin]),
            (A::SubmitLabel, &[R::Operator]),
            (A::ReadLabel, &[R::Operator, R::PiiReader]),
            (A::SettleLabel, &[R::Owner, R::Admin, R::Operator]),
            (A::ReadAudit, &[R::Owner, R::Auditor]),
            (A::ManageUsers, &[R::Owner, R::Admin]),
            (A::ReadUsers, &[R::Owner, R::Admin, R::Auditor]),
            (A::UpdateSubscription, &[]),
            (A::SuspendTenant, &[]),
            (A::Attest, &[R::Owner]),
            (A::ReadCompliance, &[R::Owner, R::Auditor]),
            (A::Reprint, &[R::PiiReader]),
            (A::ReadShipment, &[R::PiiReader]),
            (A::ReadAlerts, &[R::Owner, R::Admin, R::Auditor]),
            (A::ClearAlert, &[R::Owner]),
            (A::ManageCanaries, &[R::Owner]),
            (A::ManageApiKeys, &[R::Owner, R::Admin]),
            (A::ManageNetwork, &[R::Owner]),
            (A::DeleteTenant, &[R::Owner]),
            (A::ReadNotifications, &[R::Owner, R::Admin, R::Auditor]),
            (A::ManageWebhook, &[R::Owner, R::Admin]),
            (A::ManageAgentPolicy, &[R::Owner, R::Admin]),
        ];
        assert_eq!(table.map(|(a, _)| a), Action::ALL);
        let status = |p: &Principal, t: Option<&str>, a| authorize(p, t, a).map_err(|e| e.status);
        for (action, allowed) in table {
            for role in Role::ALL {
                let p = Principal {
                    user_id: "usr-1".into(),
                    platform_admin: false,
                    tenant_id: Some("tnt-a".into()),
                    roles: vec![role],
                };
                let want = if allowed.contains(&role) {
                    Ok(())
                } else {
                    Err(hyper::StatusCode::FORBIDDEN)
                };
                assert_eq!(
                    status(&p, Some("tnt-a"), action),
                    want,
                    "{action:?} {role:?}"
                );
                assert_eq!(
                    status(&p, Some("tnt-b"), action),
                    Err(hyper::StatusCode::NOT_FOUND),
                    "{action:?} {role:?} in another tenant"
                );
            }
            let nobody = Principal {
                user_id: "usr-2".into(),
                platform_admin: false,
                tenant_id: Some("tnt-a".into()),
                roles: vec![],
            };
            assert_eq!(
                status(&nobody, Some("tnt-a"), action),
                Err(hyper::StatusCode::FORBIDDEN)
            );
            let platform = Principal {
                user_id: "usr-0".into(),
                platform_admin: true,
                tenant_id: None,
                roles: vec![],
            };
            let want = if action.reveals_pii() {
                Err(hyper::StatusCode::FORBIDDEN)
            } else {
                Ok(())
            };
            assert_eq!(status(&platform, Some("tnt-a"), action), want, "{action:?}");
        }
    }
}
