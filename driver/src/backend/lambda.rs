//! The Lambda backend: invokes one function (`bootstrap` from `ifp-host-lambda`) per task,
//! concurrently, with `aws-sdk-lambda`, one `RequestResponse` invocation each (the event is
//! the task, the response the function's report), and keeps a report of each invocation and
//! what the run cost.
//!
//! The functions synchronise through Redis by themselves; the driver never needs to reach it
//! (an ElastiCache cluster is usually only reachable from inside its VPC).
//!
//! Cost: billed duration (from the invocation's log tail when Lambda returns one, else the
//! function's own wall time, plus its init time when cold, rounded up to 1 ms) × configured
//! memory × the price per GB-second, plus the price per request (us-east-1 prices).
//!
//! `--lambda-endpoint` replaces AWS's endpoint; given several, functions use them round robin
//! (AWS's Lambda Runtime Interface Emulator serves one invocation at a time, so tests start
//! one emulator per function).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_lambda::config::Region;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{InvocationType, LogType};
use base64::Engine as _;
use serde_json::{json, Value};

use ifp_host::job::{Backend, OnIteration};

use super::retry::{FunctionRun, Next, RetryPolicy};
use crate::interrupt;

use crate::pricing::{Arch, MAX_MEMORY_MB, MIN_MEMORY_MB, PRICE_PER_REQUEST};
use ifp_host::{FailureKind, FunctionFailure, FunctionReport, FunctionTask};

/// Lambda's longest invocation (15 minutes) plus a margin: the client waits this long.
pub const INVOCATION_TIMEOUT: Duration = Duration::from_secs(15 * 60 + 60);
/// The options of the Lambda backend.
#[derive(clap::Args, Debug, Clone)]
#[command(next_help_heading = "Lambda (--backend lambda)")]
pub struct LambdaArgs {
    /// The Lambda function (name or ARN) running `bootstrap` (--backend lambda).
    #[arg(long, value_name = "NAME")]
    pub function: Option<String>,
    /// AWS region (default: the AWS configuration's, else us-east-1).
    #[arg(long)]
    pub region: Option<String>,
    /// The function's configured memory in MB, for the cost when the function does not
    /// report it (it does: this is a fallback).
    #[arg(long, value_parser = clap::value_parser!(u64).range(MIN_MEMORY_MB..=MAX_MEMORY_MB))]
    pub memory_mb: Option<u64>,
    /// The function's architecture, for prices.
    #[arg(long, value_enum, default_value_t = Arch::X86_64)]
    pub arch: Arch,
    /// Lambda API endpoints instead of AWS's (comma-separated or repeated; workers use them
    /// round robin, e.g. one Lambda Runtime Interface Emulator per worker).
    #[arg(long = "lambda-endpoint", value_name = "URL", value_delimiter = ',')]
    pub endpoints: Vec<String>,
}

/// One invocation as the driver saw it.
struct Invoked {
    report: FunctionReport,
    wall_s: f64,
    /// From the log tail's REPORT line, when Lambda sent one.
    billed_ms: Option<u64>,
    memory_mb: Option<u64>,
    /// Sizes of the event and the response: both must stay far below Lambda's 6 MB caps
    /// whatever the data size (per-row outputs go to their destination, not the response).
    event_bytes: usize,
    response_bytes: usize,
}

/// Lambda invocations of one function (`bootstrap`), one per task.
pub struct Lambda<'a> {
    pub args: &'a LambdaArgs,
    pub function: String,
    pub quiet: bool,
    /// How a lost invocation (crash, timeout, throttling, network) is invoked again.
    pub retry: RetryPolicy,
    /// What each successful invocation cost, filled by [`Backend::run`], for [`Lambda::report`].
    invoked: Mutex<Vec<Invoked>>,
}

impl<'a> Lambda<'a> {
    pub fn new(args: &'a LambdaArgs, quiet: bool) -> Result<Self> {
        let function = args.function.clone().context("--backend lambda needs --function NAME")?;
        Ok(Self { args, function, quiet, retry: RetryPolicy::new(1), invoked: Mutex::default() })
    }

