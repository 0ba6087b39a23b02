//! The printers of this Print Station: each behind its own lock (one job or probe at a time
//! per device), with the latest report of each kept for heartbeats, and the identities first
//! seen persisted in the data directory (`printers.json`: names and serials, no PII) so a
//! swapped device is noticed across restarts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex as StdMutex};

use sealprint_protocol::PrinterReport;
use tokio::sync::Mutex;

use crate::identity::write_private;
use crate::printer::{Printer, PrinterConfig, PrinterError, Timeouts};

/// One station's printers.
#[derive(Clone)]
pub struct Station {
    printers: Arc<BTreeMap<String, Arc<Mutex<Printer>>>>,
    reports: Arc<StdMutex<BTreeMap<String, PrinterReport>>>,
    identities_file: Option<PathBuf>,
}

impl Station {
    /// Builds the station from configs, with identities recorded in `data_dir` (if any).
    ///
    /// # Errors
    /// When a printer's configuration is invalid.
    pub fn new(
        configs: Vec<PrinterConfig>,
        data_dir: Option<&Path>,
        timeouts: Timeouts,
    ) -> Result<Station, PrinterError> {
        let identities_file = data_dir.map(|d| d.join("printers.json"));
        let recorded: BTreeMap<String, String> = identities_file
            .as_ref()
            .and_then(|f| std::fs::read(f).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let mut printers = BTreeMap::new();
        let mut reports = BTreeMap::new();
        for config in configs {
            let name = config.name.clone();
            let printer = Printer::new(config, recorded.get(&name).cloned(), timeouts)?;
            reports.insert(name.clone(), printer.last_report().clone());
            printers.insert(name, Arc::new(Mutex::new(printer)));
        }
        Ok(Station {
            printers: Arc::new(printers),
            reports: Arc::new(StdMutex::new(reports)),
            identities_file,
        })
    }

    /// The printer named `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Mutex<Printer>>> {
        self.printers.get(name).cloned()
    }

    /// The latest report of every printer.
    pub fn reports(&self) -> Vec<PrinterReport> {
        self.reports
            .lock()
            .map(|r| r.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Records a printer's latest report (after a probe or a print).
    pub fn update(&self, report: PrinterReport) {
        if let Ok(mut r) = self.reports.lock() {
            r.insert(report.name.clone(), report);
        }
    }

    /// Takes up an identity an admin accepted for `printer`, then probes it again.
    pub async fn accept(&self, printer: &str, identity: &str) {
        let Some(p) = self.get(printer) else {
            return;
        };
        let mut p = p.lock().await;
        if p.accept_identity(identity) {
            let report = p.probe().await;
            drop(p);
            self.update(report);
            let mut identities = BTreeMap::new();
            for (name, printer) in self.printers.iter() {
                if let Some(id) = printer.lock().await.recorded_identity() {
                    identities.insert(name.clone(), id.to_owned());
                }
            }
            self.save_identities(&identities);
        }
    }

    /// Probes every printer, one task each, and records identities first seen.
    ///
    /// Safe to cancel: a cancelled probe leaves the previous report in place.
    pub async fn probe_all(&self) {
        let probes = self.printers.values().map(|p| {
            let p = p.clone();
            async move {
                let mut printer = p.lock().await;
                let report = printer.probe().await;
                (report, printer.recorded_identity().map(str::to_owned))
            }
        });
        let results = futures::future::join_all(probes).await;
        let mut identities = BTreeMap::new();
        for (report, identity) in results {
            if let Some(id) = identity {
                identities.insert(report.name.clone(), id);
            }
            self.update(report);
        }
        self.save_identities(&identities);
    }

    fn save_identities(&self, identities: &BTreeMap<String, String>) {
        let Some(file) = &self.identities_file else {
            return;
        };
        let Ok(bytes) = serde_json::to_vec_pretty(identities) else {
            return;
        };
        if std::fs::read(file).ok().as_deref() == Some(bytes.as_slice()) {
            return;
        }
        if let Err(e) = write_private(file, &bytes) {
            tracing::warn!(error = %e, "could not record printer identities");
        }
    }
}
