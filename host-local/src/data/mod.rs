//! Data sets: rows in memory ([`Rows`]), where the label is ([`LabelCol`]), the errors every
//! reader reports ([`DataError`]), and one API over wherever a data set lives ([`Data`]).
//!
//! Files: this one (what every source shares), `source` ([`Data`] and [`read_table`]),
//! [`local`] (`.npy` and CSV files on disk), [`s3`] (the same formats in S3, read by parts) and
//! [`object`] (the S3 client).
//!
//! Everything read is checked: a file that is not the format its name says, an unsupported
//! dtype, a cell that is not a number (named by row and column, 1-based), ragged rows, NaN or
//! infinite values and empty data all give a [`DataError`] naming the file and the value.

use std::ops::Range;
use std::path::PathBuf;

pub mod assemble;
pub mod libsvm;
pub mod lines;
pub mod local;
pub mod object;
mod ranged;
pub mod s3;
pub mod sample;
mod source;

pub use source::{read_table, Data, RowSource};

/// A data set read by parts, each function and inner worker streaming its own straight into
/// its shards: an S3 object ([`s3::ObjectData`]) or a local CSV file read by line-aligned
/// byte ranges ([`lines::CsvLines`]).
pub trait Parted: Sync {
    /// The part of inner worker `inner` of `inners` in function `worker` of `workers`.
    fn part(&self, worker: u64, workers: u64, inner: u64, inners: u64) -> s3::Part;
    /// The bytes a part covers before realignment (what a worker is expected to read).
    fn part_bytes(&self, part: &s3::Part) -> u64;
    fn open_part(&self, part: &s3::Part) -> Result<Box<dyn PartRows>, DataError>;
    /// The data set's name in messages.
    fn name(&self) -> &std::path::Path;
}

/// The rows of one part, a chunk at a time.
pub trait PartRows: Send {
    /// The next at most `max_rows` rows; `None` at the end.
    fn next_rows(&mut self, max_rows: u64, label: LabelCol) -> Result<Option<Rows>, DataError>;
    /// The part's rows in all, exact or estimated, given `read` rows so far.
    fn rows_hint(&self, read: u64) -> u64;
    /// Bytes read for this part so far.
    fn fetched(&self) -> u64;
    /// The 0-based row number in the data set of the last chunk's first row, where the
    /// reader can find it (read to report an error only).
    fn last_chunk_row(&self) -> Option<u64> {
        None
    }
}

impl Parted for s3::ObjectData {
    fn part(&self, worker: u64, workers: u64, inner: u64, inners: u64) -> s3::Part {
        s3::ObjectData::part(self, worker, workers, inner, inners)
    }
    fn part_bytes(&self, part: &s3::Part) -> u64 {
        s3::ObjectData::part_bytes(self, part)
    }
    fn open_part(&self, part: &s3::Part) -> Result<Box<dyn PartRows>, DataError> {
        Ok(Box::new(s3::ObjectData::open_part(self, part)?))
    }
    fn name(&self) -> &std::path::Path {
        s3::ObjectData::name(self)
    }
}

impl PartRows for s3::PartReader {
    fn next_rows(&mut self, max_rows: u64, label: LabelCol) -> Result<Option<Rows>, DataError> {
        s3::PartReader::next_rows(self, max_rows, label)
    }
    fn rows_hint(&self, read: u64) -> u64 {
        s3::PartReader::rows_hint(self, read)
    }
    fn fetched(&self) -> u64 {
        s3::PartReader::fetched(self)
    }
}

impl Parted for lines::CsvLines {
    fn part(&self, worker: u64, workers: u64, inner: u64, inners: u64) -> s3::Part {
        lines::CsvLines::part(self, worker, workers, inner, inners)
    }
    fn part_bytes(&self, part: &s3::Part) -> u64 {
        match part {
            s3::Part::Bytes(b) => b.end - b.start,
            s3::Part::Rows(_) => 0,
        }
    }
    fn open_part(&self, part: &s3::Part) -> Result<Box<dyn PartRows>, DataError> {
        Ok(Box::new(lines::CsvLines::open_part(self, part)?))
    }
    fn name(&self) -> &std::path::Path {
        self.path()
    }
}

