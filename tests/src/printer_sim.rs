//! A Zebra-like raw TCP printer (port 9100 style) for tests: answers the host queries the agent
//! verifies printers with, and records what it would have printed.
//!
//! # What it does
//! Per connection, while the unread input begins with a recognised query (`~HI`, `~HS`,
//! `~HQES`, or `! U1 getvar "NAME"` ending in CR LF or LF), the sim answers it and drops it.
//! A line ending right after a `~` query goes with it; other blanks, CR and LF are skipped when
//! a query follows them. Every other byte, from the first one that is not part of a query on,
//! is label data (so a label may start with a blank). When the connection closes and label data arrived, that is one
//! job: it is recorded (in memory, and as `job-000001.bin`, … in the record directory if one is
//! set) *before* the sim closes its side, so a client that waits for the close knows the job is
//! recorded. Whether a job is kept is decided by the mode at that moment.
//!
//! # Modes
//! [`SimMode`]: a normal printer; paper out, head open or paused (answers with those flags,
//! prints nothing); an impostor (answers nothing, records everything, so a test can prove no
//! label reached it); a faulted printer that stays silent on `~HS` like some firmware does.
//!
//! # What it does not do
//! No ZPL interpretation, no `~` commands inside label data, no USB/IPP, no TLS. It is a test
//! double: it lives in the testkit only and logs byte counts, never content.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument as _};

use crate::sim_activity::Activity;
pub use crate::sim_activity::ActivitySnapshot;

/// The most label bytes one connection may send; beyond it the job is dropped.
pub const MAX_JOB_LEN: usize = 64 * 1024 * 1024;

/// The longest SGD variable name the sim recognises in a `getvar`.
const MAX_VAR_LEN: usize = 64;

const FIRMWARE: &str = "V84.20.18Z";

/// How the simulated printer behaves. Changing it affects the next query answered and the next
/// job finished, also on connections already open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimMode {
    /// A ready printer: answers every query, prints every job.
    Normal,
    /// Out of paper: `~HS` says so, jobs are not printed.
    PaperOut,
    /// Print head open: `~HS` says so, jobs are not printed.
    HeadOpen,
    /// Paused by an operator: `~HS` says so, jobs are not printed.
    Paused,
    /// Accepts bytes, answers nothing, records every job: not a printer.
    Impostor,
    /// Out of paper with firmware that does not answer `~HS` while faulted: answers `~HI`,
    /// `getvar` and `~HQES` (media out), stays silent on `~HS`, prints nothing.
    SilentWhenFaulted,
}

impl SimMode {
    /// The CLI spelling (`normal`, `paper-out`, `head-open`, `paused`, `impostor`,
    /// `silent-when-faulted`).
    pub fn as_str(self) -> &'static str {
        match self {
            SimMode::Normal => "normal",
            SimMode::PaperOut => "paper-out",
            SimMode::HeadOpen => "head-open",
            SimMode::Paused => "paused",
            SimMode::Impostor => "impostor",
            SimMode::SilentWhenFaulted => "silent-when-faulted",
        }
    }

    /// Whether a job finished in this mode is recorded as printed.
    fn prints(self) -> bool {
        matches!(self, SimMode::Normal | SimMode::Impostor)
    }
}

impl fmt::Display for SimMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A mode name that is not one of [`SimMode`]'s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownMode(pub String);

impl fmt::Display for UnknownMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown mode {:?} (expected normal, paper-out, head-open, paused, impostor or \
             silent-when-faulted)",
            self.0
        )
    }
}

impl std::error::Error for UnknownMode {}

impl FromStr for SimMode {
    type Err = UnknownMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            SimMode::Normal,
            SimMode::PaperOut,
            SimMode::HeadOpen,
            SimMode::Paused,
            SimMode::Impostor,
            SimMode::SilentWhenFaulted,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
        .ok_or_else(|| UnknownMode(s.to_owned()))
    }
}

/// What the simulated printer claims to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimConfig {
    /// Answered to `getvar "device.unique_id"`.
    pub serial: String,
    /// Answered in `~HI` and to `getvar "device.product_name"`.
    pub model: String,
    /// Initial behaviour.
    pub mode: SimMode,
}

