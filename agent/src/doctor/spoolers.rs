//! What the station's print spoolers keep on disk, for the self-check: CUPS' job files and job
//! history (`PreserveJobFiles`, `PreserveJobHistory`, `RequestRoot`, read from `cupsd.conf`
//! and `cups-files.conf` with CUPS' defaults where a directive is absent), and for every
//! Windows printer whether it prints directly and whether it keeps printed documents.
//!
//! sealprint itself never hands a label to a spooler that keeps it (CUPS queues are printed
//! to past the scheduler; Windows printers that spool are refused), so these checks warn
//! rather than fail: they tell an operator what other software printing on the station
//! leaves on its disk. Pure: the caller reads the files and asks the spooler.

use crate::printer::inventory::{self, DiskSettings, SpoolerPrinter};

use super::{Check, Outcome};

/// CUPS' default `PreserveJobFiles` (cupsd.conf(5), CUPS 2.x): one day, in seconds.
const DEFAULT_PRESERVE_JOB_FILES: &str = "86400";
/// CUPS' default `PreserveJobHistory`.
const DEFAULT_PRESERVE_JOB_HISTORY: &str = "Yes";
/// CUPS' default `RequestRoot` (cups-files.conf(5)).
const DEFAULT_REQUEST_ROOT: &str = "/var/spool/cups";

/// One directive's effective value and whether it is CUPS' default (not set in the files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Setting {
    /// The value as written (or the default).
    pub value: String,
    /// Whether the files did not set it.
    pub default: bool,
}

impl Setting {
    fn shown(&self) -> String {
        if self.default {
            format!("{} (default)", self.value)
        } else {
            self.value.clone()
        }
    }
}

/// How long CUPS keeps what it was sent, from its configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CupsRetention {
    /// `PreserveJobFiles`: Yes, No or seconds; documents (d files) kept after printing.
    pub job_files: Setting,
    /// `PreserveJobHistory`: Yes, No or seconds; job attributes (c files) kept.
    pub job_history: Setting,
    /// `RequestRoot`: the spool directory.
    pub request_root: Setting,
}

/// The last value of `directive` in `text` (case-insensitive name, `#` comments skipped).
fn directive(text: &str, name: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (key, value) = line.split_once(char::is_whitespace)?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
        .rfind(|value| !value.is_empty())
}

/// Reads the three directives from `cupsd.conf` and `cups-files.conf` (either may hold them;
/// CUPS 2.x keeps `RequestRoot` in cups-files.conf), falling back to CUPS' defaults. Pure.
pub(crate) fn cups_retention(cupsd_conf: &str, cups_files_conf: &str) -> CupsRetention {
    let setting = |name: &str, default: &str| match directive(cups_files_conf, name)
        .or_else(|| directive(cupsd_conf, name))
    {
        Some(value) => Setting {
            value,
            default: false,
        },
        None => Setting {
            value: default.to_owned(),
            default: true,
        },
    };
    CupsRetention {
        job_files: setting("PreserveJobFiles", DEFAULT_PRESERVE_JOB_FILES),
        job_history: setting("PreserveJobHistory", DEFAULT_PRESERVE_JOB_HISTORY),
        request_root: setting("RequestRoot", DEFAULT_REQUEST_ROOT),
    }
}

/// Whether a Yes/No/seconds value keeps anything.
fn keeps(value: &str) -> bool {
    !(value.eq_ignore_ascii_case("no")
        || value.eq_ignore_ascii_case("off")
        || value.eq_ignore_ascii_case("false")
        || value == "0")
}

/// The self-check line for CUPS' retention. Pure.
pub(crate) fn cups_check(retention: &CupsRetention) -> Check {
    let CupsRetention {
        job_files,
        job_history,
        request_root,
    } = retention;
    let settings = format!(
        "PreserveJobFiles {}, PreserveJobHistory {}, RequestRoot {}",
        job_files.shown(),
        job_history.shown(),
        request_root.shown()
    );
    if keeps(&job_files.value) {
        Check::new(
            "cups job files",
            Outcome::Warn,
            format!(
                "{settings}: documents printed through the scheduler stay in {} after \
                 printing; sealprint prints past the scheduler, but other software's labels \
                 would stay on disk: set PreserveJobFiles No in cupsd.conf",
                request_root.value
            ),
        )
    } else {
        Check::new(
            "cups job files",
            Outcome::Pass,
            format!("{settings}: no document is kept after printing"),
        )
    }
}

