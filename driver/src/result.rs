//! The result of `ifp run` as JSON (`--out`) and as the summary printed at the end: the
//! model, iterations, configuration, timings, every function's load and sync figures.
//!
//! **Sync time**, the one definition used by the summary, the progress lines, the JSON
//! (`timing.iterations[].sync_s`, `timing.phases.sync_s`), `ifp sweep` and its charts: for
//! one iteration, the iteration's wall time (of the reference function: the one with the
//! longest history, function 0 unless one was restarted) minus the slowest function's
//! compute. It is what synchronisation costs the job beyond the computation: arrival,
//! reduction, `update`, release, and the wait for the slowest function's partial. Each
//! function's own wait from its partial to the next model (which includes waiting for
//! slower functions) is `sync.iterations[].partial_to_model_s`, a different figure under
//! another name.
//!
//! **Phases**: the wall time of a run splits into kernel (read and compile), data (open,
//! shape, initial centroids), init (the first model), load (the reference function's share),
//! compute and sync (summed over iterations), other (the rest of the functions' run: start-up
//! of threads, processes or invocations, the final assignment pass, collecting the reports)
//! and write (the output files; in the summary only). The parts add up to the total exactly.

use serde_json::{json, Map, Value};

use ifp_host::job::{JobOutcome, JobPlan};
use ifp_host::kernel::ModelField;
use ifp_host::sync::redis::redact;
use ifp_host::{FunctionReport, IterationReport};

/// A model field as JSON: a number, a list, or a list of rows.
fn field_json(f: &ModelField) -> Value {
    match f.shape.as_slice() {
        [] => json!(f.values.first().copied().unwrap_or(f64::NAN)),
        [_] => json!(f.values),
        [_, c, ..] => json!(f.values.chunks((*c).max(1) as usize).collect::<Vec<_>>()),
    }
}

/// Sync time of one iteration (see the module doc): the reference function's iteration time
/// minus the slowest function's compute.
pub fn iteration_sync(reference: &IterationReport, slowest_compute: f64) -> f64 {
    (reference.compute_s + reference.sync_s - slowest_compute).max(0.0)
}

/// The reference function: the one with the longest history, the lowest-numbered among equals.
fn reference(outcome: &JobOutcome) -> Option<&FunctionReport> {
    outcome.reports.iter().rev().max_by_key(|r| r.iterations.len())
}

/// Per iteration: the slowest function's compute, and the sync time (a restarted function
/// reports only the iterations since it rejoined, so iterations are found by number, never
/// by position).
///
/// `elapsed_s`: when the reference function had the model after the iteration, from the start
/// of its iterations (the sum of its own iteration times so far).
pub fn iteration_timings(outcome: &JobOutcome) -> Vec<Value> {
    let full = reference(outcome);
    let mut elapsed = 0.0;
    (0..outcome.iterations)
        .map(|t| {
            let of = |r: &FunctionReport| r.iteration(t).cloned();
            let compute = outcome.reports.iter().filter_map(of).map(|i| i.compute_s).fold(0.0, f64::max);
            let r0 = full.and_then(of).unwrap_or_default();
            let sync = iteration_sync(&r0, compute);
            elapsed += r0.compute_s + r0.sync_s;
            let mut it = json!({
                "iteration": t, "compute_s": compute, "sync_s": sync, "loss": r0.loss, "elapsed_s": elapsed,
            });
            if let Some(s) = &r0.staleness {
                it["staleness"] = json!(s);
            }
            it
        })
        .collect()
}

/// When the loss first was at most `target` (`ifp run --target-loss`): the iteration whose
/// entering model had it, and `elapsed_s` at its end ([`iteration_timings`]); nulls if never.
pub fn time_to_target(result: &Value, target: f64) -> Value {
    let its = result["timing"]["iterations"].as_array().map(Vec::as_slice).unwrap_or_default();
    match its.iter().find(|i| i["loss"].as_f64().is_some_and(|l| l <= target)) {
        Some(i) => json!({ "loss": target, "iteration": i["iteration"], "elapsed_s": i["elapsed_s"] }),
        None => json!({ "loss": target, "iteration": null, "elapsed_s": null }),
    }
}

/// A stale-synchronous run's summary (`None`: synchronous): the bound, the oldest partial
/// any round summed, and how many rounds reused stale partials.
pub fn staleness_json(cfg: &JobPlan, o: &JobOutcome) -> Option<Value> {
    if cfg.staleness == 0 {
        return None;
    }
    let seen: Vec<_> = reference(o)?.iterations.iter().filter_map(|i| i.staleness.as_ref()).collect();
    Some(json!({
        "bound": cfg.staleness,
        "rounds": seen.len(),
        "max": seen.iter().map(|s| s.max).max().unwrap_or(0),
        "rounds_with_stale": seen.iter().filter(|s| s.max > 0).count(),
    }))
}

