//! Compiled kernels, built once per process (a Lambda execution environment, a worker, the
//! driver): an in-memory map from a
//! component's content hash (and sandbox) to its [`KernelEngine`] (warm invocations pay
//! nothing), backed by a [`KernelCache`] of compiled kernels on disk: the package's own
//! (`kernels/` beside `bootstrap`, written by `bootstrap precompile DIR` when packaging) and a
//! writable cache (`/tmp/ifp-kernels` on Lambda), so a cold start deserializes instead of
//! compiling.
//!
//! A kernel is a builtin name, an `s3://bucket/key` component or a path the function can read
//! ([`KernelSource::parse`]). When the event gives the component's SHA-256 and this
//! environment already holds that kernel, nothing is fetched; otherwise the component is read,
//! its hash checked against the event's, and only then compiled (or found compiled). Cached
//! files are named after the content hash and wasmtime's compatibility hash for the sandbox's
//! configuration, so a different kernel, wasmtime version or setting never picks up a stale
//! artifact; an artifact that fails to load anyway is recompiled and replaced.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{
    sha256_hex, write_atomic, CacheUse, KernelCache, KernelEngine, KernelSource, LoadError, RemoteKernels, Sandbox,
};

/// Why a kernel could not be had.
#[derive(Debug, thiserror::Error)]
pub enum GetError {
    /// No such builtin: the event is wrong, a retry cannot help.
    #[error("unknown kernel '{name}' (builtin: {builtins})")]
    Unknown { name: String, builtins: String },
    /// The component could not be read, does not match its hash, or does not load.
    #[error(transparent)]
    Load(#[from] LoadError),
}

/// How a function got its compiled kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KernelOrigin {
    /// Already in memory: a warm invocation, or a kernel the driver compiled in this process.
    Memory,
    /// Loaded from a precompiled artifact on disk.
    Precompiled,
    /// Compiled from the component (and written to the cache, if any).
    #[default]
    Compiled,
}

/// The kernels of one process.
pub struct Kernels {
    cache: KernelCache,
    /// Limits for events that set none (an event's own limits replace these).
    defaults: Sandbox,
    loaded: Mutex<HashMap<(String, Sandbox), Arc<KernelEngine>>>,
}

impl Kernels {
    /// `cache_dir`: where compiled kernels are kept (`None`: compile in every process);
    /// `defaults`: the sandbox limits of events that give none.
    pub fn new(cache_dir: Option<PathBuf>, defaults: Sandbox) -> Self {
        Self { cache: KernelCache::new(cache_dir), defaults, loaded: Mutex::default() }
    }

    /// Also looks for compiled kernels in `dir` (read-only), before the cache.
    pub fn with_shipped(mut self, dir: PathBuf) -> Self {
        self.cache.shipped.push(dir);
        self
    }

    /// The sandbox for an event's limits: each one given replaces the default.
    pub fn sandbox(&self, memory_limit: Option<usize>, call_timeout: Option<std::time::Duration>) -> Sandbox {
        Sandbox {
            memory_limit: memory_limit.or(self.defaults.memory_limit),
            call_timeout: call_timeout.or(self.defaults.call_timeout),
        }
    }

    /// Keeps `engine` (compiled by this process) for the tasks that name its hash.
    pub fn insert(&self, engine: Arc<KernelEngine>) {
        if let Some(sha) = engine.sha256() {
            let key = (sha.to_string(), engine.sandbox().clone());
            self.loaded.lock().unwrap_or_else(|p| p.into_inner()).insert(key, engine);
        }
    }

    /// Compiles every builtin kernel into `dir` (for packaging); returns the files written.
    pub fn precompile_builtins(dir: &Path, sandbox: &Sandbox) -> Result<Vec<PathBuf>, LoadError> {
        let mut out = Vec::new();
        for (name, component) in ifp_kernels::BUILTIN {
            let path = KernelCache::path(dir, &sha256_hex(component), sandbox)?;
            write_atomic(&path, &KernelEngine::precompile(component, sandbox)?)?;
            tracing::debug!(kernel = name, path = %path.display(), "precompiled");
            out.push(path);
        }
        Ok(out)
    }

