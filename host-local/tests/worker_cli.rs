//! The `ifp-worker` binary's argument and setup errors: one clear line, non-zero exit, no
//! work started. (Its runs against a real Redis are tested through the driver, in
//! driver/tests/redis.rs; this file also makes `cargo test` build the binary there.)

use std::process::Command;

fn worker(args: &[&str], redis: Option<&str>) -> (i32, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ifp-worker"));
    c.args(args).env_remove("IFP_REDIS_URL");
    if let Some(u) = redis {
        c.env("IFP_REDIS_URL", u);
    }
    let o = c.output().unwrap();
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn data() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../driver/tests/fixtures/logreg.npy").to_string()
}

fn base(worker: &str) -> Vec<String> {
    [
        "--job",
        "j1",
        "--worker",
        worker,
        "--workers",
        "2",
        "--data",
        &data(),
        "--label-col",
        "last",
        "--algorithm",
        "logreg",
        "--max-iter",
        "3",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[test]
fn a_worker_index_out_of_range_is_refused() {
    let a = base("2");
    let (code, err) = worker(&a.iter().map(String::as_str).collect::<Vec<_>>(), Some("redis://127.0.0.1:1"));
    assert_eq!(code, 1);
    assert_eq!(err.trim(), "error: --worker 2 is out of range for --workers 2");
}

#[test]
fn an_unreachable_redis_is_one_clear_line_without_the_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let a = base("0");
    let url = format!("redis://user:hunter2@127.0.0.1:{port}");
    let (code, err) = worker(&a.iter().map(String::as_str).collect::<Vec<_>>(), Some(&url));
    assert_eq!(code, 1);
    assert!(
        err.starts_with(&format!("error: cannot connect to redis at redis://user:***@127.0.0.1:{port}: ")),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn a_bad_job_id_is_refused() {
    let mut a = base("0");
    a[1] = "bad}id".into();
    let (code, err) = worker(&a.iter().map(String::as_str).collect::<Vec<_>>(), Some("redis://127.0.0.1:1"));
    assert_eq!(code, 1);
    assert!(err.starts_with("error: invalid job id 'bad}id'"), "{err}");
}

#[test]
fn a_missing_redis_url_is_a_usage_error() {
    let a = base("0");
    let (code, err) = worker(&a.iter().map(String::as_str).collect::<Vec<_>>(), None);
    assert_eq!(code, 2);
    assert!(err.starts_with("error: the following required arguments were not provided: --redis <REDIS>"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}
