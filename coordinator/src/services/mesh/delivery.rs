//! Delivery: each dispatch pass sends queued jobs to free printers (sealed to the chosen
//! agent, straight or through a site peer); the tick puts silent agents' jobs in doubt.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;

use sealprint_protocol::{seal, Forward, JobHeader, JobOutcome, PrinterVerdict, Request};
use tracing::{debug, info_span, warn};

use super::{now_ms, Attempt, EventLoop, Waiting};
use crate::core::dispatch::{AgentLive, Choice, Route, Want};
use crate::core::metrics::MeshView;
use crate::store::{JobRecord, JobStatus, Store};

impl EventLoop {
    pub(super) fn on_tick(&mut self) {
        let now = now_ms();
        // Jobs whose agent went silent well past the deadline: nobody can say; an operator decides.
        // Its receipts settle it when the agent is heard again.
        let silent: Vec<(String, (u64, u64))> = self
            .attempts
            .iter()
            .filter(|(_, a)| {
                now > a.deadline_ms + self.cfg.allowed_skew_ms + 3 * self.cfg.heartbeat_interval_ms
                    && self
                        .fleet
                        .agent(&a.device_id)
                        .and_then(|l| l.last_heartbeat_ms)
                        .is_none_or(|t| t + 3 * self.cfg.heartbeat_interval_ms < now)
            })
            .map(|(j, a)| (j.clone(), (a.dispatched_at_ms, a.deadline_ms)))
            .collect();
        for (job_id, window) in silent {
            self.finish_attempt(
                &job_id,
                Ok(JobOutcome::InDoubt {
                    job_id: job_id.clone(),
                    reason: "agent silent since the job was sent".into(),
                }),
            );
            if let Some(d) = self.in_doubt.get_mut(&job_id) {
                d.unheard = Some(window);
            }
        }
        self.dispatch();
        crate::core::metrics::get().mesh(&self.view(now));
    }

    /// What the metrics show of the loop at `now` (see [`crate::core::metrics::MeshView`]).
    fn view(&self, now: u64) -> MeshView {
        let online = |a: &&AgentLive| {
            a.last_heartbeat_ms
                .is_some_and(|t| t + 3 * self.cfg.heartbeat_interval_ms >= now)
        };
        let mut printers = [0; 3];
        let mut agents_online = 0;
        for agent in self.fleet.agents().filter(online) {
            agents_online += 1;
            for p in &agent.printers {
                printers[match p.verdict {
                    PrinterVerdict::Verified => 0,
                    PrinterVerdict::Refused => 1,
                    PrinterVerdict::Unreachable => 2,
                }] += 1;
            }
        }
        MeshView {
            queued: self.queue.len(),
            dispatched: self.attempts.len(),
            in_doubt: self.in_doubt.len(),
            agents_online,
            connections: self
                .swarm
                .network_info()
                .connection_counters()
                .num_connections() as usize,
            printers,
        }
    }