/// Where the wall time of a run went (see the module doc); the parts add up to the total.
#[derive(Clone, Copy, Debug, Default)]
pub struct Phases {
    pub kernel_s: f64,
    pub data_s: f64,
    pub init_s: f64,
    pub load_s: f64,
    pub compute_s: f64,
    pub sync_s: f64,
    pub other_s: f64,
    pub write_s: f64,
}

impl Phases {
    /// The phases of a run whose kernel and data phases took `kernel_s` and `data_s`, from the
    /// outcome (`init_s`, and `total_s`: init plus the functions' run).
    pub fn of(kernel_s: f64, data_s: f64, o: &JobOutcome) -> Self {
        let its = iteration_timings(o);
        let sum = |k: &str| its.iter().map(|i| i[k].as_f64().unwrap_or(0.0)).sum::<f64>();
        let (compute_s, sync_s) = (sum("compute_s"), sum("sync_s"));
        let load_s = reference(o).map_or(0.0, |r| r.load_s);
        let functions_s = o.total_s - o.init_s;
        // The rest of the functions' run; never negative, so the parts stay within the total.
        let other_s = (functions_s - load_s - compute_s - sync_s).max(0.0);
        let over = load_s + compute_s + sync_s + other_s - functions_s;
        // Remote clocks (processes, Lambda) can exceed the driver's by a hair: take it from sync.
        let sync_s = (sync_s - over.max(0.0)).max(0.0);
        Self { kernel_s, data_s, init_s: o.init_s, load_s, compute_s, sync_s, other_s, write_s: 0.0 }
    }

    pub fn total_s(&self) -> f64 {
        self.kernel_s
            + self.data_s
            + self.init_s
            + self.load_s
            + self.compute_s
            + self.sync_s
            + self.other_s
            + self.write_s
    }

    pub fn json(&self) -> Value {
        json!({
            "kernel_s": self.kernel_s, "data_s": self.data_s, "init_s": self.init_s, "load_s": self.load_s,
            "compute_s": self.compute_s, "sync_s": self.sync_s, "other_s": self.other_s,
        })
    }
}

pub fn result_json(algorithm: &str, data_name: &str, cfg: &JobPlan, o: &JobOutcome) -> Value {
    let model: Map<String, Value> = o.fields.iter().map(|f| (f.name.clone(), field_json(f))).collect();
    let params: Map<String, Value> = cfg.params.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    let load_s = o.reports.iter().map(|r| r.load_s).fold(0.0, f64::max);
    let mut v = json!({
        "algorithm": algorithm,
        "job": cfg.job,
        "data": data_name,
        "iterations": o.iterations,
        "converged": o.converged,
        "loss": o.losses.last().copied().unwrap_or(f64::NAN),
        "losses": o.losses,
        "model": model,
        "config": {
            "workers": cfg.functions,
            "functions": cfg.functions,
            "inner": o.reports[0].inner,
            "rows": o.shape.total_rows,
            "cols": o.shape.cols,
            "labelled": o.shape.has_labels,
            "max_iter": cfg.max_iter,
            "params": params,
        },
        "timing": {
            "init_s": o.init_s,
            "load_s": load_s,
            "total_s": o.total_s,
            "iterations": iteration_timings(o),
        },
        "workers": o.reports.iter().map(|r| json!({
            "worker": r.function, "function": r.function, "rows": r.rows, "inner": r.inner, "load_s": r.load_s, "total_s": r.total_s,
            "round_trips": r.sync.round_trips, "wait_s": r.sync.wait_s,
            "bytes_fetched": r.bytes_fetched, "share_bytes": r.share_bytes,
            "joined_at": r.joined_at, "attempts": r.attempts.len() + 1,
        })).collect::<Vec<_>>(),
        // Every attempt that did not end its function: lost and started again, or left
        // before its time limit and invoked again (see `ifp run --max-attempts`).
        "attempts": o.reports.iter().flat_map(|r| r.attempts.iter().map(move |a| json!({
            "function": r.function, "attempt": a.attempt, "joined_at": a.joined_at,
            "iterations": a.iterations, "outcome": a.outcome, "reason": a.reason, "ended_s": a.ended_s,
        }))).collect::<Vec<_>>(),
    });
    if let Some(s) = staleness_json(cfg, o) {
        v["staleness"] = s;
    }
    v
}

