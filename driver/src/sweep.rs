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

use crate::backend::Platform as Backend;
use crate::model;
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
        let w: u32 = w
            .trim()
            .parse()
            .ok()
            .filter(|&w| w > 0)
            .with_context(|| format!("--grid entry '{item}': functions must be a positive integer"))?;
        let m: u32 = m
            .trim()
            .parse()
            .ok()
            .filter(|&m| m > 0)
            .with_context(|| format!("--grid entry '{item}': inner workers must be a positive integer"))?;
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
    (1..=n).rev().filter(|w| n.is_multiple_of(*w)).map(|w| Config { workers: w, inner: n / w }).collect()
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
    /// Rows of the data set, and bytes per row in memory (f32 features and label).
    pub rows: u64,
    pub bytes_per_row: f64,
    /// What Lambda billed for the run (`--backend lambda`), when known.
    pub billed_cost_usd: Option<f64>,
    /// The memory the functions reported (`--backend lambda`): the largest.
    pub reported_memory_mb: Option<u64>,
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
    fn grids() {
        assert_eq!(
            parse_grid("6x1, 3x2,2X3").unwrap().iter().map(Config::label).collect::<Vec<_>>(),
            ["6x1", "3x2", "2x3"]
        );
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

    fn args(cmd: &std::process::Command) -> Vec<String> {
        cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn lambda_configurations_get_their_memory_inner_workers_and_endpoints() {
        let endpoints = vec!["http://127.0.0.1:1".to_string(), "http://127.0.0.1:2".to_string()];
        let extra = vec!["--k".to_string(), "4".to_string()];
        let plan = RunPlan {
            exe: Path::new("/bin/ifp"),
            algorithm: "kmeans",
            data: Some("s3://b/k.npy"),
            redis: Some("redis://r:6379"),
            backend: Backend::Lambda,
            function: Some("ifp-{memory_mb}"),
            region: Some("eu-west-1"),
            endpoints: &endpoints,
            arm64: true,
            pin_cpus: None,
            run_args: &extra,
        };
        let cmd = plan.command(Config { workers: 3, inner: 2 }, Path::new("/o/run.json"));
        assert_eq!(cmd.get_program(), "/bin/ifp");
        let want = "run kmeans --workers 3 --inner 2 --out /o/run.json --data s3://b/k.npy --redis redis://r:6379 \
                    --backend lambda --function ifp-3538 --memory-mb 3538 --region eu-west-1 \
                    --lambda-endpoint http://127.0.0.1:1 --lambda-endpoint http://127.0.0.1:2 --arch arm64 --k 4";
        assert_eq!(args(&cmd).join(" "), want.split_whitespace().collect::<Vec<_>>().join(" "));
        // Six vCPUs and more: Lambda's 10,240 MB cap.
        let cmd = plan.command(Config { workers: 1, inner: 6 }, Path::new("/o/r.json"));
        assert!(args(&cmd).join(" ").contains("--function ifp-10240 --memory-mb 10240"));
    }

    #[test]
    fn local_configurations_run_under_taskset_with_a_cpu_budget() {
        let plan = RunPlan {
            exe: Path::new("/bin/ifp"),
            algorithm: "logreg",
            data: None,
            redis: None,
            backend: Backend::Local,
            function: None,
            region: None,
            endpoints: &[],
            arm64: false,
            pin_cpus: Some(4),
            run_args: &[],
        };
        let cmd = plan.command(Config { workers: 3, inner: 2 }, Path::new("/o/r.json"));
        assert_eq!(cmd.get_program(), "taskset");
        assert_eq!(args(&cmd).join(" "), "-c 0,1,2,3 /bin/ifp run logreg --workers 3 --inner 2 --out /o/r.json");
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

/// `ifp sweep` arguments.
#[derive(clap::Args, Debug)]
pub struct SweepArgs {
    /// The algorithm (as for `ifp run`).
    pub algorithm: String,
    /// Data file (as for `ifp run --data`); without it, `ifp run`'s default data set.
    #[arg(long)]
    pub data: Option<String>,
    /// Configurations FUNCTIONSxINNER, comma-separated; the first is the baseline.
    #[arg(long, conflicts_with_all = ["total_vcpus", "functions"])]
    pub grid: Option<String>,
    /// The same total vCPUs factored every way (baseline N x 1): the first published experiment.
    #[arg(long, conflicts_with = "functions")]
    pub total_vcpus: Option<u32>,
    /// A fixed number of functions with 1..=--max-inner inner workers: the second experiment.
    #[arg(long, requires = "max_inner")]
    pub functions: Option<u32>,
    #[arg(long)]
    pub max_inner: Option<u32>,
    /// Runs per configuration.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub repeat: u32,
    /// Where sweep.csv, sweep.json, the SVG charts and each run's result go.
    #[arg(long)]
    pub out_dir: std::path::PathBuf,
    /// Redis for the functions (each configuration runs as worker processes); without it,
    /// functions are threads of one process with the in-process store.
    #[arg(long)]
    pub redis: Option<String>,
    /// Emulate a network hop: add this many milliseconds to every Redis request (a delay
    /// proxy in front of --redis).
    #[arg(long, requires = "redis")]
    pub latency_ms: Option<f64>,
    /// Emulate equal CPU budgets: pin each configuration to FUNCTIONS x INNER CPUs.
    #[arg(long)]
    pub cpu_budget: bool,
    /// Price the configurations as arm64 (Graviton) functions instead of x86_64.
    #[arg(long)]
    pub arm64: bool,
    /// Where the configurations run: `local` (this machine) or `lambda` (invocations of
    /// --function through `ifp run --backend lambda`, with --inner and --memory-mb set per
    /// configuration).
    #[arg(long, value_enum, default_value_t = Backend::Local)]
    pub backend: Backend,
    /// The Lambda function (name or ARN) for --backend lambda. `{memory_mb}` in it becomes each
    /// configuration's memory (1,769 MB per vCPU), e.g. `ifp-{memory_mb}` with one function
    /// deployed per size: a Lambda function's CPU share follows its configured memory.
    #[arg(long, value_name = "NAME")]
    pub function: Option<String>,
    /// AWS region for --backend lambda.
    #[arg(long)]
    pub region: Option<String>,
    /// Lambda API endpoints instead of AWS's (comma-separated or repeated; workers use them
    /// round robin, e.g. one Lambda Runtime Interface Emulator per worker).
    #[arg(long = "lambda-endpoint", value_name = "URL", value_delimiter = ',')]
    pub endpoints: Vec<String>,
    /// Fit the analytic model (see `model.rs`) to the measured configurations, check it against
    /// them, and predict larger ones (--model-functions x --model-inner over --model-data-gb).
    #[arg(long)]
    pub model: bool,
    /// Functions of the predicted configurations (default 50,100,200,400).
    #[arg(long, requires = "model", value_name = "LIST")]
    pub model_functions: Option<String>,
    /// Inner workers (vCPUs) per function of the predicted configurations (default 1,2,3,4,5,6).
    #[arg(long, requires = "model", value_name = "LIST")]
    pub model_inner: Option<String>,
    /// Data size of the predictions in GB (1e9 bytes of f32 rows); default: the measured data.
    #[arg(long, requires = "model", value_name = "GB")]
    pub model_data_gb: Option<f64>,
    /// Iterations of the predictions (default: the measured job's).
    #[arg(long, requires = "model", value_parser = clap::value_parser!(u32).range(1..))]
    pub model_iterations: Option<u32>,
    /// Object-store bandwidth per function, MB/s, for the model's load time instead of the
    /// measured load: an assumption, and labelled as one.
    #[arg(long, requires = "model", value_name = "MBPS")]
    pub s3_mbps: Option<f64>,
    /// Further `ifp run` arguments for every configuration (after `--`), e.g. `-- --k 16`.
    #[arg(last = true)]
    pub run_args: Vec<String>,
}

/// How every configuration's `ifp run` is invoked.
pub struct RunPlan<'a> {
    pub exe: &'a Path,
    pub algorithm: &'a str,
    pub data: Option<&'a str>,
    /// The Redis URL the functions get (the delay proxy's when it is on).
    pub redis: Option<&'a str>,
    pub backend: Backend,
    /// The --function template (`{memory_mb}` replaced per configuration).
    pub function: Option<&'a str>,
    pub region: Option<&'a str>,
    pub endpoints: &'a [String],
    pub arm64: bool,
    /// With --cpu-budget: this machine's CPUs (each configuration is pinned to its vCPUs).
    pub pin_cpus: Option<u32>,
    pub run_args: &'a [String],
}

impl RunPlan<'_> {
    /// The `ifp run` (under `taskset` with --cpu-budget) for configuration `c`.
    pub fn command(&self, c: Config, out: &Path) -> std::process::Command {
        let mut cmd = match self.pin_cpus {
            Some(cpus) => {
                let set = (0..c.vcpus().min(cpus)).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
                let mut t = std::process::Command::new("taskset");
                t.args(["-c", &set]).arg(self.exe);
                t
            }
            None => std::process::Command::new(self.exe),
        };
        cmd.arg("run");
        // With a plugin (`-- --kernel FILE|s3://...`), the algorithm only names the sweep.
        if !self.run_args.iter().any(|x| x == "--kernel" || x.starts_with("--kernel=")) {
            cmd.arg(self.algorithm);
        }
        cmd.args(["--workers", &c.workers.to_string(), "--inner", &c.inner.to_string()]);
        cmd.arg("--out").arg(out);
        if let Some(d) = self.data {
            cmd.args(["--data", d]);
        }
        if let Some(u) = self.redis {
            cmd.args(["--redis", u]);
        }
        if self.backend == Backend::Lambda {
            let mb = lambda_memory_mb(c.inner);
            let function = self.function.unwrap_or_default().replace("{memory_mb}", &mb.to_string());
            cmd.args(["--backend", "lambda", "--function", &function, "--memory-mb", &mb.to_string()]);
            if let Some(r) = self.region {
                cmd.args(["--region", r]);
            }
            for e in self.endpoints {
                cmd.args(["--lambda-endpoint", e]);
            }
            if self.arm64 {
                cmd.args(["--arch", "arm64"]);
            }
        }
        cmd.args(self.run_args);
        cmd
    }
}

/// The model's inputs checked before anything runs.
struct ModelPlan {
    functions: Vec<u32>,
    inner: Vec<u32>,
    data_gb: Option<f64>,
    iterations: Option<u32>,
    s3_bytes_per_s: Option<f64>,
}

fn model_plan(a: &SweepArgs, grid: &[Config]) -> Result<Option<ModelPlan>> {
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
    }))
}