    /// The per-invocation timings, billed durations and cost of the last run, for the result.
    pub fn report(&self) -> Value {
        report_json(self.args, &self.function, &self.invoked.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Backend for Lambda<'_> {
    fn run(
        &self,
        tasks: Vec<FunctionTask>,
        _on_iteration: OnIteration<'_>,
    ) -> Vec<Result<FunctionReport, FunctionFailure>> {
        let host_failure = |m: String| FunctionFailure::new(FailureKind::Host, None, None, m);
        let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                return tasks
                    .iter()
                    .map(|_| Err(host_failure(format!("cannot start the async runtime: {e}"))))
                    .collect()
            }
        };
        let results = rt.block_on(invoke_all(self, tasks));
        let mut invoked = self.invoked.lock().unwrap_or_else(|p| p.into_inner());
        invoked.clear();
        results
            .into_iter()
            .map(|(r, calls)| {
                invoked.extend(calls);
                r
            })
            .collect()
    }
}

/// A function's result and every invocation it took.
type Outcome = (Result<FunctionReport, FunctionFailure>, Vec<Invoked>);

async fn invoke_all(l: &Lambda<'_>, tasks: Vec<FunctionTask>) -> Vec<Outcome> {
    let (a, quiet) = (l.args, l.quiet);
    // An emulator serves one invocation at a time, and every function of a job must run at
    // once (they wait for each other): fewer endpoints than functions would hang the job.
    if !a.endpoints.is_empty() && a.endpoints.len() < tasks.len() {
        let message = format!(
            "--lambda-endpoint: {} endpoints for {} functions; an endpoint (a Lambda Runtime Interface Emulator) serves one invocation at a time and the functions must all run at once: give one endpoint per function",
            a.endpoints.len(),
            tasks.len()
        );
        let bad = FunctionFailure::new(FailureKind::BadInput, None, None, message);
        return tasks.iter().map(|_| (Err(bad.clone()), Vec::new())).collect();
    }
    let region =
        RegionProviderChain::first_try(a.region.clone().map(Region::new)).or_default_provider().or_else("us-east-1");
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(INVOCATION_TIMEOUT)
        .operation_attempt_timeout(INVOCATION_TIMEOUT)
        .operation_timeout(INVOCATION_TIMEOUT)
        .build();
    // The SDK's own retries are off: a lost invocation is invoked again by `FunctionRun`,
    // which records the attempt and waits for it the same way on every backend.
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
    let started = Instant::now();
    let mut handles = Vec::with_capacity(tasks.len());
    for task in tasks {
        let client = clients[task.function as usize % clients.len()].clone();
        let (name, f, policy) = (l.function.clone(), task.function, l.retry);
        handles.push(tokio::spawn(async move {
            let mut run = FunctionRun::new(f, &policy, started);
            let mut calls = Vec::new();
            loop {
                let attempt = run.attempt();
                let next = tokio::select! {
                    r = invoke(&client, &name, &task) => match r {
                        Ok(i) => {
                            if !quiet {
                                eprintln!(
                                    "function {f}: {} in {:.3} s ({} iterations, {})",
                                    if i.report.continuation { "left before its time limit" } else { "done" },
                                    i.wall_s,
                                    i.report.iterations.len(),
                                    if i.report.invocation.as_ref().is_some_and(|v| v.cold) { "cold" } else { "warm" }
                                );
                            }
                            let report = i.report.clone();
                            calls.push(i);
                            run.reported(report)
                        }
                        Err(Failed::Lost(e)) => {
                            if !quiet {
                                eprintln!("function {f}: attempt {attempt} lost: {}", e.message);
                            }
                            run.lost(e)
                        }
                        Err(Failed::Own(e)) => Next::Done(Err(e)),
                    },
                    sig = interrupted() => {
                        let message = format!("stopped by the driver on {sig}");
                        Next::Done(Err(FunctionFailure::new(FailureKind::Aborted, Some(f), None, message)))
                    }
                };
                match next {
                    Next::Done(r) => return (r, calls),
                    Next::Again(d) => tokio::time::sleep(d).await,
                }
            }
        }));
    }
    let mut out = Vec::with_capacity(handles.len());
    for (f, h) in handles.into_iter().enumerate() {
        out.push(h.await.unwrap_or_else(|e| {
            let message = format!("the invocation task panicked: {e}");
            (Err(FunctionFailure::new(FailureKind::Host, Some(f as u32), None, message)), Vec::new())
        }));
    }
    out
}

