//! `ifp predict --model result.json --data FILE --out FILE`: applies a trained model to data,
//! chunk by chunk (local files by row ranges, S3 objects as one stream), so any size fits in
//! memory: k-means gives each row's nearest centroid, logistic regression its class and the
//! class probabilities. When the data carries labels (one column more than the model's
//! features, or `--label-col last`), it also reports the accuracy, per class and overall.
//! `ifp run --test-data` uses the same model and counts ([`test_accuracy`]).
//!
//! The arithmetic is f64 over the f32 features, as in the kernels' steps. Output rows are
//! `cluster` (k-means) or `class, p_0, ..., p_{C-1}` (logistic regression), as `.csv` or
//! `.npy` (float64), written all-or-nothing.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};
use ifp_host::data::libsvm::{LibsvmFormat, SparseRows};
use ifp_host::data::object::S3Connector;
use ifp_host::data::{CsvFormat, Data, LabelCol, Rows};
use npyz::WriterBuilder as _;
use serde_json::{json, Value};

use crate::output::{write_atomic, TableFormat};
use crate::run::{CsvArgs, LabelColArg, LibsvmArgs};

/// Rows read and predicted at a time.
const CHUNK_ROWS: u64 = 1 << 15;

#[derive(clap::Args, Debug)]
pub struct PredictArgs {
    /// A result file written by `ifp run --out` (k-means or logistic regression).
    #[arg(long)]
    pub model: PathBuf,
    /// Data file or `s3://bucket/key` (.npy or .csv: see --header and --delimiter), with the
    /// model's feature columns and optionally a label in the last column.
    #[arg(long)]
    pub data: String,
    /// Where the predictions go (.csv or .npy).
    #[arg(long)]
    pub out: PathBuf,
    /// Whether the last column is a label (default: when the data has one column more than
    /// the model's features).
    #[arg(long, value_enum)]
    pub label_col: Option<LabelColArg>,
    #[command(flatten)]
    pub csv: CsvArgs,
    /// LIBSVM data (.svm, .libsvm, .svmlight: the label first on every line) is read sparse,
    /// with the model's features as `--features` unless hashing is given.
    #[command(flatten)]
    pub libsvm: LibsvmArgs,
    /// An S3-compatible endpoint for `s3://` data.
    #[arg(long)]
    pub s3_endpoint: Option<String>,
}

/// One row: dense features, or a sparse row's non-zeros `(indices, values)`.
#[derive(Clone, Copy)]
enum Row<'a> {
    Dense(&'a [f32]),
    Sparse(&'a [u32], &'a [f32]),
}

impl Row<'_> {
    /// `w · x` in f64.
    fn dot(self, w: &[f64]) -> f64 {
        match self {
            Row::Dense(x) => w.iter().zip(x).map(|(w, &x)| w * x as f64).sum::<f64>(),
            Row::Sparse(idx, val) => ifp_kernel_math::csr::dot(w, idx, val),
        }
    }
}

/// Rows read at a time: dense rows, or sparse rows (LIBSVM), with their labels if any.
enum Chunk {
    Dense(Rows),
    Sparse(SparseRows),
}

impl Chunk {
    fn len(&self) -> usize {
        match self {
            Chunk::Dense(r) => r.len(),
            Chunk::Sparse(s) => s.len(),
        }
    }
    /// Row `i` and its label, if the rows have labels.
    fn row(&self, i: usize) -> (Row<'_>, Option<f32>) {
        match self {
            Chunk::Dense(r) => {
                let (x, y) = r.slice(i..i + 1);
                (Row::Dense(x), y.first().copied())
            }
            Chunk::Sparse(s) => {
                let (idx, val) = s.row(i);
                (Row::Sparse(idx, val), Some(s.labels[i]))
            }
        }
    }
}

