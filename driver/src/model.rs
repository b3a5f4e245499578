//! `ifp sweep --model`: a small analytic model of one job's time and cost, fitted to the
//! configurations the sweep measured, that predicts configurations larger than this machine
//! (hundreds of functions, gigabytes of data). Everything it prints is labelled "model".
//!
//! The model, per configuration of `F` functions with `M` inner workers (vCPUs) each, over
//! `N` rows of `B` bytes (f32 features and label, as held in memory) and `I` iterations:
//!
//! ```text
//! compute(F, M) = N / (F·M) / (T1 · eff(M))            eff(M) = 1 / (1 + σ·(M − 1))
//! sync(F)       = r·RTT + F·(r·s + γ)
//! load(F)       = (N / F)·B / bandwidth
//! total(F, M)   = overhead + load + I·(compute + sync)
//! cost(F, M)    = F · (total · memory(M) GB · price per GB-s + price per request)
//! ```
//!
//! - `T1`, rows per second of one inner worker: median over the measured `F × 1`
//!   configurations of (rows per function) / (slowest function's compute per iteration).
//! - `σ`, the loss of inner-worker scaling (an Amdahl-style law): from each measured `M > 1`
//!   configuration, `eff = T(M) / T1` gives `σ = (1/eff − 1)/(M − 1)`; the mean, at least 0.
//!   Beyond the largest measured `M` the law is extrapolated (the output says so).
//! - `r`, round trips per function per iteration: the mean measured (the protocol's 2).
//! - `RTT`: the median of `PING`s against the Redis the sweep used (through the delay proxy
//!   when `--latency-ms` is on); `s`: Redis's own service time per request, from the
//!   server's `INFO commandstats` before and after the sweep. Redis serves requests one at a
//!   time, so every function's `r` requests queue behind each other: `F·r·s`.
//! - `γ`, the rest of the per-function sync cost (the reducer's serial fetch and merge of one
//!   more partial, waiting for one more function): least squares over the measured
//!   configurations of `sync − r·RTT − F·r·s = F·γ`, at least 0.
//! - `bandwidth`: median of (bytes per function) / (slowest load) over the measured runs, or
//!   `--s3-mbps`, an assumption the output labels as such.
//! - `overhead`: median of `total − load − I·(compute + sync)` over the measured
//!   configurations (process or function start, the driver's initial model).
//!
//! The check: the model predicts every measured configuration and the output shows the
//! relative error `(model − measured) / measured` and the worst one. The parameters come
//! from those same runs, so this is an in-sample check: it shows how well the model's shape
//! fits, not how well it extrapolates to 400 functions.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Result};
use serde::Serialize;

use crate::output;
use crate::pricing::{cost_usd, lambda_memory_mb, Prices, MAX_VCPUS};

/// Lambda's longest invocation, seconds.
pub const LAMBDA_LIMIT_S: f64 = 900.0;

/// One measured configuration, summarised (medians over its repeats).
#[derive(Clone, Debug, Serialize)]
pub struct Observation {
    pub functions: u32,
    pub inner: u32,
    pub rows: u64,
    /// Rows each iteration steps in a mini-batch run; None: every row (full batch).
    pub batch_rows: Option<u64>,
    /// Bytes per row in memory (f32 features and label).
    pub bytes_per_row: f64,
    pub iterations: u32,
    pub total_s: f64,
    /// Slowest function's load.
    pub load_s: f64,
    /// Per iteration: slowest function's compute, and the rest.
    pub compute_s: f64,
    pub sync_s: f64,
    /// Round trips per function per iteration.
    pub round_trips: f64,
}

impl Observation {
    pub fn label(&self) -> String {
        format!("{}x{}", self.functions, self.inner)
    }
    fn rows_per_inner_per_s(&self) -> f64 {
        self.batch_rows.unwrap_or(self.rows) as f64 / (self.functions * self.inner) as f64 / self.compute_s
    }
}

