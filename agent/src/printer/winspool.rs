//! Windows spooler printers (`winspool://PRINTER NAME`).
//!
//! The printer is found with `EnumPrintersW(LOCAL | CONNECTIONS, level 2)` and judged by its
//! port and driver, never by its name (names can be changed by anyone with admin rights):
//! ports `FILE:`, `PORTPROMPT:` (Microsoft Print to PDF, XPS Document Writer), `NUL:`,
//! `XPSPort:` and `SHRFAX:`, and PDF, XPS, OneNote and fax drivers are refused. The identity
//! is the port and driver (`USB001|ZDesigner ZD421-203dpi ZPL`): the spooler gives no device
//! serial, so re-pointing a printer at another port or driver is what is noticed. Status comes
//! from the spooler's status bits (the spooler's view, not the device's).
//!
//! A printer is usable only when the spooler keeps no copy of the label on disk: it must print
//! directly (`PRINTER_ATTRIBUTE_DIRECT`, "Print directly to the printer"; otherwise the
//! spooler writes each job to a `.SPL` file under its spool directory first) and must not keep
//! printed documents (`PRINTER_ATTRIBUTE_KEEPPRINTEDJOBS`, "Keep printed documents"). Both are
//! judged by [`disk_reason`] before every job, so a setting changed while the agent runs
//! stops the next label.
//!
//! Printing opens the printer, starts a RAW document with no output file, writes the label
//! and ends the document (KB 138594); only ZPL labels go this way.
//!
//! The judgement is pure and compiled everywhere (tested on any host); the Win32 calls exist
//! only on Windows. On other systems every winspool printer is refused.

use sealprint_protocol::{PrinterStatus, PrinterVerdict};

use super::Assessment;

/// The reason given for winspool printers on other systems.
#[cfg_attr(windows, allow(dead_code))]
pub(crate) const NOT_WINDOWS: &str = "winspool printers exist only on Windows";

/// Spooler status bits (winspool.h), so the judgement compiles on any system.
#[cfg_attr(not(any(windows, test)), allow(dead_code))]
mod status {
    pub const PAUSED: u32 = 0x1;
    pub const ERROR: u32 = 0x2;
    pub const PAPER_JAM: u32 = 0x8;
    pub const PAPER_OUT: u32 = 0x10;
    pub const PAPER_PROBLEM: u32 = 0x40;
    pub const OFFLINE: u32 = 0x80;
    pub const NOT_AVAILABLE: u32 = 0x1000;
    pub const USER_INTERVENTION: u32 = 0x10_0000;
    pub const DOOR_OPEN: u32 = 0x40_0000;
    /// PRINTER_ATTRIBUTE_WORK_OFFLINE, in the attributes.
    pub const ATTRIBUTE_WORK_OFFLINE: u32 = 0x400;
}

/// PRINTER_ATTRIBUTE_DIRECT (winspool.h): jobs go to the port without a spool file.
pub(crate) const ATTRIBUTE_DIRECT: u32 = 0x2;
/// PRINTER_ATTRIBUTE_KEEPPRINTEDJOBS (winspool.h): the spooler keeps printed jobs' files.
pub(crate) const ATTRIBUTE_KEEP_PRINTED_JOBS: u32 = 0x100;

/// What a printer's attributes say about label bytes on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DiskSettings {
    /// "Print directly to the printer": no spool file.
    pub direct: bool,
    /// "Keep printed documents": spool files kept after printing.
    pub keeps_printed: bool,
}

impl DiskSettings {
    /// Reads the two settings from PRINTER_INFO_2's Attributes. Pure.
    pub fn from_attributes(attributes: u32) -> DiskSettings {
        DiskSettings {
            direct: attributes & ATTRIBUTE_DIRECT != 0,
            keeps_printed: attributes & ATTRIBUTE_KEEP_PRINTED_JOBS != 0,
        }
    }
}