    /// Sends as many queued jobs as there are free printers.
    pub(super) fn dispatch(&mut self) {
        let now = now_ms();
        let mut still_waiting = VecDeque::new();
        let mut holds: HashMap<String, Option<String>> = HashMap::new();
        let mut sent = 0usize;
        // Wants (tenant, pool, printer) no printer could take in this pass: the same want
        // without exclusions finds nothing either, so it is not asked again.
        let mut nothing_for: HashSet<(String, Option<String>, Option<String>)> = HashSet::new();
        while let Some(w) = self.queue.pop_front() {
            let hold = holds
                .entry(w.tenant_id.clone())
                .or_insert_with(|| hold_reason(&self.store, &w.tenant_id, now))
                .clone();
            let expired = now > w.expires_at_ms;
            if hold.is_some() && !expired {
                still_waiting.push_back(w);
                continue;
            }
            if expired {
                match self.store.job(&w.tenant_id, &w.job_id) {
                    Ok(Some(job)) if job.status == JobStatus::Queued => {
                        let reason = match hold {
                            Some(r) => format!("not printed before it expired: {r}"),
                            None => {
                                "no verified printer of the pool took the job before it expired"
                                    .to_owned()
                            }
                        };
                        self.fail(job, &reason);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        warn!(job = %w.job_id, error = %e, "job not readable; retrying later");
                        still_waiting.push_back(w);
                    }
                }
                continue;
            }
            let key = (w.tenant_id.clone(), w.pool.clone(), w.printer.clone());
            if w.excluded.is_empty() && nothing_for.contains(&key) {
                still_waiting.push_back(w);
                continue;
            }
            let want = Want {
                tenant_id: &w.tenant_id,
                pool: w.pool.as_deref(),
                printer: w.printer.as_deref(),
                excluded: &w.excluded,
                backoff_over: now.saturating_sub(w.updated_at_ms) >= self.cfg.retry_backoff_ms,
            };
            let Some(choice) = self.fleet.choose(&want, &self.cfg, now) else {
                if w.excluded.is_empty() {
                    nothing_for.insert(key);
                }
                still_waiting.push_back(w);
                continue;
            };
            match self.store.job(&w.tenant_id, &w.job_id) {
                Ok(Some(job)) if job.status == JobStatus::Queued => {
                    self.send(job, choice, now);
                    sent += 1;
                }
                Ok(_) => {}
                Err(e) => {
                    warn!(job = %w.job_id, error = %e, "job not readable; retrying later");
                    still_waiting.push_back(w);
                }
            }
        }
        self.queue = still_waiting;
        self.backlog
            .queued
            .store(self.queue.len(), Ordering::Relaxed);
        if sent > 0 {
            // The requests only leave when the swarm is next polled: make every `dispatched`
            // state durable first, so a restart never sends a job a second time.
            if let Err(e) = self.store.flush() {
                warn!(error = %e, "store flush failed");
            }
        }
    }

    pub(super) fn send(&mut self, mut job: JobRecord, choice: Choice, now: u64) {
        let _span = info_span!("job", job = %job.id).entered();
        let Some(agent) = self.fleet.agent(&choice.device_id).cloned() else {
            return self.queue.push_back(Waiting::of(&job));
        };
        // The send path checks revocation itself: the device, and the relay on the way.
        let relay_revoked = match choice.route {
            Route::Relay(peer) => self
                .peers
                .get(&peer)
                .is_none_or(|v| self.is_revoked(&v.device_id)),
            Route::Direct(_) => false,
        };
        if self.is_revoked(&agent.device_id) || relay_revoked {
            warn!(device = %agent.device_id, "job not sent: the device or its relay is revoked");
            self.fleet.remove(&agent.device_id);
            return self.queue.push_back(Waiting::of(&job));
        }
        let label = match self.store.label(&job.tenant_id, &job.id) {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %e, "label unreadable");
                return self.fail(job, "label no longer available");
            }
        };
        let deadline_ms = now + self.cfg.attempt_window_ms;
        let header = JobHeader {
            job_id: job.id.clone(),
            tenant_id: job.tenant_id.clone(),
            site_id: agent.site_id.clone(),
            device_id: agent.device_id.clone(),
            printer: choice.printer_name.clone(),
            deadline_ms,
            attempt: job.attempts + 1,
        };
        let sealed = match seal(
            header,
            job.format,
            &label,
            self.identity.x25519_secret(),
            &agent.x25519_public,
        ) {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "label not sealed");
                return self.fail(job, "label could not be sealed");
            }
        };
        drop(label);
        let envelope = match sealed.digest() {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "sealed label has no digest");
                return self.fail(job, "label could not be sealed");
            }
        };
        let request = match choice.route {
            Route::Direct(peer) => self
                .swarm
                .behaviour_mut()
                .rr
                .send_request(&peer, Request::Job(sealed)),
            Route::Relay(peer) => self.swarm.behaviour_mut().rr.send_request(
                &peer,
                Request::Forward(Forward {
                    device_id: agent.device_id.clone(),
                    job: sealed,
                }),
            ),
        };
        crate::core::metrics::get().dispatched(job.updated_at_ms, now);
        job.status = JobStatus::Dispatched;
        job.printer = Some(choice.printer_id.clone());
        job.agent = Some(choice.device_id.clone());
        job.attempts += 1;
        job.attempt_deadline_ms = Some(deadline_ms);
        job.updated_at_ms = now;
        if let Err(e) = self.store.update_job(&job) {
            // The request is already out; keep tracking it in memory.
            warn!(error = %e, "job state not stored");
        }
        debug!(printer = %choice.printer_id, route = ?choice.route, attempt = job.attempts, "job sent");
        self.fleet.begin(&choice.printer_id);
        self.requests.insert(request, job.id.clone());
        self.attempts.insert(
            job.id.clone(),
            Attempt {
                tenant_id: job.tenant_id,
                printer_id: choice.printer_id,
                device_id: choice.device_id,
                expect: Some((agent.ed25519_public, envelope)),
                direct: matches!(choice.route, Route::Direct(_)),
                dispatched_at_ms: now,
                deadline_ms,
                request: Some(request),
                attempt: job.attempts,
                counted: true,
            },
        );
    }
}