/// What was measured about the state store outside the job runs.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StoreProbe {
    /// Median PING round trip, seconds (the route the functions used).
    pub rtt_s: f64,
    /// Median PING straight to Redis, when the functions went through the delay proxy.
    pub direct_rtt_s: Option<f64>,
    /// Redis's mean service time per request during the sweep, seconds.
    pub service_s: f64,
    /// Where these come from, in words.
    pub source: String,
}

/// The fitted parameters, each with what it is and where it came from.
#[derive(Clone, Debug, Serialize)]
pub struct Params {
    /// T1: rows per second of one inner worker.
    pub rows_per_s_per_vcpu: f64,
    /// σ of eff(M) = 1 / (1 + σ (M − 1)).
    pub inner_sigma: f64,
    /// The largest inner-worker count measured; eff beyond it is extrapolated.
    pub max_measured_inner: u32,
    /// r: round trips per function per iteration.
    pub round_trips: f64,
    pub rtt_s: f64,
    pub service_s: f64,
    /// γ: the rest of the per-function sync cost per iteration, seconds.
    pub per_function_sync_s: f64,
    /// The γ fit's uncertainty: the residuals' standard deviation (seconds; `None` with a
    /// single measured configuration), their degrees of freedom and `Σ F²`, which give the
    /// prediction interval of the sync term ([`Params::sync_interval_s`]).
    pub sync_residual_sd_s: Option<f64>,
    pub sync_dof: u32,
    pub sync_sum_f2: f64,
    /// Load bandwidth per function, bytes per second.
    pub load_bytes_per_s: f64,
    /// "measured" or "assumption (--s3-mbps N)".
    pub load_source: String,
    /// The load bandwidth the measured runs had (what [`Params::check`] uses, since an
    /// `--s3-mbps` assumption describes the predicted deployment, not this machine's runs).
    pub measured_load_bytes_per_s: f64,
    pub overhead_s: f64,
    pub bytes_per_row: f64,
    /// Rows per iteration of a mini-batch job (its batch size, whatever the data's size);
    /// None: every row.
    pub batch_rows: Option<u64>,
    pub store: StoreProbe,
}

/// One configuration as the model predicts it.
#[derive(Clone, Debug, Serialize)]
pub struct Prediction {
    pub config: String,
    pub functions: u32,
    pub inner: u32,
    pub vcpus: u32,
    pub memory_mb: u32,
    pub rows: u64,
    pub shard_mb: f64,
    pub iterations: u32,
    pub model_load_s: f64,
    pub model_compute_ms: f64,
    pub model_sync_ms: f64,
    /// The 95 % prediction interval of the sync term ([`Params::sync_interval_s`]), and what
    /// it makes of the total and the cost (the other terms taken as fitted).
    pub model_sync_ms_low: f64,
    pub model_sync_ms_high: f64,
    pub model_iter_ms: f64,
    pub model_total_s: f64,
    pub model_total_s_low: f64,
    pub model_total_s_high: f64,
    pub model_cost_usd: f64,
    pub model_cost_usd_low: f64,
    pub model_cost_usd_high: f64,
    /// Inner workers beyond the largest measured: eff(M) extrapolated.
    pub extrapolated_inner: bool,
    /// Whether one invocation stays within Lambda's 15 minutes.
    pub within_lambda_limit: bool,
}

/// Predicted against measured, for one measured configuration.
#[derive(Clone, Debug, Serialize)]
pub struct CheckRow {
    pub config: String,
    pub measured_total_s: f64,
    pub model_total_s: f64,
    pub total_error: f64,
    pub measured_iter_ms: f64,
    pub model_iter_ms: f64,
    pub iter_error: f64,
}

/// The two-sided 95 % quantile of Student's t with `dof` degrees of freedom
/// (`scipy.stats.t.ppf(0.975, dof)`, 3 decimals; the normal's 1.960 beyond 30).
pub fn t_975(dof: u32) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
    ];
    match dof {
        0 => f64::NAN,
        d if d <= 30 => T[d as usize - 1],
        _ => 1.960,
    }
}

/// The median of `v` (the mean of the middle two for an even count; NaN for none).
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

