//! Compiled kernels, built once per execution environment: an in-memory map from kernel name
//! to its [`KernelEngine`] (warm invocations pay nothing), backed by directories of
//! precompiled components: the package's own (`kernels/` beside `bootstrap`, written by
//! `bootstrap precompile DIR` when packaging) and a writable cache (`/tmp/ifp-kernels` on
//! Lambda), so a cold start deserializes instead of compiling.
//!
//! A cached file is named after the kernel and a hash of the component bytes and wasmtime's
//! compatibility hash for our configuration, so a different kernel, wasmtime version or
//! setting never picks up a stale artifact; an artifact that fails to load anyway is
//! recompiled and replaced. Files are written to a temporary name and renamed into place.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{anyhow, Context as _, Result};
use ifp_host::{KernelEngine, Sandbox};

use crate::event::KernelSource;

/// The kernels of one process.
pub struct Kernels {
    /// Read-only directories searched first (the package's precompiled kernels).
    shipped: Vec<PathBuf>,
    /// The writable cache, searched after `shipped` and written after a compilation.
    cache_dir: Option<PathBuf>,
    sandbox: Sandbox,
    loaded: Mutex<HashMap<String, Arc<KernelEngine>>>,
}

impl Kernels {
    /// `cache_dir`: where precompiled kernels are kept (`None`: compile in every process).
    pub fn new(cache_dir: Option<PathBuf>, sandbox: Sandbox) -> Self {
        Self { shipped: Vec::new(), cache_dir, sandbox, loaded: Mutex::default() }
    }

    /// Also looks for precompiled kernels in `dir` (read-only), before the cache.
    pub fn with_shipped(mut self, dir: PathBuf) -> Self {
        self.shipped.push(dir);
        self
    }

    /// Precompiles every builtin kernel into `dir` (for packaging); returns the files written.
    pub fn precompile_builtins(dir: &Path, sandbox: &Sandbox) -> Result<Vec<PathBuf>> {
        let k = Kernels::new(None, sandbox.clone());
        let mut out = Vec::new();
        for (name, component) in ifp_kernels::BUILTIN {
            let path = k.cache_path(dir, name, component)?;
            write_atomic(&path, &KernelEngine::precompile(component, sandbox)?)?;
            out.push(path);
        }
        Ok(out)
    }

    /// The engine for builtin kernel `name`, how it was obtained, and the seconds it took.
    pub fn get(&self, name: &str) -> Result<(Arc<KernelEngine>, KernelSource, f64)> {
        let started = Instant::now();
        // One compilation at a time: a second invocation of the same environment waits for
        // the first rather than compiling again (Lambda runs one invocation at a time anyway).
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = loaded.get(name) {
            return Ok((e.clone(), KernelSource::Memory, started.elapsed().as_secs_f64()));
        }
        let bytes = ifp_kernels::builtin(name).ok_or_else(|| {
            let names: Vec<_> = ifp_kernels::BUILTIN.iter().map(|(n, _)| *n).collect();
            anyhow!("unknown kernel '{name}' (builtin: {})", names.join(", "))
        })?;
        let (engine, source) = self.load(name, bytes)?;
        let engine = Arc::new(engine);
        loaded.insert(name.to_string(), engine.clone());
        Ok((engine, source, started.elapsed().as_secs_f64()))
    }

    fn load(&self, name: &str, component: &[u8]) -> Result<(KernelEngine, KernelSource)> {
        for dir in self.shipped.iter().chain(&self.cache_dir) {
            let path = self.cache_path(dir, name, component)?;
            if let Ok(bytes) = std::fs::read(&path) {
                match KernelEngine::new(name, &bytes, self.sandbox.clone()) {
                    Ok(e) => return Ok((e, KernelSource::Precompiled)),
                    Err(e) => {
                        tracing::warn!(path = %path.display(), "ignoring a precompiled kernel that does not load: {e:#}")
                    }
                }
            }
        }
        let Some(dir) = &self.cache_dir else {
            return Ok((KernelEngine::new(name, component, self.sandbox.clone())?, KernelSource::Compiled));
        };
        let path = self.cache_path(dir, name, component)?;
        let artifact = KernelEngine::precompile(component, &self.sandbox)?;
        if let Err(e) = write_atomic(&path, &artifact) {
            // A read-only or full /tmp costs the next cold start a compilation, nothing more.
            tracing::warn!(path = %path.display(), "cannot cache the precompiled kernel: {e:#}");
        }
        Ok((KernelEngine::new(name, &artifact, self.sandbox.clone())?, KernelSource::Compiled))
    }

