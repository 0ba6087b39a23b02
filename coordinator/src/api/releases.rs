//! Agent releases and desired versions (remote updates).
//!
//! - `GET /v1/releases` (platform admin): every release with its received artifacts, and the
//!   release public key's id (`null` without one).
//! - `PUT /v1/releases/{version}/manifest` (platform admin): the signed manifest JSON as
//!   `sealprint-release sign` writes it. Refused (422) unless it verifies against the
//!   configured release public key and names `{version}` (422 too when no key is
//!   configured).
//! - `PUT /v1/releases/{version}/artifacts/{artifact}` (platform admin): the artifact's bytes
//!   (`application/octet-stream`, up to [`ARTIFACT_LIMIT`], streamed to a file, never held in
//!   memory): accepted only when its size and SHA-256 match the manifest uploaded first.
//! - `GET`/`PUT /v1/tenants/{tenant}/desired-version` (owner, admin): `{"version": "x.y.z" |
//!   null, "rollout_percent": 0..100, "site": "site id" (optional)}`: the version the tenant's
//!   agents (or one site's) should run, offered to `rollout_percent` of them (chosen by a hash
//!   of the device id, so raising it only adds agents). `null` removes it.
//!
//! Every change is audited (`release.manifest_uploaded`, `release.artifact_uploaded`,
//! `release.refused`, `desired_version.updated`). Artifacts are not PII.

use axum::body::Body;
use http_body_util::BodyExt as _;
use sealprint_protocol::{validate_id, Version};
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};
use tracing::{info, warn};

use super::auth::Principal;
use super::error::ApiError;
use super::{parse_json, ApiState, Reply};
use crate::services::releases::ReleaseServiceError;
use crate::store::DesiredRecord;

/// The route template of the artifact upload, whose body is streamed.
pub(super) const ARTIFACT_ROUTE: &str = "/v1/releases/{version}/artifacts/{artifact}";
/// The largest artifact accepted (the default body limit is far lower).
pub const ARTIFACT_LIMIT: u64 = 512 * 1024 * 1024;

/// Whether `path` (a request's, not a template) is an artifact upload: its body is not
/// capped by the default limit (the manifest's size caps it).
pub(super) fn is_artifact_upload(path: &str) -> bool {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    matches!(parts.as_slice(), ["v1", "releases", _, "artifacts", _])
}

fn platform_admin(who: &Principal) -> Result<(), ApiError> {
    if who.platform_admin {
        Ok(())
    } else {
        Err(ApiError::forbidden())
    }
}

fn refused(
    state: &ApiState,
    who: &Principal,
    object: &str,
    e: &ReleaseServiceError,
    now: u64,
) -> ApiError {
    warn!(release = %object, error = %e, "release upload refused");
    state.audit(
        None,
        &who.user_id,
        "release.refused",
        Some(object),
        &format!("refused {e}"),
        now,
    );
    match e {
        ReleaseServiceError::Unknown => ApiError::not_found("release or artifact"),
        ReleaseServiceError::Io(_) | ReleaseServiceError::Store(_) => ApiError::internal(e),
        ReleaseServiceError::NoKey
        | ReleaseServiceError::TooLarge
        | ReleaseServiceError::Manifest(_)
        | ReleaseServiceError::VersionMismatch => ApiError::unprocessable(e.to_string()),
    }
}

pub(super) fn list(state: &ApiState, who: &Principal) -> Result<Reply, ApiError> {
    platform_admin(who)?;
    let releases: Vec<Value> = state
        .store
        .releases()?
        .into_iter()
        .map(|(version, artifacts)| json!({"version": version, "artifacts": artifacts}))
        .collect();
    Ok(Reply::ok(json!({
        "release_key_id": state.releases.public_key().map(|k| k.id()),
        "releases": releases,
    })))
}

pub(super) fn put_manifest(
    state: &ApiState,
    who: &Principal,
    version: &str,
    body: &[u8],
    now: u64,
) -> Result<Reply, ApiError> {
    platform_admin(who)?;
    let text =
        std::str::from_utf8(body).map_err(|_| ApiError::bad_request("manifest is not UTF-8"))?;
    match state.releases.accept_manifest(&state.store, version, text) {
        Ok(signed) => {
            let names: Vec<&str> = signed
                .manifest
                .artifacts
                .iter()
                .map(|a| a.name.as_str())
                .collect();
            state.audit(
                None,
                &who.user_id,
                "release.manifest_uploaded",
                Some(version),
                "ok",
                now,
            );
            info!(release = %version, artifacts = names.len(), "release manifest accepted");
            Ok(Reply::ok(json!({"version": version, "artifacts": names})))
        }
        Err(e) => Err(refused(state, who, version, &e, now)),
    }
}

