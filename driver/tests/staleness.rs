//! `ifp run --staleness S` (stale-synchronous parallel) through the real `ifp` binary, with
//! the functions as threads (in-process store) and as `ifp-worker` processes on a real
//! `redis-server`: S = 0 is the synchronous run bit for bit; with one function slowed (the
//! test-only `IFP_TEST_DELAY`) and S = 2 the others reuse its partial, never more than 2
//! rounds old, and the final model's loss (computed here in f64 from the data) stays within 1 %
//! of the synchronous one's; bad values are refused in one line.

use ifp_testkit::*;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const FUNCTIONS: &str = "4";
/// The slowed function and its delay per step (test-only, see `ifp_host::test_delay`).
const SLOW: u32 = 3;
const DELAY: &str = "3:40";

/// A labelled data set written by `ifp gen`.
fn data(dir: &Path) -> PathBuf {
    let p = dir.join("lr.npy");
    ifp_ok(&["gen", "logreg", "--rows", "6000", "--cols", "6", "--seed", "7", "--out", p.to_str().unwrap()]);
    p
}

/// `ifp run logreg` on `data` with 4 functions of one inner worker each, `extra` arguments
/// and function 3 slowed down; the result JSON.
fn run(dir: &Path, data: &Path, extra: &[&str]) -> Value {
    let out = dir.join(format!("r-{}.json", extra.join("_").replace(['/', ':'], "-")));
    let mut args = vec!["run", "logreg", "--data", data.to_str().unwrap(), "--functions", FUNCTIONS, "--inner", "1"];
    if !extra.contains(&"--max-iter") {
        args.extend(["--max-iter", "60"]);
    }
    args.extend(["--quiet", "--out", out.to_str().unwrap()]);
    args.extend(extra);
    let o = Command::new(ifp_bin()).args(&args).env("IFP_TEST_DELAY", DELAY).output().expect("run ifp");
    assert!(o.status.success(), "ifp {args:?} failed: {}", String::from_utf8_lossy(&o.stderr));
    load_json(&out)
}

/// The mean logistic loss of the result's model over every row of `data`, in f64, from the
/// file (independent of the kernel): `mean(log(1 + e^z) − y z)`, `z = w·x + b`.
fn loss_from_data(data: &Path, result: &Value) -> f64 {
    let npy = npyz::NpyFile::new(std::fs::File::open(data).unwrap()).unwrap();
    let cols = npy.shape()[1] as usize;
    let x: Vec<f32> = npy.into_vec().unwrap();
    let (w, b) = (floats(&result["model"]["weights"]), result["model"]["intercept"].as_f64().unwrap());
    assert_eq!(w.len(), cols - 1);
    let rows = x.chunks_exact(cols);
    let n = rows.len() as f64;
    rows.map(|r| {
        let z = b + w.iter().zip(r).map(|(w, x)| w * *x as f64).sum::<f64>();
        let y = r[cols - 1] as f64;
        // log(1 + e^z) without overflow.
        z.max(0.0) + (-z.abs()).exp().ln_1p() - y * z
    })
    .sum::<f64>()
        / n
}

fn bits(v: &Value) -> Vec<u64> {
    floats(v).iter().map(|x| x.to_bits()).collect()
}

/// The same model and losses, bit for bit.
fn assert_same_run(what: &str, a: &Value, b: &Value) {
    assert_eq!(bits(&a["model"]["weights"]), bits(&b["model"]["weights"]), "{what}: weights");
    assert_eq!(a["model"]["intercept"].as_f64().map(f64::to_bits), b["model"]["intercept"].as_f64().map(f64::to_bits));
    assert_eq!(bits(&a["losses"]), bits(&b["losses"]), "{what}: losses");
    assert_eq!(a["iterations"], b["iterations"], "{what}: iterations");
}

