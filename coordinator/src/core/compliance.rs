//! The customer security requirements a tenant must meet before labels carry PII, as pure
//! functions of the tenant's record and an explicit `now`.
//!
//! - [`Plan`], [`SubscriptionState`], [`Attestation`] (the checklist questionnaire) and
//!   [`Suspension`]: what a tenant record holds (see `store::TenantRecord`).
//! - [`label_gate`] and [`provisioning_gate`]: whether a tenant may print (in full, or only
//!   redacted labels) and enroll devices; [`GateRefusal`] says why not.
//! - [`redacted_zpl`]: the label printed instead of the real one until the attestation is
//!   complete: order id, carrier and tracking when given, and no PII.
//! - [`Tier`] and [`tier_for`]: the tier from measured usage.
//! - [`requirements`]: renewals and the tier's requirements with their deadlines, and the
//!   restriction when one is missed.
//! - [`billing`]: the billing webhook's signature (also used to sign outgoing notifications)
//!   and events.
//!
//! What it does not do: store anything, answer HTTP, or run background tasks (automatic
//! restriction by alert rules, tier changes and renewal notices are `services::monitor`'s).

pub mod billing;
pub mod requirements;

use serde::{Deserialize, Serialize};

/// An attestation is valid this long after it was made: one year, ms.
pub const ATTESTATION_VALIDITY_MS: u64 = 365 * 24 * 3600 * 1000;
/// Longest screen lock timeout the requirements allow, minutes.
pub const MAX_SCREEN_LOCK_MINUTES: u32 = 15;
/// Labels in 30 days above which a tenant is Enhanced.
pub const ENHANCED_LABELS_30D: u64 = 10_000;
/// Print Stations above which a tenant is Enhanced.
pub const ENHANCED_STATIONS: u64 = 5;
/// Labels in 30 days above which a tenant is Enterprise.
pub const ENTERPRISE_LABELS_30D: u64 = 100_000;
/// Merchants (seller connections) above which a tenant is Enterprise.
pub const ENTERPRISE_MERCHANTS: u64 = 1;
/// The text of a redacted label.
pub const REDACTED_TEXT: &str = "REDACTED: complete the security attestation";

/// What the tenant's integration is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    /// One seller's own application.
    #[default]
    SingleApp,
    /// A provider serving several sellers.
    SaasProvider,
}

/// The state of a tenant's subscription.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionState {
    /// Never subscribed.
    #[default]
    None,
    /// Paid (or trialing): provisioning and labels allowed.
    Active,
    /// A payment failed.
    PastDue,
    /// Ended.
    Canceled,
}

impl SubscriptionState {
    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionState::None => "none",
            SubscriptionState::Active => "active",
            SubscriptionState::PastDue => "past_due",
            SubscriptionState::Canceled => "canceled",
        }
    }
}

/// The subscription as last set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// State.
    pub state: SubscriptionState,
    /// When it was last set, unix ms (an older billing event never overrides a newer state).
    pub updated_at_ms: u64,
    /// Who set it: a user id, or `billing` for the webhook.
    pub source: String,
}

/// The security checklist questionnaire of the requirements (§8). Every item must hold for
/// the attestation to be complete; the tier's extra items are requirements of their own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Questionnaire {
    /// Print Stations run a supported operating system.
    pub supported_os: bool,
    /// Security updates are applied.
    pub os_updates_applied: bool,
    /// Endpoint protection (anti-malware) runs on every station.
    pub endpoint_protection: bool,
    /// Screen lock timeout, minutes (at most [`MAX_SCREEN_LOCK_MINUTES`]).
    pub screen_lock_minutes: u32,
    /// Wi-Fi uses WPA2 or WPA3.
    pub wifi_wpa2_or_wpa3: bool,
    /// No print-to-file, PDF or XPS drivers are installed.
    pub no_print_to_file_drivers: bool,
    /// Only authorized personnel use the stations.
    pub authorized_personnel_only: bool,
    /// Credentials are kept confidential (no sharing).
    pub credentials_confidential: bool,
    /// Tier Enhanced and above: the security contact's address.
    #[serde(default)]
    pub security_contact: Option<String>,
    /// Tier Enhanced and above: the annual questionnaire was completed.
    #[serde(default)]
    pub annual_questionnaire: bool,
    /// Tier Enterprise: `soc2`, `iso27001` or `detailed_questionnaire` evidence supplied.
    #[serde(default)]
    pub certification: Option<Certification>,
}

