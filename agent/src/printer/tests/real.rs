//! The printer code against real peers that each test starts in its own temporary directory
//! and stops by process id: a private CUPS scheduler and `ippeveprinter`, which keeps the
//! exact bytes of every job (`-k -d DIR`). The harness (and what it needs installed: Debian's
//! `cups`, `cups-client`, `cups-ipp-utils`, `dbus`, `avahi-daemon`, optionally
//! `printer-driver-cups-pdf`) is `sealprint_testkit::cups`, shared with the end-to-end test
//! that searches the scheduler's spool for labels. `SEALPRINT_SKIP_REAL_PRINTERS=1` skips both
//! tests with a loud notice, for machines without CUPS.
//!
//! # What it does not do
//! No fixed sleeps: readiness and delivery are polled with a deadline.

use std::fs;
use std::path::Path;
use std::time::Instant;

use sealprint_testkit::cups::{
    free_port, kept, scratch, skipped, start_ippeveprinter, Cupsd, SystemDaemons, CUPSDISABLE,
    CUPS_PDF_BACKEND, CUPS_PDF_PPD, IPPEVEPRINTER, POLL, WITHIN,
};

use super::*;

fn timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(2),
        answer: Duration::from_secs(1),
        write: Duration::from_secs(5),
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
    // A USB printer the scheduler's usb backend would hold through libusb: no usblp node on
    // this machine has its serial, so the agent cannot write to it without the scheduler.
    cupsd.add_queue(
        "Usb",
        "usb://Zebra%20Technologies/ZTC%20ZD421-203dpi%20ZPL?serial=D4JNOSUCHNODE",
        &[],
    );
    let mut refused = vec![
        ("Null", "discards every job"),
        ("File", "prints to a file"),
        ("Forward", "another local CUPS queue"),
        ("Impostor", "did not answer Zebra host queries"),
        ("Usb", "configure it as usb:///dev/usb/lpN"),
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

    // The label goes to the queue's device directly, byte for byte; the scheduler gets no job,
    // so its spool directory (RequestRoot) holds no document file.
    let label = b"^XA^FO50,50^FDsealprint cups test^FS^XZ";
    printer
        .print(LabelFormat::Zpl, label)
        .await
        .expect("printed to the queue's device");
    let received = cupsd
        .peer
        .eventually("the job reached the device", || {
            let received = zebra.received();
            (!received.is_empty()).then_some(received)
        })
        .await;
    assert_eq!(received, vec![label.to_vec()]);
    let documents: Vec<_> = fs::read_dir(cupsd.dir.path().join("spool"))
        .expect("read the scheduler's spool")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('d'))
        .map(|e| e.path())
        .collect();
    assert!(
        documents.is_empty(),
        "job files in the spool: {documents:?}"
    );

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
