//! The printer code against real peers that each test starts in its own temporary directory
//! and stops by process id: a private CUPS scheduler (`cupsd -f` with its own configuration,
//! port on 127.0.0.1 and domain socket, queues made with `lpadmin -h`) and `ippeveprinter`,
//! which keeps the exact bytes of every job (`-k -d DIR`).
//!
//! # Requirements
//! Linux as root (cupsd runs backends as `lp`; dbus is the system bus) with the Debian
//! packages `cups` (cupsd), `cups-client` (lpadmin, cupsdisable), `cups-ipp-utils`
//! (ippeveprinter), `dbus` and `avahi-daemon` (ippeveprinter needs both running, even with
//! `-r off`), and optionally `printer-driver-cups-pdf` (a cups-pdf queue is then judged too).
//! CI installs them (`.ci/run`). A missing program fails the test with the package to install;
//! `SEALPRINT_SKIP_REAL_PRINTERS=1` skips both tests with a loud notice instead, for machines
//! without CUPS.
//!
//! dbus and avahi-daemon are started when they are not running, and only the ones started here
//! are stopped again, by the pid they report, when the test ends. The machine's own cupsd, if
//! any, is never touched: the private one has its own port, socket and directories.
//!
//! # What it does not do
//! No fixed sleeps: readiness and delivery are polled with a deadline. ippeveprinter listens on
//! 127.0.0.1 and ::1 (`-n localhost`; with `-n 127.0.0.1` it fails to make its IPv6 listener),
//! so the machine needs an IPv6 loopback.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use super::*;

/// Set to `1` to skip these tests (with a notice) on a machine without CUPS.
const SKIP_VAR: &str = "SEALPRINT_SKIP_REAL_PRINTERS";

/// How long a started peer may take to be ready, or a job to arrive.
const WITHIN: Duration = Duration::from_secs(10);
/// How long a stopped peer may take to exit after SIGTERM, before SIGKILL.
const STOP_WITHIN: Duration = Duration::from_secs(5);
/// How often a condition is polled.
const POLL: Duration = Duration::from_millis(25);

/// A program these tests run, and the Debian package that installs it.
#[derive(Clone, Copy)]
struct Program {
    path: &'static str,
    package: &'static str,
}

const CUPSD: Program = Program {
    path: "/usr/sbin/cupsd",
    package: "cups",
};
const LPADMIN: Program = Program {
    path: "/usr/sbin/lpadmin",
    package: "cups-client",
};
const CUPSDISABLE: Program = Program {
    path: "/usr/sbin/cupsdisable",
    package: "cups-client",
};
const IPPEVEPRINTER: Program = Program {
    path: "/usr/sbin/ippeveprinter",
    package: "cups-ipp-utils",
};
const DBUS_DAEMON: Program = Program {
    path: "/usr/bin/dbus-daemon",
    package: "dbus",
};
const AVAHI_DAEMON: Program = Program {
    path: "/usr/sbin/avahi-daemon",
    package: "avahi-daemon",
};

/// The cups-pdf backend and its PPD (`printer-driver-cups-pdf`, optional).
const CUPS_PDF_BACKEND: &str = "/usr/lib/cups/backend/cups-pdf";
const CUPS_PDF_PPD: &str = "/usr/share/ppd/cups-pdf/CUPS-PDF_opt.ppd";

const DBUS_SOCKET: &str = "/run/dbus/system_bus_socket";
const DBUS_PID_FILE: &str = "/run/dbus/pid";
const AVAHI_PID_FILE: &str = "/run/avahi-daemon/pid";

impl Program {
    /// The program's path; fails the test, naming the package, when it is not installed.
    fn require(self) -> &'static str {
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
fn skipped(test: &str) -> bool {
    if std::env::var(SKIP_VAR).as_deref() != Ok("1") {
        return false;
    }
    eprintln!(
        "\n*** {test} SKIPPED because {SKIP_VAR}=1: the printer code was NOT checked against \
         real CUPS and ippeveprinter peers on this machine ***\n"
    );
    true
}

fn timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(2),
        answer: Duration::from_secs(1),
        write: Duration::from_secs(5),
    }
}

