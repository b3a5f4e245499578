//! Stale-synchronous rounds (`--staleness S`, S > 0): a function may run up to `S` rounds
//! ahead of the slowest, and a slow function's newest partial is reused instead of waited for.
//!
//! Every partial a function delivers is labelled with the version `v` of the model it stepped
//! on (`M_v`; round `t` makes `M_{t+1}`). The store keeps each function's newest partial and its
//! version `v_f`. Round `t` (the newest model is `M_t`) is reduced as soon as ([`ready`])
//!
//! - every function has delivered a partial, and each is at most `S` versions old
//!   (`v_f ≥ t − S`), and
//! - at least one is fresh (`v_f = t`): a round never reuses only old partials.
//!
//! The sum is every function's newest partial in function order, so every row is in every
//! update (a full-batch kernel's `update` checks that). A function never steps twice on the
//! same model: after delivering it takes the newest model if one was released after the one it
//! stepped on (a late delivery takes it in the same request), and otherwise waits for the
//! next release. So a function that is fresh waits only while some other function's newest
//! partial would be more than `S` versions old: no function runs more than `S` rounds ahead
//! of the slowest, and a constantly slow function no longer holds up every round.
//!
//! With `S = 0` the rule asks for every partial fresh, which is the synchronous protocol; the
//! engine then uses the synchronous path itself ([`super::StateStore::arrive`]), unchanged.
//! With `S > 0` the model depends on timing (which partials were fresh when each round was
//! reduced); each round records the staleness it saw ([`Staleness`]). The release that says
//! stop ends every function after its current step. Only flat rounds (at most
//! [`super::tree::FLAT`] functions) and full-batch kernels are supported; a function cannot
//! rejoin a stale job mid-way.

use std::time::Instant;

use super::in_process::{InProcess, Shared};
use super::{Release, SyncError};

/// What one round saw: the oldest partial's age in versions, and the functions whose
/// partial was not fresh (function order).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Staleness {
    /// `max_f (t − v_f)`.
    pub max: u32,
    /// The functions with `v_f < t`.
    pub stale_functions: Vec<u32>,
}

impl Staleness {
    /// The stale functions as a bit mask (at most 32 functions).
    pub fn mask(&self) -> u32 {
        self.stale_functions.iter().fold(0, |m, f| m | 1 << f)
    }

    pub fn from_mask(max: u32, mask: u32) -> Self {
        Self { max, stale_functions: (0..32).filter(|f| mask & 1 << f != 0).collect() }
    }
}

/// A released round as functions that did not reduce it learn of it.
#[derive(Clone, Debug, PartialEq)]
pub struct RoundRecord {
    /// The loss the round's release carries (of the model entering it).
    pub loss: f64,
    pub staleness: Staleness,
}

