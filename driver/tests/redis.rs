//! `ifp run --redis`: functions as `ifp-worker` processes synchronising through a real
//! `redis-server` (Debian's package), started per test on 127.0.0.1 and a free port, without
//! persistence, and killed when the test ends. Models are compared with the in-process run
//! of the same configuration; round trips are counted by the server itself.

use ifp_testkit::*;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn model_of(result: &Value) -> Vec<f64> {
    let m = result["model"].as_object().expect("model fields");
    m.values().flat_map(floats).collect()
}

/// The data sets and algorithm flags of the equivalence test.
fn job_args(algorithm: &str) -> Vec<String> {
    let v: Vec<&str> = match algorithm {
        "kmeans" => vec!["run", "kmeans", "--data", "@blobs.npy", "--k", "4", "--max-iter", "100"],
        "logreg" => vec![
            "run",
            "logreg",
            "--data",
            "@logreg.npy",
            "--learning-rate",
            "0.5",
            "--l2",
            "0.01",
            "--max-iter",
            "200",
        ],
        _ => unreachable!(),
    };
    v.into_iter()
        .map(|a| a.strip_prefix('@').map(|f| fixture(f).display().to_string()).unwrap_or(a.to_string()))
        .collect()
}

fn run_with(dir: &Path, base: &[String], extra: &[&str]) -> Value {
    worker_bin();
    let mut a: Vec<&str> = base.iter().map(String::as_str).collect();
    a.extend(extra);
    run_json(dir, &a)
}

#[test]
fn redis_model_equals_in_process_for_1_2_3_5_workers_and_1_2_inner() {
    let redis = RedisServer::start(None);
    let url = redis.url();
    let dir = tempfile::tempdir().unwrap();
    for algorithm in ["kmeans", "logreg"] {
        let base = job_args(algorithm);
        for w in ["1", "2", "3", "5"] {
            for m in ["1", "2"] {
                let what = format!("{algorithm} W={w} M={m}");
                let local = run_with(dir.path(), &base, &["--workers", w, "--inner", m]);
                let remote = run_with(dir.path(), &base, &["--workers", w, "--inner", m, "--redis", &url]);
                assert_eq!(remote["iterations"], local["iterations"], "{what}: iterations");
                assert_close(&format!("{what}: model"), &model_of(&remote), &model_of(&local), 1e-12, 0.0);
                assert_close(
                    &format!("{what}: losses"),
                    &floats(&remote["losses"]),
                    &floats(&local["losses"]),
                    1e-12,
                    0.0,
                );
                assert_eq!(remote["sync"]["store"], "redis", "{what}");
                for wk in remote["sync"]["workers"].as_array().unwrap() {
                    let per = wk["round_trips_per_iteration"].as_f64().unwrap();
                    assert_eq!(per, 2.0, "{what}: the workers' own count of round trips per iteration: {wk}");
                }
            }
        }
    }
    // Finished jobs leave nothing behind.
    let keys: Vec<String> = redis::cmd("KEYS").arg("ifp:*").query(&mut redis.con()).unwrap();
    assert!(keys.is_empty(), "keys left behind: {keys:?}");
}

/// `calls` per command from `INFO commandstats`.
fn command_calls(con: &mut redis::Connection) -> std::collections::HashMap<String, u64> {
    let info: String = redis::cmd("INFO").arg("commandstats").query(con).unwrap();
    info.lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest.split(',').find_map(|kv| kv.strip_prefix("calls="))?.parse().ok()?;
            Some((name.to_string(), calls))
        })
        .collect()
}

