//! Peer admission: a site peer is verified by its certificate (same CA, tenant and site,
//! unexpired, not revoked, issued for the key its connection authenticated) before anything
//! else it sends is accepted; the agent's own hello announces whether it has an uplink.

use libp2p::PeerId;
use sealprint_mesh::ed25519_of_peer;
use sealprint_protocol::{Certificate, CertificateBody, Expectation, Hello, Request};
use tracing::{info, warn};

use super::{EventLoop, Peer, Pending};
use crate::now_ms;

impl EventLoop {
    pub(super) fn own_hello(&self) -> Hello {
        Hello {
            certificate: self.certificate.encode(),
            has_uplink: self.uplink_ready,
        }
    }

    /// Verifies a site peer's certificate against the key its connection authenticated.
    pub(super) fn verify_peer(
        &self,
        peer: &PeerId,
        cert_bytes: &[u8],
    ) -> Result<Certificate, String> {
        let key = ed25519_of_peer(peer).map_err(|e| e.to_string())?;
        let cert = Certificate::decode(cert_bytes).map_err(|e| e.to_string())?;
        cert.check_key(&key).map_err(|e| e.to_string())?;
        let own = &self.id.certificate.body;
        let revoked = |b: &CertificateBody| self.revocations.contains(&b.device_id);
        let expect = Expectation {
            tenant_id: &own.tenant_id,
            site_id: Some(&own.site_id),
            is_revoked: &revoked,
        };
        cert.verify(&self.id.ca_public, &expect, now_ms() / 1000)
            .map_err(|e| e.to_string())?;
        Ok(cert)
    }

    pub(super) fn accept_hello(&mut self, peer: PeerId, hello: &Hello) -> bool {
        match self.verify_peer(&peer, &hello.certificate) {
            Ok(cert) => {
                let was_verified = matches!(self.peers.get(&peer), Some(Peer::Verified { .. }));
                if !was_verified {
                    info!(%peer, device = %cert.body.device_id, "site peer verified");
                }
                self.swarm.behaviour_mut().admission.verify(peer);
                self.peers.insert(
                    peer,
                    Peer::Verified {
                        device_id: cert.body.device_id,
                        serial: cert.body.serial,
                        has_uplink: hello.has_uplink,
                    },
                );
                true
            }
            Err(reason) => {
                warn!(%peer, %reason, "peer certificate refused; disconnecting");
                self.swarm.behaviour_mut().admission.refuse(peer);
                false
            }
        }
    }

    pub(super) fn verified_peer(&self, peer: &PeerId) -> Option<(&str, u64)> {
        match self.peers.get(peer) {
            Some(Peer::Verified {
                device_id, serial, ..
            }) => Some((device_id, *serial)),
            _ => None,
        }
    }

    pub(super) fn announce_uplink(&mut self) {
        let verified: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, s)| matches!(s, Peer::Verified { .. }))
            .map(|(p, _)| *p)
            .collect();
        for p in verified {
            let hello = self.own_hello();
            self.request(p, Request::Hello(hello), Pending::Hello(p));
        }
    }
}
