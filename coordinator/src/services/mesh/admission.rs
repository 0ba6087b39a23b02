//! Device admission: the hello and its certificate checks, enrollment with a one-time token,
//! and the gate every other request passes (a verified, unrevoked device behind the connection).

use libp2p::PeerId;
use rand::RngCore;
use sealprint_mesh::ed25519_of_peer;
use sealprint_protocol::{
    Certificate, CertificateBody, EnrollRequest, Enrolled, EnrollmentToken, ErrorCode, Expectation,
    Hello, Request, Response,
};
use tracing::{debug, info, warn};

use super::{live_of, now_ms, refuse, EventLoop, Verified};
use crate::core::failures::FailureKind;
use crate::services::ca::{issue_certificate, DeviceSubject};
use crate::services::failures::source_of;
use crate::store::AgentRecord;

impl EventLoop {
    /// Counts an unauthenticated failure of `peer` (summarised by its address, since a
    /// stranger can mint PeerIds at will) and has its connection closed once the refusal
    /// has left.
    pub(super) fn failed(&mut self, peer: PeerId, kind: FailureKind, reason: &str) {
        let ip = self.swarm.behaviour().admission.remote_ip(&peer);
        self.failures.record(&source_of(ip), kind, reason);
        self.swarm.behaviour_mut().admission.refuse(peer);
    }

    pub(super) fn on_request(&mut self, peer: PeerId, req: Request) -> Response {
        match req {
            Request::Hello(hello) => self.on_hello(peer, &hello),
            Request::Enroll(enroll) => self.on_enroll(peer, &enroll),
            other => {
                // Every other message needs a verified, unrevoked device behind the connection.
                let device_id = match self.peers.get(&peer) {
                    Some(v) => v.device_id.clone(),
                    None => {
                        debug!(%peer, "message before a verified hello; disconnecting");
                        self.failed(peer, FailureKind::NoHello, "message before a hello");
                        return refuse(ErrorCode::Unauthenticated, "send hello first");
                    }
                };
                let record = match self.store.agent(&device_id) {
                    Ok(Some(r)) if !r.revoked => r,
                    Ok(_) => {
                        warn!(device = %device_id, "message from a revoked device; disconnecting");
                        self.audit(
                            None,
                            &device_id,
                            "agent.refused",
                            Some(&device_id),
                            "revoked",
                        );
                        self.peers.remove(&peer);
                        self.fleet.remove(&device_id);
                        self.swarm.behaviour_mut().admission.refuse(peer);
                        return refuse(ErrorCode::Forbidden, "certificate revoked");
                    }
                    Err(e) => {
                        warn!(error = %e, "store read failed");
                        return refuse(ErrorCode::Internal, "store unavailable");
                    }
                };
                match other {
                    Request::Heartbeat(hb) if hb.device_id == record.device_id => {
                        match self.on_heartbeat(&record, &hb, Some(peer), None) {
                            Ok(reply) => Response::HeartbeatReply(reply),
                            Err((code, message)) => refuse(code, message),
                        }
                    }
                    Request::Relay(relayed) => self.on_relay(&record, &relayed),
                    Request::Update(update) => self.on_update(&record, update),
                    _ => refuse(ErrorCode::BadRequest, "unexpected request"),
                }
            }
        }
    }

    pub(super) fn on_hello(&mut self, peer: PeerId, hello: &Hello) -> Response {
        match self.verify_agent(&peer, &hello.certificate) {
            Ok(record) => {
                info!(device = %record.device_id, %peer, "agent verified");
                self.swarm.behaviour_mut().admission.verify(peer);
                self.peers.insert(
                    peer,
                    Verified {
                        device_id: record.device_id.clone(),
                    },
                );
                self.fleet.connected(live_of(&record, Some(peer)));
                self.end_handover(&record.device_id);
                Response::Hello(Hello {
                    certificate: Vec::new(),
                    has_uplink: true,
                })
            }
            Err(reason) => {
                debug!(%peer, %reason, "agent certificate refused; disconnecting");
                self.failed(peer, FailureKind::BadHello, &reason);
                refuse(ErrorCode::Unauthenticated, &reason)
            }
        }
    }

