//! The synchronisation of F functions against one real Redis ([`ifp_host::sync::simulate`]):
//! per iteration, the end-to-end sync time, the Redis commands and bytes (from `INFO`), and
//! the reducer's arrival (which brings the parts it sums) and merge. Prints the CPU model.
//!
//! `cargo run --release -p ifp-benches --example sync_scale -- REDIS_URL [F...] [--latency-ms MS] [--iters N]`

use std::time::Duration;

use ifp_host::sync::simulate::simulate;

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find_map(|l| Some(l.strip_prefix("model name")?.split_once(':')?.1.trim().to_string())))
        .unwrap_or_else(|| "unknown CPU".into())
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
    println!("CPU: {} ({} threads)", cpu_model(), std::thread::available_parallelism().map_or(0, |n| n.get()));
    println!("| F | latency | sync / iteration (ms) | Redis commands / it. | bytes in / it. | bytes out / it. | reducer arrive (ms) | merge (ms) | Redis CPU ms / it. | functions' CPU ms / it. |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for f in fs {
        let s = simulate(&url, f, iters, latency).unwrap_or_else(|e| panic!("F = {f}: {e}"));
        println!(
            "| {f} | {latency_ms} ms | {:.2} | {} | {} | {} | {:.2} | {:.3} | {:.2} | {:.2} |",
            s.sync_ms,
            s.commands,
            s.bytes_in,
            s.bytes_out,
            s.reducer_arrive_ms,
            s.merge_ms,
            s.redis_cpu_ms,
            s.functions_cpu_ms
        );
    }
}
