//! SP-API connections: `POST …/spapi-connections` stores one (secrets encrypted under the
//! tenant key, endpoint overrides checked), `GET` lists them without secrets.

use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::info;

use super::token_like;
use crate::api::auth::Principal;
use crate::api::error::ApiError;
use crate::api::{parse_json, ApiState, Reply};
use crate::core::crypto::random_id;
use crate::services::spapi::auth::SecretString;
use crate::services::spapi::ConnectionSecrets;
use crate::store::{SpapiConnectionRecord, SpapiRegion};

/// Most connections a tenant may have.
const MAX_CONNECTIONS: usize = 64;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::api) struct NewConnection {
    region: SpapiRegion,
    marketplace_id: String,
    client_id: String,
    client_secret: SecretString,
    refresh_token: SecretString,
    #[serde(default)]
    sandbox: bool,
    endpoint: Option<String>,
    lwa_endpoint: Option<String>,
}

/// Checks an https URL override: scheme https, a host, no user info, query or fragment;
/// `base` also refuses a path (the SP-API paths are appended to it).
fn check_https(url: &str, base: bool) -> Result<(), &'static str> {
    if url.len() > 512 {
        return Err("is too long");
    }
    let uri: hyper::Uri = url.parse().map_err(|_| "is not a URL")?;
    if uri.scheme_str() != Some("https") {
        return Err("must be https");
    }
    let authority = uri.authority().ok_or("has no host")?;
    if authority.as_str().contains('@') || authority.host().is_empty() {
        return Err("must not carry credentials");
    }
    if uri.query().is_some() || url.contains('#') {
        return Err("must not carry a query or fragment");
    }
    if base && !matches!(uri.path(), "" | "/") {
        return Err("must not carry a path");
    }
    Ok(())
}

fn connection_view(c: &SpapiConnectionRecord) -> Value {
    json!({
        "id": c.id,
        "region": c.region.as_str(),
        "marketplace_id": c.marketplace_id,
        "client_id": c.client_id,
        "sandbox": c.sandbox,
        "endpoint": c.endpoint,
        "lwa_endpoint": c.lwa_endpoint,
        "shipping_business_id": crate::services::spapi::business_id(c.region, &c.marketplace_id),
        "created_at": c.created_at_ms,
    })
}

pub(in crate::api) fn create_connection(
    state: &ApiState,
    who: &Principal,
    tenant: &str,
    body: &[u8],
    now: u64,
) -> Result<Reply, ApiError> {
    let req: NewConnection = parse_json(body)?;
    let mut problems = Vec::new();
    if !(1..=32).contains(&req.marketplace_id.len())
        || !req
            .marketplace_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric())
    {
        problems.push("marketplace_id must be 1 to 32 letters or digits".to_owned());
    }
    if !token_like(&req.client_id, 256) {
        problems.push("client_id must be 1 to 256 printable characters".to_owned());
    }
    if !token_like(&req.client_secret.0, 2048) {
        problems.push("client_secret must be 1 to 2048 printable characters".to_owned());
    }
    if !token_like(&req.refresh_token.0, 4096) {
        problems.push("refresh_token must be 1 to 4096 printable characters".to_owned());
    }
    if (req.endpoint.is_some() || req.lwa_endpoint.is_some())
        && !state.spapi.allows_endpoint_override()
    {
        problems.push(
            "endpoint overrides are turned off on this coordinator \
             (serve --allow-spapi-endpoint-override)"
                .to_owned(),
        );
    }
    if let Some(e) = req.endpoint.as_deref() {
        if let Err(why) = check_https(e, true) {
            problems.push(format!("endpoint {why}"));
        }
    }
    if let Some(e) = req.lwa_endpoint.as_deref() {
        if let Err(why) = check_https(e, false) {
            problems.push(format!("lwa_endpoint {why}"));
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::unprocessable(problems.join("; ")));
    }
    if state.store.spapi_connections(tenant)?.len() >= MAX_CONNECTIONS {
        return Err(ApiError::conflict(format!(
            "a tenant may have at most {MAX_CONNECTIONS} spapi connections"
        )));
    }
    let rec = SpapiConnectionRecord {
        id: random_id("spc"),
        tenant_id: tenant.to_owned(),
        region: req.region,
        marketplace_id: req.marketplace_id.clone(),
        client_id: req.client_id.clone(),
        sandbox: req.sandbox,
        endpoint: req
            .endpoint
            .as_deref()
            .map(|e| e.trim_end_matches('/').to_owned()),
        lwa_endpoint: req.lwa_endpoint.clone(),
        created_at_ms: now,
    };
    let secrets = ConnectionSecrets {
        client_secret: req.client_secret.clone(),
        refresh_token: req.refresh_token.clone(),
    };
    state
        .store
        .create_spapi_connection(&rec, &secrets.to_json())?;
    state.audit(
        Some(tenant),
        &who.user_id,
        "spapi.connection_created",
        Some(&rec.id),
        &format!("ok region={}", rec.region.as_str()),
        now,
    );
    info!(tenant = %tenant, connection = %rec.id, region = rec.region.as_str(), sandbox = rec.sandbox, "spapi connection created");
    Ok(Reply::json(StatusCode::CREATED, json!({"id": rec.id})))
}

pub(in crate::api) fn list_connections(state: &ApiState, tenant: &str) -> Result<Reply, ApiError> {
    let list: Vec<Value> = state
        .store
        .spapi_connections(tenant)?
        .iter()
        .map(connection_view)
        .collect();
    Ok(Reply::ok(Value::Array(list)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_overrides_must_be_plain_https() {
        assert!(check_https("https://127.0.0.1:8443", true).is_ok());
        assert!(check_https("https://sellingpartnerapi-na.amazon.com/", true).is_ok());
        assert_eq!(check_https("http://x.test", true), Err("must be https"));
        assert!(check_https("https://u:p@x.test", true).is_err());
        assert!(check_https("https://x.test/p", true).is_err());
        assert!(check_https("https://x.test/auth/o2/token", false).is_ok());
        assert!(check_https("https://x.test/t?x=1", false).is_err());
        assert!(check_https("not a url", false).is_err());
    }
}
