//! One function's work: a share of the rows spread over inner workers, one kernel instance
//! per inner worker (each on its own thread during a step), their partials merged natively
//! in inner-worker order, and the per-iteration loop against a [`StateStore`].

use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, Result};

use crate::data::{share, DataFile, LabelCol, Rows};
use crate::kernel::{DataShape, KernelEngine, KernelInstance, Param, ShardHandle};
use crate::remote::ObjectData;
use crate::sync::{Arrival, Release, StateStore, SyncStats};

/// Rows handed to a kernel per `append` call while loading.
pub const APPEND_CHUNK_ROWS: u64 = 1 << 15;

/// What every function of a job agrees on.
#[derive(Clone, Debug)]
pub struct JobSpec {
    pub job: String,
    pub params: Vec<Param>,
    pub shape: DataShape,
    pub max_iter: u32,
    pub workers: u32,
}

/// Where a function's rows come from.
pub enum RowSource<'a> {
    /// Rows already in memory (the whole data set; the function takes its share).
    Memory(&'a Rows),
    /// A data file read on demand.
    File { file: &'a DataFile, label: LabelCol },
    /// A data object in S3: each inner worker streams its own part (see [`Function::load_share`]).
    Object { data: &'a ObjectData, label: LabelCol },
}

impl RowSource<'_> {
    pub fn read(&self, range: Range<u64>) -> Result<Rows> {
        match self {
            RowSource::Memory(rows) => {
                let (f, l) = rows.slice(range.start as usize..range.end as usize);
                Ok(Rows { cols: rows.cols, features: f.to_vec(), labels: l.to_vec() })
            }
            RowSource::File { file, label } => Ok(file.read(range, *label)?),
            RowSource::Object { data, label } => Ok(data.read(range, *label)?),
        }
    }
    /// Whether reading a range costs a pass from the start of the data: a CSV object read by
    /// row numbers (a local CSV is read from its row index, see [`DataFile`]).
    fn sequential(&self) -> bool {
        match self {
            RowSource::Object { data, .. } => data.is_csv(),
            RowSource::File { .. } | RowSource::Memory(_) => false,
        }
    }
}

/// Timings of one iteration as seen by one function.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IterationReport {
    pub iteration: u32,
    /// Seconds in the parallel step and the native merge.
    pub compute_s: f64,
    /// Seconds from the merged partial to the next model (arrival, reduction, release).
    pub sync_s: f64,
    pub loss: f64,
    /// Requests this function sent to the state store during the iteration.
    #[serde(default)]
    pub round_trips: u64,
}

/// Where a function enters a job: iteration `iteration` with `model`; `previous` is the
/// model of iteration `iteration - 1`, replayed first by a function that rejoins mid-job.
#[derive(Clone, Debug)]
pub struct Resume {
    pub iteration: u32,
    pub model: Vec<f64>,
    pub previous: Option<Vec<f64>>,
}

/// What one function reports at the end of a job.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct FunctionReport {
    pub worker: u32,
    pub inner: usize,
    pub rows: u64,
    pub load_s: f64,
    /// Bytes this function downloaded while loading (S3 data), and the bytes of its share.
    #[serde(default)]
    pub bytes_fetched: u64,
    #[serde(default)]
    pub share_bytes: u64,
    pub total_s: f64,
    pub iterations: Vec<IterationReport>,
    pub converged: bool,
    pub model: Vec<f64>,
    pub sync: SyncStats,
    /// Per-row output of the final model (k-means: the cluster of each row), if requested.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assignments: Option<Vec<u32>>,
}

struct Inner {
    inst: KernelInstance,
    shard: ShardHandle,
}

/// One function: its inner workers with their shards resident.
pub struct Function {
    spec: Arc<JobSpec>,
    worker: u32,
    inners: Vec<Inner>,
    rows: u64,
    load_s: f64,
    bytes_fetched: u64,
    share_bytes: u64,
}

