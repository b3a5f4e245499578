//! The Lambda backend of `ifp run`: invokes W functions (`bootstrap` from `ifp-host-lambda`)
//! concurrently with `aws-sdk-lambda`, one `RequestResponse` invocation per worker, waits for
//! all of them, and turns their results into the same [`JobOutcome`] the local backend gives,
//! plus a report of each invocation and what the run cost.
//!
//! The functions synchronise through Redis by themselves; the driver never needs to reach it
//! (an ElastiCache cluster is usually only reachable from inside its VPC). The initial model
//! is computed here, from the same data, so every function starts from the same model.
//!
//! Cost: billed duration (from the invocation's log tail when Lambda returns one, else the
//! function's own wall time, plus its init time when cold, rounded up to 1 ms) × configured
//! memory × the price per GB-second, plus the price per request (us-east-1 prices).
//!
//! `--lambda-endpoint` replaces AWS's endpoint; given several, workers use them round robin
//! (AWS's Lambda Runtime Interface Emulator serves one invocation at a time, so tests start
//! one emulator per worker).

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_lambda::config::Region;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{InvocationType, LogType};
use base64::Engine as _;
use serde_json::{json, Value};

use ifp_host::data::LabelCol;
use ifp_host::function::FunctionReport;
use ifp_host::job::{initial_model, Data, JobConfig, JobOutcome};
use ifp_host::KernelEngine;
use ifp_host_lambda::event::{FunctionResult, JobEvent};

/// Lambda's longest invocation (15 minutes) plus a margin: the client waits this long.
pub const INVOCATION_TIMEOUT: Duration = Duration::from_secs(15 * 60 + 60);
/// Price per request, USD (us-east-1).
pub const PRICE_PER_REQUEST: f64 = 0.20 / 1e6;

/// The function's architecture, for prices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Arch {
    #[value(name = "x86_64")]
    X86_64,
    #[value(name = "arm64")]
    Arm64,
}

impl Arch {
    /// USD per GB-second (us-east-1).
    pub fn price_per_gb_s(self) -> f64 {
        match self {
            Arch::X86_64 => 0.0000166667,
            Arch::Arm64 => 0.0000133334,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }
}

/// Where `ifp run` runs the functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// On this machine (threads, or `ifp-worker` processes with --redis).
    Local,
    /// As AWS Lambda invocations of --function.
    Lambda,
}

/// The options of the Lambda backend.
#[derive(clap::Args, Debug, Clone)]
pub struct LambdaArgs {
    /// The Lambda function (name or ARN) running `bootstrap` (--backend lambda).
    #[arg(long, value_name = "NAME")]
    pub function: Option<String>,
    /// AWS region (default: the AWS configuration's, else us-east-1).
    #[arg(long)]
    pub region: Option<String>,
    /// The function's configured memory in MB, for the cost when the function does not
    /// report it (it does: this is a fallback).
    #[arg(long, value_parser = clap::value_parser!(u64).range(128..=10240))]
    pub memory_mb: Option<u64>,
    /// The function's architecture, for prices.
    #[arg(long, value_enum, default_value_t = Arch::X86_64)]
    pub arch: Arch,
    /// Lambda API endpoint instead of AWS's (repeatable: workers use them round robin, e.g.
    /// one Lambda Runtime Interface Emulator per worker).
    #[arg(long = "lambda-endpoint", value_name = "URL")]
    pub endpoints: Vec<String>,
}

/// What the driver asks of the functions besides [`JobConfig`].
pub struct LambdaJob<'a> {
    /// A builtin kernel's name, or a plugin's `s3://` URI (or absolute path, for an emulator
    /// on this machine).
    pub kernel: &'a str,
    /// A plugin's SHA-256: the functions refuse a component with other bytes.
    pub kernel_sha256: Option<&'a str>,
    pub sandbox: &'a ifp_host::Sandbox,
    /// Where the functions read the data: `s3://…` or an absolute path.
    pub data: &'a str,
    pub label: LabelCol,
    /// Inner workers per function (`None`: each function sizes them from its memory).
    pub inner: Option<usize>,
    /// The Redis URL for the functions (`None`: the function's IFP_REDIS_URL).
    pub redis: Option<&'a str>,
    pub quiet: bool,
}

