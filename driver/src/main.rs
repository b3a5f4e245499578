//! `ifp`: generate data, run iterative ML jobs as WebAssembly kernels spread over functions
//! with one instance per vCPU, and report what each configuration costs.

use ifp_driver::{bench, gen, gen_sparse, output, predict, run, sweep, whole_number};

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "ifp", version, about = "Stateful ML on serverless functions with intra-function parallelism")]
struct Cli {
    /// Log what happens at debug level on stderr, with the full chain of any error (as
    /// `IFP_LOG=debug` or `RUST_LOG=debug` does).
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process: boxing buys nothing
enum Command {
    /// Write a reproducible synthetic data set (.npy or .csv).
    #[command(allow_negative_numbers = true)]
    Gen(GenArgs),
    /// Run a job (k-means or logistic regression) and report the model and timings.
    #[command(allow_negative_numbers = true)]
    Run(run::RunArgs),
    /// Apply a trained model (a result JSON) to data: clusters, or classes and probabilities.
    Predict(predict::PredictArgs),
    /// Time our iterations against scikit-learn and numpy on the same data and threads.
    #[command(allow_negative_numbers = true)]
    Bench(bench::BenchArgs),
    /// Run one job under several configurations (functions x inner workers) and compare time and cost.
    #[command(allow_negative_numbers = true)]
    Sweep(sweep::SweepArgs),
}

#[derive(clap::Args)]
struct GenArgs {
    /// `kmeans` (Gaussian blobs), `logreg` (labelled linear problem, label last) or
    /// `sparse-logreg` (Criteo-like sparse rows with power-law feature frequencies).
    kind: GenKind,
    /// Number of rows to generate.
    #[arg(long, value_parser = at_least_one)]
    rows: u64,
    /// Number of feature columns (logreg adds the label column after them).
    #[arg(long, visible_alias = "features", value_parser = at_least_one)]
    cols: u64,
    /// Non-zeros per row (sparse-logreg; default 30, at most --features).
    #[arg(long, value_parser = at_least_one)]
    nnz: Option<u64>,
    /// Also write the true model (sparse-logreg): one row of the feature weights, then the
    /// intercept, as .npy or .csv.
    #[arg(long, value_name = "FILE")]
    true_model: Option<String>,
    /// Number of blobs (kmeans).
    #[arg(long, default_value_t = 8, value_parser = whole_number)]
    k: u64,
    /// Seed of the generator: the same seed gives the same file.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output: a .npy (float32) or .csv file, for sparse-logreg also LIBSVM text (.svm,
    /// .libsvm), or `s3://bucket/key` (uploaded).
    #[arg(long)]
    out: String,
    /// An S3-compatible endpoint for an `s3://` output (path-style addressing; default: AWS,
    /// or `AWS_ENDPOINT_URL_S3`).
    #[arg(long)]
    s3_endpoint: Option<String>,
}

/// A count that must be at least 1, with a message clap puts after the flag and the value.
pub fn at_least_one(s: &str) -> Result<u64, String> {
    match s.trim().parse::<i128>() {
        Ok(n) if n >= 1 && n <= u64::MAX as i128 => Ok(n as u64),
        Ok(_) => Err("expected a whole number of at least 1".into()),
        Err(_) => Err("not a whole number".into()),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum GenKind {
    Kmeans,
    Logreg,
    SparseLogreg,
}

fn gen_cmd(a: GenArgs) -> Result<()> {
    let kind = match a.kind {
        GenKind::Kmeans => gen::Kind::Kmeans,
        GenKind::Logreg => gen::Kind::Logreg,
        GenKind::SparseLogreg => return gen_sparse_cmd(a),
    };
    anyhow::ensure!(a.nnz.is_none() && a.true_model.is_none(), "--nnz and --true-model apply to sparse-logreg");
    anyhow::ensure!(kind != gen::Kind::Kmeans || a.k > 0, "--k must be at least 1, got 0");
    let spec = gen::GenSpec { kind, rows: a.rows, cols: a.cols, k: a.k, seed: a.seed };
    output::write_f32_to(&a.out, a.s3_endpoint.as_deref(), a.rows, spec.file_cols(), spec.values())?;
    eprintln!("wrote {} rows × {} columns to {}", a.rows, spec.file_cols(), a.out);
    Ok(())
}

fn gen_sparse_cmd(a: GenArgs) -> Result<()> {
    let spec =
        gen_sparse::SparseSpec { rows: a.rows, features: a.cols, nnz: a.nnz.unwrap_or(30.min(a.cols)), seed: a.seed };
    spec.check()?;
    let s3 = a.s3_endpoint.as_deref();
    // The small file first: a bad path fails before the data set is written.
    if let Some(path) = &a.true_model {
        let (w, b) = spec.true_model();
        let row = w.into_iter().chain([b]).map(|v| v as f32);
        output::write_f32_to(path, s3, 1, a.cols + 1, row)?;
    }
    let ext = std::path::Path::new(&a.out).extension().map(|e| e.to_string_lossy().to_ascii_lowercase());
    if matches!(ext.as_deref(), Some("svm" | "libsvm")) {
        output::write_to(&a.out, s3, |w| spec.write_libsvm(w))?;
        eprintln!("wrote {} rows × {} features ({} non-zeros each, LIBSVM) to {}", a.rows, a.cols, spec.nnz, a.out);
    } else {
        let cols = a.cols + 1;
        anyhow::ensure!(
            a.rows.saturating_mul(cols) <= 1 << 31,
            "{} rows × {cols} columns is too large to write densely: write LIBSVM (.svm) instead",
            a.rows
        );
        output::write_f32_to(&a.out, s3, a.rows, cols, spec.dense_values())?;
        eprintln!("wrote {} rows × {cols} columns (dense, label last) to {}", a.rows, a.out);
    }
    Ok(())
}

/// Clap's message as one line: every line of it (the missing arguments, the "tip: a similar
/// argument exists" suggestion) except the usage and the "--help" pointer, joined; then which
/// help to read.
fn clap_error_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let mut parts: Vec<String> = Vec::new();
    let mut in_usage = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("Usage:") {
            in_usage = true;
        } else if t.is_empty() {
            in_usage = false;
        } else if !in_usage && !t.starts_with("For more information") {
            parts.push(t.to_string());
        }
    }
    // The subcommand the user was in, for the help to read.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sub = args.iter().find(|a| ["gen", "run", "bench", "sweep"].contains(&a.as_str()));
    let help = sub.map_or("ifp --help".to_string(), |s| format!("ifp {s} --help"));
    let mut line = parts.join(" ").replace(" tip:", "; tip:");
    if line.is_empty() {
        line = "error: invalid arguments".into();
    }
    format!("{line} (see {help})")
}

/// A hint for an error whose cause is common and not evident from the message.
fn hint(msg: &str) -> &'static str {
    if !msg.contains("is not a number") {
        return "";
    }
    // A whole row read as one cell: the file has another delimiter.
    let cell = msg.rsplit_once(": '").map_or("", |(_, c)| c);
    if [';', '\t', '|'].iter().any(|&d| cell.contains(d)) || cell.contains("\\t") {
        return " (is the CSV delimited by another character? give it with --delimiter, e.g. --delimiter ';' or --delimiter tab)";
    }
    // A CSV whose first line is a header fails on its first cell.
    if msg.contains(" row 1 column ") && !std::env::args().any(|a| a == "--header") {
        return " (the first row is not numeric: if it is a header line, add --header to skip it)";
    }
    ""
}

fn main() -> ExitCode {
    ifp_host::release_large_buffers();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{}", clap_error_line(&e));
            return ExitCode::from(2);
        }
    };
    // -v, else IFP_LOG, else RUST_LOG (neither set: errors only, and those are returned anyway).
    let filter = if cli.verbose {
        tracing_subscriber::EnvFilter::new("warn,ifp=debug,ifp_host=debug")
    } else if std::env::var_os("IFP_LOG").is_some() {
        tracing_subscriber::EnvFilter::from_env("IFP_LOG")
    } else {
        tracing_subscriber::EnvFilter::from_default_env()
    };
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let r = match cli.command {
        Command::Gen(a) => gen_cmd(a),
        Command::Run(a) => run::run_cmd(a),
        Command::Predict(a) => predict::predict_cmd(a),
        Command::Bench(a) => bench::bench_cmd(a),
        Command::Sweep(a) => sweep::sweep_cmd(a),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::debug!("the error in full: {e:?}");
            // One line, whatever the sources' messages look like.
            let msg = format!("{e:#}");
            eprintln!("error: {}{}", msg.split_whitespace().collect::<Vec<_>>().join(" "), hint(&msg));
            ExitCode::FAILURE
        }
    }
}