impl PartRows for lines::LinesReader {
    fn next_rows(&mut self, max_rows: u64, label: LabelCol) -> Result<Option<Rows>, DataError> {
        lines::LinesReader::next_rows(self, max_rows, label)
    }
    fn rows_hint(&self, read: u64) -> u64 {
        lines::LinesReader::rows_hint(self, read)
    }
    fn fetched(&self) -> u64 {
        lines::LinesReader::fetched(self)
    }
    fn last_chunk_row(&self) -> Option<u64> {
        Some(lines::LinesReader::last_chunk_row(self))
    }
}

/// Where the label is in each row of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LabelCol {
    /// The last column is the label.
    Last,
    /// No label column.
    #[default]
    None,
}

/// How a CSV is laid out: whether its first line is a header (skipped, never parsed) and the
/// byte between fields. Row numbers in errors count data rows (the header is not a row).
/// `.npy` files have neither: the default is what they are read with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct CsvFormat {
    pub header: bool,
    /// One ASCII byte (`,` by default; `;`, tab, `|`, ...), a one-character string in JSON.
    #[serde(with = "delimiter_char")]
    pub delimiter: u8,
}

mod delimiter_char {
    use serde::{de::Error as _, Deserialize as _, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &u8, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&(*d as char).to_string())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_bytes() {
            [b] if b.is_ascii() => Ok(*b),
            _ => Err(D::Error::custom(format!("a CSV delimiter is one ASCII character, got {s:?}"))),
        }
    }
}

impl Default for CsvFormat {
    fn default() -> Self {
        Self { header: false, delimiter: b',' }
    }
}

impl CsvFormat {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// A CSV reader configuration for data rows (never a header: callers start readers after
    /// it): cells trimmed, rows of any length when `flexible` (the caller checks them).
    pub(crate) fn reader(&self, flexible: bool) -> csv::ReaderBuilder {
        let mut b = csv::ReaderBuilder::new();
        b.has_headers(false).delimiter(self.delimiter).flexible(flexible).trim(csv::Trim::All);
        b
    }

    /// Where the data rows start in a CSV whose first bytes are `head`: 0 without a header,
    /// else just after the first non-empty line (`None`: that line does not end in `head`).
    pub(crate) fn data_start(&self, head: &[u8]) -> Option<u64> {
        if !self.header {
            return Some(0);
        }
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', head) {
            if head[start..nl].iter().any(|&b| b != b'\r') {
                return Some(nl as u64 + 1);
            }
            start = nl + 1;
        }
        None
    }
}

/// A data error: one line naming the file and the offending value.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    // Not `source`: the message already carries the cause, and a source would print it twice.
    #[error("cannot read {path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("unsupported data file {path}: expected a .npy or .csv extension")]
    Extension { path: PathBuf },
    #[error("malformed .npy file {path}: {reason}")]
    NpyHeader { path: PathBuf, reason: String },
    #[error("unsupported dtype '{dtype}' in {path}: expected float32 ('<f4') or float64 ('<f8')")]
    Dtype { path: PathBuf, dtype: String },
    #[error("{path} holds a {ndim}-D array with shape {shape:?}; expected a 2-D array (rows × columns)")]
    Dims { path: PathBuf, ndim: usize, shape: Vec<u64> },
    #[error("{path} is stored in Fortran order; save it in C order (numpy.ascontiguousarray)")]
    FortranOrder { path: PathBuf },
    #[error("{path} is truncated: {reason}")]
    Truncated { path: PathBuf, reason: String },
    #[error("{path} row {row} column {col}: '{cell}' is not a number")]
    NotANumber { path: PathBuf, row: u64, col: usize, cell: String },
    #[error("{path} row {row} has {got} columns, expected {expected} like the first row")]
    Ragged { path: PathBuf, row: u64, got: usize, expected: usize },
    #[error("{path} row {row} column {col}: value {value} is not finite")]
    NotFinite { path: PathBuf, row: u64, col: usize, value: f64 },
    #[error("{path} line {line}: {reason}")]
    Libsvm { path: PathBuf, line: u64, reason: String },
    #[error("{path}: {reason}")]
    Unsupported { path: PathBuf, reason: String },
    #[error("{path} holds no rows")]
    Empty { path: PathBuf },
    #[error("{path} has {cols} column(s); with the label in the last column it needs at least 2")]
    NoFeatures { path: PathBuf, cols: u64 },
    #[error(transparent)]
    Object(#[from] object::ObjectError),
}

