//! A private CUPS scheduler and `ippeveprinter` for tests, each started in its own temporary
//! directory and stopped by process id: `cupsd -f` with its own configuration (port on
//! 127.0.0.1 and domain socket, queues made with `lpadmin -h`), and `ippeveprinter`, an IPP
//! printer that keeps the exact bytes of every job (`-k -d DIR`) or passes them on to a
//! device (`-D socket://…`).
//!
//! # Requirements
//! Linux as root (cupsd runs backends as `lp`; dbus is the system bus) with the Debian
//! packages `cups` (cupsd), `cups-client` (lpadmin, cupsdisable), `cups-ipp-utils`
//! (ippeveprinter), `dbus` and `avahi-daemon` (ippeveprinter needs both running, even with
//! `-r off`), and optionally `printer-driver-cups-pdf`. CI installs them (`.ci/run`). A
//! missing program fails the test with the package to install; `SEALPRINT_SKIP_REAL_PRINTERS=1`
//! makes [`skipped`] true (with a loud notice) for machines without CUPS.
//!
//! dbus and avahi-daemon are started when they are not running, and only the ones started here
//! are stopped again, by the pid they report, when [`SystemDaemons`] is dropped. The machine's
//! own cupsd, if any, is never touched: the private one has its own port, socket and
//! directories. The scheduler keeps CUPS' defaults for job retention (`PreserveJobFiles`: one
//! day), so a job it was sent stays in its `spool/` directory, where a test can look for it.
//!
//! # What it does not do
//! No fixed sleeps: readiness is polled with a deadline. ippeveprinter listens on 127.0.0.1 and
//! ::1 (`-n localhost`), so the machine needs an IPv6 loopback.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use std::time::Duration;

/// Set to `1` to skip these tests (with a notice) on a machine without CUPS.
pub const SKIP_VAR: &str = "SEALPRINT_SKIP_REAL_PRINTERS";

/// How long a started peer may take to be ready, or a job to arrive.
pub const WITHIN: Duration = Duration::from_secs(10);
/// How long a stopped peer may take to exit after SIGTERM, before SIGKILL.
pub const STOP_WITHIN: Duration = Duration::from_secs(5);
/// How often a condition is polled.
pub const POLL: Duration = Duration::from_millis(25);

/// A program these tests run, and the Debian package that installs it.
#[derive(Clone, Copy)]
pub struct Program {
    /// Where it is installed.
    pub path: &'static str,
    /// The Debian package that installs it.
    pub package: &'static str,
}

/// cupsd.
pub const CUPSD: Program = Program {
    path: "/usr/sbin/cupsd",
    package: "cups",
};
/// lpadmin.
pub const LPADMIN: Program = Program {
    path: "/usr/sbin/lpadmin",
    package: "cups-client",
};
/// cupsdisable.
pub const CUPSDISABLE: Program = Program {
    path: "/usr/sbin/cupsdisable",
    package: "cups-client",
};
/// ippeveprinter.
pub const IPPEVEPRINTER: Program = Program {
    path: "/usr/sbin/ippeveprinter",
    package: "cups-ipp-utils",
};
/// dbus-daemon.
pub const DBUS_DAEMON: Program = Program {
    path: "/usr/bin/dbus-daemon",
    package: "dbus",
};
/// avahi-daemon.
pub const AVAHI_DAEMON: Program = Program {
    path: "/usr/sbin/avahi-daemon",
    package: "avahi-daemon",
};

/// The cups-pdf backend and its PPD (`printer-driver-cups-pdf`, optional).
/// The cups-pdf backend.
pub const CUPS_PDF_BACKEND: &str = "/usr/lib/cups/backend/cups-pdf";
/// The cups-pdf PPD.
pub const CUPS_PDF_PPD: &str = "/usr/share/ppd/cups-pdf/CUPS-PDF_opt.ppd";

const DBUS_SOCKET: &str = "/run/dbus/system_bus_socket";
const DBUS_PID_FILE: &str = "/run/dbus/pid";
const AVAHI_PID_FILE: &str = "/run/avahi-daemon/pid";

impl Program {
    /// The program's path; fails the test, naming the package, when it is not installed.
    pub fn require(self) -> &'static str {
        assert!(
            Path::new(self.path).exists(),
            "{} is missing: install the Debian package {} (apt-get install {}), or set \
             {SKIP_VAR}=1 to skip the tests against real printers",
            self.path,
            self.package,
            self.package
        );
        self.path
    }
}

