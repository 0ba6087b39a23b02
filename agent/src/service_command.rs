//! `sealprint-agent service install|uninstall|start|stop|run`: the agent as a Windows
//! service ([`sealprint_agent::service`]). `run` is what the Service Control Manager starts
//! (the registered arguments); it logs to a size-rotated file under the data directory's
//! `logs` instead of stderr. Off Windows every action says the commands are Windows-only.

use std::path::PathBuf;

use clap::Subcommand;
#[cfg(not(windows))]
use sealprint_agent::service::ServiceError;

/// What `service` does.
#[derive(Subcommand)]
pub enum Action {
    /// Register the service (automatic start, LocalSystem, restart on failure). Refuses when
    /// it is installed already. Run as Administrator.
    Install {
        /// Data directory the service uses (default on Windows: %ProgramData%\sealprint).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// TOML configuration file the service reads.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Stop the service (waiting for it) and remove it.
    Uninstall,
    /// Start the service and wait until it runs.
    Start,
    /// Stop the service and wait until it has stopped (the drain time plus a margin).
    Stop,
    /// The service's entry point, started by the Service Control Manager (not from a
    /// console: use `sealprint-agent run` there).
    Run {
        /// Data directory (default on Windows: %ProgramData%\sealprint).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// TOML configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// For `service run`: logs to `DATA_DIR\logs\agent.log` instead of stderr. Returns false
/// (nothing installed) for the other actions, or when the log file cannot be opened.
pub fn init_file_tracing(action: &Action) -> bool {
    let Action::Run { data_dir, .. } = action else {
        return false;
    };
    let Some(dir) = data_dir
        .clone()
        .or_else(sealprint_agent::data_dir::default_dir)
    else {
        return false;
    };
    let Ok(log) = sealprint_agent::service::log_file::LogFile::open(
        &sealprint_agent::data_dir::log_dir(&dir),
    ) else {
        return false;
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SEALPRINT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(log))
        .init();
    true
}

/// Carries out `action`.
pub async fn run(action: Action) -> anyhow::Result<()> {
    #[cfg(windows)]
    {
        windows::run(action).await
    }
    #[cfg(not(windows))]
    {
        let _ = action;
        Err(ServiceError::NotWindows.into())
    }
}

#[cfg(windows)]
mod windows {
    use std::path::{Path, PathBuf};

    use anyhow::Context as _;
    use sealprint_agent::config::Flags;
    use sealprint_agent::service::{scm, ServiceError, START_WAIT, STOP_WAIT};

    use super::Action;

    fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
        std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))
    }

    fn data_dir_or_default(dir: Option<PathBuf>) -> anyhow::Result<PathBuf> {
        dir.or_else(sealprint_agent::data_dir::default_dir)
            .context("no data directory (--data-dir)")
    }

    pub(super) async fn run(action: Action) -> anyhow::Result<()> {
        // The SCM calls block (waits, the dispatcher): off the async threads.
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || blocking(action, handle))
            .await
            .context("the service command's thread")?
    }

    /// The console commands answer on stdout (and warnings on stderr) at the binary's edge:
    /// service names and states only, never a label or PII; `run` logs through tracing.
    fn blocking(action: Action, handle: tokio::runtime::Handle) -> anyhow::Result<()> {
        match action {
            Action::Install { data_dir, config } => {
                let opts = scm::InstallOptions {
                    executable: std::env::current_exe().context("this executable's path")?,
                    data_dir: absolute(&data_dir_or_default(data_dir)?)?,
                    config: config.as_deref().map(absolute).transpose()?,
                };
                for warning in scm::install(&opts)? {
                    eprintln!("warning: {warning}");
                }
                println!(
                    "installed the service {} (automatic start)",
                    sealprint_agent::service::SERVICE_NAME
                );
                Ok(())
            }
            Action::Uninstall => {
                scm::uninstall(STOP_WAIT)?;
                println!("uninstalled the service");
                Ok(())
            }
            Action::Start => {
                scm::start(START_WAIT)?;
                println!("the service is running");
                Ok(())
            }
            Action::Stop => {
                scm::stop(STOP_WAIT)?;
                println!("the service is stopped");
                Ok(())
            }
            Action::Run { data_dir, config } => {
                let agent: scm::AgentMain = Box::new(move |token, started| {
                    let flags = Flags {
                        data_dir,
                        ..Flags::default()
                    };
                    let result = crate::run::load(config.as_deref(), flags)
                        .and_then(|cfg| handle.block_on(crate::run::agent(cfg, token, started)));
                    result.map_err(|e| format!("{e:#}").into())
                });
                match scm::run(agent) {
                    Err(ServiceError::NotFromScm) => Err(ServiceError::NotFromScm.into()),
                    other => other.map_err(Into::into),
                }
            }
        }
    }
}