/// Evidence of an Enterprise tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Certification {
    /// A SOC 2 report.
    Soc2,
    /// An ISO 27001 certificate.
    Iso27001,
    /// The detailed security questionnaire.
    DetailedQuestionnaire,
}

impl Questionnaire {
    /// The base checklist items that do not hold (empty when complete).
    pub fn missing(&self) -> Vec<&'static str> {
        let items = [
            (self.supported_os, "supported_os"),
            (self.os_updates_applied, "os_updates_applied"),
            (self.endpoint_protection, "endpoint_protection"),
            (
                self.screen_lock_minutes > 0 && self.screen_lock_minutes <= MAX_SCREEN_LOCK_MINUTES,
                "screen_lock_minutes",
            ),
            (self.wifi_wpa2_or_wpa3, "wifi_wpa2_or_wpa3"),
            (self.no_print_to_file_drivers, "no_print_to_file_drivers"),
            (self.authorized_personnel_only, "authorized_personnel_only"),
            (self.credentials_confidential, "credentials_confidential"),
        ];
        items
            .into_iter()
            .filter(|(ok, _)| !ok)
            .map(|(_, name)| name)
            .collect()
    }
}

/// A tenant's attestation as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attestation {
    /// The answers.
    pub answers: Questionnaire,
    /// When, unix ms.
    pub attested_at_ms: u64,
    /// Who (user id).
    pub attested_by: String,
}

/// Where a tenant's attestation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttestationState {
    /// None was made.
    Missing,
    /// Made, but some item does not hold.
    Incomplete,
    /// Complete until the given time, unix ms.
    Complete {
        /// Expiry, unix ms.
        expires_at_ms: u64,
    },
    /// Complete once, older than a year.
    Expired {
        /// When it expired, unix ms.
        expired_at_ms: u64,
    },
}

impl AttestationState {
    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            AttestationState::Missing => "missing",
            AttestationState::Incomplete => "incomplete",
            AttestationState::Complete { .. } => "complete",
            AttestationState::Expired { .. } => "expired",
        }
    }
}

/// The state of `attestation` at `now_ms`.
pub fn attestation_state(attestation: Option<&Attestation>, now_ms: u64) -> AttestationState {
    let Some(a) = attestation else {
        return AttestationState::Missing;
    };
    if !a.answers.missing().is_empty() {
        return AttestationState::Incomplete;
    }
    let expires_at_ms = a.attested_at_ms.saturating_add(ATTESTATION_VALIDITY_MS);
    if now_ms >= expires_at_ms {
        AttestationState::Expired {
            expired_at_ms: expires_at_ms,
        }
    } else {
        AttestationState::Complete { expires_at_ms }
    }
}

/// An incident suspension, set and cleared by a platform admin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspension {
    /// Why, shown to the tenant (no PII: an incident reference or a short reason).
    pub reason: String,
    /// When, unix ms.
    pub at_ms: u64,
    /// Who (user id).
    pub by: String,
}

/// Acceptance of the terms of service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TermsAcceptance {
    /// The version accepted.
    pub version: String,
    /// When, unix ms.
    pub at_ms: u64,
    /// Who (user id).
    pub by: String,
}

/// Why a gate refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateRefusal {
    /// The tenant is suspended, with the reason given.
    Suspended(String),
    /// The subscription is not active.
    SubscriptionInactive(SubscriptionState),
    /// A requirement expired or is overdue (see [`requirements::restriction`]), with the
    /// reason; labels only.
    Restricted(String),
}

/// How a tenant's labels are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelMode {
    /// As submitted.
    Full,
    /// Replaced by [`redacted_zpl`]: the attestation is missing or incomplete.
    Redacted,
}

