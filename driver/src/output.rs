//! Writing output files all-or-nothing: every file is written to a temporary file in the
//! destination directory and renamed into place only once complete, so a failed or
//! interrupted run never leaves a half-written file behind.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use ifp_host::data::object::{S3Store, S3Url};
use npyz::WriterBuilder as _;

/// An output file claimed before any work starts: a temporary file already created in the
/// destination's directory (so a missing or unwritable directory fails at once, not after
/// the last iteration), renamed into place by [`Reserved::write`]. Dropped unwritten, it
/// leaves nothing behind.
pub struct Reserved {
    path: PathBuf,
    tmp: tempfile::NamedTempFile,
}

impl Reserved {
    /// Creates the temporary file for `path`, with the permissions a plain file would get
    /// (0666 less the umask; tempfile's default is 0600).
    pub fn new(path: &Path) -> Result<Self> {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if path.is_dir() {
            anyhow::bail!("{} is a directory", path.display());
        }
        let mut b = tempfile::Builder::new();
        b.prefix(".ifp-");
        #[cfg(unix)]
        b.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
        let tmp = b.tempfile_in(dir).map_err(|e| {
            // tempfile appends the temporary file's own path, which the user never asked for.
            let e = e.to_string();
            anyhow::anyhow!("cannot create a file in {}: {}", dir.display(), e.split(" at path ").next().unwrap_or(&e))
        })?;
        Ok(Self { path: path.to_path_buf(), tmp })
    }

    /// The destination.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the contents with `write` and renames the file into place.
    pub fn write(mut self, write: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
        let path = self.path;
        {
            let mut w = std::io::BufWriter::new(self.tmp.as_file_mut());
            write(&mut w).with_context(|| format!("writing {}", path.display()))?;
            w.flush().with_context(|| format!("writing {}", path.display()))?;
        }
        self.tmp.persist(&path).map_err(|e| e.error).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }
}

/// Writes a file atomically with `write` producing its contents.
pub fn write_atomic(path: &Path, write: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    Reserved::new(path)?.write(write)
}

/// The output format a path asks for, by extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableFormat {
    Npy,
    Csv,
}

impl TableFormat {
    pub fn of(path: &Path) -> Result<Self> {
        match path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref() {
            Some("npy") => Ok(Self::Npy),
            Some("csv") => Ok(Self::Csv),
            _ => anyhow::bail!("unsupported output file {}: expected a .npy or .csv extension", path.display()),
        }
    }
}

/// Writes a row-major f32 table as headerless CSV with shortest round-trip digits.
pub fn write_csv_f32(path: &Path, cols: usize, values: impl Iterator<Item = f32>) -> Result<()> {
    write_atomic(path, |w| {
        let mut line = String::new();
        for (i, v) in values.enumerate() {
            if i % cols != 0 {
                line.push(',');
            }
            line.push_str(&v.to_string());
            if i % cols == cols - 1 {
                line.push('\n');
                w.write_all(line.as_bytes())?;
                line.clear();
            }
        }
        Ok(())
    })
}

/// Writes a row-major f32 table of `rows × cols` as `.npy`.
pub fn write_npy_f32(path: &Path, rows: u64, cols: u64, values: impl Iterator<Item = f32>) -> Result<()> {
    write_atomic(path, |w| {
        let mut npy = npyz::WriteOptions::<f32>::new().default_dtype().shape(&[rows, cols]).writer(w).begin_nd()?;
        for v in values {
            npy.push(&v)?;
        }
        npy.finish()?;
        Ok(())
    })
}

/// Writes `rows × cols` f32 values to `.npy` or `.csv` by the path's extension.
pub fn write_f32(path: &Path, rows: u64, cols: u64, values: impl Iterator<Item = f32>) -> Result<()> {
    match TableFormat::of(path)? {
        TableFormat::Npy => write_npy_f32(path, rows, cols, values),
        TableFormat::Csv => write_csv_f32(path, cols as usize, values),
    }
}

/// Writes `rows × cols` f32 values to `out`: a local `.npy`/`.csv` file as [`write_f32`]
/// does, or `s3://bucket/key`, written to a temporary local file first and then uploaded
/// (multipart when large; an upload that fails leaves no object behind).
pub fn write_f32_to(
    out: &str,
    s3_endpoint: Option<&str>,
    rows: u64,
    cols: u64,
    values: impl Iterator<Item = f32>,
) -> Result<()> {
    if !S3Url::is_s3(out) {
        return write_f32(Path::new(out), rows, cols, values);
    }
    let url = S3Url::parse(out)?;
    let ext = match TableFormat::of(Path::new(&url.key))? {
        TableFormat::Npy => ".npy",
        TableFormat::Csv => ".csv",
    };
    let store = S3Store::connect(s3_endpoint)?;
    let tmp = tempfile::Builder::new()
        .prefix(".ifp-upload-")
        .suffix(ext)
        .tempfile()
        .context("cannot create a temporary file for the upload")?;
    write_f32(tmp.path(), rows, cols, values)?;
    store.put_file(&url, tmp.path())?;
    Ok(())
}

/// Writes one integer per row (`.npy` as int32, or one per line in CSV) to a reserved file.
pub fn write_labels(out: Reserved, labels: &[u32]) -> Result<()> {
    match TableFormat::of(out.path())? {
        TableFormat::Npy => out.write(|w| {
            let mut npy =
                npyz::WriteOptions::<i32>::new().default_dtype().shape(&[labels.len() as u64]).writer(w).begin_nd()?;
            for &l in labels {
                npy.push(&(l as i32))?;
            }
            npy.finish()?;
            Ok(())
        }),
        TableFormat::Csv => out.write(|w| {
            for l in labels {
                writeln!(w, "{l}")?;
            }
            Ok(())
        }),
    }
}
