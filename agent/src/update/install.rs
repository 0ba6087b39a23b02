//! The file work of an update and the trial of the new binary (see the parent module for the
//! design): writing `NAME.new`, keeping `NAME.prev`, the atomic rename, restoring, and the
//! guard that runs the new binary as a child until its first acknowledged heartbeat.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{UpdateState, ACK_FILE, TRIAL_ENV};

/// The running binary and the files beside it.
#[derive(Debug, Clone)]
pub struct BinaryPaths {
    /// The binary that runs (and is replaced).
    pub exe: PathBuf,
    /// Where the new bytes are written before the rename.
    pub new: PathBuf,
    /// The previous binary, kept for rollback.
    pub prev: PathBuf,
}

impl BinaryPaths {
    /// The paths around `exe`.
    pub fn of(exe: &Path) -> BinaryPaths {
        let with = |suffix: &str| {
            let mut s = exe.as_os_str().to_owned();
            s.push(suffix);
            PathBuf::from(s)
        };
        BinaryPaths {
            exe: exe.to_owned(),
            new: with(".new"),
            prev: with(".prev"),
        }
    }
}

fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

#[cfg(unix)]
fn make_executable(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o755))
}

#[cfg(not(unix))]
fn make_executable(_file: &std::fs::File) -> std::io::Result<()> {
    Ok(())
}

/// Copies `from` to `to` through a temporary file and a rename.
fn copy_atomically(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut tmp = to.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::copy(from, &tmp)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, to)?;
    sync_dir(to);
    Ok(())
}

/// Writes `bytes` as the new binary, keeps the running one as `prev`, and renames the new one
/// over the running path (atomic).
///
/// # Errors
/// I/O errors; the running path is unchanged unless the final rename succeeded.
pub fn install(paths: &BinaryPaths, bytes: &[u8]) -> std::io::Result<()> {
    {
        let mut f = std::fs::File::create(&paths.new)?;
        f.write_all(bytes)?;
        make_executable(&f)?;
        f.sync_all()?;
    }
    keep_previous(paths)?;
    std::fs::rename(&paths.new, &paths.exe)?;
    sync_dir(&paths.exe);
    Ok(())
}

/// Keeps the running binary as `prev`: a copy on Unix (the path keeps a whole binary
/// throughout); on Windows a running `.exe` cannot be replaced but can be renamed, so it is
/// moved to `prev` and the new one takes its name right after.
#[cfg(not(windows))]
fn keep_previous(paths: &BinaryPaths) -> std::io::Result<()> {
    copy_atomically(&paths.exe, &paths.prev)
}

#[cfg(windows)]
fn keep_previous(paths: &BinaryPaths) -> std::io::Result<()> {
    let _ = std::fs::remove_file(&paths.prev);
    std::fs::rename(&paths.exe, &paths.prev)
}

/// Puts the previous binary back at the running path (atomic; `prev` is kept).
///
/// # Errors
/// I/O errors (no previous binary, a full disk).
pub fn restore(paths: &BinaryPaths) -> std::io::Result<()> {
    copy_atomically(&paths.prev, &paths.exe)
}

/// How a trial ended (when it returns at all: on Linux a decided trial re-executes).
#[derive(Debug)]
pub enum TrialOutcome {
    /// The agent was asked to stop during the trial; the child was stopped.
    Stopped,
    /// Re-executing failed (the error says why).
    ExecFailed(std::io::Error),
}

#[cfg(unix)]
fn terminate(pid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
}

#[cfg(not(unix))]
fn terminate(_pid: u32) {}