impl SimConfig {
    /// A ready ZD421 with the given serial.
    pub fn normal(serial: impl Into<String>) -> SimConfig {
        SimConfig {
            serial: serial.into(),
            model: "ZD421-203dpi".to_owned(),
            mode: SimMode::Normal,
        }
    }
}

/// A host query the sim understands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Query {
    Hi,
    Hs,
    Hqes,
    Getvar(String),
}

/// What the start of the unread input is.
#[derive(Debug, PartialEq, Eq)]
enum Token {
    /// A query, and how many bytes it used (blanks before it included).
    Query(Query, usize),
    /// A query may still be arriving: wait for more bytes.
    Incomplete,
    /// Not a query: label data starts here.
    Label,
}

const GETVAR_PREFIX: &[u8] = b"! U1 getvar \"";

fn next_token(buf: &[u8]) -> Token {
    let start = buf
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .unwrap_or(buf.len());
    let rest = &buf[start..];
    // Longest first: ~HQES must not be read as ~HQ + label data.
    for (text, query) in [
        (&b"~HQES"[..], Query::Hqes),
        (b"~HI", Query::Hi),
        (b"~HS", Query::Hs),
    ] {
        if rest.starts_with(text) {
            return Token::Query(query, start + text.len());
        }
    }
    if let Some(after) = rest.strip_prefix(GETVAR_PREFIX) {
        let Some(close) = after.iter().position(|&b| b == b'"') else {
            let name_ok = after.len() <= MAX_VAR_LEN && after.iter().all(u8::is_ascii_graphic);
            return if name_ok {
                Token::Incomplete
            } else {
                Token::Label
            };
        };
        let name = &after[..close];
        if close > MAX_VAR_LEN || !name.iter().all(u8::is_ascii_graphic) {
            return Token::Label;
        }
        let used = start + GETVAR_PREFIX.len() + close + 1;
        return match &buf[used..] {
            [] | [b'\r'] => Token::Incomplete,
            [b'\n', ..] => Token::Query(query_getvar(name), used + 1),
            [b'\r', b'\n', ..] => Token::Query(query_getvar(name), used + 2),
            _ => Token::Label,
        };
    }
    let could_grow = [&b"~HQES"[..], b"~HI", b"~HS", GETVAR_PREFIX]
        .iter()
        .any(|q| q.starts_with(rest));
    if could_grow {
        Token::Incomplete
    } else {
        Token::Label
    }
}

fn query_getvar(name: &[u8]) -> Query {
    Query::Getvar(String::from_utf8_lossy(name).into_owned())
}

struct State {
    serial: String,
    model: String,
    mode: SimMode,
    /// When each job finished arriving, and its bytes.
    jobs: Vec<(Instant, Vec<u8>)>,
    /// Jobs that arrived while the printer could not print (paper out, head open, paused):
    /// like a real Zebra's buffer, they print once the fault is cleared.
    held: Vec<Vec<u8>>,
}

struct Shared {
    state: Mutex<State>,
    /// Serialises recording so job numbers, files and the in-memory list agree.
    recorder: tokio::sync::Mutex<u64>,
    jobs_tx: watch::Sender<usize>,
    record_dir: Option<PathBuf>,
    activity: Activity,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not hide what was recorded.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The answer to `query` in the current mode, or `None` for silence.
    fn answer(&self, query: &Query) -> Option<Vec<u8>> {
        let state = self.state();
        let mode = state.mode;
        if mode == SimMode::Impostor {
            return None;
        }
        let bytes = match query {
            Query::Hi => format!("\x02{},{FIRMWARE},8,8176KB\x03\r\n", state.model),
            Query::Hs if mode == SimMode::SilentWhenFaulted => return None,
            Query::Hs => {
                let paper_out = u8::from(mode == SimMode::PaperOut);
                let paused = u8::from(mode == SimMode::Paused);
                let head_up = u8::from(mode == SimMode::HeadOpen);
                format!(
                    "\x02030,{paper_out},{paused},1245,000,0,0,0,000,0,0,0\x03\r\n\
                     \x02001,0,{head_up},0,0,2,6,0,00000000,1,000\x03\r\n\
                     \x021234,0\x03\r\n"
                )
            }
            Query::Hqes => {
                // Error bits of the last group: 1 media out, 4 head open.
                let (flag, bits) = match mode {
                    SimMode::PaperOut | SimMode::SilentWhenFaulted => (1, 1),
                    SimMode::HeadOpen => (1, 4),
                    _ => (0, 0),
                };
                format!(
                    "\x02\r\n PRINTER STATUS\r\n   ERRORS:         {flag} 00000000 {bits:08X}\r\n\
                     \x20  WARNINGS:       0 00000000 00000000\r\n\x03\r\n"
                )
            }
            Query::Getvar(name) => match name.as_str() {
                "device.unique_id" => format!("\"{}\"", state.serial),
                "device.product_name" => format!("\"{}\"", state.model),
                _ => "\"?\"".to_owned(),
            },
        };
        Some(bytes.into_bytes())
    }