/// The summary: the outcome, where the time went (parts that add up to the total), and the
/// sync store's round trips.
pub fn print_summary(result: &Value, o: &JobOutcome, p: &Phases) {
    let n = o.iterations.max(1) as f64;
    println!(
        "{}: {} iterations ({}), loss {:.6e}; {} functions x {} inner, {} rows x {} cols",
        result["algorithm"].as_str().unwrap_or("?"),
        o.iterations,
        if o.converged { "converged" } else { "max-iter reached" },
        result["loss"].as_f64().unwrap_or(f64::NAN),
        result["config"]["functions"],
        result["config"]["inner"],
        o.shape.total_rows,
        o.shape.cols,
    );
    println!(
        "time: {:.3} s = kernel {:.3} + data {:.3} + init {:.3} + load {:.3} + compute {:.3} + sync {:.3} + start-up and other {:.3} + write {:.3}",
        p.total_s(), p.kernel_s, p.data_s, p.init_s, p.load_s, p.compute_s, p.sync_s, p.other_s, p.write_s,
    );
    if let Some(t) = result["time_to_target"].as_object() {
        match t["elapsed_s"].as_f64() {
            Some(s) => println!(
                "target loss {}: reached at iteration {} after {s:.3} s of iterations",
                t["loss"], t["iteration"]
            ),
            None => println!("target loss {}: not reached", t["loss"]),
        }
    }
    if let Some(st) = result["staleness"].as_object() {
        println!(
            "staleness (bound {}): {} of {} rounds summed stale partials, the oldest {} rounds old",
            st["bound"], st["rounds_with_stale"], st["rounds"], st["max"]
        );
    }
    let s = &result["sync"];
    let max_trips = s["workers"].as_array().map_or(0.0, |ws| {
        ws.iter().map(|w| w["round_trips_per_iteration"].as_f64().unwrap_or(0.0)).fold(0.0, f64::max)
    });
    let max_bytes = s["workers"].as_array().map_or(0.0, |ws| {
        ws.iter().map(|w| w["partial_bytes_per_iteration"].as_f64().unwrap_or(0.0)).fold(0.0, f64::max)
    });
    println!(
        "per iteration: compute {:.2} ms, sync {:.3} ms ({}{} store, {:.2} round trips and {} of partials per function)",
        p.compute_s / n * 1e3,
        p.sync_s / n * 1e3,
        s["store"].as_str().unwrap_or("?"),
        s["url"].as_str().map(|u| format!(" {u}")).unwrap_or_default(),
        max_trips,
        human_bytes(max_bytes),
    );
}

/// `n` bytes for people: B, KB, MB (powers of 1000, one decimal above B).
pub fn human_bytes(n: f64) -> String {
    match n {
        n if n >= 1e6 => format!("{:.1} MB", n / 1e6),
        n if n >= 1e3 => format!("{:.1} KB", n / 1e3),
        n => format!("{n:.0} B"),
    }
}

/// The `sync` section of the result: per iteration, every function's own time from its
/// partial to the next model and round trips; per function, the totals.
pub fn sync_json(store: &str, url: Option<&str>, o: &JobOutcome) -> Value {
    let iterations: Vec<Value> = (0..o.iterations)
        .map(|t| {
            let of = |r: &FunctionReport| r.iteration(t).cloned().unwrap_or_default();
            let wait: Vec<f64> = o.reports.iter().map(|r| of(r).sync_s).collect();
            let trips: Vec<u64> = o.reports.iter().map(|r| of(r).round_trips).collect();
            let bytes: Vec<u64> = o.reports.iter().map(|r| of(r).partial_bytes).collect();
            json!({ "iteration": t, "partial_to_model_s": wait, "round_trips": trips, "partial_bytes": bytes })
        })
        .collect();
    let n = o.iterations.max(1) as f64;
    let workers: Vec<Value> = o
        .reports
        .iter()
        .map(|r| {
            let in_iterations: u64 = r.iterations.iter().map(|i| i.round_trips).sum();
            let bytes: u64 = r.iterations.iter().map(|i| i.partial_bytes).sum();
            json!({
                "worker": r.function,
                "function": r.function,
                "round_trips": r.sync.round_trips,
                "round_trips_per_iteration": in_iterations as f64 / n,
                "partial_bytes_per_iteration": bytes as f64 / n,
                "wait_s": r.sync.wait_s,
                "partial_to_model_s_per_iteration": r.iterations.iter().map(|i| i.sync_s).sum::<f64>() / n,
            })
        })
        .collect();
    let mut v = json!({ "store": store, "iterations": iterations, "workers": workers });
    if let Some(u) = url {
        v["url"] = json!(redact(u));
    }
    v
}
