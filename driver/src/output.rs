//! Writing output files all-or-nothing: every file is written to a temporary file in the
//! destination directory and renamed into place only once complete, so a failed or
//! interrupted run never leaves a half-written file behind.

use std::io::Write;
use std::path::Path;

use anyhow::{Context as _, Result};
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

/// Writes one integer per row (`.npy` as int32, or one per line in CSV).
pub fn write_labels(path: &Path, labels: &[u32]) -> Result<()> {
    match TableFormat::of(path)? {
        TableFormat::Npy => write_atomic(path, |w| {
            let mut npy =
                npyz::WriteOptions::<i32>::new().default_dtype().shape(&[labels.len() as u64]).writer(w).begin_nd()?;
            for &l in labels {
                npy.push(&(l as i32))?;
            }
            npy.finish()?;
            Ok(())
        }),
        TableFormat::Csv => write_atomic(path, |w| {
            for l in labels {
                writeln!(w, "{l}")?;
            }
            Ok(())
        }),
    }
}