#[test]
fn round_trips_counted_by_the_server_are_at_most_two_per_worker_per_iteration() {
    let redis = RedisServer::start(None);
    let url = redis.url();
    let dir = tempfile::tempdir().unwrap();
    let data = fixture("logreg.npy").display().to_string();
    let base: Vec<String> =
        ["run", "logreg", "--data", &data, "--learning-rate", "0.5"].iter().map(|s| s.to_string()).collect();
    let mut con = redis.con();
    for (workers, max_iter) in [(3u64, 10u64), (3, 40), (5, 25)] {
        redis::cmd("CONFIG").arg("RESETSTAT").query::<()>(&mut con).unwrap();
        let (w, mi) = (workers.to_string(), max_iter.to_string());
        let r = run_with(
            dir.path(),
            &base,
            &["--workers", &w, "--inner", "1", "--redis", &url, "--max-iter", &mi, "--tol", "0"],
        );
        assert_eq!(r["iterations"].as_u64(), Some(max_iter));
        let calls = command_calls(&mut con);
        // One EVALSHA per round trip of a round (an arrival is a pipeline around one script;
        // a release is one script), one XREAD per wait; the scripts' own commands are
        // counted by the server too, but they are not round trips. SET and DEL are sent by
        // the driver once per job (claiming and removing the job's keys), and by scripts.
        let client: u64 = ["evalsha", "eval", "xread", "ping", "script|load", "scan"]
            .iter()
            .map(|c| calls.get(*c).copied().unwrap_or(0))
            .sum();
        let per_iteration = calls.get("evalsha").copied().unwrap_or(0) + calls.get("xread").copied().unwrap_or(0);
        // Per job: the driver's PING, its claim (one EVAL) and SCAN; per worker: PING,
        // 4 SCRIPT LOAD, the join, and the census before iteration 0 (arrive, then release or
        // wait: two round trips).
        let constant = 4 + 8 * workers;
        assert!(
            client <= 2 * workers * max_iter + constant,
            "W={workers}, {max_iter} iterations: {client} client commands > 2·W·iterations + {constant}: {calls:?}"
        );
        assert!(per_iteration >= 2 * workers * max_iter, "the count is meaningful: {calls:?}");
    }
}

/// Children of `pid` whose command line is an `ifp-worker` of a task file
/// `JOB-function-F.task.json`: `(F, pid)`.
fn worker_pids(parent: u32) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let ppid: Option<u32> =
            stat.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().nth(1)).and_then(|p| p.parse().ok());
        if ppid != Some(parent) {
            continue;
        }
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let args: Vec<String> = cmd.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        let function =
            args.iter().find_map(|a| a.strip_suffix(".task.json")?.rsplit_once("-function-")?.1.parse().ok());
        if let Some(f) = function {
            out.push((f, pid));
        }
    }
    out
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| !s.rsplit_once(')').is_some_and(|(_, r)| r.trim_start().starts_with('Z')))
}

fn signal(pid: u32, sig: &str) {
    assert!(Command::new("kill").args([sig, &pid.to_string()]).status().unwrap().success());
}

/// Starts a long logistic regression `ifp run --redis` over `workers` worker processes and
/// waits until it reports iteration 5; returns the driver and a thread collecting the rest of
/// its stderr.
fn logreg_until_iteration_5(
    url: &str,
    job: &str,
    workers: &str,
    sync_timeout: &str,
) -> (std::process::Child, std::thread::JoinHandle<String>) {
    logreg_started(url, job, workers, &["--max-iter", "10000000", "--sync-timeout", sync_timeout])
}

/// Starts `ifp run logreg --redis` (fixture data, `workers` functions of one inner worker,
/// no early stop) with `extra` flags and waits until it reports iteration 5; returns the
/// driver and a thread collecting the rest of its stderr.
fn logreg_started(
    url: &str,
    job: &str,
    workers: &str,
    extra: &[&str],
) -> (std::process::Child, std::thread::JoinHandle<String>) {
    worker_bin();
    let data = fixture("logreg.npy");
    let mut child = Command::new(ifp_bin())
        .args(["run", "logreg", "--data", data.to_str().unwrap(), "--workers", workers, "--inner", "1", "--tol", "0"])
        .args(extra)
        .args(["--job", job, "--redis", url])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(err.read_line(&mut line).unwrap() > 0, "ifp ended early: {seen}");
        seen.push_str(&line);
        if line.starts_with("iteration 5:") {
            break;
        }
    }
    let drain = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = err.read_to_string(&mut rest);
        rest
    });
    (child, drain)
}

