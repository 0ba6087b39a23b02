//! The Service Control Manager (Windows only), through the `windows-service` crate:
//! [`install`], [`uninstall`], [`start`], [`stop`] for the console commands, and [`run`], the
//! service's entry point.
//!
//! [`run`] hands the process to the SCM's dispatcher; the SCM then calls `service_main` on a
//! thread of its own, which reports StartPending, runs the agent (the closure given to
//! [`run`]) on another thread, and reports Running only when the agent says it is up (keys
//! loaded, printers probed, mesh listening): an agent that fails at start (not enrolled, a
//! bad config) goes from StartPending to Stopped with its exit code, so `service start`
//! reports the failure instead of a service that is about to stop. Stop, Shutdown and
//! Preshutdown cancel the
//! agent's token; the service reports StopPending with a wait hint of the drain time, waits
//! for the agent, and reports Stopped with exit code 0, or a service-specific code
//! ([`super::EXIT_AGENT_FAILED`], [`super::EXIT_AGENT_PANICKED`]) so the failure actions
//! restart it. From a console the dispatcher fails at once (ERROR_FAILED_SERVICE_CONTROLLER_
//! CONNECT) and [`run`] says so.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::{mpsc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use windows_service::service::{
    ServiceAccess, ServiceAction, ServiceActionType, ServiceControl, ServiceControlAccept,
    ServiceErrorControl, ServiceExitCode, ServiceFailureActions, ServiceFailureResetPeriod,
    ServiceInfo, ServiceStartType, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};
use windows_service::{define_windows_service, service_dispatcher};

use super::{
    launch_arguments, ServiceError, DESCRIPTION, DISPLAY_NAME, DRAIN_GRACE, EXIT_AGENT_FAILED,
    EXIT_AGENT_PANICKED, FAILURE_PLAN, SERVICE_NAME,
};

/// Called by the agent once it is up; the service reports Running then.
pub type Started = Box<dyn FnOnce() + Send>;

/// The agent, run by the service until its token is cancelled.
pub type AgentMain = Box<
    dyn FnOnce(CancellationToken, Started) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
        + Send,
>;

/// The wait hint while starting; the checkpoint advances every poll, so a slow start (printer
/// probes) is not taken for a hung one.
const START_HINT: Duration = Duration::from_secs(10);

// Win32 error codes (winerror.h) the commands tell apart.
const ERROR_SERVICE_DOES_NOT_EXIST: i32 = 1060;
const ERROR_SERVICE_NOT_ACTIVE: i32 = 1062;
const ERROR_FAILED_SERVICE_CONTROLLER_CONNECT: i32 = 1063;
const ERROR_SERVICE_EXISTS: i32 = 1073;
const ERROR_INVALID_LEVEL: i32 = 124;

/// What `install` registers.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// The agent's executable (this one).
    pub executable: PathBuf,
    /// The data directory (absolute).
    pub data_dir: PathBuf,
    /// The configuration file (absolute), if any.
    pub config: Option<PathBuf>,
}

fn os_code(e: &windows_service::Error) -> Option<i32> {
    match e {
        windows_service::Error::Winapi(io) => io.raw_os_error(),
        _ => None,
    }
}

fn scm(action: &'static str) -> impl Fn(windows_service::Error) -> ServiceError {
    move |e| {
        let detail = match &e {
            windows_service::Error::Winapi(io) => io.to_string(),
            other => other.to_string(),
        };
        ServiceError::Scm { action, detail }
    }
}

fn manager(access: ServiceManagerAccess) -> Result<ServiceManager, ServiceError> {
    ServiceManager::local_computer(None::<&str>, access).map_err(scm(
        "opening the Service Control Manager (run as Administrator)",
    ))
}

fn open(access: ServiceAccess) -> Result<windows_service::service::Service, ServiceError> {
    manager(ServiceManagerAccess::CONNECT)?
        .open_service(SERVICE_NAME, access)
        .map_err(|e| {
            if os_code(&e) == Some(ERROR_SERVICE_DOES_NOT_EXIST) {
                ServiceError::NotInstalled
            } else {
                scm("opening the service")(e)
            }
        })
}

