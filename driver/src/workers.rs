//! `ifp run --redis`: the job's functions as `ifp-worker` processes synchronising through
//! Redis. The driver checks Redis and claims the job id before any work, computes the initial
//! model once, starts the workers, follows their progress, and collects their reports. If a
//! worker fails, the others are killed and the root cause (worker, iteration, message) is
//! reported; no worker is left running.
//!
//! A plugin reaches every worker as its source (file or `s3://`), the SHA-256 the driver read
//! (a worker that reads other bytes fails the job), the sandbox limits, and a directory with
//! the kernel the driver compiled, so the workers deserialize it instead of compiling again.

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use serde_json::{json, Value};

use ifp_host::data::LabelCol;
use ifp_host::function::{FunctionReport, IterationReport};
use ifp_host::job::{initial_model, Data, JobConfig, JobOutcome};
use ifp_host::redis_store::{redact, JobKeys};
use ifp_host::worker::{write_model, EXIT_ABORTED, REDIS_URL_ENV};
use ifp_host::{KernelCache, KernelEngine, Sandbox};

use crate::output;

/// How long the driver lets the other workers stop by themselves after one reported that
/// another worker failed (they are told through Redis), before killing them.
const ABORT_GRACE: Duration = Duration::from_secs(2);

/// What the workers need besides the job config.
pub struct RedisJob<'a> {
    pub url: &'a str,
    /// The builtin kernel's name (ignored with `plugin`).
    pub algorithm: &'a str,
    /// A plugin's location for the workers: an absolute path or an `s3://` URI.
    pub plugin: Option<&'a str>,
    pub sandbox: &'a Sandbox,
    /// The S3-compatible endpoint the driver uses (the workers get it as AWS_ENDPOINT_URL_S3).
    pub s3_endpoint: Option<&'a str>,
    /// The data file, or `None` for data in memory (written to a temporary .npy first).
    pub data_path: Option<&'a Path>,
    pub label: LabelCol,
}

/// The `ifp-worker` binary: `$IFP_WORKER_BIN`, or next to this executable.
pub fn worker_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("IFP_WORKER_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().context("locating the ifp executable")?;
    let p = exe.with_file_name(format!("ifp-worker{}", std::env::consts::EXE_SUFFIX));
    if !p.is_file() {
        bail!(
            "cannot find the ifp-worker binary at {} (build it with `cargo build -p ifp-host`, or set IFP_WORKER_BIN)",
            p.display()
        );
    }
    Ok(p)
}

enum Event {
    Iteration(u32, IterationReport),
    Report(u32, Box<FunctionReport>),
    /// The worker closed its output: it exited (or is about to).
    Closed(u32),
}

struct Worker {
    child: Child,
    stderr: Option<std::thread::JoinHandle<String>>,
    /// Last iteration it reported.
    last: Option<u32>,
    report: Option<FunctionReport>,
    status: Option<ExitStatus>,
    killed: bool,
}

impl Worker {
    fn stderr_text(&mut self) -> String {
        self.stderr.take().map(|h| h.join().unwrap_or_default()).unwrap_or_default()
    }
    fn kill(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
            self.killed = true;
        }
    }
}

/// Writes in-memory rows as a float32 .npy (label last) for the workers to read.
fn write_rows(path: &Path, data: &Data) -> Result<()> {
    let Data::Memory(rows) = data else { unreachable!("only in-memory data is written out") };
    let n = rows.len();
    let cols = rows.cols;
    let labelled = rows.has_labels();
    let values = (0..n).flat_map(move |i| {
        let (f, l) = rows.slice(i..i + 1);
        f.iter().copied().chain(if labelled { l.first().copied() } else { None })
    });
    output::write_f32(path, n as u64, (cols + labelled as usize) as u64, values)
}

