//! The processes backend (`ifp run --redis`): every function is an `ifp-worker` process
//! that reads its task from a file (`JOB-function-F.task.json`, so `ps` shows which job
//! and function a process is; the Redis URL stays in its environment, never in the file
//! or on the command line) and synchronises through Redis. The driver follows
//! their progress lines and collects their reports or failures. When a function fails, the
//! others are told through Redis and stop by themselves; whoever has not stopped within
//! [`ABORT_GRACE`] is killed, so no worker outlives the job.

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use serde_json::Value;

use ifp_host::job::{Backend, OnIteration};
use ifp_host::{FailureKind, FunctionFailure, FunctionReport, FunctionTask, IterationReport};

/// How long the driver lets the other functions stop by themselves after one failed (they
/// are told through Redis), before killing them.
pub const ABORT_GRACE: Duration = Duration::from_secs(2);

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

/// `ifp-worker` processes on this machine.
pub struct Processes {
    pub bin: PathBuf,
    /// Environment of every worker (`IFP_REDIS_URL`, `IFP_KERNEL_CACHE`, `AWS_ENDPOINT_URL_S3`).
    pub env: Vec<(String, String)>,
    /// Where the task files are written.
    pub dir: PathBuf,
}

/// The task file of function `f` of `job` in `dir`.
pub fn task_file(dir: &Path, job: &str, f: u32) -> PathBuf {
    dir.join(format!("{job}-function-{f}.task.json"))
}

enum Event {
    Iteration(u32, IterationReport),
    Report(u32, Box<FunctionReport>),
    Failure(u32, FunctionFailure),
    /// The worker closed its output: it exited (or is about to).
    Closed(u32),
}

struct Worker {
    child: Child,
    stderr: Option<std::thread::JoinHandle<String>>,
    /// Last iteration it reported.
    last: Option<u32>,
    result: Option<Result<FunctionReport, FunctionFailure>>,
    status: Option<ExitStatus>,
    /// The driver stopped it (after another function failed).
    stopped: bool,
}

impl Worker {
    fn kill(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
            self.stopped = true;
        }
    }

    /// What became of function `f`, from what it said and how it ended.
    fn outcome(&mut self, f: u32) -> Result<FunctionReport, FunctionFailure> {
        if let Some(r) = self.result.take() {
            return r;
        }
        if self.stopped {
            let message = "stopped by the driver after another function failed";
            return Err(FunctionFailure::new(FailureKind::Aborted, Some(f), self.last.map(|t| t + 1), message));
        }
        let stderr = self.stderr.take().map(|h| h.join().unwrap_or_default()).unwrap_or_default();
        let said = stderr.lines().rev().find(|l| !l.trim().is_empty()).map(|l| l.trim_start_matches("error: "));
        let status = self.status.map_or("was stopped".to_string(), describe_status);
        let message = match said {
            Some(m) => format!("the ifp-worker process {status}: {m}"),
            None => format!("the ifp-worker process {status}"),
        };
        Err(FunctionFailure::new(FailureKind::Host, Some(f), self.last.map(|t| t + 1), message))
    }
}

fn spawn(p: &Processes, task: &FunctionTask, tx: mpsc::Sender<Event>) -> Result<Worker> {
    let f = task.function;
    let file = task_file(&p.dir, &task.job, f);
    let mut task = task.clone();
    task.redis = None;
    std::fs::write(&file, serde_json::to_vec(&task)?)
        .with_context(|| format!("writing function {f}'s task to {}", file.display()))?;
    let mut child = Command::new(&p.bin)
        .arg(&file)
        .envs(p.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting function {f} ({})", p.bin.display()))?;
    let out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            let Ok(v) = serde_json::from_str::<Value>(&line) else { continue };
            let ev = if let Some(it) = v.get("iteration") {
                serde_json::from_value(it.clone()).ok().map(|it| Event::Iteration(f, it))
            } else if let Some(r) = v.get("report") {
                serde_json::from_value(r.clone()).ok().map(|r| Event::Report(f, Box::new(r)))
            } else if let Some(e) = v.get("failure") {
                serde_json::from_value(e.clone()).ok().map(|e| Event::Failure(f, e))
            } else {
                None
            };
            if let Some(ev) = ev {
                let _ = tx.send(ev);
            }
        }
        let _ = tx.send(Event::Closed(f));
    });
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    Ok(Worker { child, stderr: Some(stderr), last: None, result: None, status: None, stopped: false })
}

impl Backend for Processes {
    fn run(
        &self,
        tasks: Vec<FunctionTask>,
        on_iteration: OnIteration<'_>,
    ) -> Vec<Result<FunctionReport, FunctionFailure>> {
        let (tx, rx) = mpsc::channel::<Event>();
        let mut workers: Vec<Worker> = Vec::new();
        for task in &tasks {
            match spawn(self, task, tx.clone()) {
                Ok(w) => workers.push(w),
                Err(e) => {
                    workers.iter_mut().for_each(Worker::kill);
                    let failure = FunctionFailure::new(FailureKind::Host, Some(task.function), None, format!("{e:#}"));
                    return tasks.iter().map(|_| Err(failure.clone())).collect();
                }
            }
        }
        drop(tx);
        let mut deadline: Option<Instant> = None;
        let mut open = workers.len();
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
                Event::Iteration(f, it) => {
                    workers[f as usize].last = Some(it.iteration);
                    on_iteration(f, &it);
                }
                Event::Report(f, r) => workers[f as usize].result = Some(Ok(*r)),
                Event::Failure(f, e) => workers[f as usize].result = Some(Err(e)),
                Event::Closed(f) => {
                    open -= 1;
                    let wk = &mut workers[f as usize];
                    wk.status = wk.child.wait().ok();
                    if !matches!(wk.result, Some(Ok(_))) {
                        // The others are told through Redis; give them a moment to say so.
                        deadline.get_or_insert_with(|| Instant::now() + ABORT_GRACE);
                    }
                }
            }
        }
        // Whatever happened, no worker outlives the job.
        workers.iter_mut().for_each(Worker::kill);
        workers.iter_mut().enumerate().map(|(f, w)| w.outcome(f as u32)).collect()
    }
}

fn describe_status(s: ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        if let Some(sig) = s.signal() {
            return format!("was killed by signal {sig}");
        }
    }
    match s.code() {
        Some(c) => format!("exited with status {c}"),
        None => "exited with no status".into(),
    }
}