impl Function {
    /// Instantiates `inner` kernel instances and loads rows `range` of `source` into them,
    /// split contiguously. Each inner worker reads and appends its own slice in chunks.
    pub fn load(
        engine: &KernelEngine,
        spec: Arc<JobSpec>,
        worker: u32,
        inner: usize,
        source: &RowSource<'_>,
        range: Range<u64>,
    ) -> Result<Self> {
        let started = Instant::now();
        let n = range.end - range.start;
        let inner = inner.clamp(1, (n as usize).max(1));
        // A CSV object read by rows is parsed once; other sources are read slice by slice,
        // chunk by chunk, by each inner worker straight into its shard.
        let preloaded = if source.sequential() { Some(source.read(range.clone())?) } else { None };
        let mem_source = preloaded.as_ref().map(RowSource::Memory);
        let (src, base) = match &mem_source {
            Some(m) => (m, 0),
            None => (source, range.start),
        };
        let shape = spec.shape;
        let results: Vec<Result<Inner>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..inner as u64)
                .map(|i| {
                    let part = share(n, inner as u64, i);
                    s.spawn(move || -> Result<Inner> {
                        let mut inst = engine.instantiate()?;
                        let shard = inst.new_shard(shape, part.end - part.start)?;
                        let mut at = part.start;
                        while at < part.end {
                            let end = (at + APPEND_CHUNK_ROWS).min(part.end);
                            let rows = src.read(base + at..base + end)?;
                            inst.append(shard, &rows.features, &rows.labels).with_context(|| {
                                format!("loading data rows {} to {}", range.start + at + 1, range.start + end)
                            })?;
                            at = end;
                        }
                        Ok(Inner { inst, shard })
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("loader thread panicked")).collect()
        });
        let inners = results.into_iter().collect::<Result<Vec<_>>>()?;
        Ok(Self {
            spec,
            worker,
            inners,
            rows: n,
            load_s: started.elapsed().as_secs_f64(),
            bytes_fetched: 0,
            share_bytes: 0,
        })
    }

    /// Loads this function's share (worker `worker` of `spec.workers`) of `source` into
    /// `inner` inner workers. Row-addressable sources take [`share`] of the rows, as
    /// [`Function::load`] does. An S3 object is streamed by every inner worker straight into
    /// its shard, a chunk at a time, from its own part: rows of a `.npy`, or bytes of a CSV
    /// realigned to line ends (see [`crate::remote`]), so no row count per function is needed.
    pub fn load_share(
        engine: &KernelEngine,
        spec: Arc<JobSpec>,
        worker: u32,
        inner: usize,
        source: &RowSource<'_>,
    ) -> Result<Self> {
        let RowSource::Object { data, label } = source else {
            let range = share(spec.shape.total_rows, spec.workers as u64, worker as u64);
            return Self::load(engine, spec, worker, inner, source, range);
        };
        let (data, label) = (*data, *label);
        let started = Instant::now();
        let workers = spec.workers as u64;
        // Never more inner workers than rows (a CSV's rows per part are not known: by bytes).
        let whole = data.part(worker as u64, workers, 0, 1);
        let units = match &whole {
            crate::remote::Part::Rows(r) => r.end - r.start,
            crate::remote::Part::Bytes(b) => b.end - b.start,
        };
        let inner = inner.clamp(1, (units as usize).max(1)) as u64;
        let shape = spec.shape;
        let results: Vec<Result<(Inner, u64, u64)>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..inner)
                .map(|i| {
                    s.spawn(move || -> Result<(Inner, u64, u64)> {
                        let part = data.part(worker as u64, workers, i, inner);
                        let mut inst = engine.instantiate()?;
                        let mut reader = data.open_part(&part)?;
                        let mut rows = 0u64;
                        // The shard is made once the first chunk is in, when the part's row
                        // count is known (npy) or can be estimated from the bytes read (CSV).
                        let mut shard = None;
                        while let Some(chunk) = reader.next_rows(APPEND_CHUNK_ROWS, label)? {
                            let shard = match shard {
                                Some(s) => s,
                                None => *shard.insert(inst.new_shard(shape, reader.rows_hint(chunk.len() as u64))?),
                            };
                            inst.append(shard, &chunk.features, &chunk.labels)
                                .with_context(|| format!("loading {} part {part:?}", data.name().display()))?;
                            rows += chunk.len() as u64;
                        }
                        tracing::debug!(
                            worker,
                            inner = i,
                            rows,
                            fetched = reader.fetched(),
                            part_bytes = data.part_bytes(&part),
                            "loaded part"
                        );
                        let shard = match shard {
                            Some(s) => s,
                            None => inst.new_shard(shape, 0)?,
                        };
                        Ok((Inner { inst, shard }, rows, reader.fetched()))
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("loader thread panicked")).collect()
        });
        let mut inners = Vec::with_capacity(results.len());
        let (mut rows, mut fetched) = (0, 0);
        for r in results {
            let (i, n, f) = r?;
            inners.push(i);
            rows += n;
            fetched += f;
        }
        let share_bytes = data.part_bytes(&whole);
        tracing::info!(
            worker,
            rows,
            bytes_fetched = fetched,
            share_bytes,
            "loaded the function's share from {}",
            data.name().display()
        );
        Ok(Self {
            spec,
            worker,
            inners,
            rows,
            load_s: started.elapsed().as_secs_f64(),
            bytes_fetched: fetched,
            share_bytes,
        })
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }
    pub fn inner(&self) -> usize {
        self.inners.len()
    }

