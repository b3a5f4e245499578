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

use super::retry::{lost, FunctionRun, Next, RetryPolicy};
use crate::interrupt;
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

/// How often the driver looks up from its workers' output (signals, restarts).
const TICK: Duration = Duration::from_millis(100);

/// `ifp-worker` processes on this machine.
pub struct Processes {
    /// How a worker that dies without its report or failure is started again.
    pub retry: RetryPolicy,
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
    let mut command = Command::new(&p.bin);
    command
        .arg(&file)
        .envs(p.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // If the driver dies without stopping its workers (SIGKILL), the kernel stops them.
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt as _;
        // SAFETY: prctl is async-signal-safe; the closure allocates nothing.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
    }
    let mut child = command.spawn().with_context(|| format!("starting function {f} ({})", p.bin.display()))?;
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
        let started = Instant::now();
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
        let n = workers.len();
        let mut runs: Vec<FunctionRun> =
            tasks.iter().map(|t| FunctionRun::new(t.function, &self.retry, started)).collect();
        let mut done: Vec<Option<Result<FunctionReport, FunctionFailure>>> = (0..n).map(|_| None).collect();
        let mut respawn_at: Vec<Option<Instant>> = vec![None; n];
        // Once a function failed for good, the others get ABORT_GRACE to stop by themselves.
        let mut grace: Option<Instant> = None;
        while done.iter().any(Option::is_none) {
            if let Some(sig) = interrupt::received() {
                workers.iter_mut().for_each(Worker::kill);
                for (f, d) in done.iter_mut().enumerate().filter(|(_, d)| d.is_none()) {
                    let message = format!("stopped by the driver on {sig}");
                    *d = Some(Err(FunctionFailure::new(FailureKind::Aborted, Some(f as u32), None, message)));
                }
                break;
            }
            let now = Instant::now();
            if grace.is_some_and(|g| now >= g) {
                break;
            }
            for f in 0..n {
                if respawn_at[f].is_some_and(|at| now >= at) {
                    respawn_at[f] = None;
                    match spawn(self, &tasks[f], tx.clone()) {
                        Ok(w) => workers[f] = w,
                        Err(e) => {
                            done[f] = Some(Err(lost(f as u32, format!("{e:#}"))));
                            grace.get_or_insert(now + ABORT_GRACE);
                        }
                    }
                }
            }
            let wake = respawn_at.iter().flatten().chain(&grace).min().copied();
            let tick = wake.map_or(TICK, |w| w.saturating_duration_since(now).min(TICK));
            let ev = match rx.recv_timeout(tick) {
                Ok(ev) => ev,
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            match ev {
                Event::Iteration(f, it) => {
                    workers[f as usize].last = Some(it.iteration);
                    runs[f as usize].saw(&it);
                    on_iteration(f, &it);
                }
                Event::Report(f, r) => workers[f as usize].result = Some(Ok(*r)),
                Event::Failure(f, e) => workers[f as usize].result = Some(Err(e)),
                Event::Closed(f) => {
                    let (fi, wk) = (f as usize, &mut workers[f as usize]);
                    wk.status = wk.child.wait().ok();
                    let next = match wk.result.take() {
                        Some(Ok(report)) => runs[fi].reported(report),
                        // Its own failure: it told the others through Redis.
                        Some(Err(e)) => Next::Done(Err(e)),
                        None => runs[fi].lost(wk.outcome(f).err().unwrap_or_else(|| lost(f, "ended".into()))),
                    };
                    match next {
                        Next::Done(r) => {
                            if r.is_err() {
                                grace.get_or_insert(Instant::now() + ABORT_GRACE);
                            }
                            done[fi] = Some(r);
                        }
                        Next::Again(d) => respawn_at[fi] = Some(Instant::now() + d),
                    }
                }
            }
        }
        // Whatever happened, no worker outlives the job.
        workers.iter_mut().for_each(Worker::kill);
        done.into_iter()
            .zip(workers.iter_mut())
            .enumerate()
            .map(|(f, (d, w))| d.unwrap_or_else(|| w.outcome(f as u32)))
            .collect()
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
