//! Stale-synchronous rounds (`--staleness S`, S > 0): a function may run up to `S` rounds
//! ahead of the slowest, and a slow function's newest partial is reused instead of waited for.
//!
//! Every partial a function delivers is labelled with the version `v` of the model it stepped
//! on (`M_v`; round `t` makes `M_{t+1}`). The store keeps each function's newest partial and its
//! version `v_f`. Round `t` (the newest model is `M_t`) can be reduced ([`decide`]) once
//!
//! - every function has delivered a partial, and each is at most `S` versions old
//!   (`v_f ≥ t − S`), and
//! - at least one is fresh (`v_f = t`): a round never reuses only old partials;
//!
//! and it is, at once if every function it is *due* to wait for is fresh, else after a grace
//! period (the waiting function's own step time) in which they may still deliver. A function
//! is due in round `t` if it started on `M_t` at its release (it was waiting for it, or reduced
//! the round before); one that delivered late and took `M_t` then is not. So functions of equal
//! speed keep delivering fresh partials, while a straggler, once it fell behind, holds no round
//! up until the bound does.
//!
//! The sum is every function's newest partial in function order, so every row is in every
//! update (a full-batch kernel's `update` checks that). A function never steps twice on the
//! same model: after delivering it takes the newest model if one was released after the one it
//! stepped on (a late delivery takes it in the same request), and otherwise waits for the
//! next release. No function runs more than `S` rounds ahead of the slowest.
//!
//! With `S = 0` the rule asks for every partial fresh, which is the synchronous protocol; the
//! engine then uses the synchronous path itself ([`super::StateStore::arrive`]), unchanged.
//! With `S > 0` the model depends on timing (which partials were fresh when each round was
//! reduced); each round records the staleness it saw ([`Staleness`]). The release that says
//! stop ends every function after its current step. Only flat rounds (at most
//! [`super::tree::FLAT`] functions) and full-batch kernels are supported; a function cannot
//! rejoin a stale job mid-way.

use std::time::{Duration, Instant};

use super::in_process::{InProcess, Shared};
use super::{Release, SyncError};

/// A staleness bound of 0: synchronous rounds (left out of a task's JSON).
pub fn is_synchronous(bound: &u32) -> bool {
    *bound == 0
}

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
    /// The round waits only for functions stepping on its own model: wait for them a grace
    /// period, then deliver again with `force` ([`Decision::Hold`]).
    pub hold: bool,
}

/// What the rule says about a round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Reduce it now; it sees this staleness.
    Reduce(Staleness),
    /// It could be reduced, but a function it is due to wait for has not delivered on its
    /// model yet: wait a grace period for it, then reduce anyway (`force`).
    Hold,
    /// Not yet: a partial is missing, too old, or none is fresh.
    Wait,
}

/// The rule for round `t` (the newest model is `M_t`) under bound `bound`, from the newest
/// partials' `versions` (function order; `None`: none delivered yet) and the round each
/// function is `due` in: `t` for one that started on `M_t` when it was released (it was
/// waiting for it, or reduced it). A round is reduced once every partial is at most `bound`
/// versions old and one is fresh, but it waits (up to a grace period, then `force`) for the
/// functions due in it; a function that delivered late and took `M_t` then is not due in
/// round `t`, so a straggler stops holding rounds up once it fell behind.
pub fn decide(t: u32, bound: u32, versions: &[Option<u32>], due: &[u32], force: bool) -> Decision {
    let mut fresh = false;
    let mut busy_on_t = false;
    let mut seen = Staleness::default();
    for (f, v) in versions.iter().enumerate() {
        let Some(lag) = v.and_then(|v| t.checked_sub(v)).filter(|&lag| lag <= bound) else { return Decision::Wait };
        if lag == 0 {
            fresh = true;
        } else {
            seen.max = seen.max.max(lag);
            seen.stale_functions.push(f as u32);
            busy_on_t |= due.get(f).copied().unwrap_or(0) >= t;
        }
    }
    match (fresh, busy_on_t && !force) {
        (false, _) => Decision::Wait,
        (true, true) => Decision::Hold,
        (true, false) => Decision::Reduce(seen),
    }
}