/// A trained model, ready to score rows.
pub enum Model {
    /// Centroids, `k × d` row-major.
    KMeans { d: usize, centroids: Vec<f64> },
    /// `vectors × d` weights and `vectors` intercepts; one vector means binary (sigmoid).
    LogReg { d: usize, weights: Vec<f64>, intercepts: Vec<f64> },
}

fn numbers(v: &Value, what: &str) -> Result<Vec<f64>> {
    fn walk(v: &Value, out: &mut Vec<f64>) -> bool {
        match v {
            Value::Array(a) => a.iter().all(|x| walk(x, out)),
            Value::Number(n) => n.as_f64().map(|f| out.push(f)).is_some(),
            _ => false,
        }
    }
    let mut out = Vec::new();
    if !walk(v, &mut out) {
        bail!("the model's {what} is not an array of numbers");
    }
    Ok(out)
}

impl Model {
    fn read(path: &PathBuf) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("--model {}", path.display()))?;
        let r: Value = serde_json::from_str(&text)
            .with_context(|| format!("--model {} is not a result JSON from `ifp run --out`", path.display()))?;
        Self::of_result(&r)
    }

    /// The model of a result JSON (`ifp run --out`'s, or the one `ifp run` just made).
    pub fn of_result(r: &Value) -> Result<Self> {
        let d = r["config"]["cols"].as_u64().context("--model: the result has no config.cols")? as usize;
        let m = &r["model"];
        match r["algorithm"].as_str() {
            Some("kmeans") => {
                let centroids = numbers(&m["centroids"], "centroids")?;
                if d == 0 || centroids.is_empty() || centroids.len() % d != 0 {
                    bail!("--model: {} centroid values do not form rows of {d} features", centroids.len());
                }
                Ok(Model::KMeans { d, centroids })
            }
            Some("logreg") => {
                let weights = numbers(&m["weights"], "weights")?;
                let intercepts = numbers(&m["intercept"], "intercept")?;
                if intercepts.is_empty() || weights.len() != intercepts.len() * d {
                    bail!("--model: {} weights and {} intercepts for {d} features", weights.len(), intercepts.len());
                }
                Ok(Model::LogReg { d, weights, intercepts })
            }
            other => bail!("--model: cannot predict with algorithm {other:?} (kmeans or logreg)"),
        }
    }

    fn features(&self) -> usize {
        match self {
            Model::KMeans { d, .. } | Model::LogReg { d, .. } => *d,
        }
    }

    /// Values per output row.
    fn out_cols(&self) -> usize {
        match self {
            Model::KMeans { .. } => 1,
            Model::LogReg { intercepts, .. } => 1 + intercepts.len().max(2),
        }
    }

    /// The prediction of one row: its class or cluster, then (logreg) the probabilities.
    /// A k-means model takes dense rows only (`ifp predict` refuses sparse data for it).
    fn predict(&self, x: Row<'_>, out: &mut Vec<f64>) -> usize {
        let dot = |w: &[f64]| x.dot(w);
        match self {
            Model::KMeans { d, centroids } => {
                let Row::Dense(x) = x else { unreachable!("k-means on sparse rows is refused up front") };
                let dist = |c: &[f64]| c.iter().zip(x).map(|(c, &x)| (x as f64 - c).powi(2)).sum::<f64>();
                let best = centroids.chunks_exact(*d).map(dist).enumerate().min_by(|a, b| a.1.total_cmp(&b.1));
                let k = best.map_or(0, |(k, _)| k);
                out.push(k as f64);
                k
            }
            Model::LogReg { d, weights, intercepts } if intercepts.len() == 1 => {
                let z = dot(&weights[..*d]) + intercepts[0];
                let p = 1.0 / (1.0 + (-z).exp());
                let class = usize::from(z >= 0.0);
                out.extend([class as f64, 1.0 - p, p]);
                class
            }
            Model::LogReg { d, weights, intercepts } => {
                let z: Vec<f64> = weights.chunks_exact(*d).zip(intercepts).map(|(w, b)| dot(w) + b).collect();
                let zmax = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = z.iter().map(|v| (v - zmax).exp()).collect();
                let s: f64 = e.iter().sum();
                // The first of equal scores, as numpy's argmax (and the kernel's count).
                let class =
                    z.iter().enumerate().fold((0, f64::NEG_INFINITY), |b, (k, &v)| if v > b.1 { (k, v) } else { b }).0;
                out.push(class as f64);
                out.extend(e.iter().map(|v| v / s));
                class
            }
        }
    }
}