/// One invocation as the driver saw it.
struct Invoked {
    result: FunctionResult,
    wall_s: f64,
    /// From the log tail's REPORT line, when Lambda sent one.
    billed_ms: Option<u64>,
    memory_mb: Option<u64>,
}

/// Runs the job as `cfg.workers` Lambda invocations; returns the outcome and the Lambda report
/// (per-invocation timings, billed duration, cost) for the result JSON.
pub fn run_job(
    a: &LambdaArgs,
    job: &LambdaJob<'_>,
    engine: &KernelEngine,
    cfg: &JobConfig,
    data: &Data,
) -> Result<(JobOutcome, Value)> {
    let function = a.function.as_deref().context("--backend lambda needs --function NAME")?;
    let started = Instant::now();
    let shape = data.shape()?;
    let model0 = initial_model(engine, data, &cfg.params, &cfg.start)?;
    let init_s = started.elapsed().as_secs_f64();
    let events: Vec<JobEvent> = (0..cfg.workers)
        .map(|w| JobEvent {
            job: cfg.job.clone(),
            worker: w,
            workers: cfg.workers,
            inner: job.inner,
            data: job.data.to_string(),
            label_col: job.label,
            kernel: job.kernel.to_string(),
            kernel_sha256: job.kernel_sha256.map(str::to_string),
            kernel_memory_mb: job.sandbox.memory_limit.map(|m| (m >> 20) as u64),
            step_timeout_s: job.sandbox.call_timeout.map(|t| t.as_secs_f64()),
            params: cfg.params.iter().map(|(k, v)| (k.clone(), json!(v))).collect(),
            model: Some(model0.clone()),
            max_iter: cfg.max_iter,
            redis: job.redis.map(str::to_string),
            sync_timeout_s: cfg.sync_timeout.as_secs_f64(),
            assignments: cfg.want_assignments,
        })
        .collect();

    let rt =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")?;
    let results = rt.block_on(invoke_all(a, function, events, job.quiet))?;

    let failures: Vec<(u32, &String)> =
        results.iter().enumerate().filter_map(|(w, r)| r.as_ref().err().map(|e| (w as u32, e))).collect();
    if !failures.is_empty() {
        // Root causes first: a worker that stopped because another failed says "aborted".
        let mut sorted = failures.clone();
        sorted.sort_by_key(|(_, e)| e.contains("aborted: worker"));
        let list: Vec<String> = sorted.iter().map(|(w, e)| format!("worker {w} {e}")).collect();
        bail!("{} of {} functions failed: {}", failures.len(), cfg.workers, list.join("; "));
    }
    let invoked: Vec<Invoked> = results.into_iter().map(|r| r.expect("failures handled above")).collect();
    let reports: Vec<FunctionReport> = invoked.iter().map(|i| i.result.report.clone()).collect();
    let r0 = &reports[0];
    if let Some((w, r)) = reports.iter().enumerate().find(|(_, r)| r.model != r0.model) {
        bail!(
            "functions disagree on the final model: worker {w} returned a model different from worker 0's ({} values)",
            r.model.len()
        );
    }
    let fields = engine.instantiate()?.describe(&cfg.params, shape, &r0.model)?;
    let outcome = JobOutcome::from_reports(shape, fields, reports, init_s, started.elapsed().as_secs_f64());
    Ok((outcome, report_json(a, function, &invoked)))
}