/// The functions holding up round `t` under bound `bound` (those without a partial at most
/// `bound` versions old).
pub fn holding_up(t: u32, bound: u32, versions: &[Option<u32>]) -> Vec<u32> {
    (0..versions.len() as u32).filter(|&f| versions[f as usize].is_none_or(|v| v + bound < t)).collect()
}

/// A store that can run stale-synchronous rounds.
pub trait StaleStore {
    /// Delivers function `w`'s partial on model version `v`, under staleness bound `bound`
    /// (`force`: again, after a [`Delivered::hold`]'s grace period).
    fn deliver(&mut self, w: u32, v: u32, partial: &[f64], bound: u32, force: bool) -> Result<Delivered, SyncError>;
    /// Publishes the reduction of round `t` (model `t + 1`) and what the round saw.
    fn release_round(&mut self, t: u32, release: &Release, staleness: &Staleness, bound: u32) -> Result<(), SyncError>;
    /// Blocks until a model newer than version `v` is released, and takes it.
    fn await_newer(&mut self, w: u32, v: u32, bound: u32) -> Result<Took, SyncError>;
    /// [`StaleStore::await_newer`] for at most `grace`: `None` if nothing came.
    fn await_within(&mut self, w: u32, v: u32, grace: Duration) -> Result<Option<Took>, SyncError>;
}

/// The stale rounds of an in-process job.
#[derive(Default)]
pub(super) struct StaleState {
    versions: Vec<Option<u32>>,
    /// The round each function is due in ([`decide`]).
    due: Vec<u32>,
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
    fn deliver(&mut self, w: u32, v: u32, partial: &[f64], bound: u32, force: bool) -> Result<Delivered, SyncError> {
        self.stats.round_trips += 1;
        self.stats.partial_bytes += super::codec::encoded_len(partial) as u64;
        let (lock, _) = &*self.shared;
        let mut s = lock.lock().unwrap();
        self.aborted(&s)?;
        let n = self.workers;
        let st = &mut s.stale;
        if st.versions.is_empty() {
            st.versions = vec![None; n];
            st.due = vec![0; n];
            st.partials = vec![Vec::new(); n];
        }
        st.versions[w as usize] = Some(v);
        st.partials[w as usize] = partial.to_vec();
        let took = st.took_since(v);
        let mut d = Delivered { took, ..Default::default() };
        if !st.stopped && st.reducing.is_none() {
            match decide(st.cur, bound, &st.versions, &st.due, force) {
                Decision::Reduce(staleness) => {
                    st.reducing = Some(w);
                    d.reduce = Some(ReduceRound { t: st.cur, parts: st.partials.clone(), staleness });
                }
                Decision::Hold => d.hold = d.took.is_none(),
                Decision::Wait => {}
            }
        }
        Ok(d)
    }

