//! One function's loop in a stale-synchronous job (`staleness` > 0, see [`crate::sync::stale`]):
//! step on the newest model it has not stepped on, deliver the partial labelled with that
//! model's version, reduce the round if the delivery completes it, else take the newest model
//! (at once when late, or after waiting for the next release). Every round released since the
//! model it stepped on becomes one iteration of its report, with the staleness that round saw,
//! so every function's history covers every round.

use std::time::Instant;

use super::{failure, of_size, Function, Resume};
use crate::sync::stale::{Delivered, RoundRecord, Took};
use crate::sync::tree::FLAT;
use crate::sync::{Release, StateStore};
use crate::task::{FailureKind, FunctionFailure, FunctionReport, IterationReport};

impl Function {
    /// Iterates with stale-synchronous rounds from the first model until the kernel converges
    /// or `max_iter` rounds were released.
    pub(super) fn run_stale(
        &mut self,
        store: &mut dyn StateStore,
        resume: Resume,
        want_assignments: bool,
        on_iteration: &mut dyn FnMut(&IterationReport),
    ) -> Result<FunctionReport, FunctionFailure> {
        let started = Instant::now();
        let spec = self.spec.clone();
        let (f, bound) = (self.function, spec.staleness);
        let bad = |m: String| FunctionFailure::new(FailureKind::BadInput, Some(f), Some(resume.iteration), m);
        if resume.iteration > 0 {
            return Err(bad(format!(
                "a function cannot rejoin a stale-synchronous job mid-way (the job is at iteration {})",
                resume.iteration
            )));
        }
        if spec.functions > FLAT {
            return Err(bad(format!(
                "staleness {bound} needs at most {FLAT} functions (rounds summed without groups), got {}",
                spec.functions
            )));
        }
        if store.stale().is_none() {
            return Err(bad(format!("staleness {bound}: this state store runs synchronous rounds only")));
        }
        let sizes = {
            let inst = self.instance();
            if inst.plan_batches(&spec.params, spec.shape).map_err(|e| failure(f, Some(0), e))?.is_some() {
                return Err(bad(format!(
                    "staleness {bound} needs a full-batch kernel: mini-batch runs are synchronous"
                )));
            }
            inst.sizes(&spec.params, spec.shape).map_err(|e| failure(f, Some(0), e))?
        };
        let delay = crate::test_delay::of(f)?;
        let mut report = self.new_report(0);
        // The version of the model this function steps on next, and the model.
        let (mut v, mut model) = (0u32, resume.model);
        loop {
            let (trips0, bytes0) = (store.stats().round_trips, store.stats().partial_bytes);
            let c0 = Instant::now();
            std::thread::sleep(delay.unwrap_or_default());
            let partial = self.step(&model).and_then(|p| of_size(p, sizes)).map_err(|e| failure(f, Some(v), e))?;
            let c1 = Instant::now();
            let stale = store.stale().expect("checked above");
            let mut delivered = stale.deliver(f, v, &partial, bound, false).map_err(|e| failure(f, Some(v), e))?;
            if delivered.hold {
                // Functions the round is due to wait for may still deliver: wait for them as
                // long as this step took, then reduce without them.
                delivered = match stale.await_within(f, v, c1 - c0).map_err(|e| failure(f, Some(v), e))? {
                    Some(tk) => Delivered { took: Some(tk), ..Default::default() },
                    None => stale.deliver(f, v, &partial, bound, true).map_err(|e| failure(f, Some(v), e))?,
                };
            }
            let took = match delivered {
                Delivered { reduce: Some(r), took, .. } => {
                    let (base_version, base, mut records) = match took {
                        Some(tk) => (tk.version, tk.release.model, tk.records),
                        None => (v, model, Vec::new()),
                    };
                    if r.t != base_version {
                        let m = format!("asked to reduce round {} on model version {base_version}", r.t);
                        return Err(FunctionFailure::new(FailureKind::Host, Some(f), Some(r.t), m));
                    }
                    let total =
                        self.pool.install(|| super::sum_in_order(&r.parts)).map_err(|e| failure(f, Some(r.t), e))?;
                    let u = self
                        .instance()
                        .update(&spec.params, spec.shape, &base, &total)
                        .map_err(|e| failure(f, Some(r.t), e))?;
                    // Old partials repeated make a small step look like convergence: only a
                    // round of fresh partials only may stop the job on it.
                    let converged = u.converged && r.staleness.max == 0;
                    let stop = converged || r.t + 1 >= spec.max_iter;
                    let release = Release { model: u.model, loss: u.loss, converged, stop };
                    let stale = store.stale().expect("checked above");
                    stale.release_round(r.t, &release, &r.staleness, bound).map_err(|e| failure(f, Some(r.t), e))?;
                    records.push(RoundRecord { loss: release.loss, staleness: r.staleness });
                    Took { version: r.t + 1, release, records }
                }
                Delivered { took: Some(tk), .. } => tk,
                Delivered { took: None, .. } => stale.await_newer(f, v, bound).map_err(|e| failure(f, Some(v), e))?,
            };
            if took.records.len() as u32 != took.version - v {
                let m = format!(
                    "model version {} after {v} came with {} rounds' records",
                    took.version,
                    took.records.len()
                );
                return Err(FunctionFailure::new(FailureKind::Host, Some(f), Some(v), m));
            }
            // The round of the model it stepped on carries this step's timings; rounds it did
            // not step in (reduced while it was busy) only their loss and staleness.
            let round_trips = store.stats().round_trips - trips0;
            let partial_bytes = store.stats().partial_bytes - bytes0;
            for (i, rec) in took.records.into_iter().enumerate() {
                let own = i == 0;
                let it = IterationReport {
                    iteration: v + i as u32,
                    compute_s: if own { (c1 - c0).as_secs_f64() } else { 0.0 },
                    sync_s: if own { c1.elapsed().as_secs_f64() } else { 0.0 },
                    loss: rec.loss,
                    round_trips: if own { round_trips } else { 0 },
                    partial_bytes: if own { partial_bytes } else { 0 },
                    staleness: Some(rec.staleness),
                };
                on_iteration(&it);
                report.iterations.push(it);
            }
            v = took.version;
            model = took.release.model;
            report.converged = took.release.converged;
            if took.release.stop {
                break;
            }
        }
        self.finish(report, model, want_assignments, store, started)
    }
}
