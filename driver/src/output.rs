//! Writing output files all-or-nothing: every file is written to a temporary file in the
//! destination directory and renamed into place only once complete, so a failed or
//! interrupted run never leaves a half-written file behind.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
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

    /// The temporary file (renamed to the destination by [`Reserved::write`]).
    pub fn tmp_path(&self) -> &Path {
        self.tmp.path()
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
    TableFormat::of(Path::new(&S3Url::parse(out)?.key))?;
    upload_via_file(out, s3_endpoint, |tmp| write_f32(tmp, rows, cols, values))
}

/// Writes `out`, a local file or `s3://bucket/key`, with `write` producing its contents: a
/// local file atomically ([`write_atomic`]), an object as [`write_f32_to`] uploads one.
pub fn write_to(out: &str, s3_endpoint: Option<&str>, write: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    if S3Url::is_s3(out) {
        upload_via_file(out, s3_endpoint, |tmp| write_atomic(tmp, write))
    } else {
        write_atomic(Path::new(out), write)
    }
}

/// Writes the object `out` to a temporary local file with `write` (given its path, which has
/// the key's extension), then uploads it.
fn upload_via_file(out: &str, s3_endpoint: Option<&str>, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let url = S3Url::parse(out)?;
    let ext = Path::new(&url.key).extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
    let store = S3Store::connect(s3_endpoint)?;
    let tmp = tempfile::Builder::new()
        .prefix(".ifp-upload-")
        .suffix(&ext)
        .tempfile()
        .context("cannot create a temporary file for the upload")?;
    write(tmp.path())?;
    store.put_file(&url, tmp.path())?;
    Ok(())
}

/// The labels the functions write themselves ([`ifp_host::labels`]), to a temporary
/// destination beside `--labels-out`: for a path, the file reserved for it (a `.npy` in place,
/// a CSV as per-function parts); for `s3://bucket/key`, one part object per function under
/// `key.ifp-tmp-…`. [`LabelsOut::finish`] puts them into place once the job succeeded (a
/// rename; for S3, one object assembled from the parts by [`S3Store::concat`]); in every
/// other case nothing is left behind: no file, no object at the key, no part.
pub struct LabelsOut {
    dest: Dest,
    /// Where the functions write.
    tmp: String,
    functions: u32,
}

enum Dest {
    File(Option<Reserved>),
    Object { url: S3Url, store: std::sync::Arc<S3Store> },
}

impl LabelsOut {
    pub fn new(reserved: Reserved, functions: u32) -> Self {
        let ext = reserved.path().extension().map(|e| e.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = format!("{}.{ext}", reserved.tmp_path().display());
        Self { dest: Dest::File(Some(reserved)), tmp, functions }
    }

    /// Claims `--labels-out` before any work: a local path as [`Reserved::new`] does, or an
    /// `s3://bucket/key` whose bucket must exist and take a write (a probe object under the
    /// temporary prefix, deleted at once), so an unwritable destination fails now.
    pub fn reserve(dest: &str, s3_endpoint: Option<&str>, functions: u32) -> Result<Self> {
        TableFormat::of(Path::new(dest))?;
        if !S3Url::is_s3(dest) {
            return Ok(Self::new(Reserved::new(Path::new(dest))?, functions));
        }
        let url = S3Url::parse(dest)?;
        let store = S3Store::connect(s3_endpoint)?;
        let ext = url.extension().unwrap_or_default();
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let token = format!("{:x}{:x}", t.as_secs(), std::process::id() ^ t.subsec_nanos());
        let tmp_key = format!("{}.ifp-tmp-{token}.{ext}", url.key);
        // Some S3-compatible servers create a missing bucket on upload; S3 does not.
        store.check_bucket(&url)?;
        let probe = S3Url { bucket: url.bucket.clone(), key: format!("{tmp_key}.probe") };
        store.put_bytes(&probe, Vec::new())?;
        store.delete(&probe)?;
        let tmp = format!("s3://{}/{tmp_key}", url.bucket);
        Ok(Self { dest: Dest::Object { url, store }, tmp, functions })
    }

    /// Where the functions write (their task's `labels_out`): beside the reserved temporary
    /// file (or under the temporary S3 prefix), with the destination's extension so that the
    /// functions know the format.
    pub fn tmp(&self) -> String {
        self.tmp.clone()
    }

    /// Moves the labels of `total_rows` rows into place, checking that every row has one.
    pub fn finish(mut self, total_rows: u64, algorithm: &str) -> Result<()> {
        let none = || anyhow::anyhow!("--labels-out: {algorithm} produced no per-row assignment");
        let tmp = self.tmp();
        let npy_len = ifp_host::labels::NPY_HEADER_BYTES + 4 * total_rows;
        let reserved = match &mut self.dest {
            Dest::File(r) => r.take().expect("finished once"),
            Dest::Object { url, store } => {
                let tmp = S3Url::parse(&tmp)?;
                let parts = store.list(&tmp.bucket, &format!("{}.part-", tmp.key))?;
                let want: Vec<String> = (0..self.functions).map(|f| ifp_host::labels::part_path(&tmp.key, f)).collect();
                if parts.iter().map(|(k, _)| k).ne(want.iter()) {
                    bail!("--labels-out: {} of the {} functions wrote their labels", parts.len(), self.functions);
                }
                let len: u64 = parts.iter().map(|(_, n)| n).sum();
                if TableFormat::of(Path::new(&url.key))? == TableFormat::Npy && len != npy_len {
                    bail!("--labels-out: the functions wrote {len} bytes of labels, expected {npy_len} for {total_rows} rows");
                }
                let sources: Vec<(S3Url, u64)> =
                    parts.into_iter().map(|(key, n)| (S3Url { bucket: tmp.bucket.clone(), key }, n)).collect();
                store.concat(url, &sources)?;
                return Ok(());
            }
        };
        match TableFormat::of(reserved.path())? {
            TableFormat::Npy => {
                let len = std::fs::metadata(&tmp).map_err(|_| none())?.len();
                if len != npy_len {
                    bail!("--labels-out: the functions wrote {len} bytes of labels, expected {npy_len} for {total_rows} rows");
                }
                // In the destination's directory already: the rename is atomic.
                let dest = reserved.path();
                std::fs::rename(&tmp, dest).with_context(|| format!("cannot write {}", dest.display()))?;
            }
            TableFormat::Csv => {
                let mut lines = 0u64;
                let functions = self.functions;
                reserved.write(|w| {
                    for f in 0..functions {
                        let bytes = std::fs::read(ifp_host::labels::part_path(&tmp, f)).map_err(|_| none())?;
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
        let tmp = self.tmp();
        match &self.dest {
            Dest::File(_) => {
                let _ = std::fs::remove_file(&tmp);
                for f in 0..self.functions {
                    let _ = std::fs::remove_file(ifp_host::labels::part_path(&tmp, f));
                }
            }
            Dest::Object { store, .. } => {
                let removed = S3Url::parse(&tmp).and_then(|t| store.delete_prefix(&t.bucket, &format!("{}.", t.key)));
                if let Err(e) = removed {
                    eprintln!("warning: could not remove the temporary labels under {tmp}: {e}");
                }
            }
        }
    }
}