/// Correct predictions and rows, per class (grown as labels appear).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Accuracy {
    correct: Vec<u64>,
    rows: Vec<u64>,
}

/// Classes listed one per line in a summary; beyond, only the overall accuracy is printed
/// (every class is in the result JSON).
const PRINTED_CLASSES: usize = 20;

impl Accuracy {
    /// No rows yet, of `classes` classes.
    pub fn with_classes(classes: usize) -> Self {
        Self { correct: vec![0; classes], rows: vec![0; classes] }
    }

    /// The counts the functions made on their own rows, summed.
    pub fn of_counts(counts: &[ifp_host::kernel::ClassCount]) -> Self {
        Self { correct: counts.iter().map(|c| c.correct).collect(), rows: counts.iter().map(|c| c.rows).collect() }
    }

    /// The counts of [`Accuracy::json`]'s output.
    pub fn of_json(v: &Value) -> Option<Self> {
        let classes = v["classes"].as_array()?;
        let get = |k: &str| classes.iter().map(|c| c[k].as_u64()).collect::<Option<Vec<u64>>>();
        Some(Self { correct: get("correct")?, rows: get("support")? })
    }

    fn add(&mut self, label: f32, predicted: usize) {
        let k = label as usize;
        if self.rows.len() <= k {
            self.rows.resize(k + 1, 0);
            self.correct.resize(k + 1, 0);
        }
        self.rows[k] += 1;
        self.correct[k] += u64::from(predicted == k && label.fract() == 0.0);
    }

    /// Overall: correct predictions and rows.
    fn total(&self) -> (u64, u64) {
        (self.correct.iter().sum(), self.rows.iter().sum())
    }

    /// Overall and per class (`support`: the rows labelled with it; `accuracy`: the share of
    /// them predicted right, its recall; null without rows).
    pub fn json(&self) -> Value {
        let ratio = |c: u64, n: u64| if n == 0 { Value::Null } else { json!(c as f64 / n as f64) };
        let (c, n) = self.total();
        let classes: Vec<Value> = (self.correct.iter().zip(&self.rows).enumerate())
            .map(|(k, (&c, &n))| json!({ "class": k, "support": n, "correct": c, "accuracy": ratio(c, n) }))
            .collect();
        json!({ "rows": n, "correct": c, "accuracy": ratio(c, n), "classes": classes })
    }

    /// `accuracy{on}: ...`, then a line per class that has rows.
    pub fn print(&self, on: &str) {
        let (c, n) = self.total();
        println!("accuracy{on}: {:.4} ({c} of {n} rows)", c as f64 / n.max(1) as f64);
        if self.rows.len() > PRINTED_CLASSES {
            println!("  ({} classes: see the result JSON for each)", self.rows.len());
            return;
        }
        for (k, (c, n)) in self.correct.iter().zip(&self.rows).enumerate().filter(|(_, (_, n))| **n > 0) {
            println!("  class {k}: {:.4} ({c} of {n})", *c as f64 / *n as f64);
        }
    }
}