/// Rows in memory: row-major features and, when the data is labelled, one label per row.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rows {
    pub cols: usize,
    pub features: Vec<f32>,
    /// Empty when the data has no labels.
    pub labels: Vec<f32>,
}

impl Rows {
    pub fn len(&self) -> usize {
        self.features.len().checked_div(self.cols).unwrap_or(0)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn has_labels(&self) -> bool {
        !self.labels.is_empty()
    }
    /// Rows `range` as borrowed slices `(features, labels)`.
    pub fn slice(&self, range: Range<usize>) -> (&[f32], &[f32]) {
        let f = &self.features[range.start * self.cols..range.end * self.cols];
        let l = if self.labels.is_empty() { &[][..] } else { &self.labels[range] };
        (f, l)
    }
    /// Splits raw rows of `total_cols` values into features and labels.
    pub fn from_raw(raw: Vec<f32>, total_cols: usize, label: LabelCol) -> Self {
        match label {
            LabelCol::None => Rows { cols: total_cols, features: raw, labels: Vec::new() },
            LabelCol::Last => {
                let cols = total_cols - 1;
                let n = raw.len() / total_cols;
                let mut features = Vec::with_capacity(n * cols);
                let mut labels = Vec::with_capacity(n);
                for r in raw.chunks_exact(total_cols) {
                    features.extend_from_slice(&r[..cols]);
                    labels.push(r[cols]);
                }
                Rows { cols, features, labels }
            }
        }
    }
}

/// Feature columns of rows of `cols` columns under `label`, or an error naming `path` if
/// there would be none.
pub(crate) fn feature_cols(path: &std::path::Path, cols: u64, label: LabelCol) -> Result<u64, DataError> {
    match label {
        LabelCol::None => Ok(cols),
        LabelCol::Last if cols < 2 => Err(DataError::NoFeatures { path: path.to_path_buf(), cols }),
        LabelCol::Last => Ok(cols - 1),
    }
}

/// The bytes of inner worker `inner` of `inners` in function `worker` of `workers`, of the
/// data in bytes `data` (after any header) read by byte ranges: the function's [`share`],
/// then the inner worker's.
pub(crate) fn byte_part(data: Range<u64>, worker: u64, workers: u64, inner: u64, inners: u64) -> Range<u64> {
    let f = share(data.end - data.start, workers, worker);
    let i = share(f.end - f.start, inners, inner);
    let at = data.start + f.start;
    at + i.start..at + i.end
}

/// The contiguous share `index` of `n` items split into `parts` (sizes differ by at most one).
pub fn share(n: u64, parts: u64, index: u64) -> Range<u64> {
    let start = n * index / parts;
    let end = n * (index + 1) / parts;
    start..end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_every_row_once() {
        for n in [0u64, 1, 7, 100, 1001] {
            for parts in 1..9u64 {
                let mut next = 0;
                for i in 0..parts {
                    let r = share(n, parts, i);
                    assert_eq!(r.start, next);
                    assert!(r.end - r.start <= n / parts + 1);
                    next = r.end;
                }
                assert_eq!(next, n);
            }
        }
    }
}