/// Stops the child: SIGTERM (it drains), then SIGKILL after `grace`.
async fn stop_child(child: &mut tokio::process::Child, grace: Duration) {
    if let Some(pid) = child.id() {
        terminate(pid);
    }
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

/// Replaces this process with `exe ARGS` (same pid). Returns only on failure.
#[cfg(unix)]
fn reexec(exe: &Path, args: &[OsString]) -> std::io::Error {
    use std::os::unix::process::CommandExt;
    std::process::Command::new(exe).args(args).exec()
}

#[cfg(not(unix))]
fn reexec(_exe: &Path, _args: &[OsString]) -> std::io::Error {
    std::io::Error::other("re-executing is Unix-only")
}

/// A trial ended by a stop request: unless the new version was acknowledged meanwhile, the
/// previous binary goes back (the next start must not run an untried version without its
/// guard). Not recorded as a rollback: the coordinator offers the version again later.
fn interrupted(paths: &BinaryPaths, data_dir: &Path, version: &str) {
    if acked(data_dir, version) {
        let _ = std::fs::remove_file(data_dir.join(ACK_FILE));
        info!(
            version,
            "stopped during the trial, after the new version's acknowledgement; keeping it"
        );
        return;
    }
    match restore(paths) {
        Ok(()) => info!(
            version,
            "stopped during the trial; previous version restored, the update will be offered again"
        ),
        Err(e) => {
            warn!(version, error = %e, "stopped during the trial; previous binary not restored")
        }
    }
}

fn acked(data_dir: &Path, version: &str) -> bool {
    std::fs::read_to_string(data_dir.join(ACK_FILE)).is_ok_and(|v| v.trim() == version)
}

/// Runs the trial of `version`, already installed at `paths.exe`: starts it as a child with
/// `args`, and once it reports an acknowledged heartbeat, stops it and re-executes it as this
/// process; if it exits first or `within` passes, restores the previous binary, records the
/// rollback and re-executes that. Returns only when `shutdown` fires during the trial
/// (also while the child is being stopped for the handover or the rollback: a stop request
/// is never lost in a re-execution), or when re-executing fails.
///
/// Not safe to cancel: the caller awaits it to the end.
pub async fn trial(
    paths: &BinaryPaths,
    args: &[OsString],
    data_dir: &Path,
    version: &str,
    within: Duration,
    drain: Duration,
    shutdown: CancellationToken,
) -> TrialOutcome {
    let _ = std::fs::remove_file(data_dir.join(ACK_FILE));
    if shutdown.is_cancelled() {
        // Asked to stop before the trial began: never leave an untried binary in place.
        interrupted(paths, data_dir, version);
        return TrialOutcome::Stopped;
    }
    let started = tokio::process::Command::new(&paths.exe)
        .args(args)
        .env(TRIAL_ENV, version)
        .kill_on_drop(true)
        .spawn();
    let failure = match started {
        Err(e) => format!("new binary did not start: {e}"),
        Ok(mut child) => {
            let deadline = tokio::time::Instant::now() + within;
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => {
                        stop_child(&mut child, drain).await;
                        interrupted(paths, data_dir, version);
                        return TrialOutcome::Stopped;
                    }
                    status = child.wait() => {
                        let code = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                        break format!("new version exited before its first acknowledged heartbeat ({code})");
                    }
                    _ = tick.tick() => {
                        if acked(data_dir, version) {
                            info!(version, "new version heartbeats; restarting into it");
                            stop_child(&mut child, drain).await;
                            let _ = std::fs::remove_file(data_dir.join(ACK_FILE));
                            if shutdown.is_cancelled() {
                                // Asked to stop while the child drained: the new version is
                                // in place and acknowledged, so the next start runs it.
                                info!(version, "stopping during the handover; the next start runs the new version");
                                return TrialOutcome::Stopped;
                            }
                            return TrialOutcome::ExecFailed(reexec(&paths.exe, args));
                        }
                        if tokio::time::Instant::now() >= deadline {
                            stop_child(&mut child, drain).await;
                            break format!("no acknowledged heartbeat within {} s", within.as_secs());
                        }
                    }
                }
            }
        }
    };
    warn!(version, reason = %failure, "update rolled back");
    if let Err(e) = restore(paths) {
        warn!(error = %e, "previous binary not restored");
    }
    let mut state = UpdateState::load(data_dir);
    if !state.rolled_back.iter().any(|v| v == version) {
        state.rolled_back.push(version.to_owned());
    }
    state.unreported = Some((version.to_owned(), failure));
    if let Err(e) = state.save(data_dir) {
        warn!(error = %e, "rollback not recorded");
    }
    if shutdown.is_cancelled() {
        // Asked to stop meanwhile: the previous binary is back, the next start runs it.
        return TrialOutcome::Stopped;
    }
    TrialOutcome::ExecFailed(reexec(&paths.exe, args))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for the new binary, `exe DATA_DIR ack|silent`: refuses to run outside a
    /// trial (so a wrong re-execution of the test process fails it), acknowledges at once or
    /// never, and takes a second to drain on SIGTERM, saying so in `DATA_DIR/term`.
    #[cfg(unix)]
    const NEW_BINARY: &str = r#"#!/bin/sh
