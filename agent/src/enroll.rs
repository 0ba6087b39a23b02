//! Enrollment: the device generates its keys, proves a one-time token to the coordinator
//! pinned by the token's PeerId, and stores the certificate it is issued.
//!
//! The keys never leave the device: the coordinator learns the ed25519 key from the
//! authenticated libp2p connection and the X25519 public key from the request.

use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use libp2p::request_response::{self, Message};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId};
use sealprint_mesh::{build_swarm, BehaviourEvent, SwarmOptions};
use sealprint_protocol::{
    Certificate, EnrollRequest, EnrollmentToken, Expectation, Request, Response,
};
use tracing::info;

use crate::identity::{CoordinatorPin, DeviceIdentity, DeviceKeys};
use crate::{now_ms, AgentError, VERSION};

/// Enrolls this device with `token` and saves its identity in `data_dir`.
///
/// Safe to cancel: nothing is written before the certificate has been received and checked.
///
/// # Errors
/// [`AgentError`] when the token is expired, the coordinator cannot be reached within
/// `timeout`, refuses the token, or answers with a certificate that does not check out.
pub async fn enroll(
    data_dir: &Path,
    token: &EnrollmentToken,
    hostname: &str,
    timeout: Duration,
) -> Result<DeviceIdentity, AgentError> {
    DeviceIdentity::ensure_not_enrolled(data_dir)?;
    token
        .check_fresh(now_ms() / 1000)
        .map_err(|e| AgentError::Enroll(e.to_string()))?;
    let coordinator: PeerId = token
        .coordinator_peer_id
        .parse()
        .map_err(|_| AgentError::Enroll("token names an invalid coordinator peer id".into()))?;
    let addrs: Vec<Multiaddr> = token
        .coordinator_addrs
        .iter()
        .filter_map(|a| a.parse().ok())
        .collect();
    if addrs.is_empty() {
        return Err(AgentError::Enroll(
            "token names no usable coordinator address".into(),
        ));
    }
    let keys = DeviceKeys::generate();
    let mut swarm = build_swarm(keys.libp2p_keypair(), &SwarmOptions::default())
        .map_err(|e| AgentError::Mesh(e.to_string()))?;
    // Pinned by the token: its answers are not limited to a stranger's frame size.
    swarm.behaviour_mut().admission.trust(coordinator);
    swarm
        .dial(DialOpts::peer_id(coordinator).addresses(addrs).build())
        .map_err(|e| AgentError::Enroll(format!("cannot dial the coordinator: {e}")))?;
    let request = Request::Enroll(EnrollRequest {
        token_secret: token.secret,
        x25519_public: keys.x25519_public(),
        hostname: hostname.to_owned(),
        version: VERSION.to_owned(),
    });
    let mut request = Some(request);
    let answer = tokio::time::timeout(timeout, async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == coordinator => {
                    if let Some(req) = request.take() {
                        swarm.behaviour_mut().rr.send_request(&coordinator, req);
                    }
                }
                SwarmEvent::OutgoingConnectionError { error, .. } => {
                    return Err(AgentError::Enroll(format!(
                        "cannot reach the coordinator: {error}"
                    )));
                }
                SwarmEvent::Behaviour(BehaviourEvent::Rr(request_response::Event::Message {
                    message: Message::Response { response, .. },
                    ..
                })) => return Ok(response),
                SwarmEvent::Behaviour(BehaviourEvent::Rr(
                    request_response::Event::OutboundFailure { error, .. },
                )) => {
                    return Err(AgentError::Enroll(format!(
                        "enrollment request failed: {error}"
                    )))
                }
                _ => {}
            }
        }
    })
    .await
    .map_err(|_| AgentError::Enroll("the coordinator did not answer in time".into()))??;
    let enrolled = match answer {
        Response::Enrolled(e) => e,
        Response::Error { code, message } => {
            return Err(AgentError::Enroll(format!("refused ({code:?}): {message}")))
        }
        _ => {
            return Err(AgentError::Enroll(
                "unexpected answer from the coordinator".into(),
            ))
        }
    };
    let certificate = Certificate::decode(&enrolled.certificate)
        .map_err(|e| AgentError::Enroll(format!("issued certificate: {e}")))?;
    let ca_public = ed25519_dalek::VerifyingKey::from_bytes(&enrolled.ca_public)
        .map_err(|_| AgentError::Enroll("coordinator sent an invalid ca key".into()))?;
    let none_revoked = |_: &sealprint_protocol::CertificateBody| false;
    certificate
        .verify(
            &ca_public,
            &Expectation {
                tenant_id: &token.tenant_id,
                site_id: Some(&token.site_id),
                is_revoked: &none_revoked,
            },
            now_ms() / 1000,
        )
        .map_err(|e| AgentError::Enroll(format!("issued certificate: {e}")))?;
    if certificate.body.ed25519_public != keys.ed25519_public()
        || certificate.body.x25519_public != keys.x25519_public()
    {
        return Err(AgentError::Enroll(
            "issued certificate is for other keys".into(),
        ));
    }
    let identity = DeviceIdentity {
        keys,
        coordinator: CoordinatorPin {
            peer_id: token.coordinator_peer_id.clone(),
            addrs: token.coordinator_addrs.clone(),
            ca_public: hex::encode(enrolled.ca_public),
            x25519_public: hex::encode(enrolled.coordinator_x25519),
            release_public: token.release_public.map(hex::encode),
        },
        certificate,
        ca_public,
        coordinator_x25519: enrolled.coordinator_x25519,
    };
    identity.save(data_dir)?;
    info!(device = %identity.device_id(), "enrolled");
    Ok(identity)
}
