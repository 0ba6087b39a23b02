//! Heartbeats, direct or relayed by a site peer: replay check, the signed reply with the
//! tenant's revocation list, the version requirement (`versions`), accepted printer
//! identities and certificate renewal.

use std::time::Duration;

use libp2p::PeerId;
use sealprint_protocol::{
    AcceptedIdentity, Certificate, ErrorCode, Heartbeat, HeartbeatReply, PrinterVerdict,
    RelayReply, Relayed, Request, Response, RevocationList, SignedReply, SignedRevocations,
};
use tracing::{info, warn};

use super::{live_of, now_ms, EventLoop, Refusal};
use crate::core::dispatch::printer_id;
use crate::services::ca::{issue_certificate, DeviceSubject};
use crate::services::events::Event;
use crate::store::{AgentRecord, NotificationKind};

impl EventLoop {
    /// Records a heartbeat that came over `direct` (the agent's own connection) or through
    /// the site peer `relay`.
    pub(super) fn on_heartbeat(
        &mut self,
        record: &AgentRecord,
        hb: &Heartbeat,
        direct: Option<PeerId>,
        relay: Option<&str>,
    ) -> Result<SignedReply, Refusal> {
        let now = now_ms();
        let last = self
            .heartbeat_seqs
            .get(&record.device_id)
            .copied()
            .unwrap_or(record.heartbeat_seq);
        if hb.seq <= last {
            warn!(device = %record.device_id, seq = hb.seq, last, relay = ?relay, "replayed or stale heartbeat refused");
            return Err((ErrorCode::BadRequest, "stale heartbeat counter"));
        }
        if let Err(e) = self
            .store
            .record_heartbeat(&record.device_id, hb, relay, now)
        {
            warn!(error = %e, "heartbeat not recorded");
            return Err((ErrorCode::Internal, "heartbeat not recorded"));
        }
        self.fleet
            .heartbeat(live_of(record, direct), hb, relay, now);
        self.heartbeat_seqs.insert(record.device_id.clone(), hb.seq);
        self.note_refusals(record, hb, now);
        let requirement = self.judge_version(record, hb);
        self.settle_from_receipts(&record.device_id, hb);
        let revocations = self.revocations(&record.tenant_id)?;
        let reply = HeartbeatReply {
            device_id: record.device_id.clone(),
            heartbeat_seq: hb.seq,
            now_ms: now,
            revocations,
            renewed_certificate: self.renew_if_due(&record.device_id, now / 1000),
            min_version: requirement.encode(),
            accepted_identities: self.accepted_identities(record, hb),
        };
        SignedReply::sign(reply, self.identity.ca_signing_key()).map_err(|e| {
            warn!(error = %e, "heartbeat reply not signed");
            (ErrorCode::Internal, "reply not signed")
        })
    }

    /// The tenant's signed revocation list, from a cache a revocation clears (and that
    /// expires after 10 s): reading it from the store means scanning every agent of the
    /// tenant, and signing it costs a signature, once per heartbeat otherwise.
    pub(super) fn revocations(&mut self, tenant_id: &str) -> Result<SignedRevocations, Refusal> {
        if let Some((at, cached)) = self.revocations.get(tenant_id) {
            if at.elapsed() < Duration::from_secs(10) {
                return Ok(cached.clone());
            }
        }
        let devices = self.store.revoked_devices(tenant_id).map_err(|e| {
            warn!(error = %e, "revoked devices not readable");
            (ErrorCode::Internal, "revocations unavailable")
        })?;
        // Revocation is final and agent records are never deleted while their tenant lives,
        // so the count of revoked devices only grows: it is the list's version.
        let list = RevocationList {
            tenant_id: tenant_id.to_owned(),
            version: devices.len() as u64,
            devices,
        };
        let signed =
            SignedRevocations::sign(list, self.identity.ca_signing_key()).map_err(|e| {
                warn!(error = %e, "revocation list not signed");
                (ErrorCode::Internal, "revocations unavailable")
            })?;
        self.revocations.insert(
            tenant_id.to_owned(),
            (std::time::Instant::now(), signed.clone()),
        );
        Ok(signed)
    }