/// Why the queued jobs of `tenant_id` must not be printed now (the tenant is suspended, its
/// subscription lapsed, a compliance requirement or an alert restricts it), or `None`. Jobs
/// accepted before that stay queued until it is lifted or they expire. Read afresh on every
/// dispatch pass, so a suspension holds the very next job. A store error holds nothing: the
/// gates at submission still ran.
fn hold_reason(store: &Store, tenant_id: &str, now: u64) -> Option<String> {
    let tenant = match store.tenant(tenant_id) {
        Ok(Some(t)) => t,
        Ok(None) => return Some("the tenant no longer exists".into()),
        Err(e) => {
            warn!(tenant = %tenant_id, error = %e, "tenant not readable; not holding its jobs");
            return None;
        }
    };
    let gate = crate::core::compliance::label_gate(
        tenant.suspension.as_ref(),
        tenant.subscription.state,
        tenant.attestation.as_ref(),
        &tenant.tier,
        now,
    );
    match gate {
        Err(crate::core::compliance::GateRefusal::Suspended(_)) => {
            return Some("the tenant is suspended".into())
        }
        Err(crate::core::compliance::GateRefusal::SubscriptionInactive(_)) => {
            return Some("the subscription is not active".into())
        }
        Err(crate::core::compliance::GateRefusal::Restricted(reason)) => return Some(reason),
        Ok(_) => {}
    }
    match store.restriction(tenant_id) {
        Ok(Some(_)) => Some("the tenant is restricted by an alert".into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::hold_reason;
    use crate::core::compliance::{SubscriptionState, Suspension};
    use crate::core::crypto::MasterKey;
    use crate::store::{AlertRule, Store};

    #[test]
    fn a_tenants_jobs_are_held_while_it_may_not_print() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), MasterKey::from_bytes([3; 32])).expect("store");
        assert_eq!(
            hold_reason(&store, "tnt-gone", 1).as_deref(),
            Some("the tenant no longer exists")
        );
        let t = store.create_tenant("Acme", 1).expect("tenant").id;
        store
            .update_tenant(&t, |t| t.subscription.state = SubscriptionState::Active)
            .expect("update");
        assert_eq!(hold_reason(&store, &t, 2), None);
        store
            .update_tenant(&t, |t| {
                t.suspension = Some(Suspension {
                    reason: "INC-1".into(),
                    at_ms: 2,
                    by: "usr-0".into(),
                })
            })
            .expect("update");
        assert_eq!(
            hold_reason(&store, &t, 3).as_deref(),
            Some("the tenant is suspended")
        );
        store
            .update_tenant(&t, |t| t.suspension = None)
            .expect("update");
        store
            .raise_alert(&t, AlertRule::LabelVolume, None, "volume", 4)
            .expect("alert");
        assert_eq!(
            hold_reason(&store, &t, 5).as_deref(),
            Some("the tenant is restricted by an alert")
        );
    }
}
