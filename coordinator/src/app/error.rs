//! The error `run::start` and `run::run` return: why the coordinator could not start or
//! stopped abnormally.
//!
//! Each module has its own error enum ([`crate::store::StoreError`],
//! [`crate::services::ca::CaError`], [`crate::core::crypto::CryptoError`], [`crate::app::config::ConfigError`],
//! [`crate::app::init::InitError`]); this one only wraps them at the library's edge. No message
//! holds a secret or PII.

use thiserror::Error;

use crate::api::TlsError;
use crate::core::crypto::CryptoError;
use crate::services::ca::CaError;
use crate::store::StoreError;

/// Why the coordinator could not start or had to stop.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The master key could not be loaded.
    #[error("master key: {0}")]
    MasterKey(#[from] CryptoError),
    /// The store could not be opened or read.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The data directory was never initialised.
    #[error("the data directory is not initialised: run `sealprint-coordinator init` first")]
    NotInitialised,
    /// The coordinator's identity could not be loaded.
    #[error("identity: {0}")]
    Identity(#[from] CaError),
    /// The API's TLS certificate or key could not be loaded.
    #[error("api tls: {0}")]
    Tls(#[from] TlsError),
    /// The mesh endpoint did not start.
    #[error("mesh: {0}")]
    Mesh(String),
    /// The configuration is unusable (e.g. the billing webhook secret file).
    #[error("configuration: {0}")]
    Config(#[from] crate::app::config::ConfigError),
    /// The SP-API client could not be set up (extra CA file, TLS configuration).
    #[error("spapi: {0}")]
    SpApi(#[from] crate::services::spapi::SetupError),
    /// The `/metrics` listener could not be bound.
    #[error("metrics listener: {0}")]
    Metrics(std::io::Error),
    /// The API listener failed.
    #[error("api listener: {0}")]
    Listener(#[from] std::io::Error),
}
