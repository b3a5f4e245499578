//! What `ifp run` shows while it works: on a terminal, a spinner naming the phase under way
//! (kernel, data, initialisation, loading) and then a bar over the iterations; elsewhere,
//! plain lines: one per phase that took more than a second (on stdout, the run's log beside
//! the summary, so that a failure still leaves exactly one line on stderr), one per
//! iteration on stderr; nothing with `--quiet`. Iteration lines carry the job's compute and sync as [`crate::result`] defines
//! them (the slowest function's compute, the rest of the iteration), the same figures as the
//! result JSON, printed once every function has reported the iteration.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use ifp_host::IterationReport;

use crate::result::iteration_sync;

/// Phases shorter than this get no plain line.
const QUIET_BELOW: Duration = Duration::from_secs(1);

pub struct Progress {
    mode: Mode,
    functions: u32,
    max_iter: std::sync::atomic::AtomicU32,
    bar: Mutex<Option<ProgressBar>>,
    phase: Mutex<Option<(String, Instant)>>,
    /// Per iteration not yet shown: each function's report so far (a function started again
    /// reports an iteration again: the later report replaces the earlier).
    pending: Mutex<BTreeMap<u32, BTreeMap<u32, IterationReport>>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Quiet,
    Terminal,
    Plain,
}

impl Progress {
    pub fn new(quiet: bool, functions: u32, max_iter: u32) -> Self {
        let mode = match (quiet, std::io::stderr().is_terminal()) {
            (true, _) => Mode::Quiet,
            (false, true) => Mode::Terminal,
            (false, false) => Mode::Plain,
        };
        Self {
            mode,
            functions: functions.max(1),
            max_iter: max_iter.into(),
            bar: Mutex::new(None),
            phase: Mutex::new(None),
            pending: Mutex::new(BTreeMap::new()),
        }
    }

    /// Starts a phase (ending the one under way): a spinner with `what` on a terminal.
    pub fn phase(&self, what: &str) {
        self.end_phase();
        if self.mode == Mode::Terminal {
            let bar = ProgressBar::new_spinner();
            bar.set_style(ProgressStyle::with_template("{spinner} {msg} ({elapsed})").unwrap());
            bar.set_message(what.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            *self.bar.lock().unwrap() = Some(bar);
        }
        *self.phase.lock().unwrap() = Some((what.to_string(), Instant::now()));
    }

    /// Ends the phase under way; a plain line if it took more than a second.
    pub fn end_phase(&self) {
        if let Some((what, started)) = self.phase.lock().unwrap().take() {
            if let Some(b) = self.bar.lock().unwrap().take() {
                b.finish_and_clear();
            }
            if self.mode == Mode::Plain && started.elapsed() >= QUIET_BELOW {
                // On stdout, with the summary: stderr stays for the one line of an error.
                println!("{what}: {:.1} s", started.elapsed().as_secs_f64());
            }
        }
    }

    /// The iterations the bar counts to, once the plan knows them.
    pub fn set_max_iter(&self, n: u32) {
        self.max_iter.store(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// The functions run: loading their shares, then the iterations (a bar on a terminal).
    pub fn start_iterations(&self, what: &str) {
        self.end_phase();
        if self.mode == Mode::Terminal {
            let bar = ProgressBar::new(self.max_iter.load(std::sync::atomic::Ordering::Relaxed) as u64);
            bar.set_style(
                ProgressStyle::with_template("{spinner} iter {pos}/{len} [{bar:30}] {msg} ({elapsed})")
                    .unwrap()
                    .progress_chars("=> "),
            );
            bar.set_message(what.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            *self.bar.lock().unwrap() = Some(bar);
        }
    }

    /// One function's report of one iteration; the iteration is shown once all have reported.
    pub fn iteration(&self, function: u32, it: &IterationReport) {
        if self.mode == Mode::Quiet {
            return;
        }
        let mut pending = self.pending.lock().unwrap();
        let reports = pending.entry(it.iteration).or_default();
        reports.insert(function, it.clone());
        if reports.len() >= self.functions as usize {
            let reports = pending.remove(&it.iteration).unwrap_or_default();
            self.show(&reports);
        }
    }

    /// Shows one iteration from the reports of its functions.
    fn show(&self, reports: &BTreeMap<u32, IterationReport>) {
        // The reference function is the lowest-numbered one, as in the result JSON.
        let Some(reference) = reports.values().next() else { return };
        let compute = reports.values().map(|r| r.compute_s).fold(0.0, f64::max);
        let sync = iteration_sync(reference, compute);
        match self.mode {
            Mode::Terminal => {
                if let Some(b) = &*self.bar.lock().unwrap() {
                    b.set_position(reference.iteration as u64 + 1);
                    b.set_message(format!("loss {:.6e}", reference.loss));
                }
            }
            Mode::Plain => eprintln!(
                "iteration {}: loss {:.6e}, compute {:.2} ms, sync {:.3} ms",
                reference.iteration + 1,
                reference.loss,
                compute * 1e3,
                sync * 1e3
            ),
            Mode::Quiet => {}
        }
    }

    /// Ends the display: iterations that not every function reported (a function that failed
    /// or rejoined later) are shown from the reports there are.
    pub fn finish(&self) {
        self.end_phase();
        let rest = std::mem::take(&mut *self.pending.lock().unwrap());
        for reports in rest.values() {
            self.show(reports);
        }
        if let Some(b) = self.bar.lock().unwrap().take() {
            b.finish_and_clear();
        }
    }
}