/// Starts a long `ifp run --redis` (3 workers), waits until iteration 5 is reported, applies
/// `sig` to worker 1, and returns (exit success, stderr, seconds from the signal to the exit,
/// worker pids).
fn disturb_driver(url: &str, job: &str, sig: &str, sync_timeout: &str) -> (bool, String, f64, Vec<u32>) {
    // One attempt: a lost worker fails the job (with more, it is started again).
    let extra = ["--max-iter", "10000000", "--sync-timeout", sync_timeout, "--max-attempts", "1"];
    let (mut child, drain) = logreg_started(url, job, "3", &extra);
    let pids = worker_pids(child.id());
    assert_eq!(pids.len(), 3, "three worker processes: {pids:?}");
    let victim = pids.iter().find(|(w, _)| *w == 1).unwrap().1;
    signal(victim, sig);
    let t0 = Instant::now();
    let status = wait_exit(&mut child, &pids, &format!("after worker 1 got {sig}"));
    let waited = t0.elapsed().as_secs_f64();
    let stderr = drain.join().unwrap();
    (status.success(), stderr, waited, pids.into_iter().map(|(_, p)| p).collect())
}

#[test]
fn killing_a_worker_fails_the_job_naming_job_worker_and_iteration_and_leaves_no_process() {
    let redis = RedisServer::start(None);
    let (ok, stderr, _, pids) = disturb_driver(&redis.url(), "killed-worker", "-9", "30");
    assert!(!ok, "the job must fail");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: job killed-worker: function 1 failed during iteration ")
            && last.contains(": the ifp-worker process was killed by signal 9 (its state stays in Redis"),
        "{stderr}"
    );
    for p in pids {
        assert!(!alive(p), "worker process {p} is still running");
    }
}

