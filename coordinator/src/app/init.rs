//! `sealprint-coordinator init`: creates a data directory from nothing.
//!
//! In order: checks the admin password (the account rules of [`crate::core::accounts`], plus at
//! least [`MIN_PASSWORD_LEN`] characters for this most privileged account) and that the master key file lies outside the data
//! directory; creates the directory (0700) and the master key file if absent (0600); opens the
//! store and refuses an initialised one; creates the identity (CA key, libp2p seed, X25519
//! key, all encrypted under the master key); writes the API's TLS certificate and key
//! (self-signed unless given); creates the first platform admin; marks the store initialised.
//!
//! What it does not do: start anything, or repair a half-initialised directory (a failed init
//! leaves a directory that is not marked initialised; remove it and run init again).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use thiserror::Error;
use zeroize::Zeroizing;

use crate::api::{self, TlsError};
use crate::core::accounts::{self, PasswordError};
use crate::core::crypto::{self, CryptoError, MasterKey};
use crate::core::paths::{TLS_CERT, TLS_KEY};
use crate::services::ca::{CaError, Identity};
use crate::store::{AuditEntry, Store, StoreError};

/// Shortest admin password accepted.
pub const MIN_PASSWORD_LEN: usize = 12;

/// What `init` needs.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Data directory to create.
    pub data_dir: PathBuf,
    /// Master key file (created if absent), outside the data directory.
    pub master_key_file: PathBuf,
    /// The first admin's email.
    pub admin_email: String,
    /// File holding the first admin's password (one trailing newline is ignored).
    pub admin_password_file: PathBuf,
    /// An API certificate chain (PEM) to use instead of a self-signed one.
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Extra DNS names or IPs for the self-signed certificate.
    pub tls_names: Vec<String>,
}

/// What `init` made.
#[derive(Debug, Clone)]
pub struct InitReport {
    /// The admin user's id.
    pub admin_user_id: String,
    /// Hex sha256 of the CA public key.
    pub ca_fingerprint: String,
    /// The coordinator's PeerId.
    pub peer_id: String,
    /// Whether a new master key file was written.
    pub created_master_key: bool,
}

/// Why init refused or failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum InitError {
    /// The admin password is shorter than [`MIN_PASSWORD_LEN`] or breaks an account rule.
    #[error("the admin password is refused: {0}")]
    WeakPassword(PasswordError),
    /// The admin email does not look like one.
    #[error("the admin email is not a valid address")]
    BadEmail,
    /// The master key file would be inside the data directory.
    #[error("the master key file must be outside the data directory")]
    KeyInsideDataDir,
    /// Only one of `--tls-cert` and `--tls-key` was given.
    #[error("--tls-cert and --tls-key go together")]
    TlsPair,
    /// The data directory is already initialised.
    #[error("{0} is already initialised")]
    AlreadyInitialised(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The master key could not be loaded or created.
    #[error(transparent)]
    MasterKey(#[from] CryptoError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The identity could not be created.
    #[error(transparent)]
    Identity(#[from] CaError),
    /// The TLS certificate could not be made or the given one is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> InitError + '_ {
    move |source| InitError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// An absolute path with its longest existing prefix resolved (symlinks) and the rest
/// normalised lexically (`.`, `..`), so two spellings of one place compare equal.
fn resolved(path: &Path) -> std::io::Result<PathBuf> {
    use std::path::Component;
    let abs = std::path::absolute(path)?;
    let comps: Vec<Component<'_>> = abs.components().collect();
    for i in (1..=comps.len()).rev() {
        let prefix: PathBuf = comps[..i].iter().collect();
        if let Ok(mut out) = prefix.canonicalize() {
            for c in &comps[i..] {
                match c {
                    Component::ParentDir => {
                        out.pop();
                    }
                    Component::Normal(n) => out.push(n),
                    _ => {}
                }
            }
            return Ok(out);
        }
    }
    Ok(abs)
}

/// Reads a password file; drops one trailing `\n` (or `\r\n`).
fn read_password(path: &Path) -> Result<Zeroizing<String>, InitError> {
    let mut s = Zeroizing::new(fs::read_to_string(path).map_err(io_err(path))?);
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
    Ok(s)
}

/// Checks the first admin's password: the account rules (not containing the email's local
/// part or the product name), and at least [`MIN_PASSWORD_LEN`] characters.
///
/// # Errors
/// [`InitError::WeakPassword`].
pub fn check_password(password: &str, email: &str) -> Result<(), InitError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(InitError::WeakPassword(PasswordError::Length));
    }
    let local = email.split('@').next().unwrap_or_default();
    accounts::check_password(password, &[local, "sealprint"]).map_err(InitError::WeakPassword)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), InitError> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))?;
    f.write_all(bytes).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

