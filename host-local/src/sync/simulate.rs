//! The synchronisation of F functions against one real Redis, cheap enough for F = 256 on a
//! 2-core machine: every function is a thread with its own connection (as each `ifp-worker`
//! or Lambda function has one) and no data, so an iteration's time is its sync time. Each
//! arrives with a k-means-sized partial ([`PARTIAL_LEN`] values: k = 16, 32 columns), the
//! one that completes the set sums the parts in order and releases, the others wait.
//!
//! Every iteration starts at a common instant ([`START_SLACK`] after the previous one
//! ended), so the threads' wake-up is not counted. Besides times, it reports the CPU time of
//! Redis and of the simulated functions per iteration: on a 2-core machine 256 functions'
//! own work competes with Redis, which real functions on machines of their own do not.
//!
//! `latency` is slept before every request a function sends (the network hop to a managed
//! Redis: [`RedisStore::with_added_latency`]), including a group merger's second arrival. Used by the `sync_scale` example and by `ifp sweep --simulate-sync`.

use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use super::redis::{JobKeys, RedisSetupError, RedisStore};
use super::{Arrival, Release, StateStore, SyncError};
use crate::function::sum_in_order;

/// `[sums k·d | counts k | sumsq k | changed | rows | colsum d | colsumsq d]` for k=16, d=32.
pub const PARTIAL_LEN: usize = 16 * 32 + 16 + 16 + 2 + 32 + 32;

/// What one iteration cost.
#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    sync_s: f64,
    reducer_arrive_s: f64,
    merge_s: f64,
}

/// Per iteration, medians over the simulated iterations (commands and bytes: means).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Simulated {
    pub functions: u32,
    pub latency_ms: f64,
    /// From the common start to the last function released.
    pub sync_ms: f64,
    /// Commands Redis executed (scripts' own commands included), from `INFO stats`.
    pub commands: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// The reducer's arrival (with a group merge on the way, and the fetch of the root's parts).
    pub reducer_arrive_ms: f64,
    /// The reducer's sum of the root's parts.
    pub merge_ms: f64,
    /// Redis's own CPU time (user + system, from `INFO cpu`), per iteration: the one part
    /// that every function shares, whatever machine each function runs on.
    pub redis_cpu_ms: f64,
    /// This process's CPU time per iteration (the simulated functions' own work, which
    /// real functions do on machines of their own, but which here competes with Redis).
    pub functions_cpu_ms: f64,
}

/// This process's user + system CPU time, seconds.
fn process_cpu_s() -> f64 {
    let mut u = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole rusage into the pointer it is given.
    let r = unsafe { libc::getrusage(libc::RUSAGE_SELF, u.as_mut_ptr()) };
    if r != 0 {
        return f64::NAN;
    }
    // SAFETY: initialised by the successful call above.
    let u = unsafe { u.assume_init() };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Slack between releasing the functions for an iteration and its common start: the
/// threads wake one by one, which is no part of the sync.
const START_SLACK: Duration = Duration::from_millis(20);

/// Why a simulation failed.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error(transparent)]
    Setup(#[from] RedisSetupError),
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error("redis INFO at {0}: {1}")]
    Info(String, String),
}