/// A temporary directory under /tmp (short paths: cupsd's domain socket lives in it) that the
/// `lp` user may traverse, since cupsd runs backends as `lp` on spool files inside it.
fn scratch(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .expect("temp dir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod temp dir");
    dir
}

/// A TCP port free on 127.0.0.1 (and on ::1 when `v6`) a moment ago.
fn free_port(v6: bool) -> u16 {
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
fn tail(log: &Path) -> String {
    let text = fs::read(log).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Sends a signal to one process, by its pid (through the shell's `kill` builtin).
fn signal(pid: u32, signal: &str) {
    let _ = Command::new("/bin/sh")
        .args(["-c", "kill -s \"$0\" \"$1\" 2>/dev/null", signal])
        .arg(pid.to_string())
        .status();
}

/// Whether a process runs (exists and is not a zombie).
fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let (_, rest) = stat.rsplit_once(')')?;
            rest.trim_start().chars().next()
        })
        .is_some_and(|state| state != 'Z' && state != 'X')
}

/// Stops a process that is not our child: SIGTERM, then SIGKILL after [`STOP_WITHIN`].
fn stop(pid: u32) {
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
struct Peer {
    what: String,
    child: Child,
    log: PathBuf,
}

impl Peer {
    fn spawn(what: &str, command: &mut Command, log: PathBuf) -> Peer {
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
    async fn eventually<T>(&mut self, what_for: &str, mut check: impl FnMut() -> Option<T>) -> T {
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
struct Cupsd {
    // Field order is drop order: the scheduler stops before its directory is removed.
    peer: Peer,
    port: u16,
    socket: PathBuf,
    dir: tempfile::TempDir,
}

impl Cupsd {
    async fn start() -> Cupsd {
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
    fn server(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Runs a CUPS client program against this scheduler; fails the test if it fails.
    fn client(&self, program: Program, args: &[&str]) {
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
    fn add_queue(&self, queue: &str, device_uri: &str, extra: &[&str]) {
        let mut args = vec!["-p", queue, "-v", device_uri];
        args.extend_from_slice(extra);
        args.push("-E");
        self.client(LPADMIN, &args);
    }
}

/// A `cups://QUEUE` printer asking the scheduler at `server`.
fn cups_queue(server: &str, queue: &str, recorded: Option<&str>) -> Printer {
    let config = PrinterConfig::from_flag(&format!("{queue}=cups://{queue}")).expect("valid");
    Printer::new(config, recorded.map(str::to_owned), timeouts())
        .expect("valid")
        .with_cups_server(server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_cups_queues_are_judged_and_print() {
    if skipped("real_cups_queues_are_judged_and_print") {
        return;
    }
    let zebra = Fake::start(Answers::zebra(SERIAL)).await;
    let impostor = Fake::start(Answers::silent()).await;
    let mut cupsd = Cupsd::start().await;
    let out_file = cupsd.dir.path().join("out.prn");
    cupsd.add_queue("Zebra", &format!("socket://{}", zebra.addr), &[]);
    cupsd.add_queue("Impostor", &format!("socket://{}", impostor.addr), &[]);
    cupsd.add_queue("Null", "file:/dev/null", &[]);
    cupsd.add_queue("File", &format!("file://{}", out_file.display()), &[]);
    let forward = format!("ipp://localhost:{}/printers/Zebra", cupsd.port);
    cupsd.add_queue("Forward", &forward, &[]);
    let mut refused = vec![
        ("Null", "discards every job"),
        ("File", "prints to a file"),
        ("Forward", "another local CUPS queue"),
        ("Impostor", "did not answer Zebra host queries"),
    ];
    if Path::new(CUPS_PDF_BACKEND).exists() && Path::new(CUPS_PDF_PPD).exists() {
        cupsd.add_queue("PDF", "cups-pdf:/", &["-P", CUPS_PDF_PPD]);
        refused.push(("PDF", "writes PDF"));
    } else {
        eprintln!("printer-driver-cups-pdf is not installed: no cups-pdf queue judged");
    }
    let tcp = cupsd.server();
    let socket = cupsd.socket.display().to_string();

    // A socket queue to a device that answers like a Zebra: verified, over TCP and over the
    // scheduler's domain socket alike.
    let mut printer = cups_queue(&tcp, "Zebra", None);
    let report = printer.probe().await;
    assert_eq!(
        report.verdict,
        PrinterVerdict::Verified,
        "{}",
        report.reason
    );
    assert_eq!(report.status, PrinterStatus::Ready, "{}", report.reason);
    assert_eq!(report.identity.as_deref(), Some(SERIAL));
    assert!(
        report.reason.starts_with("CUPS queue Zebra: verified"),
        "{}",
        report.reason
    );
    let report = cups_queue(&socket, "Zebra", Some(SERIAL)).probe().await;
    assert_eq!(
        report.verdict,
        PrinterVerdict::Verified,
        "{}",
        report.reason
    );
    assert_eq!(report.identity.as_deref(), Some(SERIAL));

    // The label goes through cupsd and its socket backend to the device, byte for byte.
    let label = b"^XA^FO50,50^FDsealprint cups test^FS^XZ";
    printer
        .print(LabelFormat::Zpl, label)
        .await
        .expect("printed through cups");
    let received = cupsd
        .peer
        .eventually("the job reached the device", || {
            let received = zebra.received();
            (!received.is_empty()).then_some(received)
        })
        .await;
    assert_eq!(received, vec![label.to_vec()]);

    // A paused queue is not ready, though its device is.
    cupsd.client(CUPSDISABLE, &["Zebra"]);
    let report = printer.probe().await;
    assert_eq!(
        report.verdict,
        PrinterVerdict::Verified,
        "{}",
        report.reason
    );
    assert_eq!(report.status, PrinterStatus::Paused, "{}", report.reason);
    let result = printer.print(LabelFormat::Zpl, label).await;
    assert_eq!(result, Err(PrintError::NotPrinted("paused".to_owned())));

    // Queues that reach no physical printer (or an impostor) are refused, and get no label
    // even when an identity was recorded for them before.
    for (queue, why) in refused {
        let report = cups_queue(&tcp, queue, None).probe().await;
        assert_eq!(
            report.verdict,
            PrinterVerdict::Refused,
            "{queue}: {}",
            report.reason
        );
        assert!(report.reason.contains(why), "{queue}: {}", report.reason);
        let result = cups_queue(&tcp, queue, Some(SERIAL))
            .print(LabelFormat::Zpl, label)
            .await;
        assert!(
            matches!(result, Err(PrintError::NotPrinted(_))),
            "{queue}: {result:?}"
        );
    }

    // A queue the scheduler does not have.
    let report = cups_queue(&tcp, "Nope", None).probe().await;
    assert_eq!(report.verdict, PrinterVerdict::Unreachable);
    assert!(
        report.reason.contains("no queue named Nope"),
        "{}",
        report.reason
    );

    assert!(!out_file.exists(), "the print-to-file queue got a job");
    assert!(impostor.received().is_empty(), "the impostor got a job");
    assert_eq!(
        zebra.received().len(),
        1,
        "the device got more than one job"
    );
}

/// dbus and avahi-daemon, which ippeveprinter needs running even with `-r off`: started when
/// absent; the ones started here are stopped (by pid) when this is dropped.
struct SystemDaemons {
    started: Vec<u32>,
}

impl SystemDaemons {
    async fn ensure(logs: &Path) -> SystemDaemons {
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
fn run_daemon(program: &str, args: &[&str], log: &Path) -> Option<u32> {
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

fn read_pid(path: &str) -> Option<u32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn remove_stale_pid_file(path: &str) {
    if Path::new(path).exists() && !read_pid(path).is_some_and(alive) {
        let _ = fs::remove_file(path);
    }
}

fn avahi_running(avahi: &str) -> bool {
    Command::new(avahi)
        .arg("-c")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

async fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
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
async fn start_ippeveprinter(dir: &Path, spool: &Path, port: u16, name: &str) -> Peer {
    let mut peer = Peer::spawn(
        "ippeveprinter",
        Command::new(IPPEVEPRINTER.require())
            .args(["-p", &port.to_string(), "-n", "localhost", "-r", "off"])
            // Keep each document; "print" it with true, so a job ends at once.
            .arg("-k")
            .arg("-d")
            .arg(spool)
            .args(["-c", "/bin/true"])
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

/// Prints; while ippeveprinter is still busy with the previous job (it takes one at a time
/// and answers server-error-busy meanwhile, a refusal), tries again until [`WITHIN`].
async fn print_when_idle(
    printer: &mut Printer,
    format: LabelFormat,
    data: &[u8],
) -> Result<(), PrintError> {
    let deadline = Instant::now() + WITHIN;
    loop {
        match printer.print(format, data).await {
            Err(PrintError::NotPrinted(r)) if r.contains("0x0507") && Instant::now() < deadline => {
                tokio::time::sleep(POLL).await;
            }
            result => return result,
        }
    }
}

/// The documents ippeveprinter kept, oldest first.
fn kept(spool: &Path) -> Vec<Vec<u8>> {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_ipp_printer_verifies_and_prints() {
    if skipped("real_ipp_printer_verifies_and_prints") {
        return;
    }
    IPPEVEPRINTER.require();
    let dir = scratch("sealprint-ipp-");
    // Declared before the ippeveprinter peers, so dropped (stopping what it started) after them.
    let _daemons = SystemDaemons::ensure(dir.path()).await;
    let spool = dir.path().join("spool");
    fs::create_dir(&spool).expect("create spool");
    let port = free_port(true);
    let mut eve = start_ippeveprinter(dir.path(), &spool, port, "sealprint zebra").await;

    let config =
        PrinterConfig::from_flag(&format!("eve=ipp://127.0.0.1:{port}/ipp/print")).expect("valid");
    let mut printer = Printer::new(config, None, timeouts()).expect("valid");
    let report = printer.probe().await;
    assert_eq!(
        report.verdict,
        PrinterVerdict::Verified,
        "{}",
        report.reason
    );
    assert_eq!(report.status, PrinterStatus::Ready, "{}", report.reason);
    let identity = report.identity.clone().expect("verified with an identity");
    assert!(identity.starts_with("urn:uuid:"), "{identity}");
    assert_eq!(printer.recorded_identity(), Some(identity.as_str()));

    // ZPL and PDF labels arrive exactly as sent.
    let label = b"^XA^FO50,50^FDsealprint ipp test^FS^XZ";
    print_when_idle(&mut printer, LabelFormat::Zpl, label)
        .await
        .expect("zpl printed");
    let jobs = eve
        .eventually("the zpl job kept", || {
            Some(kept(&spool)).filter(|k| k.len() == 1)
        })
        .await;
    assert_eq!(jobs, vec![label.to_vec()]);
    let pdf = b"%PDF-1.7\n% sealprint ipp test\n%%EOF\n";
    print_when_idle(&mut printer, LabelFormat::Pdf, pdf)
        .await
        .expect("pdf printed");
    let jobs = eve
        .eventually("the pdf job kept", || {
            Some(kept(&spool)).filter(|k| k.len() == 2)
        })
        .await;
    assert_eq!(jobs[1], pdf.to_vec());

    // PNG is not among its document formats: refused before anything is sent.
    let result = printer.print(LabelFormat::Png, b"\x89PNG\r\n\x1a\n").await;
    assert!(
        matches!(&result, Err(PrintError::NotPrinted(r)) if r.contains("png")),
        "{result:?}"
    );

    // Another emulator at the same address answers another identity: refused, no label.
    drop(eve);
    let _swapped = start_ippeveprinter(dir.path(), &spool, port, "sealprint swapped").await;
    let result = printer.print(LabelFormat::Zpl, label).await;
    assert!(
        matches!(&result, Err(PrintError::NotPrinted(r)) if r.starts_with("identity changed")),
        "{result:?}"
    );
    let report = printer.last_report();
    assert_eq!(report.verdict, PrinterVerdict::Refused);
    assert_ne!(report.identity.as_deref(), Some(identity.as_str()));
    assert_eq!(printer.recorded_identity(), Some(identity.as_str()));
    assert_eq!(kept(&spool).len(), 2, "a job reached the swapped device");
}
