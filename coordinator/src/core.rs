//! The bottom layer: pure rules and primitives, handed `now` by their callers. Imports the
//! protocol crate and outside crates only, never another layer of this crate.
//!
//! - [`clock`]: `now_ms` and UTC formatting; [`paths`]: names inside a data directory;
//!   [`buffer`]: zeroizing buffers that grow by copy.
//! - [`crypto`]: master key, tenant data keys, AES-256-GCM, argon2id.
//! - [`audit`]: the audit entry and its hash chain and checkpoints.
//! - [`accounts`]: password, lockout and role rules; [`compliance`]: the tenant gates
//!   (subscription, attestation, suspension), tiers and the billing webhook's signatures.
//! - [`dispatch`]: the rules of choosing a printer and judging answers; [`dispatcher`]: the
//!   [`dispatcher::Dispatch`] trait the API and SP-API hand jobs to; [`agents`]: what
//!   agents must run.
//! - [`failures`]: the tally that summarises strangers' failures per source and interval.
//! - [`metrics`]: the Prometheus metric families every layer records into; [`readiness`]:
//!   what `/readyz` answers.

pub mod accounts;
pub mod agents;
pub mod audit;
pub mod buffer;
pub mod clock;
pub mod compliance;
pub mod crypto;
pub mod dispatch;
pub mod dispatcher;
pub mod failures;
pub mod metrics;
pub mod paths;
pub mod readiness;
pub mod rollout;
