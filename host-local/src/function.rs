//! One function's work: a share of the rows spread over inner workers, one kernel instance
//! per inner worker, their partials merged natively in inner-worker order, and the
//! per-iteration loop against a [`StateStore`]. This is where one function's iteration
//! happens ([`Function::run_from`]).
//!
//! The inner workers run on a rayon pool of their own with one thread per inner worker, so
//! a step is one `par_iter_mut` over the instances; each instance keeps its own wasmtime
//! `Store`. Every failure is a [`FunctionFailure`] naming the function, the iteration and
//! the kind ([`FailureKind`]), so that hosts and drivers need no error downcasts.

mod sparse;

use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;

use crate::data::sample::SampleCollector;
use crate::data::{share, Data, DataError};
use crate::kernel::rows::{rows_of, rows_of_the_data};
use crate::kernel::{
    ClassCount, DataShape, GetError, KernelEngine, KernelError, KernelInstance, LoadError, ModelSizes, Param,
    SamplePlan, ShardHandle,
};
use crate::sync::redis::RedisSetupError;
use crate::sync::{Arrival, Release, StateStore, SyncError};
use crate::task::{FailureKind, FunctionFailure, FunctionReport, IterationReport};

use crate::merge::add_counts;
pub use crate::merge::{add_into, sum_in_order, PartialsMismatch};

mod report;
mod stale;

/// What a function keeps between leaving and its time limit (to report and return).
pub const DEADLINE_MARGIN: std::time::Duration = std::time::Duration::from_millis(300);
/// The next iteration is assumed to take up to this many times the longest one so far.
const LONGEST_FACTOR: f64 = 1.5;

/// Rows handed to a kernel per `append` call while loading.
pub const APPEND_CHUNK_ROWS: u64 = 1 << 15;

/// What every function of a job agrees on.
#[derive(Clone, Debug)]
pub struct JobSpec {
    pub job: String,
    pub params: Vec<Param>,
    pub shape: DataShape,
    pub max_iter: u32,
    pub functions: u32,
    /// Stale-synchronous rounds ([`crate::sync::stale`]): 0 is synchronous.
    pub staleness: u32,
}

/// Where a function enters a job: iteration `iteration` with `model`; `previous` is the
/// model of iteration `iteration - 1`, replayed first by a function that rejoins mid-job.
#[derive(Clone, Debug)]
pub struct Resume {
    pub iteration: u32,
    pub model: Vec<f64>,
    pub previous: Option<Vec<f64>>,
}

/// The failure kind of each error the engine's parts return.
pub trait Classify: std::fmt::Display {
    fn kind(&self) -> FailureKind;
}

impl Classify for KernelError {
    /// A kernel refusing its parameters is bad input; anything else it does is its own fault.
    fn kind(&self) -> FailureKind {
        match self.function {
            "validate" => FailureKind::BadInput,
            _ => FailureKind::Kernel,
        }
    }
}

impl Classify for RedisSetupError {
    fn kind(&self) -> FailureKind {
        match self {
            RedisSetupError::Url { .. }
            | RedisSetupError::JobId(_)
            | RedisSetupError::JobExists { .. }
            | RedisSetupError::OtherPlan { .. }
            | RedisSetupError::NothingToResume { .. } => FailureKind::BadInput,
            RedisSetupError::Connect { .. } | RedisSetupError::Command { .. } => FailureKind::StoreUnreachable,
        }
    }
}

impl Classify for LoadError {
    fn kind(&self) -> FailureKind {
        match self {
            LoadError::UnknownBuiltin { .. } => FailureKind::BadInput,
            _ => FailureKind::Kernel,
        }
    }
}

impl Classify for DataError {
    fn kind(&self) -> FailureKind {
        FailureKind::DataSource
    }
}

impl Classify for GetError {
    fn kind(&self) -> FailureKind {
        match self {
            GetError::Unknown { .. } => FailureKind::BadInput,
            GetError::Load(_) => FailureKind::Kernel,
        }
    }
}

impl Classify for SyncError {
    fn kind(&self) -> FailureKind {
        match self {
            SyncError::Timeout { .. } => FailureKind::SyncTimeout,
            SyncError::Aborted { .. } => FailureKind::Aborted,
            SyncError::Store { .. } => FailureKind::StoreUnreachable,
            SyncError::Mismatch { .. } => FailureKind::BadInput,
            SyncError::Partials { .. } => FailureKind::Kernel,
        }
    }
}