/// `(commands, bytes in, bytes out, CPU seconds)` so far, from `INFO`.
fn info(con: &mut redis::Connection, url: &str) -> Result<(u64, u64, u64, f64), SimulateError> {
    let text: String = redis::cmd("INFO")
        .arg("stats")
        .arg("cpu")
        .query(con)
        .map_err(|e| SimulateError::Info(super::redis::redact(url), e.to_string()))?;
    let field = |name: &str| {
        text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')?.trim().parse().ok()).unwrap_or(0)
    };
    let cpu = |name: &str| -> f64 {
        text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')?.trim().parse().ok()).unwrap_or(f64::NAN)
    };
    Ok((
        field("total_commands_processed"),
        field("total_net_input_bytes"),
        field("total_net_output_bytes"),
        cpu("used_cpu_user") + cpu("used_cpu_sys"),
    ))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Runs `iters` iterations of `functions` functions' synchronisation against the Redis at
/// `url` (its keys removed afterwards). Other clients of that Redis skew the counts.
pub fn simulate(url: &str, functions: u32, iters: u32, latency: Duration) -> Result<Simulated, SimulateError> {
    let job = format!("sim-{functions}-{}-{}", latency.as_micros(), std::process::id());
    let timeout = Duration::from_secs(120);
    let (keys, _) = JobKeys::create(url, &job, functions, None, "sim", false, timeout)?;
    let mut con = super::redis::connect(url, super::redis::CONNECT_TIMEOUT)?;
    let stores = (0..functions)
        .map(|f| RedisStore::connect(url, &job, f, functions, timeout).map(|s| s.with_added_latency(latency)))
        .collect::<Result<Vec<_>, _>>()?;
    let barrier = Arc::new(Barrier::new(functions as usize + 1));
    let samples = Arc::new(Mutex::new(vec![Sample::default(); iters as usize]));
    let done = Arc::new(Mutex::new(vec![Instant::now(); iters as usize]));
    let start_at = Arc::new(Mutex::new(vec![Instant::now(); iters as usize]));
    let failed: Arc<Mutex<Option<SyncError>>> = Arc::default();
    let before = info(&mut con, url)?;
    let cpu_before = process_cpu_s();
    let handles: Vec<_> = stores
        .into_iter()
        .enumerate()
        .map(|(f, mut store)| {
            let (barrier, samples, done, failed) = (barrier.clone(), samples.clone(), done.clone(), failed.clone());
            let start_at = start_at.clone();
            std::thread::spawn(move || {
                let f = f as u32;
                let partial: Vec<f64> = (0..PARTIAL_LEN).map(|i| (i as f64 + f as f64) * 0.5).collect();
                let mut ok = match store.join() {
                    Ok(_) => true,
                    Err(e) => {
                        failed.lock().unwrap().get_or_insert(e);
                        store.abort(f, "simulation failed");
                        false
                    }
                };
                for t in 0..iters {
                    barrier.wait();
                    let start = start_at.lock().unwrap()[t as usize];
                    std::thread::sleep(start.saturating_duration_since(Instant::now()));
                    if ok {
                        if let Err(e) = one(&mut store, t, f, &partial, &samples) {
                            failed.lock().unwrap().get_or_insert(e);
                            store.abort(f, "simulation failed");
                            ok = false;
                        }
                    }
                    let now = Instant::now();
                    let mut d = done.lock().unwrap();
                    d[t as usize] = d[t as usize].max(now);
                    drop(d);
                    barrier.wait();
                }
            })
        })
        .collect();
    for t in 0..iters as usize {
        let start = Instant::now() + START_SLACK;
        start_at.lock().unwrap()[t] = start;
        done.lock().unwrap()[t] = start;
        barrier.wait();
        barrier.wait();
        samples.lock().unwrap()[t].sync_s = (done.lock().unwrap()[t] - start).as_secs_f64();
    }
    handles.into_iter().for_each(|h| h.join().expect("a simulated function panicked"));
    let after = info(&mut con, url)?;
    let cpu_after = process_cpu_s();
    let _ = keys.remove();
    if let Some(e) = failed.lock().unwrap().take() {
        return Err(e.into());
    }
    let s = samples.lock().unwrap().clone();
    let n = iters.max(1) as u64;
    Ok(Simulated {
        functions,
        latency_ms: latency.as_secs_f64() * 1e3,
        sync_ms: median(s.iter().map(|x| x.sync_s).collect()) * 1e3,
        commands: (after.0 - before.0) / n,
        bytes_in: (after.1 - before.1) / n,
        bytes_out: (after.2 - before.2) / n,
        reducer_arrive_ms: median(s.iter().map(|x| x.reducer_arrive_s).collect()) * 1e3,
        merge_ms: median(s.iter().map(|x| x.merge_s).collect()) * 1e3,
        redis_cpu_ms: (after.3 - before.3) / n as f64 * 1e3,
        functions_cpu_ms: (cpu_after - cpu_before) / n as f64 * 1e3,
    })
}

/// One function's iteration `t`.
fn one(store: &mut RedisStore, t: u32, f: u32, partial: &[f64], samples: &Mutex<Vec<Sample>>) -> Result<(), SyncError> {
    let a0 = Instant::now();
    match store.arrive(t, f, partial)? {
        Arrival::Reduce(parts) => {
            let arrive_s = a0.elapsed().as_secs_f64();
            let m0 = Instant::now();
            let total = sum_in_order(&parts).map_err(|e| SyncError::Partials { job: String::new(), source: e })?;
            let merge_s = m0.elapsed().as_secs_f64();
            store.release(t, &Release { model: total, loss: 0.0, converged: false, stop: false })?;
            let mut s = samples.lock().unwrap();
            s[t as usize].reducer_arrive_s = arrive_s;
            s[t as usize].merge_s = merge_s;
        }
        Arrival::Wait => {
            store.await_release(t, f)?;
        }
        Arrival::Released(_) => {}
    }
    Ok(())
}
