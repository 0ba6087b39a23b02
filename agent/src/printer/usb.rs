//! Linux USB printers (`usb:///dev/usb/lpN`, the kernel's usblp driver).
//!
//! Verification: the node must exist and be a character device; the printer's IEEE 1284 device
//! id is read from sysfs (`/sys/class/usbmisc/lpN/device/ieee1284_id`, which the usblp driver
//! fills from the device, so no ioctl and no unsafe code is needed); it must not name a
//! PDF/XPS writer and must carry a serial (`SN:`/`SERN:`), which is the identity. Status: a
//! printer whose command set lists ZPL is asked `~HS` over the cable (usblp reads the
//! printer's back channel); silence is a fault, never "ready". Other USB printers report an
//! unknown status and get no jobs: put them behind a CUPS queue (`cups://`) instead.
//!
//! Printing writes the label to the node. This module does not probe USB descriptors itself.

use sealprint_protocol::LabelFormat;
#[cfg(target_os = "linux")]
use sealprint_protocol::{PrinterStatus, PrinterVerdict};

use super::facts::{printable_cut, DeviceId};
use super::{Assessment, PrintError, Timeouts};

/// The sysfs file holding the IEEE 1284 device id of `/dev/usb/lpN`.
#[cfg_attr(not(any(target_os = "linux", test)), allow(dead_code))]
pub(crate) fn device_id_file(path: &str) -> Option<String> {
    let n = path.strip_prefix("/dev/usb/lp")?;
    Some(format!("/sys/class/usbmisc/lp{n}/device/ieee1284_id"))
}

/// The usblp node (`/dev/usb/lpN`) of the printer whose IEEE 1284 device id carries `serial`,
/// when the kernel's usblp driver has it (a printer the CUPS usb backend claimed through
/// libusb has none). Reads sysfs only.
pub(crate) fn node_with_serial(serial: &str) -> Option<String> {
    #[cfg(target_os = "linux")]
    {
        let entries = std::fs::read_dir("/sys/class/usbmisc").ok()?;
        let nodes = entries.flatten().filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            name.strip_prefix("lp")?.parse::<u32>().ok()?;
            let id = std::fs::read(entry.path().join("device/ieee1284_id")).ok()?;
            (id.len() <= 4096).then(|| {
                let id = String::from_utf8_lossy(&id).trim().to_owned();
                (format!("/dev/usb/{name}"), id)
            })
        });
        pick_node(nodes, serial)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = serial;
        None
    }
}

/// The first node whose device id's serial is `serial`. Pure.
#[cfg_attr(not(any(target_os = "linux", test)), allow(dead_code))]
pub(crate) fn pick_node(
    nodes: impl IntoIterator<Item = (String, String)>,
    serial: &str,
) -> Option<String> {
    nodes
        .into_iter()
        .find(|(_, id)| DeviceId::parse(id).serial().as_deref() == Some(serial))
        .map(|(path, _)| path)
}

/// Judges a device id read from sysfs, before any status is read. Pure.
#[cfg_attr(not(any(target_os = "linux", test)), allow(dead_code))]
pub(crate) fn judge_device_id(id: &str) -> Result<(String, String, bool), Assessment> {
    let parsed = DeviceId::parse(id);
    let model = format!(
        "{} {}",
        parsed.get(&["MFG", "MANUFACTURER"]).unwrap_or("?"),
        parsed.get(&["MDL", "MODEL"]).unwrap_or("?")
    );
    let model = printable_cut(&model, 64);
    let facts = super::facts::PrinterFacts {
        device_id: Some(id.to_owned()),
        ..Default::default()
    };
    if let Some(why) = facts.virtual_reason() {
        return Err(Assessment::refused(
            format!("not a physical printer: {why}"),
            None,
        ));
    }
    let Some(serial) = parsed.serial() else {
        return Err(Assessment::refused(
            format!(
                "{model} gives no serial in its device id; a printer without a serial cannot be \
                 verified"
            ),
            None,
        ));
    };
    let zpl = parsed
        .get(&["CMD", "COMMAND SET"])
        .is_some_and(|cmd| cmd.split(',').any(|c| c.trim().eq_ignore_ascii_case("ZPL")));
    Ok((serial, model, zpl))
}

