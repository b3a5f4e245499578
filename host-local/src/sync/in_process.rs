//! The in-process state store ([`InProcess`]): the functions of a job are threads of one
//! process, sharing the iterations' partials behind a mutex and a condition variable.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::tree::Tree;
use super::{Arrival, Release, StateStore, SyncError, SyncStats, CENSUS};

#[derive(Default)]
struct Iteration {
    partials: Vec<Option<Vec<f64>>>,
    arrived: usize,
    release: Option<Release>,
    /// The function that completed the set.
    reducer: Option<u32>,
}

#[derive(Default)]
pub(super) struct Shared {
    iterations: HashMap<u32, Iteration>,
    aborted: Option<(u32, String)>,
    /// The rounds of a stale-synchronous job ([`super::stale`]).
    pub(super) stale: super::stale::StaleState,
}

/// The in-process store: workers are threads sharing one [`InProcess`] (cloned per worker).
#[derive(Clone)]
pub struct InProcess {
    pub(super) job: String,
    pub(super) workers: usize,
    pub(super) timeout: Duration,
    pub(super) shared: Arc<(Mutex<Shared>, Condvar)>,
    pub(super) stats: SyncStats,
    /// Set by the embedding program (Ctrl-C in Python) to stop the job between iterations.
    cancel: Option<Arc<AtomicBool>>,
}

/// Why a cancelled job stopped, as its functions report it.
pub const CANCELLED: &str = "cancelled by the caller";

impl InProcess {
    pub fn new(job: &str, workers: usize, timeout: Duration) -> Self {
        Self { job: job.into(), workers, timeout, shared: Arc::default(), stats: SyncStats::default(), cancel: None }
    }

    /// The same store, stopping the job at the next arrival once `cancel` is set: the arriving
    /// function aborts the job (waking the waiting ones), so every function stops between
    /// iterations, with its shards intact and nothing half-released.
    pub fn cancelled_by(mut self, cancel: Arc<AtomicBool>) -> Self {
        self.cancel = Some(cancel);
        self
    }

    pub(super) fn aborted(&self, s: &Shared) -> Result<(), SyncError> {
        match &s.aborted {
            Some((w, r)) => Err(SyncError::Aborted { job: self.job.clone(), worker: *w, reason: r.clone() }),
            None => Ok(()),
        }
    }
}

