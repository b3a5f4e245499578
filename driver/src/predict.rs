//! `ifp predict --model result.json --data FILE --out FILE`: applies a trained model to data,
//! chunk by chunk (local files by row ranges, S3 objects as one stream), so any size fits in
//! memory: k-means gives each row's nearest centroid, logistic regression its class and the
//! class probabilities. When the data carries labels (one column more than the model's
//! features, or `--label-col last`), it also reports the accuracy, per class and overall.
//!
//! The arithmetic is f64 over the f32 features, as in the kernels' steps. Output rows are
//! `cluster` (k-means) or `class, p_0, ..., p_{C-1}` (logistic regression), as `.csv` or
//! `.npy` (float64), written all-or-nothing.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};
use ifp_host::data::object::S3Connector;
use ifp_host::data::{Data, LabelCol, Rows};
use npyz::WriterBuilder as _;
use serde_json::Value;

use crate::output::{write_atomic, TableFormat};
use crate::run::{CsvArgs, LabelColArg};

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
    /// An S3-compatible endpoint for `s3://` data.
    #[arg(long)]
    pub s3_endpoint: Option<String>,
}

/// A trained model, ready to score rows.
enum Model {
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
    fn predict(&self, x: &[f32], out: &mut Vec<f64>) -> usize {
        let dot = |w: &[f64]| w.iter().zip(x).map(|(w, &x)| w * x as f64).sum::<f64>();
        match self {
            Model::KMeans { d, centroids } => {
                let dist = |c: &[f64]| c.iter().zip(x).map(|(c, &x)| (x as f64 - c).powi(2)).sum::<f64>();
                let best = centroids.chunks_exact(*d).map(dist).enumerate().min_by(|a, b| a.1.total_cmp(&b.1));
                let k = best.map_or(0, |(k, _)| k);
                out.push(k as f64);
                k
            }
            Model::LogReg { d, weights, intercepts } if intercepts.len() == 1 => {
                let p = 1.0 / (1.0 + (-(dot(&weights[..*d]) + intercepts[0])).exp());
                let class = usize::from(p >= 0.5);
                out.extend([class as f64, 1.0 - p, p]);
                class
            }
            Model::LogReg { d, weights, intercepts } => {
                let z: Vec<f64> = weights.chunks_exact(*d).zip(intercepts).map(|(w, b)| dot(w) + b).collect();
                let zmax = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = z.iter().map(|v| (v - zmax).exp()).collect();
                let s: f64 = e.iter().sum();
                let class = z.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(k, _)| k);
                out.push(class as f64);
                out.extend(e.iter().map(|v| v / s));
                class
            }
        }
    }
}

/// Correct predictions and rows, per class (grown as labels appear).
#[derive(Default)]
struct Accuracy {
    correct: Vec<u64>,
    rows: Vec<u64>,
}

impl Accuracy {
    fn add(&mut self, label: f32, predicted: usize) {
        let k = label as usize;
        if self.rows.len() <= k {
            self.rows.resize(k + 1, 0);
            self.correct.resize(k + 1, 0);
        }
        self.rows[k] += 1;
        self.correct[k] += u64::from(predicted == k && label.fract() == 0.0);
    }

    fn print(&self) {
        let (c, n) = (self.correct.iter().sum::<u64>(), self.rows.iter().sum::<u64>());
        println!("accuracy: {:.4} ({c} of {n} rows)", c as f64 / n.max(1) as f64);
        for (k, (c, n)) in self.correct.iter().zip(&self.rows).enumerate().filter(|(_, (_, n))| **n > 0) {
            println!("  class {k}: {:.4} ({c} of {n})", *c as f64 / *n as f64);
        }
    }
}

/// Where predictions go: an `.npy` writer (its header sized up front) or CSV lines.
enum Sink<'a> {
    Npy(npyz::NpyWriter<f64, &'a mut dyn Write>),
    Csv(&'a mut dyn Write),
}

/// Calls `each` on the data's rows, a chunk at a time, in row order.
fn for_each_chunk(data: &Data, rows: u64, label: LabelCol, mut each: impl FnMut(Rows) -> Result<()>) -> Result<()> {
    if let Some((object, _)) = data.parted() {
        // One stream over the whole object or file (a CSV read by row ranges would start
        // from its first byte for every chunk).
        let part = object.part(0, 1, 0, 1);
        let mut reader = object.open_part(&part)?;
        while let Some(chunk) = reader.next_rows(CHUNK_ROWS, label)? {
            each(chunk)?;
        }
        return Ok(());
    }
    let mut at = 0;
    while at < rows {
        let end = (at + CHUNK_ROWS).min(rows);
        each(data.read(at..end)?)?;
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
    // The column count decides whether there is a label, unless the flag says.
    let unlabelled = Data::open(&a.data, LabelCol::None, a.csv.format(), &s3, None)?;
    a.csv.check_for(&unlabelled, &a.data)?;
    let unlabelled = unlabelled.shape()?;
    let label = match a.label_col {
        Some(LabelColArg::Last) => LabelCol::Last,
        Some(LabelColArg::None) => LabelCol::None,
        None if unlabelled.cols as usize == d + 1 => LabelCol::Last,
        None => LabelCol::None,
    };
    let data = Data::open(&a.data, label, a.csv.format(), &s3, None)?;
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
                let (x, y) = chunk.slice(i..i + 1);
                values.clear();
                let class = model.predict(x, &mut values);
                if let (Some(acc), Some(&y)) = (accuracy.as_mut(), y.first()) {
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
        acc.print();
    }
    Ok(())
}
