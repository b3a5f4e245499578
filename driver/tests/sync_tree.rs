//! The summation tree on a real `redis-server`: beyond 16 functions, groups' mergers sum
//! their groups and the reducer sums the group sums; the total is the same bits whatever
//! the arrival order and equals the sums written out by hand, and a merger that never
//! passes its group's sum on is named when the others time out.

use ifp_testkit::*;

use std::time::Duration;

use ifp_host::function::sum_in_order;
use ifp_host::sync::redis::RedisStore;
use ifp_host::sync::simulate::simulate;
use ifp_host::sync::{Arrival, InProcess, Release, StateStore};

/// Partials whose sum depends on the order of the additions: big and small values mixed.
fn partial(f: u32) -> Vec<f64> {
    (0..5)
        .map(|i| if (f + i).is_multiple_of(3) { 1e16 + f as f64 } else { 0.3 * (f * 7 + i) as f64 + 1.0 / 3.0 })
        .collect()
}

/// Every function of a `functions`-function job arrives at iteration 0, in `order`, each
/// after the previous one's arrival returned; returns the total the reducer sums (checking
/// that exactly the last arrival reduces and every other function gets the release).
fn total_in_order(url: &str, job: &str, functions: u32, order: &[u32]) -> Vec<f64> {
    let mut stores: Vec<RedisStore> =
        (0..functions).map(|f| RedisStore::connect(url, job, f, functions, Duration::from_secs(20)).unwrap()).collect();
    stores.iter_mut().for_each(|s| {
        s.join().unwrap();
    });
    let mut total = None;
    for &f in order {
        match stores[f as usize].arrive(0, f, &partial(f)).unwrap() {
            Arrival::Reduce(parts) => {
                assert!(total.is_none(), "one function reduces");
                assert_eq!(f, *order.last().unwrap(), "the last arrival reduces");
                total = Some(sum_in_order(&parts).unwrap());
            }
            Arrival::Wait => {}
            Arrival::Released(_) => panic!("nothing is released yet"),
        }
    }
    let total = total.expect("the last arrival reduces");
    stores[*order.last().unwrap() as usize]
        .release(0, &Release { model: total.clone(), loss: 0.0, converged: false, stop: false })
        .unwrap();
    for &f in &order[..order.len() - 1] {
        assert_eq!(stores[f as usize].await_release(0, f).unwrap().model, total, "every waiter gets the release");
    }
    total
}

#[test]
fn the_total_is_the_fixed_tree_sum_whatever_the_arrival_order() {
    let redis = RedisServer::start(None);
    let url = redis.url();
    // 40 functions: groups of 16, 16 and 8; the sum by hand, in that order.
    let n = 40u32;
    let mut by_hand = vec![0.0; 5];
    for g in [0..16u32, 16..32, 32..40] {
        let mut group = partial(g.start);
        for f in g.start + 1..g.end {
            group.iter_mut().zip(partial(f)).for_each(|(a, b)| *a += b);
        }
        if g.start == 0 {
            by_hand = group;
        } else {
            by_hand.iter_mut().zip(group).for_each(|(a, b)| *a += b);
        }
    }
    let sequential = sum_in_order(&(0..n).map(partial).collect::<Vec<_>>()).unwrap();
    assert_ne!(sequential, by_hand, "the inputs tell the tree's order from the sequential one");
    let forward: Vec<u32> = (0..n).collect();
    let backward: Vec<u32> = (0..n).rev().collect();
    // A scrambled order: multiples of 7 modulo 40 (7 is prime to 40).
    let scrambled: Vec<u32> = (0..n).map(|i| (i * 7 + 3) % n).collect();
    for (i, order) in [forward, backward, scrambled].iter().enumerate() {
        let total = total_in_order(&url, &format!("tree-{i}"), n, order);
        assert_eq!(
            total.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            by_hand.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "arrival order {i}"
        );
    }
    // All at once, from threads: still one reducer and the same bits.
    let mut stores: Vec<RedisStore> =
        (0..n).map(|f| RedisStore::connect(&url, "tree-threads", f, n, Duration::from_secs(20)).unwrap()).collect();
    stores.iter_mut().for_each(|s| {
        s.join().unwrap();
    });
    let start = std::sync::Arc::new(std::sync::Barrier::new(n as usize));
    let handles: Vec<_> = stores
        .into_iter()
        .enumerate()
        .map(|(f, mut s)| {
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                match s.arrive(0, f as u32, &partial(f as u32)).unwrap() {
                    Arrival::Reduce(parts) => Some(sum_in_order(&parts).unwrap()),
                    _ => None,
                }
            })
        })
        .collect();
    let totals: Vec<Vec<f64>> = handles.into_iter().filter_map(|h| h.join().unwrap()).collect();
    assert_eq!(totals.len(), 1, "one function reduces");
    assert_eq!(
        totals[0].iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        by_hand.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        "concurrent arrivals"
    );
    // The in-process store sums in the same tree.
    let stores: Vec<InProcess> = {
        let a = InProcess::new("j", n as usize, Duration::from_secs(5));
        (0..n).map(|_| a.clone()).collect()
    };
    let mut reduced = None;
    for (f, mut s) in stores.into_iter().enumerate() {
        if let Arrival::Reduce(parts) = s.arrive(0, f as u32, &partial(f as u32)).unwrap() {
            reduced = Some(sum_in_order(&parts).unwrap());
        }
    }
    assert_eq!(reduced.unwrap(), by_hand, "in-process");
    let keys: Vec<String> = redis::cmd("KEYS").arg("ifp:{tree-[0-9]}:p:*").query(&mut redis.con()).unwrap();
    assert!(keys.is_empty(), "the release removes the round's partials: {keys:?}");
}