impl Params {
    /// Fits the model to the measured configurations; `s3_bytes_per_s` replaces the measured
    /// load bandwidth (an assumption).
    pub fn fit(obs: &[Observation], store: StoreProbe, s3_bytes_per_s: Option<f64>) -> Result<Self> {
        if obs.is_empty() {
            bail!("the model needs at least one measured configuration");
        }
        if let Some(o) = obs.iter().find(|o| !(o.compute_s > 0.0 && o.iterations > 0)) {
            bail!("the model cannot use configuration {}: it measured no compute time", o.label());
        }
        let t1: Vec<f64> = obs.iter().filter(|o| o.inner == 1).map(Observation::rows_per_inner_per_s).collect();
        if t1.is_empty() {
            bail!("the model needs a measured configuration with 1 inner worker (add e.g. 1x1 to --grid)");
        }
        let t1 = median(&t1);
        let sigmas: Vec<f64> = obs
            .iter()
            .filter(|o| o.inner > 1)
            .map(|o| (t1 / o.rows_per_inner_per_s() - 1.0) / (o.inner - 1) as f64)
            .collect();
        let sigma = if sigmas.is_empty() { 0.0 } else { (sigmas.iter().sum::<f64>() / sigmas.len() as f64).max(0.0) };
        let r = obs.iter().map(|o| o.round_trips).sum::<f64>() / obs.len() as f64;
        let (rtt, s) = (store.rtt_s, store.service_s);
        // Least squares of y = F·γ through the origin.
        let (num, den) = obs.iter().fold((0.0, 0.0), |(n, d), o| {
            let f = o.functions as f64;
            let y = o.sync_s - o.round_trips * rtt - f * o.round_trips * s;
            (n + f * y, d + f * f)
        });
        let gamma = (num / den).max(0.0);
        let residuals: f64 = obs
            .iter()
            .map(|o| {
                let f = o.functions as f64;
                (o.sync_s - o.round_trips * rtt - f * o.round_trips * s - f * gamma).powi(2)
            })
            .sum();
        let dof = obs.len() as u32 - 1;
        let bpr = obs[0].bytes_per_row;
        let bws: Vec<f64> = obs
            .iter()
            .filter(|o| o.load_s > 0.0)
            .map(|o| o.rows as f64 / o.functions as f64 * o.bytes_per_row / o.load_s)
            .collect();
        let measured_bw = if bws.is_empty() { None } else { Some(median(&bws)) };
        let (bw, load_source) = match (s3_bytes_per_s, measured_bw) {
            (Some(b), _) => (b, format!("assumption (--s3-mbps {})", b / 1e6)),
            (None, Some(m)) => (m, "measured".to_string()),
            (None, None) => bail!("the model needs a measured load time (every configuration loaded in 0 s)"),
        };
        let overheads: Vec<f64> = obs
            .iter()
            .map(|o| (o.total_s - o.load_s - o.iterations as f64 * (o.compute_s + o.sync_s)).max(0.0))
            .collect();
        Ok(Self {
            rows_per_s_per_vcpu: t1,
            inner_sigma: sigma,
            max_measured_inner: obs.iter().map(|o| o.inner).max().unwrap_or(1),
            round_trips: r,
            rtt_s: rtt,
            service_s: s,
            per_function_sync_s: gamma,
            sync_residual_sd_s: (dof > 0).then(|| (residuals / dof as f64).sqrt()),
            sync_dof: dof,
            sync_sum_f2: den,
            load_bytes_per_s: bw,
            measured_load_bytes_per_s: measured_bw.unwrap_or(bw),
            load_source,
            overhead_s: median(&overheads),
            bytes_per_row: bpr,
            batch_rows: obs[0].batch_rows,
            store,
        })
    }

    /// eff(M) = 1 / (1 + σ (M − 1)).
    pub fn efficiency(&self, inner: u32) -> f64 {
        1.0 / (1.0 + self.inner_sigma * (inner.max(1) - 1) as f64)
    }