/// Verifies the printer at `path` and reads its status.
pub(crate) async fn assess(path: &str, timeouts: Timeouts) -> Assessment {
    #[cfg(target_os = "linux")]
    {
        linux::assess(path, timeouts).await
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (path, timeouts);
        Assessment::refused(
            "usb:///dev/usb/lpN printers exist only on Linux".to_owned(),
            None,
        )
    }
}

/// Writes one label to the node.
///
/// # Errors
/// [`PrintError::NotPrinted`] when the node could not be opened or nothing was written,
/// [`PrintError::InDoubt`] when writing stopped part way.
pub(crate) async fn write(
    path: &str,
    format: LabelFormat,
    data: &[u8],
    timeouts: Timeouts,
) -> Result<(), PrintError> {
    if format != LabelFormat::Zpl {
        return Err(PrintError::NotPrinted(format!(
            "format {} not supported by a usb ZPL printer",
            format.as_str()
        )));
    }
    #[cfg(target_os = "linux")]
    {
        linux::write(path, data, timeouts).await
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (path, data, timeouts);
        Err(PrintError::NotPrinted(
            "usb:///dev/usb/lpN printers exist only on Linux".to_owned(),
        ))
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::fs::OpenOptions;
    use std::io::{self, Read as _, Write as _};
    use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use zeroize::Zeroizing;

    use super::super::zpl;
    use super::*;

    pub(super) async fn assess(path: &str, timeouts: Timeouts) -> Assessment {
        match tokio::fs::metadata(path).await {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Assessment::unreachable(format!(
                    "no device node {path} (printer unplugged or switched off?)"
                ))
            }
            Err(e) => return Assessment::unreachable(format!("cannot stat {path}: {}", e.kind())),
            Ok(meta) if !meta.file_type().is_char_device() => {
                return Assessment::refused(format!("{path} is not a character device"), None)
            }
            Ok(_) => {}
        }
        let Some(id_file) = device_id_file(path) else {
            return Assessment::refused(format!("{path} is not a usblp node"), None);
        };
        let id = match tokio::fs::read(&id_file).await {
            Ok(bytes) if bytes.len() <= 4096 => String::from_utf8_lossy(&bytes).trim().to_owned(),
            Ok(_) => return Assessment::refused("device id too long".to_owned(), None),
            Err(e) => {
                return Assessment::refused(
                    format!(
                        "cannot read the printer's IEEE 1284 device id ({})",
                        e.kind()
                    ),
                    None,
                )
            }
        };
        let (serial, model, zpl) = match judge_device_id(&id) {
            Ok(judged) => judged,
            Err(refused) => return refused,
        };
        if !zpl {
            return Assessment {
                verdict: PrinterVerdict::Verified,
                status: PrinterStatus::Unknown,
                identity: Some(serial.clone()),
                reason: format!(
                    "verified: {model} (usb), serial {serial}; its status cannot be read over \
                     usb (not a ZPL printer): use a CUPS queue for it"
                ),
            };
        }
        let owned = path.to_owned();
        let within = timeouts.answer;
        let asked = tokio::task::spawn_blocking(move || ask_hs(&owned, within)).await;
        let (status, note) = match asked {
            Ok(Ok(status)) => (status.status(), String::new()),
            Ok(Err(why)) => (
                PrinterStatus::Offline,
                format!("; did not answer ~HS over usb ({why}): check the printer"),
            ),
            Err(_) => (PrinterStatus::Unknown, "; status query failed".to_owned()),
        };
        Assessment {
            verdict: PrinterVerdict::Verified,
            status,
            identity: Some(serial.clone()),
            reason: format!("verified: {model} (usb), serial {serial}{note}"),
        }
    }

    /// Asks `~HS` on the node without blocking, polling for the answer until `within`.
    fn ask_hs(path: &str, within: Duration) -> Result<zpl::HostStatus, String> {
        let mut node = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| format!("open: {}", e.kind()))?;
        let deadline = Instant::now() + within;
        let mut query: &[u8] = zpl::QUERY_HS;
        while !query.is_empty() {
            match node.write(query) {
                Ok(n) => query = &query[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(format!("write: {}", e.kind())),
            }
            if Instant::now() > deadline {
                return Err("write timed out".to_owned());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut buf = Vec::new();
        let mut chunk = [0u8; 512];
        loop {
            match zpl::parse_hs(&buf) {
                Ok((status, _)) => return Ok(status),
                Err(zpl::AnswerError::Malformed(why)) => return Err(why.to_owned()),
                Err(zpl::AnswerError::Incomplete) if buf.len() >= zpl::MAX_ANSWER_LEN => {
                    return Err("answer too long".to_owned())
                }
                Err(zpl::AnswerError::Incomplete) => {}
            }
            match node.read(&mut chunk) {
                Ok(n) if n > 0 => {
                    buf.extend_from_slice(&chunk[..n]);
                    continue;
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(format!("read: {}", e.kind())),
            }
            if Instant::now() > deadline {
                return Err("no answer".to_owned());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(super) async fn write(
        path: &str,
        data: &[u8],
        timeouts: Timeouts,
    ) -> Result<(), PrintError> {
        if data.is_empty() {
            return Err(PrintError::NotPrinted("empty label".to_owned()));
        }
        // The blocking thread needs its own copy; it is wiped when dropped.
        let label = Zeroizing::new(data.to_vec());
        let total = label.len();
        let written = Arc::new(AtomicUsize::new(0));
        let progress = written.clone();
        let owned = path.to_owned();
        let task = tokio::task::spawn_blocking(move || -> Result<(), String> {
            let mut node = OpenOptions::new()
                .write(true)
                .open(&owned)
                .map_err(|e| format!("open failed: {}", e.kind()))?;
            for chunk in label.chunks(16 * 1024) {
                node.write_all(chunk)
                    .map_err(|e| format!("write failed: {}", e.kind()))?;
                progress.fetch_add(chunk.len(), Ordering::SeqCst);
            }
            node.flush()
                .map_err(|e| format!("flush failed: {}", e.kind()))
        });
        let outcome = match tokio::time::timeout(timeouts.write, task).await {
            Ok(Ok(Ok(()))) => return Ok(()),
            Ok(Ok(Err(why))) => why,
            Ok(Err(_)) => "write task failed".to_owned(),
            Err(_) => "write timed out".to_owned(),
        };
        let done = written.load(Ordering::SeqCst);
        Err(if done == 0 && !outcome.starts_with("flush") {
            PrintError::NotPrinted(format!("{outcome} before any byte was sent"))
        } else {
            PrintError::InDoubt(format!("{outcome} after {done} of {total} bytes"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judges_device_ids() {
        let (serial, model, zpl) = judge_device_id(
            "MFG:Zebra Technologies;CMD:ZPL;MDL:ZTC ZD421-203dpi ZPL;CLS:PRINTER;SN:D4J222603053;",
        )
        .expect("a zebra");
        assert_eq!(serial, "D4J222603053");
        assert_eq!(model, "Zebra Technologies ZTC ZD421-203dpi ZPL");
        assert!(zpl);
        assert!(judge_device_id("MFG:Zebra;MDL:ZD421;CMD:ZPL;").is_err());
        assert!(judge_device_id("MFG:Generic;MDL:PDF Writer;SN:1234;").is_err());
        let nodes = [
            (
                "/dev/usb/lp0".to_owned(),
                "MFG:HP;MDL:LaserJet;SN:OTHER;".to_owned(),
            ),
            (
                "/dev/usb/lp1".to_owned(),
                "MFG:Zebra;MDL:ZD421;SN:D4J2;".to_owned(),
            ),
        ];
        assert_eq!(
            pick_node(nodes.clone(), "D4J2").as_deref(),
            Some("/dev/usb/lp1")
        );
        assert_eq!(pick_node(nodes, "NOPE"), None);
        assert_eq!(
            device_id_file("/dev/usb/lp3").as_deref(),
            Some("/sys/class/usbmisc/lp3/device/ieee1284_id")
        );
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn missing_or_wrong_nodes() {
        let a = assess("/dev/usb/lp97", Timeouts::default()).await;
        assert_eq!(a.verdict, PrinterVerdict::Unreachable, "{}", a.reason);
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("lp0");
        std::fs::write(&file, b"").expect("write");
        let a = linux::assess(&file.to_string_lossy(), Timeouts::default()).await;
        assert_eq!(a.verdict, PrinterVerdict::Refused);
        assert!(a.reason.contains("not a character device"), "{}", a.reason);
    }
}
