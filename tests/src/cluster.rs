//! A harness that runs the real `sealprint-coordinator` and `sealprint-agent` binaries as
//! processes on this machine, over real sockets, for the end-to-end tests and the demo.
//!
//! Every process is started by this harness, logs to a file the test can scan, and is killed
//! by its own process id when its handle drops (never by name).

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::api_client::ApiClient;

/// The admin's e-mail in every harness coordinator.
pub const ADMIN_EMAIL: &str = "admin@example.test";

/// Paths of the binaries under test.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `sealprint-coordinator`.
    pub coordinator: PathBuf,
    /// `sealprint-agent`.
    pub agent: PathBuf,
}

/// Builds (if needed) and locates the production binaries, in the profile of the running
/// executable. Cargo only builds a package's binaries for its own integration tests, so the
/// harness asks cargo for the others once per process.
pub fn binaries() -> anyhow::Result<Binaries> {
    static BINS: OnceLock<Result<Binaries, String>> = OnceLock::new();
    BINS.get_or_init(|| build_binaries().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow!(e))
}

fn build_binaries() -> anyhow::Result<Binaries> {
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/<test> or target/<profile>/<bin>
    let mut dir = exe
        .parent()
        .context("executable has no directory")?
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let release = dir.file_name().is_some_and(|n| n == "release");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("testkit has no parent directory")?
        .to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.current_dir(&workspace).args([
        "build",
        "--quiet",
        "-p",
        "sealprint-coordinator",
        "-p",
        "sealprint-agent",
        "--bins",
    ]);
    if release {
        cmd.arg("--release");
    }
    let status = cmd
        .status()
        .context("running cargo build for the binaries")?;
    if !status.success() {
        bail!("cargo build of the binaries failed");
    }
    let bins = Binaries {
        coordinator: dir.join("sealprint-coordinator"),
        agent: dir.join("sealprint-agent"),
    };
    for b in [&bins.coordinator, &bins.agent] {
        if !b.exists() {
            bail!("{} was not built", b.display());
        }
    }
    Ok(bins)
}

/// The Windows agent (`sealprint-agent.exe`): `SEALPRINT_WINDOWS_AGENT_EXE` when set, else built
/// once per process for `x86_64-pc-windows-gnu` in the profile of the running executable
/// (needs `rustup target add x86_64-pc-windows-gnu` and Debian's gcc-mingw-w64-x86-64; CI's
/// step 5 builds it first, so this finds it built).
pub fn windows_agent() -> anyhow::Result<PathBuf> {
    static EXE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    EXE.get_or_init(|| build_windows_agent().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow!(e))
}

fn build_windows_agent() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("SEALPRINT_WINDOWS_AGENT_EXE") {
        return Ok(PathBuf::from(path));
    }
    let target = "x86_64-pc-windows-gnu";
    let mut dir = std::env::current_exe()?
        .parent()
        .context("test executable has a directory")?
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let profile = dir.file_name().context("profile directory")?.to_owned();
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("testkit has no parent directory")?
        .to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.current_dir(&workspace)
        .args(["build", "--quiet", "--locked", "-p", "sealprint-agent"])
        .args(["--bin", "sealprint-agent", "--target", target]);
    if profile == "release" {
        cmd.arg("--release");
    }
    let status = cmd
        .status()
        .context("running cargo build for the Windows agent")?;
    if !status.success() {
        bail!(
            "cargo build of the Windows agent failed (rustup target add {target}; apt-get \
             install gcc-mingw-w64-x86-64)"
        );
    }
    let exe = dir
        .parent()
        .context("target directory")?
        .join(target)
        .join(profile)
        .join("sealprint-agent.exe");
    if !exe.is_file() {
        bail!("{} was not built", exe.display());
    }
    Ok(exe)
}

/// Reads the child's stdout until a `READY {json}` line.
async fn read_ready(child: &mut Child, what: &str) -> anyhow::Result<Value> {
    let stdout = child.stdout.take().context("child stdout not captured")?;
    let mut lines = BufReader::new(stdout).lines();
    let found = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(json) = line.strip_prefix("READY ") {
                return Ok::<_, anyhow::Error>(Some(serde_json::from_str::<Value>(json)?));
            }
        }
        Ok(None)
    })
    .await
    .map_err(|_| anyhow!("{what} did not become ready within 60 s"))??;
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    found.ok_or_else(|| anyhow!("{what} exited before it was ready"))
}

fn log_file(path: &Path) -> anyhow::Result<Stdio> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    Ok(Stdio::from(f))
}

/// Sends SIGTERM to a process by its id.
pub fn terminate(pid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
}

/// A running coordinator process.
pub struct CoordinatorProc {
    child: Option<Child>,
    bins: Binaries,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its master key file (outside the data directory).
    pub master_key: PathBuf,
    /// Its log file.
    pub log: PathBuf,
    /// API address.
    pub api: SocketAddr,
    /// Mesh multiaddrs.
    pub mesh: Vec<String>,
    /// libp2p PeerId.
    pub peer_id: String,
    /// The admin's password.
    pub admin_password: String,
    /// Extra `serve` flags, kept across restarts.
    pub extra_args: Vec<String>,
}

