//! The records the store keeps, as they are serialised (JSON) in its sled trees.
//!
//! None of these holds label bytes or other buyer PII: labels are stored apart, encrypted
//! under the tenant's data key. Ids are `validate_id`-safe strings (`tnt-<32hex>`, …).

use sealprint_protocol::{LabelFormat, PrinterStatus, PrinterVerdict};
use serde::{Deserialize, Serialize};

use crate::core::accounts::Role;
pub use crate::core::audit::AuditEntry;
use crate::core::compliance::requirements::TierRecord;
use crate::core::compliance::{Attestation, Plan, Subscription, Suspension, TermsAcceptance};

/// A tenant (a seller account).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRecord {
    /// `tnt-…`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Creation time, unix ms.
    pub created_at_ms: u64,
    /// Plan (fields below default when absent, so older records still read).
    #[serde(default)]
    pub plan: Plan,
    /// Terms of service acceptance.
    #[serde(default)]
    pub terms: Option<TermsAcceptance>,
    /// Subscription.
    #[serde(default)]
    pub subscription: Subscription,
    /// Security attestation.
    #[serde(default)]
    pub attestation: Option<Attestation>,
    /// Incident suspension, when suspended.
    #[serde(default)]
    pub suspension: Option<Suspension>,
    /// The tier of record and the deadlines its upgrades opened (set by the monitor).
    #[serde(default)]
    pub tier: TierRecord,
}

/// A site (warehouse) of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteRecord {
    /// `site-…`.
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Display name.
    pub name: String,
    /// Creation time, unix ms.
    pub created_at_ms: u64,
}

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

/// A stored enrollment token (only its secret's hash is the key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentTokenRecord {
    /// Tenant the device joins.
    pub tenant_id: String,
    /// Site the device joins.
    pub site_id: String,
    /// Expiry, unix seconds (as in the token).
    pub expires_at_s: u64,
    /// Whether it was redeemed.
    pub used: bool,
}

/// What redeeming an enrollment token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    /// Tenant the device joins.
    pub tenant_id: String,
    /// Site the device joins.
    pub site_id: String,
}

/// An enrolled device (agent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRecord {
    /// `dev-…`.
    pub device_id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Site.
    pub site_id: String,
    /// Serial of its current certificate.
    pub serial: u64,
    /// Its current encoded certificate.
    pub certificate: Vec<u8>,
    /// Its ed25519 key (libp2p identity).
    pub ed25519_public: [u8; 32],
    /// Its X25519 key (sealed envelopes).
    pub x25519_public: [u8; 32],
    /// Station name it reported (ASCII, ≤ 64 chars).
    pub hostname: String,
    /// Enrollment time, unix ms.
    pub enrolled_at_ms: u64,
    /// Whether its certificate is revoked.
    pub revoked: bool,
    /// Agent version from its last heartbeat (or enrollment).
    pub version: Option<String>,
    /// When its last heartbeat arrived, unix ms (coordinator clock).
    pub last_heartbeat_at_ms: Option<u64>,
    /// Its clock minus ours at its last heartbeat, ms.
    pub clock_offset_ms: Option<i64>,
    /// Device id of the peer relaying its uplink, `None` if direct.
    pub relay: Option<String>,
    /// The station's compliance findings from its last heartbeat (no PII: queue names,
    /// permissions, versions).
    #[serde(default)]
    pub findings: Vec<String>,
    /// The counter of its last recorded heartbeat: a heartbeat must carry a larger one.
    #[serde(default)]
    pub heartbeat_seq: u64,
}

/// A printer as last reported by its agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrinterRecord {
    /// `<device_id>.<name>`.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Site.
    pub site_id: String,
    /// Device id of the agent that owns it.
    pub agent: String,
    /// Name on its agent.
    pub name: String,
    /// Pool it serves.
    pub pool: String,
    /// URI (no credentials).
    pub uri: String,
    /// Verification verdict. A printer its agent no longer reports is `Unreachable`.
    pub verdict: PrinterVerdict,
    /// Why, for a person.
    pub reason: String,
    /// Device identity (serial) when known.
    pub identity: Option<String>,
    /// Status. A printer its agent no longer reports is `Offline`.
    pub status: PrinterStatus,
    /// Last update, unix ms.
    pub updated_at_ms: u64,
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting for a printer.
    Queued,
    /// Sent to an agent; waiting for its answer.
    Dispatched,
    /// Printed (final).
    Printed,
    /// Not printed and will not be (final).
    Failed,
    /// Printing started but its result is unknown: an operator decides; never reprinted
    /// automatically.
    InDoubt,
}

impl JobStatus {
    /// The API name (`queued`, `dispatched`, `printed`, `failed`, `in_doubt`).
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Dispatched => "dispatched",
            JobStatus::Printed => "printed",
            JobStatus::Failed => "failed",
            JobStatus::InDoubt => "in_doubt",
        }
    }
}

/// A print job. Holds the label's length and hash, never its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// `job-…`.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Pool asked for.
    pub pool: Option<String>,
    /// Printer id asked for.
    pub requested_printer: Option<String>,
    /// Printer id assigned.
    pub printer: Option<String>,
    /// Device id of the agent assigned.
    pub agent: Option<String>,
    /// Status.
    pub status: JobStatus,
    /// Label format.
    pub format: LabelFormat,
    /// Label length in bytes.
    pub label_len: u32,
    /// Hex sha256 of the label, for logs and audit.
    pub label_sha256: String,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// Printers that said they did not print it.
    pub excluded_printers: Vec<String>,
    /// Deadline of the current attempt, unix ms.
    pub attempt_deadline_ms: Option<u64>,
    /// When the job gives up waiting for a printer, unix ms.
    pub expires_at_ms: u64,
    /// Creation time, unix ms.
    pub created_at_ms: u64,
    /// Last change, unix ms.
    pub updated_at_ms: u64,
    /// Last error, for a person; no PII.
    pub error: Option<String>,
    /// The label was replaced by the redacted stand-in (attestation not complete); the real
    /// bytes were never stored.
    #[serde(default)]
    pub redacted: bool,
    /// The caller's own reference (an order number of its system, `[A-Za-z0-9._:/#-]`, not
    /// PII), searchable.
    #[serde(default)]
    pub client_reference: Option<String>,
}
