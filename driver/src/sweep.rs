//! `ifp sweep`: run the same job under several configurations (functions × inner workers)
//! and report, per configuration, time (median and spread over repeats), a breakdown into
//! load, compute and sync, Redis round trips, the estimated Lambda cost, the improvement over
//! the baseline row as the published table computed it, `(baseline − time) / baseline`, and
//! whether every configuration reached the same model.
//!
//! This module holds the sweep's logic and reports; running one configuration is the
//! caller's business (a closure), so the same code serves local and Lambda backends.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Context as _, Result};
use serde::Serialize;

use crate::output;

/// One configuration: `workers` functions with `inner` vCPUs (wasm instances) each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Config {
    pub workers: u32,
    pub inner: u32,
}

impl Config {
    pub fn vcpus(&self) -> u32 {
        self.workers * self.inner
    }
    pub fn label(&self) -> String {
        format!("{}x{}", self.workers, self.inner)
    }
}

/// Parses `6x1,3x2,2x3,1x6`.
pub fn parse_grid(s: &str) -> Result<Vec<Config>> {
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (w, m) = item
            .split_once(['x', 'X'])
            .with_context(|| format!("--grid entry '{item}' is not FUNCTIONSxINNER (e.g. 3x2)"))?;
        let w: u32 = w.trim().parse().ok().filter(|&w| w > 0).with_context(|| format!("--grid entry '{item}': functions must be a positive integer"))?;
        let m: u32 = m.trim().parse().ok().filter(|&m| m > 0).with_context(|| format!("--grid entry '{item}': inner workers must be a positive integer"))?;
        let c = Config { workers: w, inner: m };
        if out.contains(&c) {
            bail!("--grid lists {item} twice");
        }
        out.push(c);
    }
    if out.is_empty() {
        bail!("--grid '{s}' lists no configuration");
    }
    Ok(out)
}

/// The same total vCPUs factored every way, baseline `n × 1` first (the first experiment).
pub fn total_vcpus_grid(n: u32) -> Vec<Config> {
    (1..=n).rev().filter(|w| n % w == 0).map(|w| Config { workers: w, inner: n / w }).collect()
}

/// A fixed number of functions with 1..=max inner workers, baseline `f × 1` (the second).
pub fn functions_grid(functions: u32, max_inner: u32) -> Vec<Config> {
    (1..=max_inner).map(|m| Config { workers: functions, inner: m }).collect()
}

/// What one run of one configuration measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Measure {
    pub total_s: f64,
    /// Mean seconds per iteration (compute + sync).
    pub iter_s: f64,
    /// Slowest function's load time.
    pub load_s: f64,
    /// Mean per iteration: the slowest function's compute, and the rest of the iteration.
    pub compute_s: f64,
    pub sync_s: f64,
    /// Round trips to the state store per function per iteration (mean over functions).
    pub round_trips: f64,
    pub iterations: u32,
    /// Each function's duration (load + iterations), the Lambda billing input.
    pub function_s: Vec<f64>,
    #[serde(skip)]
    pub model: Vec<f64>,
}

/// Lambda prices (us-east-1): per GB-second and per request.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Prices {
    pub gb_second: f64,
    pub request: f64,
}
pub const X86_64: Prices = Prices { gb_second: 0.000_016_666_7, request: 0.20 / 1e6 };
pub const ARM64: Prices = Prices { gb_second: 0.000_013_333_4, request: 0.20 / 1e6 };

/// Memory that buys `vcpus` vCPUs on Lambda (one vCPU per 1,769 MB, 128..10,240 MB).
pub fn lambda_memory_mb(vcpus: u32) -> u32 {
    (vcpus * 1769).clamp(128, 10_240)
}

/// Estimated Lambda cost of one run: each function billed per started millisecond.
pub fn cost_usd(function_s: &[f64], memory_mb: u32, p: Prices) -> f64 {
    let gb = memory_mb as f64 / 1024.0;
    function_s.iter().map(|s| (s * 1000.0).ceil() / 1000.0 * gb * p.gb_second + p.request).sum()
}

/// `(baseline − time) / baseline`, as the published table computed the improvement.
pub fn improvement(baseline: f64, time: f64) -> f64 {
    (baseline - time) / baseline
}

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

/// The largest relative difference between two models (∞ if their lengths differ).
pub fn model_difference(a: &[f64], b: &[f64]) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    a.iter().zip(b).map(|(x, y)| (x - y).abs() / y.abs().max(1e-300)).filter(|d| !d.is_nan()).fold(0.0, f64::max)
}

/// Relative tolerance for "the same model".
pub const SAME_MODEL_REL: f64 = 1e-9;