    /// Per-iteration compute of `functions × inner` over `rows`, seconds.
    pub fn compute_s(&self, functions: u32, inner: u32, rows: u64) -> f64 {
        rows as f64 / (functions as f64 * inner as f64) / (self.rows_per_s_per_vcpu * self.efficiency(inner))
    }

    /// Per-iteration sync of `functions`, seconds.
    pub fn sync_s(&self, functions: u32) -> f64 {
        let f = functions as f64;
        self.round_trips * self.rtt_s + f * (self.round_trips * self.service_s + self.per_function_sync_s)
    }

    /// The 95 % prediction interval of the sync term at `functions` (seconds, low end at
    /// least 0): `sync ± t(0.975, n−1) · sd · √(1 + F²/ΣF²)`, the interval of a least-squares
    /// line through the origin. NaN bounds with one measured configuration (no residual).
    pub fn sync_interval_s(&self, functions: u32) -> (f64, f64) {
        let mid = self.sync_s(functions);
        let Some(sd) = self.sync_residual_sd_s else { return (f64::NAN, f64::NAN) };
        let f = functions as f64;
        let half = t_975(self.sync_dof) * sd * (1.0 + f * f / self.sync_sum_f2).sqrt();
        ((mid - half).max(0.0), mid + half)
    }

    /// Load of one function's shard, seconds.
    pub fn load_s(&self, functions: u32, rows: u64) -> f64 {
        rows as f64 / functions as f64 * self.bytes_per_row / self.load_bytes_per_s
    }

    pub fn predict(&self, functions: u32, inner: u32, rows: u64, iterations: u32, prices: Prices) -> Prediction {
        let compute = self.compute_s(functions, inner, self.batch_rows.map_or(rows, |b| b.min(rows)));
        let sync = self.sync_s(functions);
        let load = self.load_s(functions, rows);
        let total = self.overhead_s + load + iterations as f64 * (compute + sync);
        let memory_mb = lambda_memory_mb(inner);
        let (sync_low, sync_high) = self.sync_interval_s(functions);
        let total_at = |sync: f64| total + iterations as f64 * (sync - self.sync_s(functions));
        let cost_at =
            |t: f64| if t.is_nan() { f64::NAN } else { cost_usd(&vec![t; functions as usize], memory_mb, prices) };
        Prediction {
            config: format!("{functions}x{inner}"),
            functions,
            inner,
            vcpus: functions.saturating_mul(inner),
            memory_mb,
            rows,
            shard_mb: rows as f64 / functions as f64 * self.bytes_per_row / 1e6,
            iterations,
            model_load_s: load,
            model_compute_ms: compute * 1e3,
            model_sync_ms: sync * 1e3,
            model_sync_ms_low: sync_low * 1e3,
            model_sync_ms_high: sync_high * 1e3,
            model_iter_ms: (compute + sync) * 1e3,
            model_total_s: total,
            model_total_s_low: total_at(sync_low),
            model_total_s_high: total_at(sync_high),
            model_cost_usd: cost_usd(&vec![total; functions as usize], memory_mb, prices),
            model_cost_usd_low: cost_at(total_at(sync_low)),
            model_cost_usd_high: cost_at(total_at(sync_high)),
            extrapolated_inner: inner > self.max_measured_inner,
            within_lambda_limit: total <= LAMBDA_LIMIT_S,
        }
    }

    /// The model against every measured configuration, with the load bandwidth they had.
    pub fn check(&self, obs: &[Observation], prices: Prices) -> Vec<CheckRow> {
        let measured = Params { load_bytes_per_s: self.measured_load_bytes_per_s, ..self.clone() };
        obs.iter()
            .map(|o| {
                let p = measured.predict(o.functions, o.inner, o.rows, o.iterations, prices);
                let measured_iter_ms = (o.compute_s + o.sync_s) * 1e3;
                CheckRow {
                    config: o.label(),
                    measured_total_s: o.total_s,
                    model_total_s: p.model_total_s,
                    total_error: (p.model_total_s - o.total_s) / o.total_s,
                    measured_iter_ms,
                    model_iter_ms: p.model_iter_ms,
                    iter_error: (p.model_iter_ms - measured_iter_ms) / measured_iter_ms,
                }
            })
            .collect()
    }

