//! Tests of verification and delivery against a tiny in-test fake printer on a real socket,
//! an in-test IPP server, and (Linux, `real`) real CUPS and `ippeveprinter` processes that the
//! tests start and stop themselves.
//!
//! The `real_*` tests need Debian's `cups`, `cups-client`, `cups-ipp-utils`, `dbus` and
//! `avahi-daemon` (and use `printer-driver-cups-pdf` when installed); CI installs them
//! (`.ci/run`) and a missing one fails the test with the package to install. Where they cannot
//! run, `SEALPRINT_SKIP_REAL_PRINTERS=1` skips them with a notice.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::raw::SILENT_REASON;
use super::*;

const SERIAL: &str = "XXZEJ1234567";
const HI: &[u8] = b"\x02ZD421-203dpi,V84.20.18Z,8,8176KB\x03\r\n";
const GETVAR: &[u8] = b"! U1 getvar \"device.unique_id\"";

fn hs(paper_out: u8, paused: u8, head_up: u8) -> Vec<u8> {
    format!(
        "\x02030,{paper_out},{paused},1245,000,0,0,0,000,0,0,0\x03\r\n\
         \x02001,0,{head_up},0,0,2,6,0,00000000,1,000\x03\r\n\
         \x021234,0\x03\r\n"
    )
    .into_bytes()
}

fn hqes(errors: u32) -> Vec<u8> {
    format!(
        "\x02\r\n PRINTER STATUS\r\n   ERRORS:         {} 00000000 {errors:08X}\r\n\
         \x20  WARNINGS:       0 00000000 00000000\r\n\x03\r\n",
        u8::from(errors != 0)
    )
    .into_bytes()
}

/// What the fake answers to each query; `None` is silence.
#[derive(Clone)]
struct Answers {
    hi: Option<Vec<u8>>,
    serial: Option<Vec<u8>>,
    hs: Option<Vec<u8>>,
    hqes: Option<Vec<u8>>,
}

impl Answers {
    fn zebra(serial: &str) -> Answers {
        Answers {
            hi: Some(HI.to_vec()),
            serial: Some(format!("\"{serial}\"").into_bytes()),
            hs: Some(hs(0, 0, 0)),
            hqes: Some(hqes(0)),
        }
    }

    fn silent() -> Answers {
        Answers {
            hi: None,
            serial: None,
            hs: None,
            hqes: None,
        }
    }
}

/// A fake raw printer: answers queries at the start of each connection, keeps every other
/// byte received on a connection as that connection's data.
struct Fake {
    addr: SocketAddr,
    answers: Arc<Mutex<Answers>>,
    received: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Fake {
    async fn start(answers: Answers) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let answers = Arc::new(Mutex::new(answers));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (a, r) = (answers.clone(), received.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, a.clone(), r.clone()));
            }
        });
        Fake {
            addr,
            answers,
            received,
        }
    }

    fn set(&self, answers: Answers) {
        *self.answers.lock().expect("lock") = answers;
    }

    /// Data (non-query bytes) of every closed connection that sent some.
    fn received(&self) -> Vec<Vec<u8>> {
        self.received.lock().expect("lock").clone()
    }

    fn printer(&self, recorded: Option<&str>) -> Printer {
        let config = PrinterConfig {
            name: "zebra-1".to_owned(),
            uri: format!("raw://{}", self.addr),
            pool: "dock".to_owned(),
        };
        Printer::new(config, recorded.map(str::to_owned), quick()).expect("valid config")
    }
}

fn quick() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(2),
        answer: Duration::from_millis(300),
        write: Duration::from_secs(2),
    }
}

async fn serve(
    mut stream: TcpStream,
    answers: Arc<Mutex<Answers>>,
    received: Arc<Mutex<Vec<Vec<u8>>>>,
) {
    let mut pending: Vec<u8> = Vec::new();
    let mut data: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if !data.is_empty() {
            data.extend_from_slice(&chunk[..n]);
            continue;
        }
        pending.extend_from_slice(&chunk[..n]);
        loop {
            let start = pending
                .iter()
                .position(|b| !b"\r\n ".contains(b))
                .unwrap_or(pending.len());
            let rest = &pending[start..];
            let current = answers.lock().expect("lock").clone();
            let (len, answer) = if rest.starts_with(b"~HQES") {
                (5, current.hqes)
            } else if rest.starts_with(b"~HI") {
                (3, current.hi)
            } else if rest.starts_with(b"~HS") {
                (3, current.hs)
            } else if rest.starts_with(GETVAR) {
                (GETVAR.len(), current.serial)
            } else if [&b"~HI"[..], b"~HS", b"~HQES", GETVAR]
                .iter()
                .any(|q| q.starts_with(rest))
            {
                break; // a query may still be arriving
            } else {
                data.append(&mut pending);
                break;
            };
            pending.drain(..start + len);
            if let Some(answer) = answer {
                if stream.write_all(&answer).await.is_err() {
                    return;
                }
            }
        }
    }
    if !data.is_empty() {
        received.lock().expect("lock").push(data);
    }
}

fn unused_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

