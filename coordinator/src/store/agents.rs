//! Agents (by device id) and the printers their heartbeats report (under
//! `"<tenant>/<device id>.<printer name>"`): enrollment records, revocation, heartbeats.

use sealprint_protocol::{Heartbeat, PrinterStatus, PrinterVerdict};
use serde::{Deserialize, Serialize};

use super::{decode, encode, get, prefix, put, scan, scoped, update, Store, StoreError};

/// An enrolled device (agent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRecord {
    /// `dev-…`.
    pub device_id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Site.
    pub site_id: String,
    /// Serial of its current certificate.
    pub serial: u64,
    /// Its current encoded certificate.
    pub certificate: Vec<u8>,
    /// Its ed25519 key (libp2p identity).
    pub ed25519_public: [u8; 32],
    /// Its X25519 key (sealed envelopes).
    pub x25519_public: [u8; 32],
    /// Station name it reported (ASCII, ≤ 64 chars).
    pub hostname: String,
    /// Enrollment time, unix ms.
    pub enrolled_at_ms: u64,
    /// Whether its certificate is revoked.
    pub revoked: bool,
    /// Agent version from its last heartbeat (or enrollment).
    pub version: Option<String>,
    /// When its last heartbeat arrived, unix ms (coordinator clock).
    pub last_heartbeat_at_ms: Option<u64>,
    /// Its clock minus ours at its last heartbeat, ms.
    pub clock_offset_ms: Option<i64>,
    /// Device id of the peer relaying its uplink, `None` if direct.
    pub relay: Option<String>,
    /// The station's compliance findings from its last heartbeat (no PII: queue names,
    /// permissions, versions).
    #[serde(default)]
    pub findings: Vec<String>,
    /// The counter of its last recorded heartbeat: a heartbeat must carry a larger one.
    #[serde(default)]
    pub heartbeat_seq: u64,
}

/// A printer as last reported by its agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrinterRecord {
    /// `<device_id>.<name>`.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Site.
    pub site_id: String,
    /// Device id of the agent that owns it.
    pub agent: String,
    /// Name on its agent.
    pub name: String,
    /// Pool it serves.
    pub pool: String,
    /// URI (no credentials).
    pub uri: String,
    /// Verification verdict. A printer its agent no longer reports is `Unreachable`.
    pub verdict: PrinterVerdict,
    /// Why, for a person.
    pub reason: String,
    /// Device identity (serial) when known.
    pub identity: Option<String>,
    /// Status. A printer its agent no longer reports is `Offline`.
    pub status: PrinterStatus,
    /// Last update, unix ms.
    pub updated_at_ms: u64,
}