pub(super) async fn put_artifact(
    state: &ApiState,
    who: &Principal,
    version: &str,
    name: &str,
    body: Option<Body>,
    now: u64,
) -> Result<Reply, ApiError> {
    platform_admin(who)?;
    let object = format!("{version}/{name}");
    let mut upload = state
        .releases
        .begin_artifact(&state.store, version, name)
        .map_err(|e| refused(state, who, &object, &e, now))?;
    let mut body = body.ok_or_else(|| ApiError::bad_request("no body"))?;
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                upload.abort();
                warn!(error = %e, "artifact body not read");
                return Err(ApiError::bad_request("request body could not be read"));
            }
        };
        if let Ok(data) = frame.into_data() {
            total += data.len() as u64;
            if total > ARTIFACT_LIMIT {
                upload.abort();
                return Err(ApiError::too_large(ARTIFACT_LIMIT as usize));
            }
            if let Err(e) = upload.write(&data) {
                upload.abort();
                return Err(refused(state, who, &object, &e, now));
            }
        }
    }
    match upload.finish(&state.store, version) {
        Ok(a) => {
            state.audit(
                None,
                &who.user_id,
                "release.artifact_uploaded",
                Some(&object),
                &format!(
                    "ok platform={} size={} sha256={}",
                    a.platform, a.size, a.sha256
                ),
                now,
            );
            info!(release = %version, artifact = %name, size = a.size, "release artifact accepted");
            Ok(Reply::ok(json!({
                "version": version,
                "artifact": a.name,
                "platform": a.platform,
                "size": a.size,
                "sha256": a.sha256,
            })))
        }
        Err(e) => Err(refused(state, who, &object, &e, now)),
    }
}

/// The body of `PUT …/desired-version`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DesiredBody {
    /// `MAJOR.MINOR.PATCH` of an uploaded release, or `null` to remove. Required.
    #[serde(deserialize_with = "required_nullable")]
    #[schema(value_type = Option<String>, example = "0.2.0")]
    version: Option<String>,
    /// How many agents in a hundred get it, 0..=100 (default 100).
    #[serde(default = "hundred")]
    #[schema(minimum = 0, maximum = 100)]
    rollout_percent: u8,
    /// A site of the tenant, to set that site's own desired version.
    #[serde(default)]
    site: Option<String>,
}

fn hundred() -> u8 {
    100
}

fn required_nullable<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::deserialize(d)
}

fn desired_json(tenant: &str, site: Option<&str>, d: Option<&DesiredRecord>) -> Value {
    json!({
        "tenant": tenant,
        "site": site,
        "version": d.map(|d| d.version.clone()),
        "rollout_percent": d.map(|d| d.rollout_percent),
    })
}

pub(super) fn get_desired(
    state: &ApiState,
    tenant: &str,
    query: Option<&str>,
) -> Result<Reply, ApiError> {
    // The API's one query parser: percent-decoded, a repeated name refused.
    let site = super::page::pairs(query)?
        .into_iter()
        .find_map(|(k, v)| (k == "site").then_some(v));
    if let Some(s) = &site {
        validate_id(s).map_err(|_| ApiError::bad_request("site"))?;
    }
    let d = state.store.desired_version(tenant, site.as_deref())?;
    Ok(Reply::ok(desired_json(tenant, site.as_deref(), d.as_ref())))
}

pub(super) fn put_desired(
    state: &ApiState,
    who: &Principal,
    tenant: &str,
    body: &[u8],
    now: u64,
) -> Result<Reply, ApiError> {
    let req: DesiredBody = parse_json(body)?;
    if req.rollout_percent > 100 {
        return Err(ApiError::unprocessable("rollout_percent must be 0 to 100"));
    }
    if let Some(site) = &req.site {
        if validate_id(site).is_err() || state.store.site(tenant, site)?.is_none() {
            return Err(ApiError::not_found("site"));
        }
    }
    let record = match req.version.as_deref() {
        None => None,
        Some(raw) => {
            let v = raw.parse::<Version>().map_err(|_| {
                ApiError::unprocessable("version must be MAJOR.MINOR.PATCH (digits only) or null")
            })?;
            if state.store.release(&v.to_string())?.is_none() {
                return Err(ApiError::unprocessable(
                    "no release of that version was uploaded",
                ));
            }
            Some(DesiredRecord {
                version: v.to_string(),
                rollout_percent: req.rollout_percent,
                set_at_ms: now,
            })
        }
    };
    state
        .store
        .set_desired_version(tenant, req.site.as_deref(), record.as_ref())?;
    let shown = record.as_ref().map_or_else(
        || "none".to_owned(),
        |d| format!("{} rollout={}%", d.version, d.rollout_percent),
    );
    let object = req.site.as_deref().unwrap_or(tenant);
    state.audit(
        Some(tenant),
        &who.user_id,
        "desired_version.updated",
        Some(object),
        &format!("ok version={shown}"),
        now,
    );
    info!(tenant = %tenant, desired = %shown, "desired agent version updated");
    Ok(Reply::ok(desired_json(
        tenant,
        req.site.as_deref(),
        record.as_ref(),
    )))
}