/// Why the spooler would leave a label on the station's disk with these attributes, if it
/// would; the reason says what to change. Pure.
pub(crate) fn disk_reason(attributes: u32) -> Option<String> {
    let settings = DiskSettings::from_attributes(attributes);
    let mut problems = Vec::new();
    if !settings.direct {
        problems.push(
            "it spools jobs to a file first (set \"Print directly to the printer\" in the \
             printer's properties, Advanced tab)",
        );
    }
    if settings.keeps_printed {
        problems.push(
            "it keeps printed documents (clear \"Keep printed documents\" in the printer's \
             properties, Advanced tab)",
        );
    }
    (!problems.is_empty()).then(|| {
        format!(
            "the Windows spooler would keep the label on disk: {}",
            problems.join("; ")
        )
    })
}

/// What the spooler says about one printer.
#[cfg_attr(not(any(windows, test)), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SpoolerPrinter {
    /// pPrinterName.
    pub name: String,
    /// pPortName.
    pub port: String,
    /// pDriverName.
    pub driver: String,
    /// Status bits.
    pub status: u32,
    /// Attribute bits.
    pub attributes: u32,
}

/// Why a port or driver is not a physical printer, if it is not.
pub(crate) fn virtual_reason(port: &str, driver: &str) -> Option<String> {
    let port_upper = port.trim().to_ascii_uppercase();
    let virtual_port = matches!(
        port_upper.as_str(),
        "FILE:" | "PORTPROMPT:" | "NUL:" | "NUL" | "XPSPORT:" | "SHRFAX:"
    ) || port_upper.ends_with(".PRN")
        || port_upper.ends_with(".PDF")
        || port_upper.contains(":\\")
        || port_upper.starts_with("\\\\?\\");
    if virtual_port {
        return Some(format!("its port {port:?} writes to a file or nowhere"));
    }
    let writer = super::facts::names_a_writer(driver);
    writer.then(|| format!("its driver {driver:?} is a document writer, not a printer"))
}

/// Judges one spooler printer. Pure.
#[cfg_attr(not(any(windows, test)), allow(dead_code))]
pub(crate) fn judge(printer: &SpoolerPrinter) -> Assessment {
    if let Some(why) = virtual_reason(&printer.port, &printer.driver) {
        return Assessment::refused(format!("not a physical printer: {why}"), None);
    }
    if printer.port.trim().is_empty() {
        return Assessment::refused("the printer has no port".to_owned(), None);
    }
    if let Some(why) = disk_reason(printer.attributes) {
        return Assessment::refused(why, None);
    }
    let identity = format!("{}|{}", printer.port.trim(), printer.driver.trim());
    let bits = printer.status;
    let status = if bits & (status::PAPER_OUT | status::PAPER_PROBLEM) != 0 {
        PrinterStatus::PaperOut
    } else if bits & status::DOOR_OPEN != 0 {
        PrinterStatus::HeadOpen
    } else if bits & status::PAUSED != 0 {
        PrinterStatus::Paused
    } else if bits & (status::OFFLINE | status::NOT_AVAILABLE) != 0
        || printer.attributes & status::ATTRIBUTE_WORK_OFFLINE != 0
    {
        PrinterStatus::Offline
    } else if bits & (status::ERROR | status::PAPER_JAM | status::USER_INTERVENTION) != 0 {
        PrinterStatus::Unknown
    } else {
        PrinterStatus::Ready
    };
    Assessment {
        verdict: PrinterVerdict::Verified,
        status,
        identity: Some(identity.clone()),
        reason: format!(
            "verified by port and driver: {identity} (the spooler gives no device serial)"
        ),
    }
}

/// Finds and judges the printer named `name`.
pub(crate) async fn assess(name: &str) -> Assessment {
    #[cfg(windows)]
    {
        let owned = name.to_owned();
        match tokio::task::spawn_blocking(move || ffi::find(&owned)).await {
            Ok(Ok(Some(printer))) => judge(&printer),
            Ok(Ok(None)) => {
                Assessment::unreachable("the spooler lists no printer of that name".to_owned())
            }
            Ok(Err(code)) => {
                Assessment::unreachable(format!("EnumPrintersW failed (error {code})"))
            }
            Err(_) => Assessment::unreachable("spooler query failed".to_owned()),
        }
    }
    #[cfg(not(windows))]
    {
        let _ = name;
        Assessment::refused(NOT_WINDOWS.to_owned(), None)
    }
}

