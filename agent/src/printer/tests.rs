//! Tests of verification and delivery against a tiny in-test fake printer on a real socket.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

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

/// What the fake answers to each query; `None` is silence.
#[derive(Clone)]
struct Answers {
    hi: Option<Vec<u8>>,
    serial: Option<Vec<u8>>,
    hs: Option<Vec<u8>>,
}

impl Answers {
    fn zebra(serial: &str) -> Answers {
        Answers {
            hi: Some(HI.to_vec()),
            serial: Some(format!("\"{serial}\"").into_bytes()),
            hs: Some(hs(0, 0, 0)),
        }
    }

    fn silent() -> Answers {
        Answers {
            hi: None,
            serial: None,
            hs: None,
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
            let (len, answer) = if rest.starts_with(b"~HI") {
                (3, current.hi)
            } else if rest.starts_with(b"~HS") {
                (3, current.hs)
            } else if rest.starts_with(GETVAR) {
                (GETVAR.len(), current.serial)
            } else if [&b"~HI"[..], b"~HS", GETVAR]
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
        PrinterConfig::from_flag("z=usb://Zebra"),
        Err(PrinterError::UnsupportedScheme("usb".to_owned()))
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
async fn silence_on_hs_is_a_fault_not_ready() {
    let mut answers = Answers::zebra(SERIAL);
    answers.hs = None;
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
        serial: None,
        hs: None,
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
async fn refuses_formats_other_than_zpl() {
    let fake = Fake::start(Answers::zebra(SERIAL)).await;
    let mut printer = fake.printer(Some(SERIAL));
    for (format, name) in [(LabelFormat::Pdf, "pdf"), (LabelFormat::Png, "png")] {
        let result = printer.print(format, b"%PDF-1.7").await;
        assert_eq!(
            result,
            Err(PrintError::NotPrinted(format!(
                "format {name} not supported by a raw ZPL printer"
            )))
        );
    }
    assert!(fake.received().is_empty());
}

#[tokio::test]
async fn reset_during_write_is_in_doubt_or_not_printed() {
    // A device that verifies fine, then drops the connection as soon as label data starts.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 256];
            for answer in [
                HI.to_vec(),
                format!("\"{SERIAL}\"").into_bytes(),
                hs(0, 0, 0),
            ] {
                // Wait for one query, answer it.
                match stream.read(&mut chunk).await {
                    Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                    _ => break,
                }
                if stream.write_all(&answer).await.is_err() {
                    break;
                }
            }
            let _ = stream.set_zero_linger();
            drop(stream);
        }
    });
    let config = PrinterConfig::from_flag(&format!("z=raw://{addr}")).expect("valid");
    let mut printer = Printer::new(config, Some(SERIAL.to_owned()), quick()).expect("valid");
    let label = vec![b'^'; 32 * 1024 * 1024];
    match printer.print(LabelFormat::Zpl, &label).await {
        Err(PrintError::InDoubt(reason)) | Err(PrintError::NotPrinted(reason)) => {
            assert!(reason.contains("write"), "{reason}");
        }
        Ok(()) => panic!("a reset connection cannot have printed 32 MiB"),
    }
}