    /// `DIR/NAME-HASH.cwasm`, where HASH covers the component and the engine configuration.
    pub fn cache_path(&self, dir: &Path, name: &str, component: &[u8]) -> Result<PathBuf> {
        let engine = wasmtime_engine(&self.sandbox)?;
        let mut h = std::hash::DefaultHasher::new();
        component.hash(&mut h);
        engine.precompile_compatibility_hash().hash(&mut h);
        let safe: String =
            name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
        Ok(dir.join(format!("{safe}-{:016x}.cwasm", h.finish())))
    }
}

fn wasmtime_engine(sandbox: &Sandbox) -> Result<wasmtime::Engine> {
    wasmtime::Engine::new(&KernelEngine::config(sandbox)).map_err(|e| anyhow!("cannot create the wasmtime engine: {e}"))
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp =
        dir.join(format!(".{}.{}", path.file_name().and_then(|n| n.to_str()).unwrap_or("kernel"), std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_once_then_loads_from_memory_and_from_the_disk_cache() {
        let dir = tempfile::tempdir().unwrap();
        let a = Kernels::new(Some(dir.path().to_path_buf()), Sandbox::default());
        let (e1, s1, _) = a.get("kmeans").unwrap();
        assert_eq!(s1, KernelSource::Compiled);
        let (e2, s2, _) = a.get("kmeans").unwrap();
        assert_eq!(s2, KernelSource::Memory);
        assert!(Arc::ptr_eq(&e1, &e2), "a warm invocation reuses the engine");
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(files.len(), 1, "{files:?}");
        // A new process (a fresh Kernels) finds the artifact; it runs like the compiled one.
        let b = Kernels::new(Some(dir.path().to_path_buf()), Sandbox::default());
        let (e3, s3, _) = b.get("kmeans").unwrap();
        assert_eq!(s3, KernelSource::Precompiled);
        assert_eq!(e3.instantiate().unwrap().name().unwrap(), e1.instantiate().unwrap().name().unwrap());
    }

    #[test]
    fn shipped_kernels_are_found_without_a_cache() {
        let dir = tempfile::tempdir().unwrap();
        let files = Kernels::precompile_builtins(dir.path(), &Sandbox::default()).unwrap();
        assert_eq!(files.len(), ifp_kernels::BUILTIN.len());
        let k = Kernels::new(None, Sandbox::default()).with_shipped(dir.path().to_path_buf());
        assert_eq!(k.get("logreg").unwrap().1, KernelSource::Precompiled);
        assert_eq!(Kernels::new(None, Sandbox::default()).get("logreg").unwrap().1, KernelSource::Compiled);
    }

    #[test]
    fn a_corrupt_artifact_is_recompiled_and_an_unknown_kernel_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let k = Kernels::new(Some(dir.path().to_path_buf()), Sandbox::default());
        let path = k.cache_path(dir.path(), "logreg", ifp_kernels::builtin("logreg").unwrap()).unwrap();
        std::fs::write(&path, b"\0asm garbage").unwrap();
        let (_, s, _) = k.get("logreg").unwrap();
        assert_eq!(s, KernelSource::Compiled);
        assert!(std::fs::read(&path).unwrap().len() > 1000, "the artifact was replaced");
        let e = k.get("svm").err().unwrap().to_string();
        assert!(e.starts_with("unknown kernel 'svm' (builtin: "), "{e}");
    }
}