/// `e` as function `function`'s failure (during `iteration`, if in the loop).
pub fn failure(function: u32, iteration: Option<u32>, e: impl Classify) -> FunctionFailure {
    FunctionFailure::new(e.kind(), Some(function), iteration, e.to_string())
}

struct Inner {
    inst: KernelInstance,
    shard: ShardHandle,
    /// The global rows of the shard; for rows found by byte range (a CSV), known only once
    /// the census gave the function's first row ([`Function::place_rows`]).
    rows: Option<Range<u64>>,
    /// Rows in the shard.
    count: u64,
}

/// One function: its inner workers with their shards resident.
pub struct Function {
    spec: Arc<JobSpec>,
    function: u32,
    inners: Vec<Inner>,
    pool: rayon::ThreadPool,
    rows: u64,
    load_s: f64,
    bytes_fetched: u64,
    share_bytes: u64,
    /// The init-sample candidates among this function's rows, until the census takes them.
    sample: Option<SampleCollector>,
}

/// A pool with one thread per inner worker.
fn pool(function: u32, threads: usize) -> Result<rayon::ThreadPool, FunctionFailure> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(move |i| format!("ifp-f{function}-inner{i}"))
        .build()
        .map_err(|e| {
            FunctionFailure::new(FailureKind::Host, Some(function), None, format!("cannot start inner workers: {e}"))
        })
}

impl Function {
    /// Instantiates `inner` kernel instances and loads rows `range` of `data` into them,
    /// split contiguously. Each inner worker reads and appends its own slice in chunks,
    /// offering each row to a collector of `sample` candidates if one is planned.
    pub fn load(
        engine: &KernelEngine,
        spec: Arc<JobSpec>,
        function: u32,
        inner: u32,
        data: &Data,
        range: Range<u64>,
        sample: Option<SamplePlan>,
    ) -> Result<Self, FunctionFailure> {
        let started = Instant::now();
        let n = range.end - range.start;
        let inner = (inner as u64).clamp(1, n.max(1));
        // A CSV object read by rows is parsed once; other sources are read slice by slice,
        // chunk by chunk, by each inner worker straight into its shard.
        let preloaded = if data.sequential() {
            Some(Data::Memory(Arc::new(data.read(range.clone()).map_err(|e| failure(function, None, e))?)))
        } else {
            None
        };
        let (src, base) = match &preloaded {
            Some(m) => (m, 0),
            None => (data, range.start),
        };
        let shape = spec.shape;
        let pool = pool(function, inner as usize)?;
        let collector = || sample.map(|p| SampleCollector::new(p, shape.cols as usize, shape.has_labels));
        let loaded: Vec<(Inner, Option<SampleCollector>)> = pool.install(|| {
            (0..inner)
                .into_par_iter()
                .map(|i| -> Result<(Inner, Option<SampleCollector>), FunctionFailure> {
                    let part = share(n, inner, i);
                    let mut inst = engine.instantiate().map_err(|e| failure(function, None, e))?;
                    let shard = inst
                        .new_shard(&spec.params, shape, part.end - part.start)
                        .map_err(|e| failure(function, None, e))?;
                    let mut candidates = collector();
                    let mut at = part.start;
                    while at < part.end {
                        let end = (at + APPEND_CHUNK_ROWS).min(part.end);
                        let rows = src.read(base + at..base + end).map_err(|e| failure(function, None, e))?;
                        if let Some(c) = &mut candidates {
                            c.offer(&rows);
                        }
                        inst.append(shard, &rows.features, &rows.labels).map_err(|e| {
                            FunctionFailure::new(
                                FailureKind::Kernel,
                                Some(function),
                                None,
                                format!(
                                    "loading data rows {} to {}: {}",
                                    range.start + at + 1,
                                    range.start + end,
                                    rows_of_the_data(&e.to_string(), range.start + at)
                                ),
                            )
                        })?;
                        at = end;
                    }
                    let rows = Some(range.start + part.start..range.start + part.end);
                    Ok((Inner { inst, shard, rows, count: part.end - part.start }, candidates))
                })
                .collect::<Result<Vec<_>, _>>()
        })?;
        let (inners, samples): (Vec<Inner>, Vec<Option<SampleCollector>>) = loaded.into_iter().unzip();
        Ok(Self {
            spec,
            function,
            inners,
            pool,
            rows: n,
            load_s: started.elapsed().as_secs_f64(),
            bytes_fetched: 0,
            share_bytes: 0,
            sample: merge_in_order(samples),
        })
    }

