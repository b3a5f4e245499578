//! The `ifp-worker` binary's task and setup errors: one clear line on stderr, a typed
//! `{"failure": ...}` line on stdout, a non-zero exit, no work started. (Its runs against a
//! real Redis are tested through the driver, in driver/tests/redis.rs; this file also makes
//! `cargo test` build the binary there.)

use std::io::Write as _;
use std::process::{Command, Stdio};

use ifp_host::{FailureKind, FunctionFailure};
use serde_json::{json, Value};

/// Runs `ifp-worker` with `task` on stdin: (exit code, stderr, the failure it reported).
fn worker(task: &str, redis: Option<&str>) -> (i32, String, Option<FunctionFailure>) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ifp-worker"));
    c.env_remove("IFP_REDIS_URL").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(u) = redis {
        c.env("IFP_REDIS_URL", u);
    }
    let mut child = c.spawn().unwrap();
    child.stdin.take().unwrap().write_all(task.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    let failure = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|v| serde_json::from_value(v.get("failure")?.clone()).ok());
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stderr).into_owned(), failure)
}

fn task(function: u32) -> Value {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../driver/tests/fixtures/logreg.npy");
    json!({ "job": "j1", "function": function, "functions": 2, "data": data, "label_col": "last",
            "kernel": "logreg", "max_iter": 3 })
}

#[test]
fn a_function_index_out_of_range_is_refused() {
    let (code, err, f) = worker(&task(2).to_string(), Some("redis://127.0.0.1:1"));
    assert_eq!(code, 1);
    assert_eq!(err.trim(), "error: function 2 is out of range for functions = 2");
    assert_eq!(f.unwrap().kind, FailureKind::BadInput);
}

#[test]
fn an_unreachable_redis_is_one_clear_line_without_the_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("redis://user:hunter2@127.0.0.1:{port}");
    let (code, err, f) = worker(&task(0).to_string(), Some(&url));
    assert_eq!(code, 1);
    assert!(
        err.starts_with(&format!("error: cannot connect to redis at redis://user:***@127.0.0.1:{port}: ")),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let f = f.unwrap();
    assert_eq!(f.kind, FailureKind::StoreUnreachable);
    assert!(f.kind.retryable() && !f.message.contains("hunter2"));
}

#[test]
fn a_bad_job_id_is_refused() {
    let mut t = task(0);
    t["job"] = json!("bad}id");
    let (code, err, _) = worker(&t.to_string(), Some("redis://127.0.0.1:1"));
    assert_eq!(code, 1);
    assert!(err.starts_with("error: invalid job id 'bad}id'"), "{err}");
}

#[test]
fn a_task_without_a_store_says_how_to_give_one() {
    let (code, err, f) = worker(&task(0).to_string(), None);
    assert_eq!(code, 1);
    assert!(err.contains("IFP_REDIS_URL"), "{err}");
    assert_eq!(f.unwrap().kind, FailureKind::BadInput);
}

#[test]
fn an_unreadable_task_is_a_usage_error_naming_the_problem() {
    let (code, err, _) = worker("{\"job\": 3}", None);
    assert_eq!(code, 2);
    assert!(err.starts_with("error: invalid task in stdin: invalid type: integer `3`"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}