/// Every printer the spooler lists, for the station self-check.
///
/// # Errors
/// The Win32 error code, or a reason on other systems.
pub(crate) async fn all() -> Result<Vec<SpoolerPrinter>, String> {
    #[cfg(windows)]
    {
        tokio::task::spawn_blocking(ffi::enumerate)
            .await
            .map_err(|_| "spooler query failed".to_owned())?
            .map_err(|code| format!("EnumPrintersW failed (error {code})"))
    }
    #[cfg(not(windows))]
    {
        Err(NOT_WINDOWS.to_owned())
    }
}

/// Writes one ZPL label as a RAW document with no output file.
///
/// # Errors
/// [`super::PrintError::NotPrinted`] when the document could not be started,
/// [`super::PrintError::InDoubt`] when writing stopped part way.
pub(crate) async fn write(name: &str, data: &[u8]) -> Result<(), super::PrintError> {
    #[cfg(windows)]
    {
        let owned = name.to_owned();
        let label = zeroize::Zeroizing::new(data.to_vec());
        tokio::task::spawn_blocking(move || ffi::print_raw(&owned, &label))
            .await
            .map_err(|_| super::PrintError::InDoubt("print task failed".to_owned()))?
    }
    #[cfg(not(windows))]
    {
        let _ = (name, data);
        Err(super::PrintError::NotPrinted(NOT_WINDOWS.to_owned()))
    }
}

#[cfg(windows)]
mod ffi {
    // The Win32 spooler API is C; calling it needs unsafe. Each block below states why it
    // holds. The workspace forbids unsafe code everywhere else.
    #![allow(unsafe_code)]

    use windows_sys::Win32::Foundation::GetLastError;
    use windows_sys::Win32::Graphics::Printing::{
        ClosePrinter, EndDocPrinter, EndPagePrinter, EnumPrintersW, OpenPrinterW, StartDocPrinterW,
        StartPagePrinter, WritePrinter, DOC_INFO_1W, PRINTER_ENUM_CONNECTIONS, PRINTER_ENUM_LOCAL,
        PRINTER_HANDLE, PRINTER_INFO_2W,
    };

    use super::super::PrintError;
    use super::SpoolerPrinter;

    fn wide(s: &str) -> Vec<u16> {
        s.encode_utf16().chain(std::iter::once(0)).collect()
    }

    /// Reads a NUL-terminated UTF-16 string the spooler owns.
    fn read_wide(p: *const u16) -> String {
        if p.is_null() {
            return String::new();
        }
        let mut len = 0usize;
        // SAFETY: the spooler returns NUL-terminated strings inside the buffer it filled; the
        // scan stops at the NUL and is capped far above any printer name or port.
        unsafe {
            while len < 32 * 1024 && *p.add(len) != 0 {
                len += 1;
            }
            String::from_utf16_lossy(std::slice::from_raw_parts(p, len))
        }
    }

    pub(super) fn enumerate() -> Result<Vec<SpoolerPrinter>, u32> {
        let flags = PRINTER_ENUM_LOCAL | PRINTER_ENUM_CONNECTIONS;
        let mut needed = 0u32;
        let mut count = 0u32;
        // SAFETY: a size query with a null buffer of length 0, as documented.
        unsafe {
            EnumPrintersW(
                flags,
                std::ptr::null(),
                2,
                std::ptr::null_mut(),
                0,
                &mut needed,
                &mut count,
            );
        }
        if needed == 0 {
            return Ok(Vec::new());
        }
        // u64 elements keep the buffer aligned for PRINTER_INFO_2W's pointers.
        let mut buf = vec![0u64; (needed as usize).div_ceil(8)];
        // SAFETY: buf holds at least `needed` bytes, as the size query asked for.
        let ok = unsafe {
            EnumPrintersW(
                flags,
                std::ptr::null(),
                2,
                buf.as_mut_ptr().cast(),
                needed,
                &mut needed,
                &mut count,
            )
        };
        if ok == 0 {
            // SAFETY: reads the calling thread's last error; no preconditions.
            return Err(unsafe { GetLastError() });
        }
        let infos = buf.as_ptr().cast::<PRINTER_INFO_2W>();
        let mut out = Vec::with_capacity(count as usize);
        for i in 0..count as usize {
            // SAFETY: the spooler wrote `count` PRINTER_INFO_2W records at the start of buf.
            let info = unsafe { &*infos.add(i) };
            out.push(SpoolerPrinter {
                name: read_wide(info.pPrinterName),
                port: read_wide(info.pPortName),
                driver: read_wide(info.pDriverName),
                status: info.Status,
                attributes: info.Attributes,
            });
        }
        Ok(out)
    }

