//! The sweep's results: each configuration's measures summarised into a [`Row`] (medians and
//! spread over repeats, estimated or billed cost, improvement over the baseline, whether it
//! reached the baseline's model), and the reports made of them: the markdown table and notes
//! on screen, `sweep.csv`, `sweep.json` and the SVG charts.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use super::grid::Config;
use super::runner::Measure;
use crate::model::median;
use crate::output;
use crate::pricing::{cost_usd, lambda_memory_mb, Arch, Prices};

/// `(baseline − time) / baseline`, as the published table computed the improvement.
pub fn improvement(baseline: f64, time: f64) -> f64 {
    (baseline - time) / baseline
}

/// The largest relative difference between two models (∞ if their lengths differ).
pub fn model_difference(a: &[f64], b: &[f64]) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    a.iter().zip(b).map(|(x, y)| value_difference(*x, *y)).fold(0.0, f64::max)
}

/// Relative difference of two model values: 0 for equal values (two NaN, or the same
/// infinity, are equal: a kernel's bookkeeping may hold them), infinite when only one is
/// NaN or infinite (a model that went NaN is never "the same").
fn value_difference(x: f64, y: f64) -> f64 {
    if x == y || (x.is_nan() && y.is_nan()) {
        0.0
    } else if !(x.is_finite() && y.is_finite()) {
        f64::INFINITY
    } else {
        (x - y).abs() / y.abs().max(1e-300)
    }
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
    /// `estimate` (billed duration from the functions' times) or `lambda` (what Lambda billed).
    pub cost_from: &'static str,
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
            // Lambda reports the memory its functions had; locally, the memory that buys the vCPUs.
            let memory_mb =
                ms.iter().filter_map(|m| m.reported_memory_mb).max().map_or(lambda_memory_mb(c.inner), |m| m as u32);
            let billed = ms.iter().all(|m| m.billed_cost_usd.is_some());
            let costs = if billed {
                pick(&|m| m.billed_cost_usd.unwrap_or(f64::NAN))
            } else {
                pick(&|m| cost_usd(&m.function_s, memory_mb, prices))
            };
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
                cost_from: if billed { "lambda" } else { "estimate" },
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

/// Prints the table, the notes (emulation, warnings) and the consistency verdict.
pub fn print(rows: &[Row], notes: &[String], out_dir: &Path) {
    println!("{}", markdown(rows));
    for n in notes {
        println!("{n}");
    }
    if rows.iter().all(|r| r.consistent) {
        println!(
            "consistency: every configuration reached the same model (1e-9 relative) in {} iterations",
            rows[0].iterations
        );
    } else {
        let bad: Vec<_> = rows.iter().filter(|r| !r.consistent).map(|r| r.config.clone()).collect();
        println!("consistency: configurations {} differ from the baseline's model or iteration count", bad.join(", "));
    }
    println!("wrote {}/sweep.csv, sweep.json, time.svg, breakdown.svg, cost.svg", out_dir.display());
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

/// What `sweep.json` records about the sweep besides its rows.
pub struct Meta<'a> {
    pub algorithm: &'a str,
    pub data: Option<&'a str>,
    pub repeat: u32,
    /// How the configurations ran, in words.
    pub backend: &'static str,
    pub function: Option<&'a str>,
    /// Emulation notes and warnings.
    pub notes: &'a [String],
    /// The architecture the configurations are priced as.
    pub arch: Arch,
}

/// Writes `sweep.json`: the sweep's settings, prices and rows.
pub fn write_json(path: &Path, meta: &Meta, rows: &[Row]) -> Result<()> {
    let json = serde_json::json!({
        "algorithm": meta.algorithm,
        "data": meta.data,
        "repeat": meta.repeat,
        "baseline": rows[0].config,
        "backend": meta.backend,
        "function": meta.function,
        "emulation": meta.notes,
        "consistent": rows.iter().all(|r| r.consistent),
        "prices": meta.arch.prices(),
        "architecture": meta.arch.name(),
        "rows": rows,
    });
    output::write_atomic(path, |w| Ok(serde_json::to_writer_pretty(&mut *w, &json)?))
}

/// Writes the three SVG charts: time per configuration, stacked breakdown, cost.
pub fn write_charts(dir: &Path, rows: &[Row], title: &str) -> Result<()> {
    use plotters::prelude::*;
    let n = rows.len();
    let labels: Vec<String> = rows.iter().map(|r| r.config.clone()).collect();
    type Series<'a> = (&'a str, RGBColor, Box<dyn Fn(&Row) -> f64>);
    let charts: Vec<(&str, String, Vec<Series>)> = vec![
        (
            "time.svg",
            format!("{title}: total time per configuration (median, s)"),
            vec![("total", BLUE, Box::new(|r: &Row| r.total_s))],
        ),
        (
            "breakdown.svg",
            format!("{title}: time breakdown (s)"),
            vec![
                ("load", RGBColor(150, 150, 150), Box::new(|r: &Row| r.load_s)),
                ("compute", RGBColor(31, 119, 180), Box::new(|r: &Row| r.compute_ms / 1e3 * r.iterations as f64)),
                ("sync", RGBColor(214, 39, 40), Box::new(|r: &Row| r.sync_ms / 1e3 * r.iterations as f64)),
            ],
        ),
        (
            "cost.svg",
            format!("{title}: estimated Lambda cost per run (USD)"),
            vec![("cost", RGBColor(44, 160, 44), Box::new(|r: &Row| r.cost_usd))],
        ),
    ];
    for (file, caption, series) in charts {
        let path = dir.join(file);
        let ymax =
            rows.iter().map(|r| series.iter().map(|(_, _, f)| f(r)).sum::<f64>()).fold(0.0, f64::max).max(1e-12) * 1.15;
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
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(0)
                .x_desc("configurations (functions x inner workers), label on each bar")
                .draw()
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let tops: Vec<Text<(f64, f64), String>> = rows
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let top: f64 = series.iter().map(|(_, _, g)| g(r)).sum();
                    Text::new(labels[i].clone(), (i as f64 + 0.3, top + ymax * 0.06), ("sans-serif", 14).into_font())
                })
                .collect();
            chart.draw_series(tops).map_err(|e| anyhow::anyhow!("{e}"))?;
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
                chart
                    .configure_series_labels()
                    .background_style(WHITE)
                    .border_style(BLACK)
                    .draw()
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
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
    fn improvement_by_hand() {
        assert!((improvement(10.0, 4.0) - 0.6).abs() < 1e-15);
        assert!(improvement(10.0, 12.0) < 0.0);
        assert_eq!(model_difference(&[1.0, 2.0], &[1.0, 2.5]), 0.2);
        assert_eq!(model_difference(&[1.0], &[1.0, 2.0]), f64::INFINITY);
    }

    #[test]
    fn summary_flags_a_configuration_with_another_model() {
        let m = |t: f64, model: Vec<f64>| Measure {
            total_s: t,
            iter_s: t / 10.0,
            iterations: 10,
            function_s: vec![t],
            model,
            ..Default::default()
        };
        let results = vec![
            (Config { workers: 2, inner: 1 }, vec![m(4.0, vec![1.0, 2.0]), m(6.0, vec![1.0, 2.0])]),
            (Config { workers: 1, inner: 2 }, vec![m(2.0, vec![1.0, 2.0 + 1e-12])]),
            (Config { workers: 1, inner: 1 }, vec![m(8.0, vec![1.0, 2.1])]),
        ];
        let rows = summarise(&results, Prices::X86_64);
        assert_eq!(rows[0].total_s, 5.0);
        assert_eq!(rows[0].improvement, 0.0);
        assert!((rows[1].improvement - 0.6).abs() < 1e-12);
        assert!(rows[0].consistent && rows[1].consistent);
        assert!(!rows[2].consistent);
        // Estimated cost, by hand: one function of 1,769 MB for 4 s and 6 s (two runs), median
        // 5 s: 5 × 1769/1024 GB-s × $0.0000166667 + one request × $0.0000002.
        let want = 5.0 * 1769.0 / 1024.0 * 0.000_016_666_7 + 0.000_000_2;
        assert!((rows[0].cost_usd - want).abs() < 1e-15, "{} vs {want}", rows[0].cost_usd);
        assert_eq!(rows[0].cost_from, "estimate");
        let md = markdown(&rows);
        assert_eq!(md.lines().count(), 5);
        assert!(md.contains("| 1x2 | 1 | 2 | 2 | 3538 |"), "{md}");
        assert!(md.contains("NO (Δ"));
    }

    /// A model that went NaN (or infinite) is never "the same" as a finite one; NaN where the
    /// baseline has NaN too (a kernel's bookkeeping value) is.
    #[test]
    fn non_finite_values_count_in_the_same_model_check() {
        assert_eq!(model_difference(&[1.0, f64::NAN], &[1.0, f64::NAN]), 0.0);
        assert_eq!(model_difference(&[1.0, f64::NAN], &[1.0, 2.0]), f64::INFINITY);
        assert_eq!(model_difference(&[1.0, 2.0], &[1.0, f64::NAN]), f64::INFINITY);
        assert_eq!(model_difference(&[f64::INFINITY], &[1.0]), f64::INFINITY);
        assert_eq!(model_difference(&[f64::INFINITY], &[f64::INFINITY]), 0.0);
        assert!((model_difference(&[1.0, 2.2], &[1.0, 2.0]) - 0.1).abs() < 1e-12);
    }
}
