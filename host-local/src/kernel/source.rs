//! Where a kernel's component comes from ([`KernelSource`]: a builtin, a file, a remote URI
//! read by a [`RemoteKernels`] reader), the bytes read with their SHA-256 ([`KernelBytes`]),
//! and why a kernel could not be loaded ([`LoadError`]).

use std::path::PathBuf;

use sha2::{Digest as _, Sha256};

/// Where a kernel's component comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelSource {
    /// A kernel embedded in this binary, by name.
    Builtin(String),
    /// A component file (`.wasm`, or a component precompiled by this build).
    File(PathBuf),
    /// A `scheme://...` URI (e.g. `s3://bucket/key`), read by a [`RemoteKernels`] reader.
    Remote(String),
}

impl KernelSource {
    /// A plugin given on the command line: a `scheme://` URI or a file path.
    pub fn plugin(arg: &str) -> Self {
        match arg.split_once("://") {
            Some((scheme, _))
                if !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || c == '+') =>
            {
                KernelSource::Remote(arg.to_string())
            }
            _ => KernelSource::File(PathBuf::from(arg)),
        }
    }

    /// A kernel named where only a string fits (a Lambda event): a builtin name, else a
    /// plugin ([`KernelSource::plugin`]). A bare word that is no builtin stays a builtin, so
    /// that a typo reads "unknown algorithm" rather than "cannot read file".
    pub fn parse(arg: &str) -> Self {
        let bare = !arg.contains(['/', '.', ':']);
        if bare || ifp_kernels::builtin(arg).is_some() {
            KernelSource::Builtin(arg.to_string())
        } else {
            Self::plugin(arg)
        }
    }

    /// The kernel's name in errors.
    pub fn label(&self) -> String {
        match self {
            KernelSource::Builtin(n) => n.clone(),
            KernelSource::File(p) => p.display().to_string(),
            KernelSource::Remote(u) => u.clone(),
        }
    }

    /// Reads the component and hashes it; `remote` reads [`KernelSource::Remote`] URIs.
    pub fn read(&self, remote: Option<&dyn RemoteKernels>) -> Result<KernelBytes, LoadError> {
        let bytes = self.bytes(remote)?;
        Ok(KernelBytes { label: self.label(), sha256: sha256_hex(&bytes), bytes })
    }

    /// The component bytes; `remote` reads [`KernelSource::Remote`] URIs.
    pub fn bytes(&self, remote: Option<&dyn RemoteKernels>) -> Result<Vec<u8>, LoadError> {
        match self {
            KernelSource::Builtin(name) => {
                ifp_kernels::builtin(name).map(<[u8]>::to_vec).ok_or_else(|| LoadError::UnknownBuiltin {
                    name: name.clone(),
                    builtins: ifp_kernels::BUILTIN.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
                })
            }
            KernelSource::File(p) => {
                std::fs::read(p).map_err(|e| LoadError::Read { kernel: self.label(), message: e.to_string() })
            }
            KernelSource::Remote(uri) => match remote {
                Some(r) => r.fetch(uri),
                None => Err(LoadError::Read {
                    kernel: uri.clone(),
                    message: "no reader for this URI scheme in this build".into(),
                }),
            },
        }
    }
}

/// Reads kernel components from remote URIs (`s3://bucket/key`, ...); the object store
/// plugs in here.
pub trait RemoteKernels {
    /// The component at `uri`; errors are [`LoadError::Read`] naming the URI.
    fn fetch(&self, uri: &str) -> Result<Vec<u8>, LoadError>;
}

/// The largest kernel component read from a remote store (components are usually well under
/// a megabyte; this only bounds what a wrong URI can make a function download).
pub const MAX_REMOTE_KERNEL_BYTES: u64 = 256 << 20;

/// A kernel component as read from its source, with its content hash.
#[derive(Clone, Debug)]
pub struct KernelBytes {
    /// The source's name in errors.
    pub label: String,
    pub bytes: Vec<u8>,
    /// SHA-256 of `bytes`, lowercase hex (what `sha256sum` prints).
    pub sha256: String,
}

impl KernelBytes {
    /// Refuses bytes whose hash is not `expected` (the job's: what the driver read).
    pub fn check(&self, expected: Option<&str>) -> Result<(), LoadError> {
        match expected {
            Some(e) if !e.eq_ignore_ascii_case(&self.sha256) => Err(LoadError::Mismatch {
                kernel: self.label.clone(),
                found: self.sha256.clone(),
                expected: e.to_string(),
            }),
            _ => Ok(()),
        }
    }
}

/// SHA-256 of `bytes` as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// Why a kernel could not be loaded; nothing of the kernel has run yet.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("unknown algorithm '{name}' (builtin: {builtins})")]
    UnknownBuiltin { name: String, builtins: String },
    #[error("cannot read kernel '{kernel}': {message}")]
    Read { kernel: String, message: String },
    #[error("kernel '{kernel}' is not a valid WebAssembly component: {message}")]
    NotComponent { kernel: String, message: String },
    #[error("kernel '{kernel}' is not an ifp:kernel component (0.2.0 or 0.1.0): it lacks {}", .missing.join(", "))]
    WrongWorld { kernel: String, missing: Vec<String> },
    #[error("kernel '{kernel}' cannot be sandboxed: {message}")]
    Imports { kernel: String, message: String },
    #[error(
        "kernel '{kernel}' has sha256 {found} but the job runs sha256 {expected}: every function must load the same component (did it change after the job started?)"
    )]
    Mismatch { kernel: String, found: String, expected: String },
    /// wasmtime could not set up an engine or a linker for this configuration.
    #[error("cannot set up the kernel engine: {message}")]
    Engine { message: String },
    /// The compiled-kernel cache could not be written.
    #[error("compiled-kernel cache {path}: {message}")]
    Cache { path: PathBuf, message: String },
}

impl LoadError {
    /// An engine set-up failure.
    pub fn engine(e: impl std::fmt::Display) -> Self {
        LoadError::Engine { message: e.to_string() }
    }
}