    pub(super) fn find(name: &str) -> Result<Option<SpoolerPrinter>, u32> {
        Ok(enumerate()?.into_iter().find(|p| p.name == name))
    }

    struct Handle(PRINTER_HANDLE);

    impl Drop for Handle {
        fn drop(&mut self) {
            // SAFETY: the handle came from a successful OpenPrinterW and is closed once.
            unsafe {
                ClosePrinter(self.0);
            }
        }
    }

    pub(super) fn print_raw(name: &str, data: &[u8]) -> Result<(), PrintError> {
        let wname = wide(name);
        let mut raw = PRINTER_HANDLE::default();
        // SAFETY: wname is NUL-terminated and outlives the call; defaults may be null.
        if unsafe { OpenPrinterW(wname.as_ptr(), &mut raw, std::ptr::null()) } == 0 {
            // SAFETY: no preconditions.
            let code = unsafe { GetLastError() };
            return Err(PrintError::NotPrinted(format!(
                "OpenPrinterW failed (error {code})"
            )));
        }
        let handle = Handle(raw);
        // No space in the name: CUPS 2.4.2 (Debian 12) crashes on a job from Wine's spooler
        // whose document name has one (seen in the Wine tests); Windows does not care.
        let mut doc_name = wide("sealprint-label");
        let mut datatype = wide("RAW");
        let doc = DOC_INFO_1W {
            pDocName: doc_name.as_mut_ptr(),
            // No output file: the job goes to the printer's port, never to a file.
            pOutputFile: std::ptr::null_mut(),
            pDatatype: datatype.as_mut_ptr(),
        };
        // SAFETY: doc and the strings it points to outlive the call.
        if unsafe { StartDocPrinterW(handle.0, 1, &doc) } == 0 {
            // SAFETY: no preconditions.
            let code = unsafe { GetLastError() };
            return Err(PrintError::NotPrinted(format!(
                "StartDocPrinterW failed (error {code})"
            )));
        }
        // SAFETY: a document was started on this handle.
        if unsafe { StartPagePrinter(handle.0) } == 0 {
            // SAFETY: ends the document started above.
            unsafe { EndDocPrinter(handle.0) };
            return Err(PrintError::NotPrinted("StartPagePrinter failed".to_owned()));
        }
        let mut sent = 0usize;
        let mut failure = None;
        for chunk in data.chunks(64 * 1024) {
            let mut written = 0u32;
            // SAFETY: chunk is valid for its length (≤ 64 KiB, fits u32) during the call.
            let ok = unsafe {
                WritePrinter(
                    handle.0,
                    chunk.as_ptr().cast(),
                    chunk.len() as u32,
                    &mut written,
                )
            };
            sent += written as usize;
            if ok == 0 || written as usize != chunk.len() {
                failure = Some("WritePrinter failed");
                break;
            }
        }
        // SAFETY: a page and a document were started on this handle.
        let ended = unsafe { EndPagePrinter(handle.0) != 0 && EndDocPrinter(handle.0) != 0 };
        match (failure, ended) {
            (None, true) => Ok(()),
            (Some(why), _) if sent == 0 => Err(PrintError::NotPrinted(format!(
                "{why} before any byte was sent"
            ))),
            (Some(why), _) => Err(PrintError::InDoubt(format!(
                "{why} after {sent} of {} bytes",
                data.len()
            ))),
            (None, false) => Err(PrintError::InDoubt("EndDocPrinter failed".to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn printer(port: &str, driver: &str, status: u32) -> SpoolerPrinter {
        SpoolerPrinter {
            name: "anything".to_owned(),
            port: port.to_owned(),
            driver: driver.to_owned(),
            status,
            attributes: ATTRIBUTE_DIRECT,
        }
    }

    #[test]
    fn judges_disk_settings() {
        // Direct, nothing kept: the only setting that leaves no file.
        assert_eq!(disk_reason(ATTRIBUTE_DIRECT), None);
        assert_eq!(
            disk_reason(ATTRIBUTE_DIRECT | status::ATTRIBUTE_WORK_OFFLINE),
            None
        );
        let spools = disk_reason(0).expect("spooling refused");
        assert!(spools.contains("Print directly to the printer"), "{spools}");
        assert!(!spools.contains("Keep printed"), "{spools}");
        let keeps = disk_reason(ATTRIBUTE_DIRECT | ATTRIBUTE_KEEP_PRINTED_JOBS).expect("refused");
        assert!(keeps.contains("Keep printed documents"), "{keeps}");
        assert!(!keeps.contains("Print directly"), "{keeps}");
        let both = disk_reason(ATTRIBUTE_KEEP_PRINTED_JOBS).expect("refused");
        assert!(
            both.contains("Print directly") && both.contains("Keep printed"),
            "{both}"
        );
        assert_eq!(
            DiskSettings::from_attributes(ATTRIBUTE_KEEP_PRINTED_JOBS),
            DiskSettings {
                direct: false,
                keeps_printed: true
            }
        );

        // A physical printer with a spooling setting is refused with that reason, whatever
        // its status.
        let mut spooling = printer("USB001", "ZDesigner ZD421-203dpi ZPL", 0);
        for attributes in [
            0,
            ATTRIBUTE_KEEP_PRINTED_JOBS,
            ATTRIBUTE_DIRECT | ATTRIBUTE_KEEP_PRINTED_JOBS,
        ] {
            spooling.attributes = attributes;
            let a = judge(&spooling);
            assert_eq!(a.verdict, PrinterVerdict::Refused, "{attributes:#x}");
            assert!(
                a.reason.contains("would keep the label on disk"),
                "{}",
                a.reason
            );
            assert_eq!(a.identity, None);
        }
        spooling.attributes = ATTRIBUTE_DIRECT;
        assert_eq!(judge(&spooling).verdict, PrinterVerdict::Verified);
    }

    #[test]
    fn judges_ports_and_drivers() {
        for (port, driver) in [
            ("FILE:", "ZDesigner ZD421-203dpi ZPL"),
            ("PORTPROMPT:", "Microsoft Print To PDF"),
            ("USB001", "Microsoft Print To PDF"),
            ("nul:", "Generic / Text Only"),
            ("XPSPort:", "Microsoft XPS Document Writer v4"),
            ("SHRFAX:", "Microsoft Shared Fax Driver"),
            ("USB002", "Send To Microsoft OneNote 16 Driver"),
            ("C:\\labels\\out.prn", "ZDesigner ZD421-203dpi ZPL"),
        ] {
            let a = judge(&printer(port, driver, 0));
            assert_eq!(a.verdict, PrinterVerdict::Refused, "{port} {driver}");
        }
        let a = judge(&printer("USB001", "ZDesigner ZD421-203dpi ZPL", 0));
        assert_eq!(a.verdict, PrinterVerdict::Verified);
        assert_eq!(a.status, PrinterStatus::Ready);
        assert_eq!(
            a.identity.as_deref(),
            Some("USB001|ZDesigner ZD421-203dpi ZPL")
        );
        for (bits, want) in [
            (status::PAPER_OUT, PrinterStatus::PaperOut),
            (status::DOOR_OPEN, PrinterStatus::HeadOpen),
            (status::PAUSED, PrinterStatus::Paused),
            (status::OFFLINE, PrinterStatus::Offline),
            (status::ERROR, PrinterStatus::Unknown),
        ] {
            assert_eq!(
                judge(&printer("IP_10.0.0.5", "ZDesigner", bits)).status,
                want
            );
        }
    }

    #[cfg(not(windows))]
    #[tokio::test]
    async fn refused_off_windows() {
        let a = assess("ZDesigner ZD421").await;
        assert_eq!(a.verdict, PrinterVerdict::Refused);
        assert_eq!(a.reason, NOT_WINDOWS);
    }
}