#[test]
fn flags_and_config() {
    let config = PrinterConfig::from_flag("zebra-1=raw://10.0.0.5:9100").expect("valid flag");
    assert_eq!(config.name, "zebra-1");
    assert_eq!(config.pool, "default");
    assert_eq!(config.uri, "raw://10.0.0.5:9100");
    assert_eq!(
        PrinterConfig::from_flag("zebra-1"),
        Err(PrinterError::BadFlag)
    );
    assert_eq!(
        PrinterConfig::from_flag("=raw://h:1"),
        Err(PrinterError::InvalidName("empty"))
    );
    assert_eq!(
        PrinterConfig::from_flag("z=socket://zebra:9100"),
        Err(PrinterError::UnsupportedScheme("socket".to_owned()))
    );
    assert!(matches!(
        PrinterConfig::from_flag("z=raw://"),
        Err(PrinterError::InvalidUri(_))
    ));
}

#[test]
fn new_printer_is_not_verified_yet() {
    let config = PrinterConfig {
        name: "z".to_owned(),
        uri: "raw://10.0.0.5".to_owned(),
        pool: "default".to_owned(),
    };
    let printer = Printer::new(config, None, Timeouts::default()).expect("valid");
    assert_eq!(printer.last_report().verdict, PrinterVerdict::Unreachable);
    assert_eq!(printer.last_report().uri, "raw://10.0.0.5:9100");
    assert_eq!(printer.recorded_identity(), None);
    let bad = PrinterConfig {
        name: "z".to_owned(),
        uri: "raw://h:1".to_owned(),
        pool: " ".to_owned(),
    };
    assert_eq!(
        Printer::new(bad, None, Timeouts::default()).map(|_| ()),
        Err(PrinterError::InvalidPool("empty"))
    );
}

#[tokio::test]
async fn verifies_and_records_serial_on_first_sight() {
    let fake = Fake::start(Answers::zebra(SERIAL)).await;
    let mut printer = fake.printer(None);
    let report = printer.probe().await;
    assert_eq!(
        report.verdict,
        PrinterVerdict::Verified,
        "{}",
        report.reason
    );
    assert_eq!(report.status, PrinterStatus::Ready);
    assert_eq!(report.identity.as_deref(), Some(SERIAL));
    assert_eq!(report.name, "zebra-1");
    assert_eq!(report.pool, "dock");
    assert_eq!(printer.recorded_identity(), Some(SERIAL));
    assert_eq!(printer.last_report(), &report);
    // Verification sends only queries: nothing was printed.
    assert!(fake.received().is_empty());
}

