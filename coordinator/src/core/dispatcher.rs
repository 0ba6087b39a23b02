//! The [`Dispatch`] trait: what the API and the SP-API fetches tell the job dispatcher (the
//! mesh, or a test fake). Lives here so that the callers above and the mesh beside them
//! depend on it, not on each other.

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
}
