//! Setting up a job (shape, validation, the initial model from a sample) and running it with
//! every function as a thread of this process over the in-process store.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use crate::data::{DataFile, LabelCol, Rows};
use crate::function::{Function, FunctionReport, IterationReport, JobSpec, RowSource};
use crate::kernel::{DataShape, KernelEngine, ModelField, Param, Sample, SamplePlan};
use crate::object::{S3Connector, S3Url};
use crate::remote::ObjectData;
use crate::sync::{InProcess, StateStore};

/// A job's data: rows in memory, a file, or an object in S3.
pub enum Data {
    Memory(Rows),
    File { file: DataFile, label: LabelCol },
    Object { data: ObjectData, label: LabelCol },
}

impl Data {
    /// Opens a data set at `location`: a local path or `s3://bucket/key`.
    pub fn open(location: &str, label: LabelCol, s3: &S3Connector) -> Result<Data> {
        if S3Url::is_s3(location) {
            let url = S3Url::parse(location)?;
            Ok(Data::Object { data: ObjectData::open(&s3.store()?, &url)?, label })
        } else {
            Ok(Data::File { file: DataFile::open(Path::new(location))?, label })
        }
    }

    pub fn source(&self) -> RowSource<'_> {
        match self {
            Data::Memory(r) => RowSource::Memory(r),
            Data::File { file, label } => RowSource::File { file, label: *label },
            Data::Object { data, label } => RowSource::Object { data, label: *label },
        }
    }

    pub fn shape(&self) -> Result<DataShape> {
        Ok(match self {
            Data::Memory(r) => {
                DataShape { cols: r.cols as u32, has_labels: r.has_labels(), total_rows: r.len() as u64 }
            }
            Data::File { file, label } => DataShape {
                cols: file.feature_cols(*label)? as u32,
                has_labels: *label == LabelCol::Last,
                total_rows: file.rows(),
            },
            Data::Object { data, label } => DataShape {
                cols: data.feature_cols(*label)? as u32,
                has_labels: *label == LabelCol::Last,
                total_rows: data.rows(),
            },
        })
    }

    /// The rows a kernel's sample plan asks for.
    pub fn sample(&self, plan: SamplePlan) -> Result<Sample> {
        let total = self.shape()?.total_rows;
        let indices: Vec<u64> = match plan {
            SamplePlan::Head(n) => (0..n.min(total)).collect(),
            SamplePlan::Uniform(u) => ifp_kernel_math::rng::sample_indices(total, u.count.min(total), u.seed),
        };
        let mut s = Sample { features: Vec::new(), labels: Vec::new() };
        let mut push = |rows: &Rows, i: usize| {
            let (f, l) = rows.slice(i..i + 1);
            s.features.extend_from_slice(f);
            s.labels.extend_from_slice(l);
        };
        match self {
            Data::Memory(r) => indices.iter().for_each(|&i| push(r, i as usize)),
            Data::File { file, label } if file.is_csv() => {
                // Chunk by chunk (the sorted indices), reading only chunks that hold sampled
                // rows: one pass at most, and never more than a chunk in memory.
                const CHUNK: u64 = 1 << 15;
                let mut rest = &indices[..];
                while let Some(&first) = rest.first() {
                    let start = first / CHUNK * CHUNK;
                    let n = rest.partition_point(|&i| i < start + CHUNK);
                    let rows = file.read(start..rest[n - 1] + 1, *label)?;
                    rest[..n].iter().for_each(|&i| push(&rows, (i - start) as usize));
                    rest = &rest[n..];
                }
            }
            Data::Object { data, label } => {
                let rows = data.read_rows_at(&indices, *label)?;
                (0..indices.len()).for_each(|i| push(&rows, i));
            }
            Data::File { file, label } => {
                for &i in &indices {
                    push(&file.read(i..i + 1, *label)?, 0);
                }
            }
        }
        Ok(s)
    }
}