async fn invoke_all(
    a: &LambdaArgs,
    function: &str,
    events: Vec<JobEvent>,
    quiet: bool,
) -> Result<Vec<Result<Invoked, String>>> {
    let region =
        RegionProviderChain::first_try(a.region.clone().map(Region::new)).or_default_provider().or_else("us-east-1");
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(INVOCATION_TIMEOUT)
        .operation_attempt_timeout(INVOCATION_TIMEOUT)
        .operation_timeout(INVOCATION_TIMEOUT)
        .build();
    // No automatic retries: a retried worker is safe (arrivals are idempotent) but a failure
    // is reported as it happened rather than hidden behind a second 15-minute attempt.
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(region)
        .timeout_config(timeouts)
        .retry_config(RetryConfig::disabled())
        .load()
        .await;
    let clients: Vec<aws_sdk_lambda::Client> = if a.endpoints.is_empty() {
        vec![aws_sdk_lambda::Client::new(&sdk)]
    } else {
        a.endpoints
            .iter()
            .map(|e| {
                aws_sdk_lambda::Client::from_conf(aws_sdk_lambda::config::Builder::from(&sdk).endpoint_url(e).build())
            })
            .collect()
    };
    let mut tasks = Vec::with_capacity(events.len());
    for ev in events {
        let client = clients[ev.worker as usize % clients.len()].clone();
        let (function, worker) = (function.to_string(), ev.worker);
        let payload = serde_json::to_vec(&ev)?;
        tasks.push(tokio::spawn(async move {
            let r = invoke(&client, &function, payload).await;
            if !quiet {
                match &r {
                    Ok(i) => eprintln!(
                        "worker {worker}: done in {:.3} s ({} iterations, {})",
                        i.wall_s,
                        i.result.report.iterations.len(),
                        if i.result.cold { "cold" } else { "warm" }
                    ),
                    Err(e) => eprintln!("worker {worker} {e}"),
                }
            }
            r
        }));
    }
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.unwrap_or_else(|e| Err(format!("failed: the invocation task panicked: {e}"))));
    }
    Ok(out)
}