impl Store {
    /// Stores (creates or replaces) an agent.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub fn put_agent(&self, rec: &AgentRecord) -> Result<(), StoreError> {
        put(&self.inner.agents, rec.device_id.as_bytes(), rec)
    }

    /// An agent by device id.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn agent(&self, device_id: &str) -> Result<Option<AgentRecord>, StoreError> {
        get(&self.inner.agents, device_id.as_bytes(), "agent")
    }

    /// The agents of a tenant.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn agents(&self, tenant_id: &str) -> Result<Vec<AgentRecord>, StoreError> {
        let all: Vec<AgentRecord> = scan(&self.inner.agents, b"", "agent")?;
        Ok(all
            .into_iter()
            .filter(|a| a.tenant_id == tenant_id)
            .collect())
    }

    /// Marks an agent of `tenant_id` revoked (atomically). Returns the record, or `None` when
    /// the tenant has no such agent.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn revoke_agent(
        &self,
        tenant_id: &str,
        device_id: &str,
    ) -> Result<Option<AgentRecord>, StoreError> {
        match self.agent(device_id)? {
            Some(a) if a.tenant_id == tenant_id => {}
            _ => return Ok(None),
        }
        update(
            &self.inner.agents,
            device_id.as_bytes(),
            "agent",
            |a: &mut AgentRecord| a.revoked = true,
        )
    }

    /// The revoked devices of a tenant, sorted: every certificate of each is refused.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn revoked_devices(&self, tenant_id: &str) -> Result<Vec<String>, StoreError> {
        let mut devices: Vec<String> = self
            .agents(tenant_id)?
            .into_iter()
            .filter(|a| a.revoked)
            .map(|a| a.device_id)
            .collect();
        devices.sort();
        Ok(devices)
    }

    /// Records a heartbeat of `device_id` that arrived at `now_ms` (directly, or relayed by
    /// `via`): updates the agent's version, last heartbeat, clock offset and relay
    /// (atomically, so a concurrent revocation is never undone), upserts its printers and
    /// marks the printers it no longer reports offline and unreachable.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown device, [`StoreError::Db`],
    /// [`StoreError::Corrupt`].
    pub fn record_heartbeat(
        &self,
        device_id: &str,
        hb: &Heartbeat,
        via: Option<&str>,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let offset = i64::try_from(hb.clock_ms)
            .unwrap_or(i64::MAX)
            .saturating_sub(i64::try_from(now_ms).unwrap_or(i64::MAX));
        let agent = update(
            &self.inner.agents,
            device_id.as_bytes(),
            "agent",
            |a: &mut AgentRecord| {
                a.version = Some(hb.version.chars().take(32).collect());
                a.last_heartbeat_at_ms = Some(now_ms);
                a.clock_offset_ms = Some(offset);
                a.relay = via.map(str::to_owned);
                a.heartbeat_seq = a.heartbeat_seq.max(hb.seq);
                a.findings = hb
                    .findings
                    .iter()
                    .take(64)
                    .map(|f| f.chars().take(256).collect())
                    .collect();
            },
        )?
        .ok_or(StoreError::NotFound)?;

        let mut batch = sled::Batch::default();
        let mut reported = Vec::with_capacity(hb.printers.len());
        for p in &hb.printers {
            let id = format!("{device_id}.{}", p.name);
            let rec = PrinterRecord {
                id: id.clone(),
                tenant_id: agent.tenant_id.clone(),
                site_id: agent.site_id.clone(),
                agent: device_id.to_owned(),
                name: p.name.clone(),
                pool: p.pool.clone(),
                uri: p.uri.clone(),
                verdict: p.verdict,
                reason: p.reason.clone(),
                identity: p.identity.clone(),
                status: p.status,
                updated_at_ms: now_ms,
            };
            batch.insert(scoped(&agent.tenant_id, &id), encode(&rec));
            reported.push(id);
        }
        let own = format!("{}/{device_id}.", agent.tenant_id);
        for kv in self.inner.printers.scan_prefix(own.as_bytes()) {
            let (k, v) = kv?;
            let mut rec: PrinterRecord = decode(&v, "printer")?;
            if rec.agent != device_id
                || reported.contains(&rec.id)
                || (rec.status == PrinterStatus::Offline
                    && rec.verdict == PrinterVerdict::Unreachable)
            {
                continue;
            }
            rec.status = PrinterStatus::Offline;
            rec.verdict = PrinterVerdict::Unreachable;
            rec.reason = "no longer reported by its agent".into();
            rec.updated_at_ms = now_ms;
            batch.insert(k, encode(&rec));
        }
        self.inner.printers.apply_batch(batch)?;
        Ok(())
    }

    /// The printers of a tenant.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn printers(&self, tenant_id: &str) -> Result<Vec<PrinterRecord>, StoreError> {
        scan(&self.inner.printers, &prefix(tenant_id), "printer")
    }

    /// A printer of a tenant by id.
    ///
    /// # Errors
    /// [`StoreError::Db`], [`StoreError::Corrupt`].
    pub fn printer(
        &self,
        tenant_id: &str,
        printer_id: &str,
    ) -> Result<Option<PrinterRecord>, StoreError> {
        get(
            &self.inner.printers,
            &scoped(tenant_id, printer_id),
            "printer",
        )
    }
}