impl CoordinatorProc {
    /// Initialises a coordinator under `root` and starts it on free loopback ports.
    pub async fn start_new(root: &Path) -> anyhow::Result<CoordinatorProc> {
        Self::start_new_with(root, &[]).await
    }

    /// Like [`CoordinatorProc::start_new`], with extra `serve` flags.
    pub async fn start_new_with(root: &Path, extra: &[String]) -> anyhow::Result<CoordinatorProc> {
        let bins = binaries()?;
        let data_dir = root.join("coordinator-data");
        let master_key = root.join("master.key");
        let password_file = root.join("admin-password");
        let admin_password = "Correct-Horse-Battery-9".to_owned();
        std::fs::write(&password_file, &admin_password)?;
        let out = Command::new(&bins.coordinator)
            .arg("init")
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--master-key-file")
            .arg(&master_key)
            .args(["--admin-email", ADMIN_EMAIL])
            .arg("--admin-password-file")
            .arg(&password_file)
            .output()
            .await?;
        std::fs::remove_file(&password_file)?;
        if !out.status.success() {
            bail!(
                "coordinator init failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut c = CoordinatorProc {
            child: None,
            bins,
            log: root.join("coordinator.log"),
            data_dir,
            master_key,
            api: "127.0.0.1:0".parse()?,
            mesh: vec!["/ip4/127.0.0.1/tcp/0".into()],
            peer_id: String::new(),
            admin_password,
            extra_args: extra.to_vec(),
        };
        c.start().await?;
        Ok(c)
    }

    /// Starts (or restarts) the process on the same ports as before (free ones the first time).
    pub async fn start(&mut self) -> anyhow::Result<()> {
        let mut cmd = Command::new(&self.bins.coordinator);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--master-key-file")
            .arg(&self.master_key)
            .arg("--api-listen")
            .arg(self.api.to_string())
            .arg("--heartbeat-interval-secs")
            .arg("1");
        for m in &self.mesh {
            cmd.arg("--mesh-listen").arg(m);
        }
        cmd.args(&self.extra_args);
        cmd.env("SEALPRINT_LOG", "info,sealprint_coordinator=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file(&self.log)?)
            .kill_on_drop(true);
        let mut child = cmd.spawn().context("starting the coordinator")?;
        let ready = read_ready(&mut child, "coordinator").await?;
        self.api = ready["api"]
            .as_str()
            .context("READY without api")?
            .parse()?;
        self.mesh = ready["mesh"]
            .as_array()
            .context("READY without mesh")?
            .iter()
            .filter_map(|m| {
                m.as_str()
                    .map(|s| s.split("/p2p/").next().unwrap_or(s).to_owned())
            })
            .collect();
        self.peer_id = ready["peer_id"]
            .as_str()
            .context("READY without peer_id")?
            .to_owned();
        self.child = Some(child);
        Ok(())
    }

    /// Kills the process with SIGKILL and waits for it.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill().await?;
        }
        Ok(())
    }

    /// Stops the process with SIGTERM and waits for it.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut c) = self.child.take() {
            if let Some(pid) = c.id() {
                terminate(pid);
            }
            tokio::time::timeout(Duration::from_secs(30), c.wait()).await??;
        }
        Ok(())
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// An API client trusting this coordinator's certificate (no session yet).
    pub fn client(&self) -> anyhow::Result<ApiClient> {
        ApiClient::new(self.api, &self.data_dir.join("tls").join("cert.pem"))
    }

    /// An API client logged in as the admin.
    pub async fn admin(&self) -> anyhow::Result<ApiClient> {
        self.client()?
            .login(ADMIN_EMAIL, &self.admin_password)
            .await
    }
}

/// A program that runs an agent binary other than the Linux one: `program ARGS…` followed by
/// the agent's own arguments, with `env` added (for example `wine64 sealprint-agent.exe` with
/// the Wine prefix's variables).
#[derive(Debug, Clone)]
pub struct Launcher {
    /// The program started (its process id is the agent's).
    pub program: PathBuf,
    /// Its arguments before the agent's (the agent executable among them).
    pub args: Vec<OsString>,
    /// Its environment, added to the agent's.
    pub env: Vec<(OsString, OsString)>,
}

/// A running agent process.
pub struct AgentProc {
    child: Option<Child>,
    bins: Binaries,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its log file.
    pub log: PathBuf,
    /// Its device id.
    pub device_id: String,
    /// Its PeerId.
    pub peer_id: String,
    /// Where it listens.
    pub listen: Vec<String>,
    args: Vec<String>,
    netns: Option<String>,
    launcher: Option<Launcher>,
    /// Extra environment of the process (e.g. libfaketime's), kept across restarts.
    pub env: Vec<(String, String)>,
}

