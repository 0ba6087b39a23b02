//! The bookkeeping of delivery-under-faults runs (the end-to-end fault tests and the soak
//! command): labels sent at a steady pace, each with a unique number, and the check of the
//! delivery promise against what the simulated printers printed. At most once always;
//! `printed` means on paper exactly once; nothing `failed` or left waiting.

use std::collections::HashMap;
use std::ops::Range;
use std::time::Duration;

use anyhow::{bail, Context as _};
use serde_json::Value;

use crate::printer_sim::SimHandle;
use crate::scenario::{label_index, marker, zpl_label, Site};

/// How long every job has to reach a final state once the last label is sent.
pub const SETTLE: Duration = Duration::from_secs(90);

/// The labels a scenario sent: label `n` of the marker is job `jobs[n]`.
pub struct Ledger {
    mark: String,
    /// Job ids, in the order the labels were sent.
    pub jobs: Vec<String>,
    pace: u64,
}

/// Where every job ended, and what the printers got.
pub struct Tally {
    /// Jobs that ended in doubt, with the device they were out on.
    pub in_doubt: Vec<(String, String)>,
    /// Labels each simulator printed, in the order the simulators were given.
    pub per_printer: Vec<usize>,
}

impl Ledger {
    /// An empty ledger sending `pace` labels a second.
    pub fn new(pace: u64) -> Ledger {
        Ledger {
            mark: marker(),
            jobs: Vec::new(),
            pace: pace.max(1),
        }
    }

    /// Sends labels `range` at the ledger's pace, each to what `target(n)` names.
    ///
    /// # Errors
    /// When a label is not accepted (202).
    pub async fn send(
        &mut self,
        site: &Site,
        range: Range<usize>,
        target: impl Fn(usize) -> Value,
    ) -> anyhow::Result<()> {
        let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / self.pace));
        for n in range {
            anyhow::ensure!(n == self.jobs.len(), "labels are sent in order");
            tick.tick().await;
            let id = site.submit(target(n), &zpl_label(&self.mark, n)).await?;
            self.jobs.push(id);
        }
        Ok(())
    }

    /// Waits until every job is final, then checks the promise against what `printers`
    /// printed: no label twice; `printed` jobs on paper exactly once; no job `failed`.
    /// A job in doubt may still be settled by its agent's receipts: those are given
    /// `doubt_grace` to settle.
    ///
    /// # Errors
    /// A job not final within [`SETTLE`], or any broken promise (all listed).
    pub async fn settle(
        &self,
        site: &Site,
        printers: &[&SimHandle],
        doubt_grace: Duration,
    ) -> anyhow::Result<Tally> {
        let mut states = Vec::new();
        for id in &self.jobs {
            states.push(site.wait_final(id, SETTLE).await?);
        }
        let until = tokio::time::Instant::now() + doubt_grace;
        for (id, state) in self.jobs.iter().zip(states.iter_mut()) {
            while state["status"] == "in_doubt" && tokio::time::Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(200)).await;
                *state = site.wait_final(id, SETTLE).await?;
            }
        }
        // A label can still be on its way to a simulator when its job is marked printed.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut copies: HashMap<usize, usize> = HashMap::new();
        let mut per_printer = Vec::new();
        for sim in printers {
            let jobs = sim.jobs();
            per_printer.push(jobs.len());
            for bytes in jobs {
                let n = label_index(&bytes, &self.mark).context("a label that was never sent")?;
                *copies.entry(n).or_default() += 1;
            }
        }
        let mut in_doubt = Vec::new();
        let mut problems = Vec::new();
        for (n, job) in states.iter().enumerate() {
            let on_paper = copies.get(&n).copied().unwrap_or(0);
            if on_paper > 1 {
                problems.push(format!("label {n} printed {on_paper} times"));
            }
            match job["status"].as_str() {
                Some("printed") if on_paper == 1 => {}
                Some("printed") => problems.push(format!("label {n} printed but not on paper")),
                Some("in_doubt") => in_doubt.push((
                    job["id"].as_str().unwrap_or_default().to_owned(),
                    job["agent"].as_str().unwrap_or_default().to_owned(),
                )),
                other => problems.push(format!("label {n} ended {other:?}: {job}")),
            }
        }
        if !problems.is_empty() {
            bail!("{} problems: {problems:#?}", problems.len());
        }
        Ok(Tally {
            in_doubt,
            per_printer,
        })
    }
}
