//! The Redis probe for `ifp sweep --model`: PING round trips to the Redis the sweep used, and
//! the server's own service time per request (`INFO commandstats` before and after the sweep).

use std::time::{Duration, Instant};

use anyhow::Result;

use crate::model::{median, StoreProbe};

/// Requests served and microseconds spent serving them, over every command but the
/// probes' own (`info`, `ping`).
pub fn commandstats(url: &str) -> Result<(u64, f64)> {
    let mut con = ifp_host::sync::redis::connect(url, Duration::from_secs(5))?;
    let info: String = redis::cmd("INFO").arg("commandstats").query(&mut con)?;
    Ok(parse_commandstats(&info))
}

pub fn parse_commandstats(info: &str) -> (u64, f64) {
    let mut calls = 0;
    let mut usec = 0.0;
    for line in info.lines() {
        let Some((name, fields)) = line.trim().strip_prefix("cmdstat_").and_then(|l| l.split_once(':')) else {
            continue;
        };
        if name == "info" || name == "ping" {
            continue;
        }
        for f in fields.split(',') {
            match f.split_once('=') {
                Some(("calls", v)) => calls += v.parse::<u64>().unwrap_or(0),
                Some(("usec", v)) => usec += v.parse::<f64>().unwrap_or(0.0),
                _ => {}
            }
        }
    }
    (calls, usec)
}

/// Median of `n` PINGs on one connection, seconds.
pub fn ping_rtt(url: &str, n: usize) -> Result<f64> {
    let mut con = ifp_host::sync::redis::connect(url, Duration::from_secs(5))?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        redis::cmd("PING").query::<redis::Value>(&mut con)?;
        v.push(t.elapsed().as_secs_f64());
    }
    Ok(median(&v))
}

/// The probe: RTT through the route the functions used (`proxied` when the delay proxy was
/// on), the direct RTT, and the service time from the counters' change over the sweep.
pub fn measure(direct: &str, proxied: Option<&str>, before: Option<(u64, f64)>) -> StoreProbe {
    let after = commandstats(direct).ok();
    let service_s = match (before, after) {
        (Some((c0, u0)), Some((c1, u1))) if c1 > c0 => (u1 - u0) / (c1 - c0) as f64 / 1e6,
        _ => 0.0,
    };
    let d = ping_rtt(direct, 200);
    let p = proxied.map(|u| ping_rtt(u, 50));
    match (d, p) {
        (Ok(d), None) => StoreProbe {
            rtt_s: d,
            direct_rtt_s: None,
            service_s,
            source: "measured: PINGs and INFO commandstats against the sweep's Redis".into(),
        },
        (Ok(d), Some(Ok(p))) => StoreProbe {
            rtt_s: p,
            direct_rtt_s: Some(d),
            service_s,
            source: "measured: PINGs through the delay proxy, INFO commandstats on the Redis behind it".into(),
        },
        (Err(e), _) | (_, Some(Err(e))) => {
            StoreProbe { source: format!("not measured ({e:#}): the whole sync cost is in γ"), ..Default::default() }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn commandstats_sum_every_command_but_the_probes() {
        let info = "# Commandstats\r\ncmdstat_evalsha:calls=10,usec=50,usec_per_call=5.00,rejected_calls=0,failed_calls=0\r\ncmdstat_ping:calls=200,usec=100,usec_per_call=0.5\r\ncmdstat_blpop:calls=5,usec=25,usec_per_call=5.00\r\ncmdstat_info:calls=2,usec=90\r\n";
        assert_eq!(super::parse_commandstats(info), (15, 75.0));
    }
}