/// Whether a tenant may print at `now_ms`, and how: refused when suspended, without an
/// active subscription, or when a requirement expired or is overdue (`tier` holds the
/// deadlines); redacted until the attestation is complete.
///
/// # Errors
/// [`GateRefusal`].
pub fn label_gate(
    suspension: Option<&Suspension>,
    subscription: SubscriptionState,
    attestation: Option<&Attestation>,
    tier: &requirements::TierRecord,
    now_ms: u64,
) -> Result<LabelMode, GateRefusal> {
    provisioning_gate(suspension, subscription)?;
    if let Some((_, reason)) =
        requirements::restriction(&requirements::evaluate(attestation, tier, now_ms))
    {
        return Err(GateRefusal::Restricted(reason));
    }
    match attestation_state(attestation, now_ms) {
        AttestationState::Complete { .. } => Ok(LabelMode::Full),
        _ => Ok(LabelMode::Redacted),
    }
}

/// Whether a tenant may provision devices (enrollment tokens, enrollments).
///
/// # Errors
/// [`GateRefusal`] when it is suspended or its subscription is not active.
pub fn provisioning_gate(
    suspension: Option<&Suspension>,
    subscription: SubscriptionState,
) -> Result<(), GateRefusal> {
    if let Some(s) = suspension {
        return Err(GateRefusal::Suspended(s.reason.clone()));
    }
    if subscription != SubscriptionState::Active {
        return Err(GateRefusal::SubscriptionInactive(subscription));
    }
    Ok(())
}

/// Whether `s` may go on a redacted label: 1 to 64 characters of `[A-Za-z0-9 ._-]` (nothing
/// that could end a ZPL field or start a command).
pub fn valid_label_field(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '.' | '_' | '-'))
}

/// The redacted ZPL label: [`REDACTED_TEXT`] plus the order id, carrier and tracking number
/// when given (callers check them with [`valid_label_field`]; others are left out).
pub fn redacted_zpl(
    order_id: Option<&str>,
    carrier: Option<&str>,
    tracking: Option<&str>,
) -> Vec<u8> {
    let mut zpl = String::from("^XA^CI28\n^FO40,40^A0N,34,34^FD");
    zpl.push_str(REDACTED_TEXT);
    zpl.push_str("^FS\n");
    let mut y = 110;
    for (name, value) in [
        ("Order", order_id),
        ("Carrier", carrier),
        ("Tracking", tracking),
    ] {
        if let Some(v) = value.filter(|v| valid_label_field(v)) {
            zpl.push_str(&format!("^FO40,{y}^A0N,30,30^FD{name}: {v}^FS\n"));
            y += 50;
        }
    }
    zpl.push_str("^XZ\n");
    zpl.into_bytes()
}

/// The tenant tiers of the requirements (§3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Below every threshold.
    #[default]
    Standard,
    /// Above 10,000 labels in 30 days or more than 5 Print Stations.
    Enhanced,
    /// Above 100,000 labels in 30 days or more than one merchant.
    Enterprise,
}

impl Tier {
    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Standard => "standard",
            Tier::Enhanced => "enhanced",
            Tier::Enterprise => "enterprise",
        }
    }
}

/// The tier of a tenant with `labels_30d` labels in the last 30 days, `stations` enrolled
/// (not revoked) Print Stations and `merchants` seller connections.
pub fn tier_for(labels_30d: u64, stations: u64, merchants: u64) -> Tier {
    if labels_30d > ENTERPRISE_LABELS_30D || merchants > ENTERPRISE_MERCHANTS {
        Tier::Enterprise
    } else if labels_30d > ENHANCED_LABELS_30D || stations > ENHANCED_STATIONS {
        Tier::Enhanced
    } else {
        Tier::Standard
    }
}

