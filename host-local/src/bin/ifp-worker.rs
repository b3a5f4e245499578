//! `ifp-worker`: one ifp function as a local process (see `ifp_host::worker`). The `ifp run
//! --redis` driver starts W of these; a restarted one with the same job and worker index
//! rejoins the job where it is.

use std::process::ExitCode;

use clap::Parser;
use ifp_host::worker::{self, WorkerArgs, EXIT_ABORTED};

fn main() -> ExitCode {
    ifp_host::release_large_buffers();
    let args = match WorkerArgs::try_parse() {
        Ok(a) => a,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // One line: clap's message with the offending arguments, without the usage.
            let text = e.render().to_string();
            let line: Vec<&str> = text
                .lines()
                .take_while(|l| !l.starts_with("Usage:"))
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            eprintln!("{} (see ifp-worker --help)", line.join(" "));
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("IFP_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let stdout = std::io::stdout();
    match worker::run(&args, &mut stdout.lock()) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if worker::is_aborted(&e) {
                ExitCode::from(EXIT_ABORTED)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
