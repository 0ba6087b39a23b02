//! Dispatch: which printer gets a job, and what a delivery answer means for the job.
//!
//! This module is pure (no sockets, no store, no clock): the mesh event loop feeds it the
//! live view of the fleet from heartbeats and connections, asks it for a printer, and asks it
//! what to do with each answer. That keeps the delivery rules in one place and testable:
//!
//! - A job goes to one verified, ready printer of its pool (or the printer asked for) whose
//!   agent is reachable (directly, or through a site peer with an uplink), has sent a fresh
//!   heartbeat, whose clock is within the allowed skew (the largest difference of its last
//!   few heartbeats), and whose version is not below its tenant's minimum (an outdated agent
//!   stays connected and may still relay its site peers' sealed jobs, but prints none);
//!   among those, the one with the fewest jobs in flight, round-robin on ties.
//! - A printer that said "not printed" is not tried again for that job until every other
//!   candidate has been, and not within a short backoff.
//! - An answer that says nothing was printed sends the job back to the queue; an answer that
//!   was lost leaves the job waiting for the agent's receipts; the job is reassigned only when
//!   a heartbeat of that agent, built after the deadline (plus the allowed skew) by a process
//!   that was already running when the job was sent, does not list it. Otherwise it ends
//!   `in_doubt` and is never reprinted automatically.

use std::collections::{HashMap, VecDeque};

use libp2p::PeerId;
use sealprint_protocol::{Heartbeat, PrinterReport, PrinterStatus, PrinterVerdict};

/// How long a submitted job may wait for a printer, ms.
pub const JOB_TTL_MS: u64 = 10 * 60 * 1000;

/// Tunables of dispatch.
#[derive(Debug, Clone)]
pub struct DispatchConfig {
    /// How long an agent may take to print one delivery attempt, in ms (the envelope's
    /// deadline is the send time plus this).
    pub attempt_window_ms: u64,
    /// Clock skew allowed between coordinator and agents, in ms.
    pub allowed_skew_ms: u64,
    /// Heartbeat period of agents, in ms; three missed beats make an agent stale.
    pub heartbeat_interval_ms: u64,
    /// Most jobs in flight on one printer.
    pub max_in_flight_per_printer: usize,
    /// How long after a "not printed" a job may go back to a printer that refused it, in ms.
    pub retry_backoff_ms: u64,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        DispatchConfig {
            attempt_window_ms: 30_000,
            allowed_skew_ms: 2_000,
            heartbeat_interval_ms: 10_000,
            max_in_flight_per_printer: 8,
            retry_backoff_ms: 2_000,
        }
    }
}

/// How the coordinator reaches an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Over the agent's own uplink connection.
    Direct(PeerId),
    /// Through a site peer's uplink: the peer's PeerId.
    Relay(PeerId),
}

/// What the coordinator knows live of one agent.
#[derive(Debug, Clone)]
pub struct AgentLive {
    /// Device id.
    pub device_id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Site.
    pub site_id: String,
    /// X25519 key from its certificate.
    pub x25519_public: [u8; 32],
    /// Its ed25519 device key: the outcomes of its jobs must be signed with it.
    pub ed25519_public: [u8; 32],
    /// Its verified uplink connection, if any.
    pub peer: Option<PeerId>,
    /// The site peer that relayed its last heartbeat, if it has no uplink.
    pub relay: Option<String>,
    /// Printers from its last heartbeat.
    pub printers: Vec<PrinterReport>,
    /// When its last heartbeat arrived (coordinator clock, ms).
    pub last_heartbeat_ms: Option<u64>,
    /// When its process started (its clock, ms), from its last heartbeat.
    pub boot_ms: u64,
    /// Its clock minus the coordinator's at arrival, ms, of its last heartbeats (newest
    /// last, at most [`SKEW_SAMPLES`]). Transit time makes a sample look a little behind.
    pub clock_skew_ms: VecDeque<i64>,
    /// Whether its last heartbeat reported a version below its tenant's minimum
    /// ([`Fleet::set_outdated`]): it gets no jobs while it is.
    pub outdated: bool,
}

/// How many heartbeats the clock skew is judged over.
pub const SKEW_SAMPLES: usize = 5;

impl AgentLive {
    /// The largest clock difference of the recent heartbeats, ms (0 before any).
    pub fn worst_skew_ms(&self) -> u64 {
        self.clock_skew_ms
            .iter()
            .map(|s| s.unsigned_abs())
            .max()
            .unwrap_or(0)
    }
}