#[tokio::test]
async fn silent_device_is_refused_and_never_printed_to() {
    let fake = Fake::start(Answers::silent()).await;
    let mut printer = fake.printer(None);
    let report = printer.probe().await;
    assert_eq!(report.verdict, PrinterVerdict::Refused);
    assert_eq!(report.reason, SILENT_REASON);
    assert_eq!(printer.recorded_identity(), None);
    let result = printer.print(LabelFormat::Zpl, b"^XA^FDsecret^FS^XZ").await;
    assert_eq!(
        result,
        Err(PrintError::NotPrinted("printer not verified".to_owned()))
    );

    // Even with a serial recorded earlier, an impostor answering nothing gets no label.
    let mut printer = fake.printer(Some(SERIAL));
    let result = printer.print(LabelFormat::Zpl, b"^XA^FDsecret^FS^XZ").await;
    match result {
        Err(PrintError::NotPrinted(reason)) => {
            assert!(reason.contains("did not answer"), "{reason}");
            assert!(!reason.contains("secret"));
        }
        other => panic!("expected NotPrinted, got {other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(fake.received().is_empty(), "no label may reach an impostor");
}

#[tokio::test]
async fn unreachable_when_nothing_listens() {
    let addr = unused_addr();
    let config = PrinterConfig::from_flag(&format!("z=raw://{addr}")).expect("valid");
    let mut printer = Printer::new(config, Some(SERIAL.to_owned()), quick()).expect("valid");
    let report = printer.probe().await;
    assert_eq!(report.verdict, PrinterVerdict::Unreachable);
    assert_eq!(report.status, PrinterStatus::Offline);
    assert!(
        report.reason.starts_with("connect failed"),
        "{}",
        report.reason
    );
    let result = printer.print(LabelFormat::Zpl, b"^XA^XZ").await;
    assert!(
        matches!(result, Err(PrintError::NotPrinted(_))),
        "{result:?}"
    );
}

/// A host name that does not resolve says so (the error's text), not "uncategorized error".
#[tokio::test]
async fn an_unresolvable_host_is_named_as_such() {
    let config = PrinterConfig::from_flag("z=raw://no-such-printer.invalid:9100").expect("valid");
    let mut printer = Printer::new(config, Some(SERIAL.to_owned()), quick()).expect("valid");
    let report = printer.probe().await;
    assert_eq!(report.verdict, PrinterVerdict::Unreachable);
    // Where no resolver answers within the connect timeout, the reason is the timeout.
    assert!(
        report.reason == "connect timed out"
            || (report.reason.starts_with("connect failed")
                && !report.reason.contains("uncategorized")
                && report.reason.contains("lookup")),
        "{}",
        report.reason
    );
}

/// The deadline is checked after the device's re-check, right before writing: a job whose
/// deadline passed while the printer was being asked prints nothing.
#[tokio::test]
async fn nothing_is_written_after_the_deadline() {
    let fake = Fake::start(Answers::zebra(SERIAL)).await;
    let mut printer = fake.printer(Some(SERIAL));
    let past = crate::now_ms() - 1;
    let result = printer
        .print_before(LabelFormat::Zpl, b"^XA^FDlate^FS^XZ", past)
        .await;
    assert_eq!(
        result,
        Err(PrintError::NotPrinted(
            "deadline passed before printing".to_owned()
        ))
    );
    // The re-check happened (queries went out), but no label bytes did.
    assert_eq!(printer.last_report().verdict, PrinterVerdict::Verified);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(fake.received().is_empty(), "no label after the deadline");
    let future = crate::now_ms() + 60_000;
    let result = printer
        .print_before(LabelFormat::Zpl, b"^XA^FDlate^FS^XZ", future)
        .await;
    assert_eq!(result, Ok(()));
}

#[tokio::test]
async fn changed_serial_is_refused() {
    let fake = Fake::start(Answers::zebra("OTHER0000001")).await;
    let mut printer = fake.printer(Some(SERIAL));
    let report = printer.probe().await;
    assert_eq!(report.verdict, PrinterVerdict::Refused);
    assert_eq!(
        report.reason,
        "identity changed (recorded serial XXZEJ1234567, device answered OTHER0000001); \
         an admin must accept the new device"
    );
    assert_eq!(report.identity.as_deref(), Some("OTHER0000001"));
    assert_eq!(printer.recorded_identity(), Some(SERIAL));
    let result = printer.print(LabelFormat::Zpl, b"^XA^XZ").await;
    assert_eq!(result, Err(PrintError::NotPrinted(report.reason.clone())));
    assert!(fake.received().is_empty());
}

#[tokio::test]
async fn missing_or_unknown_serial_is_refused() {
    let mut answers = Answers::zebra(SERIAL);
    answers.serial = Some(b"\"?\"".to_vec());
    let fake = Fake::start(answers.clone()).await;
    let mut printer = fake.printer(None);
    assert_eq!(printer.probe().await.verdict, PrinterVerdict::Refused);
    answers.serial = None;
    fake.set(answers);
    let report = printer.probe().await;
    assert_eq!(report.verdict, PrinterVerdict::Refused);
    assert!(
        report.reason.contains("not its serial"),
        "{}",
        report.reason
    );
    assert_eq!(printer.recorded_identity(), None);
}

#[tokio::test]
async fn reads_status_flags() {
    let fake = Fake::start(Answers::zebra(SERIAL)).await;
    let mut printer = fake.printer(Some(SERIAL));
    for ((p, s, h), want) in [
        ((1, 0, 0), PrinterStatus::PaperOut),
        ((0, 0, 1), PrinterStatus::HeadOpen),
        ((0, 1, 0), PrinterStatus::Paused),
        ((0, 0, 0), PrinterStatus::Ready),
    ] {
        let mut answers = Answers::zebra(SERIAL);
        answers.hs = Some(hs(p, s, h));
        fake.set(answers);
        let report = printer.probe().await;
        assert_eq!(report.verdict, PrinterVerdict::Verified);
        assert_eq!(report.status, want);
    }
}

#[tokio::test]
async fn silence_on_hs_with_hqes_errors_is_a_named_fault() {
    let mut answers = Answers::zebra(SERIAL);
    answers.hs = None;
    for (bits, want, words) in [
        (0x1, PrinterStatus::PaperOut, "media out"),
        (0x2, PrinterStatus::PaperOut, "ribbon out"),
        (0x4, PrinterStatus::HeadOpen, "head open"),
        (0x10, PrinterStatus::Unknown, "head over temperature"),
    ] {
        answers.hqes = Some(hqes(bits));
        let fake = Fake::start(answers.clone()).await;
        let mut printer = fake.printer(Some(SERIAL));
        let report = printer.probe().await;
        assert_eq!(
            report.verdict,
            PrinterVerdict::Verified,
            "{}",
            report.reason
        );
        assert_eq!(report.status, want);
        assert!(report.reason.contains(words), "{}", report.reason);
        let result = printer.print(LabelFormat::Zpl, b"^XA^XZ").await;
        assert!(
            matches!(result, Err(PrintError::NotPrinted(_))),
            "{result:?}"
        );
        assert!(fake.received().is_empty());
    }
    // ~HQES answering "no error" while ~HS is silent is still not ready.
    answers.hqes = Some(hqes(0));
    let fake = Fake::start(answers).await;
    let report = fake.printer(Some(SERIAL)).probe().await;
    assert_eq!(report.status, PrinterStatus::Offline);
    assert!(report.reason.contains("no error"), "{}", report.reason);
}

#[tokio::test]
async fn silence_on_hs_is_a_fault_not_ready() {
    let mut answers = Answers::zebra(SERIAL);
    answers.hs = None;
    answers.hqes = None;
    let fake = Fake::start(answers).await;
    let mut printer = fake.printer(Some(SERIAL));
    let report = printer.probe().await;
    assert_ne!(report.verdict, PrinterVerdict::Verified);
    assert_eq!(report.status, PrinterStatus::Offline);
    let result = printer.print(LabelFormat::Zpl, b"^XA^XZ").await;
    assert!(
        matches!(result, Err(PrintError::NotPrinted(_))),
        "{result:?}"
    );
    assert!(fake.received().is_empty());
}

#[tokio::test]
async fn garbage_answers_are_refused() {
    let answers = Answers {
        hi: Some(b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec()),
        ..Answers::silent()
    };
    let fake = Fake::start(answers).await;
    let mut printer = fake.printer(None);
    let report = printer.probe().await;
    assert_eq!(report.verdict, PrinterVerdict::Refused);
    assert!(report.reason.contains("~HI"), "{}", report.reason);
}

#[tokio::test]
async fn prints_zpl_to_a_verified_ready_printer() {
    let fake = Fake::start(Answers::zebra(SERIAL)).await;
    let mut printer = fake.printer(None);
    assert_eq!(printer.probe().await.verdict, PrinterVerdict::Verified);
    let label = b"^XA^FO50,50^FDhello^FS^XZ".to_vec();
    printer
        .print(LabelFormat::Zpl, &label)
        .await
        .expect("printed");
    // print() waits for the device to close, so the fake has recorded the job by now.
    assert_eq!(fake.received(), vec![label]);
    assert_eq!(printer.last_report().verdict, PrinterVerdict::Verified);
}

#[tokio::test]
async fn refuses_to_print_when_not_ready() {
    let mut answers = Answers::zebra(SERIAL);
    answers.hs = Some(hs(1, 0, 0));
    let fake = Fake::start(answers).await;
    let mut printer = fake.printer(Some(SERIAL));
    let result = printer.print(LabelFormat::Zpl, b"^XA^XZ").await;
    assert_eq!(result, Err(PrintError::NotPrinted("paper out".to_owned())));
    assert_eq!(printer.last_report().status, PrinterStatus::PaperOut);
    assert!(fake.received().is_empty());
}

#[tokio::test]
async fn raw_printers_refuse_pdf_and_convert_png_to_a_zpl_graphic() {
    let fake = Fake::start(Answers::zebra(SERIAL)).await;
    let mut printer = fake.printer(Some(SERIAL));
    let result = printer.print(LabelFormat::Pdf, b"%PDF-1.7").await;
    assert_eq!(
        result,
        Err(PrintError::NotPrinted(
            "format pdf not supported by a raw ZPL printer".to_owned()
        ))
    );
    let result = printer.print(LabelFormat::Png, b"%PDF-1.7").await;
    assert!(
        matches!(&result, Err(PrintError::NotPrinted(r)) if r.starts_with("png label not converted")),
        "{result:?}"
    );
    assert!(fake.received().is_empty());

    // A 9x1 PNG with its first and last dot black arrives as one ^GF graphic.
    let mut png_bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut png_bytes, 9, 1);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().expect("header");
        w.write_image_data(&[0, 255, 255, 255, 255, 255, 255, 255, 0])
            .expect("data");
    }
    printer
        .print(LabelFormat::Png, &png_bytes)
        .await
        .expect("printed");
    assert_eq!(
        fake.received(),
        vec![b"^XA^PW9^LL1^FO0,0^GFA,2,2,2,8080^FS^XZ".to_vec()]
    );
}