    fn release_round(&mut self, t: u32, release: &Release, staleness: &Staleness, _: u32) -> Result<(), SyncError> {
        self.stats.round_trips += 1;
        let (lock, cv) = &*self.shared;
        let mut s = lock.lock().unwrap();
        let st = &mut s.stale;
        if st.cur == t {
            // The functions waiting with a partial on M_t, and the reducer, step on M_{t+1}
            // from its release on: round t + 1 is due to wait for them (a grace period).
            for f in 0..st.due.len() {
                if st.versions[f] == Some(t) || st.reducing == Some(f as u32) {
                    st.due[f] = t + 1;
                }
            }
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
        if let Some(took) = self.wait_newer(v, self.timeout)? {
            return Ok(took);
        }
        let (lock, _) = &*self.shared;
        let s = lock.lock().unwrap();
        let st = &s.stale;
        Err(SyncError::Timeout {
            job: self.job.clone(),
            worker: w,
            iteration: st.cur,
            timeout: self.timeout,
            missing: holding_up(st.cur, bound, &st.versions),
            merger: None,
            reducer: st.reducing,
        })
    }

    fn await_within(&mut self, _: u32, v: u32, grace: Duration) -> Result<Option<Took>, SyncError> {
        self.wait_newer(v, grace)
    }
}

impl InProcess {
    /// Waits up to `limit` for a model newer than version `v` and takes the newest (`None`:
    /// none came).
    fn wait_newer(&mut self, v: u32, limit: Duration) -> Result<Option<Took>, SyncError> {
        self.stats.round_trips += 1;
        let started = Instant::now();
        let (lock, cv) = &*self.shared;
        let mut s: std::sync::MutexGuard<'_, Shared> = lock.lock().unwrap();
        loop {
            self.aborted(&s)?;
            let took = s.stale.took_since(v);
            let left = limit.saturating_sub(started.elapsed());
            if took.is_some() || left.is_zero() {
                self.stats.wait_s += started.elapsed().as_secs_f64();
                return Ok(took);
            }
            s = cv.wait_timeout(s, left).unwrap().0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(x: f64, stop: bool) -> Release {
        Release { model: vec![x], loss: x, converged: false, stop }
    }

    fn stale(max: u32, stale_functions: &[u32]) -> Staleness {
        Staleness { max, stale_functions: stale_functions.to_vec() }
    }

    #[test]
    fn the_rule_wants_one_fresh_partial_none_older_than_the_bound_and_waits_for_the_functions_due() {
        use Decision::*;
        // Round 0 needs every function's partial.
        assert_eq!(decide(0, 2, &[Some(0), None, Some(0)], &[0; 3], true), Wait);
        assert_eq!(decide(0, 2, &[Some(0), Some(0), Some(0)], &[0; 3], false), Reduce(Staleness::default()));
        // S = 0: every partial fresh, exactly the synchronous rule.
        assert_eq!(decide(3, 0, &[Some(3), Some(2), Some(3)], &[3, 2, 3], true), Wait);
        assert_eq!(decide(3, 0, &[Some(3), Some(3), Some(3)], &[3; 3], false), Reduce(Staleness::default()));
        // S = 2: function 1's partial 2 versions old is reused at once when it is not due in
        // round 3 (it took M3 late, or is still on an older model)...
        assert_eq!(decide(3, 2, &[Some(3), Some(1), Some(3)], &[3, 2, 3], false), Reduce(stale(2, &[1])));
        // ... and after a grace period when it is (it started on M3 at its release).
        assert_eq!(decide(3, 2, &[Some(3), Some(2), Some(3)], &[3, 3, 3], false), Hold);
        assert_eq!(decide(3, 2, &[Some(3), Some(2), Some(3)], &[3, 3, 3], true), Reduce(stale(1, &[1])));
        // 3 versions old is never reused; nor are old partials only.
        assert_eq!(decide(3, 2, &[Some(3), Some(0), Some(3)], &[3, 0, 3], true), Wait);
        assert_eq!(holding_up(3, 2, &[Some(3), Some(0), None]), vec![1, 2]);
        assert_eq!(decide(3, 2, &[Some(2), Some(2), Some(1)], &[2, 2, 1], true), Wait);
        assert_eq!(decide(4, 3, &[Some(4), Some(2), Some(1)], &[4, 2, 1], false), Reduce(stale(3, &[1, 2])));
    }

    #[test]
    fn records_round_trip() {
        let r = RoundRecord { loss: 0.125, staleness: stale(2, &[0, 3, 15]) };
        assert_eq!(RoundRecord::decode(&r.encode()), Some(r));
        assert_eq!(RoundRecord::decode(&[0; 15]), None);
    }

    #[test]
    fn a_slow_function_is_waited_for_a_grace_period_then_reused_up_to_the_bound() {
        let mut a = InProcess::new("j", 2, Duration::from_secs(5));
        let mut b = a.clone();
        // Round 0: both must deliver.
        assert_eq!(a.deliver(0, 0, &[1.0], 1, false).unwrap(), Delivered::default());
        let r = b.deliver(1, 0, &[10.0], 1, false).unwrap().reduce.expect("the last delivery completes round 0");
        assert_eq!((r.t, r.parts.clone(), r.staleness.clone()), (0, vec![vec![1.0], vec![10.0]], Staleness::default()));
        b.release_round(0, &rel(0.5, false), &r.staleness, 1).unwrap();
        let took = a.await_newer(0, 0, 1).unwrap();
        assert_eq!((took.version, took.release.model.clone()), (1, vec![0.5]));
        // Both started on M1: function 0's delivery holds for function 1 a grace period.
        let d = a.deliver(0, 1, &[2.0], 1, false).unwrap();
        assert!(d.hold && d.reduce.is_none() && d.took.is_none(), "{d:?}");
        assert!(a.await_within(0, 1, Duration::from_millis(10)).unwrap().is_none());
        // Then it reduces round 1 with function 1's partial of M0.
        let r = a.deliver(0, 1, &[2.0], 1, true).unwrap().reduce.expect("forced after the grace period");
        assert_eq!((r.t, r.parts.clone(), r.staleness.clone()), (1, vec![vec![2.0], vec![10.0]], stale(1, &[1])));
        a.release_round(1, &rel(1.5, false), &r.staleness, 1).unwrap();
        // Function 0 on M2 must now wait: function 1's partial would be 2 versions old.
        assert_eq!(a.deliver(0, 2, &[3.0], 1, false).unwrap(), Delivered::default());
        // Function 1 delivers on M1, late: it takes M2 and, not due in round 2, reduces it.
        let d = b.deliver(1, 1, &[20.0], 1, false).unwrap();
        let took = d.took.expect("a late delivery takes the newest model");
        assert_eq!((took.version, took.release.model.clone()), (2, vec![1.5]));
        assert_eq!(took.records.iter().map(|r| r.loss).collect::<Vec<_>>(), vec![1.5]);
        let r = d.reduce.expect("round 2 is complete");
        assert_eq!((r.t, r.parts.clone(), r.staleness.clone()), (2, vec![vec![3.0], vec![20.0]], stale(1, &[1])));
        b.release_round(2, &rel(2.5, true), &r.staleness, 1).unwrap();
        assert!(a.await_newer(0, 2, 1).unwrap().release.stop);
        // After the stop nothing is reduced any more.
        assert!(b.deliver(1, 3, &[1.0], 1, true).unwrap().reduce.is_none());
    }

    #[test]
    fn a_function_waiting_on_a_straggler_times_out_naming_it() {
        let mut a = InProcess::new("job-s", 3, Duration::from_millis(50));
        let mut b = a.clone();
        a.deliver(0, 0, &[1.0], 2, false).unwrap();
        b.deliver(1, 0, &[1.0], 2, false).unwrap();
        let e = a.await_newer(0, 0, 2).unwrap_err().to_string();
        assert_eq!(
            e,
            "job job-s: function 0 timed out after 50ms waiting for iteration 0 (function 2 never arrived: it died or stalled)"
        );
    }

    /// The staleness bound travels in the task and is left out when 0 (synchronous), so the
    /// JSON of every synchronous task is unchanged.
    #[test]
    fn staleness_is_left_out_of_the_task_when_zero() {
        let mut t: crate::task::FunctionTask = serde_json::from_str(
            r#"{"job":"j","function":0,"functions":1,"data":"d.npy","kernel":"logreg","max_iter":3}"#,
        )
        .unwrap();
        assert_eq!(t.staleness, 0);
        assert!(!serde_json::to_string(&t).unwrap().contains("staleness"));
        t.staleness = 2;
        let json = serde_json::to_string(&t).unwrap();
        assert!(json.contains(r#""staleness":2"#), "{json}");
        assert_eq!(serde_json::from_str::<crate::task::FunctionTask>(&json).unwrap().staleness, 2);
    }
}
