//! Names inside a data directory (and of the store's secrets) that more than one layer uses:
//! `init` writes them, `serve` reads them, the store and the CA agree on them.

use std::path::{Path, PathBuf};

/// The coordinator's TLS certificate (PEM), relative to the data directory.
pub const TLS_CERT: &str = "tls/cert.pem";
/// The coordinator's TLS private key (PEM, mode 0600), relative to the data directory.
pub const TLS_KEY: &str = "tls/key.pem";
/// The store secret holding the CA's Ed25519 signing key.
pub const CA_SECRET: &str = "ca_ed25519";

/// Where the sled database lives inside a data directory.
pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join("store")
}

/// Where uploaded release artifacts live inside a data directory (`releases/VERSION/NAME`).
pub fn releases_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("releases")
}