impl RoundRecord {
    /// `[loss f64 | max u32 | stale mask u32]`, little-endian.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = self.loss.to_le_bytes().to_vec();
        b.extend_from_slice(&self.staleness.max.to_le_bytes());
        b.extend_from_slice(&self.staleness.mask().to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Option<Self> {
        let b: &[u8; 16] = b.try_into().ok()?;
        let loss = f64::from_le_bytes(b[..8].try_into().ok()?);
        let max = u32::from_le_bytes(b[8..12].try_into().ok()?);
        let mask = u32::from_le_bytes(b[12..].try_into().ok()?);
        Some(Self { loss, staleness: Staleness::from_mask(max, mask) })
    }
}

/// The newest model, taken by a function after it delivered a partial on version `v`.
#[derive(Clone, Debug, PartialEq)]
pub struct Took {
    /// The taken model's version (`> v`).
    pub version: u32,
    /// The release that made it (of round `version − 1`).
    pub release: Release,
    /// The rounds `v..version`, oldest first.
    pub records: Vec<RoundRecord>,
}

/// A round this function reduces: the parts to sum in order, and what the round saw.
#[derive(Clone, Debug, PartialEq)]
pub struct ReduceRound {
    pub t: u32,
    pub parts: Vec<Vec<f64>>,
    pub staleness: Staleness,
}

/// The answer to a delivery.
#[derive(Debug, Default, PartialEq)]
pub struct Delivered {
    /// The delivery was late (a newer model was out): the newest one, taken.
    pub took: Option<Took>,
    /// This function reduces the newest round (on the model it stepped on, or on `took`'s).
    pub reduce: Option<ReduceRound>,
}

/// The rule: whether round `t` can be reduced with the newest partials' `versions` (function
/// order; `None`: none delivered yet) and staleness bound `bound`, and what it then sees.
pub fn ready(t: u32, bound: u32, versions: &[Option<u32>]) -> Option<Staleness> {
    let mut fresh = false;
    let mut seen = Staleness::default();
    for (f, v) in versions.iter().enumerate() {
        let v = (*v)?;
        let lag = t.checked_sub(v)?;
        if lag > bound {
            return None;
        }
        if lag == 0 {
            fresh = true;
        } else {
            seen.max = seen.max.max(lag);
            seen.stale_functions.push(f as u32);
        }
    }
    fresh.then_some(seen)
}

/// The functions holding up round `t` under bound `bound` (those without a partial at most
/// `bound` versions old).
pub fn holding_up(t: u32, bound: u32, versions: &[Option<u32>]) -> Vec<u32> {
    (0..versions.len() as u32).filter(|&f| versions[f as usize].is_none_or(|v| v + bound < t)).collect()
}

/// A store that can run stale-synchronous rounds.
pub trait StaleStore {
    /// Delivers function `w`'s partial on model version `v`, under staleness bound `bound`.
    fn deliver(&mut self, w: u32, v: u32, partial: &[f64], bound: u32) -> Result<Delivered, SyncError>;
    /// Publishes the reduction of round `t` (model `t + 1`) and what the round saw.
    fn release_round(&mut self, t: u32, release: &Release, staleness: &Staleness, bound: u32) -> Result<(), SyncError>;
    /// Blocks until a model newer than version `v` is released, and takes it.
    fn await_newer(&mut self, w: u32, v: u32, bound: u32) -> Result<Took, SyncError>;
}

/// The stale rounds of an in-process job.
#[derive(Default)]
pub(super) struct StaleState {
    versions: Vec<Option<u32>>,
    partials: Vec<Vec<f64>>,
    /// Rounds released: the newest model's version.
    cur: u32,
    newest: Option<Release>,
    /// One per released round.
    records: Vec<RoundRecord>,
    /// The function reducing round `cur`, if one is.
    reducing: Option<u32>,
    stopped: bool,
}

impl StaleState {
    fn took_since(&self, v: u32) -> Option<Took> {
        let release = self.newest.clone().filter(|_| self.cur > v)?;
        Some(Took { version: self.cur, release, records: self.records[v as usize..].to_vec() })
    }
}

impl StaleStore for InProcess {
    fn deliver(&mut self, w: u32, v: u32, partial: &[f64], bound: u32) -> Result<Delivered, SyncError> {
        self.stats.round_trips += 1;
        let (lock, _) = &*self.shared;
        let mut s = lock.lock().unwrap();
        self.aborted(&s)?;
        let n = self.workers;
        let st = &mut s.stale;
        if st.versions.is_empty() {
            st.versions = vec![None; n];
            st.partials = vec![Vec::new(); n];
        }
        st.versions[w as usize] = Some(v);
        st.partials[w as usize] = partial.to_vec();
        let took = st.took_since(v);
        let mut reduce = None;
        if !st.stopped && st.reducing.is_none() {
            if let Some(staleness) = ready(st.cur, bound, &st.versions) {
                st.reducing = Some(w);
                reduce = Some(ReduceRound { t: st.cur, parts: st.partials.clone(), staleness });
            }
        }
        Ok(Delivered { took, reduce })
    }

    fn release_round(&mut self, t: u32, release: &Release, staleness: &Staleness, _: u32) -> Result<(), SyncError> {
        self.stats.round_trips += 1;
        let (lock, cv) = &*self.shared;
        let mut s = lock.lock().unwrap();
        let st = &mut s.stale;
        if st.cur == t {
            st.cur = t + 1;
            st.newest = Some(release.clone());
            st.records.push(RoundRecord { loss: release.loss, staleness: staleness.clone() });
            st.reducing = None;
            st.stopped = release.stop;
        }
        cv.notify_all();
        Ok(())
    }