/// Whether the tests are skipped by `SEALPRINT_SKIP_REAL_PRINTERS=1`; says so loudly.
pub fn skipped(test: &str) -> bool {
    if std::env::var(SKIP_VAR).as_deref() != Ok("1") {
        return false;
    }
    eprintln!(
        "\n*** {test} SKIPPED because {SKIP_VAR}=1: the printer code was NOT checked against \
         real CUPS and ippeveprinter peers on this machine ***\n"
    );
    true
}

/// A temporary directory under /tmp (short paths: cupsd's domain socket lives in it) that the
/// `lp` user may traverse, since cupsd runs backends as `lp` on spool files inside it.
pub fn scratch(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .expect("temp dir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod temp dir");
    dir
}

/// A TCP port free on 127.0.0.1 (and on ::1 when `v6`) a moment ago.
pub fn free_port(v6: bool) -> u16 {
    for _ in 0..50 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        if !v6 || std::net::TcpListener::bind(("::1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free on both 127.0.0.1 and ::1 (ippeveprinter needs an IPv6 loopback)")
}

/// The last lines of a log, for failure messages.
pub fn tail(log: &Path) -> String {
    let text = fs::read(log).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Sends a signal to one process, by its pid (through the shell's `kill` builtin).
pub fn signal(pid: u32, signal: &str) {
    let _ = Command::new("/bin/sh")
        .args(["-c", "kill -s \"$0\" \"$1\" 2>/dev/null", signal])
        .arg(pid.to_string())
        .status();
}

/// Whether a process runs (exists and is not a zombie).
pub fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let (_, rest) = stat.rsplit_once(')')?;
            rest.trim_start().chars().next()
        })
        .is_some_and(|state| state != 'Z' && state != 'X')
}

/// Stops a process that is not our child: SIGTERM, then SIGKILL after [`STOP_WITHIN`].
pub fn stop(pid: u32) {
    signal(pid, "TERM");
    let deadline = Instant::now() + STOP_WITHIN;
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(POLL);
    }
    if alive(pid) {
        signal(pid, "KILL");
    }
}

/// A process a test started (output to a log file); stopped by its pid when dropped.
pub struct Peer {
    what: String,
    child: Child,
    /// Its log file.
    pub log: PathBuf,
}