/// A whole small table (such as initial centroids) from a local path or `s3://bucket/key`:
/// `(rows, cols, row-major values)`.
pub fn read_table(location: &str, s3: &S3Connector) -> Result<(u64, u64, Vec<f32>)> {
    if S3Url::is_s3(location) {
        let d = ObjectData::open(&s3.store()?, &S3Url::parse(location)?)?;
        Ok((d.rows(), d.cols(), d.read_raw(0..d.rows())?))
    } else {
        let f = DataFile::open(Path::new(location))?;
        Ok((f.rows(), f.cols(), f.read_raw(0..f.rows())?))
    }
}

/// Everything about a job that is not data.
#[derive(Clone, Debug)]
pub struct JobConfig {
    pub job: String,
    pub params: Vec<Param>,
    pub max_iter: u32,
    pub workers: u32,
    /// Inner workers per function.
    pub inner: usize,
    pub sync_timeout: Duration,
    pub want_assignments: bool,
    /// A user-supplied starting model (e.g. initial centroids), or empty.
    pub start: Vec<f64>,
}

/// The initial model: validates the parameters, gathers the sample the kernel asks for and
/// calls its `init`.
pub fn initial_model(engine: &KernelEngine, data: &Data, params: &[Param], start: &[f64]) -> Result<Vec<f64>> {
    let shape = data.shape()?;
    let mut inst = engine.instantiate()?;
    inst.validate(params, shape)?;
    let plan = if start.is_empty() { inst.plan_sample(params, shape)? } else { SamplePlan::Head(0) };
    let sample = data.sample(plan).context("reading the initialisation sample")?;
    Ok(inst.init(params, shape, &sample, start)?)
}

/// The result of a whole job.
#[derive(Clone, Debug)]
pub struct JobOutcome {
    pub shape: DataShape,
    pub model: Vec<f64>,
    pub fields: Vec<ModelField>,
    pub iterations: u32,
    pub converged: bool,
    /// Loss per iteration (of the model entering it).
    pub losses: Vec<f64>,
    pub reports: Vec<FunctionReport>,
    /// Seconds for the initial model (validation, sample, init).
    pub init_s: f64,
    pub total_s: f64,
}

/// Runs a job with `cfg.workers` functions as threads of this process, each with its own
/// shard and `cfg.inner` inner workers, synchronising through the in-process store.
/// `on_iteration` is called once per iteration (from worker 0).
pub fn run_in_process(
    engine: &KernelEngine,
    cfg: &JobConfig,
    data: &Data,
    on_iteration: &(dyn Fn(&IterationReport) + Sync),
) -> Result<JobOutcome> {
    let started = Instant::now();
    let shape = data.shape()?;
    let model0 = initial_model(engine, data, &cfg.params, &cfg.start)?;
    let init_s = started.elapsed().as_secs_f64();
    let spec = Arc::new(JobSpec {
        job: cfg.job.clone(),
        params: cfg.params.clone(),
        shape,
        max_iter: cfg.max_iter,
        workers: cfg.workers,
    });
    let store = InProcess::new(&cfg.job, cfg.workers as usize, cfg.sync_timeout);
    let source = data.source();
    let describe_model = Mutex::new(None);
    let results: Vec<Result<FunctionReport>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..cfg.workers)
            .map(|w| {
                let (spec, mut store, model0, source, describe_model) =
                    (spec.clone(), store.clone(), model0.clone(), &source, &describe_model);
                s.spawn(move || -> Result<FunctionReport> {
                    let mut f = match Function::load_share(engine, spec.clone(), w, cfg.inner, source) {
                        Ok(f) => f,
                        Err(e) => {
                            store.abort(w, &format!("{e:#}"));
                            return Err(e.context(format!("worker {w}")));
                        }
                    };
                    let mut cb = |it: &IterationReport| {
                        if w == 0 {
                            on_iteration(it)
                        }
                    };
                    let r = f
                        .run(&mut store, model0, cfg.want_assignments, &mut cb)
                        .with_context(|| format!("worker {w}"))?;
                    if w == 0 {
                        let fields = f.instance().describe(&spec.params, spec.shape, &r.model)?;
                        *describe_model.lock().unwrap() = Some(fields);
                    }
                    Ok(r)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("worker thread panicked")).collect()
    });
    // Report the root cause: a worker's own failure rather than the others' "aborted".
    let (reports, mut errors): (Vec<_>, Vec<_>) = results.into_iter().partition(|r| r.is_ok());
    if !errors.is_empty() {
        let is_abort = |e: &anyhow::Error| {
            e.chain().any(|c| matches!(c.downcast_ref(), Some(crate::sync::SyncError::Aborted { .. })))
        };
        let pos = errors.iter().position(|e| !is_abort(e.as_ref().unwrap_err())).unwrap_or(0);
        return Err(errors.swap_remove(pos).unwrap_err());
    }
    let reports: Vec<FunctionReport> = reports.into_iter().map(Result::unwrap).collect();
    let fields = describe_model.into_inner().unwrap().unwrap_or_default();
    Ok(JobOutcome::from_reports(shape, fields, reports, init_s, started.elapsed().as_secs_f64()))
}

