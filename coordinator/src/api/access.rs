//! API keys for integrations and the per-tenant IP allowlist.
//!
//! - `POST /v1/tenants/{t}/api-keys` `{"name","roles":[…]}` → 201 `{"id","key",…}`: the key
//!   (`spk_` + 43 base64url characters, 256 random bits) is shown once and stored as its
//!   sha256. `GET` lists keys without secrets; `DELETE …/api-keys/{id}` revokes one (200).
//!   `Authorization: Bearer spk_…` then acts like a session of a user with those roles; the
//!   key's id is the actor in the audit log. Keys follow the users' granting rules (an admin
//!   cannot mint `pii_reader` keys) and never hold `owner`. A key acts for its creator: it
//!   stops when the creator is disabled and keeps only the roles the creator may still grant.
//!   `"expires_in_days"` (1 to
//!   [`MAX_KEY_DAYS`]) makes a key stop by itself; the list shows each key's expiry and its
//!   last use (to the minute, so a busy integration does not write on every request).
//! - `PUT /v1/tenants/{t}/ip-allowlist` `{"cidrs":[…]}` (owner) sets the networks the tenant's
//!   users and keys may call the API from; `GET` shows it. An empty list allows every
//!   address. It is checked on every authenticated request of a tenant principal against the
//!   TCP peer address ([`PeerAddr`]; forwarded-for headers are not trusted), so it cannot be
//!   bypassed route by route; platform admins are not tenant principals and are exempt, so
//!   they can repair a list that locks a tenant out. A list that would lock out the caller's
//!   own address is refused (422). Logins and password changes of the tenant's users are
//!   checked too ([`check_ip_of`], before the password is verified: a caller outside the list
//!   learns nothing about the password).

use std::net::{IpAddr, SocketAddr};

use hyper::header::AUTHORIZATION;
use hyper::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::{info, warn};

use super::auth::{token_hash, Principal};
use super::error::ApiError;
use super::{parse_json, ApiState, Reply};
use crate::core::accounts::Role;
use crate::core::crypto::random_id;
use crate::store::ApiKeyRecord;

/// The prefix of API keys (sessions tokens never have it).
pub const API_KEY_PREFIX: &str = "spk_";
/// Most API keys per tenant.
const MAX_KEYS: usize = 100;
/// Longest API key lifetime that can be asked for, days.
pub const MAX_KEY_DAYS: u32 = 730;
/// Last use is recorded at most this often per key, ms.
const LAST_USE_GRANULARITY_MS: u64 = 60_000;
const DAY_MS: u64 = 24 * 3600 * 1000;
/// Most allowlist entries per tenant.
const MAX_CIDRS: usize = 256;

