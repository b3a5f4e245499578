//! Per-row outputs (k-means labels) written by each function straight to their destination,
//! never through the function's response (a Lambda response is capped at 6 MB, about three
//! million labels as JSON) and never gathered by the driver.
//!
//! The destination is a path every function can write (the driver's temporary file next to
//! `--labels-out`, which the driver renames into place once the job succeeded), or a
//! temporary `s3://` key the driver assembles into the `--labels-out` object:
//! - `.npy`: one file of `int32` labels with a fixed [`NPY_HEADER_BYTES`]-byte header; each
//!   function writes its labels in place at its first global row (known from the census),
//!   and function 0 writes the header (the row count is known from the census too);
//! - `.csv`: each function writes its own part file ([`part_path`]), one label per line;
//!   the driver joins the parts in function order.
//! - `s3://` (either format): each function writes its part object ([`part_path`]), function
//!   0's starting with the `.npy` header; the driver concatenates the parts in function order
//!   ([`crate::data::object::S3Store::concat`]).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use crate::data::object::{S3Connector, S3Url};

/// The header of a labels `.npy`: fixed so that row `r` is at `NPY_HEADER_BYTES + 4 r`.
pub const NPY_HEADER_BYTES: u64 = 128;

/// A labels destination that cannot be written: one line naming it.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the labels to {path}: {error}")]
pub struct LabelsError {
    pub path: String,
    pub error: String,
}

impl crate::function::Classify for LabelsError {
    fn kind(&self) -> crate::task::FailureKind {
        crate::task::FailureKind::Host
    }
}

/// The `.npy` header of `rows` int32 labels, padded to [`NPY_HEADER_BYTES`].
pub fn npy_header(rows: u64) -> Vec<u8> {
    let dict = format!("{{'descr': '<i4', 'fortran_order': False, 'shape': ({rows},), }}");
    let mut h = b"\x93NUMPY\x01\x00".to_vec();
    let len = NPY_HEADER_BYTES as usize - 10;
    h.extend_from_slice(&(len as u16).to_le_bytes());
    h.extend_from_slice(dict.as_bytes());
    h.resize(NPY_HEADER_BYTES as usize - 1, b' ');
    h.push(b'\n');
    h
}

/// Function `function`'s part of a CSV destination.
pub fn part_path(dest: &str, function: u32) -> String {
    format!("{dest}.part-{function:05}")
}

/// The labels as `.npy` data (little-endian `int32`, no header).
fn npy_bytes(labels: &[u32]) -> Vec<u8> {
    labels.iter().flat_map(|&l| (l as i32).to_le_bytes()).collect()
}

/// The labels as CSV lines.
fn csv_bytes(labels: &[u32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(labels.len() * 3);
    for l in labels {
        writeln!(out, "{l}").expect("writing to memory");
    }
    out
}

/// Writes function `function`'s `labels`, rows `offset..` of `total`, to `dest` (a path, or
/// an `s3://` key reached through `s3`).
pub fn write(
    dest: &str,
    function: u32,
    offset: u64,
    total: u64,
    labels: &[u32],
    s3: &S3Connector,
) -> Result<(), LabelsError> {
    let npy = Path::new(dest).extension().is_some_and(|e| e.eq_ignore_ascii_case("npy"));
    let path = if npy && !S3Url::is_s3(dest) { dest.to_string() } else { part_path(dest, function) };
    let err = |error: &dyn std::fmt::Display| LabelsError { path: path.clone(), error: error.to_string() };
    if S3Url::is_s3(dest) {
        let mut bytes = if npy && function == 0 { npy_header(total) } else { Vec::new() };
        bytes.extend(if npy { npy_bytes(labels) } else { csv_bytes(labels) });
        let url = S3Url::parse(&path).map_err(|e| err(&e))?;
        s3.store().and_then(|s| s.put_bytes(&url, bytes)).map_err(|e| {
            // The object store's errors start with the object's address already.
            let e = e.to_string();
            err(&e.strip_prefix(&format!("{path}: ")).unwrap_or(&e))
        })?;
    } else if npy {
        use std::os::unix::fs::FileExt;
        let f = OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(|e| err(&e))?;
        if function == 0 {
            f.write_all_at(&npy_header(total), 0).map_err(|e| err(&e))?;
        }
        f.write_all_at(&npy_bytes(labels), NPY_HEADER_BYTES + 4 * offset).map_err(|e| err(&e))?;
        f.sync_data().map_err(|e| err(&e))?;
    } else {
        let mut f = std::fs::File::create(&path).map_err(|e| err(&e))?;
        f.write_all(&csv_bytes(labels)).map_err(|e| err(&e))?;
        f.sync_data().map_err(|e| err(&e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Functions writing out of order give the file numpy's writer (npyz) reads back as the
    /// labels in row order.
    #[test]
    fn functions_writing_in_place_give_one_valid_npy() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("l.npy").display().to_string();
        let all: Vec<u32> = (0..1000).map(|i| i * 7 % 13).collect();
        for (f, range) in [(2u32, 700..1000), (0, 0..300), (1, 300..700)] {
            write(&dest, f, range.start as u64, 1000, &all[range], &S3Connector::default()).unwrap();
        }
        let bytes = std::fs::read(&dest).unwrap();
        let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
        assert_eq!(npy.shape(), &[1000]);
        let got: Vec<i32> = npy.into_vec().unwrap();
        assert_eq!(got, all.iter().map(|&l| l as i32).collect::<Vec<_>>());
        assert_eq!(bytes.len() as u64, NPY_HEADER_BYTES + 4000);
    }
}