/// The chosen destination of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// Printer id (`<device>.<name>`).
    pub printer_id: String,
    /// Printer name on its agent.
    pub printer_name: String,
    /// The agent.
    pub device_id: String,
    /// How to reach it.
    pub route: Route,
}

/// What a job asks for.
#[derive(Debug, Clone)]
pub struct Want<'a> {
    /// Tenant of the job.
    pub tenant_id: &'a str,
    /// Pool, when the job names one.
    pub pool: Option<&'a str>,
    /// Printer id, when the job names one.
    pub printer: Option<&'a str>,
    /// Printers that refused this job.
    pub excluded: &'a [String],
    /// Whether the backoff since the last refusal is over.
    pub backoff_over: bool,
}

/// The live view of every agent, plus jobs in flight per printer.
#[derive(Debug, Default)]
pub struct Fleet {
    agents: HashMap<String, AgentLive>,
    in_flight: HashMap<String, usize>,
    turn: usize,
}

/// The printer id of `name` on `device_id`.
pub fn printer_id(device_id: &str, name: &str) -> String {
    format!("{device_id}.{name}")
}

impl Fleet {
    /// The agent `device_id`, if known.
    pub fn agent(&self, device_id: &str) -> Option<&AgentLive> {
        self.agents.get(device_id)
    }

    /// Every agent known live.
    pub fn agents(&self) -> impl Iterator<Item = &AgentLive> {
        self.agents.values()
    }

    /// Records that `device_id` is connected (verified) as `peer`, creating its entry.
    pub fn connected(&mut self, live: AgentLive) {
        let entry = self
            .agents
            .entry(live.device_id.clone())
            .or_insert_with(|| live.clone());
        entry.peer = live.peer;
    }

    /// Records that `device_id`'s uplink connection closed.
    pub fn disconnected(&mut self, device_id: &str) {
        if let Some(a) = self.agents.get_mut(device_id) {
            a.peer = None;
        }
    }

    /// Forgets an agent (revoked).
    pub fn remove(&mut self, device_id: &str) {
        self.agents.remove(device_id);
    }

    /// Applies a heartbeat that arrived at `now_ms`, directly over `base.peer`'s connection
    /// or through `relay`. A relayed heartbeat means the agent has no working uplink: its
    /// direct route is dropped until it says hello over a new connection or sends a direct
    /// heartbeat again.
    pub fn heartbeat(&mut self, base: AgentLive, hb: &Heartbeat, relay: Option<&str>, now_ms: u64) {
        let direct = base.peer;
        let entry = self.agents.entry(base.device_id.clone()).or_insert(base);
        entry.printers = hb.printers.clone();
        entry.last_heartbeat_ms = Some(now_ms);
        entry.relay = relay.map(str::to_owned);
        entry.peer = if relay.is_some() { None } else { direct };
        entry.boot_ms = hb.clock_ms.saturating_sub(hb.uptime_s.saturating_mul(1000));
        let skew = i64::try_from(i128::from(hb.clock_ms) - i128::from(now_ms)).unwrap_or(i64::MAX);
        entry.clock_skew_ms.push_back(skew);
        while entry.clock_skew_ms.len() > SKEW_SAMPLES {
            entry.clock_skew_ms.pop_front();
        }
    }

    /// Records whether `device_id` runs a version below its tenant's minimum; returns whether
    /// that changed (an unknown agent changes nothing).
    pub fn set_outdated(&mut self, device_id: &str, outdated: bool) -> bool {
        match self.agents.get_mut(device_id) {
            Some(a) if a.outdated != outdated => {
                a.outdated = outdated;
                true
            }
            _ => false,
        }
    }

    /// One more job in flight on `printer_id`.
    pub fn begin(&mut self, printer_id: &str) {
        *self.in_flight.entry(printer_id.to_owned()).or_default() += 1;
    }

    /// One job fewer in flight on `printer_id`.
    pub fn end(&mut self, printer_id: &str) {
        if let Some(n) = self.in_flight.get_mut(printer_id) {
            *n = n.saturating_sub(1);
        }
    }