    fn await_newer(&mut self, w: u32, v: u32, bound: u32) -> Result<Took, SyncError> {
        self.stats.round_trips += 1;
        let started = Instant::now();
        let (lock, cv) = &*self.shared;
        let mut s: std::sync::MutexGuard<'_, Shared> = lock.lock().unwrap();
        loop {
            self.aborted(&s)?;
            if let Some(took) = s.stale.took_since(v) {
                self.stats.wait_s += started.elapsed().as_secs_f64();
                return Ok(took);
            }
            let left = self.timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                let st = &s.stale;
                return Err(SyncError::Timeout {
                    job: self.job.clone(),
                    worker: w,
                    iteration: st.cur,
                    timeout: self.timeout,
                    missing: holding_up(st.cur, bound, &st.versions),
                    merger: None,
                    reducer: st.reducing,
                });
            }
            s = cv.wait_timeout(s, left).unwrap().0;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn rel(x: f64, stop: bool) -> Release {
        Release { model: vec![x], loss: x, converged: false, stop }
    }

    #[test]
    fn the_rule_wants_one_fresh_partial_and_none_older_than_the_bound() {
        // Round 0 needs every function's partial.
        assert_eq!(ready(0, 2, &[Some(0), None, Some(0)]), None);
        assert_eq!(ready(0, 2, &[Some(0), Some(0), Some(0)]), Some(Staleness::default()));
        // S = 0: every partial fresh, exactly the synchronous rule.
        assert_eq!(ready(3, 0, &[Some(3), Some(2), Some(3)]), None);
        assert_eq!(ready(3, 0, &[Some(3), Some(3), Some(3)]), Some(Staleness::default()));
        // S = 2: function 1's partial 2 versions old is reused, 3 versions old is not.
        assert_eq!(ready(3, 2, &[Some(3), Some(1), Some(3)]), Some(Staleness { max: 2, stale_functions: vec![1] }));
        assert_eq!(ready(3, 2, &[Some(3), Some(0), Some(3)]), None);
        assert_eq!(holding_up(3, 2, &[Some(3), Some(0), None]), vec![1, 2]);
        // No fresh partial: nothing new to reduce.
        assert_eq!(ready(3, 2, &[Some(2), Some(2), Some(1)]), None);
        assert_eq!(ready(4, 3, &[Some(4), Some(2), Some(1)]), Some(Staleness { max: 3, stale_functions: vec![1, 2] }));
    }

    #[test]
    fn records_round_trip() {
        let r = RoundRecord { loss: 0.125, staleness: Staleness { max: 2, stale_functions: vec![0, 3, 15] } };
        assert_eq!(RoundRecord::decode(&r.encode()), Some(r));
        assert_eq!(RoundRecord::decode(&[0; 15]), None);
    }

    #[test]
    fn a_slow_function_is_reused_up_to_the_bound_and_takes_the_newest_model_when_late() {
        let mut a = InProcess::new("j", 2, Duration::from_secs(5));
        let mut b = a.clone();
        // Round 0: both must deliver.
        let d = a.deliver(0, 0, &[1.0], 1).unwrap();
        assert!(d.took.is_none() && d.reduce.is_none());
        let d = b.deliver(1, 0, &[10.0], 1).unwrap();
        let r = d.reduce.expect("the last delivery completes round 0");
        assert_eq!((r.t, r.parts.clone(), r.staleness.clone()), (0, vec![vec![1.0], vec![10.0]], Staleness::default()));
        b.release_round(0, &rel(0.5, false), &r.staleness, 1).unwrap();
        let took = a.await_newer(0, 0, 1).unwrap();
        assert_eq!((took.version, took.release.model.clone()), (1, vec![0.5]));
        // Function 1 is slow on M1; function 0 delivers on M1: round 1 reuses function 1's old partial.
        let d = a.deliver(0, 1, &[2.0], 1).unwrap();
        let r = d.reduce.expect("a fresh partial and one a version old: reduce");
        assert_eq!((r.t, r.parts.clone()), (1, vec![vec![2.0], vec![10.0]]));
        assert_eq!(r.staleness, Staleness { max: 1, stale_functions: vec![1] });
        a.release_round(1, &rel(1.5, false), &r.staleness, 1).unwrap();
        // Function 0 on M2 must now wait: function 1's partial would be 2 versions old.
        let d = a.deliver(0, 2, &[3.0], 1).unwrap();
        assert!(d.took.is_none() && d.reduce.is_none());
        // Function 1 delivers on M1, late: it takes M2 and reduces round 2 with it.
        let d = b.deliver(1, 1, &[20.0], 1).unwrap();
        let took = d.took.expect("a late delivery takes the newest model");
        assert_eq!((took.version, took.release.model.clone()), (2, vec![1.5]));
        assert_eq!(took.records.iter().map(|r| r.loss).collect::<Vec<_>>(), vec![1.5]);
        let r = d.reduce.expect("round 2 is complete");
        assert_eq!((r.t, r.parts.clone(), r.staleness.clone()), (2, vec![vec![3.0], vec![20.0]], r.staleness.clone()));
        assert_eq!(r.staleness, Staleness { max: 1, stale_functions: vec![1] });
        b.release_round(2, &rel(2.5, true), &r.staleness, 1).unwrap();
        let took = a.await_newer(0, 2, 1).unwrap();
        assert!(took.release.stop);
        // After the stop nothing is reduced any more.
        assert!(b.deliver(1, 3, &[1.0], 1).unwrap().reduce.is_none());
    }

    #[test]
    fn a_function_waiting_on_a_straggler_times_out_naming_it() {
        let mut a = InProcess::new("job-s", 3, Duration::from_millis(50));
        let mut b = a.clone();
        a.deliver(0, 0, &[1.0], 2).unwrap();
        b.deliver(1, 0, &[1.0], 2).unwrap();
        let e = a.await_newer(0, 0, 2).unwrap_err().to_string();
        assert_eq!(
            e,
            "job job-s: function 0 timed out after 50ms waiting for iteration 0 (function 2 never arrived: it died or stalled)"
        );
    }
}