/// A device that verifies fine, then resets the connection once label data has started to
/// arrive.
async fn resetting_device() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut chunk = [0u8; 256];
            for answer in [
                HI.to_vec(),
                format!("\"{SERIAL}\"").into_bytes(),
                hs(0, 0, 0),
            ] {
                // Wait for one query, answer it.
                match stream.read(&mut chunk).await {
                    Ok(n) if n > 0 => {}
                    _ => break,
                }
                if stream.write_all(&answer).await.is_err() {
                    break;
                }
            }
            // Label bytes reached the device: from here on it may print.
            let _ = stream.read(&mut chunk).await;
            let _ = stream.set_zero_linger();
            drop(stream);
        }
    });
    addr
}

/// Bytes reached the device before the reset: the outcome is unknown, so the job is in doubt
/// and never `NotPrinted` (which would let it go to another printer: a second copy).
#[tokio::test]
async fn reset_after_label_bytes_arrived_is_in_doubt() {
    let addr = resetting_device().await;
    let config = PrinterConfig::from_flag(&format!("z=raw://{addr}")).expect("valid");
    let mut printer = Printer::new(config, Some(SERIAL.to_owned()), quick()).expect("valid");
    let label = vec![b'^'; 32 * 1024 * 1024];
    match printer.print(LabelFormat::Zpl, &label).await {
        Err(PrintError::InDoubt(reason)) => {
            assert!(
                reason.contains("write") && reason.contains(" of 33554432 bytes"),
                "{reason}"
            );
        }
        other => panic!("label bytes reached the device: in doubt, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// IPP and CUPS, against an in-test IPP server (hyper).

mod fake_ipp {
    use std::convert::Infallible;

    use bytes::Bytes;
    use http_body_util::{BodyExt as _, Full};
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;

    use super::super::ipp::{self, tests::response};
    use super::*;

    /// One printer attribute the fake answers: tag, name, value.
    pub type Attr = (u8, String, Vec<u8>);

    #[derive(Default)]
    pub struct State {
        /// The printer attributes answered to Get-Printer-Attributes (by path).
        pub attrs: Vec<Attr>,
        /// Answered instead of a proper response, when set.
        pub raw_response: Option<Vec<u8>>,
        /// The IPP status answered to Print-Job.
        pub print_status: u16,
        /// Print-Jobs received: path, document-format and document bytes.
        pub jobs: Vec<(String, String, Vec<u8>)>,
        /// Paths of every request.
        pub paths: Vec<String>,
    }

    pub struct FakeIpp {
        pub addr: SocketAddr,
        pub state: Arc<Mutex<State>>,
    }

    pub fn attr(tag: u8, name: &str, value: &[u8]) -> Attr {
        (tag, name.to_owned(), value.to_vec())
    }

    pub fn zebra_attrs(device_id: &str) -> Vec<Attr> {
        vec![
            attr(ipp::TAG_TEXT, "printer-make-and-model", b"Zebra ZD421"),
            attr(ipp::TAG_TEXT, "printer-device-id", device_id.as_bytes()),
            attr(
                ipp::TAG_URI,
                "printer-uuid",
                b"urn:uuid:6f2b8b6e-8d55-4b87-a8b4-3f5d1c2a0001",
            ),
            attr(
                ipp::TAG_MIME,
                "document-format-supported",
                b"application/vnd.zebra-zpl",
            ),
            attr(ipp::TAG_MIME, "", b"application/pdf"),
            attr(ipp::TAG_ENUM, "printer-state", &3i32.to_be_bytes()),
            attr(ipp::TAG_KEYWORD, "printer-state-reasons", b"none"),
            attr(ipp::TAG_BOOLEAN, "printer-is-accepting-jobs", &[1]),
        ]
    }

    pub fn set(attrs: &mut Vec<Attr>, name: &str, tag: u8, value: &[u8]) {
        attrs.retain(|a| a.1 != name);
        attrs.push(attr(tag, name, value));
    }

    impl FakeIpp {
        pub async fn start(attrs: Vec<Attr>) -> FakeIpp {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("addr");
            let state = Arc::new(Mutex::new(State {
                attrs,
                ..State::default()
            }));
            let shared = state.clone();
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        let service =
                            service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                                let shared = shared.clone();
                                async move {
                                    let path = req.uri().path().to_owned();
                                    let body = req
                                        .into_body()
                                        .collect()
                                        .await
                                        .map(|b| b.to_bytes())
                                        .unwrap_or_default();
                                    let answer = answer(&shared, &path, &body);
                                    Ok::<_, Infallible>(hyper::Response::new(Full::new(
                                        Bytes::from(answer),
                                    )))
                                }
                            });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
            FakeIpp { addr, state }
        }

        pub fn state(&self) -> std::sync::MutexGuard<'_, State> {
            self.state.lock().expect("lock")
        }
    }

    fn answer(shared: &Mutex<State>, path: &str, body: &[u8]) -> Vec<u8> {
        let mut state = shared.lock().expect("lock");
        state.paths.push(path.to_owned());
        if let Some(raw) = &state.raw_response {
            return raw.clone();
        }
        let Ok(request) = ipp::decode(body) else {
            return response(0x0400, 0, &[]);
        };
        match request.code {
            ipp::OP_GET_PRINTER_ATTRIBUTES => {
                let attrs: Vec<(u8, &str, &[u8])> = state
                    .attrs
                    .iter()
                    .map(|(t, n, v)| (*t, n.as_str(), v.as_slice()))
                    .collect();
                response(0, request.request_id, &attrs)
            }
            ipp::OP_PRINT_JOB => {
                let format = request
                    .text(ipp::TAG_OPERATION, "document-format")
                    .unwrap_or_default()
                    .to_owned();
                let status = state.print_status;
                if status == 0 {
                    let document = body[request.data_offset..].to_vec();
                    state.jobs.push((path.to_owned(), format, document));
                }
                response(status, request.request_id, &[])
            }
            _ => response(0x0501, request.request_id, &[]),
        }
    }
}

