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
    /// Median seconds of iterations to the loss `ifp run --target-loss` asked for (None: not
    /// asked, or some repeat never reached it).
    pub to_target_s: Option<f64>,
    pub cost_usd: f64,
    /// `estimate` (billed duration from the functions' times) or `lambda` (what Lambda billed).
    pub cost_from: &'static str,
    pub improvement: f64,
    /// Largest relative model difference from the baseline row.
    pub model_diff: f64,
    pub consistent: bool,
    /// The parts of the total of the configuration's median run (with an even number of
    /// repeats, the lower of the two middle runs), in seconds; they add up to its total.
    pub init_s: f64,
    pub run_load_s: f64,
    pub run_compute_s: f64,
    pub run_sync_s: f64,
    pub other_s: f64,
    /// That run's total (the median total with an odd number of repeats).
    pub median_run_total_s: f64,
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
            let mut by_total: Vec<&Measure> = ms.iter().collect();
            by_total.sort_by(|a, b| a.total_s.total_cmp(&b.total_s));
            let mid = by_total[(by_total.len() - 1) / 2];
            Row {
                init_s: mid.parts.init_s,
                run_load_s: mid.parts.load_s,
                run_compute_s: mid.parts.compute_s,
                run_sync_s: mid.parts.sync_s,
                other_s: mid.parts.other_s,
                median_run_total_s: mid.total_s,
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
                to_target_s: ms.iter().map(|m| m.to_target_s).collect::<Option<Vec<_>>>().map(|t| median(&t)),
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
    // `-- --target-loss L` (e.g. with and without `--staleness`): time to that loss.
    if rows.iter().any(|r| r.to_target_s.is_some()) {
        let t: Vec<String> = rows
            .iter()
            .map(|r| format!("{} {}", r.config, r.to_target_s.map_or("not reached".into(), |s| format!("{s:.3} s"))))
            .collect();
        println!("time to the target loss (median, seconds of iterations): {}", t.join(", "));
    }
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

/// A chart's unit: values are multiplied by `scale` before drawing, and the axis says `name`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Unit {
    pub name: &'static str,
    pub scale: f64,
}

/// The unit that keeps `max` (in seconds or USD) readable: at least 1 on the axis where it can.
pub fn unit_for(max: f64, base: &'static str) -> Unit {
    let units: &[(&str, f64)] = if base == "s" {
        &[("s", 1.0), ("ms", 1e3), ("µs", 1e6)]
    } else {
        &[("USD", 1.0), ("milli-USD", 1e3), ("micro-USD", 1e6), ("nano-USD", 1e9)]
    };
    let (name, scale) = units.iter().copied().find(|(_, k)| max * k >= 1.0).unwrap_or(*units.last().unwrap());
    Unit { name, scale }
}

/// Tick labels with as many decimals as the tick spacing needs (and no more).
fn tick_label(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 { 0 } else { (-step.log10()).ceil().max(0.0) as usize };
    format!("{v:.decimals$}")
}

type Series<'a> = (&'a str, plotters::style::RGBColor, Box<dyn Fn(&Row) -> f64>);

/// Writes the three SVG charts: total time per configuration, its breakdown (every part of
/// the total, stacked: init, load, compute, sync, start-up and other), and the cost.
pub fn write_charts(dir: &Path, rows: &[Row], title: &str) -> Result<()> {
    use plotters::prelude::*;
    let charts: Vec<(&str, &str, &'static str, Vec<Series>)> = vec![
        (
            "time.svg",
            "total time per configuration (median)",
            "s",
            vec![("total", BLUE, Box::new(|r: &Row| r.total_s))],
        ),
        (
            "breakdown.svg",
            "where the time of the median run went",
            "s",
            vec![
                ("init", RGBColor(148, 103, 189), Box::new(|r: &Row| r.init_s)),
                ("load", RGBColor(150, 150, 150), Box::new(|r: &Row| r.run_load_s)),
                ("compute", RGBColor(31, 119, 180), Box::new(|r: &Row| r.run_compute_s)),
                ("sync", RGBColor(214, 39, 40), Box::new(|r: &Row| r.run_sync_s)),
                ("start-up and other", RGBColor(255, 127, 14), Box::new(|r: &Row| r.other_s)),
            ],
        ),
        (
            "cost.svg",
            "estimated Lambda cost per run",
            "USD",
            vec![("cost", RGBColor(44, 160, 44), Box::new(|r: &Row| r.cost_usd))],
        ),
    ];
    for (file, what, base, series) in charts {
        let top = |r: &Row| series.iter().map(|(_, _, f)| f(r)).sum::<f64>();
        let unit = unit_for(rows.iter().map(top).fold(0.0, f64::max), base);
        let svg = chart_svg(rows, &format!("{title}: {what} ({})", unit.name), unit, &series)?;
        output::write_atomic(&dir.join(file), |w| Ok(w.write_all(svg.as_bytes())?))?;
    }
    Ok(())
}

