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
pub mod local;
pub mod object;
mod ranged;
pub mod s3;
pub mod sample;
mod source;

pub use source::{read_table, Data, RowSource};

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