pub fn sweep_cmd(a: SweepArgs) -> Result<()> {
    let grid = match (&a.grid, a.total_vcpus, a.functions) {
        (Some(g), _, _) => parse_grid(g)?,
        (None, Some(n), _) if n > 0 => total_vcpus_grid(n),
        (None, None, Some(f)) if f > 0 && a.max_inner.unwrap_or(0) > 0 => functions_grid(f, a.max_inner.unwrap()),
        _ => bail!("give --grid, --total-vcpus N (N >= 1) or --functions F --max-inner M (both >= 1)"),
    };
    for forbidden in [
        "--workers",
        "--inner",
        "--out",
        "--redis",
        "--quiet",
        "--data",
        "--backend",
        "--function",
        "--region",
        "--lambda-endpoint",
        "--memory-mb",
        "--arch",
    ] {
        if a.run_args.iter().any(|x| x == forbidden || x.starts_with(&format!("{forbidden}="))) {
            bail!("{forbidden} is set by the sweep itself; remove it from the arguments after --");
        }
    }
    if let Some(l) = a.latency_ms {
        if !(l.is_finite() && l >= 0.0) {
            bail!("--latency-ms must be a number of milliseconds >= 0, got {l}");
        }
    }
    let lambda = a.backend == Backend::Lambda;
    if lambda {
        if a.function.is_none() {
            bail!("--backend lambda needs --function NAME (e.g. ifp-{{memory_mb}} for one function per memory size)");
        }
        if a.data.is_none() {
            bail!("--backend lambda needs --data: a data set the functions can read (s3://bucket/key or a path)");
        }
        if a.cpu_budget {
            bail!("--cpu-budget pins local processes; it does not apply to --backend lambda");
        }
    } else {
        for (flag, given) in [
            ("--function", a.function.is_some()),
            ("--region", a.region.is_some()),
            ("--lambda-endpoint", !a.endpoints.is_empty()),
        ] {
            if given {
                bail!("{flag} applies to --backend lambda");
            }
        }
    }
    let model_plan = model_plan(&a, &grid)?;
    std::fs::create_dir_all(&a.out_dir).with_context(|| format!("cannot create --out-dir {}", a.out_dir.display()))?;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    let mut notes = Vec::new();
    let proxy = match (&a.redis, a.latency_ms) {
        (Some(url), Some(ms)) if ms > 0.0 => {
            let p = latency::Proxy::start(url, Duration::from_secs_f64(ms / 1e3))?;
            notes.push(format!("emulation: {ms} ms added to every Redis request by a delay proxy"));
            Some(p)
        }
        _ => None,
    };
    if a.cpu_budget {
        notes.push("emulation: each configuration pinned to functions x inner CPUs (sched affinity)".into());
        if let Some(c) = grid.iter().find(|c| c.vcpus() > cpus) {
            notes.push(format!(
                "warning: {} needs {} CPUs, this machine has {cpus}: it is oversubscribed",
                c.label(),
                c.vcpus()
            ));
        }
    }
    let redis_url = proxy.as_ref().map(|p| p.url()).or_else(|| a.redis.clone());
    // Redis's own request counters before the sweep: the model's service time per request.
    let stats_before = match (&a.redis, model_plan.is_some()) {
        (Some(u), true) => store_probe::commandstats(u).ok(),
        _ => None,
    };
    let exe = std::env::current_exe().context("locating the ifp executable")?;
    let plan = RunPlan {
        exe: &exe,
        algorithm: &a.algorithm,
        data: a.data.as_deref(),
        redis: redis_url.as_deref(),
        backend: a.backend,
        function: a.function.as_deref(),
        region: a.region.as_deref(),
        endpoints: &a.endpoints,
        arm64: a.arm64,
        pin_cpus: a.cpu_budget.then_some(cpus),
        run_args: &a.run_args,
    };
    let total_runs = grid.len() as u64 * a.repeat as u64;
    let bar = progress_bar(total_runs);
    let mut results = Vec::new();
    for c in &grid {
        let mut ms = Vec::new();
        for r in 0..a.repeat {
            bar.set_message(format!("{} run {}/{}", c.label(), r + 1, a.repeat));
            let out = a.out_dir.join(format!("run-{}-{}.json", c.label(), r + 1));
            let m = run_one(plan.command(*c, &out), &out, &bar)
                .with_context(|| format!("configuration {} (run {})", c.label(), r + 1))?;
            bar.inc(1);
            ms.push(m);
        }
        results.push((*c, ms));
    }
    bar.finish_and_clear();
    let prices = if a.arm64 { ARM64 } else { X86_64 };
    let rows = summarise(&results, prices);
    if lambda {
        for r in rows.iter().filter(|r| r.memory_mb != lambda_memory_mb(r.inner)) {
            notes.push(format!(
                "warning: {} ran on functions of {} MB, but {} inner workers need {} MB (1,769 MB per vCPU): put {{memory_mb}} in --function to invoke a function of the right size",
                r.config,
                r.memory_mb,
                r.inner,
                lambda_memory_mb(r.inner)
            ));
        }
    }
    let table = markdown(&rows);
    write_csv(&a.out_dir.join("sweep.csv"), &rows)?;
    let title = format!("{} sweep", a.algorithm);
    write_charts(&a.out_dir, &rows, &title)?;
    let all_consistent = rows.iter().all(|r| r.consistent);
    let backend = match (lambda, a.redis.is_some()) {
        (true, _) => "lambda",
        (false, true) => "local worker processes + redis",
        (false, false) => "local threads + in-process store",
    };
    let json = serde_json::json!({
        "algorithm": a.algorithm,
        "data": a.data,
        "repeat": a.repeat,
        "baseline": rows[0].config,
        "backend": backend,
        "function": a.function,
        "emulation": notes,
        "consistent": all_consistent,
        "prices": prices,
        "architecture": if a.arm64 { "arm64" } else { "x86_64" },
        "rows": rows,
    });
    output::write_atomic(&a.out_dir.join("sweep.json"), |w| Ok(serde_json::to_writer_pretty(&mut *w, &json)?))?;
    println!("{table}");
    for n in &notes {
        println!("{n}");
    }
    if all_consistent {
        println!(
            "consistency: every configuration reached the same model (1e-9 relative) in {} iterations",
            rows[0].iterations
        );
    } else {
        let bad: Vec<_> = rows.iter().filter(|r| !r.consistent).map(|r| r.config.clone()).collect();
        println!("consistency: configurations {} differ from the baseline's model or iteration count", bad.join(", "));
    }
    println!("wrote {}/sweep.csv, sweep.json, time.svg, breakdown.svg, cost.svg", a.out_dir.display());
    if let Some(mp) = model_plan {
        let probe = match &a.redis {
            None => model::StoreProbe {
                source: "in-process store: no Redis to measure, the whole sync cost is in γ".into(),
                ..Default::default()
            },
            Some(direct) => store_probe::measure(direct, proxy.as_ref().map(|p| p.url()).as_deref(), stats_before),
        };
        run_model(&a, &mp, &results, &rows, probe, prices, &title)?;
    }
    Ok(())
}

