//! # sealprint-coordinator
//!
//! The cloud side of sealprint: the certificate authority of the devices, the encrypted
//! store of tenants, agents, printers and jobs, the hash-chained audit log, the HTTPS admin
//! API, and the libp2p mesh endpoint that delivers sealed labels to agents.
//!
//! # Layout
//! Each folder is a layer; a layer imports only the layers below it (`tests/layers.rs`
//! enforces this; `store` and `outbound` sit side by side), top to bottom:
//! - [`app`]: the process: configuration, `init`, [`start`] / [`run`], `audit verify`.
//! - [`api`]: the HTTPS admin API: server, routing, authentication, handlers.
//! - [`services`]: the CA, the mesh (job delivery), SP-API, notifications, retention, monitor.
//! - [`outbound`]: the HTTPS client, backoff and user agent shared by SP-API and webhooks.
//! - [`store`]: the sled store and its records.
//! - [`core`]: pure rules and primitives handed `now`: clock, data-dir names, crypto, the
//!   audit chain, accounts, compliance, the dispatch rules and the `Dispatch` trait.
//!
//! [`run`] takes an already-bound API listener and a cancellation token, so tests bind port 0
//! and stop it at will. What this crate does not do: install a tracing subscriber or handle
//! signals (the binary does), or print labels (agents do).

pub mod api;
pub mod app;
pub mod core;
pub mod outbound;
pub mod services;
pub mod store;

pub use crate::api::ApiState;
pub use crate::app::config::ServeConfig;
pub use crate::app::error::Error;
pub use crate::app::run::{run, start, Ready, Started};
pub use crate::core::clock::now_ms;
pub use crate::core::crypto::MasterKey;
pub use crate::core::dispatcher::Dispatch;
pub use crate::services::ca::{issue_certificate, Identity};
pub use crate::store::Store;
