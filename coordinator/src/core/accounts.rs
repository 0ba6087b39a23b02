//! Account rules of the admin API (Amazon DPP: unique ids, password rules, lockout, least
//! privilege), as pure functions of their inputs and an explicit `now`.
//!
//! - [`Role`]: the roles a tenant user can hold; which `api::Action` needs which is
//!   decided in `api::auth::authorize`.
//! - [`check_password`]: at least [`MIN_PASSWORD_LEN`] characters with upper and lower case,
//!   a digit and a special character; not a common password (an embedded list of the worst few
//!   hundred, also matched on the password's letters alone, so `Password1!` is refused); not
//!   containing the company (tenant) name or the email's local part.
//! - [`password_expired`]: passwords expire [`PASSWORD_MAX_AGE_MS`] after they were set.
//! - [`reserve_attempt`] / [`attempt_failed`] / [`locked_until`]: the account-wide lockout,
//!   [`ACCOUNT_LOCKOUT_THRESHOLD`] failed logins from any addresses within
//!   [`LOCKOUT_WINDOW_MS`] lock the account for [`LOCKOUT_MS`]; an attempt is counted before
//!   its password is checked. The per-address lockout ([`LOCKOUT_THRESHOLD`]) and the rule as
//!   a whole are in `api::limits`.
//!
//! What it does not do: hash passwords ([`super::crypto`]), store users (`store`) or
//! answer HTTP (`api::users`, `api::sessions`).

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 8;
/// Longest password accepted (bounds the argon2 work an attacker can ask for).
pub const MAX_PASSWORD_LEN: usize = 256;
/// A password expires this long after it was set: 90 days, ms.
pub const PASSWORD_MAX_AGE_MS: u64 = 90 * 24 * 3600 * 1000;
/// Failed logins of one address on one account that lock the account for that address
/// (counted in memory by `api::limits::LoginGuard`).
pub const LOCKOUT_THRESHOLD: usize = 5;
/// Failed logins from any addresses that lock the account for every address (counted on
/// the user record): four times the per-address threshold, so one address alone can never
/// lock an owner out.
pub const ACCOUNT_LOCKOUT_THRESHOLD: usize = 4 * LOCKOUT_THRESHOLD;
/// The window in which failures count, ms (15 minutes).
pub const LOCKOUT_WINDOW_MS: u64 = 15 * 60 * 1000;
/// How long a lockout lasts, ms (15 minutes).
pub const LOCKOUT_MS: u64 = 15 * 60 * 1000;

/// A role of a tenant user. Roles add up; none implies another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Manages the tenant itself (attestation, owners) plus everything an admin may.
    Owner,
    /// Users, sites, enrollment tokens, agents, printers, revocation.
    Admin,
    /// Prints labels and sees jobs.
    Operator,
    /// Reads the audit log and the compliance state.
    Auditor,
    /// The only role that may reprint a label or read a shipment's details (PII).
    PiiReader,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 5] = [
        Role::Owner,
        Role::Admin,
        Role::Operator,
        Role::Auditor,
        Role::PiiReader,
    ];

    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Auditor => "auditor",
            Role::PiiReader => "pii_reader",
        }
    }
}

/// Why a password was refused. Messages never echo the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// Shorter than [`MIN_PASSWORD_LEN`] or longer than [`MAX_PASSWORD_LEN`] characters.
    #[error("the password must be {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} characters")]
    Length,
    /// Missing a character class.
    #[error(
        "the password must contain an upper-case letter, a lower-case letter, a digit and a \
         special character"
    )]
    Composition,
    /// On the list of common passwords.
    #[error("the password is too common")]
    Common,
    /// Contains the company name or the user's email name.
    #[error("the password must not contain the company name or the email name")]
    Personal,
    /// The new password is the current one.
    #[error("the new password must differ from the current one")]
    Reused,
}

/// The worst passwords (lowercase): refused as they are, and as the letters of a password
/// (so decorating one with digits and symbols does not help).
const COMMON: &str = include_str!("accounts/common_passwords.txt");