/// Fits, checks, predicts, prints and writes the model.
fn run_model(
    a: &SweepArgs,
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
    let iterations = mp.iterations.unwrap_or(obs[0].iterations);
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
        if mp.iterations.is_some() { " (--model-iterations)" } else { " (as measured)" },
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
    model::write_csv(&a.out_dir, &predictions, &check)?;
    model::write_charts(&a.out_dir, &predictions, title)?;
    let json = serde_json::json!({
        "kind": "model",
        "label": "predicted by the analytic model fitted to the measured sweep, not measured",
        "formulas": {
            "compute_s": "rows / (F*M) / (rows_per_s_per_vcpu * eff(M)), eff(M) = 1 / (1 + inner_sigma*(M-1))",
            "sync_s": "round_trips*rtt_s + F*(round_trips*service_s + per_function_sync_s)",
            "load_s": "rows/F * bytes_per_row / load_bytes_per_s",
            "total_s": "overhead_s + load_s + iterations*(compute_s + sync_s)",
            "cost_usd": "F * (total_s * memory GB * price per GB-s + price per request), memory = 1769 MB per vCPU",
        },
        "data": data_desc,
        "rows": data_rows,
        "iterations": iterations,
        "parameters": params,
        "prices": prices,
        "predictions": predictions,
        "check": check,
        "worst_error": { "config": worst.config, "total_error": worst.total_error },
    });
    output::write_atomic(&a.out_dir.join("model.json"), |w| Ok(serde_json::to_writer_pretty(&mut *w, &json)?))?;
    println!("wrote {}/model.csv, model-check.csv, model.json, model-time.svg, model-cost.svg", a.out_dir.display());
    Ok(())
}