/// Resolves when the driver received SIGINT, SIGTERM or SIGHUP, with the signal's name.
async fn interrupted() -> &'static str {
    loop {
        if let Some(sig) = interrupt::received() {
            return sig;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Why an invocation did not return a report.
enum Failed {
    /// The function's own typed failure: final.
    Own(FunctionFailure),
    /// Lost: crashed, timed out, throttled, or not reached; invoking it again may succeed.
    Lost(FunctionFailure),
}

/// Whether an SDK error is worth invoking again: no response, a timeout, throttling (429) or
/// a server error (5xx). A wrong function name, missing permissions or a bad request are not.
fn lost_in_transit<E>(e: &aws_sdk_lambda::error::SdkError<E>) -> bool {
    use aws_sdk_lambda::error::SdkError;
    match e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(s) => {
            let status = s.raw().status().as_u16();
            status == 429 || status >= 500
        }
        _ => false,
    }
}

/// One invocation of `task`. A function's own failure comes back typed (its `errorMessage`
/// is the [`FunctionFailure`] as JSON); what Lambda itself reports (a timeout, a crash, an
/// invocation refused) becomes a [`FailureKind::Host`] failure with Lambda's words.
async fn invoke(client: &aws_sdk_lambda::Client, function: &str, task: &FunctionTask) -> Result<Invoked, Failed> {
    let f = task.function;
    let host = |m: String| FunctionFailure::new(FailureKind::Host, Some(f), None, m);
    let payload = serde_json::to_vec(task).map_err(|e| Failed::Own(host(format!("cannot encode the task: {e}"))))?;
    let event_bytes = payload.len();
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
            let failure = host(if matches!(e, aws_sdk_lambda::error::SdkError::TimeoutError(_)) {
                format!("the invocation timed out: no response within {} s", INVOCATION_TIMEOUT.as_secs())
            } else {
                let line = ifp_host::aws_error::describe(&e);
                // A 404 from Lambda (or the emulator) is nearly always the function's name or region.
                let hint = if line.starts_with("HTTP 404") || line.contains("ResourceNotFound") {
                    format!("; is there a function '{function}' in this region (--function, --region)?")
                } else {
                    String::new()
                };
                format!("could not invoke function '{function}': {line}{hint}")
            });
            if lost_in_transit(&e) {
                Failed::Lost(failure)
            } else {
                Failed::Own(failure)
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
        // The function's own failure is final (unless the store was unreachable); anything
        // else (a crash, the time limit, the runtime's own errors) lost the invocation.
        return Err(match serde_json::from_str::<FunctionFailure>(&message) {
            Ok(failure) if failure.kind.retryable() => Failed::Lost(failure),
            Ok(failure) => Failed::Own(failure),
            Err(_) => Failed::Lost(host(format!("the invocation failed ({error_type}): {}", one_line(&message)))),
        });
    }
    let report: FunctionReport = serde_json::from_slice(body).map_err(|e| {
        Failed::Own(host(format!(
            "unreadable response ({e}): {}",
            one_line(&String::from_utf8_lossy(&body[..body.len().min(300)]))
        )))
    })?;
    let (billed_ms, memory_mb) = log.as_deref().map(parse_report).unwrap_or((None, None));
    Ok(Invoked { report, wall_s, billed_ms, memory_mb, event_bytes, response_bytes: body.len() })
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
    let price = a.arch.prices().gb_second;
    let mut gb_s_total = 0.0;
    let mut cost_known = true;
    let rows: Vec<Value> = invoked
        .iter()
        .map(|i| {
            let r = i.report.invocation.clone().unwrap_or_default();
            let billed_ms =
                i.billed_ms.unwrap_or_else(|| (r.duration_ms + r.init_s.unwrap_or(0.0) * 1e3).ceil() as u64);
            let memory_mb = i.memory_mb.or(r.memory_mb).or(a.memory_mb);
            let gb_s = memory_mb.map(|m| m as f64 / 1024.0 * billed_ms as f64 / 1e3);
            match gb_s {
                Some(g) => gb_s_total += g,
                None => cost_known = false,
            }
            json!({
                "worker": i.report.function,
                "function": i.report.function,
                "cold": r.cold,
                "kernel_source": i.report.kernel_origin,
                "kernel_s": i.report.kernel_s,
                "init_s": r.init_s,
                "first_iteration_s": r.first_iteration_s,
                "joined_at": i.report.joined_at,
                "duration_ms": r.duration_ms,
                "wall_s": i.wall_s,
                "event_bytes": i.event_bytes,
                "response_bytes": i.response_bytes,
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
}