fn is_common(password: &str) -> bool {
    let lower = password.to_lowercase();
    let letters: String = lower.chars().filter(|c| c.is_alphabetic()).collect();
    // Leetspeak the common substitutions back, so `P@ssw0rd!` is seen as `password`; digits
    // and symbols around the word are decoration, not substitutions.
    let core = lower.trim_matches(|c: char| !c.is_alphabetic() && c != '@' && c != '$');
    let unleet: String = core
        .chars()
        .filter_map(|c| match c {
            '@' | '4' => Some('a'),
            '0' => Some('o'),
            '1' => Some('i'),
            '3' => Some('e'),
            '$' | '5' => Some('s'),
            '7' => Some('t'),
            c if c.is_alphabetic() => Some(c),
            _ => None,
        })
        .collect();
    COMMON
        .lines()
        .map(str::trim)
        .filter(|w| !w.is_empty() && !w.starts_with('#'))
        .any(|w| w == lower || w == letters || w == unleet)
}

/// Folds a name to its lowercase letters and digits, for containment checks.
fn folded(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Checks a new password against the rules. `personal` holds the names it must not contain
/// (company name, email local part); each is folded (letters and digits, lowercase) and
/// words shorter than 4 are ignored, so short common words do not refuse every password.
///
/// # Errors
/// The first [`PasswordError`] found.
pub fn check_password(password: &str, personal: &[&str]) -> Result<(), PasswordError> {
    let n = password.chars().count();
    if !(MIN_PASSWORD_LEN..=MAX_PASSWORD_LEN).contains(&n) {
        return Err(PasswordError::Length);
    }
    let upper = password.chars().any(char::is_uppercase);
    let lower = password.chars().any(char::is_lowercase);
    let digit = password.chars().any(|c| c.is_ascii_digit());
    let special = password
        .chars()
        .any(|c| !c.is_alphanumeric() && !c.is_control());
    if !(upper && lower && digit && special) {
        return Err(PasswordError::Composition);
    }
    if is_common(password) {
        return Err(PasswordError::Common);
    }
    let pw = folded(password);
    for name in personal {
        // The whole name, and each of its words.
        let whole = folded(name);
        let words = name.split(|c: char| !c.is_alphanumeric()).map(folded);
        if std::iter::once(whole)
            .chain(words)
            .any(|w| w.chars().count() >= 4 && pw.contains(&w))
        {
            return Err(PasswordError::Personal);
        }
    }
    Ok(())
}

/// Whether a password set at `changed_at_ms` has expired at `now_ms`.
pub fn password_expired(changed_at_ms: u64, now_ms: u64) -> bool {
    now_ms.saturating_sub(changed_at_ms) >= PASSWORD_MAX_AGE_MS
}

fn in_window(t: u64, now_ms: u64) -> bool {
    now_ms.saturating_sub(t) < LOCKOUT_WINDOW_MS && t <= now_ms
}

/// Reserves a login attempt at `now_ms` on an account's record, *before* its password is
/// checked: the attempt is counted in `failures` (timestamps, ms; those older than the window
/// are dropped) as if it failed, so concurrent guesses cannot all pass the check.
///
/// # Errors
/// The end of the lock when the account is locked at `now_ms` (`locked_until_ms`) or already
/// holds [`ACCOUNT_LOCKOUT_THRESHOLD`] attempts reserved or failed within the window.
pub fn reserve_attempt(
    failures: &mut Vec<u64>,
    locked_until_ms: Option<u64>,
    now_ms: u64,
) -> Result<(), u64> {
    if let Some(until) = locked_until(locked_until_ms, now_ms) {
        return Err(until);
    }
    failures.retain(|&t| in_window(t, now_ms));
    if failures.len() >= ACCOUNT_LOCKOUT_THRESHOLD {
        return Err(now_ms + LOCKOUT_MS);
    }
    failures.push(now_ms);
    Ok(())
}

/// A reserved attempt turned out a failure at `now_ms` (it is already counted). Returns the
/// lockout end when the count reaches [`ACCOUNT_LOCKOUT_THRESHOLD`]; the failures are then
/// cleared, so the count starts again after the lockout.
pub fn attempt_failed(failures: &mut Vec<u64>, now_ms: u64) -> Option<u64> {
    failures.retain(|&t| in_window(t, now_ms));
    if failures.len() >= ACCOUNT_LOCKOUT_THRESHOLD {
        failures.clear();
        Some(now_ms + LOCKOUT_MS)
    } else {
        None
    }
}

/// The end of a lockout still running at `now_ms`, if any.
pub fn locked_until(locked_until_ms: Option<u64>, now_ms: u64) -> Option<u64> {
    locked_until_ms.filter(|&t| t > now_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "Correct-Horse-Battery-9";

    #[test]
    fn password_rules() {
        assert_eq!(check_password(GOOD, &["Acme Fulfilment"]), Ok(()));
        assert_eq!(check_password("Ab1!xyz", &[]), Err(PasswordError::Length));
        assert_eq!(
            check_password(&"Ab1!".repeat(65), &[]),
            Err(PasswordError::Length)
        );
        for weak in ["abcdefg1!", "ABCDEFG1!", "Abcdefgh!", "Abcdefgh1"] {
            assert_eq!(
                check_password(weak, &[]),
                Err(PasswordError::Composition),
                "{weak}"
            );
        }
        for common in [
            "Password1!",
            "P@ssw0rd!",
            "Qwerty123!",
            "Welcome1!",
            "Iloveyou1!",
        ] {
            assert_eq!(
                check_password(common, &[]),
                Err(PasswordError::Common),
                "{common}"
            );
        }
        assert_eq!(
            check_password("Acme-Fulfilment-2024", &["Acme Fulfilment"]),
            Err(PasswordError::Personal)
        );
        assert_eq!(
            check_password("Fulfilment#2024x", &["Acme Fulfilment"]),
            Err(PasswordError::Personal),
            "a word of the company name"
        );
        assert_eq!(
            check_password("Jane.Doe-77-Zz!", &["ACME", "jane.doe"]),
            Err(PasswordError::Personal)
        );
        assert_eq!(check_password("Ab1!Acb-Zxyw", &["Co"]), Ok(()));
    }

    #[test]
    fn expiry_after_ninety_days() {
        let day = 24 * 3600 * 1000;
        assert!(!password_expired(0, 89 * day));
        assert!(password_expired(0, 90 * day));
        assert!(!password_expired(10 * day, 5 * day), "clock going back");
    }

    #[test]
    fn five_failures_in_fifteen_minutes_lock_for_fifteen_minutes() {
        let min = 60 * 1000;
        let mut f = Vec::new();
        for i in 0..ACCOUNT_LOCKOUT_THRESHOLD as u64 - 1 {
            assert_eq!(reserve_attempt(&mut f, None, 1000 + i * 10), Ok(()));
            assert_eq!(attempt_failed(&mut f, 1000 + i * 10), None);
        }
        // The last reservation is taken; a concurrent one is refused before any check.
        assert_eq!(reserve_attempt(&mut f, None, 2000), Ok(()));
        assert_eq!(reserve_attempt(&mut f, None, 2000), Err(2000 + LOCKOUT_MS));
        let until = attempt_failed(&mut f, 2000).expect("locked");
        assert_eq!(until, 2000 + LOCKOUT_MS);
        assert!(f.is_empty());
        assert_eq!(reserve_attempt(&mut f, Some(until), until - 1), Err(until));
        assert_eq!(locked_until(Some(until), until - 1), Some(until));
        assert_eq!(locked_until(Some(until), until), None);

        // Failures spread over more than the window never lock.
        let mut f = Vec::new();
        for i in 0..100 {
            assert_eq!(reserve_attempt(&mut f, None, i * min), Ok(()), "{i}");
            assert_eq!(attempt_failed(&mut f, i * min), None, "{i}");
        }
    }
}