/// Measurements of the Redis the sweep used, for the model: PING round trips and the
/// server's own service time per request (`INFO commandstats`).
mod store_probe {
    use std::time::{Duration, Instant};

    use anyhow::Result;

    use crate::model::StoreProbe;

    /// Requests served and microseconds spent serving them, over every command but the
    /// probes' own (`info`, `ping`).
    pub fn commandstats(url: &str) -> Result<(u64, f64)> {
        let mut con = ifp_host::redis_store::connect(url, Duration::from_secs(5))?;
        let info: String = redis::cmd("INFO").arg("commandstats").query(&mut con)?;
        Ok(parse_commandstats(&info))
    }

    pub fn parse_commandstats(info: &str) -> (u64, f64) {
        let mut calls = 0;
        let mut usec = 0.0;
        for line in info.lines() {
            let Some((name, fields)) = line.trim().strip_prefix("cmdstat_").and_then(|l| l.split_once(':')) else {
                continue;
            };
            if name == "info" || name == "ping" {
                continue;
            }
            for f in fields.split(',') {
                match f.split_once('=') {
                    Some(("calls", v)) => calls += v.parse::<u64>().unwrap_or(0),
                    Some(("usec", v)) => usec += v.parse::<f64>().unwrap_or(0.0),
                    _ => {}
                }
            }
        }
        (calls, usec)
    }

