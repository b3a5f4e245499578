//! Compiled kernels on disk ([`KernelCache`]), named by content hash and wasmtime's
//! compatibility hash, and the atomic write they are stored with.

use std::path::{Path, PathBuf};

use wasmtime::Engine;

use super::{KernelBytes, KernelEngine, LoadError, Sandbox};

/// How a [`KernelCache`] produced an engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheUse {
    /// Deserialized from a compiled kernel found on disk.
    Precompiled,
    /// Compiled from the component (and written to the cache, if it has a directory).
    Compiled,
}

/// Compiled kernels on disk, as `DIR/SHA256-COMPAT.cwasm`: SHA256 is the component's content
/// hash, COMPAT wasmtime's compatibility hash for the sandbox's configuration, so another
/// component, wasmtime version or setting never picks up a stale artifact. Read-only
/// directories (`shipped`, e.g. a package's precompiled kernels) are searched first, then the
/// writable `dir`, where a compilation is written (to a temporary name, then renamed). A file
/// that fails to load anyway is ignored and replaced.
///
/// Only point it at directories that this tool alone writes: compiled code is trusted as is.
#[derive(Clone, Debug, Default)]
pub struct KernelCache {
    pub shipped: Vec<PathBuf>,
    pub dir: Option<PathBuf>,
}

impl KernelCache {
    /// A cache in `dir` (`None`: no cache, every load compiles).
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self { shipped: Vec::new(), dir }
    }

    /// Where the compiled form of the component hashed `sha256` lives in `dir`.
    pub fn path(dir: &Path, sha256: &str, sandbox: &Sandbox) -> Result<PathBuf, LoadError> {
        use std::hash::{Hash as _, Hasher as _};
        let engine = Engine::new(&KernelEngine::config(sandbox)).map_err(LoadError::engine)?;
        let mut h = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        let safe: String = sha256.chars().filter(char::is_ascii_hexdigit).collect();
        Ok(dir.join(format!("{safe}-{:016x}.cwasm", h.finish())))
    }

    /// The engine for `k`: from the cache when there, else compiled (and cached).
    pub fn engine(&self, k: &KernelBytes, sandbox: Sandbox) -> Result<(KernelEngine, CacheUse), LoadError> {
        for dir in self.shipped.iter().chain(&self.dir) {
            let path = Self::path(dir, &k.sha256, &sandbox)?;
            if let Ok(bytes) = std::fs::read(&path) {
                match KernelEngine::new(&k.label, &bytes, sandbox.clone()) {
                    Ok(mut e) => {
                        e.sha256 = Some(k.sha256.clone());
                        return Ok((e, CacheUse::Precompiled));
                    }
                    Err(e) => {
                        tracing::warn!(path = %path.display(), "ignoring a compiled kernel that does not load: {e}")
                    }
                }
            }
        }
        let engine = KernelEngine::compile(k, sandbox)?;
        if let Err(e) = self.store(&engine) {
            // A read-only or full disk costs the next process a compilation, nothing more.
            tracing::warn!("cannot cache the compiled kernel: {e}");
        }
        Ok((engine, CacheUse::Compiled))
    }

    /// Writes `engine`'s compiled kernel into the writable directory (if any); returns the
    /// file.
    pub fn store(&self, engine: &KernelEngine) -> Result<Option<PathBuf>, LoadError> {
        let (Some(dir), Some(sha)) = (&self.dir, engine.sha256()) else { return Ok(None) };
        let path = Self::path(dir, sha, engine.sandbox())?;
        write_atomic(&path, &engine.serialize()?)?;
        Ok(Some(path))
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so
/// that no reader ever sees a partial file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), LoadError> {
    let fail = |what: String, e: std::io::Error| LoadError::Cache {
        path: path.to_path_buf(),
        message: format!("{what}: {e}"),
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| fail(format!("cannot create {}", dir.display()), e))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("kernel");
    let tmp = dir.join(format!(".{name}.{}.{:?}", std::process::id(), std::thread::current().id()));
    std::fs::write(&tmp, bytes).map_err(|e| fail(format!("cannot write {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path).map_err(|e| fail(format!("cannot rename {} to {}", tmp.display(), path.display()), e))
}