/// Runs init.
///
/// # Errors
/// An [`InitError`] saying what was refused or failed.
pub fn init(opts: &InitOptions, now_ms: u64) -> Result<InitReport, InitError> {
    let password = read_password(&opts.admin_password_file)?;
    let email = opts.admin_email.trim();
    if email.len() > 254 || !email.contains('@') || email.chars().any(char::is_whitespace) {
        return Err(InitError::BadEmail);
    }
    check_password(&password, email)?;
    let tls_given = match (&opts.tls_cert, &opts.tls_key) {
        (Some(c), Some(k)) => Some((c.clone(), k.clone())),
        (None, None) => None,
        _ => return Err(InitError::TlsPair),
    };
    let dir = resolved(&opts.data_dir).map_err(io_err(&opts.data_dir))?;
    let key_path = resolved(&opts.master_key_file).map_err(io_err(&opts.master_key_file))?;
    if key_path.starts_with(&dir) {
        return Err(InitError::KeyInsideDataDir);
    }
    if crate::core::paths::db_path(&dir).exists() {
        return Err(InitError::AlreadyInitialised(dir.display().to_string()));
    }

    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(io_err(&dir))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(io_err(&dir))?;

    let (master, created_master_key) = if key_path.exists() {
        (MasterKey::load(&key_path)?, false)
    } else {
        (MasterKey::create_file(&key_path)?, true)
    };

    let store = Store::open(&dir, master)?;
    if store.is_initialised()? {
        return Err(InitError::AlreadyInitialised(dir.display().to_string()));
    }
    let identity = Identity::create(&store)?;

    let tls_dir = dir.join("tls");
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&tls_dir)
        .map_err(io_err(&tls_dir))?;
    let (cert_pem, key_pem) = match tls_given {
        Some((c, k)) => {
            let cert = fs::read(&c).map_err(io_err(&c))?;
            let key = Zeroizing::new(fs::read(&k).map_err(io_err(&k))?);
            // Refuse a pair that the server could not load later.
            api::tls_server_config(&cert, &key)?;
            (cert, key)
        }
        None => {
            let mut names = vec![
                "localhost".to_owned(),
                "127.0.0.1".to_owned(),
                "::1".to_owned(),
            ];
            names.extend(opts.tls_names.iter().cloned());
            let (cert, key) = api::self_signed(names)?;
            (cert.into_bytes(), Zeroizing::new(key.as_bytes().to_vec()))
        }
    };
    write_private(&dir.join(TLS_CERT), &cert_pem)?;
    write_private(&dir.join(TLS_KEY), &key_pem)?;

    let hash = crypto::hash_password(&password)?;
    let admin = store.create_user(email, hash, true, None, Vec::new(), now_ms)?;
    store.append_audit(AuditEntry {
        at_ms: now_ms,
        tenant_id: None,
        actor: "coordinator".into(),
        action: "coordinator.initialised".into(),
        object: Some(admin.id.clone()),
        outcome: "ok".into(),
    })?;
    store.mark_initialised()?;
    Ok(InitReport {
        admin_user_id: admin.id,
        ca_fingerprint: identity.ca_fingerprint(),
        peer_id: identity.peer_id().to_string(),
        created_master_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn opts(root: &Path) -> InitOptions {
        let pw = root.join("pw");
        fs::write(&pw, "Correct-Horse-Battery-9\n").expect("write");
        InitOptions {
            data_dir: root.join("data"),
            master_key_file: root.join("master.key"),
            admin_email: "Admin@Example.com".into(),
            admin_password_file: pw,
            tls_cert: None,
            tls_key: None,
            tls_names: vec!["coord.example".into()],
        }
    }

    #[test]
    fn init_creates_everything_once() {
        let root = tempfile::tempdir().expect("tempdir");
        let o = opts(root.path());
        let r = init(&o, 1).expect("init");
        assert!(r.admin_user_id.starts_with("usr-"));
        assert!(r.peer_id.starts_with("12D3"));
        assert!(r.created_master_key);
        let mode = |p: &Path| fs::metadata(p).expect("meta").mode() & 0o777;
        assert_eq!(mode(&o.data_dir), 0o700);
        assert_eq!(mode(&o.master_key_file), 0o600);
        assert_eq!(mode(&o.data_dir.join(TLS_KEY)), 0o600);
        assert_eq!(mode(&o.data_dir.join(TLS_CERT)), 0o600);
        let cert = fs::read(o.data_dir.join(TLS_CERT)).expect("cert");
        let key = fs::read(o.data_dir.join(TLS_KEY)).expect("key");
        api::tls_server_config(&cert, &key).expect("usable tls");
        assert!(matches!(init(&o, 2), Err(InitError::AlreadyInitialised(_))));

        let key = MasterKey::load(&o.master_key_file).expect("key");
        let store = Store::reopen(&o.data_dir, &key).expect("store");
        assert!(store.is_initialised().expect("read"));
        let admin = store
            .user_by_email("admin@example.com")
            .expect("read")
            .expect("admin");
        assert!(admin.platform_admin);
        assert!(crypto::verify_password(
            "Correct-Horse-Battery-9",
            &admin.password_hash
        ));
        let id = Identity::load(&store).expect("identity");
        assert_eq!(id.peer_id().to_string(), r.peer_id);
    }

    #[test]
    fn refusals() {
        let root = tempfile::tempdir().expect("tempdir");
        let mut o = opts(root.path());
        fs::write(&o.admin_password_file, "short\n").expect("write");
        assert!(matches!(init(&o, 1), Err(InitError::WeakPassword(_))));
        for weak in [
            "all lowercase but long",
            "Password123!",
            "Admin-Is-Here-2024",
            "Short-Pw-1",
        ] {
            fs::write(&o.admin_password_file, format!("{weak}\n")).expect("write");
            assert!(
                matches!(init(&o, 1), Err(InitError::WeakPassword(_))),
                "{weak}"
            );
        }

        let o2 = opts(root.path());
        o.admin_password_file = o2.admin_password_file;
        o.master_key_file = o.data_dir.join("master.key");
        assert!(matches!(init(&o, 1), Err(InitError::KeyInsideDataDir)));
        o.master_key_file = o.data_dir.join("sub/../../data/x.key");
        assert!(matches!(init(&o, 1), Err(InitError::KeyInsideDataDir)));
        assert!(!o.data_dir.exists(), "nothing created on refusal");

        let o3 = opts(root.path());
        MasterKey::create_file(&o3.master_key_file).expect("key");
        fs::set_permissions(&o3.master_key_file, fs::Permissions::from_mode(0o640)).expect("chmod");
        assert!(matches!(
            init(&o3, 1),
            Err(InitError::MasterKey(CryptoError::KeyFilePermissions { .. }))
        ));
    }
}
