//! `bootstrap`: the ifp function for AWS Lambda's `provided.al2023` runtime.
//!
//! Sets up logging, reads the environment, builds the dependencies once per execution
//! environment and serves invocations with [`ifp_host_lambda::handler::handle`].
//!
//! Environment: `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` (set by Lambda; sizes the inner workers),
//! `IFP_REDIS_URL` (the state store when events name none), `IFP_KERNEL_CACHE` (precompiled
//! kernel cache, default `/tmp/ifp-kernels`; empty: none), `LAMBDA_TASK_ROOT` (the package:
//! precompiled kernels shipped in its `kernels/` are used first), `IFP_LOG` (log filter).
//!
//! `bootstrap precompile DIR` writes every builtin kernel, precompiled, into DIR (packaging).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use ifp_host::kernel::Kernels;
use ifp_host::Sandbox;
use ifp_host_lambda::handler::{handle, Deps};
use lambda_runtime::{service_fn, LambdaEvent};

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn main() -> Result<(), lambda_runtime::Error> {
    ifp_host::release_large_buffers();
    let process_start = Instant::now();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("IFP_LOG").unwrap_or_else(|_| "info".into()))
        .with_ansi(false)
        .without_time()
        .with_writer(std::io::stderr)
        .init();

    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [cmd, dir] = args.as_slice() {
        if cmd == "precompile" {
            for f in Kernels::precompile_builtins(&PathBuf::from(dir), &Sandbox::default())? {
                println!("{}", f.display());
            }
            return Ok(());
        }
    }
    if !args.is_empty() {
        return Err(format!("unexpected arguments {args:?} (usage: bootstrap, or bootstrap precompile DIR)").into());
    }

    let memory_mb = match env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") {
        Some(m) => Some(
            m.parse::<u64>()
                .map_err(|_| format!("AWS_LAMBDA_FUNCTION_MEMORY_SIZE must be a number of MB, got '{m}'"))?,
        ),
        None => None,
    };
    let cache = match std::env::var("IFP_KERNEL_CACHE") {
        Ok(d) if d.is_empty() => None,
        Ok(d) => Some(PathBuf::from(d)),
        Err(_) => Some(PathBuf::from("/tmp/ifp-kernels")),
    };
    let mut kernels = Kernels::new(cache, Sandbox::default());
    if let Some(root) = env("LAMBDA_TASK_ROOT") {
        kernels = kernels.with_shipped(PathBuf::from(root).join("kernels"));
    }
    let deps = Arc::new(Deps::new(kernels, memory_mb, env("IFP_REDIS_URL"), process_start));

    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(lambda_runtime::run(service_fn(move |ev: LambdaEvent<serde_json::Value>| handle(ev, deps.clone()))))
}
