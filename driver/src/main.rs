//! `ifp`: generate data, run iterative ML jobs as WebAssembly kernels spread over functions
//! with one instance per vCPU, and report what each configuration costs.

use ifp_driver::{bench, gen, output, run, sweep};

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "ifp", version, about = "Stateful ML on serverless functions with intra-function parallelism")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a reproducible synthetic data set (.npy or .csv).
    Gen(GenArgs),
    /// Run a job (k-means or logistic regression) and report the model and timings.
    Run(run::RunArgs),
    /// Time our iterations against scikit-learn and numpy on the same data and threads.
    Bench(bench::BenchArgs),
    /// Run one job under several configurations (functions x inner workers) and compare time and cost.
    Sweep(sweep::SweepArgs),
}

#[derive(clap::Args)]
struct GenArgs {
    /// `kmeans` (Gaussian blobs) or `logreg` (labelled linear problem, label last).
    kind: gen::Kind,
    #[arg(long)]
    rows: u64,
    #[arg(long)]
    cols: u64,
    /// Number of blobs (kmeans).
    #[arg(long, default_value_t = 8)]
    k: u64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output: a .npy (float32) or .csv file, or `s3://bucket/key` (uploaded).
    #[arg(long)]
    out: String,
    /// An S3-compatible endpoint for an `s3://` output (path-style addressing; default: AWS,
    /// or `AWS_ENDPOINT_URL_S3`).
    #[arg(long)]
    s3_endpoint: Option<String>,
}

fn gen_cmd(a: GenArgs) -> Result<()> {
    anyhow::ensure!(a.rows > 0, "--rows must be at least 1, got 0");
    anyhow::ensure!(a.cols > 0, "--cols must be at least 1, got 0");
    anyhow::ensure!(a.kind != gen::Kind::Kmeans || a.k > 0, "--k must be at least 1, got 0");
    let spec = gen::GenSpec { kind: a.kind, rows: a.rows, cols: a.cols, k: a.k, seed: a.seed };
    output::write_f32_to(&a.out, a.s3_endpoint.as_deref(), a.rows, spec.file_cols(), spec.values())?;
    eprintln!("wrote {} rows × {} columns to {}", a.rows, spec.file_cols(), a.out);
    Ok(())
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
            // One line: what is wrong, with the offending value (clap's first line).
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!("{first} (see ifp --help)");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("IFP_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let r = match cli.command {
        Command::Gen(a) => gen_cmd(a),
        Command::Run(a) => run::run_cmd(a),
        Command::Bench(a) => bench::bench_cmd(a),
        Command::Sweep(a) => sweep::sweep_cmd(a),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, whatever the sources' messages look like.
            let msg = format!("{e:#}");
            eprintln!("error: {}", msg.split_whitespace().collect::<Vec<_>>().join(" "));
            ExitCode::FAILURE
        }
    }
}