/// Registers the service: own process, automatic start, LocalSystem, the description, the
/// launch arguments, restart on failure (also on non-crash failures) and a preshutdown
/// timeout covering the drain. Returns warnings for settings this SCM does not support
/// (Wine's has no failure-actions flag); a failure of any other setting removes the service
/// again.
///
/// # Errors
/// [`ServiceError::AlreadyInstalled`], or the SCM's error.
pub fn install(opts: &InstallOptions) -> Result<Vec<String>, ServiceError> {
    let manager = manager(ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE)?;
    if manager
        .open_service(SERVICE_NAME, ServiceAccess::QUERY_STATUS)
        .is_ok()
    {
        return Err(ServiceError::AlreadyInstalled);
    }
    let info = ServiceInfo {
        name: SERVICE_NAME.into(),
        display_name: DISPLAY_NAME.into(),
        service_type: ServiceType::OWN_PROCESS,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path: opts.executable.clone(),
        launch_arguments: launch_arguments(&opts.data_dir, opts.config.as_deref()),
        dependencies: Vec::new(),
        account_name: None, // LocalSystem
        account_password: None,
    };
    let access = ServiceAccess::CHANGE_CONFIG
        | ServiceAccess::QUERY_CONFIG
        | ServiceAccess::QUERY_STATUS
        | ServiceAccess::DELETE;
    let service = manager.create_service(&info, access).map_err(|e| {
        if os_code(&e) == Some(ERROR_SERVICE_EXISTS) {
            ServiceError::AlreadyInstalled
        } else {
            scm("creating the service")(e)
        }
    })?;
    let mut warnings = Vec::new();
    let configured = (|| {
        service
            .set_description(DESCRIPTION)
            .map_err(scm("setting the description"))?;
        let restart = ServiceAction {
            action_type: ServiceActionType::Restart,
            delay: FAILURE_PLAN.delay,
        };
        service
            .update_failure_actions(ServiceFailureActions {
                reset_period: ServiceFailureResetPeriod::After(FAILURE_PLAN.reset_after),
                reboot_msg: None,
                command: None,
                actions: Some(vec![restart; FAILURE_PLAN.restarts]),
            })
            .map_err(scm("setting the failure actions"))?;
        match service.set_failure_actions_on_non_crash_failures(FAILURE_PLAN.on_non_crash_failures)
        {
            Ok(()) => {}
            Err(e) if os_code(&e) == Some(ERROR_INVALID_LEVEL) => warnings.push(
                "this Service Control Manager cannot apply failure actions to non-crash \
                 failures (Wine's cannot; Windows can): the service restarts only when it \
                 crashes"
                    .to_owned(),
            ),
            Err(e) => return Err(scm("setting failure actions on non-crash failures")(e)),
        }
        match service.set_preshutdown_timeout(DRAIN_GRACE + Duration::from_secs(10)) {
            Ok(()) => {}
            Err(e) if os_code(&e) == Some(ERROR_INVALID_LEVEL) => {
                warnings.push("this Service Control Manager has no preshutdown timeout".into())
            }
            Err(e) => return Err(scm("setting the preshutdown timeout")(e)),
        }
        Ok(())
    })();
    if let Err(e) = configured {
        let _ = service.delete();
        return Err(e);
    }
    Ok(warnings)
}

/// Stops the service (waiting up to `stop_wait`) and removes it.
///
/// # Errors
/// [`ServiceError::NotInstalled`], a stop that times out, or the SCM's error.
pub fn uninstall(stop_wait: Duration) -> Result<(), ServiceError> {
    let service = open(ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE)?;
    stop_service(&service, stop_wait)?;
    service.delete().map_err(scm("deleting the service"))
}

/// Starts the service and waits until it reports Running (or stops).
///
/// # Errors
/// [`ServiceError::NotInstalled`], [`ServiceError::StoppedAtStart`], a timeout, or the SCM's
/// error.
pub fn start(wait: Duration) -> Result<(), ServiceError> {
    let service = open(ServiceAccess::QUERY_STATUS | ServiceAccess::START)?;
    let status = service
        .query_status()
        .map_err(scm("querying the service"))?;
    if status.current_state != ServiceState::Running {
        service
            .start::<&str>(&[])
            .map_err(scm("starting the service"))?;
    }
    wait_for(&service, "Running", wait, |status| {
        match status.current_state {
            ServiceState::Running => Some(Ok(())),
            ServiceState::Stopped => Some(Err(ServiceError::StoppedAtStart {
                exit: format!("{:?}", status.exit_code),
            })),
            _ => None,
        }
    })
}

/// Polls the service every 250 ms until `settled` gives the outcome of its status, or
/// [`ServiceError::Timeout`] (naming the `awaited` state) once `wait` has passed.
fn wait_for(
    service: &windows_service::service::Service,
    awaited: &'static str,
    wait: Duration,
    settled: impl Fn(&ServiceStatus) -> Option<Result<(), ServiceError>>,
) -> Result<(), ServiceError> {
    let deadline = Instant::now() + wait;
    loop {
        let status = service
            .query_status()
            .map_err(scm("querying the service"))?;
        if let Some(outcome) = settled(&status) {
            return outcome;
        }
        if Instant::now() >= deadline {
            return Err(ServiceError::Timeout {
                state: awaited,
                now: format!("{:?}", status.current_state),
                waited: wait,
            });
        }
        thread::sleep(Duration::from_millis(250));
    }
}

/// Stops the service and waits until it reports Stopped (within `wait`: the drain time plus
/// a margin). A service that is not running is left as it is.
///
/// # Errors
/// [`ServiceError::NotInstalled`], a timeout, or the SCM's error.
pub fn stop(wait: Duration) -> Result<(), ServiceError> {
    let service = open(ServiceAccess::QUERY_STATUS | ServiceAccess::STOP)?;
    stop_service(&service, wait)
}

