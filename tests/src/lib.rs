//! # sealprint-testkit
//!
//! Test doubles and the cluster harness for sealprint. Nothing here ships in a production
//! binary.
//!
//! # Layout
//! - [`rogue`]: a lying site peer (enrolled like any station) for the issue-11 attack tests.
//! - [`printer_sim`]: a raw-TCP printer simulator that answers like a Zebra (or like an
//!   impostor), and records what it printed.
//! - [`api_client`]: an HTTPS client for the coordinator's admin API.
//! - [`cluster`]: runs the real coordinator and agent binaries as processes.
//! - [`compose_demo`]: the compose demo's one-shots (secrets, bootstrap, labels).
//! - [`cups`]: a private CUPS scheduler and `ippeveprinter` (Linux, as root).
//! - [`delay_proxy`]: a TCP proxy that delays every byte (a slow WAN link).
//! - [`hostile`]: a mesh peer with no certificate that stays silent, pushes huge frames or
//!   enrolls with made-up tokens (the attack tests).
//! - [`leak_scan`]: looks for a label's text on disk, raw, base64 or gzipped.
//! - [`ledger`]: labels sent under faults and the check of the delivery promise.
//! - [`load`]: simulated agents (real libp2p endpoints) for the heartbeat load benchmark.
//! - `mesh_request`: one request and its answer on a swarm nobody else drives yet (`load`,
//!   `rogue`).
//! - [`netns`]: several hosts on one machine (network namespaces on a bridge).
//! - [`scenario`]: building blocks shared by the demo and the end-to-end tests (a tenant, a
//!   site, enrolled agents with simulated printers).
//! - `sim_activity`: what a printer simulator is doing (open connections, jobs received,
//!   stalled), behind [`printer_sim::SimHandle`].
//! - [`wine`]: a private Wine prefix in which the Windows agent runs (Linux).
//! - [`stats`]: latency percentiles for the demo and the benchmark.
//! - [`spapi_standin`]: an HTTPS stand-in for Amazon's SP-API (LWA, Tokens, MFN v0, Shipping
//!   v2) that can misbehave on demand.
//! - [`webhook_receiver`]: an HTTPS webhook receiver that records deliveries and checks
//!   their signatures.
//! - [`tls_server`]: the HTTPS server under those two (self-signed, loopback).

pub mod api_client;
pub mod cluster;
pub mod compose_demo;
#[cfg(target_os = "linux")]
pub mod cups;
pub mod delay_proxy;
pub mod hostile;
pub mod leak_scan;
pub mod ledger;
pub mod load;
mod mesh_request;
pub mod netns;
pub mod printer_sim;
pub mod rogue;
pub mod scenario;
mod sim_activity;
pub mod spapi_standin;
pub mod stats;
pub mod tls_server;
pub mod webhook_receiver;
#[cfg(target_os = "linux")]
pub mod wine;

/// The wall clock in unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
