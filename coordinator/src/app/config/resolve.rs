//! Merging the flags over the file and validating the result: [`resolve`] builds the
//! [`ServeConfig`] and the services' configs in it (delivery, retention), listing every problem.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::time::Duration;

use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;
use sealprint_protocol::{Announced, Version};

use super::{
    ConfigError, FileConfig, Overrides, ServeConfig, DEFAULT_DRAIN_GRACE_SECS,
    DEFAULT_HEARTBEAT_SECS,
};
use crate::core::agents::VersionPolicy;
use crate::services::delivery_config::DeliveryConfig;

fn multiaddrs(key: &str, raw: &[String], problems: &mut Vec<String>) -> Vec<Multiaddr> {
    let mut out = Vec::new();
    for s in raw {
        match s.parse::<Multiaddr>() {
            Ok(a) if a.iter().any(|p| matches!(p, Protocol::Tcp(_))) => out.push(a),
            Ok(_) => problems.push(format!("{key}: {s:?} has no /tcp/PORT part")),
            Err(e) => problems.push(format!("{key}: {s:?} is not a multiaddr ({e})")),
        }
    }
    out
}

/// Merges flags over the file and validates the result; lists every problem.
///
/// # Errors
/// [`ConfigError::Invalid`] with one line per problem.
pub fn resolve(file: FileConfig, flags: Overrides) -> Result<ServeConfig, ConfigError> {
    let mut problems = Vec::new();
    let retention = compliance_periods(&file, &mut problems);
    let delivery = delivery_settings(&file, &flags, &mut problems);
    let agent_versions = version_policy(&file, &flags, &mut problems);
    let data_dir = flags.data_dir.or(file.data_dir);
    let master_key_file = flags.master_key_file.or(file.master_key_file);
    let api_listen = flags.api_listen.or(file.api_listen);
    let pick = |flag: Vec<String>, file: Option<Vec<String>>| {
        if flag.is_empty() {
            file.unwrap_or_default()
        } else {
            flag
        }
    };
    let mesh_listen = pick(flags.mesh_listen, file.mesh_listen);
    let mesh_advertise = pick(flags.mesh_advertise, file.mesh_advertise);
    let heartbeat = flags
        .heartbeat_interval_secs
        .or(file.heartbeat_interval_secs)
        .unwrap_or(DEFAULT_HEARTBEAT_SECS);
    let grace = flags
        .drain_grace_secs
        .or(file.drain_grace_secs)
        .unwrap_or(DEFAULT_DRAIN_GRACE_SECS);
    let cert_validity = flags
        .device_cert_validity_secs
        .or(file.device_cert_validity_secs)
        .unwrap_or(crate::services::ca::CERT_VALIDITY_S);

    if data_dir.is_none() {
        problems.push("data_dir (--data-dir) is required".to_owned());
    }
    if master_key_file.is_none() {
        problems.push("master_key_file (--master-key-file) is required".to_owned());
    }
    let api = match api_listen.as_deref().map(str::parse::<SocketAddr>) {
        None => {
            problems.push("api_listen (--api-listen) is required".to_owned());
            None
        }
        Some(Err(_)) => {
            problems.push(format!(
                "api_listen: {:?} is not IP:PORT",
                api_listen.unwrap_or_default()
            ));
            None
        }
        Some(Ok(a)) => Some(a),
    };
    if mesh_listen.is_empty() {
        problems.push("mesh_listen (--mesh-listen) needs at least one multiaddr".to_owned());
    }
    let listen = multiaddrs("mesh_listen", &mesh_listen, &mut problems);
    let advertise = multiaddrs("mesh_advertise", &mesh_advertise, &mut problems);
    if !(1..=3600).contains(&heartbeat) {
        problems.push(format!(
            "heartbeat_interval_secs: {heartbeat} is outside 1..=3600"
        ));
    }
    if grace > 300 {
        problems.push(format!("drain_grace_secs: {grace} is over 300"));
    }
    if !(6..=365 * 24 * 3600).contains(&cert_validity) {
        problems.push(format!(
            "device_cert_validity_secs: {cert_validity} is outside 6..=31536000"
        ));
    }
    let monitor = file.monitor_interval_secs.unwrap_or(60);
    if !(1..=3600).contains(&monitor) {
        problems.push(format!(
            "monitor_interval_secs: {monitor} is outside 1..=3600"
        ));
    }
    let hello_deadline = in_range(
        &mut problems,
        "mesh_hello_deadline_secs",
        flags
            .mesh_hello_deadline_secs
            .or(file.mesh_hello_deadline_secs)
            .unwrap_or(10),
        1..=60,
    );
    let failure_interval = in_range(
        &mut problems,
        "failure_summary_interval_secs",
        flags
            .failure_summary_interval_secs
            .or(file.failure_summary_interval_secs)
            .unwrap_or(60),
        1..=3600,
    );
    let metrics_listen = match flags.metrics_listen.or(file.metrics_listen) {
        None => None,
        Some(raw) => match raw.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                problems.push(format!("metrics_listen: {raw:?} is not IP:PORT"));
                None
            }
        },
    };
    if metrics_listen.is_some() && metrics_listen == api {
        problems.push("metrics_listen: must not be the api_listen address".to_owned());
    }
    match (data_dir, master_key_file, api) {
        (Some(data_dir), Some(master_key_file), Some(api_listen)) if problems.is_empty() => {
            Ok(ServeConfig {
                data_dir,
                master_key_file,
                api_listen,
                mesh_listen: listen,
                mesh_advertise: advertise,
                heartbeat_interval: Duration::from_secs(heartbeat),
                drain_grace: Duration::from_secs(grace),
                cert_validity: Duration::from_secs(cert_validity),
                log_format: flags.log_format.or(file.log_format).unwrap_or_default(),
                billing_webhook_secret_file: flags
                    .billing_webhook_secret_file
                    .or(file.billing_webhook_secret_file),
                spapi_ca_file: flags.spapi_ca_file.or(file.spapi_ca_file),
                allow_spapi_endpoint_override: flags.allow_spapi_endpoint_override
                    || file.allow_spapi_endpoint_override.unwrap_or(false),
                allow_loopback_outbound: flags.insecure_allow_loopback_outbound,
                retention,
                monitor_interval: Duration::from_secs(monitor),
                delivery,
                hello_deadline: Duration::from_secs(hello_deadline),
                failure_summary_interval: Duration::from_secs(failure_interval),
                agent_versions,
                metrics_listen,
                release_public_key: flags.release_public_key.or(file.release_public_key),
            })
        }
        _ => Err(ConfigError::Invalid(problems)),
    }
}