    /// The engine for `kernel` (a builtin name, `s3://` URI or path) under `sandbox`, how it
    /// was obtained, and the seconds it took. `sha256`: the hash the component must have.
    pub fn get(
        &self,
        kernel: &str,
        sha256: Option<&str>,
        sandbox: &Sandbox,
        remote: Option<&dyn RemoteKernels>,
    ) -> Result<(Arc<KernelEngine>, KernelOrigin, f64), GetError> {
        let started = Instant::now();
        let done = |e: &Arc<KernelEngine>, how| Ok((e.clone(), how, started.elapsed().as_secs_f64()));
        // One load at a time: a second invocation of the same environment waits for the first
        // rather than compiling again (Lambda runs one invocation at a time anyway).
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = sha256.and_then(|h| loaded.get(&(h.to_ascii_lowercase(), sandbox.clone()))) {
            return done(e, KernelOrigin::Memory);
        }
        let bytes = KernelSource::parse(kernel).read(remote).map_err(|e| match e {
            LoadError::UnknownBuiltin { name, builtins } => GetError::Unknown { name, builtins },
            other => GetError::Load(other),
        })?;
        bytes.check(sha256)?;
        let key = (bytes.sha256.clone(), sandbox.clone());
        if let Some(e) = loaded.get(&key) {
            return done(e, KernelOrigin::Memory);
        }
        let (engine, how) = self.cache.engine(&bytes, sandbox.clone())?;
        let engine = Arc::new(engine);
        loaded.insert(key, engine.clone());
        let how = match how {
            CacheUse::Precompiled => KernelOrigin::Precompiled,
            CacheUse::Compiled => KernelOrigin::Compiled,
        };
        done(&engine, how)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(k: &Kernels, name: &str) -> Result<(Arc<KernelEngine>, KernelOrigin, f64), GetError> {
        k.get(name, None, &Sandbox::default(), None)
    }

    #[test]
    fn compiles_once_then_loads_from_memory_and_from_the_disk_cache() {
        let dir = tempfile::tempdir().unwrap();
        let a = Kernels::new(Some(dir.path().to_path_buf()), Sandbox::default());
        let (e1, s1, _) = get(&a, "kmeans").unwrap();
        assert_eq!(s1, KernelOrigin::Compiled);
        let (e2, s2, _) = get(&a, "kmeans").unwrap();
        assert_eq!(s2, KernelOrigin::Memory);
        assert!(Arc::ptr_eq(&e1, &e2), "a warm invocation reuses the engine");
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(files.len(), 1, "{files:?}");
        // A new process (a fresh Kernels) finds the artifact; it runs like the compiled one.
        let b = Kernels::new(Some(dir.path().to_path_buf()), Sandbox::default());
        let (e3, s3, _) = get(&b, "kmeans").unwrap();
        assert_eq!(s3, KernelOrigin::Precompiled);
        assert_eq!(e3.instantiate().unwrap().name().unwrap(), e1.instantiate().unwrap().name().unwrap());
        // Another sandbox is another engine (the deadline changes the compiled code).
        let timed = Sandbox { call_timeout: Some(std::time::Duration::from_secs(5)), ..Sandbox::default() };
        let (_, s4, _) = b.get("kmeans", None, &timed, None).unwrap();
        assert_eq!(s4, KernelOrigin::Compiled);
    }

    #[test]
    fn shipped_kernels_are_found_without_a_cache() {
        let dir = tempfile::tempdir().unwrap();
        let files = Kernels::precompile_builtins(dir.path(), &Sandbox::default()).unwrap();
        assert_eq!(files.len(), ifp_kernels::BUILTIN.len());
        let k = Kernels::new(None, Sandbox::default()).with_shipped(dir.path().to_path_buf());
        assert_eq!(get(&k, "logreg").unwrap().1, KernelOrigin::Precompiled);
        assert_eq!(get(&Kernels::new(None, Sandbox::default()), "logreg").unwrap().1, KernelOrigin::Compiled);
    }

    #[test]
    fn a_corrupt_artifact_is_recompiled_and_an_unknown_kernel_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let k = Kernels::new(Some(dir.path().to_path_buf()), Sandbox::default());
        let sha = sha256_hex(ifp_kernels::builtin("logreg").unwrap());
        let path = KernelCache::path(dir.path(), &sha, &Sandbox::default()).unwrap();
        std::fs::write(&path, b"\0asm garbage").unwrap();
        let (_, s, _) = get(&k, "logreg").unwrap();
        assert_eq!(s, KernelOrigin::Compiled);
        assert!(std::fs::read(&path).unwrap().len() > 1000, "the artifact was replaced");
        let e = get(&k, "svm").err().unwrap();
        assert!(matches!(e, GetError::Unknown { .. }));
        assert!(e.to_string().starts_with("unknown kernel 'svm' (builtin: "), "{e}");
    }

    #[test]
    fn a_plugin_file_is_checked_against_its_hash_and_then_served_from_memory_without_reading() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plugin.wasm");
        let component = ifp_kernels::builtin("logreg").unwrap();
        std::fs::write(&file, component).unwrap();
        let sha = sha256_hex(component);
        let k = Kernels::new(None, Sandbox::default());
        let path = file.to_str().unwrap();
        let wrong = "0".repeat(64);
        let e = k.get(path, Some(&wrong), &Sandbox::default(), None).err().unwrap().to_string();
        assert!(e.contains(&format!("has sha256 {sha} but the job runs sha256 {wrong}")), "{e}");
        assert_eq!(k.get(path, Some(&sha), &Sandbox::default(), None).unwrap().1, KernelOrigin::Compiled);
        // Warm, with the job's hash: the engine in memory, the file not even read.
        std::fs::remove_file(&file).unwrap();
        assert_eq!(k.get(path, Some(&sha), &Sandbox::default(), None).unwrap().1, KernelOrigin::Memory);
    }
}