/// Waits for `child` (at most 120 s), killing it and `pids` if it hangs.
fn wait_exit(child: &mut Child, pids: &[(u32, u32)], what: &str) -> std::process::ExitStatus {
    let t0 = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if t0.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            pids.iter().for_each(|(_, p)| signal(*p, "-9"));
            panic!("ifp did not end: {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The fixed-length logistic regression of the fault tests, and its undisturbed model (the
/// in-process run's, which equals the Redis run's: see the equivalence test above).
const FAULT_ITERS: &str = "300";
fn undisturbed_logreg(dir: &Path) -> Vec<f64> {
    let data = fixture("logreg.npy");
    let r = run_json(
        dir,
        &[
            "run",
            "logreg",
            "--data",
            data.to_str().unwrap(),
            "--workers",
            "3",
            "--inner",
            "1",
            "--tol",
            "0",
            "--max-iter",
            FAULT_ITERS,
        ],
    );
    model_of(&r)
}

/// A worker killed mid-job (SIGKILL) is started again by the driver: it rejoins at the
/// iteration the job is at and the job ends with exactly the undisturbed model; the result
/// records the lost attempt.
#[test]
fn a_killed_worker_is_started_again_and_the_job_ends_with_the_undisturbed_model() {
    let redis = RedisServer::start(None);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    let extra = ["--max-iter", FAULT_ITERS, "--out", out.to_str().unwrap()];
    let (mut child, drain) = logreg_started(&redis.url(), "retried", "3", &extra);
    let pids = worker_pids(child.id());
    let victim = pids.iter().find(|(w, _)| *w == 1).expect("worker 1").1;
    signal(victim, "-9");
    let status = wait_exit(&mut child, &pids, "after worker 1 was killed");
    let stderr = drain.join().unwrap();
    assert!(status.success(), "{stderr}");
    let r = load_json(&out);
    assert_eq!(r["iterations"], json!(300));
    assert_eq!(model_of(&r), undisturbed_logreg(dir.path()), "the model after a retry is the undisturbed one");
    let attempts = r["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert_eq!((attempts[0]["function"].clone(), attempts[0]["outcome"].clone()), (json!(1), json!("lost")));
    assert!(attempts[0]["reason"].as_str().unwrap().contains("killed by signal 9"), "{attempts:?}");
    assert_eq!(r["workers"][1]["attempts"], json!(2));
    // Finished: the job's keys are gone.
    assert!(redis.cli(&["--scan", "--pattern", "ifp:{retried}:*"]).trim().is_empty());
}

/// Mini-batch Adam and momentum through `ifp run --redis`: worker 1, killed (SIGKILL) mid-job,
/// is started again (`--max-attempts`) and rejoins; the optimiser's state (moments or
/// velocity, and the update count) travels in the model, so the job ends with the
/// undisturbed in-process run's model (1e-9) after the same iterations.
#[test]
fn a_killed_minibatch_adam_or_momentum_worker_rejoins_with_the_optimiser_state() {
    let redis = RedisServer::start(None);
    let dir = tempfile::tempdir().unwrap();
    let data = fixture("logreg.npy");
    for (opt, lr) in [("adam", "0.01"), ("momentum", "0.05")] {
        let out = dir.path().join(format!("{opt}.json"));
        let mini = ["--batch-size", "64", "--epochs", "40", "--optimizer", opt, "--learning-rate", lr, "--seed", "3"];
        let mut extra = mini.to_vec();
        extra.extend(["--max-attempts", "3", "--out", out.to_str().unwrap()]);
        let (mut child, drain) = logreg_started(&redis.url(), &format!("mini-{opt}"), "3", &extra);
        let pids = worker_pids(child.id());
        let victim = pids.iter().find(|(w, _)| *w == 1).expect("worker 1").1;
        signal(victim, "-9");
        let status = wait_exit(&mut child, &pids, &format!("{opt}: after worker 1 was killed"));
        let stderr = drain.join().unwrap();
        assert!(status.success(), "{opt}: {stderr}");
        let got = load_json(&out);
        let attempts = got["attempts"].as_array().unwrap();
        assert!(attempts.len() == 1 && attempts[0]["outcome"] == "lost", "{opt}: {attempts:?}");
        // Killed mid-job: the lost attempt had run iterations (the report's `joined_at` is 0
        // once the attempts' histories join up, so it cannot tell).
        assert!(attempts[0]["iterations"].as_u64().unwrap() > 0, "{opt}: worker 1 was killed mid-job: {attempts:?}");
        let mut local = vec!["run", "logreg", "--data", data.to_str().unwrap(), "--workers", "3", "--inner", "1"];
        local.extend(["--tol", "0"]);
        local.extend(mini);
        let want = run_json(dir.path(), &local);
        assert_eq!(got["iterations"], want["iterations"], "{opt}: iterations");
        assert_eq!(got["iterations"], json!(40 * 63), "{opt}: 40 epochs of 63 batches");
        assert_close(&format!("{opt}: model"), &model_of(&got), &model_of(&want), 1e-9, 0.0);
    }
}

/// SIGTERM to `ifp run --redis` stops every worker at once (none is left running), fails
/// with one line naming the signal, and keeps the job's state: the same job id is then
/// refused without --resume, refused with --resume under another plan, and continued with
/// --resume to exactly the undisturbed model.
#[test]
fn sigterm_stops_every_worker_and_resume_continues_the_job_to_the_same_model() {
    let redis = RedisServer::start(None);
    let url = redis.url();
    let dir = tempfile::tempdir().unwrap();
    let (mut child, drain) = logreg_started(&url, "resumable", "3", &["--max-iter", FAULT_ITERS]);
    let pids = worker_pids(child.id());
    assert_eq!(pids.len(), 3, "{pids:?}");
    signal(child.id(), "-TERM");
    let status = wait_exit(&mut child, &pids, "after SIGTERM");
    let stderr = drain.join().unwrap();
    assert!(!status.success());
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: job resumable: stopped on SIGTERM"), "{stderr}");
    assert!(last.contains("--job resumable --resume"), "{stderr}");
    std::thread::sleep(Duration::from_millis(200));
    for (_, p) in &pids {
        assert!(!alive(*p), "worker process {p} is still running");
    }
    let data = fixture("logreg.npy");
    let out = dir.path().join("r.json");
    let args = |more: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["run", "logreg", "--data", data.to_str().unwrap(), "--workers", "3", "--inner", "1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.extend(["--tol", "0", "--max-iter", FAULT_ITERS, "--job", "resumable", "--redis", &url].map(String::from));
        v.extend(more.iter().map(|s| s.to_string()));
        v
    };
    let run = |more: &[&str]| {
        let a = args(more);
        ifp(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let again = run(&[]);
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("job resumable already exists") && err.contains("--resume"), "{err}");
    let other = run(&["--resume", "--l2", "0.5"]);
    assert!(!other.status.success());
    let err = String::from_utf8_lossy(&other.stderr);
    assert!(err.contains("cannot resume job resumable") && err.contains("another plan"), "{err}");
    let resumed = run(&["--resume", "--out", out.to_str().unwrap()]);
    assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));
    let r = load_json(&out);
    assert_eq!(r["iterations"], json!(300));
    assert_eq!(model_of(&r), undisturbed_logreg(dir.path()), "the resumed model is the undisturbed one");
}

#[test]
fn a_stalled_worker_fails_the_job_within_the_sync_timeout_naming_it() {
    let redis = RedisServer::start(None);
    let (ok, stderr, waited, pids) = disturb_driver(&redis.url(), "stalled-worker", "-STOP", "2");
    assert!(!ok, "the job must fail");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: job stalled-worker: function "), "{stderr}");
    assert!(
        last.contains("timed out after 2s waiting for iteration ")
            && (last.contains("(function 1 never arrived: it died or stalled)")
                // SIGSTOP can land after function 1 arrived as the reducer, before it released.
                || last.contains("(every function arrived; function 1, which reduces it, never released it: it died or stalled)")),
        "{stderr}"
    );
    // Not a timing assertion on speed: the job must not hang past its own timeout by much.
    assert!(waited < 60.0, "took {waited} s");
    for p in pids {
        assert!(!alive(p), "worker process {p} is still running");
    }
}

/// Runs 3 `ifp-worker`s directly (as Lambda would), each with its task on stdin (`task`
/// plus job, function, 3 functions, 1 inner worker); if `restart` is set, kills function 1
/// after it reported iteration `restart` and starts it again with the same task. Returns
/// the three final reports.
fn run_workers_directly(url: &str, job: &str, task: &Value, restart: Option<u32>) -> Vec<Value> {
    let bin = worker_bin();
    let spawn = |f: u32| -> Child {
        let mut t = task.clone();
        t["job"] = json!(job);
        t["function"] = json!(f);
        t["functions"] = json!(3);
        t["inner"] = json!(1);
        t["sync_timeout_s"] = json!(60);
        let mut c = Command::new(&bin)
            .env("IFP_REDIS_URL", url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(t.to_string().as_bytes()).unwrap();
        c
    };
    let read_report = |c: Child| -> Value {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "worker failed");
        let text = String::from_utf8(out.stdout).unwrap();
        let last = text.lines().last().expect("a report line");
        serde_json::from_str::<Value>(last).unwrap()["report"].clone()
    };
    let mut kids: Vec<Child> = (0..3).map(spawn).collect();
    if let Some(at) = restart {
        let mut victim = kids.remove(1);
        let mut out = BufReader::new(victim.stdout.take().unwrap());
        loop {
            let mut line = String::new();
            assert!(out.read_line(&mut line).unwrap() > 0, "function 1 ended before iteration {at}");
            let v: Value = serde_json::from_str(&line).unwrap();
            if v["iteration"]["iteration"].as_u64() == Some(at as u64) {
                break;
            }
        }
        victim.kill().unwrap();
        victim.wait().unwrap();
        kids.insert(1, spawn(1));
    }
    kids.into_iter().map(read_report).collect()
}

fn check_rejoin(task: &Value, kill_after: u32, name: &str) {
    let redis = RedisServer::start(None);
    let url = redis.url();
    let undisturbed = run_workers_directly(&url, &format!("{name}-ref"), task, None);
    let restarted = run_workers_directly(&url, &format!("{name}-restart"), task, Some(kill_after));
    let r1 = &restarted[1]["iterations"].as_array().unwrap()[0]["iteration"];
    assert!(r1.as_u64().unwrap() > 0, "{name}: the restarted worker rejoined mid-job, at iteration {r1}");
    for w in 0..3 {
        assert_eq!(restarted[w]["model"], undisturbed[w]["model"], "{name}: worker {w}'s final model");
        assert_eq!(restarted[w]["converged"], undisturbed[w]["converged"], "{name}: worker {w}");
    }
    assert_eq!(
        restarted[0]["iterations"].as_array().unwrap().len(),
        undisturbed[0]["iterations"].as_array().unwrap().len(),
        "{name}: iterations"
    );
}

#[test]
fn a_restarted_logreg_worker_rejoins_and_the_model_is_exactly_the_undisturbed_one() {
    let data = fixture("logreg.npy");
    let task = json!({ "data": data, "label_col": "last", "kernel": "logreg",
                       "params": { "learning-rate": "0.5", "tol": "0" }, "max_iter": 3000 });
    check_rejoin(&task, 20, "logreg");
}

/// Mini-batch Adam: the restarted worker gets the optimiser's moments and update count
/// with the model, and steps the same batches.
#[test]
fn a_restarted_adam_minibatch_worker_rejoins_and_the_model_is_exactly_the_undisturbed_one() {
    let data = fixture("logreg.npy");
    let task = json!({ "data": data, "label_col": "last", "kernel": "logreg", "max_iter": 300,
                       "params": { "learning-rate": "0.01", "batch-size": "64", "optimizer": "adam", "seed": "2" } });
    check_rejoin(&task, 20, "adam");
}

/// Mini-batch momentum: the restarted worker gets the velocity with the model.
#[test]
fn a_restarted_momentum_minibatch_worker_rejoins_and_the_model_is_exactly_the_undisturbed_one() {
    let data = fixture("logreg.npy");
    let task = json!({ "data": data, "label_col": "last", "kernel": "logreg", "max_iter": 300,
                       "params": { "learning-rate": "0.05", "batch-size": "64", "optimizer": "momentum", "seed": "2" } });
    check_rejoin(&task, 20, "momentum");
}

#[test]
fn a_restarted_kmeans_worker_replays_its_state_and_the_model_is_exactly_the_undisturbed_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("blobs.npy");
    let d = data.to_str().unwrap();
    ifp_ok(&["gen", "kmeans", "--rows", "60000", "--cols", "8", "--k", "12", "--seed", "5", "--out", d]);
    let task = json!({ "data": d, "kernel": "kmeans",
                       "params": { "k": "12", "init": "random", "seed": "1", "tol": "0" }, "max_iter": 300 });
    check_rejoin(&task, 1, "kmeans");
}

#[test]
fn a_wrong_password_is_refused_before_any_work_and_never_shown() {
    let redis = RedisServer::start(Some("s3cret-pw"));
    let data = fixture("logreg.npy");
    worker_bin();
    let bad = format!("redis://:wrong-pw-123@127.0.0.1:{}", redis.port);
    let o = ifp(&["run", "logreg", "--data", data.to_str().unwrap(), "--workers", "2", "--redis", &bad]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with(&format!("error: cannot connect to redis at redis://:***@127.0.0.1:{}", redis.port)),
        "{err}"
    );
    assert!(!err.contains("wrong-pw-123"), "the password leaked: {err}");
    assert!(!err.contains("iteration"), "no work started: {err}");
    // The right password works, and appears neither on screen nor in the result.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    let o = ifp_ok(&[
        "run",
        "logreg",
        "--data",
        data.to_str().unwrap(),
        "--workers",
        "2",
        "--max-iter",
        "5",
        "--redis",
        &redis.url(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let all = format!(
        "{}{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
        std::fs::read_to_string(&out).unwrap()
    );
    assert!(!all.contains("s3cret-pw"), "the password leaked: {all}");
    assert_eq!(load_json(&out)["sync"]["url"], format!("redis://:***@127.0.0.1:{}", redis.port));
}

#[test]
fn an_unreachable_redis_is_a_clear_error_before_any_work() {
    let port = free_port();
    let data = fixture("logreg.npy");
    worker_bin();
    let o = ifp(&[
        "run",
        "logreg",
        "--data",
        data.to_str().unwrap(),
        "--workers",
        "2",
        "--redis",
        &format!("redis://127.0.0.1:{port}"),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.starts_with(&format!("error: cannot connect to redis at redis://127.0.0.1:{port}: ")), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
}

#[test]
fn two_concurrent_jobs_on_one_server_do_not_interfere() {
    let redis = RedisServer::start(None);
    let url = redis.url();
    worker_bin();
    let dir = tempfile::tempdir().unwrap();
    let jobs: Vec<(String, Vec<String>)> = vec![
        ("kmeans".into(), job_args("kmeans")),
        ("logreg".into(), job_args("logreg")),
        ("logreg".into(), job_args("logreg").into_iter().map(|a| if a == "0.5" { "0.25".into() } else { a }).collect()),
    ];
    let remote: Vec<Value> = std::thread::scope(|s| {
        let hs: Vec<_> = jobs
            .iter()
            .map(|(_, base)| {
                let (url, dir) = (&url, dir.path());
                s.spawn(move || run_with(dir, base, &["--workers", "3", "--inner", "1", "--redis", url]))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for ((name, base), r) in jobs.iter().zip(&remote) {
        let local = run_with(dir.path(), base, &["--workers", "3", "--inner", "1"]);
        assert_eq!(r["iterations"], local["iterations"], "{name}");
        assert_close(name, &model_of(r), &model_of(&local), 1e-12, 0.0);
    }
}

#[test]
fn a_job_id_already_in_use_is_refused() {
    let redis = RedisServer::start(None);
    redis::cmd("SET").arg("ifp:{taken}:meta").arg(3).query::<()>(&mut redis.con()).unwrap();
    let data = fixture("logreg.npy");
    worker_bin();
    let o = ifp(&[
        "run",
        "logreg",
        "--data",
        data.to_str().unwrap(),
        "--workers",
        "3",
        "--job",
        "taken",
        "--redis",
        &redis.url(),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.starts_with("error: job taken already exists on redis at redis://127.0.0.1:"), "{err}");
}

#[test]
fn redis_restarting_mid_job_is_a_clear_error_not_a_hang() {
    let mut redis = RedisServer::start(None);
    let url = redis.url();
    let port = redis.port;
    let (mut child, drain) = logreg_until_iteration_5(&url, "restarted-redis", "2", "30");
    // Restart the server on the same port: the job's state is gone.
    let _ = redis.child.kill();
    let _ = redis.child.wait();
    let again = RedisServer::start_on(port);
    let status = child.wait().unwrap();
    let stderr = drain.join().unwrap();
    drop(again);
    assert!(!status.success());
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: job restarted-redis: function "), "{stderr}");
    assert!(last.contains("redis"), "{stderr}");
}

/// A job id in use by another plan is refused at the join: a function whose task carries
/// another plan fingerprint (other data, parameters or first model) fails as bad input
/// without disturbing the job, and a function of the job's own plan still completes it.
#[test]
fn a_function_of_another_plan_cannot_join_the_job() {
    let redis = RedisServer::start(None);
    let url = redis.url();
    let data = fixture("logreg.npy");
    let spawn = |function: u32, plan: &str| -> Child {
        let task = json!({ "job": "reused", "function": function, "functions": 2, "data": data,
            "label_col": "last", "kernel": "logreg", "max_iter": 5, "inner": 1,
            "sync_timeout_s": 60, "plan_sha256": plan });
        let mut c = Command::new(worker_bin())
            .env("IFP_REDIS_URL", &url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(task.to_string().as_bytes()).unwrap();
        c
    };
    let first = spawn(0, "aaaa");
    let started = Instant::now();
    while redis.cli(&["GET", "ifp:{reused}:meta"]) != "2:aaaa" {
        assert!(started.elapsed() < Duration::from_secs(60), "function 0 never joined");
        std::thread::sleep(Duration::from_millis(20));
    }
    let other = spawn(1, "bbbb").wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&other.stderr);
    assert_eq!(other.status.code(), Some(1), "{err}");
    assert!(err.contains("job reused: joining the job: the job id is in use by a job with another plan"), "{err}");
    let failure: Value = serde_json::from_str(String::from_utf8_lossy(&other.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(failure["failure"]["kind"], "bad-input");
    // The job was not aborted: function 1 of the same plan joins and both finish.
    let same = spawn(1, "aaaa").wait_with_output().unwrap();
    assert!(same.status.success(), "{}", String::from_utf8_lossy(&same.stderr));
    let first = first.wait_with_output().unwrap();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
}

/// Against a real Redis: when every function arrived but the one that completed the set (and
/// so reduces) never releases, the others' timeout names it rather than "a function".
#[test]
fn a_reducer_that_never_releases_is_named_in_the_timeout() {
    use ifp_host::sync::redis::RedisStore;
    use ifp_host::sync::{Arrival, StateStore};
    let redis = RedisServer::start(None);
    let url = redis.url();
    let connect = |f: u32| RedisStore::connect(&url, "silent-reducer", f, 2, Duration::from_secs(1)).unwrap();
    let (mut a, mut b) = (connect(0), connect(1));
    a.join().unwrap();
    b.join().unwrap();
    assert!(matches!(a.arrive(0, 0, &[1.0]).unwrap(), Arrival::Wait));
    assert!(matches!(b.arrive(0, 1, &[2.0]).unwrap(), Arrival::Reduce(_)));
    let e = a.await_release(0, 0).unwrap_err().to_string();
    assert!(
        e.ends_with("waiting for iteration 0 (every function arrived; function 1, which reduces it, never released it: it died or stalled)"),
        "{e}"
    );
}

/// Runs `openssl` with `args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let o = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl (.ci/test.sh installs it)");
    assert!(o.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&o.stderr));
}

/// `rediss://` end to end: a `redis-server` serving TLS only, with a password and a
/// certificate from a private CA. With the CA in `IFP_REDIS_CA` the job runs through TLS and
/// equals the in-process run; without it, the server's certificate is refused in one line
/// that never shows the password.
#[test]
fn rediss_with_a_private_ca_and_a_password_runs_the_job_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=ifp test CA",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(d.join("ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext",
        ],
    );
    let spawn = |port: u16| {
        Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--tls-cert-file", "server.pem", "--tls-key-file", "server.key", "--tls-ca-cert-file", "ca.pem"])
            .args(["--tls-auth-clients", "no", "--requirepass", "tls-secret"])
            .current_dir(d)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let (mut server, port) = start_on_free_port("redis-server (TLS)", Duration::from_secs(10), spawn, |_, _| true);
    let url = format!("rediss://:tls-secret@127.0.0.1:{port}");
    let args = job_args("logreg");
    let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
    a.extend(["--workers", "2", "--inner", "1"]);
    let want = model_of(&run_json(d, &a));
    worker_bin();
    let out = d.join("tls.json");
    let mut tls = a.clone();
    tls.extend(["--redis", &url, "--out", out.to_str().unwrap(), "--quiet"]);
    let o = Command::new(env!("CARGO_BIN_EXE_ifp")).args(&tls).env("IFP_REDIS_CA", d.join("ca.pem")).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = load_json(&out);
    assert_eq!(model_of(&r), want, "the model over TLS is the in-process one");
    assert_eq!(r["sync"]["store"], "redis");
    let refused = Command::new(env!("CARGO_BIN_EXE_ifp")).args(&tls).env_remove("IFP_REDIS_CA").output().unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("cannot connect to redis at rediss://:***@127.0.0.1") && err.contains("certificate"), "{err}");
    assert!(!err.contains("tls-secret"), "{err}");
}

/// Redis killed mid-job (not restarted): the job fails within its sync timeout with one line
/// that names Redis, and writes no result file.
#[test]
fn redis_killed_mid_job_fails_in_one_line_naming_it_and_writes_nothing() {
    let mut redis = RedisServer::start(None);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    let extra = ["--max-iter", "10000000", "--sync-timeout", "10", "--out", out.to_str().unwrap()];
    let (mut child, drain) = logreg_started(&redis.url(), "redis-killed", "3", &extra);
    let pids = worker_pids(child.id());
    let _ = redis.child.kill();
    let _ = redis.child.wait();
    let t0 = Instant::now();
    let status = wait_exit(&mut child, &pids, "after Redis was killed");
    let waited = t0.elapsed().as_secs_f64();
    let stderr = drain.join().unwrap();
    assert!(!status.success());
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].starts_with("error: job redis-killed: function ")
            && errors[0].contains("redis at redis://127.0.0.1:"),
        "{stderr}"
    );
    assert!(waited < 60.0, "took {waited} s");
    assert!(!out.exists(), "a result file was written for a failed job");
    for (_, p) in pids {
        assert!(!alive(p), "worker process {p} is still running");
    }
}