/// `v` when it is within `range`; else the problem is added to `problems`.
fn in_range(problems: &mut Vec<String>, key: &str, v: u64, range: RangeInclusive<u64>) -> u64 {
    if !range.contains(&v) {
        problems.push(format!(
            "{key}: {v} is outside {}..={}",
            range.start(),
            range.end()
        ));
    }
    v
}

/// The delivery settings of `flags` over `file`, every problem added to `problems`.
fn delivery_settings(
    file: &FileConfig,
    flags: &Overrides,
    problems: &mut Vec<String>,
) -> DeliveryConfig {
    let mut check = |key: &str, v: Option<u64>, default: u64, range: RangeInclusive<u64>| {
        in_range(problems, key, v.unwrap_or(default), range)
    };
    let d = DeliveryConfig::default();
    let window = check(
        "attempt_window_secs",
        flags.attempt_window_secs.or(file.attempt_window_secs),
        d.attempt_window.as_secs(),
        2..=600,
    );
    let skew = check(
        "allowed_clock_skew_ms",
        flags.allowed_clock_skew_ms.or(file.allowed_clock_skew_ms),
        d.allowed_skew.as_millis() as u64,
        100..=60_000,
    );
    let queued = check(
        "max_queued_jobs",
        flags.max_queued_jobs.or(file.max_queued_jobs),
        d.max_queued_jobs as u64,
        1..=1_000_000,
    );
    DeliveryConfig {
        attempt_window: Duration::from_secs(window),
        allowed_skew: Duration::from_millis(skew),
        max_queued_jobs: usize::try_from(queued).unwrap_or(usize::MAX),
    }
}

/// The agent version policy of `flags` over `file`, every problem added to `problems`.
fn version_policy(
    file: &FileConfig,
    flags: &Overrides,
    problems: &mut Vec<String>,
) -> VersionPolicy {
    let mut version = |key: &str, raw: Option<&String>| {
        let raw = raw?;
        match raw.parse::<Version>() {
            Ok(v) => Some(v),
            Err(e) => {
                problems.push(format!("{key}: {raw:?} is {e}"));
                None
            }
        }
    };
    let min = version(
        "min_agent_version",
        flags
            .min_agent_version
            .as_ref()
            .or(file.min_agent_version.as_ref()),
    );
    let next = version(
        "next_min_agent_version",
        flags
            .next_min_agent_version
            .as_ref()
            .or(file.next_min_agent_version.as_ref()),
    );
    let from = flags
        .next_min_agent_version_from
        .or(file.next_min_agent_version_from);
    let mut policy = VersionPolicy::default();
    if let Some(min) = min {
        policy.min = min;
    }
    let named = flags.next_min_agent_version.is_some() || file.next_min_agent_version.is_some();
    match (next, from) {
        (Some(n), Some(from_s)) if n > policy.min => {
            policy.next = Some(Announced { min: n, from_s });
        }
        (Some(n), Some(_)) => problems.push(format!(
            "next_min_agent_version: {n} is not above min_agent_version {}",
            policy.min
        )),
        (Some(_), None) => problems.push(
            "next_min_agent_version needs next_min_agent_version_from (unix seconds)".to_owned(),
        ),
        (None, Some(_)) if !named => {
            problems.push("next_min_agent_version_from needs next_min_agent_version".to_owned())
        }
        (None, _) => {}
    }
    policy
}

/// The retention settings of `file`, every problem added to `problems`.
fn compliance_periods(
    file: &FileConfig,
    problems: &mut Vec<String>,
) -> crate::services::retention::RetentionConfig {
    use crate::services::retention::{MAX_PII_RETENTION_DAYS, MIN_AUDIT_RETENTION_DAYS};
    const DAY: u64 = 24 * 3600;
    let mut check = |key: &str, v: Option<u64>, default: u64, range: RangeInclusive<u64>| {
        in_range(problems, key, v.unwrap_or(default), range)
    };
    let pii = check(
        "pii_retention_days",
        file.pii_retention_days,
        MAX_PII_RETENTION_DAYS,
        1..=MAX_PII_RETENTION_DAYS,
    );
    let audit = check(
        "audit_retention_days",
        file.audit_retention_days,
        365,
        MIN_AUDIT_RETENTION_DAYS..=3650,
    );
    let every = check(
        "retention_interval_secs",
        file.retention_interval_secs,
        3600,
        60..=86_400,
    );
    let checkpoint_every = check(
        "audit_checkpoint_interval_secs",
        file.audit_checkpoint_interval_secs,
        3600,
        60..=86_400,
    );
    crate::services::retention::RetentionConfig {
        pii: Duration::from_secs(pii * DAY),
        audit: Duration::from_secs(audit * DAY),
        every: Duration::from_secs(every),
        checkpoint_every: Duration::from_secs(checkpoint_every),
    }
}
