//! `ifp sweep --model`: the model's settings checked from the flags before anything runs,
//! then the measured rows turned into the model's observations, fitted, checked against
//! them, used to predict larger configurations, printed, and written (`model.csv`,
//! `model-check.csv`, `model.json`, `model-time.svg`, `model-cost.svg`).

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};

use super::grid::Config;
use super::report::Row;
use super::runner::Measure;
use super::SweepArgs;
use crate::model;
use crate::output;
use crate::pricing::{Prices, MB_PER_VCPU};

/// The model's inputs checked before anything runs.
pub struct ModelPlan {
    functions: Vec<u32>,
    inner: Vec<u32>,
    data_gb: Option<f64>,
    iterations: Option<u32>,
    s3_bytes_per_s: Option<f64>,
    /// `--simulate-sync`: function counts, the Redis and the added latency per request.
    simulate: Vec<u32>,
    redis: Option<String>,
    latency: Duration,
}

/// Iterations of each `--simulate-sync` simulation (their median is compared).
const SIMULATED_ITERATIONS: u32 = 10;

/// The model's plan from `--model*` and `--s3-mbps`, or `None` without `--model`.
pub fn model_plan(a: &SweepArgs, grid: &[Config]) -> Result<Option<ModelPlan>> {
    if !a.model {
        return Ok(None);
    }
    if !grid.iter().any(|c| c.inner == 1) {
        bail!("--model needs a configuration with 1 inner worker in the grid (it measures the per-vCPU throughput there), e.g. add 1x1");
    }
    let positive = |flag: &str, v: Option<f64>| -> Result<Option<f64>> {
        match v {
            Some(x) if !(x.is_finite() && x > 0.0) => bail!("{flag} must be a positive number, got {x}"),
            v => Ok(v),
        }
    };
    Ok(Some(ModelPlan {
        functions: model::parse_counts("--model-functions", a.model_functions.as_deref().unwrap_or("50,100,200,400"))?,
        inner: model::parse_counts("--model-inner", a.model_inner.as_deref().unwrap_or("1,2,3,4,5,6"))?,
        data_gb: positive("--model-data-gb", a.model_data_gb)?,
        iterations: a.model_iterations,
        s3_bytes_per_s: positive("--s3-mbps", a.s3_mbps)?.map(|m| m * 1e6),
        simulate: match &a.simulate_sync {
            Some(list) => model::parse_counts("--simulate-sync", list)?,
            None => Vec::new(),
        },
        redis: a.redis.clone(),
        latency: Duration::from_secs_f64(a.latency_ms.unwrap_or(0.0) / 1e3),
    }))
}