impl Peer {
    /// Starts `command` with its output in `log`.
    pub fn spawn(what: &str, command: &mut Command, log: PathBuf) -> Peer {
        let out = fs::File::create(&log).expect("create log file");
        let err = out.try_clone().expect("clone log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("{what} did not start: {e}"));
        Peer {
            what: what.to_owned(),
            child,
            log,
        }
    }

    /// Polls `check` until it gives a value; fails when the process exits or after
    /// [`WITHIN`], with the end of the process's log.
    pub async fn eventually<T>(
        &mut self,
        what_for: &str,
        mut check: impl FnMut() -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + WITHIN;
        loop {
            if let Some(value) = check() {
                return value;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited ({status}) before {what_for}; its log:\n{}",
                    self.what,
                    tail(&self.log)
                );
            }
            assert!(
                Instant::now() < deadline,
                "{}: not {what_for} within {WITHIN:?}; its log:\n{}",
                self.what,
                tail(&self.log)
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let pid = self.child.id();
        if matches!(self.child.try_wait(), Ok(None)) {
            signal(pid, "TERM");
            let deadline = Instant::now() + STOP_WITHIN;
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(POLL);
            }
            // SIGKILL (by pid) if it is still running; harmless if it has exited.
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A private CUPS scheduler: its own configuration, state, spool and logs in a temporary
/// directory, listening on a free port of 127.0.0.1 and on its own domain socket.
pub struct Cupsd {
    // Field order is drop order: the scheduler stops before its directory is removed.
    /// The scheduler process.
    pub peer: Peer,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    /// Its domain socket.
    pub socket: PathBuf,
    /// Its directory: `conf/`, `state/`, `cache/`, `spool/` (its RequestRoot), `tmp/`, `log/`.
    pub dir: tempfile::TempDir,
}

impl Cupsd {
    /// Starts a scheduler and waits until it listens on its port and socket.
    pub async fn start() -> Cupsd {
        let cupsd = CUPSD.require();
        let dir = scratch("sealprint-cupsd-");
        let root = dir.path();
        for sub in ["conf", "state", "cache", "spool", "tmp", "log"] {
            fs::create_dir(root.join(sub)).expect("create cupsd directory");
        }
        let port = free_port(false);
        let socket = root.join("cups.sock");
        let conf = root.join("cupsd.conf");
        let files = root.join("cups-files.conf");
        // No authentication (only this test reaches it), no browsing, no web interface.
        fs::write(
            &conf,
            format!(
                "LogLevel info\n\
                 Listen 127.0.0.1:{port}\n\
                 Listen {socket}\n\
                 Browsing No\n\
                 BrowseLocalProtocols none\n\
                 DefaultAuthType None\n\
                 WebInterface No\n\
                 <Location />\n  Order allow,deny\n  Allow from all\n</Location>\n\
                 <Policy default>\n  <Limit All>\n    Order allow,deny\n    Allow from all\n  \
                 </Limit>\n</Policy>\n",
                socket = socket.display()
            ),
        )
        .expect("write cupsd.conf");
        let at = |sub: &str| root.join(sub).display().to_string();
        fs::write(
            &files,
            format!(
                "ServerRoot {}\nStateDir {}\nCacheDir {}\nRequestRoot {}\nTempDir {}\n\
                 ErrorLog stderr\nAccessLog {}\nPageLog {}\nPrintcap {}\n\
                 FileDevice Yes\n",
                at("conf"),
                at("state"),
                at("cache"),
                at("spool"),
                at("tmp"),
                at("log/access_log"),
                at("log/page_log"),
                at("printcap"),
            ),
        )
        .expect("write cups-files.conf");
        let mut peer = Peer::spawn(
            "cupsd",
            Command::new(cupsd)
                .arg("-f")
                .arg("-c")
                .arg(&conf)
                .arg("-s")
                .arg(&files),
            root.join("log/cupsd.log"),
        );
        peer.eventually("listening on its port and socket", || {
            (std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && UnixStream::connect(&socket).is_ok())
            .then_some(())
        })
        .await;
        Cupsd {
            peer,
            port,
            socket,
            dir,
        }
    }

    /// `HOST:PORT` of the scheduler, for `-h` and [`Printer::with_cups_server`].
    pub fn server(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Runs a CUPS client program against this scheduler; fails the test if it fails.
    pub fn client(&self, program: Program, args: &[&str]) {
        let output = Command::new(program.require())
            .arg("-h")
            .arg(self.server())
            .args(args)
            .env_remove("CUPS_SERVER")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{} did not run: {e}", program.path));
        assert!(
            output.status.success(),
            "{} {}: {}\n{}\ncupsd's log:\n{}",
            program.path,
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr),
            tail(&self.peer.log)
        );
    }

    /// Makes an enabled queue for `device_uri`, with extra `lpadmin` arguments.
    pub fn add_queue(&self, queue: &str, device_uri: &str, extra: &[&str]) {
        let mut args = vec!["-p", queue, "-v", device_uri];
        args.extend_from_slice(extra);
        args.push("-E");
        self.client(LPADMIN, &args);
    }
}

/// dbus and avahi-daemon, which ippeveprinter needs running even with `-r off`: started when
/// absent; the ones started here are stopped (by pid) when this is dropped.
pub struct SystemDaemons {
    started: Vec<u32>,
}

impl SystemDaemons {
    /// Starts dbus and avahi-daemon when they are not running (their logs in `logs`).
    pub async fn ensure(logs: &Path) -> SystemDaemons {
        let mut daemons = SystemDaemons {
            started: Vec::new(),
        };
        if UnixStream::connect(DBUS_SOCKET).is_err() {
            let dbus = DBUS_DAEMON.require();
            // A pid file left by a bus that is gone stops dbus-daemon from starting.
            remove_stale_pid_file(DBUS_PID_FILE);
            fs::create_dir_all("/run/dbus").expect("create /run/dbus");
            let pid = run_daemon(
                dbus,
                &["--system", "--fork", "--print-pid"],
                &logs.join("dbus"),
            );
            let pid = pid.or_else(|| read_pid(DBUS_PID_FILE)).unwrap_or_else(|| {
                panic!("dbus-daemon started but reported no pid ({DBUS_PID_FILE})")
            });
            daemons.started.push(pid);
            wait_for("the system bus", || {
                UnixStream::connect(DBUS_SOCKET).is_ok()
            })
            .await;
        }
        let avahi = AVAHI_DAEMON.require();
        if !avahi_running(avahi) {
            run_daemon(avahi, &["-D"], &logs.join("avahi"));
            let pid = read_pid(AVAHI_PID_FILE).unwrap_or_else(|| {
                panic!("avahi-daemon started but wrote no pid file ({AVAHI_PID_FILE})")
            });
            daemons.started.push(pid);
            wait_for("avahi-daemon", || avahi_running(avahi)).await;
        }
        daemons
    }
}

impl Drop for SystemDaemons {
    fn drop(&mut self) {
        for pid in self.started.iter().rev() {
            stop(*pid);
        }
    }
}

/// Runs a daemon's forking start command to completion (output to files: the forked daemon
/// may keep a pipe open); its stdout parsed as a pid, if it is one.
pub fn run_daemon(program: &str, args: &[&str], log: &Path) -> Option<u32> {
    let (out, err) = (log.with_extension("out"), log.with_extension("err"));
    let status = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out).expect("create log file"))
        .stderr(fs::File::create(&err).expect("create log file"))
        .status()
        .unwrap_or_else(|e| panic!("{program} did not run: {e}"));
    assert!(
        status.success(),
        "{program} {} failed ({status}); ippeveprinter needs dbus and avahi-daemon running \
         (this test starts them as root; or set {SKIP_VAR}=1):\n{}",
        args.join(" "),
        tail(&err)
    );
    fs::read_to_string(&out).ok()?.trim().parse().ok()
}

/// The pid in a pid file.
pub fn read_pid(path: &str) -> Option<u32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Removes a pid file whose process is gone.
pub fn remove_stale_pid_file(path: &str) {
    if Path::new(path).exists() && !read_pid(path).is_some_and(alive) {
        let _ = fs::remove_file(path);
    }
}

/// Whether avahi-daemon runs (`avahi-daemon -c`).
pub fn avahi_running(avahi: &str) -> bool {
    Command::new(avahi)
        .arg("-c")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Polls `ready` until it holds; fails the test after [`WITHIN`].
pub async fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + WITHIN;
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "{what} not ready within {WITHIN:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Starts ippeveprinter as a Zebra that takes ZPL and PDF, keeping each job's document in
/// `spool`, and waits until it listens.
pub async fn start_ippeveprinter(dir: &Path, spool: &Path, port: u16, name: &str) -> Peer {
    // Keep each document; "print" it with true, so a job ends at once.
    let mut args: Vec<OsString> = vec!["-k".into(), "-d".into(), spool.into()];
    args.extend(["-c", "/bin/true"].map(OsString::from));
    start_ippeveprinter_with(dir, port, name, &args).await
}

/// Starts ippeveprinter as a Zebra that takes ZPL and PDF and sends each job's document on to
/// `device` (`socket://HOST:PORT`, the printer simulator) byte for byte, working in `spool`
/// (it deletes a job's file once the job is done), and waits until it listens.
pub async fn start_ippeveprinter_to_device(
    dir: &Path,
    spool: &Path,
    port: u16,
    name: &str,
    device: &str,
) -> Peer {
    // ippeveprinter sends a print command's output to its device; cat's is the document.
    let args: Vec<OsString> = vec![
        "-d".into(),
        spool.into(),
        "-c".into(),
        "/bin/cat".into(),
        "-D".into(),
        device.into(),
    ];
    start_ippeveprinter_with(dir, port, name, &args).await
}

async fn start_ippeveprinter_with(dir: &Path, port: u16, name: &str, args: &[OsString]) -> Peer {
    let mut peer = Peer::spawn(
        "ippeveprinter",
        Command::new(IPPEVEPRINTER.require())
            .args(["-p", &port.to_string(), "-n", "localhost", "-r", "off"])
            .args(args)
            .args(["-M", "Zebra", "-m", "ZD421"])
            .args(["-f", "application/vnd.zebra-zpl,application/pdf"])
            .arg(name),
        dir.join(format!("{name}.log")),
    );
    peer.eventually("listening", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    })
    .await;
    peer
}

/// The documents ippeveprinter kept, oldest first.
pub fn kept(spool: &Path) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = fs::read_dir(spool)
        .map(|dir| {
            dir.filter_map(|e| e.ok().map(|e| e.path()))
                // JOBID-NAME.prn is the print command's (empty) output, not a document.
                .filter(|p| p.is_file() && p.extension().is_none_or(|e| e != "prn"))
                .collect()
        })
        .unwrap_or_default();
    // Named JOBID-NAME.EXT: order by job id.
    files.sort_by_key(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.split('-').next())
            .and_then(|id| id.parse::<u32>().ok())
            .unwrap_or(u32::MAX)
    });
    files
        .iter()
        .map(|p| fs::read(p).expect("read kept job"))
        .collect()
}