/// The accuracy of `model` (logistic regression) on the labelled data `path` (the label in
/// the last column), streamed a chunk at a time: `ifp run --test-data`. A label that is not
/// one of the model's classes stops it, naming the row.
pub fn test_accuracy(model: &Model, data: &Data, path: &str) -> Result<Accuracy> {
    let Model::LogReg { intercepts, .. } = model else { bail!("--test-data needs a classifier (logreg)") };
    let classes = intercepts.len().max(2);
    let rows = data.shape()?.total_rows;
    let mut acc = Accuracy::with_classes(classes);
    let (mut at, mut values) = (0u64, Vec::new());
    for_each_chunk(data, rows, LabelCol::Last, |chunk| {
        for i in 0..chunk.len() {
            let (x, y) = chunk.row(i);
            at += 1;
            let y = y.expect("labelled rows");
            if !(y >= 0.0 && y.fract() == 0.0 && (y as usize) < classes) {
                bail!("--test-data {path}: label {y} in row {at} is not a class of the model (0..{})", classes - 1);
            }
            values.clear();
            acc.add(y, model.predict(x, &mut values));
        }
        Ok(())
    })?;
    Ok(acc)
}

/// Opens `--test-data` for a model of `cols` features: the label must be the last column; a
/// CSV is laid out as `csv` says (the training data's `--header`/`--delimiter`), a LIBSVM
/// file as `libsvm` does (the training data's index base and hashing; `cols` features).
pub fn open_test_data(path: &str, cols: u32, csv: CsvFormat, libsvm: LibsvmFormat, s3: &S3Connector) -> Result<Data> {
    let libsvm = with_width(libsvm, cols as u64);
    let data =
        Data::open_with(path, LabelCol::Last, csv, libsvm, s3, None).with_context(|| format!("--test-data {path}"))?;
    if matches!(data, Data::Libsvm(_)) {
        // Its width is the model's: an index beyond it was refused as it was read.
        return Ok(data);
    }
    let shape = data.shape().with_context(|| format!("--test-data {path}"))?;
    if shape.cols != cols {
        bail!(
            "--test-data {path} has {} columns but the training data has {} (its {cols} features and the label)",
            shape.cols + 1,
            cols + 1
        );
    }
    Ok(data)
}