    /// Emits `printer.refused` for each printer this heartbeat reports refused that was not
    /// refused before (once per refusal; a verified report ends it).
    fn note_refusals(&mut self, record: &AgentRecord, hb: &Heartbeat, now: u64) {
        for p in &hb.printers {
            let id = printer_id(&record.device_id, &p.name);
            match p.verdict {
                PrinterVerdict::Refused => {
                    if self.refused_printers.insert(id.clone()) {
                        self.emit(Event::of_fleet(
                            NotificationKind::PrinterRefused,
                            &record.tenant_id,
                            &record.device_id,
                            Some(&id),
                            now,
                        ));
                    }
                }
                PrinterVerdict::Verified => {
                    self.refused_printers.remove(&id);
                }
                PrinterVerdict::Unreachable => {}
            }
        }
    }

    /// Identities an admin accepted for this agent's printers that it has not taken up yet;
    /// an acceptance is forgotten once the printer reports verified with that identity.
    pub(super) fn accepted_identities(
        &self,
        record: &AgentRecord,
        hb: &Heartbeat,
    ) -> Vec<AcceptedIdentity> {
        let mut out = Vec::new();
        for p in &hb.printers {
            let id = printer_id(&record.device_id, &p.name);
            let Ok(Some(accepted)) = self.store.accepted_printer_identity(&record.tenant_id, &id)
            else {
                continue;
            };
            if p.verdict == PrinterVerdict::Verified && p.identity.as_deref() == Some(&accepted) {
                if let Err(e) = self
                    .store
                    .clear_accepted_printer_identity(&record.tenant_id, &id)
                {
                    warn!(printer = %id, error = %e, "accepted identity not cleared");
                }
            } else {
                out.push(AcceptedIdentity {
                    printer: p.name.clone(),
                    identity: accepted,
                });
            }
        }
        out
    }

    /// A fresh certificate for the device when its current one has less than a third of its
    /// validity left. The device keeps its keys; the old certificate stays valid until it
    /// expires, so a lost answer only means the next heartbeat renews again.
    pub(super) fn renew_if_due(&self, device_id: &str, now_s: u64) -> Option<Vec<u8>> {
        let mut record = self.store.agent(device_id).ok().flatten()?;
        let current = Certificate::decode(&record.certificate).ok()?;
        if current.body.not_after.saturating_sub(now_s) > self.cert_validity_s / 3 {
            return None;
        }
        let subject = DeviceSubject {
            device_id,
            tenant_id: &record.tenant_id,
            site_id: &record.site_id,
            ed25519_public: record.ed25519_public,
            x25519_public: record.x25519_public,
        };
        let cert = match issue_certificate(
            &self.identity,
            &self.store,
            &subject,
            now_s,
            self.cert_validity_s,
        ) {
            Ok(c) => c,
            Err(e) => {
                warn!(device = %device_id, error = %e, "certificate not renewed");
                return None;
            }
        };
        record.serial = cert.body.serial;
        record.certificate = cert.encode();
        if let Err(e) = self.store.put_agent(&record) {
            warn!(device = %device_id, error = %e, "renewed certificate not stored");
            return None;
        }
        info!(device = %device_id, serial = cert.body.serial, "certificate renewed");
        self.audit(
            Some(&record.tenant_id),
            device_id,
            "agent.certificate_renewed",
            Some(device_id),
            "ok",
        );
        Some(record.certificate)
    }

    pub(super) fn on_relay(&mut self, relay: &AgentRecord, relayed: &Relayed) -> Response {
        let reply = |r: RelayReply| Response::Relayed(r);
        let origin = match self.store.agent(&relayed.device_id) {
            Ok(Some(r)) if !r.revoked => r,
            _ => {
                return reply(RelayReply::Error {
                    code: ErrorCode::Forbidden,
                    message: "unknown or revoked device".into(),
                })
            }
        };
        if origin.tenant_id != relay.tenant_id || origin.site_id != relay.site_id {
            warn!(relay = %relay.device_id, origin = %origin.device_id, "relay across sites refused");
            return reply(RelayReply::Error {
                code: ErrorCode::Forbidden,
                message: "relay is not of the same site".into(),
            });
        }
        let hb = match relayed.verify(&origin.ed25519_public) {
            Ok(Request::Heartbeat(hb)) if hb.device_id == origin.device_id => hb,
            Ok(_) | Err(_) => {
                warn!(relay = %relay.device_id, origin = %origin.device_id, "relayed message refused");
                return reply(RelayReply::Error {
                    code: ErrorCode::Forbidden,
                    message: "relayed message does not verify".into(),
                });
            }
        };
        match self.on_heartbeat(&origin, &hb, None, Some(&relay.device_id)) {
            Ok(r) => reply(RelayReply::HeartbeatReply(r)),
            Err((code, message)) => reply(RelayReply::Error {
                code,
                message: message.to_owned(),
            }),
        }
    }
}