impl JobOutcome {
    /// The outcome of a job from its functions' reports: worker 0's model, and the iterations
    /// as the function with the longest history saw them (a function that was retried and
    /// rejoined mid-job reports only the iterations since it rejoined).
    pub fn from_reports(
        shape: DataShape,
        fields: Vec<ModelField>,
        reports: Vec<FunctionReport>,
        init_s: f64,
        total_s: f64,
    ) -> Self {
        let full = reports.iter().max_by_key(|r| r.iterations.len()).expect("a job has at least one function");
        JobOutcome {
            shape,
            model: reports[0].model.clone(),
            fields,
            iterations: full.iterations.last().map_or(0, |i| i.iteration + 1),
            converged: full.converged,
            losses: full.iterations.iter().map(|i| i.loss).collect(),
            reports,
            init_s,
            total_s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{DataFile, LabelCol};
    use crate::kernel::UniformSample;

    /// The CSV sample is read chunk by chunk from the row index; it must hold exactly the rows
    /// the `.npy` of the same data gives, in the same order, across several chunks.
    #[test]
    fn csv_and_npy_samples_of_the_same_data_are_the_same_rows() {
        use npyz::WriterBuilder as _;
        let dir = tempfile::tempdir().unwrap();
        let n = 70_000u64;
        let values: Vec<f32> = (0..n).flat_map(|i| [i as f32 + 0.25, (i % 97) as f32]).collect();
        let text: String = values.chunks(2).map(|r| format!("{},{}\n", r[0], r[1])).collect();
        std::fs::write(dir.path().join("d.csv"), text).unwrap();
        let mut w = npyz::WriteOptions::<f32>::new()
            .default_dtype()
            .shape(&[n, 2])
            .writer(std::fs::File::create(dir.path().join("d.npy")).unwrap())
            .begin_nd()
            .unwrap();
        w.extend(values.iter().copied()).unwrap();
        w.finish().unwrap();
        let open =
            |name: &str| Data::File { file: DataFile::open(&dir.path().join(name)).unwrap(), label: LabelCol::None };
        let (csv, npy) = (open("d.csv"), open("d.npy"));
        for plan in [
            SamplePlan::Uniform(UniformSample { count: 5000, seed: 3 }),
            SamplePlan::Uniform(UniformSample { count: 3, seed: 1 }),
            SamplePlan::Head(5),
        ] {
            let (a, b) = (csv.sample(plan).unwrap(), npy.sample(plan).unwrap());
            assert!(!a.features.is_empty());
            assert_eq!(a.features, b.features, "{plan:?}");
        }
        // The sampled rows are the planned ones (row i holds i + 0.25 first).
        let plan = SamplePlan::Uniform(UniformSample { count: 5000, seed: 3 });
        let want = ifp_kernel_math::rng::sample_indices(n, 5000, 3);
        let got: Vec<u64> = csv.sample(plan).unwrap().features.chunks(2).map(|r| (r[0] - 0.25) as u64).collect();
        assert_eq!(got, want);
    }
}