/// The TCP peer of the connection a request came on; `serve` puts it in the request's
/// extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// An IP network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    len: u8,
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl Cidr {
    /// Parses `a.b.c.d/n`, `x::y/n`, or a bare address (a single host).
    pub fn parse(s: &str) -> Option<Cidr> {
        let (ip, len) = match s.split_once('/') {
            Some((ip, len)) => (ip, Some(len)),
            None => (s, None),
        };
        let addr = canonical(ip.trim().parse::<IpAddr>().ok()?);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len {
            Some(l) if l.chars().all(|c| c.is_ascii_digit()) => l.parse::<u8>().ok()?,
            Some(_) => return None,
            None => max,
        };
        (len <= max).then_some(Cidr { addr, len })
    }

    /// Whether `ip` is in the network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let bits = |a: IpAddr| -> u128 {
            match a {
                IpAddr::V4(v4) => u128::from(u32::from(v4)) << 96,
                IpAddr::V6(v6) => u128::from(v6),
            }
        };
        let ip = canonical(ip);
        if ip.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        if self.len == 0 {
            return true;
        }
        let mask = u128::MAX << (128 - u32::from(self.len));
        bits(ip) & mask == bits(self.addr) & mask
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Whether `ip` may call the API under `list` (empty: every address; unknown address: only
/// with an empty list).
pub fn allowed(list: &[String], ip: Option<IpAddr>) -> bool {
    list.is_empty()
        || ip.is_some_and(|ip| {
            list.iter()
                .filter_map(|c| Cidr::parse(c))
                .any(|c| c.contains(ip))
        })
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
    if token.starts_with(API_KEY_PREFIX) {
        return authenticate_key(state, token, now_ms);
    }
    let session = state
        .store
        .session(&token_hash(token), now_ms)?
        .ok_or_else(|| ApiError::unauthenticated("the token is unknown or expired"))?;
    let user = state
        .store
        .user(&session.user_id)?
        .ok_or_else(|| ApiError::unauthenticated("the token is unknown or expired"))?;
    if session.revoked_for(&user) {
        return Err(ApiError::unauthenticated(
            "the session was revoked (password changed or account disabled): log in again",
        ));
    }
    Ok(Principal {
        user_id: user.id,
        platform_admin: user.platform_admin,
        tenant_id: user.tenant_id,
        roles: user.roles,
    })
}

/// The principal of an API key, or 401.
pub(super) fn authenticate_key(
    state: &ApiState,
    token: &str,
    now: u64,
) -> Result<Principal, ApiError> {
    let unknown = || ApiError::unauthenticated("the token is unknown or expired");
    let hash = token_hash(token);
    let key = state.store.api_key_by_hash(&hash)?.ok_or_else(unknown)?;
    if let Some(at) = key.expires_at_ms.filter(|&at| now >= at) {
        return Err(ApiError::unauthenticated(format!(
            "the API key expired on {}: create a new one",
            crate::core::compliance::requirements::date(at)
        )));
    }
    if state.store.tenant(&key.tenant_id)?.is_none() {
        return Err(unknown());
    }
    // A key acts for its creator: it stops when the creator is disabled, and keeps only the
    // roles its creator may still grant (a demoted admin's keys lose what it lost).
    let mut roles = key.roles;
    if let Some(creator) = state.store.user(&key.created_by)? {
        if creator.disabled {
            return Err(ApiError::unauthenticated(
                "the API key's creator is disabled",
            ));
        }
        let creator = Principal {
            user_id: creator.id,
            platform_admin: creator.platform_admin,
            tenant_id: creator.tenant_id,
            roles: creator.roles,
        };
        roles.retain(|r| super::auth::may_grant(&creator, *r));
        if roles.is_empty() {
            return Err(ApiError::unauthenticated(
                "the API key's creator may no longer grant its roles",
            ));
        }
    }
    if key
        .last_used_at_ms
        .is_none_or(|t| now.saturating_sub(t) >= LAST_USE_GRANULARITY_MS)
    {
        state.store.touch_api_key(&hash, now)?;
    }
    Ok(Principal {
        user_id: key.id,
        platform_admin: false,
        tenant_id: Some(key.tenant_id),
        roles,
    })
}

/// Refuses a tenant principal calling from outside its tenant's allowlist (403
/// `ip_not_allowed`, audited).
pub(super) fn check_ip(
    state: &ApiState,
    who: &Principal,
    peer: Option<IpAddr>,
    now: u64,
) -> Result<(), ApiError> {
    let tenant = who.tenant_id.as_deref().filter(|_| !who.platform_admin);
    check_ip_of(state, tenant, &who.user_id, "access.refused", peer, now)
}

/// Refuses `actor` of `tenant` (none: a platform admin, exempt) calling from outside the
/// tenant's allowlist (403 `ip_not_allowed`, audited under `action`).
pub(super) fn check_ip_of(
    state: &ApiState,
    tenant: Option<&str>,
    actor: &str,
    action: &str,
    peer: Option<IpAddr>,
    now: u64,
) -> Result<(), ApiError> {
    let Some(tenant) = tenant else {
        return Ok(());
    };
    let list = state.store.ip_allowlist(tenant)?;
    if allowed(&list, peer) {
        return Ok(());
    }
    state.audit(
        Some(tenant),
        actor,
        action,
        None,
        "refused: ip not allowed",
        now,
    );
    warn!(tenant = %tenant, actor = %actor, peer = ?peer, "request from outside the ip allowlist refused");
    Err(ApiError::refused(
        "ip_not_allowed",
        "this address is not in the tenant's IP allowlist",
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewKey {
    name: String,
    roles: Vec<Role>,
    #[serde(default)]
    expires_in_days: Option<u32>,
}

fn key_json(k: &ApiKeyRecord, now: u64) -> Value {
    json!({
        "id": k.id,
        "name": k.name,
        "roles": k.roles,
        "created_at": k.created_at_ms,
        "created_by": k.created_by,
        "expires_at": k.expires_at_ms,
        "expired": k.expires_at_ms.is_some_and(|at| now >= at),
        "last_used_at": k.last_used_at_ms,
    })
}

pub(super) fn create_key(
    state: &ApiState,
    who: &Principal,
    tenant: &str,
    body: &[u8],
    now: u64,
) -> Result<Reply, ApiError> {
    let req: NewKey = parse_json(body)?;
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::unprocessable(
            "name must be 1 to 100 characters without control characters",
        ));
    }
    if req.roles.is_empty() {
        return Err(ApiError::unprocessable(
            "an API key needs at least one role",
        ));
    }
    if req.roles.contains(&Role::Owner) {
        return Err(ApiError::unprocessable(
            "an API key cannot hold the owner role",
        ));
    }
    if let Some(r) = req.roles.iter().find(|r| !super::auth::may_grant(who, **r)) {
        return Err(ApiError::refused(
            "forbidden",
            format!("you may not grant the {} role", r.as_str()),
        ));
    }
    if req
        .expires_in_days
        .is_some_and(|d| !(1..=MAX_KEY_DAYS).contains(&d))
    {
        return Err(ApiError::unprocessable(format!(
            "expires_in_days must be 1 to {MAX_KEY_DAYS}"
        )));
    }
    if state.store.api_keys(tenant)?.len() >= MAX_KEYS {
        return Err(ApiError::conflict(format!(
            "the tenant has {MAX_KEYS} API keys: revoke one first"
        )));
    }
    let mut roles = req.roles.clone();
    roles.sort();
    roles.dedup();
    let secret = crate::core::crypto::random_secret(API_KEY_PREFIX);
    let rec = ApiKeyRecord {
        id: random_id("key"),
        tenant_id: tenant.to_owned(),
        name: name.to_owned(),
        roles,
        created_at_ms: now,
        created_by: who.user_id.clone(),
        expires_at_ms: req
            .expires_in_days
            .map(|d| now.saturating_add(u64::from(d) * DAY_MS)),
        last_used_at_ms: None,
    };
    state.store.create_api_key(&token_hash(&secret), &rec)?;
    let granted: Vec<&str> = rec.roles.iter().map(|r| r.as_str()).collect();
    state.audit(
        Some(tenant),
        &who.user_id,
        "api_key.created",
        Some(&rec.id),
        &format!(
            "ok roles={} expires_at={}",
            granted.join(","),
            rec.expires_at_ms
                .map_or("never".to_owned(), |t| t.to_string())
        ),
        now,
    );
    info!(tenant = %tenant, key = %rec.id, "api key created");
    let mut v = key_json(&rec, now);
    v["key"] = json!(secret.as_str());
    Ok(Reply::json(StatusCode::CREATED, v))
}

pub(super) fn list_keys(state: &ApiState, tenant: &str, now: u64) -> Result<Reply, ApiError> {
    let list: Vec<Value> = state
        .store
        .api_keys(tenant)?
        .iter()
        .map(|k| key_json(k, now))
        .collect();
    Ok(Reply::ok(Value::Array(list)))
}

pub(super) fn revoke_key(
    state: &ApiState,
    who: &Principal,
    tenant: &str,
    id: &str,
    now: u64,
) -> Result<Reply, ApiError> {
    let Some(rec) = state.store.revoke_api_key(tenant, id)? else {
        return Err(ApiError::not_found("api key"));
    };
    state.audit(
        Some(tenant),
        &who.user_id,
        "api_key.revoked",
        Some(&rec.id),
        "ok",
        now,
    );
    info!(tenant = %tenant, key = %rec.id, "api key revoked");
    Ok(Reply::ok(json!({"id": rec.id, "revoked": true})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Allowlist {
    cidrs: Vec<String>,
}

pub(super) fn get_allowlist(state: &ApiState, tenant: &str) -> Result<Reply, ApiError> {
    Ok(Reply::ok(
        json!({"cidrs": state.store.ip_allowlist(tenant)?}),
    ))
}

pub(super) fn put_allowlist(
    state: &ApiState,
    who: &Principal,
    tenant: &str,
    body: &[u8],
    peer: Option<IpAddr>,
    now: u64,
) -> Result<Reply, ApiError> {
    let req: Allowlist = parse_json(body)?;
    if req.cidrs.len() > MAX_CIDRS {
        return Err(ApiError::unprocessable(format!(
            "at most {MAX_CIDRS} networks"
        )));
    }
    let mut cidrs = Vec::with_capacity(req.cidrs.len());
    for (i, c) in req.cidrs.iter().enumerate() {
        let Some(parsed) = Cidr::parse(c) else {
            return Err(ApiError::unprocessable(format!(
                "cidrs[{i}] is not an IP network (a.b.c.d/n or x::y/n)"
            )));
        };
        cidrs.push(parsed.to_string());
    }
    cidrs.sort();
    cidrs.dedup();
    if !who.platform_admin && !allowed(&cidrs, peer) {
        return Err(ApiError::unprocessable(
            "the list does not include the address you are calling from: it would lock you out",
        ));
    }
    state.store.set_ip_allowlist(tenant, &cidrs)?;
    state.audit(
        Some(tenant),
        &who.user_id,
        "ip_allowlist.updated",
        Some(tenant),
        &format!("ok networks={}", cidrs.len()),
        now,
    );
    info!(tenant = %tenant, networks = cidrs.len(), "ip allowlist updated");
    Ok(Reply::ok(json!({"cidrs": cidrs})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let c = Cidr::parse("10.1.0.0/16").expect("v4");
        assert!(c.contains(ip("10.1.200.3")));
        assert!(!c.contains(ip("10.2.0.1")));
        assert!(c.contains(ip("::ffff:10.1.0.9")), "v4-mapped v6 peers");
        assert!(!c.contains(ip("2001:db8::1")));
        let h = Cidr::parse("192.0.2.7").expect("host");
        assert_eq!(h.to_string(), "192.0.2.7/32");
        assert!(h.contains(ip("192.0.2.7")) && !h.contains(ip("192.0.2.8")));
        let v6 = Cidr::parse("2001:db8::/32").expect("v6");
        assert!(v6.contains(ip("2001:db8:ffff::1")) && !v6.contains(ip("2001:db9::1")));
        assert!(Cidr::parse("0.0.0.0/0")
            .expect("all")
            .contains(ip("8.8.8.8")));
        for bad in [
            "10.0.0.0/33",
            "10.0.0.0/-1",
            "10.0.0/8",
            "host/8",
            "::/129",
            "1.2.3.4/+8",
        ] {
            assert_eq!(Cidr::parse(bad), None, "{bad}");
        }
        assert!(allowed(&[], None));
        assert!(!allowed(&["10.0.0.0/8".into()], None));
        assert!(allowed(&["10.0.0.0/8".into()], Some(ip("10.9.9.9"))));
    }
}
