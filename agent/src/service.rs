//! The agent as a Windows service: what `sealprint-agent service install|uninstall|start|
//! stop|run` registers and how the service behaves.
//!
//! The platform-neutral part is here and unit-tested on Linux: the service's name and
//! description, the arguments the Service Control Manager (SCM) starts it with
//! ([`launch_arguments`]), the restart-on-failure plan ([`FailurePlan`]), how long a stop may
//! take ([`DRAIN_GRACE`], [`STOP_WAIT`]), the exit codes, and the size-rotated log file a
//! service writes instead of stderr ([`log_file`]). The SCM calls themselves (the
//! `windows-service` crate) are in `scm`, compiled on Windows only.
//!
//! It does not run the agent: the binary hands [`scm::run`](self) a closure that does, given
//! the cancellation token the SCM's Stop, Shutdown and Preshutdown controls cancel.

pub mod log_file;
#[cfg(windows)]
pub mod scm;

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use thiserror::Error;

/// The service's name (the MSI's `ServiceInstall` uses the same).
pub const SERVICE_NAME: &str = "sealprint-agent";
/// The name shown in the Services console.
pub const DISPLAY_NAME: &str = "sealprint Print Station agent";
/// The description shown in the Services console.
pub const DESCRIPTION: &str =
    "Enrolls with the sealprint coordinator and prints shipping labels on verified printers.";

/// How long a stopping agent lets its jobs finish (the binary's drain grace).
pub const DRAIN_GRACE: Duration = Duration::from_secs(20);
/// How long `service stop` waits for the service to report Stopped: the drain time plus a
/// margin for the process to exit.
pub const STOP_WAIT: Duration = Duration::from_secs(DRAIN_GRACE.as_secs() + 15);
/// How long `service start` waits for the service to report Running.
pub const START_WAIT: Duration = Duration::from_secs(60);

/// Service-specific exit code when the agent stopped on an error (so the SCM's failure
/// actions restart it).
pub const EXIT_AGENT_FAILED: u32 = 1;
/// Service-specific exit code when the agent's thread panicked.
pub const EXIT_AGENT_PANICKED: u32 = 2;

/// What the SCM does when the service fails: restart it, `restarts` times at most within
/// `reset_after` (the failure count goes back to zero after that long without a failure),
/// waiting `delay` each time; also when it stops with a non-zero exit code (not only when
/// the process crashes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailurePlan {
    /// How many restarts.
    pub restarts: usize,
    /// The wait before each restart.
    pub delay: Duration,
    /// After how long without a failure the count resets.
    pub reset_after: Duration,
    /// Whether a stop with a non-zero exit code counts as a failure.
    pub on_non_crash_failures: bool,
}

/// The plan `service install` sets: 3 restarts, 10 s apart, count reset after a day.
pub const FAILURE_PLAN: FailurePlan = FailurePlan {
    restarts: 3,
    delay: Duration::from_secs(10),
    reset_after: Duration::from_secs(24 * 60 * 60),
    on_non_crash_failures: true,
};

/// The arguments the SCM starts the agent with: `service run --data-dir DIR [--config FILE]`
/// (the MSI registers `service run` alone: the default data directory, no config file).
pub fn launch_arguments(data_dir: &Path, config: Option<&Path>) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["service".into(), "run".into()];
    args.push("--data-dir".into());
    args.push(data_dir.as_os_str().to_owned());
    if let Some(config) = config {
        args.push("--config".into());
        args.push(config.as_os_str().to_owned());
    }
    args
}

/// Why a service command failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// `install` found the service registered already.
    #[error(
        "the service {SERVICE_NAME} is already installed; run `sealprint-agent service \
         uninstall` first to change it"
    )]
    AlreadyInstalled,
    /// The service is not registered.
    #[error("the service {SERVICE_NAME} is not installed")]
    NotInstalled,
    /// `service run` was started from a console, not by the SCM.
    #[error(
        "`service run` is started by the Service Control Manager, not from a console: use \
         `sealprint-agent service start`, or `sealprint-agent run` to run in this console"
    )]
    NotFromScm,
    /// The service did not reach the state in time.
    #[error("the service did not become {state} within {waited:?} (it is {now})")]
    Timeout {
        /// The state waited for.
        state: &'static str,
        /// What it is now.
        now: String,
        /// How long was waited.
        waited: Duration,
    },
    /// The service stopped while it was being started.
    #[error(
        "the service stopped while starting ({exit}); see the log files under the data \
         directory's logs folder"
    )]
    StoppedAtStart {
        /// Its exit code as the SCM reports it.
        exit: String,
    },
    /// A call to the SCM failed.
    #[error("{action}: {detail}")]
    Scm {
        /// What was being done.
        action: &'static str,
        /// The system's error.
        detail: String,
    },
    /// The service commands exist on Windows only.
    #[error(
        "the service commands are for Windows; on Linux install the systemd unit \
         (deploy/systemd/sealprint-agent.service)"
    )]
    NotWindows,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn launch_arguments_name_the_data_dir_and_the_config() {
        let dir = PathBuf::from(r"C:\ProgramData\sealprint");
        assert_eq!(
            launch_arguments(&dir, None),
            ["service", "run", "--data-dir", r"C:\ProgramData\sealprint"]
                .map(OsString::from)
                .to_vec()
        );
        let cfg = PathBuf::from(r"C:\Program Files\sealprint\agent.toml");
        let args = launch_arguments(&dir, Some(&cfg));
        assert_eq!(args.len(), 6);
        assert_eq!(args[4], "--config");
        // One argument, spaces and all: the SCM's command line is quoted by windows-service.
        assert_eq!(args[5], r"C:\Program Files\sealprint\agent.toml");
    }

    #[test]
    fn stop_waits_longer_than_the_drain_and_restarts_are_bounded() {
        assert!(STOP_WAIT > DRAIN_GRACE);
        assert_eq!(
            FAILURE_PLAN,
            FailurePlan {
                restarts: 3,
                delay: Duration::from_secs(10),
                reset_after: Duration::from_secs(86_400),
                on_non_crash_failures: true,
            }
        );
        const { assert!(EXIT_AGENT_FAILED != 0 && EXIT_AGENT_PANICKED != 0) };
    }
}