/// Checks the staleness a stale run recorded; returns the rounds in which the slowed
/// function's partial was fresh.
fn check_staleness(what: &str, r: &Value, bound: u64) -> usize {
    let its = r["timing"]["iterations"].as_array().unwrap();
    assert_eq!(its.len() as u64, r["iterations"].as_u64().unwrap(), "{what}: one record per round");
    let mut fresh_slow = 0;
    let mut stale_rounds = 0;
    for it in its {
        let s = &it["staleness"];
        let max = s["max"].as_u64().unwrap_or_else(|| panic!("{what}: round without staleness: {it}"));
        let stale: Vec<u64> = s["stale_functions"].as_array().unwrap().iter().map(|f| f.as_u64().unwrap()).collect();
        assert!(max <= bound, "{what}: round {} summed a partial {max} rounds old (bound {bound})", it["iteration"]);
        assert_eq!(max == 0, stale.is_empty(), "{what}: {it}");
        assert!(stale.len() < 4, "{what}: every round has a fresh partial: {it}");
        if !stale.contains(&(SLOW as u64)) {
            fresh_slow += 1;
        }
        if max > 0 {
            stale_rounds += 1;
        }
    }
    assert!(stale_rounds > 0, "{what}: no round reused a stale partial, though function {SLOW} is slowed");
    if r["converged"] == true {
        let last = &its.last().unwrap()["staleness"];
        assert_eq!(last["max"], 0, "{what}: the job stopped on convergence in a round with stale partials");
    }
    let summary = &r["staleness"];
    assert_eq!(summary["bound"], bound, "{what}");
    assert_eq!(summary["rounds_with_stale"], stale_rounds, "{what}");
    assert_eq!(summary["rounds"], its.len(), "{what}");
    fresh_slow
}

#[test]
fn staleness_0_is_the_synchronous_run_bit_for_bit_in_process_and_on_redis() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let sync = run(dir.path(), &data, &[]);
    assert!(sync.get("staleness").is_none(), "a synchronous run records no staleness");
    assert!(sync["timing"]["iterations"][0].get("staleness").is_none());
    assert_same_run("threads, --staleness 0", &sync, &run(dir.path(), &data, &["--staleness", "0"]));
    let redis = RedisServer::start(None);
    let url = redis.url();
    let on_redis = run(dir.path(), &data, &["--redis", &url]);
    assert_same_run("redis, no flag", &sync, &on_redis);
    assert_same_run("redis, --staleness 0", &sync, &run(dir.path(), &data, &["--redis", &url, "--staleness", "0"]));
}

#[test]
fn with_one_function_slowed_staleness_2_reuses_its_partial_within_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let sync = run(dir.path(), &data, &[]);
    let sync_loss = loss_from_data(&data, &sync);
    let redis = RedisServer::start(None);
    let url = redis.url();
    for (what, extra) in [("threads", vec!["--staleness", "2"]), ("redis", vec!["--staleness", "2", "--redis", &url])] {
        let r = run(dir.path(), &data, &extra);
        let rounds = r["iterations"].as_u64().unwrap() as usize;
        let fresh_slow = check_staleness(what, &r, 2);
        assert!(
            fresh_slow < rounds,
            "{what}: the slowed function was fresh in {fresh_slow} of {rounds} rounds: nobody ran ahead of it"
        );
        let loss = loss_from_data(&data, &r);
        assert!(
            (loss - sync_loss).abs() <= 0.01 * sync_loss,
            "{what}: final loss {loss} is not within 1% of the synchronous run's {sync_loss}"
        );
        // The kernel's own figure for the model entering the last round agrees with the data.
        let last = r["losses"].as_array().unwrap().last().unwrap().as_f64().unwrap();
        assert!((last - loss).abs() <= 0.01 * loss, "{what}: last round's loss {last} vs {loss} from the data");
    }
    assert_eq!(redis.cli(&["DBSIZE"]).trim(), "0", "the job's keys are removed at the end");
    // Stopping on convergence: old partials repeated look converged; only a fresh round stops.
    let r = run(dir.path(), &data, &["--staleness", "2", "--tol", "1e-3", "--max-iter", "200"]);
    // (Whether a fresh round comes once the loss settles depends on timing: not asserted.)
    check_staleness("threads, --tol 1e-3", &r, 2);
}

/// The failure contract of bad input: non-zero exit, one line naming the value, no panic.
fn fails_with(args: &[&str], expected: &str) {
    let line = failure_line(args);
    assert!(line.contains(expected), "{args:?}: {line:?} does not contain {expected:?}");
}

#[test]
fn bad_staleness_values_and_unsupported_combinations_are_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let d = data.to_str().unwrap();
    fails_with(&["run", "logreg", "--data", d, "--staleness", "-1"], "'-1'");
    fails_with(&["run", "logreg", "--data", d, "--staleness", "-1"], "--staleness");
    fails_with(&["run", "logreg", "--data", d, "--staleness", "x"], "'x'");
    fails_with(&["run", "logreg", "--data", d, "--staleness", "1001"], "at most 1000 rounds, got 1001");
    fails_with(
        &["run", "logreg", "--data", d, "--staleness", "2", "--batch-size", "100", "--max-iter", "5"],
        "--staleness 2 needs full-batch iterations",
    );
    fails_with(
        &["run", "logreg", "--data", d, "--staleness", "1", "--functions", "17"],
        "--staleness 1 needs at most 16 functions, got --functions 17",
    );
}

