//! The top layer: the process. Reads the configuration, creates data directories, builds
//! every service and the API and runs them. Imports every layer below; nothing imports it.
//!
//! - [`config`]: `serve` configuration (TOML + flags), pure parsing and validation.
//! - [`init`]: `init`, which creates a data directory, keys, TLS files and the first admin.
//! - [`run`]: [`run::start`] and [`run::run`]; [`verify`]: `audit verify`.
//! - [`metrics`]: the `/metrics` listener (`--metrics-listen`).
//! - [`error`]: the error of `run` / `start`.
//! - [`healthcheck`]: `healthcheck`, a running coordinator's `/healthz` (container images).

pub mod config;
pub mod error;
pub mod healthcheck;
pub mod init;
pub mod metrics;
pub mod run;
pub mod verify;
