//! Running the sweep's configurations: each run is one `ifp run` child process (under
//! `taskset` with `--cpu-budget`), its progress shown on a bar, and its result file read
//! back into a [`Measure`].

use std::path::Path;

use anyhow::{bail, Context as _, Result};
use serde::Serialize;

use super::grid::Config;
use crate::backend::Platform as Backend;
use crate::pricing::{lambda_memory_mb, Arch};
use crate::run::REDIS_ENV;

/// The parts of a run's total time, in seconds; they add up to it.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct Parts {
    pub init_s: f64,
    pub load_s: f64,
    pub compute_s: f64,
    pub sync_s: f64,
    pub other_s: f64,
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
    /// Bytes of partials sent to the state store per function per iteration (mean over
    /// functions): dense, or (index, value) pairs when sparse.
    #[serde(default)]
    pub partial_bytes: f64,
    /// After each iteration: seconds of iterations so far (`timing.iterations[].elapsed_s`)
    /// and the loss that iteration reported, for the time to a target loss.
    #[serde(skip)]
    pub progress: Vec<(f64, f64)>,
    pub iterations: u32,
    /// Each function's duration (load + iterations), the Lambda billing input.
    pub function_s: Vec<f64>,
    #[serde(skip)]
    pub model: Vec<f64>,
    /// Rows of the data set, and bytes per row in memory (f32 features and label).
    pub rows: u64,
    pub bytes_per_row: f64,
    /// Rows each iteration steps in a mini-batch run (its `batch-size`); None: every row.
    pub batch_rows: Option<u64>,
    /// What Lambda billed for the run (`--backend lambda`), when known.
    pub billed_cost_usd: Option<f64>,
    /// The parts of `total_s` (the run's `timing.phases`): init, load, compute and sync over
    /// all iterations, and the rest (start-up of the functions, waiting outside them).
    pub parts: Parts,
    /// The memory the functions reported (`--backend lambda`): the largest.
    pub reported_memory_mb: Option<u64>,
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
    pub arch: Arch,
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
        // In the environment, never on the command line (where `ps` shows its password).
        if let Some(u) = self.redis {
            cmd.env(REDIS_ENV, u);
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
            // x86_64 is `ifp run`'s default.
            if self.arch != Arch::X86_64 {
                cmd.args(["--arch", self.arch.name()]);
            }
        }
        cmd.args(self.run_args);
        cmd
    }
}

/// Runs every configuration of `grid` `repeat` times, in order, each run's result kept as
/// `out_dir/run-CONFIG-N.json`; stops at the first failed run.
pub fn run_grid(plan: &RunPlan, grid: &[Config], repeat: u32, out_dir: &Path) -> Result<Vec<(Config, Vec<Measure>)>> {
    let bar = progress_bar(grid.len() as u64 * repeat as u64);
    let mut results = Vec::new();
    for c in grid {
        let mut ms = Vec::new();
        for r in 0..repeat {
            bar.set_message(format!("{} run {}/{}", c.label(), r + 1, repeat));
            let out = out_dir.join(format!("run-{}-{}.json", c.label(), r + 1));
            let m = run_one(plan.command(*c, &out), &out, &bar)
                .with_context(|| format!("configuration {} (run {})", c.label(), r + 1))?;
            bar.inc(1);
            ms.push(m);
        }
        results.push((*c, ms));
    }
    bar.finish_and_clear();
    Ok(results)
}

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
    let partial_bytes = match v["sync"]["workers"].as_array() {
        Some(ws) if !ws.is_empty() => {
            ws.iter().map(|w| f(&w["partial_bytes_per_iteration"])).sum::<f64>() / ws.len() as f64
        }
        _ => 0.0,
    };
    // When the reference function had each iteration's model, and that iteration's loss.
    let progress = its.iter().map(|i| (f(&i["elapsed_s"]), i["loss"].as_f64().unwrap_or(f64::NAN))).collect();
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
    let ph = &v["timing"]["phases"];
    let parts = Parts {
        init_s: f(&ph["init_s"]),
        load_s: f(&ph["load_s"]),
        compute_s: f(&ph["compute_s"]),
        sync_s: f(&ph["sync_s"]),
        other_s: f(&ph["other_s"]),
    };
    Ok(Measure {
        parts,
        rows: v["config"]["rows"].as_u64().unwrap_or(0),
        bytes_per_row: 4.0 * cols as f64,
        batch_rows: v["config"]["params"]["batch-size"].as_str().and_then(|b| b.parse().ok()),
        // What Lambda billed only when every invocation's duration came from Lambda's own
        // REPORT line; a cost from the functions' wall times is an estimate.
        billed_cost_usd: lambda["cost_usd"].as_f64().filter(|_| {
            lambda["invocations"].as_array().is_some_and(|a| a.iter().all(|i| i["billed_from"] == "lambda"))
        }),
        reported_memory_mb: lambda["invocations"]
            .as_array()
            .and_then(|a| a.iter().filter_map(|i| i["memory_mb"].as_u64()).max()),
        total_s: f(&v["timing"]["total_s"]),
        iter_s: compute + sync,
        load_s: f(&v["timing"]["load_s"]),
        compute_s: compute,
        sync_s: sync,
        round_trips: rt,
        partial_bytes,
        progress,
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

#[cfg(test)]
mod tests {
    use super::*;

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
            arch: Arch::Arm64,
            pin_cpus: None,
            run_args: &extra,
        };
        let cmd = plan.command(Config { workers: 3, inner: 2 }, Path::new("/o/run.json"));
        assert_eq!(cmd.get_program(), "/bin/ifp");
        let want = "run kmeans --workers 3 --inner 2 --out /o/run.json --data s3://b/k.npy \
                    --backend lambda --function ifp-3538 --memory-mb 3538 --region eu-west-1 \
                    --lambda-endpoint http://127.0.0.1:1 --lambda-endpoint http://127.0.0.1:2 --arch arm64 --k 4";
        assert_eq!(args(&cmd).join(" "), want.split_whitespace().collect::<Vec<_>>().join(" "));
        // The Redis URL (and its password) is in the child's environment, not its arguments.
        let env: Vec<_> = cmd.get_envs().map(|(k, v)| (k.to_owned(), v.map(|v| v.to_owned()))).collect();
        assert_eq!(env, vec![(REDIS_ENV.into(), Some("redis://r:6379".into()))]);
        // Six vCPUs and more: Lambda's 10,240 MB cap.
        let cmd = plan.command(Config { workers: 1, inner: 6 }, Path::new("/o/r.json"));
        assert!(args(&cmd).join(" ").contains("--function ifp-10240 --memory-mb 10240"));
        // x86_64, `ifp run`'s default, is not passed.
        let x86 = RunPlan { arch: Arch::X86_64, ..plan };
        assert!(!args(&x86.command(Config { workers: 1, inner: 1 }, Path::new("/o/r.json"))).contains(&"--arch".into()));
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
            arch: Arch::X86_64,
            pin_cpus: Some(4),
            run_args: &[],
        };
        let cmd = plan.command(Config { workers: 3, inner: 2 }, Path::new("/o/r.json"));
        assert_eq!(cmd.get_program(), "taskset");
        assert_eq!(args(&cmd).join(" "), "-c 0,1,2,3 /bin/ifp run logreg --workers 3 --inner 2 --out /o/r.json");
    }
}