    /// Median of `n` PINGs on one connection, seconds.
    pub fn ping_rtt(url: &str, n: usize) -> Result<f64> {
        let mut con = ifp_host::redis_store::connect(url, Duration::from_secs(5))?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            redis::cmd("PING").query::<redis::Value>(&mut con)?;
            v.push(t.elapsed().as_secs_f64());
        }
        Ok(crate::sweep::median(&v))
    }

    /// The probe: RTT through the route the functions used (`proxied` when the delay proxy was
    /// on), the direct RTT, and the service time from the counters' change over the sweep.
    pub fn measure(direct: &str, proxied: Option<&str>, before: Option<(u64, f64)>) -> StoreProbe {
        let after = commandstats(direct).ok();
        let service_s = match (before, after) {
            (Some((c0, u0)), Some((c1, u1))) if c1 > c0 => (u1 - u0) / (c1 - c0) as f64 / 1e6,
            _ => 0.0,
        };
        let d = ping_rtt(direct, 200);
        let p = proxied.map(|u| ping_rtt(u, 50));
        match (d, p) {
            (Ok(d), None) => StoreProbe {
                rtt_s: d,
                direct_rtt_s: None,
                service_s,
                source: "measured: PINGs and INFO commandstats against the sweep's Redis".into(),
            },
            (Ok(d), Some(Ok(p))) => StoreProbe {
                rtt_s: p,
                direct_rtt_s: Some(d),
                service_s,
                source: "measured: PINGs through the delay proxy, INFO commandstats on the Redis behind it".into(),
            },
            (Err(e), _) | (_, Some(Err(e))) => StoreProbe {
                source: format!("not measured ({e:#}): the whole sync cost is in γ"),
                ..Default::default()
            },
        }
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn commandstats_sum_every_command_but_the_probes() {
            let info = "# Commandstats\r\ncmdstat_evalsha:calls=10,usec=50,usec_per_call=5.00,rejected_calls=0,failed_calls=0\r\ncmdstat_ping:calls=200,usec=100,usec_per_call=0.5\r\ncmdstat_blpop:calls=5,usec=25,usec_per_call=5.00\r\ncmdstat_info:calls=2,usec=90\r\n";
            assert_eq!(super::parse_commandstats(info), (15, 75.0));
        }
    }
}

