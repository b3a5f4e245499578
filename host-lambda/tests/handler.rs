//! The handler called directly with hand-built `LambdaEvent`s, over the in-process state
//! store (one function): the model equals the local engine's, and bad events and bad data
//! come back as function errors that say whether a retry can help.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ifp_host::job::{run_in_process, Data, JobConfig};
use ifp_host::sync::{InProcess, StateStore};
use ifp_host::{KernelEngine, Sandbox};
use ifp_host_lambda::event::{ErrorKind, FunctionError, JobEvent, KernelSource};
use ifp_host_lambda::handler::{handle, Connect, Deps, Entry};
use ifp_host_lambda::kernels::Kernels;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{json, Value};

/// One function alone on the in-process store.
struct Alone;

impl Connect for Alone {
    fn connect(
        &self,
        ev: &JobEvent,
        _url: Option<&str>,
        timeout: Duration,
    ) -> Result<(Box<dyn StateStore>, Entry), FunctionError> {
        Ok((Box::new(InProcess::new(&ev.job, ev.workers as usize, timeout)), Entry::default()))
    }
}

fn deps(memory_mb: Option<u64>) -> Arc<Deps> {
    Arc::new(Deps::new(Kernels::new(None, Sandbox::default()), Box::new(Alone), memory_mb, None, Instant::now()))
}

fn call(deps: &Arc<Deps>, payload: Value) -> Result<ifp_host_lambda::event::FunctionResult, FunctionError> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(handle(LambdaEvent::new(payload, Context::default()), deps.clone()))
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
    let d = deps(Some(3538));
    let ev = json!({ "job": "h1", "worker": 0, "workers": 1, "data": data, "kernel": "kmeans",
                     "params": { "k": 3, "init": "first" }, "max_iter": 30 });
    let r = call(&d, ev.clone()).expect("the invocation succeeds");
    assert_eq!(r.report.inner, 2, "3,538 MB is two vCPUs");
    assert!(r.cold);
    assert_eq!(r.kernel_source, KernelSource::Compiled);
    assert_eq!(r.memory_mb, Some(3538));

    let engine = KernelEngine::builtin("kmeans", Sandbox::default()).unwrap();
    let file = ifp_host::data::DataFile::open(std::path::Path::new(&data)).unwrap();
    let cfg = JobConfig {
        job: "ref".into(),
        params: vec![("init".into(), "first".into()), ("k".into(), "3".into())],
        max_iter: 30,
        workers: 1,
        inner: 2,
        sync_timeout: Duration::from_secs(10),
        want_assignments: false,
        start: vec![],
    };
    let local = run_in_process(&engine, &cfg, &Data::File { file, label: Default::default() }, &|_| {}).unwrap();
    assert_eq!(r.report.model, local.model, "same data, same split, same sums: the same bits");

    // Warm: the kernel is already in memory.
    let warm = call(&d, ev).unwrap();
    assert!(!warm.cold);
    assert_eq!(warm.kernel_source, KernelSource::Memory);
}

#[test]
fn a_malformed_event_is_a_non_retryable_bad_event() {
    let d = deps(None);
    let e = call(&d, json!({ "job": "h2", "worker": 1, "workers": 2, "kernel": "kmeans", "max_iter": 3 })).unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadEvent);
    assert_eq!(e.to_string(), "retryable: false; worker 1: invalid event: missing field `data`");
    let e =
        call(&d, json!({ "job": "h2", "worker": 2, "workers": 2, "data": "x.npy", "kernel": "kmeans", "max_iter": 3 }))
            .unwrap_err();
    assert_eq!(e.to_string(), "retryable: false; worker 2: worker 2 is out of range for workers = 2");
    let e =
        call(&d, json!({ "job": "h2", "worker": 0, "workers": 1, "data": "x.npy", "kernel": "svm", "max_iter": 3 }))
            .unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadEvent);
    assert!(e.message.starts_with("unknown kernel 'svm'"), "{e}");
}

#[test]
fn a_bad_data_uri_fails_naming_the_uri_and_is_not_retryable() {
    let d = deps(None);
    let e = call(&d, json!({ "job": "h3", "worker": 0, "workers": 1, "data": "/nonexistent/blobs.npy", "kernel": "kmeans", "max_iter": 3 }))
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Failed);
    assert!(e.to_string().starts_with("retryable: false; worker 0: cannot read /nonexistent/blobs.npy"), "{e}");
}