    fn route(&self, agent: &AgentLive, cfg: &DispatchConfig, now_ms: u64) -> Option<Route> {
        let fresh = |a: &AgentLive| {
            a.last_heartbeat_ms
                .is_some_and(|t| now_ms.saturating_sub(t) <= 3 * cfg.heartbeat_interval_ms)
        };
        if !fresh(agent) || agent.worst_skew_ms() > cfg.allowed_skew_ms || agent.outdated {
            return None;
        }
        if let Some(peer) = agent.peer {
            return Some(Route::Direct(peer));
        }
        let relay = self.agents.get(agent.relay.as_deref()?)?;
        if relay.site_id != agent.site_id || !fresh(relay) {
            return None;
        }
        relay.peer.map(Route::Relay)
    }

    /// Picks a printer for a job, or `None` when no candidate can take it now.
    pub fn choose(&mut self, want: &Want<'_>, cfg: &DispatchConfig, now_ms: u64) -> Option<Choice> {
        let mut candidates: Vec<(usize, Choice, bool)> = Vec::new();
        for agent in self.agents.values() {
            if agent.tenant_id != want.tenant_id {
                continue;
            }
            let Some(route) = self.route(agent, cfg, now_ms) else {
                continue;
            };
            for p in &agent.printers {
                let id = printer_id(&agent.device_id, &p.name);
                let usable =
                    p.verdict == PrinterVerdict::Verified && p.status == PrinterStatus::Ready;
                let matches = match (want.printer, want.pool) {
                    (Some(wanted), _) => wanted == id,
                    (None, Some(pool)) => pool == p.pool,
                    (None, None) => false,
                };
                let load = self.in_flight.get(&id).copied().unwrap_or(0);
                if !usable || !matches || load >= cfg.max_in_flight_per_printer {
                    continue;
                }
                let excluded = want.excluded.contains(&id);
                candidates.push((
                    load,
                    Choice {
                        printer_id: id,
                        printer_name: p.name.clone(),
                        device_id: agent.device_id.clone(),
                        route,
                    },
                    excluded,
                ));
            }
        }
        let fresh_ones = candidates.iter().any(|(_, _, excluded)| !excluded);
        if !fresh_ones && !want.backoff_over {
            return None;
        }
        candidates.retain(|(_, _, excluded)| !fresh_ones || !excluded);
        // Stable order, so the round-robin turn means something.
        candidates.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| a.1.printer_id.cmp(&b.1.printer_id))
        });
        let least = candidates.first()?.0;
        let tied: Vec<Choice> = candidates
            .into_iter()
            .take_while(|(load, _, _)| *load == least)
            .map(|(_, c, _)| c)
            .collect();
        self.turn = self.turn.wrapping_add(1);
        tied.get(self.turn % tied.len()).cloned()
    }
}

/// What to do with a job whose answer was lost, given a heartbeat of its agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LostAnswer {
    /// Keep waiting for a receipt.
    Wait,
    /// The agent provably never printed it and never will: send it elsewhere.
    Reassign,
    /// The agent restarted since: nobody can know; an operator decides.
    InDoubt,
}

/// Judges a lost answer from a heartbeat that does not list the job among its receipts.
pub fn judge_lost_answer(
    hb: &Heartbeat,
    dispatched_at_ms: u64,
    deadline_ms: u64,
    cfg: &DispatchConfig,
) -> LostAnswer {
    // The agent's boot by its own clock: uptime is whole seconds rounded down, so the process
    // started at most a second before this instant, and our clock may differ by the skew.
    let boot_ms = hb.clock_ms.saturating_sub(hb.uptime_s.saturating_mul(1000));
    if boot_ms > dispatched_at_ms + cfg.allowed_skew_ms + 1_000 {
        // Surely a new process: the request went to the old one, which may have printed it.
        return LostAnswer::InDoubt;
    }
    if hb.clock_ms <= deadline_ms + cfg.allowed_skew_ms {
        // The job may still reach this process, and it may still print it.
        return LostAnswer::Wait;
    }
    // Past the deadline, nothing prints it any more. Receipts live in the agent's memory: only
    // a process provably running at the send (its latest possible boot, plus the skew, before
    // it) would list the job had it got it. One that may have started after the send may have
    // replaced a process that printed the job and died.
    if boot_ms + cfg.allowed_skew_ms >= dispatched_at_ms {
        LostAnswer::InDoubt
    } else {
        LostAnswer::Reassign
    }
}

#[cfg(test)]
mod tests;
