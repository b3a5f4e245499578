//! The handler called directly with hand-built `LambdaEvent`s, over the in-process state
//! store (one function): the model equals the local engine's, and bad events and bad data
//! come back as typed failures that say whether a retry can help.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ifp_host::data::Data;
use ifp_host::job::{run_in_process, JobPlan};
use ifp_host::kernel::{KernelOrigin, Kernels};
use ifp_host::sync::InProcess;
use ifp_host::{FailureKind, FunctionFailure, FunctionReport, KernelEngine, LabelCol, Sandbox};
use ifp_host_lambda::handler::{handle, Deps};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{json, Value};

/// A function alone on the in-process store of job `job`.
fn deps(job: &str, memory_mb: Option<u64>) -> Arc<Deps> {
    let mut d = Deps::new(Kernels::new(None, Sandbox::default()), memory_mb, None, Instant::now());
    d.in_process = Some(InProcess::new(job, 1, Duration::from_secs(10)));
    Arc::new(d)
}

/// The handler's answer: the report, or the failure read back from Lambda's error document
/// (`errorType` `ifp.<Kind>`, `errorMessage` the failure as JSON).
fn call(deps: &Arc<Deps>, payload: Value) -> Result<FunctionReport, FunctionFailure> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(handle(LambdaEvent::new(payload, Context::default()), deps.clone())).map_err(|d| {
        let f: FunctionFailure = serde_json::from_str(&d.error_message).expect("the error message is a failure");
        assert_eq!(d.error_type, format!("ifp.{}", f.kind.name()));
        f
    })
}

fn write_csv(dir: &std::path::Path) -> String {
    let mut s = String::new();
    for r in 0..400u32 {
        s.push_str(&format!("{},{},{}\n", (r % 13) as f32 * 0.5, (r % 7) as f32 - 3.0, (r % 3) as f32));
    }
    let p = dir.join("d.csv");
    std::fs::write(&p, s).unwrap();
    p.display().to_string()
}

#[test]
fn one_function_with_memory_sized_inner_workers_matches_the_local_engine() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_csv(dir.path());
    let d = deps("h1", Some(3538));
    let ev = json!({ "job": "h1", "function": 0, "functions": 1, "data": data, "kernel": "kmeans",
                     "params": { "k": 3, "init": "first" }, "max_iter": 30 });
    let r = call(&d, ev.clone()).expect("the invocation succeeds");
    assert_eq!(r.inner, 2, "3,538 MB is two vCPUs");
    let inv = r.invocation.clone().expect("the Lambda host reports its invocation");
    assert!(inv.cold);
    assert_eq!(r.kernel_origin, KernelOrigin::Compiled);
    assert_eq!(inv.memory_mb, Some(3538));

    let engine = Arc::new(KernelEngine::builtin("kmeans", Sandbox::default()).unwrap());
    let file = ifp_host::data::local::DataFile::open(std::path::Path::new(&data)).unwrap();
    let plan = JobPlan {
        job: "ref".into(),
        kernel: "kmeans".into(),
        kernel_sha256: None,
        kernel_memory_mb: None,
        step_timeout_s: None,
        data: data.clone(),
        data_etag: None,
        label_col: LabelCol::None,
        csv: Default::default(),
        libsvm: Default::default(),
        s3_endpoint: None,
        params: vec![("k".into(), "3".into()), ("init".into(), "first".into())],
        functions: 1,
        inner: Some(2),
        max_iter: 30,
        sync_timeout: Duration::from_secs(10),
        assignments: false,
        labels_out: None,
        redis: None,
        model: None,
        run: None,
        resume: false,
        staleness: 0,
    };
    let local = run_in_process(engine, &plan, &Data::File { file, label: LabelCol::None }, &|_, _| {}).unwrap();
    assert_eq!(r.model, local.model, "same data, same split, same sums: the same bits");

    // Warm: the kernel is already in memory.
    let warm = call(&d, ev).unwrap();
    assert!(!warm.invocation.unwrap().cold);
    assert_eq!(warm.kernel_origin, KernelOrigin::Memory);
}

#[test]
fn a_malformed_event_is_a_bad_input_that_no_retry_can_fix() {
    let d = deps("h2", None);
    let e =
        call(&d, json!({ "job": "h2", "function": 1, "functions": 2, "kernel": "kmeans", "max_iter": 3 })).unwrap_err();
    assert_eq!((e.kind, e.function), (FailureKind::BadInput, Some(1)));
    assert!(!e.kind.retryable());
    assert_eq!(e.to_string(), "function 1 failed: invalid event: missing field `data`");
    let e = call(
        &d,
        json!({ "job": "h2", "function": 2, "functions": 2, "data": "x.npy", "kernel": "kmeans", "max_iter": 3 }),
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "function 2 failed: function 2 is out of range for functions = 2");
    let e = call(
        &d,
        json!({ "job": "h2", "function": 0, "functions": 1, "data": "x.npy", "kernel": "svm", "max_iter": 3 }),
    )
    .unwrap_err();
    assert_eq!(e.kind, FailureKind::BadInput);
    assert!(e.message.starts_with("unknown kernel 'svm'"), "{e}");
}

#[test]
fn a_bad_data_uri_is_a_data_source_failure_naming_the_uri() {
    let d = deps("h3", None);
    let e = call(&d, json!({ "job": "h3", "function": 0, "functions": 1, "data": "/nonexistent/blobs.npy", "kernel": "kmeans", "max_iter": 3 }))
        .unwrap_err();
    assert_eq!(e.kind, FailureKind::DataSource);
    assert!(e.message.starts_with("cannot read /nonexistent/blobs.npy"), "{e}");
}

#[test]
fn a_task_without_a_store_says_how_to_give_one() {
    let d = Arc::new(Deps::new(Kernels::new(None, Sandbox::default()), None, None, Instant::now()));
    let e = call(
        &d,
        json!({ "job": "h4", "function": 0, "functions": 1, "data": "x.npy", "kernel": "kmeans", "max_iter": 3 }),
    )
    .unwrap_err();
    assert_eq!(e.kind, FailureKind::BadInput);
    assert!(e.message.contains("IFP_REDIS_URL"), "{e}");
}