impl AgentProc {
    /// Enrolls a new agent in `data_dir` with `token`.
    pub async fn enroll(data_dir: &Path, token: &str) -> anyhow::Result<()> {
        let bins = binaries()?;
        let out = Command::new(&bins.agent)
            .arg("enroll")
            .arg("--data-dir")
            .arg(data_dir)
            .arg(token)
            .output()
            .await?;
        if !out.status.success() {
            bail!(
                "agent enroll failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// Not started yet: the Linux binary, on the loopback, outside any namespace.
    fn new(
        data_dir: &Path,
        log: &Path,
        args: &[String],
        env: &[(String, String)],
    ) -> anyhow::Result<AgentProc> {
        Ok(AgentProc {
            child: None,
            bins: binaries()?,
            data_dir: data_dir.to_owned(),
            log: log.to_owned(),
            device_id: String::new(),
            peer_id: String::new(),
            listen: Vec::new(),
            args: args.to_vec(),
            netns: None,
            launcher: None,
            env: env.to_vec(),
        })
    }

    /// Starts `sealprint-agent run` on `data_dir` with extra `args` (printers, peers, …),
    /// listening on a free loopback port, heartbeating every second.
    pub async fn start(data_dir: &Path, log: &Path, args: &[String]) -> anyhow::Result<AgentProc> {
        Self::start_with_env(data_dir, log, args, &[]).await
    }

    /// Like [`AgentProc::start`], with extra environment variables.
    pub async fn start_with_env(
        data_dir: &Path,
        log: &Path,
        args: &[String],
        env: &[(String, String)],
    ) -> anyhow::Result<AgentProc> {
        let mut a = AgentProc::new(data_dir, log, args, env)?;
        a.spawn(None).await?;
        Ok(a)
    }

    /// Like [`AgentProc::start_with_env`], with the agent run by `launcher` (for example the
    /// Windows agent under Wine) instead of the Linux binary, listening on `listen`.
    pub async fn start_launched(
        launcher: Launcher,
        listen: &str,
        data_dir: &Path,
        log: &Path,
        args: &[String],
        env: &[(String, String)],
    ) -> anyhow::Result<AgentProc> {
        let mut a = AgentProc {
            launcher: Some(launcher),
            ..AgentProc::new(data_dir, log, args, env)?
        };
        a.spawn(Some(listen.to_owned())).await?;
        Ok(a)
    }

    /// Starts an agent inside the network namespace `netns` (made by the test), listening on
    /// every address of the namespace, with mDNS discovery on.
    pub async fn start_in_netns(
        netns: &str,
        data_dir: &Path,
        log: &Path,
        args: &[String],
    ) -> anyhow::Result<AgentProc> {
        let mut a = AgentProc {
            netns: Some(netns.to_owned()),
            ..AgentProc::new(data_dir, log, args, &[])?
        };
        a.spawn(Some("/ip4/0.0.0.0/tcp/0".into())).await?;
        Ok(a)
    }

    async fn spawn(&mut self, listen: Option<String>) -> anyhow::Result<()> {
        // `ip netns exec` execs the agent, so the child's pid is the agent's own.
        let mut cmd = match (&self.netns, &self.launcher) {
            (Some(ns), _) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&self.bins.agent);
                c
            }
            (None, Some(launcher)) => {
                let mut c = Command::new(&launcher.program);
                c.args(&launcher.args)
                    .envs(launcher.env.iter().map(|(k, v)| (k, v)));
                c
            }
            (None, None) => Command::new(&self.bins.agent),
        };
        cmd.arg("run")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--listen")
            .arg(listen.unwrap_or_else(|| "/ip4/127.0.0.1/tcp/0".into()))
            .args(["--heartbeat-interval-secs", "1"])
            .args(self.netns.is_none().then_some("--no-mdns"))
            .args(&self.args)
            .env("SEALPRINT_LOG", "info,sealprint_agent=debug")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file(&self.log)?)
            .kill_on_drop(true);
        let mut child = cmd.spawn().context("starting the agent")?;
        let ready = read_ready(&mut child, "agent").await?;
        self.device_id = ready["device_id"]
            .as_str()
            .context("READY without device_id")?
            .to_owned();
        self.peer_id = ready["peer_id"]
            .as_str()
            .context("READY without peer_id")?
            .to_owned();
        self.listen = ready["listen"]
            .as_array()
            .context("READY without listen")?
            .iter()
            .filter_map(|m| m.as_str().map(str::to_owned))
            .collect();
        self.child = Some(child);
        Ok(())
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// The multiaddr other agents can dial, with its PeerId.
    pub fn dial_addr(&self) -> String {
        format!(
            "{}/p2p/{}",
            self.listen.first().map(String::as_str).unwrap_or(""),
            self.peer_id
        )
    }

    /// Restarts the process on the same listen address.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        let listen = self.listen.first().cloned();
        self.spawn(listen).await
    }

    /// Stops with SIGTERM (the agent drains its jobs) and waits.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut c) = self.child.take() {
            if let Some(pid) = c.id() {
                terminate(pid);
            }
            tokio::time::timeout(Duration::from_secs(30), c.wait()).await??;
        }
        Ok(())
    }

    /// Kills with SIGKILL.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill().await?;
        }
        Ok(())
    }
}

/// Resident memory of a process in KiB (Linux `/proc`), if it can be read.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Polls `check` every 100 ms until it returns `Some`, or fails after `limit`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