impl StateStore for InProcess {
    fn arrive(&mut self, t: u32, w: u32, partial: &[f64]) -> Result<Arrival, SyncError> {
        if self.cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed)) {
            self.abort(w, CANCELLED);
        }
        self.stats.round_trips += 1;
        self.stats.partial_bytes += super::codec::encoded_len(partial) as u64;
        let (lock, _) = &*self.shared;
        let mut s = lock.lock().unwrap();
        self.aborted(&s)?;
        let n = self.workers;
        let it = s.iterations.entry(t).or_insert_with(|| Iteration { partials: vec![None; n], ..Default::default() });
        if let Some(r) = &it.release {
            return Ok(Arrival::Released(r.clone()));
        }
        let slot = &mut it.partials[w as usize];
        if slot.is_some() {
            return Ok(Arrival::Wait);
        }
        *slot = Some(partial.to_vec());
        it.arrived += 1;
        if it.arrived == n {
            it.reducer = Some(w);
            let parts: Vec<Vec<f64>> = it.partials.iter().map(|p| p.clone().unwrap()).collect();
            let tree = if t == CENSUS { Tree::flat(n as u32) } else { Tree::new(n as u32) };
            let parts = tree.root_parts(parts).map_err(|e| SyncError::Partials { job: self.job.clone(), source: e })?;
            Ok(Arrival::Reduce(parts))
        } else {
            Ok(Arrival::Wait)
        }
    }

    fn release(&mut self, t: u32, release: &Release) -> Result<(), SyncError> {
        self.stats.round_trips += 1;
        let (lock, cv) = &*self.shared;
        let mut s = lock.lock().unwrap();
        if let Some(it) = s.iterations.get_mut(&t) {
            it.release = Some(release.clone());
            it.partials.iter_mut().for_each(|p| *p = None);
        }
        // Everyone has passed iteration t - 1 by now.
        if t >= 1 {
            s.iterations.remove(&(t - 1));
        }
        cv.notify_all();
        Ok(())
    }

    fn await_release(&mut self, t: u32, w: u32) -> Result<Release, SyncError> {
        self.stats.round_trips += 1;
        let started = Instant::now();
        let (lock, cv) = &*self.shared;
        let mut s = lock.lock().unwrap();
        loop {
            self.aborted(&s)?;
            if let Some(r) = s.iterations.get(&t).and_then(|it| it.release.clone()) {
                self.stats.wait_s += started.elapsed().as_secs_f64();
                return Ok(r);
            }
            let left = self.timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                let (missing, reducer) = match s.iterations.get(&t) {
                    Some(it) => {
                        ((0..self.workers as u32).filter(|&i| it.partials[i as usize].is_none()).collect(), it.reducer)
                    }
                    None => (Vec::new(), None),
                };
                return Err(SyncError::Timeout {
                    job: self.job.clone(),
                    worker: w,
                    iteration: t,
                    timeout: self.timeout,
                    missing,
                    merger: None,
                    reducer,
                });
            }
            s = cv.wait_timeout(s, left).unwrap().0;
        }
    }

    fn abort(&mut self, w: u32, reason: &str) {
        let (lock, cv) = &*self.shared;
        let mut s = lock.lock().unwrap();
        if s.aborted.is_none() {
            s.aborted = Some((w, reason.to_string()));
        }
        cv.notify_all();
    }

    fn stats(&self) -> SyncStats {
        self.stats
    }

    fn stale(&mut self) -> Option<&mut dyn super::stale::StaleStore> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(t: f64) -> Release {
        Release { model: vec![t], loss: t, converged: false, stop: false }
    }

    #[test]
    fn last_arrival_reduces_in_worker_order_and_retries_do_not_double_count() {
        let mut a = InProcess::new("j", 3, Duration::from_secs(5));
        let (mut b, mut c) = (a.clone(), a.clone());
        assert!(matches!(c.arrive(0, 2, &[3.0]).unwrap(), Arrival::Wait));
        assert!(matches!(a.arrive(0, 0, &[1.0]).unwrap(), Arrival::Wait));
        assert!(matches!(a.arrive(0, 0, &[100.0]).unwrap(), Arrival::Wait), "a retry is ignored");
        match b.arrive(0, 1, &[2.0]).unwrap() {
            Arrival::Reduce(p) => assert_eq!(p, vec![vec![1.0], vec![2.0], vec![3.0]]),
            Arrival::Wait | Arrival::Released(_) => panic!("the last arrival must reduce"),
        }
        b.release(0, &rel(7.0)).unwrap();
        assert_eq!(a.await_release(0, 0).unwrap(), rel(7.0));
        match c.arrive(0, 2, &[3.0]).unwrap() {
            Arrival::Released(r) => assert_eq!(r, rel(7.0), "a retry after the release gets the release"),
            other => panic!("a retry after the release must get it, got {other:?}"),
        }
        assert_eq!(c.await_release(0, 2).unwrap(), rel(7.0));
    }

    #[test]
    fn a_missing_worker_times_out_naming_job_worker_and_iteration() {
        let mut a = InProcess::new("job-x", 2, Duration::from_millis(50));
        a.arrive(4, 0, &[1.0]).unwrap();
        let e = a.await_release(4, 0).unwrap_err().to_string();
        assert_eq!(e, "job job-x: function 0 timed out after 50ms waiting for iteration 4 (function 1 never arrived: it died or stalled)");
    }

    #[test]
    fn a_reducer_that_never_releases_is_named_when_the_others_time_out() {
        let mut a = InProcess::new("job-y", 2, Duration::from_millis(50));
        let mut b = a.clone();
        a.arrive(2, 0, &[1.0]).unwrap();
        assert!(matches!(b.arrive(2, 1, &[2.0]).unwrap(), Arrival::Reduce(_)));
        // Function 1 reduces but never releases.
        let e = a.await_release(2, 0).unwrap_err().to_string();
        assert_eq!(e, "job job-y: function 0 timed out after 50ms waiting for iteration 2 (every function arrived; function 1, which reduces it, never released it: it died or stalled)");
    }

    #[test]
    fn abort_wakes_waiters() {
        let mut a = InProcess::new("j", 2, Duration::from_secs(30));
        let mut b = a.clone();
        a.arrive(0, 0, &[1.0]).unwrap();
        let h = std::thread::spawn(move || a.await_release(0, 0));
        std::thread::sleep(Duration::from_millis(20));
        b.abort(1, "bad data");
        let e = h.join().unwrap().unwrap_err().to_string();
        assert_eq!(e, "job j aborted: function 1 failed: bad data");
    }

    #[test]
    fn a_cancelled_store_stops_every_function_at_its_next_arrival() {
        let cancel = Arc::new(AtomicBool::new(false));
        let mut a = InProcess::new("j", 2, Duration::from_secs(30)).cancelled_by(cancel.clone());
        let mut b = a.clone();
        a.arrive(0, 0, &[1.0]).unwrap();
        assert!(matches!(b.arrive(0, 1, &[2.0]).unwrap(), Arrival::Reduce(_)));
        b.release(0, &rel(1.0)).unwrap();
        assert_eq!(a.await_release(0, 0).unwrap(), rel(1.0));
        a.arrive(1, 0, &[1.0]).unwrap();
        let h = std::thread::spawn(move || a.await_release(1, 0));
        cancel.store(true, Ordering::Relaxed);
        let e = b.arrive(1, 1, &[2.0]).unwrap_err().to_string();
        assert_eq!(e, format!("job j aborted: function 1 failed: {CANCELLED}"));
        let waiting = h.join().unwrap().unwrap_err().to_string();
        assert_eq!(waiting, e, "the waiting function is woken with the same reason");
    }
}
