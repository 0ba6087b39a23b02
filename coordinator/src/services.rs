//! The services layer: long-running work over the store and the outbound client. Imports
//! `outbound`, `store` and `core`, never `api` or `app`.
//!
//! - [`labels`]: label submission as one flow (admission, checks, storing, dispatch).
//! - [`ca`]: the coordinator identity and device certificates.
//! - [`mesh`]: job delivery to agents over libp2p ([`delivery_config`] holds its settings).
//! - [`spapi`]: labels from Amazon's Selling Partner API (MFN v0, Shipping v2).
//! - [`notifications`]: webhook deliveries; [`monitor`]: alert rules, tiers and renewals;
//!   [`retention`]: PII purge, audit retention and checkpoints (these three run as background
//!   tasks of `app::run::start`).
//! - [`releases`]: agent releases (signed manifests, artifacts, offers) for remote updates.
//! - [`failures`]: counts strangers' failures and writes their summaries;
//!   [`audit_writer`]: the mesh loop's audit entries, written by a task of their own;
//!   [`events`]: job and fleet events for the webhooks, handed off the same way; both
//!   through a [`store_writer`].

pub mod audit_writer;
pub mod ca;
pub mod delivery_config;
pub mod events;
pub mod failures;
pub mod labels;
pub mod mesh;
pub mod monitor;
pub mod notifications;
pub mod releases;
pub mod retention;
pub mod spapi;
pub mod store_writer;
