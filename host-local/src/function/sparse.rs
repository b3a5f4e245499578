//! Loading a function's share of a LIBSVM file into sparse shards: each inner worker reads
//! its own line-aligned byte range ([`crate::data::libsvm::PartReader`]) a chunk at a time and
//! appends it in CSR form through the contract's `sparse` interface, so no dense copy of the
//! rows (2^20 columns and more) is ever made, in the host or in the kernel.

use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;

use super::{failure, pool, Function, Inner, JobSpec, APPEND_CHUNK_ROWS};
use crate::data::byte_part;
use crate::data::libsvm::{LibsvmFile, SparseRows};
use crate::data::sample::SampleCollector;
use crate::kernel::{KernelEngine, SamplePlan, SparseRows as WitRows};
use crate::task::{FailureKind, FunctionFailure};

impl Function {
    /// Loads this function's share of the LIBSVM file `file` into `inner` sparse shards.
    pub(crate) fn load_libsvm(
        engine: &KernelEngine,
        spec: Arc<JobSpec>,
        function: u32,
        inner: u32,
        file: &LibsvmFile,
        sample: Option<SamplePlan>,
    ) -> Result<Self, FunctionFailure> {
        let started = Instant::now();
        let functions = spec.functions as u64;
        let whole = byte_part(0..file.size(), function as u64, functions, 0, 1);
        let inner = (inner as u64).clamp(1, (whole.end - whole.start).max(1));
        let shape = spec.shape;
        let pool = pool(function, inner as usize)?;
        let loaded: Vec<(Inner, u64, u64)> = pool.install(|| {
            (0..inner)
                .into_par_iter()
                .map(|i| -> Result<(Inner, u64, u64), FunctionFailure> {
                    let bytes = byte_part(0..file.size(), function as u64, functions, i, inner);
                    let mut inst = engine.instantiate().map_err(|e| failure(function, None, e))?;
                    let mut reader = file.open_part(bytes.clone()).map_err(|e| failure(function, None, e))?;
                    let (mut rows, mut shard) = (0u64, None);
                    loop {
                        let mut chunk = SparseRows::default();
                        let n = reader
                            .read_into(&mut chunk, APPEND_CHUNK_ROWS as usize)
                            .map_err(|e| failure(function, None, e))?;
                        if n == 0 {
                            break;
                        }
                        let shard = match shard {
                            Some(s) => s,
                            None => *shard.insert(
                                inst.new_shard(&spec.params, shape, reader.rows_hint(n as u64))
                                    .map_err(|e| failure(function, None, e))?,
                            ),
                        };
                        let wit = WitRows {
                            offsets: chunk.indptr.iter().map(|&o| o as u32).collect(),
                            indices: chunk.indices,
                            values: chunk.values,
                        };
                        inst.append_sparse(shard, &wit, &chunk.labels).map_err(|e| {
                            let what = format!(
                                "loading {} (the part from byte {}, after {rows} of its rows): {e}",
                                file.path().display(),
                                bytes.start
                            );
                            FunctionFailure::new(FailureKind::Kernel, Some(function), None, what)
                        })?;
                        rows += n as u64;
                    }
                    let shard = match shard {
                        Some(s) => s,
                        None => inst.new_shard(&spec.params, shape, 0).map_err(|e| failure(function, None, e))?,
                    };
                    Ok((Inner { inst, shard, rows: None, count: rows }, rows, reader.fetched()))
                })
                .collect::<Result<Vec<_>, _>>()
        })?;
        let (mut inners, mut rows, mut fetched) = (Vec::with_capacity(loaded.len()), 0, 0);
        for (i, n, f) in loaded {
            inners.push(i);
            rows += n;
            fetched += f;
        }
        tracing::info!(
            function,
            rows,
            bytes_fetched = fetched,
            "loaded the function's share from {}",
            file.path().display()
        );
        // A sample of sparse rows is never taken: `Data::sample` refuses a plan that asks for
        // rows, and a plan that asks for none needs no candidates.
        let sample = sample.map(|p| SampleCollector::new(p, 0, shape.has_labels));
        Ok(Self {
            spec,
            function,
            inners,
            pool,
            rows,
            load_s: started.elapsed().as_secs_f64(),
            bytes_fetched: fetched,
            share_bytes: whole.end - whole.start,
            sample,
        })
    }
}