    /// Runs `step` on every inner worker in parallel and sums the partials in order.
    pub fn step(&mut self, model: &[f64]) -> Result<Vec<f64>> {
        let partials: Vec<Result<Vec<f64>>> = if self.inners.len() == 1 {
            let i = &mut self.inners[0];
            vec![i.inst.step(i.shard, model).map_err(Into::into)]
        } else {
            std::thread::scope(|s| {
                let hs: Vec<_> = self
                    .inners
                    .iter_mut()
                    .map(|i| s.spawn(move || i.inst.step(i.shard, model).map_err(anyhow::Error::from)))
                    .collect();
                hs.into_iter().map(|h| h.join().expect("step thread panicked")).collect()
            })
        };
        let mut it = partials.into_iter();
        let mut total = it.next().expect("at least one inner worker")?;
        for p in it {
            add_into(&mut total, &p?)?;
        }
        Ok(total)
    }

    /// Per-row outputs of the last step, in row order.
    pub fn assignments(&mut self) -> Result<Vec<u32>> {
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

    /// Iterates from `model` until the kernel converges or `max_iter` iterations ran,
    /// synchronising through `store`. If anything fails, the other workers are told.
    /// `on_iteration` sees each iteration's report (for progress display).
    pub fn run(
        &mut self,
        store: &mut dyn StateStore,
        model: Vec<f64>,
        want_assignments: bool,
        on_iteration: &mut dyn FnMut(&IterationReport),
    ) -> Result<FunctionReport> {
        self.run_from(store, Resume { iteration: 0, model, previous: None }, want_assignments, on_iteration)
    }

    /// Like [`Function::run`], but joins a job at `resume.iteration` (a restarted function).
    /// Shards may keep per-row state from the previous step (k-means: the last assignment),
    /// so the model of the previous iteration is replayed first and its partial discarded.
    pub fn run_from(
        &mut self,
        store: &mut dyn StateStore,
        resume: Resume,
        want_assignments: bool,
        on_iteration: &mut dyn FnMut(&IterationReport),
    ) -> Result<FunctionReport> {
        let r = (|| {
            if let Some(prev) = &resume.previous {
                self.step(prev).context("replaying the previous iteration's model")?;
            }
            self.run_iterations(store, resume.iteration, resume.model, want_assignments, on_iteration)
        })();
        if let Err(e) = &r {
            store.abort(self.worker, &format!("{e:#}"));
        }
        r
    }

    fn run_iterations(
        &mut self,
        store: &mut dyn StateStore,
        first: u32,
        mut model: Vec<f64>,
        want_assignments: bool,
        on_iteration: &mut dyn FnMut(&IterationReport),
    ) -> Result<FunctionReport> {
        let started = Instant::now();
        let spec = self.spec.clone();
        let mut report = FunctionReport {
            worker: self.worker,
            inner: self.inners.len(),
            rows: self.rows,
            load_s: self.load_s,
            bytes_fetched: self.bytes_fetched,
            share_bytes: self.share_bytes,
            ..Default::default()
        };
        for t in first..spec.max_iter {
            let trips0 = store.stats().round_trips;
            let c0 = Instant::now();
            let partial = self.step(&model)?;
            let c1 = Instant::now();
            let release = match store.arrive(t, self.worker, &partial)? {
                Arrival::Reduce(parts) => {
                    let mut total = parts[0].clone();
                    for p in &parts[1..] {
                        add_into(&mut total, p)?;
                    }
                    let u = self.instance().update(&spec.params, spec.shape, &model, &total)?;
                    let stop = u.converged || t + 1 >= spec.max_iter;
                    let r = Release { model: u.model, loss: u.loss, converged: u.converged, stop };
                    store.release(t, &r)?;
                    r
                }
                Arrival::Wait => store.await_release(t, self.worker)?,
                Arrival::Released(r) => r,
            };
            let it = IterationReport {
                iteration: t,
                compute_s: (c1 - c0).as_secs_f64(),
                sync_s: c1.elapsed().as_secs_f64(),
                loss: release.loss,
                round_trips: store.stats().round_trips - trips0,
            };
            on_iteration(&it);
            report.iterations.push(it);
            model = release.model;
            report.converged = release.converged;
            if release.stop {
                break;
            }
        }
        if want_assignments {
            // Assign every row under the final model (the last step used the previous one).
            self.step(&model)?;
            report.assignments = Some(self.assignments()?);
        }
        report.model = model;
        report.sync = store.stats();
        report.total_s = started.elapsed().as_secs_f64() + self.load_s;
        Ok(report)
    }
}

/// `total += p`, element-wise; partials of one job must have equal lengths.
pub fn add_into(total: &mut [f64], p: &[f64]) -> Result<()> {
    anyhow::ensure!(total.len() == p.len(), "partials of different lengths ({} and {})", total.len(), p.len());
    total.iter_mut().zip(p).for_each(|(a, b)| *a += b);
    Ok(())
}