use super::ipp::{TAG_KEYWORD, TAG_TEXT, TAG_URI};
use fake_ipp::{attr, set, zebra_attrs, FakeIpp};

const DEVICE_ID: &str = "MFG:Zebra;MDL:ZD421;CMD:ZPL,PDF;SN:D4J222603053;";

fn ipp_printer(addr: SocketAddr, recorded: Option<&str>) -> Printer {
    let config = PrinterConfig::from_flag(&format!("z=ipp://{addr}/ipp/print")).expect("valid");
    Printer::new(config, recorded.map(str::to_owned), quick()).expect("valid")
}

#[tokio::test]
async fn ipp_printer_is_verified_and_prints_zpl() {
    let fake = FakeIpp::start(zebra_attrs(DEVICE_ID)).await;
    let mut printer = ipp_printer(fake.addr, None);
    let report = printer.probe().await;
    assert_eq!(
        report.verdict,
        PrinterVerdict::Verified,
        "{}",
        report.reason
    );
    assert_eq!(report.status, PrinterStatus::Ready);
    assert_eq!(report.identity.as_deref(), Some("D4J222603053"));
    assert_eq!(printer.recorded_identity(), Some("D4J222603053"));
    let label = b"^XA^FO50,50^FDhello^FS^XZ";
    printer
        .print(LabelFormat::Zpl, label)
        .await
        .expect("printed");
    printer
        .print(LabelFormat::Pdf, b"%PDF-1.7 x")
        .await
        .expect("printed");
    {
        let state = fake.state();
        assert_eq!(state.jobs.len(), 2);
        assert_eq!(state.jobs[0].0, "/ipp/print");
        assert_eq!(state.jobs[0].1, "application/vnd.zebra-zpl");
        assert_eq!(state.jobs[0].2, label.to_vec());
        assert_eq!(state.jobs[1].1, "application/pdf");
    }
    // PNG is not among its formats: refused before anything is sent.
    let result = printer.print(LabelFormat::Png, b"\x89PNG").await;
    assert!(
        matches!(result, Err(PrintError::NotPrinted(ref r)) if r.contains("png")),
        "{result:?}"
    );
    assert_eq!(fake.state().jobs.len(), 2);
}

