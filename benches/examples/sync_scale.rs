//! The synchronisation of F functions against one real Redis, cheap enough for F = 256 on a
//! 2-core machine: every function is a thread of this process with its own connection (as
//! each `ifp-worker` or Lambda function has one) and a tiny shard (no compute), so an
//! iteration's time is its sync time. Each function arrives with a k-means-sized partial
//! (k = 16, 32 columns: 610 values); the one that completes the set fetches every partial,
//! merges them in function order and releases; the others wait for the release.
//!
//! `--latency-ms` adds that delay before every request a function sends (the network hop to
//! a managed Redis). Per iteration it prints: the end-to-end sync time (median over
//! iterations, from the common start to the last function released), the Redis commands and
//! bytes (from `INFO`), and the reducer's arrive call (which fetches every partial) and merge.
//!
//! `cargo run --release -p ifp-benches --example sync_scale -- REDIS_URL [F...] [--latency-ms MS] [--iters N]`

use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use ifp_host::function::sum_in_order;
use ifp_host::sync::redis::{JobKeys, RedisStore};
use ifp_host::sync::{Arrival, Release, StateStore};

/// `[sums k·d | counts k | sumsq k | changed | rows | colsum d | colsumsq d]` for k=16, d=32.
const PARTIAL_LEN: usize = 16 * 32 + 16 + 16 + 2 + 32 + 32;

/// What one iteration cost.
#[derive(Clone, Copy, Default)]
struct Sample {
    sync_s: f64,
    reducer_arrive_s: f64,
    merge_s: f64,
}

fn info(con: &mut redis::Connection) -> (u64, u64, u64) {
    let text: String = redis::cmd("INFO").arg("stats").query(con).expect("INFO");
    let field = |name: &str| {
        text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')?.trim().parse().ok()).unwrap_or(0)
    };
    (field("total_commands_processed"), field("total_net_input_bytes"), field("total_net_output_bytes"))
}

fn run(url: &str, functions: u32, iters: u32, latency: Duration) -> (Vec<Sample>, (u64, u64, u64)) {
    let job = format!("sim-{functions}-{}-{}", latency.as_millis(), std::process::id());
    let (keys, _) =
        JobKeys::create(url, &job, functions, None, "sim", false, Duration::from_secs(120)).expect("claim the job");
    let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
    let stores: Vec<RedisStore> = (0..functions)
        .map(|f| RedisStore::connect(url, &job, f, functions, Duration::from_secs(120)).expect("connect"))
        .collect();
    let barrier = Arc::new(Barrier::new(functions as usize + 1));
    let samples = Arc::new(Mutex::new(vec![Sample::default(); iters as usize]));
    let start_of = Arc::new(Mutex::new(vec![Instant::now(); iters as usize]));
    let done = Arc::new(Mutex::new(vec![Instant::now(); iters as usize]));
    let before = info(&mut con);
    let handles: Vec<_> = stores
        .into_iter()
        .enumerate()
        .map(|(f, mut store)| {
            let (barrier, samples, done) = (barrier.clone(), samples.clone(), done.clone());
            std::thread::spawn(move || {
                let f = f as u32;
                let partial: Vec<f64> = (0..PARTIAL_LEN).map(|i| (i as f64 + f as f64) * 0.5).collect();
                let _ = store.join();
                for t in 0..iters {
                    barrier.wait();
                    std::thread::sleep(latency);
                    let a0 = Instant::now();
                    let arrival = store.arrive(t, f, &partial).expect("arrive");
                    let arrive_s = a0.elapsed().as_secs_f64();
                    match arrival {
                        Arrival::Reduce(parts) => {
                            let m0 = Instant::now();
                            let total = sum_in_order(&parts).expect("equal lengths");
                            let merge_s = m0.elapsed().as_secs_f64();
                            std::thread::sleep(latency);
                            let r = Release { model: total, loss: 0.0, converged: false, stop: false };
                            store.release(t, &r).expect("release");
                            let mut s = samples.lock().unwrap();
                            s[t as usize].reducer_arrive_s = arrive_s;
                            s[t as usize].merge_s = merge_s;
                        }
                        Arrival::Wait => {
                            std::thread::sleep(latency);
                            store.await_release(t, f).expect("await release");
                        }
                        Arrival::Released(_) => unreachable!("no function arrives late here"),
                    }
                    let now = Instant::now();
                    let mut d = done.lock().unwrap();
                    if now > d[t as usize] {
                        d[t as usize] = now;
                    }
                    drop(d);
                    barrier.wait();
                }
            })
        })
        .collect();
    for t in 0..iters as usize {
        start_of.lock().unwrap()[t] = Instant::now();
        done.lock().unwrap()[t] = Instant::now();
        barrier.wait();
        barrier.wait();
        let s = start_of.lock().unwrap()[t];
        samples.lock().unwrap()[t].sync_s = (done.lock().unwrap()[t] - s).as_secs_f64();
    }
    handles.into_iter().for_each(|h| h.join().unwrap());
    let after = info(&mut con);
    let _ = keys.remove();
    let out = samples.lock().unwrap().clone();
    (out, (after.0 - before.0, after.1 - before.1, after.2 - before.2))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: sync_scale REDIS_URL [F...] [--latency-ms MS] [--iters N]";
    let url = args.first().expect(usage).clone();
    let (mut fs, mut latency_ms, mut iters) = (Vec::new(), 0.0, 20u32);
    let mut it = args[1..].iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--latency-ms" => latency_ms = it.next().and_then(|v| v.parse().ok()).expect(usage),
            "--iters" => iters = it.next().and_then(|v| v.parse().ok()).expect(usage),
            f => fs.push(f.parse::<u32>().expect(usage)),
        }
    }
    if fs.is_empty() {
        fs = vec![2, 8, 32, 128, 256];
    }
    let latency = Duration::from_secs_f64(latency_ms / 1000.0);
    println!("| F | latency | sync / iteration (ms) | Redis commands / it. | bytes in / it. | bytes out / it. | reducer arrive (ms) | merge (ms) |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for f in fs {
        let (s, (cmds, bin, bout)) = run(&url, f, iters, latency);
        let n = iters as u64;
        println!(
            "| {f} | {latency_ms} ms | {:.2} | {} | {} | {} | {:.2} | {:.3} |",
            median(s.iter().map(|x| x.sync_s).collect()) * 1e3,
            cmds / n,
            bin / n,
            bout / n,
            median(s.iter().map(|x| x.reducer_arrive_s).collect()) * 1e3,
            median(s.iter().map(|x| x.merge_s).collect()) * 1e3,
        );
    }
}
