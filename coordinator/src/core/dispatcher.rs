//! The [`Dispatch`] trait: what the API and the SP-API fetches tell the job dispatcher (the
//! mesh, or a test fake). Lives here so that the callers above and the mesh beside them
//! depend on it, not on each other.

/// What an operator does to a job (see [`Dispatch::settle`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettleAction {
    /// An `in_doubt` job was printed: it ends `printed` and its label is deleted.
    Printed,
    /// An `in_doubt` job was not printed: it goes back to the queue.
    NotPrinted,
    /// A `queued` job is cancelled: never sent, its label deleted.
    Cancel,
}

impl SettleAction {
    /// The outcome's API name (`printed`, `not_printed`, `cancel`).
    pub fn as_str(self) -> &'static str {
        match self {
            SettleAction::Printed => "printed",
            SettleAction::NotPrinted => "not_printed",
            SettleAction::Cancel => "cancel",
        }
    }
}

/// An operator's settlement of one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettleRequest {
    /// Tenant.
    pub tenant_id: String,
    /// Job.
    pub job_id: String,
    /// The user (or key) who asked: recorded in the audit log.
    pub actor: String,
    /// What to do.
    pub action: SettleAction,
}

/// What became of a [`SettleRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettleAnswer {
    /// Done: the job's new status (API name).
    Settled(&'static str),
    /// No such job of the tenant.
    NotFound,
    /// The job is not in a state this action applies to: its status (API name).
    WrongState(&'static str),
    /// The dispatcher could not take the request now (busy, stopping): try again.
    Unavailable,
    /// The store failed.
    Failed,
}

/// Where a [`SettleAnswer`] goes: called once, from the dispatcher's own task.
pub type SettleReply = Box<dyn FnOnce(SettleAnswer) + Send>;

/// What the API tells the mesh. Implementations must not block: they hand work over (e.g. on
/// a bounded channel) and return.
pub trait Dispatch: Send + Sync + 'static {
    /// A job was stored as queued (its label encrypted in the store); the dispatcher takes it
    /// from here. Must not block.
    fn job_submitted(&self, tenant_id: &str, job_id: &str);
    /// A device's certificate was revoked; the mesh refuses and disconnects it. Must not
    /// block.
    fn agent_revoked(&self, device_id: &str);
    /// Whether as many jobs wait for a printer as the coordinator holds: new labels are then
    /// refused with 429 and a Retry-After, instead of memory growing without bound.
    fn backlog_full(&self) -> bool {
        false
    }
    /// Settles a job as an operator asked (resolve a job in doubt, cancel a queued one). The
    /// dispatcher decides it in the one place that also hears the agents' receipts, so a
    /// receipt and a resolve cannot both settle a job; `reply` gets the answer. Must not
    /// block. Without a dispatcher that settles, the answer is [`SettleAnswer::Unavailable`].
    fn settle(&self, request: SettleRequest, reply: SettleReply) {
        let _ = request;
        reply(SettleAnswer::Unavailable);
    }
}