#[tokio::test]
async fn ipp_uuid_is_the_identity_without_a_serial() {
    let fake = FakeIpp::start(zebra_attrs("MFG:Zebra;MDL:ZD421;CMD:PDF;")).await;
    let mut printer = ipp_printer(fake.addr, None);
    let report = printer.probe().await;
    assert_eq!(
        report.verdict,
        PrinterVerdict::Verified,
        "{}",
        report.reason
    );
    assert_eq!(
        report.identity.as_deref(),
        Some("urn:uuid:6f2b8b6e-8d55-4b87-a8b4-3f5d1c2a0001")
    );
}

#[tokio::test]
async fn ipp_virtual_printers_are_refused() {
    let mut attrs = zebra_attrs("MFG:Generic;MDL:CUPS-PDF Printer;");
    set(
        &mut attrs,
        "printer-make-and-model",
        TAG_TEXT,
        b"Generic CUPS-PDF Printer",
    );
    let fake = FakeIpp::start(attrs).await;
    let mut printer = ipp_printer(fake.addr, None);
    let report = printer.probe().await;
    assert_eq!(report.verdict, PrinterVerdict::Refused);
    assert!(
        report.reason.contains("virtual printer"),
        "{}",
        report.reason
    );
    let result = printer.print(LabelFormat::Pdf, b"%PDF").await;
    assert!(matches!(result, Err(PrintError::NotPrinted(_))));
    assert!(fake.state().jobs.is_empty());
}

#[tokio::test]
async fn ipp_changed_identity_and_faults_are_not_printed_to() {
    let fake = FakeIpp::start(zebra_attrs(DEVICE_ID)).await;
    let mut printer = ipp_printer(fake.addr, Some("OTHER0000001"));
    let result = printer.print(LabelFormat::Zpl, b"^XA^XZ").await;
    assert!(
        matches!(result, Err(PrintError::NotPrinted(ref r)) if r.starts_with("identity changed")),
        "{result:?}"
    );
    let mut printer = ipp_printer(fake.addr, Some("D4J222603053"));
    set(
        &mut fake.state().attrs,
        "printer-state-reasons",
        TAG_KEYWORD,
        b"media-empty-error",
    );
    let result = printer.print(LabelFormat::Zpl, b"^XA^XZ").await;
    assert_eq!(result, Err(PrintError::NotPrinted("paper out".to_owned())));
    assert_eq!(printer.last_report().status, PrinterStatus::PaperOut);
    assert!(fake.state().jobs.is_empty());
}