    /// Records a finished job if the current mode prints; returns its number. `arrived`: the
    /// job just came in over a connection (not a held job printing later).
    async fn finish_job(&self, data: Vec<u8>, arrived: bool) -> Option<u64> {
        let at = Instant::now();
        {
            let mut state = self.state();
            if arrived {
                self.activity.received(state.mode.prints());
            } else {
                self.activity.touch();
            }
            if !state.mode.prints() {
                info!(bytes = data.len(), mode = %state.mode, "job held: printer not ready");
                state.held.push(data);
                return None;
            }
        }
        let mut counter = self.recorder.lock().await;
        *counter += 1;
        let number = *counter;
        if let Some(dir) = &self.record_dir {
            if let Err(e) = write_job(dir, number, &data).await {
                warn!(job = number, error = %e, "could not write job file");
            }
        }
        let bytes = data.len();
        let count = {
            let mut state = self.state();
            state.jobs.push((at, data));
            state.jobs.len()
        };
        self.jobs_tx.send_replace(count);
        info!(job = number, bytes, "job recorded");
        Some(number)
    }
}

/// The file a job is recorded in: `job-000001.bin`, …
pub fn job_file(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("job-{number:06}.bin"))
}

/// Writes under a temporary name, then renames, so a reader never sees half a job.
async fn write_job(dir: &Path, number: u64, data: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".job-{number:06}.bin.tmp"));
    tokio::fs::write(&tmp, data).await?;
    tokio::fs::rename(&tmp, job_file(dir, number)).await
}

/// A running simulator. Stops when dropped or on [`SimHandle::shutdown`].
pub struct SimHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    jobs_rx: watch::Receiver<usize>,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimHandle")
            .field("addr", &self.addr)
            .field("mode", &self.mode())
            .finish_non_exhaustive()
    }
}

impl SimHandle {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `raw://` URI of the sim, for an agent's printer config.
    pub fn uri(&self) -> String {
        format!("raw://{}", self.addr)
    }

    /// The current mode.
    pub fn mode(&self) -> SimMode {
        self.shared.state().mode
    }