#[test]
fn a_merger_that_never_passes_its_group_on_is_named_in_the_timeout() {
    let redis = RedisServer::start(None);
    let url = redis.url();
    let n = 20u32;
    let mut stores: Vec<RedisStore> =
        (0..n).map(|f| RedisStore::connect(&url, "stall", f, n, Duration::from_secs(1)).unwrap()).collect();
    // Group 0 (functions 0..=15) arrives; of group 1 (16..=19), all but function 19.
    stores.iter_mut().for_each(|s| {
        s.join().unwrap();
    });
    for f in 0..16 {
        assert!(matches!(stores[f as usize].arrive(0, f, &partial(f)).unwrap(), Arrival::Wait), "group 0 alone");
    }
    for f in 16..19 {
        assert!(matches!(stores[f as usize].arrive(0, f, &partial(f)).unwrap(), Arrival::Wait));
    }
    let e = stores[0].await_release(0, 0).unwrap_err().to_string();
    assert!(e.ends_with("(function 19 never arrived: it died or stalled)"), "{e}");
    // Function 19 completes group 1, and so merges it, then dies before it arrives at the
    // root: the state it leaves (the module's key layout: its partial written, the complete
    // group renamed to `in:` with itself as merger), made by hand.
    let bytes = ifp_host::sync::codec::encode_partial(&partial(19));
    let mut con = redis.con();
    let _: () = redis::pipe()
        .cmd("HSETNX")
        .arg("ifp:{stall}:p:0:1")
        .arg(19)
        .arg(bytes)
        .ignore()
        .cmd("RENAME")
        .arg("ifp:{stall}:p:0:1")
        .arg("ifp:{stall}:in:0:1")
        .ignore()
        .cmd("HSET")
        .arg("ifp:{stall}:in:0:1")
        .arg("m")
        .arg(19)
        .ignore()
        .query(&mut con)
        .unwrap();
    let e = stores[0].await_release(0, 0).unwrap_err().to_string();
    assert!(
        e.ends_with("(every function arrived; function 19, which sums functions 16..=19, never passed their sum on: it died or stalled)"),
        "{e}"
    );
    // Its retry (a restarted function 19) merges the group again and the round completes.
    match stores[19].arrive(0, 19, &partial(19)).unwrap() {
        Arrival::Reduce(parts) => assert_eq!(parts.len(), 2, "the root's parts: two group sums"),
        other => panic!("the retried merger completes the root and reduces, got {other:?}"),
    }
}

#[test]
fn the_simulation_runs_256_functions_with_a_few_commands_each() {
    let redis = RedisServer::start(None);
    let s = simulate(&redis.url(), 256, 2, Duration::ZERO).unwrap();
    assert_eq!(s.functions, 256);
    // Per function and iteration: the arrival's pipeline (4 commands and the script's own
    // 3 or so), the wait's XREAD; groups' mergers and the reducer a few more.
    assert!((256 * 5..256 * 12).contains(&s.commands), "{s:?}");
    assert!(s.bytes_in >= 256 * 610 * 8, "every partial went in: {s:?}");
}

#[test]
fn a_release_streams_only_the_changed_coordinates_to_waiters_that_hold_the_model_before() {
    use ifp_host::sync::CENSUS;
    let redis = RedisServer::start(None);
    let url = redis.url();
    let mut stores: Vec<RedisStore> =
        (0..2).map(|f| RedisStore::connect(&url, "delta", f, 2, Duration::from_secs(5)).unwrap()).collect();
    stores.iter_mut().for_each(|s| {
        s.join().unwrap();
    });
    // The census: function 1 waits, function 0 reduces and releases the first model.
    let m0: Vec<f64> = (0..10_000).map(|i| (i % 7) as f64 - 3.0).collect();
    let release = |model: Vec<f64>| Release { model, loss: 1.0, converged: false, stop: false };
    assert!(matches!(stores[1].arrive(CENSUS, 1, &[1.0]).unwrap(), Arrival::Wait));
    assert!(matches!(stores[0].arrive(CENSUS, 0, &[1.0]).unwrap(), Arrival::Reduce(_)));
    stores[0].release(CENSUS, &release(m0.clone())).unwrap();
    assert_eq!(stores[1].await_release(CENSUS, 1).unwrap().model, m0);
    // Iteration 0 changes three weights (a mini-batch's features): the stream carries them.
    let mut m1 = m0.clone();
    for i in [5, 700, 9_999] {
        m1[i] += 0.125;
    }
    assert!(matches!(stores[1].arrive(0, 1, &[1.0]).unwrap(), Arrival::Wait));
    assert!(matches!(stores[0].arrive(0, 0, &[1.0]).unwrap(), Arrival::Reduce(_)));
    stores[0].release(0, &release(m1.clone())).unwrap();
    let entry: redis::Value =
        redis::cmd("XRANGE").arg("ifp:{delta}:s:0").arg("-").arg("+").query(&mut redis.con()).unwrap();
    let streamed = format!("{entry:?}");
    let whole: Vec<u8> = redis::cmd("GET").arg("ifp:{delta}:r:0").query(&mut redis.con()).unwrap();
    assert!(whole.len() > 9 + 8 * 9_000, "r: keeps the whole release ({} bytes)", whole.len());
    assert!(streamed.len() < 2_000, "the stream holds 3 changes, not 10,000 values: {streamed}");
    let got = stores[1].await_release(0, 1).unwrap();
    assert!(got.model.iter().zip(&m1).all(|(a, b)| a.to_bits() == b.to_bits()), "the changes applied bit for bit");
    // A store that did not see the model before (a rejoined function) reads the whole release.
    let mut fresh = RedisStore::connect(&url, "delta", 1, 2, Duration::from_secs(5)).unwrap();
    assert_eq!(fresh.await_release(0, 1).unwrap().model, m1);
}