    /// The parameters in words, one line each, for the screen and the README.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "- throughput: {:.0} rows/s per inner worker (T1, from the measured Fx1 configurations)",
            self.rows_per_s_per_vcpu
        );
        let _ = writeln!(
            s,
            "- inner scaling: eff(M) = 1/(1 + {:.3}(M-1)), measured up to M = {}{}",
            self.inner_sigma,
            self.max_measured_inner,
            if self.max_measured_inner < MAX_VCPUS { ", extrapolated beyond" } else { "" }
        );
        let direct = self.store.direct_rtt_s.map(|d| format!(" ({:.3} ms without the delay proxy)", d * 1e3));
        let _ = writeln!(
            s,
            "- state store: {:.2} round trips/function/iteration, RTT {:.3} ms{}, Redis service {:.1} µs/request ({})",
            self.round_trips,
            self.rtt_s * 1e3,
            direct.unwrap_or_default(),
            self.service_s * 1e6,
            self.store.source
        );
        let _ = writeln!(
            s,
            "- per-function sync (fitted, γ): {:.3} ms per function per iteration",
            self.per_function_sync_s * 1e3
        );
        let _ =
            writeln!(s, "- load bandwidth: {:.1} MB/s per function, {}", self.load_bytes_per_s / 1e6, self.load_source);
        if self.measured_load_bytes_per_s != self.load_bytes_per_s {
            let _ = writeln!(
                s,
                "  (the check below uses the measured runs' own {:.1} MB/s)",
                self.measured_load_bytes_per_s / 1e6
            );
        }
        let _ = writeln!(s, "- fixed overhead per run: {:.3} s (fitted)", self.overhead_s);
        if let Some(b) = self.batch_rows {
            let _ = writeln!(s, "- mini-batch: every iteration steps {b} rows, whatever the data's size");
        }
        s
    }
}

/// The prediction table (every time and cost column says "model").
pub fn markdown(rows: &[Prediction]) -> String {
    let mut s = String::from("| config | vCPUs | memory MB | rows | shard MB | model load s | model compute ms/iter | model sync ms/iter (95%) | model total s (95%) | model cost $ | notes |\n");
    s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for p in rows {
        let mut notes = Vec::new();
        if p.extrapolated_inner {
            notes.push("eff(M) extrapolated");
        }
        if !p.within_lambda_limit {
            notes.push("over Lambda's 15 min");
        }
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.1} | {:.3} | {:.3} | {:.3} ({:.3}–{:.3}) | {:.3} ({:.3}–{:.3}) | {:.3e} | {} |",
            p.config,
            p.vcpus,
            p.memory_mb,
            p.rows,
            p.shard_mb,
            p.model_load_s,
            p.model_compute_ms,
            p.model_sync_ms,
            p.model_sync_ms_low,
            p.model_sync_ms_high,
            p.model_total_s,
            p.model_total_s_low,
            p.model_total_s_high,
            p.model_cost_usd,
            notes.join(", ")
        );
    }
    s
}

/// The check table: model against measured.
pub fn check_markdown(rows: &[CheckRow]) -> String {
    let mut s = String::from(
        "| config | measured total s | model total s | error | measured ms/iter | model ms/iter | error |\n",
    );
    s.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
    for c in rows {
        let _ = writeln!(
            s,
            "| {} | {:.3} | {:.3} | {:+.1}% | {:.3} | {:.3} | {:+.1}% |",
            c.config,
            c.measured_total_s,
            c.model_total_s,
            c.total_error * 100.0,
            c.measured_iter_ms,
            c.model_iter_ms,
            c.iter_error * 100.0
        );
    }
    s
}

/// The measured configuration with the largest |error| of total time.
pub fn worst(rows: &[CheckRow]) -> Option<&CheckRow> {
    rows.iter().max_by(|a, b| a.total_error.abs().total_cmp(&b.total_error.abs()))
}