    /// Changes the behaviour (takes effect on the next query and the next finished job).
    /// Back in a printing mode, jobs held while faulted print (recorded in the background).
    pub fn set_mode(&self, mode: SimMode) {
        let held = {
            let mut state = self.shared.state();
            state.mode = mode;
            if mode.prints() {
                std::mem::take(&mut state.held)
            } else {
                Vec::new()
            }
        };
        if held.is_empty() {
            return;
        }
        // Not quiet until the held jobs are recorded (see `wait_quiet`).
        self.shared.activity.touch();
        let shared = self.shared.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    for job in held {
                        shared.finish_job(job, false).await;
                    }
                });
            }
            Err(_) => warn!(
                jobs = held.len(),
                "held jobs lost: no runtime to print them"
            ),
        }
    }

    /// How many jobs are held, waiting for the fault to clear.
    pub fn held_count(&self) -> usize {
        self.shared.state().held.len()
    }

    /// Throws away the jobs held now (an operator pulled the half-fed label out of a faulted
    /// printer): they never print. Returns how many there were.
    pub fn discard_held(&self) -> usize {
        std::mem::take(&mut self.shared.state().held).len()
    }

    /// The jobs held now, waiting for the fault to clear (they print when it does).
    pub fn held_jobs(&self) -> Vec<Vec<u8>> {
        self.shared.state().held.clone()
    }

    /// Changes the serial answered from now on (a swapped device).
    pub fn set_serial(&self, serial: String) {
        self.shared.state().serial = serial;
    }

    /// Every job printed so far, oldest first.
    pub fn jobs(&self) -> Vec<Vec<u8>> {
        self.shared
            .state()
            .jobs
            .iter()
            .map(|(_, data)| data.clone())
            .collect()
    }

    /// Every job printed so far with when it finished arriving (the connection closed),
    /// oldest first.
    pub fn jobs_timed(&self) -> Vec<(Instant, Vec<u8>)> {
        self.shared.state().jobs.clone()
    }

    /// How many jobs were printed so far.
    pub fn job_count(&self) -> usize {
        self.shared.state().jobs.len()
    }

    /// Waits until at least `n` jobs were printed, for at most `within`; returns the jobs, or
    /// `None` on timeout.
    pub async fn wait_for_jobs(&self, n: usize, within: Duration) -> Option<Vec<Vec<u8>>> {
        let mut rx = self.jobs_rx.clone();
        let reached = tokio::time::timeout(within, rx.wait_for(|&count| count >= n)).await;
        match reached {
            Ok(Ok(_)) => Some(self.jobs()),
            _ => None,
        }
    }

    /// Connections open, jobs received (printed or held) and jobs stalled, now.
    pub fn activity(&self) -> ActivitySnapshot {
        self.shared.activity.snapshot()
    }

    /// While on, jobs that finished arriving wait unrecorded and unanswered (in flight); when
    /// turned off they are recorded in the mode of that moment.
    pub fn set_stall(&self, on: bool) {
        self.shared.activity.set_stall(on);
    }

    /// Waits until no connection is open and nothing arrived or was recorded for `quiet`,
    /// for at most `within`; returns whether it got quiet.
    pub async fn wait_quiet(&self, quiet: Duration, within: Duration) -> bool {
        let until = Instant::now() + within;
        loop {
            if self.shared.activity.is_quiet(quiet) {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops accepting, ends every connection (unfinished jobs are not recorded) and waits for
    /// the accept loop to end.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Starts a simulator on `listener`. Jobs are also written to `record_dir` when given (it must
/// exist).
pub async fn start(
    listener: TcpListener,
    config: SimConfig,
    record_dir: Option<PathBuf>,
) -> SimHandle {
    // A listener bound to a port always has a local address; fall back to unspecified only so
    // that this never panics.
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let (jobs_tx, jobs_rx) = watch::channel(0);
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            serial: config.serial,
            model: config.model,
            mode: config.mode,
            jobs: Vec::new(),
            held: Vec::new(),
        }),
        recorder: tokio::sync::Mutex::new(0),
        jobs_tx,
        record_dir,
        activity: Activity::new(),
    });
    let cancel = CancellationToken::new();
    let task = tokio::spawn(accept_loop(listener, shared.clone(), cancel.clone()));
    SimHandle {
        addr,
        shared,
        jobs_rx,
        cancel,
        task: Some(task),
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, cancel: CancellationToken) {
    let mut next_conn: u64 = 0;
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _peer)) => {
                next_conn += 1;
                let span = tracing::debug_span!("sim_connection", conn = next_conn);
                let cancel = cancel.child_token();
                let shared = shared.clone();
                tokio::spawn(
                    async move {
                        tokio::select! {
                            _ = cancel.cancelled() => debug!("connection ended by shutdown"),
                            _ = serve(stream, shared) => {}
                        }
                    }
                    .instrument(span),
                );
            }
            Err(e) => {
                // Usually out of file descriptors: back off instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve(mut stream: TcpStream, shared: Arc<Shared>) {
    let _open = shared.activity.open();
    let mut pending: Vec<u8> = Vec::new();
    let mut label: Vec<u8> = Vec::new();
    let mut in_label = false;
    let mut eat_line_end = false;
    let mut too_long = false;
    let mut chunk = vec![0u8; 64 * 1024];
    'read: loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        shared.activity.touch();
        if in_label {
            if label.len() + n > MAX_JOB_LEN {
                too_long = true;
                break;
            }
            label.extend_from_slice(&chunk[..n]);
            continue;
        }
        pending.extend_from_slice(&chunk[..n]);
        loop {
            if eat_line_end {
                match pending.as_slice() {
                    [] | [b'\r'] => break,
                    [b'\r', b'\n', ..] => drop(pending.drain(..2)),
                    [b'\n', ..] => drop(pending.drain(..1)),
                    _ => {}
                }
                eat_line_end = false;
            }
            match next_token(&pending) {
                Token::Query(query, used) => {
                    pending.drain(..used);
                    // `~HI\r\n`: the line ending goes with the query, even if it comes later.
                    eat_line_end = !matches!(query, Query::Getvar(_));
                    debug!(query = ?query, "query");
                    if let Some(answer) = shared.answer(&query) {
                        if stream.write_all(&answer).await.is_err() {
                            break 'read;
                        }
                    }
                }
                Token::Incomplete => break,
                Token::Label => {
                    in_label = true;
                    label.append(&mut pending);
                    break;
                }
            }
        }
        if !in_label && pending.len() > MAX_JOB_LEN {
            too_long = true;
            break;
        }
    }
    if too_long {
        warn!(limit = MAX_JOB_LEN, "job too long: dropped");
        return;
    }
    // A query cut short by the close is data the printer got, unless it is only blanks.
    if !in_label && pending.iter().any(|b| !b.is_ascii_whitespace()) {
        label.append(&mut pending);
    }
    if !label.is_empty() {
        // A stall keeps a fully received job waiting here: in flight, not yet acknowledged.
        shared.activity.pass_stall().await;
        shared.finish_job(label, true).await;
    }
    // Close only after recording, so a client waiting for the close sees the job.
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERIAL: &str = "XXZEJ1234567";

    async fn sim(mode: SimMode, record_dir: Option<PathBuf>) -> SimHandle {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let mut config = SimConfig::normal(SERIAL);
        config.mode = mode;
        start(listener, config, record_dir).await
    }

    /// Sends `query` and reads until `done` holds for what came back, or 300 ms pass.
    async fn ask(stream: &mut TcpStream, query: &[u8], done: fn(&[u8]) -> bool) -> Vec<u8> {
        stream.write_all(query).await.expect("write");
        let mut got = Vec::new();
        let mut chunk = [0u8; 1024];
        let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
        while !done(&got) {
            match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => got.extend_from_slice(&chunk[..n]),
                _ => break,
            }
        }
        got
    }

    fn one_frame(b: &[u8]) -> bool {
        b.contains(&0x03)
    }

    fn three_frames(b: &[u8]) -> bool {
        b.iter().filter(|&&c| c == 0x03).count() >= 3
    }

    fn quoted(b: &[u8]) -> bool {
        b.iter().filter(|&&c| c == b'"').count() >= 2
    }

    /// Closes the sending side and waits for the sim to close (it records first).
    async fn finish(mut stream: TcpStream) {
        stream.shutdown().await.expect("shutdown");
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    }

    #[test]
    fn tokenizes_queries_and_label_data() {
        assert_eq!(next_token(b"~HI"), Token::Query(Query::Hi, 3));
        assert_eq!(next_token(b"\r\n ~HS^XA"), Token::Query(Query::Hs, 6));
        assert_eq!(next_token(b"~HQES"), Token::Query(Query::Hqes, 5));
        assert_eq!(next_token(b"~HQ"), Token::Incomplete);
        assert_eq!(next_token(b""), Token::Incomplete);
        assert_eq!(next_token(b"\r\n"), Token::Incomplete);
        assert_eq!(next_token(b"~"), Token::Incomplete);
        assert_eq!(next_token(b"^XA^FDx^FS^XZ"), Token::Label);
        assert_eq!(next_token(b"~HX"), Token::Label);
        let getvar = b"! U1 getvar \"device.unique_id\"\r\n";
        assert_eq!(
            next_token(getvar),
            Token::Query(Query::Getvar("device.unique_id".to_owned()), getvar.len())
        );
        assert_eq!(
            next_token(b"! U1 getvar \"device.unique_id\"\n^XA"),
            Token::Query(Query::Getvar("device.unique_id".to_owned()), 31)
        );
        for end in 1..getvar.len() {
            assert_eq!(next_token(&getvar[..end]), Token::Incomplete, "{end}");
        }
        assert_eq!(
            next_token(b"! U1 getvar \"device.unique_id\" x"),
            Token::Label
        );
        assert_eq!(next_token(b"! U1 setvar \"x\" \"y\"\r\n"), Token::Label);
    }

    #[test]
    fn parses_modes() {
        for mode in [
            SimMode::Normal,
            SimMode::PaperOut,
            SimMode::HeadOpen,
            SimMode::Paused,
            SimMode::Impostor,
            SimMode::SilentWhenFaulted,
        ] {
            assert_eq!(mode.as_str().parse(), Ok(mode));
        }
        assert_eq!(
            "ready".parse::<SimMode>(),
            Err(UnknownMode("ready".to_owned()))
        );
    }

    #[tokio::test]
    async fn answers_like_a_zebra_and_records_jobs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sim = sim(SimMode::Normal, Some(dir.path().to_owned())).await;
        let mut stream = TcpStream::connect(sim.addr()).await.expect("connect");
        let hi = ask(&mut stream, b"~HI", one_frame).await;
        assert_eq!(hi, b"\x02ZD421-203dpi,V84.20.18Z,8,8176KB\x03\r\n");
        let serial = ask(&mut stream, b"! U1 getvar \"device.unique_id\"\r\n", quoted).await;
        assert_eq!(serial, format!("\"{SERIAL}\"").as_bytes());
        let hs = ask(&mut stream, b"~HS", three_frames).await;
        let text = String::from_utf8(hs).expect("ascii");
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines.len(), 4, "{text:?}");
        assert!(lines[0].starts_with("\x02030,0,0,"));
        assert!(lines[1].starts_with("\x02001,0,0,"));
        let unknown = ask(&mut stream, b"! U1 getvar \"appl.name\"\n", quoted).await;
        assert_eq!(unknown, b"\"?\"");

        let label = b"^XA^FO50,50^FDhello^FS^XZ\r\n".to_vec();
        let before = Instant::now();
        stream.write_all(&label).await.expect("write");
        finish(stream).await;
        assert_eq!(sim.jobs(), vec![label.clone()]);
        let timed = sim.jobs_timed();
        assert!(timed[0].0 >= before && timed[0].0 <= Instant::now());
        let file = std::fs::read(job_file(dir.path(), 1)).expect("job file");
        assert_eq!(file, label);

        // Queries and label in one write; the query takes its CR LF, the label keeps its LF.
        let mut stream = TcpStream::connect(sim.addr()).await.expect("connect");
        let second = b"\n^XA^FDsecond^FS^XZ".to_vec();
        let mut both = b"~HI\r\n".to_vec();
        both.extend_from_slice(&second);
        stream.write_all(&both).await.expect("write");
        finish(stream).await;
        assert_eq!(sim.job_count(), 2);
        assert_eq!(sim.jobs()[1], second);
        assert!(job_file(dir.path(), 2).exists());
        sim.shutdown().await;
    }

    #[tokio::test]
    async fn queries_alone_are_not_a_job() {
        let sim = sim(SimMode::Normal, None).await;
        let mut stream = TcpStream::connect(sim.addr()).await.expect("connect");
        let _ = ask(&mut stream, b"~HI\r\n", one_frame).await;
        let _ = ask(&mut stream, b"~HS\r\n", three_frames).await;
        finish(stream).await;
        assert!(sim.jobs().is_empty());
    }

    #[tokio::test]
    async fn faulted_modes_report_flags_and_print_nothing() {
        for (mode, line1, line2) in [
            (SimMode::PaperOut, "\x02030,1,0,", "\x02001,0,0,"),
            (SimMode::Paused, "\x02030,0,1,", "\x02001,0,0,"),
            (SimMode::HeadOpen, "\x02030,0,0,", "\x02001,0,1,"),
        ] {
            let dir = tempfile::tempdir().expect("tempdir");
            let sim = sim(mode, Some(dir.path().to_owned())).await;
            let mut stream = TcpStream::connect(sim.addr()).await.expect("connect");
            let hs =
                String::from_utf8(ask(&mut stream, b"~HS", three_frames).await).expect("ascii");
            let lines: Vec<&str> = hs.split("\r\n").collect();
            assert!(lines[0].starts_with(line1), "{mode}: {hs:?}");
            assert!(lines[1].starts_with(line2), "{mode}: {hs:?}");
            stream.write_all(b"^XA^XZ").await.expect("write");
            finish(stream).await;
            assert!(sim.jobs().is_empty(), "{mode}");
            assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
        }
    }

    #[tokio::test]
    async fn impostor_answers_nothing_but_records_data() {
        let sim = sim(SimMode::Impostor, None).await;
        let mut stream = TcpStream::connect(sim.addr()).await.expect("connect");
        assert!(ask(&mut stream, b"~HI", one_frame).await.is_empty());
        assert!(ask(&mut stream, b"~HS", three_frames).await.is_empty());
        finish(stream).await;
        // Queries alone leave it empty: that is how a test proves no label reached it.
        assert!(sim.jobs().is_empty());

        let mut stream = TcpStream::connect(sim.addr()).await.expect("connect");
        stream.write_all(b"^XA^XZ").await.expect("write");
        finish(stream).await;
        assert_eq!(sim.jobs(), vec![b"^XA^XZ".to_vec()]);
    }

    #[tokio::test]
    async fn silent_when_faulted_skips_hs_but_answers_hqes() {
        let sim = sim(SimMode::SilentWhenFaulted, None).await;
        let mut stream = TcpStream::connect(sim.addr()).await.expect("connect");
        assert!(!ask(&mut stream, b"~HI", one_frame).await.is_empty());
        assert!(ask(&mut stream, b"~HS", three_frames).await.is_empty());
        let hqes = String::from_utf8(ask(&mut stream, b"~HQES", one_frame).await).expect("ascii");
        assert!(
            hqes.contains("ERRORS:         1 00000000 00000001"),
            "{hqes:?}"
        );
        stream.write_all(b"^XA^XZ").await.expect("write");
        finish(stream).await;
        assert!(sim.jobs().is_empty());
    }

    #[tokio::test]
    async fn mode_and_serial_change_at_runtime() {
        let sim = sim(SimMode::Normal, None).await;
        sim.set_serial("NEW000000001".to_owned());
        sim.set_mode(SimMode::PaperOut);
        assert_eq!(sim.mode(), SimMode::PaperOut);
        let mut stream = TcpStream::connect(sim.addr()).await.expect("connect");
        let serial = ask(&mut stream, b"! U1 getvar \"device.unique_id\"\r\n", quoted).await;
        assert_eq!(serial, b"\"NEW000000001\"");
        stream.write_all(b"^XA^XZ").await.expect("write");
        finish(stream).await;
        assert_eq!(sim.job_count(), 0);

        sim.set_mode(SimMode::Normal);
        let mut stream = TcpStream::connect(sim.addr()).await.expect("connect");
        stream.write_all(b"^XA^XZ").await.expect("write");
        drop(stream);
        let jobs = sim.wait_for_jobs(1, Duration::from_secs(5)).await;
        assert_eq!(jobs, Some(vec![b"^XA^XZ".to_vec()]));
    }

    #[tokio::test]
    async fn stops_on_shutdown() {
        let sim = sim(SimMode::Normal, None).await;
        let addr = sim.addr();
        sim.shutdown().await;
        assert!(TcpStream::connect(addr).await.is_err());
    }
}