/// Where predictions go: an `.npy` writer (its header sized up front) or CSV lines.
enum Sink<'a> {
    Npy(npyz::NpyWriter<f64, &'a mut dyn Write>),
    Csv(&'a mut dyn Write),
}

/// `format` with `width` features, unless it hashes (then its own width must be the model's).
fn with_width(format: LibsvmFormat, width: u64) -> LibsvmFormat {
    match format.hash_bits {
        Some(_) => format,
        None => LibsvmFormat { features: Some(width), ..format },
    }
}

/// Calls `each` on the data's rows, a chunk at a time, in row order.
fn for_each_chunk(data: &Data, rows: u64, label: LabelCol, mut each: impl FnMut(Chunk) -> Result<()>) -> Result<()> {
    if let Data::Libsvm(file) = data {
        let mut reader = file.open_part(0..file.size())?;
        loop {
            let mut chunk = SparseRows::default();
            if reader.read_into(&mut chunk, CHUNK_ROWS as usize)? == 0 {
                return Ok(());
            }
            each(Chunk::Sparse(chunk))?;
        }
    }
    if let Some((object, _)) = data.parted() {
        // One stream over the whole object or file (a CSV read by row ranges would start
        // from its first byte for every chunk).
        let part = object.part(0, 1, 0, 1);
        let mut reader = object.open_part(&part)?;
        while let Some(chunk) = reader.next_rows(CHUNK_ROWS, label)? {
            each(Chunk::Dense(chunk))?;
        }
        return Ok(());
    }
    let mut at = 0;
    while at < rows {
        let end = (at + CHUNK_ROWS).min(rows);
        each(Chunk::Dense(data.read(at..end)?))?;
        at = end;
    }
    Ok(())
}

pub fn predict_cmd(a: PredictArgs) -> Result<()> {
    let format = TableFormat::of(&a.out).context("--out")?;
    if a.out.is_dir() {
        bail!("--out {} is a directory", a.out.display());
    }
    let model = Model::read(&a.model)?;
    let s3 = S3Connector::new(a.s3_endpoint.clone());
    let d = model.features();
    // The column count decides whether there is a label, unless the flag says (LIBSVM data
    // always has its label first).
    if let Some(f) = a.libsvm.features.filter(|&f| f != d as u64) {
        bail!("--features {f}, but the model has {d} features");
    }
    let libsvm = with_width(a.libsvm.format(), d as u64);
    let unlabelled = Data::open_with(&a.data, LabelCol::None, a.csv.format(), libsvm, &s3, None)?;
    a.csv.check_for(&unlabelled, &a.data)?;
    a.libsvm.check_for(&unlabelled, &a.data)?;
    if matches!(unlabelled, Data::Libsvm(_)) {
        if matches!(model, Model::KMeans { .. }) {
            bail!("--data {}: LIBSVM rows are sparse, and a k-means model predicts dense rows only", a.data);
        }
        if a.label_col.is_some() {
            bail!("--label-col applies to .npy and .csv data; in LIBSVM data ({}) the label is the first field of every line", a.data);
        }
    }
    let sparse = matches!(unlabelled, Data::Libsvm(_));
    let unlabelled = unlabelled.shape()?;
    let label = match a.label_col {
        Some(LabelColArg::Last) => LabelCol::Last,
        Some(LabelColArg::None) => LabelCol::None,
        None if unlabelled.cols as usize == d + 1 => LabelCol::Last,
        None => LabelCol::None,
    };
    let data = if sparse {
        Data::open_with(&a.data, label, a.csv.format(), libsvm, &s3, None)?
    } else {
        Data::open(&a.data, label, a.csv.format(), &s3, None)?
    };
    let shape = data.shape()?;
    if shape.cols as usize != d {
        bail!("--data {} has {} feature columns but the model has {d}", a.data, shape.cols);
    }
    // A CSV object's row count is not known before it is read: an .npy header needs it, so
    // then one counting pass comes first.
    let rows = match shape.total_rows {
        ifp_host::census::ROWS_UNKNOWN if format == TableFormat::Npy => {
            let mut n = 0u64;
            for_each_chunk(&data, shape.total_rows, label, |c| {
                n += c.len() as u64;
                Ok(())
            })?;
            Some(n)
        }
        ifp_host::census::ROWS_UNKNOWN => None,
        n => Some(n),
    };
    let cols = model.out_cols();
    let mut accuracy = shape.has_labels.then(Accuracy::default);
    let mut written = 0u64;
    write_atomic(&a.out, |w| {
        let mut sink = match format {
            TableFormat::Npy => Sink::Npy(
                npyz::WriteOptions::new()
                    .default_dtype()
                    .shape(&[rows.unwrap_or_default(), cols as u64])
                    .writer(w)
                    .begin_nd()?,
            ),
            TableFormat::Csv => Sink::Csv(w),
        };
        let mut line = String::new();
        let mut values = Vec::with_capacity(cols);
        for_each_chunk(&data, shape.total_rows, label, |chunk| {
            for i in 0..chunk.len() {
                let (x, y) = chunk.row(i);
                values.clear();
                let class = model.predict(x, &mut values);
                if let (Some(acc), Some(y)) = (accuracy.as_mut(), y) {
                    acc.add(y, class);
                }
                match &mut sink {
                    Sink::Npy(n) => n.extend(values.iter().copied())?,
                    Sink::Csv(w) => {
                        line.clear();
                        line.push_str(&(values[0] as u64).to_string());
                        for v in &values[1..] {
                            line.push(',');
                            line.push_str(&v.to_string());
                        }
                        line.push('\n');
                        w.write_all(line.as_bytes())?;
                    }
                }
                written += 1;
            }
            Ok(())
        })?;
        if let Some(n) = rows.filter(|&n| n != written) {
            bail!("--data {}: read {written} rows, expected {n}", a.data);
        }
        if let Sink::Npy(n) = sink {
            n.finish()?;
        }
        Ok(())
    })?;
    println!("predicted {written} rows into {}", a.out.display());
    if let Some(acc) = &accuracy {
        acc.print("");
    }
    Ok(())
}