/// Writes `model.csv` (predictions) and `model-check.csv`.
pub fn write_csv(dir: &Path, rows: &[Prediction], check: &[CheckRow]) -> Result<()> {
    output::write_atomic(&dir.join("model.csv"), |w| {
        let mut c = csv::Writer::from_writer(w);
        rows.iter().try_for_each(|r| c.serialize(r))?;
        c.flush()?;
        Ok(())
    })?;
    output::write_atomic(&dir.join("model-check.csv"), |w| {
        let mut c = csv::Writer::from_writer(w);
        check.iter().try_for_each(|r| c.serialize(r))?;
        c.flush()?;
        Ok(())
    })
}

/// Writes `model-time.svg` and `model-cost.svg`: one line per inner-worker count, functions
/// on the x axis.
pub fn write_charts(dir: &Path, rows: &[Prediction], title: &str) -> Result<()> {
    use plotters::prelude::*;
    let err = |e: &dyn std::fmt::Display| anyhow::anyhow!("{e}");
    let mut inners: Vec<u32> = rows.iter().map(|p| p.inner).collect();
    inners.sort_unstable();
    inners.dedup();
    let xmax = rows.iter().map(|p| p.functions).max().unwrap_or(1) as f64 * 1.05;
    type Chart = (&'static str, String, fn(&Prediction) -> f64);
    let charts: [Chart; 2] = [
        ("model-time.svg", format!("{title}: MODEL total time (s), not measured"), |p| p.model_total_s),
        ("model-cost.svg", format!("{title}: MODEL Lambda cost per run (USD), not measured"), |p| p.model_cost_usd),
    ];
    for (file, caption, f) in charts {
        let ymax = rows.iter().map(f).fold(0.0, f64::max).max(1e-12) * 1.1;
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (720, 420)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| err(&e))?;
            let mut chart = ChartBuilder::on(&root)
                .caption(&caption, ("sans-serif", 18))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(70)
                .build_cartesian_2d(0f64..xmax, 0f64..ymax)
                .map_err(|e| err(&e))?;
            chart.configure_mesh().x_desc("functions").draw().map_err(|e| err(&e))?;
            for (i, m) in inners.iter().enumerate() {
                let color = Palette99::pick(i).to_rgba();
                let pts: Vec<(f64, f64)> =
                    rows.iter().filter(|p| p.inner == *m).map(|p| (p.functions as f64, f(p))).collect();
                chart
                    .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                    .map_err(|e| err(&e))?
                    .label(format!("{m} vCPU per function (model)"))
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], color.stroke_width(2)));
                chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled()))).map_err(|e| err(&e))?;
            }
            chart.configure_series_labels().background_style(WHITE).border_style(BLACK).draw().map_err(|e| err(&e))?;
            root.present().map_err(|e| err(&e))?;
        }
        output::write_atomic(&dir.join(file), |w| Ok(w.write_all(svg.as_bytes())?))?;
    }
    Ok(())
}