/// The self-check line for one Windows printer: virtual or not, and both disk settings. Pure.
pub(crate) fn spooler_check(printer: &SpoolerPrinter) -> Check {
    let settings = DiskSettings::from_attributes(printer.attributes);
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let shown = format!(
        "port {:?}, driver {:?}; prints directly: {}, keeps printed documents: {}",
        printer.port,
        printer.driver,
        yes_no(settings.direct),
        yes_no(settings.keeps_printed)
    );
    let name = format!("windows printer {}", printer.name);
    if let Some(why) = inventory::spooler_virtual(&printer.port, &printer.driver) {
        return Check::new(
            name,
            Outcome::Fail,
            format!("print-to-file/PDF/XPS printer on the station: {why}; remove it ({shown})"),
        );
    }
    match inventory::spooler_disk(printer.attributes) {
        Some(why) => Check::new(
            name,
            Outcome::Warn,
            format!("{shown}: {why}; sealprint refuses it until then"),
        ),
        None => Check::new(name, Outcome::Pass, shown),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cups_retention_with_defaults() {
        let r = cups_retention("LogLevel warn\n", "SystemGroup lpadmin\n");
        assert_eq!(r.job_files.value, "86400");
        assert!(r.job_files.default && r.job_history.default && r.request_root.default);
        assert_eq!(r.request_root.value, "/var/spool/cups");
        let check = cups_check(&r);
        assert_eq!(check.outcome, Outcome::Warn);
        assert!(
            check.detail.contains("PreserveJobFiles 86400 (default)"),
            "{}",
            check.detail
        );
        assert!(check.detail.contains("/var/spool/cups"), "{}", check.detail);

        let r = cups_retention(
            "# PreserveJobFiles Yes\npreservejobfiles   No\nPreserveJobHistory 3600\n",
            "RequestRoot /srv/spool\n",
        );
        assert_eq!(
            r.job_files,
            Setting {
                value: "No".to_owned(),
                default: false
            }
        );
        assert_eq!(r.job_history.value, "3600");
        assert_eq!(r.request_root.value, "/srv/spool");
        let check = cups_check(&r);
        assert_eq!(check.outcome, Outcome::Pass, "{}", check.detail);
        assert!(check.detail.contains("PreserveJobHistory 3600,"));

        // The last directive wins; cups-files.conf before cupsd.conf.
        let r = cups_retention("PreserveJobFiles No\nPreserveJobFiles Yes\n", "");
        assert_eq!(cups_check(&r).outcome, Outcome::Warn);
    }

    #[test]
    fn reports_both_windows_settings() {
        let printer = |port: &str, driver: &str, attributes: u32| SpoolerPrinter {
            name: "Zebra".to_owned(),
            port: port.to_owned(),
            driver: driver.to_owned(),
            status: 0,
            attributes,
        };
        let direct = inventory::SPOOLER_DIRECT;
        let keep = inventory::SPOOLER_KEEP_PRINTED;
        let zebra = "ZDesigner ZD421-203dpi ZPL";
        let check = spooler_check(&printer("USB001", zebra, direct));
        assert_eq!(check.outcome, Outcome::Pass, "{}", check.detail);
        assert!(check
            .detail
            .contains("prints directly: yes, keeps printed documents: no"));
        let check = spooler_check(&printer("USB001", zebra, 0));
        assert_eq!(check.outcome, Outcome::Warn);
        assert!(check
            .detail
            .contains("prints directly: no, keeps printed documents: no"));
        let check = spooler_check(&printer("USB001", zebra, direct | keep));
        assert_eq!(check.outcome, Outcome::Warn);
        assert!(check.detail.contains("keeps printed documents: yes"));
        let check = spooler_check(&printer("PORTPROMPT:", "Microsoft Print To PDF", direct));
        assert_eq!(check.outcome, Outcome::Fail);
        assert!(check.detail.contains("prints directly: yes"));
    }
}