    pub(super) fn verify_agent(
        &self,
        peer: &PeerId,
        cert_bytes: &[u8],
    ) -> Result<AgentRecord, String> {
        let key = ed25519_of_peer(peer).map_err(|e| e.to_string())?;
        let cert = Certificate::decode(cert_bytes).map_err(|e| e.to_string())?;
        cert.check_key(&key).map_err(|e| e.to_string())?;
        let record = self
            .store
            .agent(&cert.body.device_id)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "unknown device".to_owned())?;
        // Revocation is by device: every certificate it was ever issued is refused.
        let revoked = |_: &CertificateBody| record.revoked;
        let ca = ed25519_dalek::VerifyingKey::from_bytes(&self.identity.ca_public())
            .map_err(|_| "ca key unusable".to_owned())?;
        cert.verify(
            &ca,
            &Expectation {
                tenant_id: &record.tenant_id,
                site_id: Some(&record.site_id),
                is_revoked: &revoked,
            },
            now_ms() / 1000,
        )
        .map_err(|e| e.to_string())?;
        if record.revoked {
            return Err("device revoked".into());
        }
        // An older certificate of the same keys stays valid until it expires: a renewal
        // whose answer was lost must not lock the device out.
        if cert.body.ed25519_public != record.ed25519_public
            || cert.body.x25519_public != record.x25519_public
        {
            return Err("certificate is for other keys than the enrolled device's".into());
        }
        Ok(record)
    }

    pub(super) fn on_enroll(&mut self, peer: PeerId, req: &EnrollRequest) -> Response {
        let now = now_ms();
        let hash = EnrollmentToken::hash_secret(&req.token_secret);
        let grant = match self.store.redeem_enrollment_token(&hash, now / 1000) {
            Ok(g) => g,
            Err(e) => {
                debug!(%peer, error = %e, "enrollment refused");
                self.failed(peer, FailureKind::FailedEnrollment, &e.to_string());
                return refuse(ErrorCode::BadToken, &e.to_string());
            }
        };
        let Ok(ed25519_public) = ed25519_of_peer(&peer) else {
            return refuse(ErrorCode::BadRequest, "peer id is not an ed25519 key");
        };
        let mut raw = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let device_id = format!("dev-{}", hex::encode(raw));
        let subject = DeviceSubject {
            device_id: &device_id,
            tenant_id: &grant.tenant_id,
            site_id: &grant.site_id,
            ed25519_public,
            x25519_public: req.x25519_public,
        };
        let cert = match issue_certificate(
            &self.identity,
            &self.store,
            &subject,
            now / 1000,
            self.cert_validity_s,
        ) {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "certificate not issued");
                return refuse(ErrorCode::Internal, "certificate not issued");
            }
        };
        let hostname: String = req
            .hostname
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(64)
            .collect();
        let record = AgentRecord {
            device_id: device_id.clone(),
            tenant_id: grant.tenant_id.clone(),
            site_id: grant.site_id.clone(),
            serial: cert.body.serial,
            certificate: cert.encode(),
            ed25519_public,
            x25519_public: req.x25519_public,
            hostname,
            enrolled_at_ms: now,
            revoked: false,
            version: Some(req.version.chars().take(32).collect()),
            last_heartbeat_at_ms: None,
            clock_offset_ms: None,
            relay: None,
            findings: Vec::new(),
            heartbeat_seq: 0,
        };
        if let Err(e) = self.store.put_agent(&record) {
            warn!(error = %e, "agent not stored");
            return refuse(ErrorCode::Internal, "agent not stored");
        }
        info!(device = %device_id, tenant = %grant.tenant_id, site = %grant.site_id, serial = cert.body.serial, "agent enrolled");
        self.audit(
            Some(&grant.tenant_id),
            &device_id,
            "agent.enrolled",
            Some(&device_id),
            "ok",
        );
        Response::Enrolled(Enrolled {
            certificate: cert.encode(),
            ca_public: self.identity.ca_public(),
            coordinator_x25519: self.identity.x25519_public(),
        })
    }
}