use std::time::Duration;

fn progress_bar(len: u64) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let b = indicatif::ProgressBar::new(len);
    b.set_style(
        indicatif::ProgressStyle::with_template("{spinner} runs {pos}/{len} [{bar:30}] {msg} ({elapsed})")
            .unwrap()
            .progress_chars("=> "),
    );
    b
}

/// Runs one `ifp run` and turns its result file into a [`Measure`]. Its per-iteration
/// lines (stderr) feed the progress bar; its last stderr line is the error if it fails.
fn run_one(mut cmd: std::process::Command, out: &Path, bar: &indicatif::ProgressBar) -> Result<Measure> {
    use std::io::BufRead as _;
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("starting ifp run")?;
    let mut last = String::new();
    let base = bar.message();
    for line in std::io::BufReader::new(child.stderr.take().unwrap()).lines().map_while(Result::ok) {
        if let Some(rest) = line.strip_prefix("iteration ") {
            bar.set_message(format!("{base}, iteration {}", rest.split(':').next().unwrap_or("?")));
        } else if !line.trim().is_empty() {
            last = line;
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("{}", last.trim_start_matches("error: "));
    }
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out)?)?;
    measure_from_result(&v)
}

/// Reads what the sweep needs from an `ifp run` result JSON.
pub fn measure_from_result(v: &serde_json::Value) -> Result<Measure> {
    let f = |p: &serde_json::Value| p.as_f64().unwrap_or(0.0);
    let its = v["timing"]["iterations"].as_array().context("result without timing.iterations")?;
    let n = its.len().max(1) as f64;
    let compute = its.iter().map(|i| f(&i["compute_s"])).sum::<f64>() / n;
    let sync = its.iter().map(|i| f(&i["sync_s"])).sum::<f64>() / n;
    let workers = v["workers"].as_array().context("result without workers")?;
    // Round trips inside iterations (the sync section), not the per-job constant.
    let rt = match v["sync"]["workers"].as_array() {
        Some(ws) if !ws.is_empty() => {
            ws.iter().map(|w| f(&w["round_trips_per_iteration"])).sum::<f64>() / ws.len() as f64
        }
        _ => workers.iter().map(|w| f(&w["round_trips"])).sum::<f64>() / workers.len().max(1) as f64 / n,
    };
    let mut model = Vec::new();
    if let Some(m) = v["model"].as_object() {
        let mut keys: Vec<_> = m.keys().collect();
        keys.sort();
        for k in keys {
            flatten(&m[k], &mut model);
        }
    }
    let cols = v["config"]["cols"].as_u64().unwrap_or(0) + u64::from(v["config"]["labelled"] == true);
    let lambda = &v["lambda"];
    Ok(Measure {
        rows: v["config"]["rows"].as_u64().unwrap_or(0),
        bytes_per_row: 4.0 * cols as f64,
        billed_cost_usd: lambda["cost_usd"].as_f64(),
        reported_memory_mb: lambda["invocations"]
            .as_array()
            .and_then(|a| a.iter().filter_map(|i| i["memory_mb"].as_u64()).max()),
        total_s: f(&v["timing"]["total_s"]),
        iter_s: compute + sync,
        load_s: f(&v["timing"]["load_s"]),
        compute_s: compute,
        sync_s: sync,
        round_trips: rt,
        iterations: v["iterations"].as_u64().unwrap_or(0) as u32,
        function_s: workers.iter().map(|w| f(&w["total_s"])).collect(),
        model,
    })
}

