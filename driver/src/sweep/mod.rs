//! `ifp sweep`: run the same job under several configurations (functions × inner workers)
//! and report, per configuration, time (median and spread over repeats), a breakdown into
//! load, compute and sync, Redis round trips, the estimated Lambda cost, the improvement over
//! the baseline row as the published table computed it, `(baseline − time) / baseline`, and
//! whether every configuration reached the same model.
//!
//! This file is the command: its arguments, their checks, and the order of the steps. The
//! steps live in the submodules: [`grid`] (the configurations), [`runner`] (one `ifp run`
//! per configuration and repeat), [`report`] (summary rows and the files written),
//! [`prediction`] (`--model`), [`probe`] (the Redis measurements the model uses) and
//! [`latency`] (the delay proxy of `--latency-ms`).

mod grid;
mod latency;
mod prediction;
mod probe;
mod report;
mod runner;

use std::time::Duration;

use anyhow::{bail, Context as _, Result};

use crate::backend::Platform as Backend;
use crate::model;
use crate::pricing::{lambda_memory_mb, Arch};
use grid::{functions_grid, parse_grid, total_vcpus_grid, Config};
use runner::RunPlan;

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
    /// The largest number of inner workers per function with --functions (the grid is F x 1
    /// up to F x M).
    #[arg(long)]
    pub max_inner: Option<u32>,
    /// The loss whose time to reach each configuration reports ("to target s"; default: the
    /// baseline's final loss plus 1% of it), to compare modes that converge differently.
    #[arg(long, value_name = "LOSS")]
    pub target_loss: Option<f64>,
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
    /// Fit an analytic model of time and cost (per-vCPU throughput with an Amdahl-style loss per
    /// inner worker, Redis round trips, load bandwidth and a fixed overhead) to the measured
    /// configurations, check it against them, and predict larger ones (--model-functions x
    /// --model-inner over --model-data-gb).
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
    /// Check the model out of sample: simulate the synchronisation of these many functions
    /// against --redis (threads with a connection each, no data, --latency-ms added per
    /// request) and compare the model's sync term with it.
    #[arg(long, requires_all = ["model", "redis"], value_name = "LIST")]
    pub simulate_sync: Option<String>,
    /// Further `ifp run` arguments for every configuration (after `--`), e.g. `-- --k 16`.
    #[arg(last = true)]
    pub run_args: Vec<String>,
}

/// `ifp run` flags the sweep sets for every configuration itself.
const SET_BY_THE_SWEEP: [&str; 12] = [
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
];

/// The grid the arguments ask for, after checking the arguments that do not depend on it.
fn checked_grid(a: &SweepArgs) -> Result<Vec<Config>> {
    if let Some(url) = &a.redis {
        crate::run::check_redis_url(url)?;
    }
    let grid = match (&a.grid, a.total_vcpus, a.functions) {
        (Some(g), _, _) => parse_grid(g)?,
        (None, Some(n), _) if n > 0 => total_vcpus_grid(n),
        (None, None, Some(f)) if f > 0 && a.max_inner.unwrap_or(0) > 0 => functions_grid(f, a.max_inner.unwrap()),
        _ => bail!("give --grid, --total-vcpus N (N >= 1) or --functions F --max-inner M (both >= 1)"),
    };
    for forbidden in SET_BY_THE_SWEEP {
        if a.run_args.iter().any(|x| x == forbidden || x.starts_with(&format!("{forbidden}="))) {
            bail!("{forbidden} is set by the sweep itself; remove it from the arguments after --");
        }
    }
    if let Some(l) = a.latency_ms {
        if !(l.is_finite() && l >= 0.0) {
            bail!("--latency-ms must be a number of milliseconds >= 0, got {l}");
        }
    }
    if a.backend == Backend::Lambda {
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
    Ok(grid)
}

pub fn sweep_cmd(a: SweepArgs) -> Result<()> {
    let grid = checked_grid(&a)?;
    let lambda = a.backend == Backend::Lambda;
    let model_plan = prediction::model_plan(&a, &grid)?;
    std::fs::create_dir_all(&a.out_dir).with_context(|| format!("cannot create --out-dir {}", a.out_dir.display()))?;
    // Writable before the first run, not after the last (the claim is dropped unwritten).
    crate::output::Reserved::new(&a.out_dir.join("sweep.json"))
        .with_context(|| format!("--out-dir {}", a.out_dir.display()))?;
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
        (Some(u), true) => probe::commandstats(u).ok(),
        _ => None,
    };
    let arch = if a.arm64 { Arch::Arm64 } else { Arch::X86_64 };
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
        arch,
        pin_cpus: a.cpu_budget.then_some(cpus),
        run_args: &a.run_args,
    };
    let results = runner::run_grid(&plan, &grid, a.repeat, &a.out_dir)?;
    // The sweep's own --target-loss, else the runs' (`-- --target-loss L`), else the default.
    let run_target = a.run_args.iter().enumerate().find_map(|(i, x)| match x.strip_prefix("--target-loss") {
        Some("") => a.run_args.get(i + 1)?.parse().ok(),
        Some(v) => v.strip_prefix('=')?.parse().ok(),
        None => None,
    });
    let target = a.target_loss.or(run_target).or_else(|| report::default_target(&results));
    let rows = report::summarise(&results, arch.prices(), target);
    if let Some(t) = target {
        let from = match (a.target_loss, run_target) {
            (Some(_), _) => "--target-loss",
            (None, Some(_)) => "the runs' --target-loss",
            _ => "the baseline's final loss + 1%",
        };
        notes.push(format!("to target: seconds of iterations until the loss reached {t:.6e} ({from})"));
    }
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
    report::write_csv(&a.out_dir.join("sweep.csv"), &rows)?;
    let title = format!("{} sweep", a.algorithm);
    report::write_charts(&a.out_dir, &rows, &title)?;
    let meta = report::Meta {
        algorithm: &a.algorithm,
        data: a.data.as_deref(),
        repeat: a.repeat,
        backend: match (lambda, a.redis.is_some()) {
            (true, _) => "lambda",
            (false, true) => "local worker processes + redis",
            (false, false) => "local threads + in-process store",
        },
        function: a.function.as_deref(),
        notes: &notes,
        arch,
    };
    report::write_json(&a.out_dir.join("sweep.json"), &meta, &rows)?;
    report::print(&rows, &notes, &a.out_dir);
    if let Some(mp) = model_plan {
        let probe = match &a.redis {
            None => model::StoreProbe {
                source: "in-process store: no Redis to measure, the whole sync cost is in γ".into(),
                ..Default::default()
            },
            Some(direct) => probe::measure(direct, proxy.as_ref().map(|p| p.url()).as_deref(), stats_before),
        };
        prediction::run_model(&a.out_dir, &mp, &results, &rows, probe, arch.prices(), &title)?;
    }
    Ok(())
}
