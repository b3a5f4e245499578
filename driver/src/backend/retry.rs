//! Functions that end before their job does, and what the backends do about it. A function
//! is *lost* when it ends without its report or its own typed failure: its process was killed
//! or crashed, its Lambda invocation timed out, crashed, was throttled or could not be sent.
//! It *continues* when it left at an iteration boundary before its time limit. Either way the
//! backend invokes the same task again and the new attempt rejoins the job where the state
//! store says it is (the store keeps each iteration's partials and releases, and arrivals are
//! idempotent), so the model is the one an uninterrupted run makes.
//!
//! Lost attempts are retried with capped exponential backoff (with jitter), up to
//! `--max-attempts` in all; continuations are not counted against it, but two in a row that
//! made no progress end the function (its time limit is shorter than one iteration). Every
//! earlier attempt is recorded in the function's report (`attempts`).

use std::time::{Duration, Instant};

use backon::{BackoffBuilder as _, ExponentialBackoff, ExponentialBuilder};

use ifp_host::{Attempt, AttemptOutcome, FailureKind, FunctionFailure, FunctionReport, IterationReport};

/// How often and how patiently a lost function is started again.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1: never retry).
    pub max_attempts: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// `max_attempts` attempts, waiting 0.2 s, 0.4 s, ... up to 5 s between them.
    pub fn new(max_attempts: u32) -> Self {
        Self { max_attempts, first_delay: Duration::from_millis(200), max_delay: Duration::from_secs(5) }
    }

    fn delays(&self) -> ExponentialBackoff {
        ExponentialBuilder::default()
            .with_min_delay(self.first_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_attempts.saturating_sub(1) as usize)
            .with_jitter()
            .build()
    }
}

/// What to do after an attempt ended.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per attempt: boxing buys nothing
pub enum Next {
    /// The function is done: its report (with every earlier attempt in it) or its failure.
    Done(Result<FunctionReport, FunctionFailure>),
    /// Start the same task again after this delay.
    Again(Duration),
}

/// One function's attempts in a run.
pub struct FunctionRun {
    function: u32,
    max_attempts: u32,
    delays: ExponentialBackoff,
    /// Attempts that ended without finishing, oldest first.
    attempts: Vec<Attempt>,
    /// Iterations completed by earlier attempts, in order.
    history: Vec<IterationReport>,
    /// Iterations the current attempt was seen to complete (progress lines), if any.
    seen: Vec<IterationReport>,
    /// Continuations in a row that completed no iteration.
    idle_continuations: u32,
    started: Instant,
}

impl FunctionRun {
    pub fn new(function: u32, policy: &RetryPolicy, started: Instant) -> Self {
        Self {
            function,
            max_attempts: policy.max_attempts.max(1),
            delays: policy.delays(),
            attempts: Vec::new(),
            history: Vec::new(),
            seen: Vec::new(),
            idle_continuations: 0,
            started,
        }
    }

    /// The attempt under way (1 for the first).
    pub fn attempt(&self) -> u32 {
        self.attempts.len() as u32 + 1
    }

    /// The current attempt completed iteration `it` (seen in its progress).
    pub fn saw(&mut self, it: &IterationReport) {
        self.seen.push(it.clone());
    }

    /// The current attempt returned `report`: the function is done, or it continues.
    pub fn reported(&mut self, report: FunctionReport) -> Next {
        if !report.continuation {
            return Next::Done(Ok(self.finish(report)));
        }
        let n = report.iterations.len() as u32;
        self.idle_continuations = if n == 0 { self.idle_continuations + 1 } else { 0 };
        let reason = format!("left before its time limit after {n} iterations");
        self.end_attempt(AttemptOutcome::Continued, Some(report.joined_at), report.iterations, reason);
        if self.idle_continuations >= 2 {
            return Next::Done(Err(FunctionFailure::new(
                FailureKind::Host,
                Some(self.function),
                None,
                format!(
                    "two invocations in a row left without completing an iteration: the function's time limit is shorter than one iteration (raise the function's timeout or use more functions), after {} attempts",
                    self.attempts.len()
                ),
            )));
        }
        Next::Again(Duration::ZERO)
    }

    /// The current attempt was lost (`reason`): start it again after a delay, or, when the
    /// attempts are used up, fail with `failure`'s kind and the history in the message.
    pub fn lost(&mut self, failure: FunctionFailure) -> Next {
        let seen = std::mem::take(&mut self.seen);
        let joined = seen.first().map(|i| i.iteration);
        self.end_attempt(AttemptOutcome::Lost, joined, seen, failure.message.clone());
        match self.delays.next() {
            Some(d) if self.attempt() <= self.max_attempts => {
                tracing::warn!(
                    function = self.function,
                    attempt = self.attempt(),
                    "{}; starting it again in {d:?}",
                    failure.message
                );
                Next::Again(d)
            }
            _ => {
                let mut f = failure;
                if self.max_attempts > 1 {
                    f.message = format!("{} (after {} attempts)", f.message, self.attempts.len());
                }
                Next::Done(Err(f))
            }
        }
    }