/// Fits, checks, predicts, prints and writes the model into `out_dir`.
pub fn run_model(
    out_dir: &Path,
    mp: &ModelPlan,
    results: &[(Config, Vec<Measure>)],
    rows: &[Row],
    probe: model::StoreProbe,
    prices: Prices,
    title: &str,
) -> Result<()> {
    let obs: Vec<model::Observation> = results
        .iter()
        .zip(rows)
        .map(|((c, ms), r)| model::Observation {
            functions: c.workers,
            inner: c.inner,
            rows: ms[0].rows,
            batch_rows: ms[0].batch_rows,
            bytes_per_row: ms[0].bytes_per_row,
            iterations: r.iterations,
            total_s: r.total_s,
            load_s: r.load_s,
            compute_s: r.compute_ms / 1e3,
            sync_s: r.sync_ms / 1e3,
            round_trips: r.round_trips_per_iter,
        })
        .collect();
    let params = model::Params::fit(&obs, probe, mp.s3_bytes_per_s).context("--model")?;
    let check = params.check(&obs, prices);
    let data_rows = match mp.data_gb {
        Some(gb) => (gb * 1e9 / params.bytes_per_row).round() as u64,
        None => obs[0].rows,
    };
    let iterations = match (mp.iterations, obs[0].batch_rows) {
        (Some(i), _) => i,
        // Mini-batch: the measured epochs over the predicted data (its batches per epoch).
        (None, Some(b)) => {
            let per_epoch = |rows| ifp_kernel_math::batch::batches_per_epoch(rows, b);
            let epochs = obs[0].iterations as u64 / per_epoch(obs[0].rows).max(1);
            u32::try_from(epochs * per_epoch(data_rows)).unwrap_or(u32::MAX)
        }
        (None, None) => obs[0].iterations,
    };
    let mut predictions = Vec::new();
    for &m in &mp.inner {
        for &f in &mp.functions {
            predictions.push(params.predict(f, m, data_rows, iterations, prices));
        }
    }
    let data_desc = format!(
        "{:.2} GB = {} rows of {} B{}, {} iterations{}",
        data_rows as f64 * params.bytes_per_row / 1e9,
        data_rows,
        params.bytes_per_row,
        if mp.data_gb.is_some() { " (--model-data-gb)" } else { " (the measured data)" },
        iterations,
        match (mp.iterations, obs[0].batch_rows) {
            (Some(_), _) => " (--model-iterations)".to_string(),
            (None, Some(b)) => format!(" (the measured epochs, of mini-batches of {b} rows)"),
            (None, None) => " (as measured)".to_string(),
        },
    );
    let worst = model::worst(&check).context("--model: no measured configuration")?;
    println!();
    println!("MODEL (predicted, not measured): {data_desc}");
    println!("parameters, fitted from the measured configurations above:");
    print!("{}", params.describe());
    println!();
    println!("{}", model::markdown(&predictions));
    println!("model check: the model against each measured configuration (in-sample: fitted from these runs)");
    println!();
    println!("{}", model::check_markdown(&check));
    println!(
        "worst model error: {:+.1}% of total time on {} (per iteration: worst {:+.1}%)",
        worst.total_error * 100.0,
        worst.config,
        check.iter().map(|c| c.iter_error).max_by(|x, y| x.abs().total_cmp(&y.abs())).unwrap_or(0.0) * 100.0
    );
    let sync_check = simulated_check(mp, &params)?;
    model::write_csv(out_dir, &predictions, &check)?;
    model::write_charts(out_dir, &predictions, title)?;
    let json = serde_json::json!({
        "kind": "model",
        "label": "predicted by the analytic model fitted to the measured sweep, not measured",
        "formulas": {
            "compute_s": "rows / (F*M) / (rows_per_s_per_vcpu * eff(M)), eff(M) = 1 / (1 + inner_sigma*(M-1)); rows: batch_rows for a mini-batch job",
            "sync_s": "round_trips*rtt_s + F*(round_trips*service_s + per_function_sync_s)",
            "load_s": "rows/F * bytes_per_row / load_bytes_per_s",
            "total_s": "overhead_s + load_s + iterations*(compute_s + sync_s)",
            "cost_usd": format!("F * (total_s * memory GB * price per GB-s + price per request), memory = {MB_PER_VCPU} MB per vCPU"),
        },
        "data": data_desc,
        "rows": data_rows,
        "iterations": iterations,
        "parameters": params,
        "prices": prices,
        "predictions": predictions,
        "check": check,
        "worst_error": { "config": worst.config, "total_error": worst.total_error },
        "sync_check_out_of_sample": sync_check,
    });
    output::write_atomic(&out_dir.join("model.json"), |w| Ok(serde_json::to_writer_pretty(&mut *w, &json)?))?;
    if !sync_check.is_empty() {
        crate::model_check::write_csv(out_dir, &sync_check)?;
        println!("wrote {}/model-check-sync.csv", out_dir.display());
    }
    println!("wrote {}/model.csv, model-check.csv, model.json, model-time.svg, model-cost.svg", out_dir.display());
    Ok(())
}

/// `--simulate-sync`: simulates each function count against the sweep's Redis and prints
/// the model's sync term against it (out of sample: the model never saw these).
fn simulated_check(mp: &ModelPlan, params: &model::Params) -> Result<Vec<crate::model_check::SyncCheckRow>> {
    let Some(url) = mp.redis.as_deref().filter(|_| !mp.simulate.is_empty()) else { return Ok(Vec::new()) };
    let mut simulated = Vec::new();
    for &f in &mp.simulate {
        let s = ifp_host::sync::simulate::simulate(url, f, SIMULATED_ITERATIONS, mp.latency)
            .with_context(|| format!("--simulate-sync: simulating {f} functions"))?;
        simulated.push((f, s.sync_ms / 1e3));
    }
    let rows = crate::model_check::sync_check(params, &simulated);
    println!(
        "model check out of sample: the sync term against {} simulated functions on the same Redis ({} ms added per request, median of {SIMULATED_ITERATIONS} iterations)",
        mp.simulate.iter().map(u32::to_string).collect::<Vec<_>>().join(", "),
        mp.latency.as_secs_f64() * 1e3
    );
    println!();
    println!("{}", crate::model_check::markdown(&rows));
    Ok(rows)
}
