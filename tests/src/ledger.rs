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
use crate::scenario::{label_indices, marker, zpl_label, Site};

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
    /// Labels each simulator got (every label of every connection, printed or held), in the
    /// order the simulators were given.
    pub per_printer: Vec<usize>,
    /// The numbers of the labels each simulator got, in the order they came.
    pub labels_by_printer: Vec<Vec<usize>>,
    /// Each job's final JSON, by label number.
    pub states: Vec<Value>,
}

/// Every job's final state, before the printers are counted.
pub struct Finals {
    states: Vec<Value>,
}

impl Finals {
    /// Each job's final JSON, by label number.
    pub fn states(&self) -> &[Value] {
        &self.states
    }
}

/// How long a simulator must have had no connection and no byte before it is counted.
const QUIET: Duration = Duration::from_secs(1);
/// How long simulators get to become quiet.
const QUIET_WITHIN: Duration = Duration::from_secs(30);

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
    /// got once they are quiet (see [`Ledger::count`]). A job in doubt may still be settled by
    /// its agent's receipts: those are given `doubt_grace` to settle.
    ///
    /// # Errors
    /// A job not final within [`SETTLE`] (one deadline for them all), or any broken promise.
    pub async fn settle(
        &self,
        site: &Site,
        printers: &[&SimHandle],
        doubt_grace: Duration,
    ) -> anyhow::Result<Tally> {
        let finals = self.wait_final(site, doubt_grace).await?;
        self.count(&finals, printers).await
    }

    /// Waits until every job is final (one deadline, [`SETTLE`], for all of them), and then up
    /// to `doubt_grace` for jobs in doubt to be settled by receipts.
    ///
    /// # Errors
    /// A job not final by the deadline, or an API error.
    pub async fn wait_final(&self, site: &Site, doubt_grace: Duration) -> anyhow::Result<Finals> {
        let deadline = tokio::time::Instant::now() + SETTLE;
        let mut states = Vec::new();
        for id in &self.jobs {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            states.push(
                site.wait_final(id, left.max(Duration::from_millis(1)))
                    .await
                    .with_context(|| {
                        format!("job {id}: not final {SETTLE:?} after the last send")
                    })?,
            );
        }
        let until = tokio::time::Instant::now() + doubt_grace;
        for (id, state) in self.jobs.iter().zip(states.iter_mut()) {
            while state["status"] == "in_doubt" && tokio::time::Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(200)).await;
                *state = site.job(id).await?;
            }
        }
        Ok(Finals { states })
    }

    /// Checks the promise against what `printers` got: no label twice; `printed` jobs on
    /// paper exactly once; no job `failed`. Counts every label of every connection, held
    /// ones included, once each simulator has been quiet for a second (stop the agents
    /// first, so nothing can still be on its way).
    ///
    /// # Errors
    /// A simulator not quiet within 30 s, a label that was never sent, or any broken promise
    /// (all listed).
    pub async fn count(&self, finals: &Finals, printers: &[&SimHandle]) -> anyhow::Result<Tally> {
        let states = &finals.states;
        for (i, sim) in printers.iter().enumerate() {
            anyhow::ensure!(
                sim.wait_quiet(QUIET, QUIET_WITHIN).await,
                "printer {i} still busy {QUIET_WITHIN:?} after the jobs were final: {:?}",
                sim.activity()
            );
        }
        let mut copies: HashMap<usize, usize> = HashMap::new();
        let mut per_printer = Vec::new();
        let mut labels_by_printer = Vec::new();
        for sim in printers {
            let mut labels = Vec::new();
            for bytes in sim.jobs().iter().chain(sim.held_jobs().iter()) {
                let found = label_indices(bytes, &self.mark);
                anyhow::ensure!(!found.is_empty(), "a label that was never sent");
                for n in found {
                    anyhow::ensure!(n < self.jobs.len(), "a label that was never sent ({n})");
                    *copies.entry(n).or_default() += 1;
                    labels.push(n);
                }
            }
            per_printer.push(labels.len());
            labels_by_printer.push(labels);
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
            labels_by_printer,
            states: states.clone(),
        })
    }
}