/// Parses a comma-separated list of positive integers for `flag`.
pub fn parse_counts(flag: &str, s: &str) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        match item.parse::<u32>() {
            Ok(n) if n > 0 => out.push(n),
            _ => bail!("{flag} entry '{item}' is not a positive integer"),
        }
    }
    if out.is_empty() {
        bail!("{flag} '{s}' lists nothing");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    fn obs(functions: u32, inner: u32, compute_s: f64, sync_s: f64, load_s: f64, total_s: f64) -> Observation {
        Observation {
            functions,
            inner,
            rows: 1_000_000,
            batch_rows: None,
            bytes_per_row: 64.0,
            iterations: 10,
            total_s,
            load_s,
            compute_s,
            sync_s,
            round_trips: 2.0,
        }
    }

    fn store() -> StoreProbe {
        StoreProbe { rtt_s: 0.001, direct_rtt_s: None, service_s: 10e-6, source: "test".into() }
    }

    /// A measured set built by hand: T1 = 1e6 rows/s (1x1 computes 1e6 rows in 1 s, 2x1 5e5
    /// in 0.5 s), 1x2 runs at eff 0.8 (5e5 rows per worker in 0.625 s: σ = 0.25).
    /// sync: 1x1 2.22 ms, 2x1 3.44 ms, 1x2 2.22 ms. With r = 2, RTT = 1 ms, s = 10 µs:
    /// y = sync − 2 ms − F·0.02 ms = 0.2 ms (F=1), 1.4 ms (F=2), 0.2 ms (F=1);
    /// γ = Σ F·y / Σ F² = (0.2 + 2.8 + 0.2) / 6 ms = 0.5333 ms.
    fn measured() -> Vec<Observation> {
        vec![
            obs(1, 1, 1.0, 0.00222, 0.5, 0.3 + 0.5 + 10.0 * 1.00222),
            obs(2, 1, 0.5, 0.00344, 0.25, 0.1 + 0.25 + 10.0 * 0.50344),
            obs(1, 2, 0.625, 0.00222, 0.5, 0.2 + 0.5 + 10.0 * 0.62722),
        ]
    }

    #[test]
    fn fitted_parameters_match_hand_computed_values() {
        let p = Params::fit(&measured(), store(), None).unwrap();
        assert!((p.rows_per_s_per_vcpu - 1e6).abs() < 1e-6, "{}", p.rows_per_s_per_vcpu);
        assert!((p.inner_sigma - 0.25).abs() < 1e-12, "{}", p.inner_sigma);
        assert!((p.efficiency(2) - 0.8).abs() < 1e-12);
        assert!((p.efficiency(5) - 0.5).abs() < 1e-12);
        assert_eq!(p.round_trips, 2.0);
        assert!((p.per_function_sync_s - 3.2e-3 / 6.0).abs() < 1e-12, "{}", p.per_function_sync_s);
        // Bandwidth: 1e6·64 B in 0.5 s, 5e5·64 B in 0.25 s, 1e6·64 B in 0.5 s: 128 MB/s.
        assert!((p.load_bytes_per_s - 128e6).abs() < 1e-3);
        assert_eq!(p.load_source, "measured");
        // Overheads 0.3, 0.1, 0.2: median 0.2.
        assert!((p.overhead_s - 0.2).abs() < 1e-9, "{}", p.overhead_s);
        assert_eq!(p.max_measured_inner, 2);
    }

    #[test]
    fn a_large_configuration_by_hand() {
        let p = Params::fit(&measured(), store(), Some(80e6)).unwrap();
        assert_eq!(p.load_source, "assumption (--s3-mbps 80)");
        // 100 functions × 4 inner over 1.25e8 rows of 64 B (8 GB), 20 iterations.
        let rows = 125_000_000;
        let q = p.predict(100, 4, rows, 20, Prices::X86_64);
        // compute: 1.25e8 / 400 / (1e6 · 1/(1 + 0.25·3)) = 312,500 / 571,428.57 = 0.546875 s
        assert!((q.model_compute_ms - 546.875).abs() < 1e-9, "{}", q.model_compute_ms);
        // sync: 2·1 ms + 100·(2·0.01 ms + 0.5333 ms) = 2 + 55.3333 ms
        let sync = 2.0 + 100.0 * (0.02 + 3.2 / 6.0);
        assert!((q.model_sync_ms - sync).abs() < 1e-9, "{} vs {sync}", q.model_sync_ms);
        // load: 1.25e6 rows · 64 B = 80 MB at 80 MB/s = 1 s
        assert!((q.model_load_s - 1.0).abs() < 1e-12);
        assert!((q.shard_mb - 80.0).abs() < 1e-9);
        let total = 0.2 + 1.0 + 20.0 * (0.546875 + sync / 1e3);
        assert!((q.model_total_s - total).abs() < 1e-9, "{} vs {total}", q.model_total_s);
        assert_eq!(q.memory_mb, 7076); // 4 vCPUs × 1,769 MB
        let cost = cost_usd(&vec![total; 100], q.memory_mb, Prices::X86_64);
        assert!((q.model_cost_usd - cost).abs() < 1e-15);
        assert!(q.extrapolated_inner && q.within_lambda_limit);
        assert!(!p.predict(100, 2, rows, 20, Prices::X86_64).extrapolated_inner);
        assert!(!p.predict(1, 1, rows * 100, 20, Prices::X86_64).within_lambda_limit);
    }

    #[test]
    fn the_check_reports_the_error_against_each_measured_configuration() {
        let m = measured();
        let p = Params::fit(&m, store(), None).unwrap();
        let c = p.check(&m, Prices::X86_64);
        assert_eq!(c.len(), 3);
        // 1x1: compute 1 s exactly; sync 2 + 0.02 + 0.5333 ms = 2.5533 ms vs 2.22 measured.
        let iter = 1000.0 + 2.0 + 0.02 + 3.2 / 6.0;
        assert!((c[0].model_iter_ms - iter).abs() < 1e-9);
        assert!((c[0].iter_error - (iter - 1002.22) / 1002.22).abs() < 1e-12);
        let total = 0.2 + 0.5 + 10.0 * iter / 1e3;
        assert!((c[0].total_error - (total - m[0].total_s) / m[0].total_s).abs() < 1e-12);
        // The worst total error is the largest in absolute value.
        let w = worst(&c).unwrap();
        assert!(c.iter().all(|r| r.total_error.abs() <= w.total_error.abs()));
        let md = check_markdown(&c);
        assert!(md.contains("| 1x1 |") && md.contains("model total s") && md.contains("measured total s"));
        // An assumed S3 bandwidth changes the predictions' load but not the check, which
        // compares with runs that loaded at their own measured bandwidth.
        let assumed = Params::fit(&m, store(), Some(1e6)).unwrap();
        assert!((assumed.load_s(1, 1000) - 1000.0 * assumed.bytes_per_row / 1e6).abs() < 1e-12);
        let c2 = assumed.check(&m, Prices::X86_64);
        for (a, b) in c.iter().zip(&c2) {
            assert_eq!(a.model_total_s, b.model_total_s, "{}", a.config);
        }
    }

    #[test]
    fn fitting_needs_a_one_inner_worker_configuration() {
        let e = Params::fit(&measured()[2..], store(), None).unwrap_err().to_string();
        assert!(e.contains("needs a measured configuration with 1 inner worker"), "{e}");
        assert!(parse_counts("--model-functions", "50,x").unwrap_err().to_string().contains("'x'"));
        assert_eq!(parse_counts("--model-inner", "1, 2,6").unwrap(), [1, 2, 6]);
    }

    /// A mini-batch job steps its batch, not the data, per iteration: the same runs with
    /// 1,000-row batches computing 1,000 times less per iteration give the same T1, and the
    /// predicted compute per iteration is the batch's whatever the data's size.
    #[test]
    fn minibatch_throughput_and_compute_follow_the_batch() {
        let mut m = measured();
        for o in &mut m {
            (o.batch_rows, o.compute_s) = (Some(1000), o.compute_s / 1000.0);
        }
        let p = Params::fit(&m, store(), None).unwrap();
        assert!((p.rows_per_s_per_vcpu - 1e6).abs() < 1e-6, "{}", p.rows_per_s_per_vcpu);
        assert!((p.inner_sigma - 0.25).abs() < 1e-9, "{}", p.inner_sigma);
        // 2 functions × 1 inner over 1,000 rows at 1e6 rows/s: 0.5 ms, for 1e6 or 1e8 rows.
        for rows in [1_000_000, 100_000_000] {
            let q = p.predict(2, 1, rows, 10, Prices::X86_64);
            assert!((q.model_compute_ms - 0.5).abs() < 1e-9, "{rows}: {}", q.model_compute_ms);
        }
        assert!(p.describe().contains("mini-batch: every iteration steps 1000 rows"));
    }

    #[test]
    fn prediction_table_is_labelled_as_a_model() {
        let p = Params::fit(&measured(), store(), None).unwrap();
        let md = markdown(&[p.predict(50, 1, 1_000_000, 10, Prices::X86_64)]);
        let head = md.lines().next().unwrap();
        assert!(head.contains("model total s") && head.contains("model cost $"));
        assert!(!head.contains("measured"));
    }
}
