//! The result of `ifp run` as JSON (`--out`) and as the summary printed at the end: the
//! model, iterations, configuration, timings, every function's load and sync figures.

use serde_json::{json, Map, Value};

use ifp_host::job::{JobOutcome, JobPlan};
use ifp_host::kernel::ModelField;
use ifp_host::sync::redis::redact;
use ifp_host::FunctionReport;

/// A model field as JSON: a number, a list, or a list of rows.
fn field_json(f: &ModelField) -> Value {
    match f.shape.as_slice() {
        [] => json!(f.values.first().copied().unwrap_or(f64::NAN)),
        [_] => json!(f.values),
        [_, c, ..] => json!(f.values.chunks((*c).max(1) as usize).collect::<Vec<_>>()),
    }
}

/// Per iteration: the slowest function's compute, and the rest of the iteration time of the
/// function with the longest history (a restarted function reports only the iterations
/// since it rejoined, so iterations are found by number, never by position).
pub fn iteration_timings(outcome: &JobOutcome) -> Vec<Value> {
    let full = outcome.reports.iter().rev().max_by_key(|r| r.iterations.len());
    (0..outcome.iterations)
        .map(|t| {
            let of = |r: &FunctionReport| r.iteration(t).cloned();
            let compute = outcome.reports.iter().filter_map(of).map(|i| i.compute_s).fold(0.0, f64::max);
            let r0 = full.and_then(of).unwrap_or_default();
            let sync = (r0.compute_s + r0.sync_s - compute).max(0.0);
            json!({ "iteration": t, "compute_s": compute, "sync_s": sync, "loss": r0.loss })
        })
        .collect()
}

pub fn result_json(algorithm: &str, data_name: &str, cfg: &JobPlan, o: &JobOutcome) -> Value {
    let model: Map<String, Value> = o.fields.iter().map(|f| (f.name.clone(), field_json(f))).collect();
    let params: Map<String, Value> = cfg.params.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    let load_s = o.reports.iter().map(|r| r.load_s).fold(0.0, f64::max);
    json!({
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
    })
}

pub fn print_summary(result: &Value, o: &JobOutcome) {
    let it = &result["timing"]["iterations"];
    let n = it.as_array().map_or(0, |a| a.len()).max(1) as f64;
    let sum = |key: &str| it.as_array().map_or(0.0, |a| a.iter().map(|v| v[key].as_f64().unwrap_or(0.0)).sum::<f64>());
    println!(
        "{}: {} iterations ({}), loss {:.6e}; {} workers x {} inner, {} rows x {} cols",
        result["algorithm"].as_str().unwrap_or("?"),
        o.iterations,
        if o.converged { "converged" } else { "max-iter reached" },
        result["loss"].as_f64().unwrap_or(f64::NAN),
        result["config"]["workers"],
        result["config"]["inner"],
        o.shape.total_rows,
        o.shape.cols,
    );
    println!(
        "time: load {:.3} s, total {:.3} s; per iteration: compute {:.2} ms, sync {:.3} ms",
        result["timing"]["load_s"].as_f64().unwrap_or(0.0),
        o.total_s,
        sum("compute_s") / n * 1e3,
        sum("sync_s") / n * 1e3,
    );
    let s = &result["sync"];
    if let Some(ws) = s["workers"].as_array() {
        let mean = |key: &str| ws.iter().map(|w| w[key].as_f64().unwrap_or(0.0)).sum::<f64>() / ws.len().max(1) as f64;
        let max_trips = ws.iter().map(|w| w["round_trips_per_iteration"].as_f64().unwrap_or(0.0)).fold(0.0, f64::max);
        println!(
            "sync ({}{}): {:.3} ms per iteration (mean over workers), {:.2} round trips per worker per iteration (max)",
            s["store"].as_str().unwrap_or("?"),
            s["url"].as_str().map(|u| format!(" {u}")).unwrap_or_default(),
            mean("sync_s_per_iteration") * 1e3,
            max_trips,
        );
    }
}

/// The `sync` section of the result: per iteration, every worker's sync time and round
/// trips; per worker, the totals.
pub fn sync_json(store: &str, url: Option<&str>, o: &JobOutcome) -> Value {
    let iterations: Vec<Value> = (0..o.iterations)
        .map(|t| {
            let of = |r: &FunctionReport| r.iteration(t).cloned().unwrap_or_default();
            let sync: Vec<f64> = o.reports.iter().map(|r| of(r).sync_s).collect();
            let trips: Vec<u64> = o.reports.iter().map(|r| of(r).round_trips).collect();
            json!({ "iteration": t, "sync_s": sync, "round_trips": trips })
        })
        .collect();
    let n = o.iterations.max(1) as f64;
    let workers: Vec<Value> = o
        .reports
        .iter()
        .map(|r| {
            let in_iterations: u64 = r.iterations.iter().map(|i| i.round_trips).sum();
            json!({
                "worker": r.function,
                "function": r.function,
                "round_trips": r.sync.round_trips,
                "round_trips_per_iteration": in_iterations as f64 / n,
                "wait_s": r.sync.wait_s,
                "sync_s_per_iteration": r.iterations.iter().map(|i| i.sync_s).sum::<f64>() / n,
            })
        })
        .collect();
    let mut v = json!({ "store": store, "iterations": iterations, "workers": workers });
    if let Some(u) = url {
        v["url"] = json!(redact(u));
    }
    v
}