/// One configuration's summary row.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub config: String,
    pub functions: u32,
    pub inner: u32,
    pub vcpus: u32,
    pub memory_mb: u32,
    pub repeats: usize,
    pub total_s: f64,
    pub total_min_s: f64,
    pub total_max_s: f64,
    pub iter_ms: f64,
    pub iter_min_ms: f64,
    pub iter_max_ms: f64,
    pub load_s: f64,
    pub compute_ms: f64,
    pub sync_ms: f64,
    pub round_trips_per_iter: f64,
    pub iterations: u32,
    pub cost_usd: f64,
    pub improvement: f64,
    /// Largest relative model difference from the baseline row.
    pub model_diff: f64,
    pub consistent: bool,
}

/// Summarises the measures of each configuration; the first configuration is the baseline.
pub fn summarise(results: &[(Config, Vec<Measure>)], prices: Prices) -> Vec<Row> {
    let base = &results[0].1;
    let base_total = median(&base.iter().map(|m| m.total_s).collect::<Vec<_>>());
    let base_model = &base[0].model;
    let base_iters = base[0].iterations;
    results
        .iter()
        .map(|(c, ms)| {
            let pick = |f: &dyn Fn(&Measure) -> f64| ms.iter().map(f).collect::<Vec<f64>>();
            let totals = pick(&|m| m.total_s);
            let iters = pick(&|m| m.iter_s * 1e3);
            let memory_mb = lambda_memory_mb(c.inner);
            let costs = pick(&|m| cost_usd(&m.function_s, memory_mb, prices));
            let diff = ms.iter().map(|m| model_difference(&m.model, base_model)).fold(0.0, f64::max);
            let same_iters = ms.iter().all(|m| m.iterations == base_iters);
            let total = median(&totals);
            Row {
                config: c.label(),
                functions: c.workers,
                inner: c.inner,
                vcpus: c.vcpus(),
                memory_mb,
                repeats: ms.len(),
                total_s: total,
                total_min_s: totals.iter().copied().fold(f64::INFINITY, f64::min),
                total_max_s: totals.iter().copied().fold(0.0, f64::max),
                iter_ms: median(&iters),
                iter_min_ms: iters.iter().copied().fold(f64::INFINITY, f64::min),
                iter_max_ms: iters.iter().copied().fold(0.0, f64::max),
                load_s: median(&pick(&|m| m.load_s)),
                compute_ms: median(&pick(&|m| m.compute_s * 1e3)),
                sync_ms: median(&pick(&|m| m.sync_s * 1e3)),
                round_trips_per_iter: median(&pick(&|m| m.round_trips)),
                iterations: ms[0].iterations,
                cost_usd: median(&costs),
                improvement: improvement(base_total, total),
                model_diff: diff,
                consistent: diff <= SAME_MODEL_REL && same_iters,
            }
        })
        .collect()
}

/// The markdown table printed on screen and kept in the README.
pub fn markdown(rows: &[Row]) -> String {
    let mut s = String::new();
    s.push_str("| config | functions | inner | vCPUs | memory MB | total s (median) | min–max s | per-iter ms | load s | compute ms/iter | sync ms/iter | round trips/fn/iter | cost $ | improvement | same model |\n");
    s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {:.3} | {:.3}–{:.3} | {:.2} | {:.3} | {:.2} | {:.2} | {:.1} | {:.3e} | {:+.1}% | {} |",
            r.config,
            r.functions,
            r.inner,
            r.vcpus,
            r.memory_mb,
            r.total_s,
            r.total_min_s,
            r.total_max_s,
            r.iter_ms,
            r.load_s,
            r.compute_ms,
            r.sync_ms,
            r.round_trips_per_iter,
            r.cost_usd,
            r.improvement * 100.0,
            if r.consistent { "yes".to_string() } else { format!("NO (Δ {:.1e})", r.model_diff) }
        );
    }
    s
}

/// Writes `sweep.csv`.
pub fn write_csv(path: &Path, rows: &[Row]) -> Result<()> {
    output::write_atomic(path, |w| {
        let mut c = csv::Writer::from_writer(w);
        for r in rows {
            c.serialize(r)?;
        }
        c.flush()?;
        Ok(())
    })
}

