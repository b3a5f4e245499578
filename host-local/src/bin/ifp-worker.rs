//! `ifp-worker`: one ifp function as a local process, an adapter over
//! [`ifp_host::run_task`]. It reads one [`FunctionTask`] as JSON from stdin (or from the file
//! given as its only argument), runs it, and writes JSON lines to stdout:
//! `{"iteration": IterationReport}` after every iteration, then `{"report": FunctionReport}`
//! or `{"failure": FunctionFailure}`. Exit status: 0 done, 1 this function failed, 3 another
//! function failed first (it only stopped), 2 the task could not be read.
//!
//! Environment: `IFP_REDIS_URL` (the store of a task that names none, so a password need not
//! be written anywhere), `IFP_KERNEL_CACHE` (compiled kernels by content hash),
//! `AWS_ENDPOINT_URL_S3` (an S3-compatible server), `IFP_LOG` (log filter). A worker started
//! again with the same task rejoins the job where it is.

use std::io::{Read as _, Write};
use std::process::ExitCode;

use ifp_host::data::object::S3Connector;
use ifp_host::kernel::Kernels;
use ifp_host::run_task::{run_task, TaskContext};
use ifp_host::task::RedisUrl;
use ifp_host::{FailureKind, FunctionFailure, FunctionTask, Sandbox};

const USAGE: &str = "usage: ifp-worker [TASK.json] (default: the task on stdin); see the ifp_host::task docs";

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn read_stdin() -> Result<(String, String), String> {
    let mut s = String::new();
    std::io::stdin().read_to_string(&mut s).map_err(|e| format!("cannot read the task from stdin: {e}"))?;
    Ok((s, "stdin".to_string()))
}

fn read_task() -> Result<FunctionTask, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (text, from) = match args.as_slice() {
        [] => read_stdin()?,
        [a] if a == "-" => read_stdin()?,
        [a] if a == "--help" || a == "-h" => return Err(USAGE.into()),
        [path] if !path.starts_with('-') => {
            (std::fs::read_to_string(path).map_err(|e| format!("cannot read the task {path}: {e}"))?, path.clone())
        }
        _ => return Err(format!("unexpected arguments {args:?} ({USAGE})")),
    };
    serde_json::from_str(&text).map_err(|e| format!("invalid task in {from}: {e}"))
}

fn line(out: &mut impl Write, key: &str, value: &impl serde::Serialize) -> std::io::Result<()> {
    writeln!(out, "{}", serde_json::json!({ key: value }))?;
    out.flush()
}

fn main() -> ExitCode {
    ifp_host::release_large_buffers();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("IFP_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let mut task = match read_task() {
        Ok(t) => t,
        Err(e) if e == USAGE => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if task.redis.is_none() {
        task.redis = env("IFP_REDIS_URL").map(RedisUrl);
    }
    let kernels = Kernels::new(env("IFP_KERNEL_CACHE").map(Into::into), Sandbox::default());
    let s3 = S3Connector::new(env("AWS_ENDPOINT_URL_S3"));
    let default_inner = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let cx = TaskContext { kernels: &kernels, s3: &s3, in_process: None, data: None, default_inner, deadline: None };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut write_err = None;
    let result = run_task(&task, &cx, &mut |it| {
        if let Err(e) = line(&mut out, "iteration", it) {
            write_err.get_or_insert(e);
        }
    });
    let result = match (result, write_err) {
        (Ok(_), Some(e)) => {
            Err(FunctionFailure::new(FailureKind::Host, Some(task.function), None, format!("writing progress: {e}")))
        }
        (r, _) => r,
    };
    match result {
        Ok(report) => match line(&mut out, "report", &report) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: writing the report: {e}");
                ExitCode::FAILURE
            }
        },
        Err(f) => {
            let _ = line(&mut out, "failure", &f);
            eprintln!("error: {}", f.message);
            ExitCode::from(if f.kind == FailureKind::Aborted { 3 } else { 1 })
        }
    }
}