    /// Loads this function's share (function `function` of `spec.functions`) of `data` into
    /// `inner` inner workers. Row-addressable data gives [`share`] of the rows, as
    /// [`Function::load`] does. An S3 object or a local CSV file is streamed by every inner
    /// worker straight into its shard, a chunk at a time, from its own part: rows of a `.npy`,
    /// or bytes of a CSV realigned to line ends (see [`crate::data::s3`] and
    /// [`crate::data::lines`]), so no row count per function is needed.
    pub fn load_share(
        engine: &KernelEngine,
        spec: Arc<JobSpec>,
        function: u32,
        inner: u32,
        data: &Data,
        sample: Option<SamplePlan>,
    ) -> Result<Self, FunctionFailure> {
        if let Data::Libsvm(file) = data {
            return Self::load_libsvm(engine, spec, function, inner, file, sample);
        }
        let Some((object, label)) = data.parted() else {
            let range = share(spec.shape.total_rows, spec.functions as u64, function as u64);
            return Self::load(engine, spec, function, inner, data, range, sample);
        };
        let started = Instant::now();
        let functions = spec.functions as u64;
        // Never more inner workers than rows (a CSV's rows per part are not known: by bytes).
        let whole = object.part(function as u64, functions, 0, 1);
        let units = match &whole {
            crate::data::s3::Part::Rows(r) => r.end - r.start,
            crate::data::s3::Part::Bytes(b) => b.end - b.start,
        };
        let inner = (inner as u64).clamp(1, units.max(1));
        let shape = spec.shape;
        let pool = pool(function, inner as usize)?;
        let collector = || sample.map(|p| SampleCollector::new(p, shape.cols as usize, shape.has_labels));
        type Loaded = (Inner, u64, u64, Option<SampleCollector>);
        let loaded: Vec<Loaded> = pool.install(|| {
            (0..inner)
                .into_par_iter()
                .map(|i| -> Result<Loaded, FunctionFailure> {
                    let part = object.part(function as u64, functions, i, inner);
                    let mut inst = engine.instantiate().map_err(|e| failure(function, None, e))?;
                    let mut candidates = collector();
                    let mut reader = object.open_part(&part).map_err(|e| failure(function, None, e))?;
                    let mut rows = 0u64;
                    // The shard is made once the first chunk is in, when the part's row
                    // count is known (npy) or can be estimated from the bytes read (CSV).
                    let mut shard = None;
                    while let Some(chunk) =
                        reader.next_rows(APPEND_CHUNK_ROWS, label).map_err(|e| failure(function, None, e))?
                    {
                        let shard = match shard {
                            Some(s) => s,
                            None => *shard.insert(
                                inst.new_shard(&spec.params, shape, reader.rows_hint(chunk.len() as u64))
                                    .map_err(|e| failure(function, None, e))?,
                            ),
                        };
                        if let Some(c) = &mut candidates {
                            c.offer(&chunk);
                        }
                        inst.append(shard, &chunk.features, &chunk.labels).map_err(|e| {
                            // The rows by number where the reader can tell (found on error only).
                            let what = match reader.last_chunk_row() {
                                Some(r0) => format!(
                                    "loading data rows {} to {}: {}",
                                    r0 + 1,
                                    r0 + chunk.len() as u64,
                                    rows_of_the_data(&e.to_string(), r0)
                                ),
                                None => format!(
                                    "loading {} part {part:?}: {}",
                                    object.name().display(),
                                    match &part {
                                        crate::data::s3::Part::Rows(r) => {
                                            rows_of_the_data(&e.to_string(), r.start + rows)
                                        }
                                        crate::data::s3::Part::Bytes(b) => rows_of(
                                            &e.to_string(),
                                            rows,
                                            &format!("of the part's rows (from byte {})", b.start)
                                        ),
                                    }
                                ),
                            };
                            FunctionFailure::new(FailureKind::Kernel, Some(function), None, what)
                        })?;
                        rows += chunk.len() as u64;
                    }
                    tracing::debug!(
                        function,
                        inner = i,
                        rows,
                        fetched = reader.fetched(),
                        part_bytes = object.part_bytes(&part),
                        "loaded part"
                    );
                    let shard = match shard {
                        Some(s) => s,
                        None => inst.new_shard(&spec.params, shape, 0).map_err(|e| failure(function, None, e))?,
                    };
                    let global = match &part {
                        crate::data::s3::Part::Rows(r) => Some(r.clone()),
                        crate::data::s3::Part::Bytes(_) => None,
                    };
                    Ok((Inner { inst, shard, rows: global, count: rows }, rows, reader.fetched(), candidates))
                })
                .collect::<Result<Vec<_>, _>>()
        })?;
        let mut inners = Vec::with_capacity(loaded.len());
        let mut samples = Vec::with_capacity(loaded.len());
        let (mut rows, mut fetched) = (0, 0);
        for (i, n, f, c) in loaded {
            inners.push(i);
            rows += n;
            fetched += f;
            samples.push(c);
        }
        let share_bytes = object.part_bytes(&whole);
        tracing::info!(
            function,
            rows,
            bytes_fetched = fetched,
            share_bytes,
            "loaded the function's share from {}",
            object.name().display()
        );
        Ok(Self {
            spec,
            function,
            inners,
            pool,
            rows,
            load_s: started.elapsed().as_secs_f64(),
            bytes_fetched: fetched,
            share_bytes,
            sample: merge_in_order(samples),
        })
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The job's data shape (its row count once the census set it).
    pub fn shape(&self) -> DataShape {
        self.spec.shape
    }

    /// The init-sample candidates collected while loading (once: the census takes them).
    pub fn take_sample(&mut self) -> Option<SampleCollector> {
        self.sample.take()
    }

    /// The job's row count, once the census found it.
    pub fn set_total_rows(&mut self, total_rows: u64) {
        Arc::make_mut(&mut self.spec).shape.total_rows = total_rows;
    }

    /// Gives shards read by byte range (a CSV) their global row numbers, once the census
    /// found this function's first row: the file's order is function by function, then inner
    /// worker by inner worker, as the byte ranges are. Mini-batches need them.
    pub fn place_rows(&mut self, first_row: u64) {
        let mut at = first_row;
        for i in &mut self.inners {
            i.rows.get_or_insert(at..at + i.count);
            at += i.count;
        }
    }

    pub fn inner(&self) -> u32 {
        self.inners.len() as u32
    }

    /// Runs `step` on every inner worker in parallel and sums the partials in inner-worker
    /// order (the same order whatever finished first).
    pub fn step(&mut self, model: &[f64]) -> Result<Vec<f64>, KernelStepError> {
        let partials: Vec<Result<Vec<f64>, KernelError>> = if self.inners.len() == 1 {
            let i = &mut self.inners[0];
            vec![i.inst.step(i.shard, model)]
        } else {
            let inners = &mut self.inners;
            self.pool.install(|| inners.par_iter_mut().map(|i| i.inst.step(i.shard, model)).collect())
        };
        let mut it = partials.into_iter();
        let mut total = it.next().expect("at least one inner worker")?;
        for p in it {
            add_into(&mut total, &p?)?;
        }
        Ok(total)
    }

    /// Steps the rows of `batch` (global row numbers, ascending) on every inner worker (each
    /// steps those it holds, possibly none) and sums the partials in inner-worker order.
    pub fn step_batch(&mut self, model: &[f64], batch: &[u64]) -> Result<Vec<f64>, KernelStepError> {
        let step = |i: &mut Inner| -> Result<Vec<f64>, KernelStepError> {
            let held = i.rows.clone().ok_or(KernelStepError::NoRowNumbers)?;
            let (lo, hi) = (batch.partition_point(|&r| r < held.start), batch.partition_point(|&r| r < held.end));
            let local: Vec<u32> = batch[lo..hi].iter().map(|&r| (r - held.start) as u32).collect();
            Ok(i.inst.step_batch(i.shard, model, &local)?)
        };
        let partials: Vec<Result<Vec<f64>, KernelStepError>> = if self.inners.len() == 1 {
            vec![step(&mut self.inners[0])]
        } else {
            let inners = &mut self.inners;
            self.pool.install(|| inners.par_iter_mut().map(step).collect())
        };
        let mut it = partials.into_iter();
        let mut total = it.next().expect("at least one inner worker")?;
        for p in it {
            add_into(&mut total, &p?)?;
        }
        Ok(total)
    }

    /// How `model` classifies this function's rows, one count per class summed over the inner
    /// workers (None: the kernel is not a classifier).
    pub fn score(&mut self, model: &[f64]) -> Result<Option<Vec<ClassCount>>, KernelError> {
        let mut total = Vec::new();
        for i in &mut self.inners {
            add_counts(&mut total, &i.inst.score(i.shard, model)?);
        }
        Ok(Some(total).filter(|t| !t.is_empty()))
    }

    /// Per-row outputs of the last step, in row order.
    pub fn assignments(&mut self) -> Result<Vec<u32>, KernelError> {
        let mut out = Vec::with_capacity(self.rows as usize);
        for i in &mut self.inners {
            out.extend(i.inst.assignments(i.shard)?);
        }
        Ok(out)
    }

    /// A kernel instance of this function, for `init`, `update` and `describe`.
    pub fn instance(&mut self) -> &mut KernelInstance {
        &mut self.inners[0].inst
    }

    /// Iterates from `resume` until the kernel converges or `max_iter` iterations ran,
    /// synchronising through `store`; a function that joins mid-job (`resume.previous`)
    /// replays the previous iteration's model first, because shards may keep per-row state
    /// from their last step (k-means: the last assignment). If anything fails, the other
    /// functions are told through the store. `on_iteration` sees each iteration's report.
    ///
    /// With a `deadline` (a Lambda invocation's), the function leaves at an iteration
    /// boundary once the next iteration might not end [`DEADLINE_MARGIN`] before it: the
    /// report then says `continuation`, and the same task invoked again goes on where the job
    /// is. It leaves before arriving, so it holds no partial anyone else needs.
    pub fn run_from(
        &mut self,
        store: &mut dyn StateStore,
        resume: Resume,
        want_assignments: bool,
        deadline: Option<Instant>,
        on_iteration: &mut dyn FnMut(&IterationReport),
    ) -> Result<FunctionReport, FunctionFailure> {
        let r = (|| {
            if let Some(prev) = &resume.previous {
                self.step(prev).map_err(|e| {
                    FunctionFailure::new(
                        e.kind(),
                        Some(self.function),
                        Some(resume.iteration),
                        format!("replaying the previous iteration's model: {e}"),
                    )
                })?;
            }
            if self.spec.staleness > 0 {
                return self.run_stale(store, resume, want_assignments, on_iteration);
            }
            self.run_iterations(store, resume.iteration, resume.model, want_assignments, deadline, on_iteration)
        })();
        if let Err(e) = &r {
            if e.kind != FailureKind::Aborted {
                store.abort(self.function, &e.message);
            }
        }
        r
    }

    fn run_iterations(
        &mut self,
        store: &mut dyn StateStore,
        first: u32,
        mut model: Vec<f64>,
        want_assignments: bool,
        deadline: Option<Instant>,
        on_iteration: &mut dyn FnMut(&IterationReport),
    ) -> Result<FunctionReport, FunctionFailure> {
        let started = Instant::now();
        // The longest iteration so far: what the next one may take.
        let mut longest = std::time::Duration::ZERO;
        let spec = self.spec.clone();
        let f = self.function;
        let mut report = self.new_report(first);
        let (batches, sizes) = {
            let inst = self.instance();
            let b = inst.plan_batches(&spec.params, spec.shape).map_err(|e| failure(f, Some(first), e))?;
            (b, inst.sizes(&spec.params, spec.shape).map_err(|e| failure(f, Some(first), e))?)
        };
        if let Some(b) = batches.as_ref().filter(|b| b.size == 0 || b.size > spec.shape.total_rows) {
            let msg = format!("the kernel asks for batches of {} rows, not in 1..={}", b.size, spec.shape.total_rows);
            return Err(FunctionFailure::new(FailureKind::BadInput, Some(f), Some(first), msg));
        }
        // The visiting order of the current epoch, made again when the epoch changes.
        let mut order: Option<(u64, Vec<u64>)> = None;
        let delay = crate::test_delay::of(f)?;
        for t in first..spec.max_iter {
            if let Some(d) = deadline {
                if Instant::now() + longest.mul_f64(LONGEST_FACTOR) + DEADLINE_MARGIN >= d {
                    tracing::info!(
                        function = f,
                        iteration = t,
                        "leaving before the time limit; the next invocation goes on"
                    );
                    report.continuation = true;
                    break;
                }
            }
            let (trips0, bytes0) = (store.stats().round_trips, store.stats().partial_bytes);
            let c0 = Instant::now();
            std::thread::sleep(delay.unwrap_or_default());
            let partial = match &batches {
                None => self.step(&model),
                Some(plan) => {
                    let n = spec.shape.total_rows;
                    let epoch = t as u64 / ifp_kernel_math::batch::batches_per_epoch(n, plan.size);
                    if order.as_ref().is_none_or(|(e, _)| *e != epoch) {
                        order = Some((epoch, ifp_kernel_math::batch::epoch_order(n, plan.seed, epoch)));
                    }
                    let rows =
                        ifp_kernel_math::batch::batch_rows(&order.as_ref().expect("set above").1, plan.size, t as u64);
                    self.step_batch(&model, &rows)
                }
            };
            let partial = partial.and_then(|p| of_size(p, sizes)).map_err(|e| failure(f, Some(t), e))?;
            let c1 = Instant::now();
            // A group's merger sums its group inside `arrive`: on this function's pool.
            let arrival = self.pool.install(|| store.arrive(t, f, &partial));
            let release = match arrival.map_err(|e| failure(f, Some(t), e))? {
                Arrival::Reduce(parts) => {
                    let total = self.pool.install(|| sum_in_order(&parts)).map_err(|e| failure(f, Some(t), e))?;
                    let u = self
                        .instance()
                        .update(&spec.params, spec.shape, &model, &total)
                        .map_err(|e| failure(f, Some(t), e))?;
                    let stop = u.converged || t + 1 >= spec.max_iter;
                    let r = Release { model: u.model, loss: u.loss, converged: u.converged, stop };
                    store.release(t, &r).map_err(|e| failure(f, Some(t), e))?;
                    r
                }
                Arrival::Wait => store.await_release(t, f).map_err(|e| failure(f, Some(t), e))?,
                Arrival::Released(r) => r,
            };
            let it = IterationReport {
                iteration: t,
                compute_s: (c1 - c0).as_secs_f64(),
                sync_s: c1.elapsed().as_secs_f64(),
                loss: release.loss,
                round_trips: store.stats().round_trips - trips0,
                partial_bytes: store.stats().partial_bytes - bytes0,
                staleness: None,
            };
            longest = longest.max(c0.elapsed());
            on_iteration(&it);
            report.iterations.push(it);
            model = release.model;
            report.converged = release.converged;
            if release.stop {
                break;
            }
        }
        self.finish(report, model, want_assignments, store, started)
    }
}

/// `partial`, if it has the length the kernel's `sizes` give (if it gives them).
fn of_size(partial: Vec<f64>, sizes: Option<ModelSizes>) -> Result<Vec<f64>, KernelStepError> {
    match sizes {
        Some(z) if partial.len() != z.partial as usize => {
            Err(KernelStepError::Size { got: partial.len(), want: z.partial })
        }
        _ => Ok(partial),
    }
}

/// The inner workers' collectors merged in inner-worker (file) order.
fn merge_in_order(samples: Vec<Option<SampleCollector>>) -> Option<SampleCollector> {
    let mut it = samples.into_iter().flatten();
    let mut first = it.next()?;
    it.for_each(|c| first.merge(c));
    Some(first)
}

/// A step's failure: the kernel's, or partials that cannot be summed.
#[derive(Debug, thiserror::Error)]
pub enum KernelStepError {
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error(transparent)]
    Partials(#[from] PartialsMismatch),
    #[error(
        "mini-batches choose rows by their global row numbers, which rows read by byte range have only after \
         the census"
    )]
    NoRowNumbers,
    #[error("the kernel's partial has {got} values but its sizes say {want}")]
    Size { got: usize, want: u32 },
}

impl Classify for KernelStepError {
    fn kind(&self) -> FailureKind {
        match self {
            KernelStepError::NoRowNumbers => FailureKind::BadInput,
            _ => FailureKind::Kernel,
        }
    }
}

impl Classify for PartialsMismatch {
    fn kind(&self) -> FailureKind {
        FailureKind::Kernel
    }
}