    fn end_attempt(
        &mut self,
        outcome: AttemptOutcome,
        joined_at: Option<u32>,
        its: Vec<IterationReport>,
        reason: String,
    ) {
        self.attempts.push(Attempt {
            attempt: self.attempt(),
            joined_at,
            iterations: its.len() as u32,
            outcome,
            reason,
            ended_s: self.started.elapsed().as_secs_f64(),
        });
        // Keep the history contiguous: an attempt's iterations follow the previous ones.
        let next = self.history.last().map(|i| i.iteration + 1);
        if its.first().is_some_and(|i| next.is_none_or(|n| i.iteration == n)) {
            self.history.extend(its);
        } else if !its.is_empty() {
            self.history = its;
        }
        self.seen.clear();
    }

    /// The last attempt's report with the earlier attempts and their iterations in it.
    fn finish(&mut self, mut report: FunctionReport) -> FunctionReport {
        report.attempts = std::mem::take(&mut self.attempts);
        let history = std::mem::take(&mut self.history);
        if let (Some(last), Some(first)) = (history.last(), history.first()) {
            if last.iteration + 1 == report.joined_at {
                report.joined_at = first.iteration;
                report.iterations.splice(0..0, history);
            }
        }
        report
    }
}

/// The one-line reason a lost attempt gives, from a failure the backend made for it.
pub fn lost(function: u32, message: String) -> FunctionFailure {
    FunctionFailure::new(FailureKind::Host, Some(function), None, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn it(t: u32) -> IterationReport {
        IterationReport { iteration: t, loss: t as f64, ..Default::default() }
    }

    fn report(joined_at: u32, its: std::ops::Range<u32>, continuation: bool) -> FunctionReport {
        FunctionReport { function: 2, joined_at, iterations: its.map(it).collect(), continuation, ..Default::default() }
    }

    fn policy(n: u32) -> RetryPolicy {
        RetryPolicy { max_attempts: n, first_delay: Duration::from_millis(10), max_delay: Duration::from_millis(40) }
    }

    /// Lost after iterations 0-2 (seen), continued after 3-5, then done with 6-7: one report
    /// with iterations 0-7 and both earlier attempts recorded in order.
    #[test]
    fn a_function_lost_then_continued_reports_its_whole_history_and_every_attempt() {
        let mut run = FunctionRun::new(2, &policy(3), Instant::now());
        (0..3).for_each(|t| run.saw(&it(t)));
        let Next::Again(d) = run.lost(lost(2, "the process was killed by signal 9".into())) else { panic!() };
        assert!(d <= Duration::from_millis(40), "{d:?}");
        assert!(matches!(run.reported(report(3, 3..6, true)), Next::Again(d) if d.is_zero()));
        let Next::Done(Ok(r)) = run.reported(report(6, 6..8, false)) else { panic!() };
        assert_eq!(r.iterations.iter().map(|i| i.iteration).collect::<Vec<_>>(), (0..8).collect::<Vec<_>>());
        assert_eq!(r.joined_at, 0);
        let a: Vec<_> = r.attempts.iter().map(|a| (a.attempt, a.joined_at, a.iterations, a.outcome)).collect();
        assert_eq!(a, vec![(1, Some(0), 3, AttemptOutcome::Lost), (2, Some(3), 3, AttemptOutcome::Continued)]);
        assert_eq!(r.attempts[0].reason, "the process was killed by signal 9");
        assert_eq!(r.iteration(5).map(|i| i.iteration), Some(5));
    }

    #[test]
    fn lost_attempts_stop_at_max_attempts_with_the_count_in_the_message() {
        let mut run = FunctionRun::new(0, &policy(3), Instant::now());
        assert!(matches!(run.lost(lost(0, "crashed".into())), Next::Again(_)));
        assert!(matches!(run.lost(lost(0, "crashed".into())), Next::Again(_)));
        let Next::Done(Err(f)) = run.lost(lost(0, "crashed".into())) else { panic!() };
        assert_eq!(f.message, "crashed (after 3 attempts)");
        let mut once = FunctionRun::new(0, &policy(1), Instant::now());
        let Next::Done(Err(f)) = once.lost(lost(0, "crashed".into())) else { panic!() };
        assert_eq!(f.message, "crashed");
    }

    #[test]
    fn continuations_do_not_use_up_attempts_but_two_idle_ones_end_the_function() {
        let mut run = FunctionRun::new(1, &policy(1), Instant::now());
        for k in 0..5 {
            assert!(matches!(run.reported(report(k, k..k + 1, true)), Next::Again(_)));
        }
        assert!(matches!(run.reported(report(5, 5..5, true)), Next::Again(_)));
        let Next::Done(Err(f)) = run.reported(report(5, 5..5, true)) else { panic!() };
        assert!(f.message.contains("time limit is shorter than one iteration"), "{}", f.message);
    }
}