fn flatten(v: &serde_json::Value, out: &mut Vec<f64>) {
    match v {
        serde_json::Value::Array(a) => a.iter().for_each(|x| flatten(x, out)),
        serde_json::Value::Number(n) => out.push(n.as_f64().unwrap_or(f64::NAN)),
        _ => {}
    }
}

/// A TCP proxy in front of Redis that delays every client request by a fixed latency, to
/// emulate the network hop between functions and a managed Redis on one machine.
pub mod latency {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use anyhow::{Context as _, Result};

    pub struct Proxy {
        addr: std::net::SocketAddr,
        url: url::Url,
        stop: Arc<AtomicBool>,
    }

    impl Proxy {
        /// Listens on 127.0.0.1 (a free port) and forwards to the Redis of `redis_url`.
        pub fn start(redis_url: &str, delay: Duration) -> Result<Self> {
            let mut url = url::Url::parse(redis_url).with_context(|| "invalid --redis URL".to_string())?;
            anyhow::ensure!(
                url.scheme() == "redis",
                "--latency-ms works with redis:// URLs (the proxy does not terminate TLS)"
            );
            let host = url.host_str().context("--redis URL without a host")?.to_string();
            let upstream = format!("{host}:{}", url.port().unwrap_or(6379));
            let listener = TcpListener::bind("127.0.0.1:0").context("starting the latency proxy")?;
            let addr = listener.local_addr()?;
            url.set_host(Some("127.0.0.1")).ok();
            url.set_port(Some(addr.port())).ok();
            let stop = Arc::new(AtomicBool::new(false));
            let s = stop.clone();
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if s.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(client) = conn else { continue };
                    let Ok(server) = TcpStream::connect(&upstream) else { continue };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (c2, s2) = (client.try_clone(), server.try_clone());
                    if let (Ok(c2), Ok(s2)) = (c2, s2) {
                        std::thread::spawn(move || pipe(client, s2, delay));
                        std::thread::spawn(move || pipe(server, c2, Duration::ZERO));
                    }
                }
            });
            Ok(Self { addr, url, stop })
        }

        /// The URL clients use instead of the real one (credentials kept).
        pub fn url(&self) -> String {
            self.url.to_string()
        }
    }

    impl Drop for Proxy {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            let _ = TcpStream::connect(self.addr);
        }
    }

    /// Copies `from` to `to`, sleeping `delay` before forwarding each chunk read.
    fn pipe(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if !delay.is_zero() {
                        std::thread::sleep(delay);
                    }
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Both);
    }
}