/// Runs the job with `cfg.workers` worker processes over Redis.
pub fn run_workers(
    engine: &KernelEngine,
    cfg: &JobConfig,
    data: &Data,
    r: &RedisJob<'_>,
    on_iteration: &dyn Fn(&IterationReport),
) -> Result<JobOutcome> {
    let started = Instant::now();
    let bin = worker_binary()?;
    // Fails here, before any work, on a wrong address or password, or a job id in use.
    let keys = JobKeys::create(r.url, &cfg.job, cfg.workers, cfg.sync_timeout)?;
    let result = (|| {
        let shape = data.shape()?;
        let model0 = initial_model(engine, data, &cfg.params, &cfg.start)?;
        let init_s = started.elapsed().as_secs_f64();
        let dir = tempfile::tempdir().context("creating a temporary directory for the workers")?;
        let model_path = dir.path().join("model0.f64");
        write_model(&model_path, &model0)?;
        let data_path = match r.data_path {
            Some(p) => p.to_path_buf(),
            None => {
                let p = dir.path().join("data.npy");
                write_rows(&p, data)?;
                p
            }
        };
        let mut args: Vec<String> = vec![
            "--job".into(),
            cfg.job.clone(),
            "--workers".into(),
            cfg.workers.to_string(),
            "--inner".into(),
            cfg.inner.to_string(),
            "--data".into(),
            data_path.display().to_string(),
            "--label-col".into(),
            if r.label == LabelCol::Last { "last" } else { "none" }.into(),
            "--max-iter".into(),
            cfg.max_iter.to_string(),
            "--model".into(),
            model_path.display().to_string(),
            "--sync-timeout".into(),
            cfg.sync_timeout.as_secs_f64().to_string(),
        ];
        match r.plugin {
            Some(p) => {
                let sha = engine.sha256().context("the plugin's content hash")?;
                args.extend(["--kernel".into(), p.to_string(), "--kernel-sha256".into(), sha.to_string()]);
                // The compiled kernel, for the workers to deserialize.
                let cache = KernelCache::new(Some(dir.path().join("kernels")));
                if let Some(d) = &cache.dir {
                    cache.store(engine).context("writing the compiled kernel for the workers")?;
                    args.extend(["--kernel-cache".into(), d.display().to_string()]);
                }
            }
            None => args.extend(["--algorithm".into(), r.algorithm.into()]),
        }
        if let Some(m) = r.sandbox.memory_limit {
            args.extend(["--kernel-memory-mb".into(), (m >> 20).to_string()]);
        }
        if let Some(t) = r.sandbox.call_timeout {
            args.extend(["--step-timeout".into(), t.as_secs_f64().to_string()]);
        }
        for (k, v) in &cfg.params {
            args.extend(["--param".into(), format!("{k}={v}")]);
        }
        if cfg.want_assignments {
            args.push("--assignments".into());
        }
        let mut env = vec![(REDIS_URL_ENV, r.url)];
        if let Some(e) = r.s3_endpoint {
            env.push(("AWS_ENDPOINT_URL_S3", e));
        }
        let reports = supervise(&bin, &args, &env, cfg, on_iteration)?;
        let r0 = &reports[0];
        let fields = engine.instantiate()?.describe(&cfg.params, shape, &r0.model)?;
        Ok(JobOutcome::from_reports(shape, fields, reports, init_s, started.elapsed().as_secs_f64()))
    })();
    // The keys expire by themselves; removing them now is a courtesy.
    if let Err(e) = keys.remove() {
        tracing::warn!("removing the job's keys: {e}");
    }
    result
}