/// What a simulated function is doing.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Doing {
    Stepping(u32),
    /// Delivered on this model; the round may still wait for others due in it.
    Holding(u32),
    Waiting(u32),
}

/// The rule is written twice (Rust for threads, a Lua script for Redis): the same deliveries
/// (first, or forced after a grace period), in a seeded random order, get the same answers
/// from both stores, round after round; and the job never stalls (some function can always
/// step, deliver or wake). With bound 0 every round waits for every partial fresh: the
/// synchronous rule.
#[test]
fn the_redis_store_decides_every_delivery_as_the_in_process_store() {
    use ifp_host::sync::redis::RedisStore;
    use ifp_host::sync::stale::Delivered;
    use ifp_host::sync::{InProcess, Release, StateStore};
    use std::time::Duration;

    let redis = RedisServer::start(None);
    let (functions, rounds) = (4u32, 40u32);
    let timeout = Duration::from_secs(10);
    for (seed, bound) in [(1u64, 2u32), (2, 2), (3, 2), (4, 2), (5, 2), (6, 1), (7, 0), (8, 0)] {
        let job = format!("stale-{seed}");
        let mut threads: Vec<InProcess> = vec![InProcess::new(&job, functions as usize, timeout)];
        (1..functions).for_each(|_| threads.push(threads[0].clone()));
        let mut on_redis: Vec<RedisStore> =
            (0..functions).map(|f| RedisStore::connect(&redis.url(), &job, f, functions, timeout).unwrap()).collect();
        on_redis.iter_mut().for_each(|s| {
            s.join().unwrap();
        });
        let mut doing = vec![Doing::Stepping(0); functions as usize];
        let mut rng = seed;
        let (mut released, mut stale_rounds, mut held) = (0, 0, 0);
        while released < rounds {
            let movable: Vec<u32> =
                (0..functions).filter(|&f| !matches!(doing[f as usize], Doing::Waiting(_))).collect();
            assert!(!movable.is_empty(), "seed {seed}: every function waits after {released} rounds: stalled");
            // xorshift: the next function to move; function 3 a quarter as often (a straggler).
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let pick = movable[(rng % movable.len() as u64) as usize];
            let f = if pick == 3 && rng % 4 != 0 { movable[0] } else { pick };
            let (v, force) = match doing[f as usize] {
                Doing::Stepping(v) => (v, false),
                Doing::Holding(v) => (v, true),
                Doing::Waiting(_) => unreachable!(),
            };
            let partial = [f as f64 * 1000.0 + v as f64];
            let a = threads[f as usize].stale().unwrap().deliver(f, v, &partial, bound, force).unwrap();
            let b = on_redis[f as usize].stale().unwrap().deliver(f, v, &partial, bound, force).unwrap();
            assert_eq!(a, b, "seed {seed}: function {f} delivering on model {v} (force {force})");
            assert!(!(force && a.hold), "seed {seed}: a forced delivery does not hold");
            doing[f as usize] = match a {
                Delivered { reduce: Some(r), .. } => {
                    let model = vec![r.t as f64 + 1.0, r.parts.iter().map(|p| p[0]).sum()];
                    let stop = r.t + 1 == rounds;
                    let rel = Release { model, loss: r.t as f64, converged: false, stop };
                    stale_rounds += usize::from(r.staleness.max > 0);
                    threads[f as usize].stale().unwrap().release_round(r.t, &rel, &r.staleness, bound).unwrap();
                    on_redis[f as usize].stale().unwrap().release_round(r.t, &rel, &r.staleness, bound).unwrap();
                    released = r.t + 1;
                    // Every function that delivered on M_t wakes with the new model.
                    for g in 0..functions as usize {
                        if let Doing::Waiting(w) | Doing::Holding(w) = doing[g] {
                            let a = threads[g].stale().unwrap().await_newer(g as u32, w, bound).unwrap();
                            let b = on_redis[g].stale().unwrap().await_newer(g as u32, w, bound).unwrap();
                            assert_eq!(a, b, "seed {seed}: function {g} waking on model {w}");
                            assert_eq!(a.version, released);
                            doing[g] = Doing::Stepping(a.version);
                        }
                    }
                    Doing::Stepping(released)
                }
                Delivered { took: Some(t), .. } => Doing::Stepping(t.version),
                Delivered { hold: true, .. } => {
                    held += 1;
                    Doing::Holding(v)
                }
                Delivered { .. } => Doing::Waiting(v),
            };
        }
        if bound == 0 {
            assert_eq!((stale_rounds, held), (0, 0), "seed {seed}: bound 0 is synchronous");
        } else {
            assert!(stale_rounds > 0 && held > 0, "seed {seed}: {stale_rounds} stale rounds, {held} holds");
        }
    }
}