/// One bar chart (stacked when there are several series), values drawn in `unit`.
fn chart_svg(rows: &[Row], caption: &str, unit: Unit, series: &[Series]) -> Result<String> {
    use plotters::prelude::*;
    let err = |e: &dyn std::fmt::Display| anyhow::anyhow!("drawing a chart: {e}");
    let n = rows.len();
    let value = |f: &dyn Fn(&Row) -> f64, r: &Row| f(r) * unit.scale;
    let ymax =
        rows.iter().map(|r| series.iter().map(|(_, _, f)| value(f, r)).sum::<f64>()).fold(0.0, f64::max).max(1e-12)
            * 1.15;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..n as f64, 0f64..ymax)
            .map_err(|e| err(&e))?;
        let ticks = 6;
        let step = ymax / ticks as f64;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_labels(ticks)
            .y_label_formatter(&|v| tick_label(*v, step))
            .y_desc(unit.name)
            .x_desc("configurations (functions x inner workers), label on each bar")
            .draw()
            .map_err(|e| err(&e))?;
        let tops: Vec<Text<(f64, f64), String>> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let top: f64 = series.iter().map(|(_, _, g)| value(g, r)).sum();
                Text::new(r.config.clone(), (i as f64 + 0.3, top + ymax * 0.06), ("sans-serif", 14).into_font())
            })
            .collect();
        chart.draw_series(tops).map_err(|e| err(&e))?;
        for (si, (name, color, f)) in series.iter().enumerate() {
            let bars: Vec<Rectangle<(f64, f64)>> = rows
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let below: f64 = series[..si].iter().map(|(_, _, g)| value(g, r)).sum();
                    Rectangle::new([(i as f64 + 0.15, below), (i as f64 + 0.85, below + value(f, r))], color.filled())
                })
                .collect();
            let c = *color;
            chart
                .draw_series(bars)
                .map_err(|e| err(&e))?
                .label(*name)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], c.filled()));
        }
        if series.len() > 1 {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE)
                .border_style(BLACK)
                .draw()
                .map_err(|e| err(&e))?;
        }
        root.present().map_err(|e| err(&e))?;
    }
    Ok(svg)
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

    /// A bar as drawn: fill colour, x, bottom and height in the chart's unit.
    type Bar = (String, f64, f64, f64);

    /// The numbers a chart draws, read back from its SVG: the y tick labels give the scale
    /// (pixels per unit), each bar's rectangle its value. Returns the tick labels, the bars
    /// (in drawing order: series by series, left to right) and the pixels per unit.
    fn drawn(svg: &str) -> (Vec<String>, Vec<Bar>, f64) {
        let doc = roxmltree::Document::parse(svg).unwrap();
        let attr = |n: &roxmltree::Node, a: &str| n.attribute(a).unwrap_or_default().to_string();
        let num = |n: &roxmltree::Node, a: &str| attr(n, a).parse::<f64>().unwrap();
        // Tick labels: right-aligned numbers left of the plot.
        let ticks: Vec<(f64, String)> = doc
            .descendants()
            .filter(|n| n.has_tag_name("text") && attr(n, "text-anchor") == "end")
            .map(|n| (num(&n, "y"), n.text().unwrap_or_default().trim().to_string()))
            .collect();
        let (lo, hi) = (ticks.first().unwrap(), ticks.last().unwrap());
        let px_per_unit = (lo.0 - hi.0) / (hi.1.parse::<f64>().unwrap() - lo.1.parse::<f64>().unwrap());
        let zero_y = lo.0 + lo.1.parse::<f64>().unwrap() * px_per_unit;
        let bars = doc
            .descendants()
            .filter(|n| n.has_tag_name("rect") && num(n, "width") > 50.0 && num(n, "width") < 700.0)
            .filter(|n| !["#FFFFFF", "none"].contains(&attr(n, "fill").as_str()))
            .map(|n| {
                let bottom = (zero_y - (num(&n, "y") + num(&n, "height"))) / px_per_unit;
                (attr(&n, "fill"), num(&n, "x"), bottom, num(&n, "height") / px_per_unit)
            })
            .collect();
        (ticks.into_iter().map(|t| t.1).collect(), bars, px_per_unit)
    }

    #[test]
    fn charts_draw_the_numbers_of_the_csv_with_readable_ticks() {
        let row = |config: &str, parts: [f64; 5], cost: f64| {
            let total: f64 = parts.iter().sum();
            Row {
                config: config.into(),
                functions: 1,
                inner: 1,
                vcpus: 1,
                memory_mb: 1769,
                repeats: 1,
                total_s: total,
                total_min_s: total,
                total_max_s: total,
                iter_ms: 0.0,
                iter_min_ms: 0.0,
                iter_max_ms: 0.0,
                load_s: parts[1],
                compute_ms: 0.0,
                sync_ms: 0.0,
                round_trips_per_iter: 2.0,
                iterations: 10,
                to_target_s: None,
                cost_usd: cost,
                cost_from: "estimate",
                improvement: 0.0,
                model_diff: 0.0,
                consistent: true,
                init_s: parts[0],
                run_load_s: parts[1],
                run_compute_s: parts[2],
                run_sync_s: parts[3],
                other_s: parts[4],
                median_run_total_s: total,
            }
        };
        // Costs of a few micro-dollars: the case whose ticks read "0.0, 0.0, 0.00001".
        let rows = vec![
            row("2x1", [0.05, 0.40, 0.30, 0.20, 0.10], 1.186e-5),
            row("1x2", [0.03, 0.11, 0.27, 0.05, 0.37], 8.26e-6),
            row("1x1", [0.20, 0.11, 0.32, 0.04, 0.01], 4.4e-6),
        ];
        let dir = tempfile::tempdir().unwrap();
        write_csv(&dir.path().join("sweep.csv"), &rows).unwrap();
        write_charts(dir.path(), &rows, "test").unwrap();
        let mut csv = csv::Reader::from_path(dir.path().join("sweep.csv")).unwrap();
        let head = csv.headers().unwrap().clone();
        let recs: Vec<csv::StringRecord> = csv.records().map(|r| r.unwrap()).collect();
        let col = |r: &csv::StringRecord, name: &str| -> f64 {
            r[head.iter().position(|h| h == name).unwrap()].parse().unwrap()
        };
        let cases: [(&str, f64, &[&str]); 3] = [
            ("time.svg", 1.0, &["total_s"]),
            ("breakdown.svg", 1.0, &["init_s", "run_load_s", "run_compute_s", "run_sync_s", "other_s"]),
            ("cost.svg", 1e6, &["cost_usd"]),
        ];
        for (file, scale, cols) in cases {
            let svg = std::fs::read_to_string(dir.path().join(file)).unwrap();
            let (ticks, bars, px_per_unit) = drawn(&svg);
            // Pixels are whole numbers: a bar's top and height are each within a pixel.
            let tol = 1.5 / px_per_unit;
            // Readable ticks: distinct labels, at least three of them, none in exponent form.
            let mut uniq = ticks.clone();
            uniq.dedup();
            assert!(uniq.len() == ticks.len() && ticks.len() >= 3, "{file}: ticks {ticks:?}");
            assert!(ticks.iter().all(|t| t.len() <= 6 && !t.contains('e')), "{file}: ticks {ticks:?}");
            if file == "cost.svg" {
                assert!(svg.contains("micro-USD"), "{file} names its unit");
            }
            // Bars: one per configuration and series, in series order, left to right.
            assert_eq!(bars.len(), recs.len() * cols.len(), "{file}: {bars:?}");
            for (si, c) in cols.iter().enumerate() {
                for (ri, r) in recs.iter().enumerate() {
                    let (_, _, bottom, value) = &bars[si * recs.len() + ri];
                    let want = col(r, c) * scale;
                    let below: f64 = cols[..si].iter().map(|c| col(r, c) * scale).sum();
                    assert!((value - want).abs() <= tol, "{file} {c} of {}: drew {value}, CSV {want}", &r[0]);
                    assert!((bottom - below).abs() <= tol, "{file} {c} of {}: stacked at {bottom}, not {below}", &r[0]);
                }
            }
            if file == "breakdown.svg" {
                // The stack reaches the run's total: every part of it is drawn.
                for (ri, r) in recs.iter().enumerate() {
                    let top = bars[(cols.len() - 1) * recs.len() + ri].2 + bars[(cols.len() - 1) * recs.len() + ri].3;
                    assert!((top - col(r, "median_run_total_s")).abs() <= tol, "{file}: stack {top} vs total");
                }
            }
        }
    }

    #[test]
    fn time_to_the_target_loss_is_the_median_of_repeats_that_all_reached_it() {
        let m = |to_target_s: Option<f64>| Measure {
            total_s: 1.0,
            iterations: 10,
            function_s: vec![1.0],
            to_target_s,
            ..Default::default()
        };
        let results = vec![
            (Config { workers: 2, inner: 1 }, vec![m(Some(3.0)), m(Some(1.0)), m(Some(2.0))]),
            (Config { workers: 1, inner: 2 }, vec![m(Some(1.0)), m(None)]),
            (Config { workers: 1, inner: 1 }, vec![m(None)]),
        ];
        let rows = summarise(&results, Prices::X86_64);
        assert_eq!(rows.iter().map(|r| r.to_target_s).collect::<Vec<_>>(), vec![Some(2.0), None, None]);
    }
}