/// Writes the three SVG charts: time per configuration, stacked breakdown, cost.
pub fn write_charts(dir: &Path, rows: &[Row], title: &str) -> Result<()> {
    use plotters::prelude::*;
    let n = rows.len();
    let labels: Vec<String> = rows.iter().map(|r| r.config.clone()).collect();
    type Series<'a> = (&'a str, RGBColor, Box<dyn Fn(&Row) -> f64>);
    let charts: Vec<(&str, String, Vec<Series>)> = vec![
        ("time.svg", format!("{title}: total time per configuration (median, s)"), vec![("total", BLUE, Box::new(|r: &Row| r.total_s))]),
        (
            "breakdown.svg",
            format!("{title}: time breakdown (s)"),
            vec![
                ("load", RGBColor(150, 150, 150), Box::new(|r: &Row| r.load_s)),
                ("compute", RGBColor(31, 119, 180), Box::new(|r: &Row| r.compute_ms / 1e3 * r.iterations as f64)),
                ("sync", RGBColor(214, 39, 40), Box::new(|r: &Row| r.sync_ms / 1e3 * r.iterations as f64)),
            ],
        ),
        ("cost.svg", format!("{title}: estimated Lambda cost per run (USD)"), vec![("cost", RGBColor(44, 160, 44), Box::new(|r: &Row| r.cost_usd))]),
    ];
    for (file, caption, series) in charts {
        let path = dir.join(file);
        let ymax = rows.iter().map(|r| series.iter().map(|(_, _, f)| f(r)).sum::<f64>()).fold(0.0, f64::max).max(1e-12) * 1.15;
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (720, 420)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
            let mut chart = ChartBuilder::on(&root)
                .caption(&caption, ("sans-serif", 18))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(70)
                .build_cartesian_2d(0f64..n as f64, 0f64..ymax)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let lbl = labels.clone();
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(n.max(1))
                .x_label_formatter(&move |x| {
                    let i = x.floor() as usize;
                    if (x - i as f64 - 0.5).abs() < 0.26 || x.fract() == 0.0 { lbl.get(i).cloned().unwrap_or_default() } else { String::new() }
                })
                .x_desc("functions x inner workers")
                .draw()
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            for (si, (name, color, f)) in series.iter().enumerate() {
                let bars: Vec<Rectangle<(f64, f64)>> = rows
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        let below: f64 = series[..si].iter().map(|(_, _, g)| g(r)).sum();
                        Rectangle::new([(i as f64 + 0.15, below), (i as f64 + 0.85, below + f(r))], color.filled())
                    })
                    .collect();
                let c = *color;
                chart
                    .draw_series(bars)
                    .map_err(|e| anyhow::anyhow!("{e}"))?
                    .label(*name)
                    .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], c.filled()));
            }
            if series.len() > 1 {
                chart.configure_series_labels().background_style(WHITE).border_style(BLACK).draw().map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        output::write_atomic(&path, |w| Ok(w.write_all(svg.as_bytes())?))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids() {
        assert_eq!(parse_grid("6x1, 3x2,2X3").unwrap().iter().map(Config::label).collect::<Vec<_>>(), ["6x1", "3x2", "2x3"]);
        assert!(parse_grid("6x0").unwrap_err().to_string().contains("'6x0'"));
        assert!(parse_grid("6by2").unwrap_err().to_string().contains("'6by2' is not FUNCTIONSxINNER"));
        assert!(parse_grid("2x2,2x2").unwrap_err().to_string().contains("twice"));
        assert_eq!(total_vcpus_grid(6).iter().map(Config::label).collect::<Vec<_>>(), ["6x1", "3x2", "2x3", "1x6"]);
        assert_eq!(functions_grid(4, 3).iter().map(Config::label).collect::<Vec<_>>(), ["4x1", "4x2", "4x3"]);
    }

    #[test]
    fn cost_and_improvement_by_hand() {
        // Two functions of 1,769 MB for 1.5 s and 2.0004 s (billed 2.001 s).
        let c = cost_usd(&[1.5, 2.0004], 1769, X86_64);
        let want = (1.5 + 2.001) * (1769.0 / 1024.0) * 0.000_016_666_7 + 2.0 * 0.2e-6;
        assert!((c - want).abs() < 1e-15, "{c} vs {want}");
        assert_eq!(lambda_memory_mb(1), 1769);
        assert_eq!(lambda_memory_mb(6), 10_240);
        assert!((improvement(10.0, 4.0) - 0.6).abs() < 1e-15);
        assert!(improvement(10.0, 12.0) < 0.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn summary_flags_a_configuration_with_another_model() {
        let m = |t: f64, model: Vec<f64>| Measure { total_s: t, iter_s: t / 10.0, iterations: 10, function_s: vec![t], model, ..Default::default() };
        let results = vec![
            (Config { workers: 2, inner: 1 }, vec![m(4.0, vec![1.0, 2.0]), m(6.0, vec![1.0, 2.0])]),
            (Config { workers: 1, inner: 2 }, vec![m(2.0, vec![1.0, 2.0 + 1e-12])]),
            (Config { workers: 1, inner: 1 }, vec![m(8.0, vec![1.0, 2.1])]),
        ];
        let rows = summarise(&results, X86_64);
        assert_eq!(rows[0].total_s, 5.0);
        assert_eq!(rows[0].improvement, 0.0);
        assert!((rows[1].improvement - 0.6).abs() < 1e-12);
        assert!(rows[0].consistent && rows[1].consistent);
        assert!(!rows[2].consistent);
        let md = markdown(&rows);
        assert_eq!(md.lines().count(), 5);
        assert!(md.contains("| 1x2 | 1 | 2 | 2 | 3538 |"), "{md}");
        assert!(md.contains("NO (Δ"));
    }
}