/// Starts the workers and waits for all of them; on the first failure, stops the rest.
fn supervise(
    bin: &Path,
    args: &[String],
    env: &[(&str, &str)],
    cfg: &JobConfig,
    on_iteration: &dyn Fn(&IterationReport),
) -> Result<Vec<FunctionReport>> {
    let (tx, rx) = mpsc::channel::<Event>();
    let mut workers: Vec<Worker> = Vec::new();
    let spawn_all = |workers: &mut Vec<Worker>| -> Result<()> {
        for w in 0..cfg.workers {
            let mut child = Command::new(bin)
                .args(args)
                .args(["--worker", &w.to_string()])
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .with_context(|| format!("starting worker {w} ({})", bin.display()))?;
            let out = child.stdout.take().expect("piped stdout");
            let mut err = child.stderr.take().expect("piped stderr");
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    let Ok(v) = serde_json::from_str::<Value>(&line) else { continue };
                    let ev = if let Some(it) = v.get("iteration") {
                        serde_json::from_value(it.clone()).ok().map(|it| Event::Iteration(w, it))
                    } else if let Some(r) = v.get("report") {
                        serde_json::from_value(r.clone()).ok().map(|r| Event::Report(w, Box::new(r)))
                    } else {
                        None
                    };
                    if let Some(ev) = ev {
                        let _ = tx.send(ev);
                    }
                }
                let _ = tx.send(Event::Closed(w));
            });
            let stderr = std::thread::spawn(move || {
                let mut s = String::new();
                let _ = err.read_to_string(&mut s);
                s
            });
            workers.push(Worker { child, stderr: Some(stderr), last: None, report: None, status: None, killed: false });
        }
        Ok(())
    };
    let spawned = spawn_all(&mut workers);
    drop(tx);
    let mut failed: Vec<u32> = Vec::new();
    let mut deadline: Option<Instant> = None;
    let mut open = workers.len();
    if spawned.is_ok() {
        while open > 0 {
            let ev = match deadline {
                Some(d) => match rx.recv_timeout(d.saturating_duration_since(Instant::now())) {
                    Ok(ev) => ev,
                    Err(_) => break,
                },
                None => match rx.recv() {
                    Ok(ev) => ev,
                    Err(_) => break,
                },
            };
            match ev {
                Event::Iteration(w, it) => {
                    workers[w as usize].last = Some(it.iteration);
                    if w == 0 {
                        on_iteration(&it);
                    }
                }
                Event::Report(w, r) => workers[w as usize].report = Some(*r),
                Event::Closed(w) => {
                    open -= 1;
                    let wk = &mut workers[w as usize];
                    let status = wk.child.wait().with_context(|| format!("waiting for worker {w}"))?;
                    wk.status = Some(status);
                    if !status.success() || wk.report.is_none() {
                        failed.push(w);
                        if status.code() == Some(EXIT_ABORTED as i32) {
                            // Another worker failed first: give it a moment to say why.
                            deadline.get_or_insert_with(|| Instant::now() + ABORT_GRACE);
                        } else {
                            break;
                        }
                    }
                }
            }
        }
    }
    // Whatever happened, no worker outlives this function.
    for wk in &mut workers {
        wk.kill();
    }
    spawned?;
    if failed.is_empty() {
        return Ok(workers.into_iter().map(|w| w.report.expect("every worker reported")).collect());
    }
    let root = failed
        .iter()
        .copied()
        .find(|&w| workers[w as usize].status.and_then(|s| s.code()) != Some(EXIT_ABORTED as i32))
        .unwrap_or(failed[0]);
    let wk = &mut workers[root as usize];
    let during = match wk.last {
        Some(t) => format!("during iteration {}", t + 1),
        None => "before its first iteration ended".to_string(),
    };
    let stderr = wk.stderr_text();
    let message =
        stderr.lines().rev().find(|l| !l.trim().is_empty()).map(|l| l.trim_start_matches("error: ").to_string());
    let status = wk.status.expect("a failed worker has exited");
    Err(match (status.code(), message) {
        (Some(_), Some(m)) => anyhow!("job {}: worker {root} failed {during}: {m}", cfg.job),
        (_, _) => anyhow!("job {}: worker {root} died ({}) {during}", cfg.job, describe_status(status)),
    })
}

fn describe_status(s: ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        if let Some(sig) = s.signal() {
            return format!("killed by signal {sig}");
        }
    }
    match s.code() {
        Some(c) => format!("exit status {c}"),
        None => "no exit status".into(),
    }
}

/// The `sync` section of the result: per iteration, every worker's sync time and round
/// trips; per worker, the totals.
pub fn sync_json(store: &str, url: Option<&str>, o: &JobOutcome) -> Value {
    let iterations: Vec<Value> = (0..o.iterations)
        .map(|t| {
            let of = |r: &FunctionReport| r.iterations.iter().find(|i| i.iteration == t).cloned().unwrap_or_default();
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
                "worker": r.worker,
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