/// A questionnaire whose base items all hold (for tests).
#[cfg(test)]
pub(crate) fn complete_answers() -> Questionnaire {
    Questionnaire {
        supported_os: true,
        os_updates_applied: true,
        endpoint_protection: true,
        screen_lock_minutes: 15,
        wifi_wpa2_or_wpa3: true,
        no_print_to_file_drivers: true,
        authorized_personnel_only: true,
        credentials_confidential: true,
        ..Questionnaire::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete() -> Questionnaire {
        complete_answers()
    }

    #[test]
    fn attestation_completeness_and_expiry() {
        assert!(complete().missing().is_empty());
        let mut q = complete();
        q.screen_lock_minutes = 16;
        q.wifi_wpa2_or_wpa3 = false;
        assert_eq!(q.missing(), ["screen_lock_minutes", "wifi_wpa2_or_wpa3"]);

        let a = Attestation {
            answers: complete(),
            attested_at_ms: 1000,
            attested_by: "usr-1".into(),
        };
        assert_eq!(attestation_state(None, 5), AttestationState::Missing);
        assert_eq!(
            attestation_state(Some(&a), 2000),
            AttestationState::Complete {
                expires_at_ms: 1000 + ATTESTATION_VALIDITY_MS
            }
        );
        assert!(matches!(
            attestation_state(Some(&a), 1000 + ATTESTATION_VALIDITY_MS),
            AttestationState::Expired { .. }
        ));
        let partial = Attestation { answers: q, ..a };
        assert_eq!(
            attestation_state(Some(&partial), 2000),
            AttestationState::Incomplete
        );
    }

    #[test]
    fn gates() {
        let a = Attestation {
            answers: complete(),
            attested_at_ms: 0,
            attested_by: "usr-1".into(),
        };
        let active = SubscriptionState::Active;
        let std = requirements::TierRecord::default();
        assert_eq!(
            label_gate(None, active, Some(&a), &std, 1),
            Ok(LabelMode::Full)
        );
        assert_eq!(
            label_gate(None, active, None, &std, 1),
            Ok(LabelMode::Redacted)
        );
        assert!(
            matches!(
                label_gate(None, active, Some(&a), &std, ATTESTATION_VALIDITY_MS),
                Err(GateRefusal::Restricted(_))
            ),
            "a year later, labels are refused until it is renewed"
        );
        assert_eq!(
            label_gate(None, SubscriptionState::PastDue, Some(&a), &std, 1),
            Err(GateRefusal::SubscriptionInactive(
                SubscriptionState::PastDue
            ))
        );
        let s = Suspension {
            reason: "incident INC-7".into(),
            at_ms: 1,
            by: "usr-0".into(),
        };
        assert_eq!(
            label_gate(Some(&s), active, Some(&a), &std, 1),
            Err(GateRefusal::Suspended("incident INC-7".into()))
        );
        assert_eq!(provisioning_gate(None, active), Ok(()));
        assert_eq!(
            provisioning_gate(None, SubscriptionState::None),
            Err(GateRefusal::SubscriptionInactive(SubscriptionState::None))
        );
    }

    #[test]
    fn redacted_label_is_plain_zpl_without_injection() {
        let z = String::from_utf8(redacted_zpl(Some("113-1234567-1234567"), Some("UPS"), None))
            .expect("utf8");
        assert!(z.starts_with("^XA") && z.trim_end().ends_with("^XZ"));
        assert!(z.contains(REDACTED_TEXT) && z.contains("Order: 113-1234567-1234567"));
        assert!(z.contains("Carrier: UPS") && !z.contains("Tracking"));
        let z = String::from_utf8(redacted_zpl(Some("1^XZ^XA^FDx"), None, None)).expect("utf8");
        assert!(!z.contains("Order"), "an unsafe field is left out");
        assert!(!valid_label_field("") && !valid_label_field(&"a".repeat(65)));
    }

    #[test]
    fn tiers_from_usage() {
        assert_eq!(tier_for(0, 0, 1), Tier::Standard);
        assert_eq!(tier_for(10_000, 5, 1), Tier::Standard);
        assert_eq!(tier_for(10_001, 0, 1), Tier::Enhanced);
        assert_eq!(tier_for(0, 6, 1), Tier::Enhanced);
        assert_eq!(tier_for(100_001, 0, 1), Tier::Enterprise);
        assert_eq!(tier_for(0, 0, 2), Tier::Enterprise);
    }
}