[ -n "$SEALPRINT_UPDATE_TRIAL" ] || exit 3
trap 'echo > "$1/term"; sleep 1; exit 0' TERM
echo > "$1/started"
[ "$2" = ack ] && printf %s "$SEALPRINT_UPDATE_TRIAL" > "$1/update-ack"
while :; do sleep 0.05; done
"#;

    /// Writes the stand-in from another process, so no writable descriptor of ours can leak
    /// into a concurrent test's fork and make the exec fail with ETXTBSY.
    #[cfg(unix)]
    fn place_new_binary(exe: &Path) {
        let ok = std::process::Command::new("sh")
            .args([
                "-c",
                "printf '%s' \"$1\" > \"$2\" && chmod 755 \"$2\"",
                "sh",
            ])
            .arg(NEW_BINARY)
            .arg(exe)
            .status()
            .expect("sh")
            .success();
        assert!(ok, "stand-in not written");
    }

    /// Runs a trial of the stand-in and fires `shutdown` once `DATA_DIR/when` exists: `term`
    /// (the child got its SIGTERM: the guard is stopping it for the handover or the rollback)
    /// or `started` (the trial runs).
    #[cfg(unix)]
    async fn trial_stopped(
        mode: &str,
        within: Duration,
        when: &str,
    ) -> (tempfile::TempDir, TrialOutcome) {
        let dir = tempfile::tempdir().expect("tempdir");
        let exe = dir.path().join("agent");
        place_new_binary(&exe);
        let paths = BinaryPaths::of(&exe);
        std::fs::write(&paths.prev, b"previous").expect("prev");
        let shutdown = CancellationToken::new();
        let term = dir.path().join(when);
        let stopper = {
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                while !term.exists() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                shutdown.cancel();
            })
        };
        let args = [dir.path().as_os_str().to_owned(), OsString::from(mode)];
        let outcome = tokio::time::timeout(
            Duration::from_secs(60),
            trial(
                &paths,
                &args,
                dir.path(),
                "9.9.9",
                within,
                Duration::from_secs(20),
                shutdown,
            ),
        )
        .await
        .expect("the trial ended");
        stopper.abort();
        (dir, outcome)
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_stop_during_the_handover_is_not_lost_in_a_re_execution() {
        let (dir, outcome) = trial_stopped("ack", Duration::from_secs(60), "term").await;
        assert!(matches!(outcome, TrialOutcome::Stopped), "{outcome:?}");
        let exe = std::fs::read_to_string(dir.path().join("agent")).expect("exe");
        assert_eq!(exe, NEW_BINARY, "the acknowledged version stays installed");
        assert!(UpdateState::load(dir.path()).rolled_back.is_empty());
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_stop_during_the_trial_puts_the_previous_binary_back() {
        let (dir, outcome) = trial_stopped("silent", Duration::from_secs(60), "started").await;
        assert!(matches!(outcome, TrialOutcome::Stopped), "{outcome:?}");
        let exe = std::fs::read(dir.path().join("agent")).expect("exe");
        assert_eq!(exe, b"previous", "no untried binary is left in place");
        assert!(
            UpdateState::load(dir.path()).rolled_back.is_empty(),
            "an interrupted trial is not a rollback: the version is offered again"
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_stop_during_the_rollback_is_not_lost_in_a_re_execution() {
        let (dir, outcome) = trial_stopped("silent", Duration::from_millis(500), "term").await;
        assert!(matches!(outcome, TrialOutcome::Stopped), "{outcome:?}");
        let exe = std::fs::read(dir.path().join("agent")).expect("exe");
        assert_eq!(exe, b"previous", "the previous binary is back");
        assert_eq!(
            UpdateState::load(dir.path()).rolled_back,
            vec!["9.9.9".to_owned()]
        );
    }

    #[test]
    fn install_swaps_and_keeps_the_previous_binary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let exe = dir.path().join("agent");
        std::fs::write(&exe, b"old").expect("write");
        let paths = BinaryPaths::of(&exe);
        install(&paths, b"new").expect("install");
        assert_eq!(std::fs::read(&exe).expect("read"), b"new");
        assert_eq!(std::fs::read(&paths.prev).expect("read"), b"old");
        assert!(!paths.new.exists());
        restore(&paths).expect("restore");
        assert_eq!(std::fs::read(&exe).expect("read"), b"old");
    }
}
