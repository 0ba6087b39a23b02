//! Where the agent keeps its data, and who may read it.
//!
//! - [`default_dir`]: on Windows `%ProgramData%\sealprint` (the MSI creates it), used by every
//!   command when neither `--data-dir` nor the config names one; elsewhere there is no
//!   default (the systemd unit and the compose file name the directory).
//! - [`restrict`]: the directory is the agent's alone. On Unix mode 0700; on Windows a
//!   protected DACL ([`WINDOWS_SDDL`]: SYSTEM and Administrators, full control, inherited by
//!   everything below, nothing inherited from above), the counterpart of 0700 for a service
//!   that runs as LocalSystem.
//! - [`log_dir`]: the service's log files, `logs` under the data directory.
//!
//! It does not create the files inside: the identity module does.

#[cfg(windows)]
mod acl;

use std::path::{Path, PathBuf};

/// The data directory's name under `%ProgramData%`.
pub const WINDOWS_DIR_NAME: &str = "sealprint";

/// The DACL of the data directory on Windows: protected (`P`: no inherited entries), SYSTEM
/// (`SY`) and built-in Administrators (`BA`) full access (`FA`), inherited by files and
/// folders below (`OICI`).
pub const WINDOWS_SDDL: &str = "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)";

/// The directory of the service's log files under `data_dir`.
pub fn log_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("logs")
}

/// The default data directory given `%ProgramData%` (`None` when unset: then
/// `C:\ProgramData`, Windows' own default).
pub fn windows_default(program_data: Option<&std::ffi::OsStr>) -> PathBuf {
    let base = match program_data {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(r"C:\ProgramData"),
    };
    base.join(WINDOWS_DIR_NAME)
}

/// This platform's default data directory: `%ProgramData%\sealprint` on Windows, none
/// elsewhere.
pub fn default_dir() -> Option<PathBuf> {
    if cfg!(windows) {
        Some(windows_default(std::env::var_os("ProgramData").as_deref()))
    } else {
        None
    }
}

/// Makes `dir` readable by the agent's account only (see the module docs). Call it on a
/// directory that exists.
///
/// # Errors
/// The system's error.
pub fn restrict(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
    }
    #[cfg(windows)]
    {
        acl::set(dir, WINDOWS_SDDL)
    }
    #[cfg(not(any(unix, windows)))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_windows_default_is_under_program_data() {
        assert_eq!(
            windows_default(Some(std::ffi::OsStr::new("D:\\Data"))),
            PathBuf::from("D:\\Data").join("sealprint")
        );
        assert_eq!(
            windows_default(None),
            PathBuf::from(r"C:\ProgramData").join("sealprint")
        );
        assert_eq!(
            windows_default(Some(std::ffi::OsStr::new(""))),
            PathBuf::from(r"C:\ProgramData").join("sealprint")
        );
    }

    #[test]
    fn unix_has_no_default_and_logs_go_below_the_data_dir() {
        if cfg!(unix) {
            assert_eq!(default_dir(), None);
        }
        assert_eq!(
            log_dir(Path::new("/var/lib/x")),
            Path::new("/var/lib/x/logs")
        );
    }

    #[test]
    fn the_sddl_is_protected_and_names_only_system_and_administrators() {
        assert!(WINDOWS_SDDL.starts_with("D:P"));
        let trustees: Vec<&str> = WINDOWS_SDDL
            .split('(')
            .skip(1)
            .map(|ace| ace.trim_end_matches(')').rsplit(';').next().unwrap_or(""))
            .collect();
        assert_eq!(trustees, ["SY", "BA"]);
    }
}