#[tokio::test]
async fn ipp_refused_print_job_is_not_printed() {
    let fake = FakeIpp::start(zebra_attrs(DEVICE_ID)).await;
    fake.state().print_status = 0x040A; // client-error-document-format-not-supported
    let mut printer = ipp_printer(fake.addr, Some("D4J222603053"));
    let result = printer.print(LabelFormat::Zpl, b"^XA^FDsecret^XZ").await;
    match result {
        Err(PrintError::NotPrinted(reason)) => {
            assert!(reason.contains("0x040a"), "{reason}");
            assert!(!reason.contains("secret"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn ipp_garbage_and_huge_answers_are_refused() {
    let fake = FakeIpp::start(zebra_attrs(DEVICE_ID)).await;
    fake.state().raw_response = Some(b"<html>hello</html>".to_vec());
    let mut printer = ipp_printer(fake.addr, None);
    let report = printer.probe().await;
    assert_eq!(report.verdict, PrinterVerdict::Refused, "{}", report.reason);
    fake.state().raw_response = Some(vec![0x02; http::MAX_RESPONSE + 10]);
    let report = printer.probe().await;
    assert_eq!(report.verdict, PrinterVerdict::Refused);
    assert!(report.reason.contains("1 MiB"), "{}", report.reason);
    let unused = unused_addr();
    let report = ipp_printer(unused, None).probe().await;
    assert_eq!(report.verdict, PrinterVerdict::Unreachable);
}

fn cups_printer(fake: &FakeIpp, queue: &str, recorded: Option<&str>) -> Printer {
    let config = PrinterConfig::from_flag(&format!("z=cups://{queue}")).expect("valid");
    Printer::new(config, recorded.map(str::to_owned), quick())
        .expect("valid")
        .with_cups_server(&fake.addr.to_string())
}

fn queue_attrs(device_uri: &str, model: &str) -> Vec<fake_ipp::Attr> {
    let mut attrs = zebra_attrs("");
    attrs.retain(|a| a.1 != "printer-device-id");
    set(
        &mut attrs,
        "printer-make-and-model",
        TAG_TEXT,
        model.as_bytes(),
    );
    attrs.push(attr(TAG_URI, "device-uri", device_uri.as_bytes()));
    attrs
}

#[tokio::test]
async fn cups_virtual_queues_are_refused() {
    for (uri, model, why) in [
        (
            "file:///tmp/labels.prn",
            "Local Raw Printer",
            "prints to a file",
        ),
        ("file:/dev/null", "Local Raw Printer", "discards every job"),
        (
            "cups-pdf:/",
            "Generic CUPS-PDF Printer (w/ options)",
            "writes PDF",
        ),
        (
            "socket://10.0.0.5:9100",
            "Generic CUPS-PDF Printer",
            "virtual printer",
        ),
    ] {
        let fake = FakeIpp::start(queue_attrs(uri, model)).await;
        let mut printer = cups_printer(&fake, "Labels", None);
        let report = printer.probe().await;
        assert_eq!(report.verdict, PrinterVerdict::Refused, "{uri}");
        assert!(report.reason.contains(why), "{uri}: {}", report.reason);
        assert_eq!(fake.state().paths, vec!["/printers/Labels".to_owned()]);
        let result = printer.print(LabelFormat::Zpl, b"^XA^XZ").await;
        assert!(matches!(result, Err(PrintError::NotPrinted(_))));
        assert!(fake.state().jobs.is_empty());
    }
}

#[tokio::test]
async fn cups_socket_queue_to_a_zebra_is_verified_and_prints_to_the_device_directly() {
    let zebra = Fake::start(Answers::zebra(SERIAL)).await;
    let uri = format!("socket://{}", zebra.addr);
    let fake = FakeIpp::start(queue_attrs(&uri, "Local Raw Printer")).await;
    let mut printer = cups_printer(&fake, "Zebra", None);
    let report = printer.probe().await;
    assert_eq!(
        report.verdict,
        PrinterVerdict::Verified,
        "{}",
        report.reason
    );
    assert_eq!(report.identity.as_deref(), Some(SERIAL));
    assert!(
        report.reason.starts_with("CUPS queue Zebra"),
        "{}",
        report.reason
    );
    let label = b"^XA^FDlabel^FS^XZ";
    printer
        .print(LabelFormat::Zpl, label)
        .await
        .expect("printed");
    // The label went straight to the device, never to the scheduler (which would spool it to
    // disk): the scheduler was only asked for the queue's attributes.
    assert_eq!(zebra.received(), vec![label.to_vec()]);
    assert!(fake.state().jobs.is_empty(), "the scheduler got a job");
    assert!(fake.state().paths.iter().all(|p| p == "/printers/Zebra"));

    // A paused queue is not ready even when the device is.
    set(
        &mut fake.state().attrs,
        "printer-state-reasons",
        TAG_KEYWORD,
        b"paused",
    );
    let result = printer.print(LabelFormat::Zpl, label).await;
    assert_eq!(result, Err(PrintError::NotPrinted("paused".to_owned())));
    assert_eq!(zebra.received().len(), 1);
}

#[tokio::test]
async fn cups_ipp_queue_prints_to_the_device_directly() {
    let device = FakeIpp::start(zebra_attrs(DEVICE_ID)).await;
    let uri = format!("ipp://{}/ipp/print", device.addr);
    let scheduler = FakeIpp::start(queue_attrs(&uri, "Zebra ZD421")).await;
    let mut printer = cups_printer(&scheduler, "Zebra", None);
    let report = printer.probe().await;
    assert_eq!(
        report.verdict,
        PrinterVerdict::Verified,
        "{}",
        report.reason
    );
    assert_eq!(report.identity.as_deref(), Some("D4J222603053"));
    let label = b"^XA^FDipp label^FS^XZ";
    printer
        .print(LabelFormat::Zpl, label)
        .await
        .expect("printed");
    let jobs = device.state().jobs.clone();
    assert_eq!(
        jobs,
        vec![(
            "/ipp/print".to_owned(),
            "application/vnd.zebra-zpl".to_owned(),
            label.to_vec()
        )]
    );
    assert!(scheduler.state().jobs.is_empty(), "the scheduler got a job");
}

#[tokio::test]
async fn cups_socket_queue_to_an_impostor_is_refused() {
    let impostor = Fake::start(Answers::silent()).await;
    let uri = format!("socket://{}", impostor.addr);
    let fake = FakeIpp::start(queue_attrs(&uri, "Local Raw Printer")).await;
    let report = cups_printer(&fake, "Zebra", None).probe().await;
    assert_eq!(report.verdict, PrinterVerdict::Refused);
    assert!(
        report.reason.contains("Zebra host queries"),
        "{}",
        report.reason
    );
}

#[tokio::test]
async fn cups_queues_the_agent_cannot_print_to_directly_are_refused_with_what_to_do() {
    for (uri, why) in [
        // No usblp node on a test machine has this serial: the scheduler holds the printer.
        (
            "usb://Zebra%20Technologies/ZTC%20ZD230-203dpi%20ZPL?serial=D4J2NOTHERE",
            "configure it as usb:///dev/usb/lpN",
        ),
        ("usb://Zebra/ZD230", "without a serial"),
        ("lpd://10.0.0.9/queue", "lpadmin -p QUEUE -v socket://"),
        (
            "dnssd://Zebra._pdl-datastream._tcp.local/",
            "raw://HOST:9100",
        ),
    ] {
        let fake = FakeIpp::start(queue_attrs(uri, "Zebra ZPL Label Printer")).await;
        let mut printer = cups_printer(&fake, "Zebra", Some("D4J2NOTHERE"));
        let report = printer.probe().await;
        assert_eq!(report.verdict, PrinterVerdict::Refused, "{uri}");
        assert!(report.reason.contains(why), "{uri}: {}", report.reason);
        let result = printer.print(LabelFormat::Zpl, b"^XA^XZ").await;
        assert!(matches!(result, Err(PrintError::NotPrinted(_))), "{uri}");
        assert!(
            fake.state().jobs.is_empty(),
            "{uri}: the scheduler got a job"
        );
    }
}

#[tokio::test]
async fn cups_missing_queue_or_scheduler_is_unreachable() {
    let fake = FakeIpp::start(Vec::new()).await;
    fake.state().raw_response = Some(fake_ipp_not_found());
    let report = cups_printer(&fake, "Nope", None).probe().await;
    assert_eq!(report.verdict, PrinterVerdict::Unreachable);
    assert!(
        report.reason.contains("no queue named Nope"),
        "{}",
        report.reason
    );
    let config = PrinterConfig::from_flag("z=cups://Nope").expect("valid");
    let report = Printer::new(config, None, quick())
        .expect("valid")
        .with_cups_server(&unused_addr().to_string())
        .probe()
        .await;
    assert_eq!(report.verdict, PrinterVerdict::Unreachable);
}

fn fake_ipp_not_found() -> Vec<u8> {
    super::ipp::tests::response(0x0406, 1, &[])
}

#[tokio::test]
async fn winspool_and_usb_are_refused_where_they_cannot_exist() {
    #[cfg(not(windows))]
    {
        let config = PrinterConfig::from_flag("z=winspool://ZDesigner ZD421").expect("valid");
        let mut printer = Printer::new(config, None, quick()).expect("valid");
        let report = printer.probe().await;
        assert_eq!(report.verdict, PrinterVerdict::Refused);
        assert_eq!(report.reason, "winspool printers exist only on Windows");
    }
    let config = PrinterConfig::from_flag("z=usb:///dev/usb/lp99").expect("valid");
    let report = Printer::new(config, None, quick())
        .expect("valid")
        .probe()
        .await;
    assert_ne!(report.verdict, PrinterVerdict::Verified);
}

// ---------------------------------------------------------------------------------------------
// Against real peers (a private cupsd, ippeveprinter) that each test starts itself: see
// `tests/real.rs`.

#[cfg(target_os = "linux")]
mod real;

/// The device is asked again before each label: one swapped after verification gets nothing.
#[tokio::test]
async fn a_device_swapped_after_verification_gets_no_label() {
    let fake = Fake::start(Answers::zebra(SERIAL)).await;
    let mut printer = fake.printer(Some(SERIAL));
    assert_eq!(printer.probe().await.verdict, PrinterVerdict::Verified);
    fake.set(Answers::zebra("OTHER0000001"));
    let result = printer.print(LabelFormat::Zpl, b"^XA^XZ").await;
    assert!(
        matches!(&result, Err(PrintError::NotPrinted(r)) if r.starts_with("identity changed")),
        "{result:?}"
    );
    assert!(
        fake.received().is_empty(),
        "a label reached the swapped device"
    );
}

/// A printer that ran out of paper after its last check gets no label.
#[tokio::test]
async fn a_printer_out_of_paper_after_verification_gets_no_label() {
    let fake = Fake::start(Answers::zebra(SERIAL)).await;
    let mut printer = fake.printer(Some(SERIAL));
    assert_eq!(printer.probe().await.status, PrinterStatus::Ready);
    let mut answers = Answers::zebra(SERIAL);
    answers.hs = Some(hs(1, 0, 0));
    fake.set(answers);
    let result = printer.print(LabelFormat::Zpl, b"^XA^XZ").await;
    assert_eq!(result, Err(PrintError::NotPrinted("paper out".to_owned())));
    assert!(
        fake.received().is_empty(),
        "a label reached a printer out of paper"
    );
}
