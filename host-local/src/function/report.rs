//! A function's report: begun before its iterations, finished after them (the final model's
//! per-row outputs and class counts, and the totals), for the synchronous and the stale loops.

use std::time::Instant;

use super::{failure, Function};
use crate::sync::StateStore;
use crate::task::{FunctionFailure, FunctionReport};

impl Function {
    /// The report of a run entering the job at iteration `first`, before its iterations.
    pub(super) fn new_report(&self, first: u32) -> FunctionReport {
        FunctionReport {
            function: self.function,
            inner: self.inner(),
            rows: self.rows,
            shape: self.spec.shape,
            joined_at: first,
            load_s: self.load_s,
            bytes_fetched: self.bytes_fetched,
            share_bytes: self.share_bytes,
            ..Default::default()
        }
    }

    /// After the last iteration: the final model's per-row outputs and class counts, and the
    /// report's totals.
    pub(super) fn finish(
        &mut self,
        mut report: FunctionReport,
        model: Vec<f64>,
        want_assignments: bool,
        store: &dyn StateStore,
        started: Instant,
    ) -> Result<FunctionReport, FunctionFailure> {
        let f = self.function;
        if want_assignments && !report.continuation {
            // Assign every row under the final model (the last step used the previous one).
            let last = report.iterations.last().map(|i| i.iteration);
            self.step(&model).map_err(|e| failure(f, last, e))?;
            report.assignments = Some(self.assignments().map_err(|e| failure(f, last, e))?);
        }
        if !report.continuation {
            // The accuracy on the training data: each function counts over its own rows.
            let last = report.iterations.last().map(|i| i.iteration);
            report.class_counts = self.score(&model).map_err(|e| failure(f, last, e))?;
        }
        report.model = model;
        report.sync = store.stats();
        report.total_s = started.elapsed().as_secs_f64() + self.load_s;
        Ok(report)
    }
}