/// One invocation; the error is a phrase to follow "worker W": "failed (TYPE): message",
/// "timed out …", "could not be invoked: …".
async fn invoke(client: &aws_sdk_lambda::Client, function: &str, payload: Vec<u8>) -> Result<Invoked, String> {
    let started = Instant::now();
    let out = client
        .invoke()
        .function_name(function)
        .invocation_type(InvocationType::RequestResponse)
        .log_type(LogType::Tail)
        .payload(Blob::new(payload))
        .send()
        .await
        .map_err(|e| {
            if matches!(e, aws_sdk_lambda::error::SdkError::TimeoutError(_)) {
                format!("timed out: no response within {} s", INVOCATION_TIMEOUT.as_secs())
            } else {
                format!("could not be invoked: {}", aws_sdk_lambda::error::DisplayErrorContext(&e))
            }
        })?;
    let wall_s = started.elapsed().as_secs_f64();
    let body = out.payload().map(|b| b.as_ref()).unwrap_or_default();
    let log = out
        .log_result()
        .and_then(|l| base64::engine::general_purpose::STANDARD.decode(l).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    // Lambda flags a function error with X-Amz-Function-Error; the emulator only sends the
    // error document (or, for a timeout, a line of text).
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let text = String::from_utf8_lossy(body);
    let flagged = out.function_error().or(v.get("errorType").map(|_| "Unhandled"));
    if let Some(kind) = flagged.or(text.contains("timed out after").then_some("Unhandled")) {
        let error_type = v["errorType"].as_str().unwrap_or(kind);
        let message = v["errorMessage"].as_str().map(str::to_string).unwrap_or_else(|| text.trim().to_string());
        let timed_out =
            error_type.contains("Timedout") || error_type.contains("Timeout") || message.contains("timed out after");
        return Err(if timed_out {
            format!("timed out ({error_type}): {}", one_line(&message))
        } else {
            format!("failed ({error_type}): {}", one_line(&message))
        });
    }
    let result: FunctionResult = serde_json::from_slice(body).map_err(|e| {
        format!(
            "failed: unreadable response ({e}): {}",
            one_line(&String::from_utf8_lossy(&body[..body.len().min(300)]))
        )
    })?;
    let (billed_ms, memory_mb) = log.as_deref().map(parse_report).unwrap_or((None, None));
    Ok(Invoked { result, wall_s, billed_ms, memory_mb })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `Billed Duration: N ms` and `Memory Size: N MB` from a Lambda REPORT log line.
fn parse_report(log: &str) -> (Option<u64>, Option<u64>) {
    let field = |name: &str| -> Option<u64> {
        let at = log.find(name)? + name.len();
        log[at..].trim_start().split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    };
    (field("Billed Duration:"), field("Memory Size:"))
}

fn report_json(a: &LambdaArgs, function: &str, invoked: &[Invoked]) -> Value {
    let price = a.arch.price_per_gb_s();
    let mut gb_s_total = 0.0;
    let mut cost_known = true;
    let rows: Vec<Value> = invoked
        .iter()
        .map(|i| {
            let r = &i.result;
            let billed_ms =
                i.billed_ms.unwrap_or_else(|| (r.duration_ms + r.init_s.unwrap_or(0.0) * 1e3).ceil() as u64);
            let memory_mb = i.memory_mb.or(r.memory_mb).or(a.memory_mb);
            let gb_s = memory_mb.map(|m| m as f64 / 1024.0 * billed_ms as f64 / 1e3);
            match gb_s {
                Some(g) => gb_s_total += g,
                None => cost_known = false,
            }
            json!({
                "worker": r.report.worker,
                "cold": r.cold,
                "kernel_source": r.kernel_source,
                "kernel_s": r.kernel_s,
                "init_s": r.init_s,
                "first_iteration_s": r.first_iteration_s,
                "joined_at": r.joined_at,
                "duration_ms": r.duration_ms,
                "wall_s": i.wall_s,
                "billed_ms": billed_ms,
                "billed_from": if i.billed_ms.is_some() { "lambda" } else { "function" },
                "memory_mb": memory_mb,
                "gb_s": gb_s,
                "cost_usd": gb_s.map(|g| g * price + PRICE_PER_REQUEST),
            })
        })
        .collect();
    let requests = invoked.len() as f64 * PRICE_PER_REQUEST;
    json!({
        "function": function,
        "region": a.region,
        "endpoints": a.endpoints,
        "arch": a.arch.name(),
        "price_per_gb_s": price,
        "price_per_request": PRICE_PER_REQUEST,
        "invocations": rows,
        "gb_s": if cost_known { json!(gb_s_total) } else { Value::Null },
        "cost_usd": if cost_known { json!(gb_s_total * price + requests) } else { Value::Null },
    })
}

/// The cost line of the summary.
pub fn print_cost(report: &Value) {
    let n = report["invocations"].as_array().map_or(0, |a| a.len());
    let cold = report["invocations"].as_array().map_or(0, |a| a.iter().filter(|i| i["cold"] == true).count());
    match report["cost_usd"].as_f64() {
        Some(c) => println!(
            "lambda: {n} invocations ({cold} cold), {:.3} GB-s billed, estimated cost ${c:.8} ({} prices, us-east-1)",
            report["gb_s"].as_f64().unwrap_or(0.0),
            report["arch"].as_str().unwrap_or("?"),
        ),
        None => println!("lambda: {n} invocations ({cold} cold); cost unknown: the functions did not report their memory (pass --memory-mb)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_lines_give_billed_duration_and_memory() {
        let log = "START RequestId: x\nEND RequestId: x\nREPORT RequestId: x\tDuration: 1234.56 ms\tBilled Duration: 1235 ms\tMemory Size: 3538 MB\tMax Memory Used: 90 MB\n";
        assert_eq!(parse_report(log), (Some(1235), Some(3538)));
        assert_eq!(parse_report("no report"), (None, None));
    }

    #[test]
    fn prices_follow_the_published_rates() {
        // 1 GB for 1 s on x86_64: $0.0000166667; a million requests: $0.20.
        assert_eq!(Arch::X86_64.price_per_gb_s(), 0.0000166667);
        assert_eq!(Arch::Arm64.price_per_gb_s(), 0.0000133334);
        assert!((PRICE_PER_REQUEST * 1e6 - 0.20).abs() < 1e-12);
    }
}
