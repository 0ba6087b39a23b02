//! Heartbeats: built from the station's state and sent over the uplink or a relaying peer; a
//! reply is applied only when the coordinator signed it for a heartbeat this agent sent
//! (revocations, renewed certificate, accepted printer identities, clock offset, the version
//! requirement).

use libp2p::PeerId;
use sealprint_protocol::{
    Certificate, CertificateBody, Expectation, Heartbeat, MeshPeerReport, Relayed, Request,
    SignedReply,
};
use tracing::{debug, info, warn};

use super::{EventLoop, Peer, Pending};
use crate::identity::write_private;
use crate::metrics::{self, Link};
use crate::{now_ms, VERSION};

impl EventLoop {
    /// Applies a heartbeat reply, after checking that the coordinator signed it for this
    /// device and for a heartbeat sent and not answered yet: a relay can drop or delay it,
    /// but neither write nor replay one. Returns whether it was applied.
    pub(super) fn apply_reply(&mut self, signed: SignedReply) -> bool {
        let own = &self.certificate.body;
        let reply = match signed.verify(
            &self.id.ca_public.to_bytes(),
            &own.device_id,
            &own.tenant_id,
            self.applied_seq,
            self.sent_seq,
        ) {
            Ok(r) => r.clone(),
            Err(e) => {
                warn!(error = %e, "heartbeat reply refused");
                return false;
            }
        };
        self.applied_seq = reply.heartbeat_seq;
        self.apply_requirement(&reply.min_version);
        match self.revocations.update(&reply.revocations) {
            Ok(true) => info!(
                version = reply.revocations.list.version,
                revoked = reply.revocations.list.devices.len(),
                "revocation list updated"
            ),
            Ok(false) => {}
            Err(e) => warn!(error = %e, "revocation list not saved; applied until restart"),
        }
        if let Some(bytes) = reply.renewed_certificate {
            self.renew(&bytes);
        }
        for accepted in reply.accepted_identities {
            let station = self.station.clone();
            tokio::spawn(async move {
                station.accept(&accepted.printer, &accepted.identity).await;
            });
        }
        let now = now_ms();
        let skew = i128::from(reply.now_ms) - i128::from(now);
        self.last_ack_ms = Some(now);
        metrics::get().acked();
        self.clock_offset_ms = Some(i64::try_from(skew).unwrap_or(i64::MAX));
        if skew.abs() > 2_000 {
            warn!(
                skew_ms = skew as i64,
                "clock differs from the coordinator's"
            );
        }
        let revoked_peers: Vec<PeerId> = self
            .peers
            .iter()
            .filter_map(|(p, s)| match s {
                Peer::Verified { device_id, .. } if self.revocations.contains(device_id) => {
                    Some(*p)
                }
                _ => None,
            })
            .collect();
        for p in revoked_peers {
            warn!(peer = %p, "peer certificate revoked; disconnecting");
            self.peers.remove(&p);
            self.swarm.behaviour_mut().admission.refuse(p);
            let _ = self.swarm.disconnect_peer_id(p);
        }
        self.write_status(true);
        true
    }

    /// Takes a renewed certificate from the coordinator after checking it is for this
    /// device's own keys, tenant and site, and saves it.
    pub(super) fn renew(&mut self, bytes: &[u8]) {
        let cert = match Certificate::decode(bytes) {
            Ok(c) => c,
            Err(e) => return warn!(error = %e, "renewed certificate refused"),
        };
        let own = &self.certificate.body;
        let none = |_: &CertificateBody| false;
        let checked = cert
            .verify(
                &self.id.ca_public,
                &Expectation {
                    tenant_id: &own.tenant_id,
                    site_id: Some(&own.site_id),
                    is_revoked: &none,
                },
                now_ms() / 1000,
            )
            .map_err(|e| e.to_string())
            .and_then(|()| {
                (cert.body.device_id == own.device_id
                    && cert.body.ed25519_public == own.ed25519_public
                    && cert.body.x25519_public == own.x25519_public)
                    .then_some(())
                    .ok_or_else(|| "renewed certificate is for another device".to_owned())
            });
        if let Err(reason) = checked {
            return warn!(%reason, "renewed certificate refused");
        }
        if let Err(e) = write_private(&self.data_dir.join("device.cert"), bytes) {
            warn!(error = %e, "renewed certificate not saved; using it until restart");
        }
        info!(
            serial = cert.body.serial,
            not_after = cert.body.not_after,
            "certificate renewed"
        );
        self.certificate = cert;
    }

    pub(super) fn heartbeat(&self, seq: u64) -> Heartbeat {
        Heartbeat {
            device_id: self.id.device_id().to_owned(),
            seq,
            version: VERSION.to_owned(),
            uptime_s: self.started.elapsed().as_secs(),
            clock_ms: now_ms(),
            printers: self.station.reports(),
            peers: self
                .peers
                .values()
                .filter_map(|s| match s {
                    Peer::Verified {
                        device_id,
                        has_uplink,
                        ..
                    } => Some(MeshPeerReport {
                        device_id: device_id.clone(),
                        has_uplink: *has_uplink,
                    }),
                    Peer::Unverified => None,
                })
                .collect(),
            receipts: self.receipts.report(now_ms()),
            findings: self.findings.clone(),
        }
    }

    pub(super) fn send_heartbeat(&mut self) {
        let seq = match self.counter.issue() {
            Ok(n) => n,
            Err(e) => return warn!(error = %e, "heartbeat counter not reserved; heartbeat skipped"),
        };
        self.sent_seq = seq;
        let hb = self.heartbeat(seq);
        if self.uplink_ready {
            self.relay = None;
            metrics::get().heartbeat(Link::Uplink);
            let coordinator = self.coordinator;
            return self.request(coordinator, Request::Heartbeat(hb), Pending::Heartbeat);
        }
        let relay = self.peers.iter().find_map(|(p, s)| match s {
            Peer::Verified {
                has_uplink: true,
                device_id,
                ..
            } => Some((*p, device_id.clone())),
            _ => None,
        });
        let Some((relay, relay_device)) = relay else {
            self.relay = None;
            metrics::get().heartbeat(Link::None);
            debug!("no uplink and no relay: heartbeat skipped");
            return;
        };
        self.relay = Some(relay_device);
        metrics::get().heartbeat(Link::Relay);
        match Relayed::sign(
            self.id.device_id(),
            &Request::Heartbeat(hb),
            &self.id.keys.signing_key(),
        ) {
            Ok(signed) => self.request(relay, Request::Relay(signed), Pending::RelayedHeartbeat),
            Err(e) => warn!(error = %e, "heartbeat could not be signed for relay"),
        }
    }
}
