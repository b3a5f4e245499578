//! The first synchronisation: where the global quantities that come from the data meet,
//! so that no function (and not the driver) reads more than its own share.
//!
//! Every function loads its share, counting its rows and offering each to a
//! [`SampleCollector`]; then it arrives at the [`CENSUS`] round with
//! `[rows, collector...]`. The function that completes the set adds the row counts (in
//! function order), checks the parameters against the real shape, merges the collectors in
//! function order, asks the kernel for its sample plan again (now that the row count is
//! known), runs `init` on the merged sample (or takes the task's model) and releases
//! `[total rows, rows of function 0, …, rows of function F-1, first model...]`. The others
//! receive that release; each finds its first global row there (per-row outputs are written
//! at that offset). So the first model is
//! the same whatever the split, and equals the single-function run's.

use crate::data::sample::SampleCollector;
use crate::function::failure;
use crate::kernel::{DataShape, KernelInstance, Param, SamplePlan};
use crate::sync::{Arrival, Release, StateStore, CENSUS};
use crate::task::{FailureKind, FunctionFailure};

/// What the census gives every function.
#[derive(Clone, Debug, PartialEq)]
pub struct Census {
    pub total_rows: u64,
    /// Rows of each function, in function order.
    pub rows: Vec<u64>,
    pub model: Vec<f64>,
}

impl Census {
    /// The global row number of function `f`'s first row.
    pub fn row_offset(&self, f: u32) -> u64 {
        self.rows[..f as usize].iter().sum()
    }
}

/// The row count a shape carries before the census when the data's header does not give
/// it (a CSV): large enough that no parameter check fails on it, never used to split.
pub const ROWS_UNKNOWN: u64 = u64::MAX >> 12;

/// What one function brings to the census.
pub struct Offer<'a> {
    pub function: u32,
    pub functions: u32,
    /// Rows this function loaded.
    pub rows: u64,
    /// Its sample candidates (`None`: the task gives the first model).
    pub sample: Option<SampleCollector>,
    /// The first model as the task gives it (`None`: `init` on the sample).
    pub model: Option<&'a [f64]>,
    /// The shape as far as the header tells (its `total_rows` may be [`ROWS_UNKNOWN`]).
    pub shape: DataShape,
    pub params: &'a [Param],
}

/// Takes part in the census; returns the row count and the first model.
pub fn meet(
    store: &mut dyn StateStore,
    inst: &mut KernelInstance,
    mut offer: Offer<'_>,
) -> Result<Census, FunctionFailure> {
    let f = offer.function;
    let at = |e| failure(f, None, e);
    let mut payload = vec![offer.rows as f64];
    if let Some(s) = &mut offer.sample {
        s.census_quota(offer.functions);
        s.encode(&mut payload);
    }
    let release = match store.arrive(CENSUS, f, &payload).map_err(at)? {
        Arrival::Reduce(parts) => {
            let census = reduce(inst, &offer, &parts)?;
            let mut model = Vec::with_capacity(census.model.len() + census.rows.len() + 1);
            model.push(census.total_rows as f64);
            model.extend(census.rows.iter().map(|&r| r as f64));
            model.extend_from_slice(&census.model);
            let r = Release { model, loss: f64::NAN, converged: false, stop: false };
            store.release(CENSUS, &r).map_err(at)?;
            r
        }
        Arrival::Wait => store.await_release(CENSUS, f).map_err(at)?,
        Arrival::Released(r) => r,
    };
    let n = offer.functions as usize;
    match release.model.split_first() {
        Some((&total, rest)) if rest.len() >= n => Ok(Census {
            total_rows: total as u64,
            rows: rest[..n].iter().map(|&r| r as u64).collect(),
            model: rest[n..].to_vec(),
        }),
        _ => Err(FunctionFailure::new(
            FailureKind::StoreUnreachable,
            Some(f),
            None,
            "the census release holds no row counts",
        )),
    }
}

/// The reducer's part: totals, checks, sample and first model.
fn reduce(inst: &mut KernelInstance, offer: &Offer<'_>, parts: &[Vec<f64>]) -> Result<Census, FunctionFailure> {
    let f = offer.function;
    let bad = |kind, m: String| FunctionFailure::new(kind, Some(f), None, m);
    let mut total = 0u64;
    let mut counts = Vec::with_capacity(parts.len());
    let mut merged: Option<SampleCollector> = None;
    let (cols, labels) = (offer.shape.cols as usize, offer.shape.has_labels);
    for (w, p) in parts.iter().enumerate() {
        let corrupt = || bad(FailureKind::StoreUnreachable, format!("function {w}'s census entry is malformed"));
        let (&rows, rest) = p.split_first().ok_or_else(corrupt)?;
        total += rows as u64;
        counts.push(rows as u64);
        if let Some(plan) = offer.sample.as_ref().map(SampleCollector::plan) {
            let (c, _) = SampleCollector::decode(plan, cols, labels, rest).ok_or_else(corrupt)?;
            match &mut merged {
                Some(m) => m.merge(c),
                None => merged = Some(c),
            }
        }
    }
    if total < offer.functions as u64 {
        return Err(bad(
            FailureKind::BadInput,
            format!(
                "{} functions for {total} data rows: a function would get an empty share (use at most {total} functions)",
                offer.functions
            ),
        ));
    }
    let shape = DataShape { total_rows: total, ..offer.shape };
    inst.validate(offer.params, shape).map_err(|e| failure(f, None, e))?;
    let model = match (offer.model, merged) {
        (Some(m), _) => m.to_vec(),
        (None, Some(sample)) => {
            let plan: SamplePlan = inst.plan_sample(offer.params, shape).map_err(|e| failure(f, None, e))?;
            let sample = sample.finish(plan).map_err(|m| bad(FailureKind::Kernel, m))?;
            inst.init(offer.params, shape, &sample, &[]).map_err(|e| failure(f, None, e))?
        }
        (None, None) => return Err(bad(FailureKind::Host, "no first model and no sample".into())),
    };
    Ok(Census { total_rows: total, rows: counts, model })
}
