//! Writing output files all-or-nothing: every file is written to a temporary file in the
//! destination directory and renamed into place only once complete, so a failed or
//! interrupted run never leaves a half-written file behind.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use ifp_host::data::object::{S3Store, S3Url};
use npyz::WriterBuilder as _;

/// Writes a file atomically with `write` producing its contents.
pub fn write_atomic(path: &Path, write: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".ifp-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    {
        let mut w = std::io::BufWriter::new(tmp.as_file_mut());
        write(&mut w).with_context(|| format!("writing {}", path.display()))?;
        w.flush().with_context(|| format!("writing {}", path.display()))?;
    }
    tmp.persist(path).map_err(|e| e.error).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
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

/// The labels the functions write themselves ([`ifp_host::labels`]): a temporary destination
/// next to `--labels-out` (so that the final rename stays on one file system), moved into
/// place by [`LabelsOut::finish`] once the job succeeded, and removed in every other case.
pub struct LabelsOut {
    tmp: PathBuf,
    dest: PathBuf,
    functions: u32,
}

impl LabelsOut {
    /// The temporary destination of job `job`'s labels for `dest`.
    pub fn new(dest: &Path, job: &str, functions: u32) -> Result<Self> {
        let dest = std::path::absolute(dest).with_context(|| format!("--labels-out {}", dest.display()))?;
        let name = dest.file_name().context("--labels-out names no file")?.to_string_lossy().into_owned();
        let tmp = dest.with_file_name(format!(".ifp-{job}-{name}"));
        Ok(Self { tmp, dest, functions })
    }

    /// Where the functions write (their task's `labels_out`).
    pub fn tmp(&self) -> String {
        self.tmp.display().to_string()
    }

    /// Moves the labels of `total_rows` rows into place, checking that every row has one.
    pub fn finish(self, total_rows: u64, algorithm: &str) -> Result<()> {
        let none = || anyhow::anyhow!("--labels-out: {algorithm} produced no per-row assignment");
        match TableFormat::of(&self.dest)? {
            TableFormat::Npy => {
                let len = std::fs::metadata(&self.tmp).map_err(|_| none())?.len();
                let want = ifp_host::labels::NPY_HEADER_BYTES + 4 * total_rows;
                if len != want {
                    bail!("--labels-out: the functions wrote {len} bytes of labels, expected {want} for {total_rows} rows");
                }
                std::fs::rename(&self.tmp, &self.dest)
                    .with_context(|| format!("moving the labels to {}", self.dest.display()))?;
            }
            TableFormat::Csv => {
                let tmp = self.tmp();
                let mut lines = 0u64;
                write_atomic(&self.dest, |w| {
                    for f in 0..self.functions {
                        let part = ifp_host::labels::part_path(&tmp, f);
                        let bytes = std::fs::read(&part).map_err(|_| none())?;
                        lines += bytes.iter().filter(|&&b| b == b'\n').count() as u64;
                        w.write_all(&bytes)?;
                    }
                    if lines != total_rows {
                        bail!("--labels-out: the functions wrote {lines} labels for {total_rows} rows");
                    }
                    Ok(())
                })?;
            }
        }
        Ok(())
    }
}

impl Drop for LabelsOut {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.tmp);
        for f in 0..self.functions {
            let _ = std::fs::remove_file(ifp_host::labels::part_path(&self.tmp(), f));
        }
    }
}