fn stop_service(
    service: &windows_service::service::Service,
    wait: Duration,
) -> Result<(), ServiceError> {
    match service.stop() {
        Ok(_) => {}
        Err(e) if os_code(&e) == Some(ERROR_SERVICE_NOT_ACTIVE) => return Ok(()),
        Err(e) => return Err(scm("stopping the service")(e)),
    }
    wait_for(service, "Stopped", wait, |status| {
        (status.current_state == ServiceState::Stopped).then_some(Ok(()))
    })
}

/// The agent the dispatcher's `service_main` runs (set by [`run`], taken once).
static AGENT: Mutex<Option<AgentMain>> = Mutex::new(None);

/// The service's entry point: hands the process to the SCM's dispatcher, which runs `agent`
/// until the service is stopped. Blocks until then.
///
/// # Errors
/// [`ServiceError::NotFromScm`] when started from a console, or the dispatcher's error.
pub fn run(agent: AgentMain) -> Result<(), ServiceError> {
    *AGENT.lock().unwrap_or_else(|p| p.into_inner()) = Some(agent);
    service_dispatcher::start(SERVICE_NAME, ffi_service_main).map_err(|e| {
        if os_code(&e) == Some(ERROR_FAILED_SERVICE_CONTROLLER_CONNECT) {
            ServiceError::NotFromScm
        } else {
            scm("starting the service dispatcher")(e)
        }
    })
}

define_windows_service!(ffi_service_main, service_main);

fn status(
    state: ServiceState,
    exit_code: ServiceExitCode,
    wait_hint: Duration,
    checkpoint: u32,
) -> ServiceStatus {
    let controls_accepted = if state == ServiceState::Running {
        ServiceControlAccept::STOP
            | ServiceControlAccept::SHUTDOWN
            | ServiceControlAccept::PRESHUTDOWN
    } else {
        ServiceControlAccept::empty()
    };
    ServiceStatus {
        service_type: ServiceType::OWN_PROCESS,
        current_state: state,
        controls_accepted,
        exit_code,
        checkpoint,
        wait_hint,
        process_id: None,
    }
}

fn service_main(_arguments: Vec<OsString>) {
    let Some(agent) = AGENT.lock().unwrap_or_else(|p| p.into_inner()).take() else {
        return;
    };
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let handler = move |control| match control {
        ServiceControl::Stop | ServiceControl::Shutdown | ServiceControl::Preshutdown => {
            let _ = stop_tx.send(());
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    };
    let handle = match service_control_handler::register(SERVICE_NAME, handler) {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "registering the service control handler");
            return;
        }
    };
    let report = |s: ServiceStatus| {
        if let Err(e) = handle.set_service_status(s) {
            tracing::warn!(error = %e, "reporting the service status");
        }
    };
    let none = ServiceExitCode::NO_ERROR;
    report(status(ServiceState::StartPending, none, START_HINT, 1));
    let token = CancellationToken::new();
    let agent_token = token.clone();
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let started: Started = Box::new(move || {
        let _ = started_tx.send(());
    });
    let worker = thread::spawn(move || agent(agent_token, started));
    // Running once the agent is up. The sender is dropped unused when the agent ends first
    // (an error at start): then straight on to Stopped with its exit code.
    let mut checkpoint = 1;
    let up = loop {
        match started_rx.recv_timeout(Duration::from_millis(250)) {
            Ok(()) => break true,
            Err(mpsc::RecvTimeoutError::Disconnected) => break false,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                checkpoint += 1;
                report(status(
                    ServiceState::StartPending,
                    none,
                    START_HINT,
                    checkpoint,
                ));
            }
        }
    };
    if up {
        report(status(ServiceState::Running, none, Duration::ZERO, 0));
        tracing::info!("service running");
        // Wait for a stop control or for the agent to end by itself (an error).
        loop {
            if worker.is_finished() {
                break;
            }
            match stop_rx.recv_timeout(Duration::from_millis(250)) {
                Ok(()) => {
                    tracing::info!("service stopping");
                    report(status(
                        ServiceState::StopPending,
                        none,
                        DRAIN_GRACE + Duration::from_secs(5),
                        1,
                    ));
                    token.cancel();
                    break;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
    }
    let exit = match worker.join() {
        Ok(Ok(())) => none,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "the agent stopped on an error");
            ServiceExitCode::ServiceSpecific(EXIT_AGENT_FAILED)
        }
        Err(_) => {
            tracing::error!("the agent panicked");
            ServiceExitCode::ServiceSpecific(EXIT_AGENT_PANICKED)
        }
    };
    tracing::info!(exit = ?exit, "service stopped");
    report(status(ServiceState::Stopped, exit, Duration::ZERO, 0));
}
