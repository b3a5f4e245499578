//! Local data files ([`DataFile`]): 2-D `.npy` files (float32 or float64, C order) and
//! CSV files (any delimiter, optionally a header line, see [`CsvFormat`]) with a row index,
//! optionally with the label in the last column, read by row ranges; plus the `.npy` header
//! and CSV record parsing the S3 reader shares.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};

use npyz::{DType, NpyFile, Order, TypeStr};

use super::{CsvFormat, DataError, LabelCol, Rows};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Npy { offset: u64, f64: bool },
    Csv,
}

/// Rows between two entries of a CSV's row index: reading from row `r` parses from the
/// indexed row at or before it, so at most this many rows are tokenised and skipped.
const CSV_INDEX_STRIDE: u64 = 1024;

/// An opened data file: its shape is known, rows are read on demand.
#[derive(Clone, Debug)]
pub struct DataFile {
    path: PathBuf,
    format: Format,
    rows: u64,
    /// Columns per row, label included.
    cols: u64,
    /// CSV: the byte offset of every [`CSV_INDEX_STRIDE`]-th row, found by the pass that
    /// counts the rows, so that any row range is read from near its start (by each inner
    /// worker in parallel, straight into its shard) instead of from the top of the file.
    csv_index: Vec<u64>,
    csv: CsvFormat,
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> DataError + '_ {
    move |error| DataError::Io { path: path.to_path_buf(), error }
}

impl DataFile {
    /// Opens `path` (a CSV without header, comma-separated, or an `.npy`) and reads its shape.
    pub fn open(path: &Path) -> Result<Self, DataError> {
        Self::open_as(path, CsvFormat::default())
    }

    /// Opens `path` and reads its shape (the header of a `.npy`, one pass over a CSV laid out
    /// as `csv` says).
    pub fn open_as(path: &Path, csv: CsvFormat) -> Result<Self, DataError> {
        let ext = path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase());
        let mut csv_index = Vec::new();
        let (format, rows, cols) = match ext.as_deref() {
            Some("npy") => Self::open_npy(path)?,
            Some("csv") => Self::open_csv(path, csv, &mut csv_index)?,
            _ => return Err(DataError::Extension { path: path.to_path_buf() }),
        };
        if rows == 0 || cols == 0 {
            return Err(DataError::Empty { path: path.to_path_buf() });
        }
        Ok(Self { path: path.to_path_buf(), format, rows, cols, csv_index, csv })
    }

    /// Whether the file is a CSV rather than an `.npy`.
    pub fn is_csv(&self) -> bool {
        self.format == Format::Csv
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn rows(&self) -> u64 {
        self.rows
    }
    /// Columns per row, label included.
    pub fn cols(&self) -> u64 {
        self.cols
    }

    /// Feature columns under `label`, or an error if there would be none.
    pub fn feature_cols(&self, label: LabelCol) -> Result<u64, DataError> {
        match label {
            LabelCol::None => Ok(self.cols),
            LabelCol::Last if self.cols < 2 => Err(DataError::NoFeatures { path: self.path.clone(), cols: self.cols }),
            LabelCol::Last => Ok(self.cols - 1),
        }
    }

    fn open_npy(path: &Path) -> Result<(Format, u64, u64), DataError> {
        let file = File::open(path).map_err(io_err(path))?;
        let len = file.metadata().map_err(io_err(path))?.len();
        let mut r = BufReader::new(file);
        let mut head = vec![0u8; NPY_HEAD_BYTES as usize];
        let got = read_up_to(&mut r, &mut head).map_err(io_err(path))?;
        head.truncate(got);
        let need = npy_header_len(path, &head)?;
        if need > head.len() as u64 {
            // A header longer than the first read (rare): read the rest of it.
            let mut rest = vec![0u8; (need - head.len() as u64) as usize];
            let got = read_up_to(&mut r, &mut rest).map_err(io_err(path))?;
            head.extend_from_slice(&rest[..got]);
        }
        parse_npy_header(path, &head, len)
    }

    fn open_csv(path: &Path, csv: CsvFormat, index: &mut Vec<u64>) -> Result<(Format, u64, u64), DataError> {
        let start = csv_data_start(path, csv)?;
        let mut rdr = csv_reader(path, start, false, csv)?;
        let mut rec = csv::ByteRecord::new();
        let (mut rows, mut cols) = (0u64, 0u64);
        loop {
            match rdr.read_byte_record(&mut rec) {
                Ok(false) => break,
                Ok(true) => {
                    if rows == 0 {
                        cols = rec.len() as u64;
                    }
                    if rows % CSV_INDEX_STRIDE == 0 {
                        index.push(start + rec.position().map_or(0, |p| p.byte()));
                    }
                    rows += 1;
                }
                Err(e) => return Err(csv_error(path, e)),
            }
        }
        Ok((Format::Csv, rows, cols))
    }

    /// Reads rows `range` (all columns, label included) as f32.
    pub fn read_raw(&self, range: Range<u64>) -> Result<Vec<f32>, DataError> {
        assert!(range.end <= self.rows, "row range {range:?} beyond {} rows", self.rows);
        let cols = self.cols as usize;
        let n = (range.end - range.start) as usize;
        if n == 0 {
            // Also keeps an empty range at the end of a CSV off the row index (no entry there).
            return Ok(Vec::new());
        }
        let path = &self.path;
        let raw = match self.format {
            Format::Npy { offset, f64 } => {
                use std::io::{Seek, SeekFrom};
                let size = if f64 { 8 } else { 4 };
                let mut f = File::open(path).map_err(io_err(path))?;
                f.seek(SeekFrom::Start(offset + range.start * self.cols * size)).map_err(io_err(path))?;
                let mut bytes = vec![0u8; n * cols * size as usize];
                f.read_exact(&mut bytes)
                    .map_err(|e| DataError::Truncated { path: path.clone(), reason: e.to_string() })?;
                if f64 {
                    bytes.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap()) as f32).collect()
                } else {
                    bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
                }
            }
            Format::Csv => {
                // From the indexed row at or before the range's start.
                let at = (range.start / CSV_INDEX_STRIDE) as usize;
                let mut row = at as u64 * CSV_INDEX_STRIDE;
                let mut rdr = csv_reader(path, self.csv_index[at], true, self.csv)?;
                let mut rec = csv::ByteRecord::new();
                let mut out = Vec::with_capacity(n * cols);
                while row < range.end {
                    match rdr.read_byte_record(&mut rec) {
                        Ok(true) => {}
                        Ok(false) => {
                            let reason = format!("it ends at row {row} of the {} it held when opened", self.rows);
                            return Err(DataError::Truncated { path: path.clone(), reason });
                        }
                        Err(e) => return Err(csv_error(path, e)),
                    }
                    if row >= range.start {
                        if rec.len() != cols {
                            return Err(DataError::Ragged {
                                path: path.clone(),
                                row: row + 1,
                                got: rec.len(),
                                expected: cols,
                            });
                        }
                        parse_record(path, row, &rec, &mut out)?;
                    }
                    row += 1;
                }
                out
            }
        };
        // Values must be finite: check after the f32 conversion (f64 overflow becomes inf).
        if let Some(i) = raw.iter().position(|v| !v.is_finite()) {
            return Err(DataError::NotFinite {
                path: path.clone(),
                row: range.start + (i / cols) as u64 + 1,
                col: i % cols + 1,
                value: raw[i] as f64,
            });
        }
        Ok(raw)
    }

    /// Reads rows `range` split into features and labels.
    pub fn read(&self, range: Range<u64>, label: LabelCol) -> Result<Rows, DataError> {
        self.feature_cols(label)?;
        Ok(Rows::from_raw(self.read_raw(range)?, self.cols as usize, label))
    }
}

/// Bytes read first from a `.npy` (local or S3): enough for any ordinary header.
pub(crate) const NPY_HEAD_BYTES: u64 = 64 << 10;

/// The length of a `.npy` header (magic, version, header) from the file's first bytes.
pub(crate) fn npy_header_len(path: &Path, pre: &[u8]) -> Result<u64, DataError> {
    let bad = |reason: String| DataError::NpyHeader { path: path.to_path_buf(), reason };
    if pre.len() < 10 || &pre[..6] != b"\x93NUMPY" {
        return Err(bad("missing the \\x93NUMPY magic string".into()));
    }
    match pre[6] {
        1 => Ok(10 + u16::from_le_bytes([pre[8], pre[9]]) as u64),
        2 | 3 if pre.len() >= 12 => Ok(12 + u32::from_le_bytes([pre[8], pre[9], pre[10], pre[11]]) as u64),
        v => Err(bad(format!("unsupported format version {v}"))),
    }
}

/// Checks a `.npy` header (`head` holds at least the whole header) against the file's
/// length `len` and returns its format, rows and columns.
pub(crate) fn parse_npy_header(path: &Path, head: &[u8], len: u64) -> Result<(Format, u64, u64), DataError> {
    let bad = |reason: String| DataError::NpyHeader { path: path.to_path_buf(), reason };
    let offset = npy_header_len(path, head)?;
    check_shape_product(head).map_err(bad)?;
    let npy = NpyFile::new(head).map_err(|e| bad(e.to_string().lines().next().unwrap_or_default().to_string()))?;
    let dtype = match npy.dtype() {
        DType::Plain(ts) => ts,
        other => return Err(DataError::Dtype { path: path.to_path_buf(), dtype: other.descr() }),
    };
    let f64 = match is_float(&dtype) {
        Some(f) => f,
        None => return Err(DataError::Dtype { path: path.to_path_buf(), dtype: dtype.to_string() }),
    };
    let shape = npy.shape().to_vec();
    if shape.len() != 2 {
        return Err(DataError::Dims { path: path.to_path_buf(), ndim: shape.len(), shape });
    }
    if npy.order() == Order::Fortran && shape[0] > 1 && shape[1] > 1 {
        return Err(DataError::FortranOrder { path: path.to_path_buf() });
    }
    // A crafted header can promise more values than any file holds: checked arithmetic.
    let need = shape[0]
        .checked_mul(shape[1])
        .and_then(|v| v.checked_mul(if f64 { 8 } else { 4 }))
        .and_then(|b| b.checked_add(offset));
    if shape[1] > u32::MAX as u64 {
        return Err(bad(format!("{} columns is more than a data set can have ({})", shape[1], u32::MAX)));
    }
    if need.is_none_or(|need| len < need) {
        let need = need.map_or("more than 2^64".to_string(), |n| n.to_string());
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            reason: format!(
                "the header promises {} × {} values ({need} bytes) but the file has {len} bytes",
                shape[0], shape[1]
            ),
        });
    }
    Ok((Format::Npy { offset, f64 }, shape[0], shape[1]))
}

/// Refuses a header whose `shape` has more values than 2^64 before npyz multiplies them (it
/// would overflow: a panic in debug builds, a wrong size in release builds).
fn check_shape_product(head: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(head);
    let Some(at) = text.find("'shape'") else { return Ok(()) };
    let tuple = text[at..].split_once('(').and_then(|(_, r)| r.split_once(')')).map(|(t, _)| t);
    let Some(tuple) = tuple else { return Ok(()) };
    let mut product: u64 = 1;
    for dim in tuple.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let Ok(d) = dim.parse::<u64>() else { return Ok(()) };
        product = product
            .checked_mul(d)
            .ok_or_else(|| format!("the shape ({tuple}) has more values than any file can hold"))?;
    }
    Ok(())
}

fn is_float(t: &TypeStr) -> Option<bool> {
    match t.to_string().as_str() {
        "<f4" | "|f4" => Some(false),
        "<f8" | "|f8" => Some(true),
        _ => None,
    }
}

pub(crate) fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

/// A CSV reader from byte `offset` (the start of a row). `flexible`: rows of any length are
/// returned (the caller checks them against the file's columns); otherwise a row unlike the
/// first is an error.
fn csv_reader(
    path: &Path,
    offset: u64,
    flexible: bool,
    csv: CsvFormat,
) -> Result<csv::Reader<BufReader<File>>, DataError> {
    use std::io::{Seek, SeekFrom};
    let mut f = File::open(path).map_err(io_err(path))?;
    f.seek(SeekFrom::Start(offset)).map_err(io_err(path))?;
    Ok(csv.reader(flexible).from_reader(BufReader::with_capacity(1 << 16, f)))
}

/// The byte where a CSV's data rows start: after its header line when `csv` says it has one
/// (the file's end when that line is all there is).
pub(super) fn csv_data_start(path: &Path, csv: CsvFormat) -> Result<u64, DataError> {
    let mut r = BufReader::new(File::open(path).map_err(io_err(path))?);
    let (mut at, mut line) = (0u64, Vec::new());
    loop {
        if let Some(end) = csv.data_start(&line) {
            return Ok(at + end);
        }
        at += line.len() as u64;
        line.clear();
        if r.read_until(b'\n', &mut line).map_err(io_err(path))? == 0 {
            return Ok(at);
        }
    }
}

pub(crate) fn csv_error(path: &Path, e: csv::Error) -> DataError {
    match e.kind() {
        csv::ErrorKind::UnequalLengths { pos, expected_len, len } => DataError::Ragged {
            path: path.to_path_buf(),
            row: pos.as_ref().map(|p| p.record() + 1).unwrap_or(0),
            got: *len as usize,
            expected: *expected_len as usize,
        },
        _ => DataError::Io { path: path.to_path_buf(), error: std::io::Error::other(e.to_string()) },
    }
}

/// Parses one CSV record of numbers into `out`; `row` is 0-based.
pub fn parse_record(path: &Path, row: u64, rec: &csv::ByteRecord, out: &mut Vec<f32>) -> Result<(), DataError> {
    for (c, cell) in rec.iter().enumerate() {
        let v = std::str::from_utf8(cell).ok().and_then(fast_float_parse);
        match v {
            Some(v) => out.push(v),
            None => {
                return Err(DataError::NotANumber {
                    path: path.to_path_buf(),
                    row: row + 1,
                    col: c + 1,
                    // Shown on one line: control characters (a quoted newline) escaped.
                    cell: String::from_utf8_lossy(cell).chars().take(40).flat_map(char::escape_debug).collect(),
                });
            }
        }
    }
    Ok(())
}

fn fast_float_parse(s: &str) -> Option<f32> {
    // Rust's parser is correctly rounded; parse as f64 first so that values written from
    // float64 data round the same way numpy's astype(float32) does.
    s.parse::<f64>().ok().map(|v| v as f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use npyz::WriterBuilder as _;
    use std::io::Write;

    fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.path().join(name);
        File::create(&p).unwrap().write_all(bytes).unwrap();
        p
    }

    #[test]
    fn csv_rows_and_labels() {
        let d = tempfile::tempdir().unwrap();
        let p = write(&d, "a.csv", b"1, 2, 0\n3,4.5,1\n-1e3,6,0");
        let f = DataFile::open(&p).unwrap();
        assert_eq!((f.rows(), f.cols()), (3, 3));
        let r = f.read(1..3, LabelCol::Last).unwrap();
        assert_eq!(r.features, vec![3.0, 4.5, -1000.0, 6.0]);
        assert_eq!(r.labels, vec![1.0, 0.0]);
    }

    /// A header line (after blank lines) is skipped, any delimiter splits the cells, and rows in
    /// errors are counted after the header; a header alone is no data.
    #[test]
    fn csv_header_and_delimiter() {
        let d = tempfile::tempdir().unwrap();
        let semi = CsvFormat { header: true, delimiter: b';' };
        let p = write(&d, "h.csv", b"\n\"a;b\";c;label\r\n1; 2;0\n\n3;4.5;1\n-1e3;6;0");
        let f = DataFile::open_as(&p, semi).unwrap();
        assert_eq!((f.rows(), f.cols()), (3, 3));
        let r = f.read(1..3, LabelCol::Last).unwrap();
        assert_eq!((r.features, r.labels), (vec![3.0, 4.5, -1000.0, 6.0], vec![1.0, 0.0]));
        let tab = CsvFormat { header: false, delimiter: b'\t' };
        let p = write(&d, "t.csv", b"1\t2\n3\tx\n");
        let e = DataFile::open_as(&p, tab).unwrap().read_raw(0..2).unwrap_err().to_string();
        assert!(e.ends_with("t.csv row 2 column 2: 'x' is not a number"), "{e}");
        let p = write(&d, "h2.csv", b"a,b\n1,2\n3,x\n");
        let e = DataFile::open_as(&p, CsvFormat { header: true, ..CsvFormat::default() })
            .unwrap()
            .read_raw(0..2)
            .unwrap_err()
            .to_string();
        assert!(e.ends_with("h2.csv row 2 column 2: 'x' is not a number"), "{e}");
        for only_header in [&b"a,b\n"[..], b"a,b", b""] {
            let p = write(&d, "o.csv", only_header);
            let e = DataFile::open_as(&p, CsvFormat { header: true, ..CsvFormat::default() }).unwrap_err().to_string();
            assert!(e.ends_with("o.csv holds no rows"), "{only_header:?}: {e}");
        }
        // A header over a file larger than one index stride: every range as without it.
        let body: String = (0..2 * CSV_INDEX_STRIDE + 3).map(|r| format!("{r};{}\n", r % 4)).collect();
        let plain = DataFile::open_as(&write(&d, "p.csv", body.as_bytes()), CsvFormat { header: false, ..semi });
        let headed = DataFile::open_as(&write(&d, "q.csv", format!("x;y\n{body}").as_bytes()), semi);
        let (plain, headed) = (plain.unwrap(), headed.unwrap());
        assert_eq!(headed.rows(), plain.rows());
        for range in [0..3, CSV_INDEX_STRIDE - 2..CSV_INDEX_STRIDE + 9, 0..plain.rows()] {
            assert_eq!(headed.read_raw(range.clone()).unwrap(), plain.read_raw(range.clone()).unwrap(), "{range:?}");
        }
    }

    /// Ranges read from the row index (starting between indexed rows, spanning several
    /// strides, at the very end) equal the same rows of one pass from the top, across uneven
    /// line lengths, CRLF line ends and blank lines; errors still name the absolute row.
    #[test]
    fn csv_ranges_read_from_the_row_index() {
        let d = tempfile::tempdir().unwrap();
        let n = 3 * CSV_INDEX_STRIDE + 17;
        let mut text = String::new();
        for r in 0..n {
            let pad = "0".repeat((r % 7) as usize);
            text.push_str(&format!("{r}.5{pad}, {}{}", r % 3, if r % 5 == 0 { "\r\n" } else { "\n" }));
            if r % 250 == 0 {
                text.push('\n');
            }
        }
        let p = write(&d, "big.csv", text.as_bytes());
        let f = DataFile::open(&p).unwrap();
        assert_eq!((f.rows(), f.cols()), (n, 2));
        assert_eq!(f.csv_index.len(), 4);
        let all = f.read_raw(0..n).unwrap();
        for r in 0..n {
            assert_eq!(all[2 * r as usize], r as f32 + 0.5, "row {r}");
        }
        let s = CSV_INDEX_STRIDE;
        for range in [0..1, 5..9, s - 1..s + 1, s..2 * s, s + 3..3 * s + 5, 3 * s..n, n - 1..n] {
            let got = f.read_raw(range.clone()).unwrap();
            assert_eq!(got, all[2 * range.start as usize..2 * range.end as usize], "{range:?}");
        }
        let mut bad = text.clone().into_bytes();
        let at = text.match_indices('\n').nth(2 * s as usize + 20).unwrap().0 + 1;
        bad[at] = b'x';
        let p = write(&d, "bad.csv", &bad);
        let f = DataFile::open(&p).unwrap();
        let row = text[..at].lines().filter(|l| !l.trim().is_empty()).count() + 1;
        let e = f.read_raw(2 * s..n).unwrap_err().to_string();
        assert!(e.contains(&format!("bad.csv row {row} column 1: 'x")), "{e}");
        // A file of exactly one stride has no index entry at its end: an empty range there.
        let p = write(&d, "one.csv", "1,2\n".repeat(s as usize).as_bytes());
        assert_eq!(DataFile::open(&p).unwrap().read_raw(s..s).unwrap(), Vec::<f32>::new());
    }

    #[test]
    fn csv_errors_name_row_and_column() {
        let d = tempfile::tempdir().unwrap();
        let p = write(&d, "a.csv", b"1,2\n3,x\n");
        let e = DataFile::open(&p).unwrap().read(0..2, LabelCol::None).unwrap_err().to_string();
        assert!(e.ends_with("a.csv row 2 column 2: 'x' is not a number"), "{e}");
        let p = write(&d, "b.csv", b"1,2\n3\n");
        let e = DataFile::open(&p).unwrap_err().to_string();
        assert!(e.ends_with("b.csv row 2 has 1 columns, expected 2 like the first row"), "{e}");
        let p = write(&d, "c.csv", b"1,2\n3,nan\n");
        let e = DataFile::open(&p).unwrap().read(0..2, LabelCol::None).unwrap_err().to_string();
        assert!(e.ends_with("c.csv row 2 column 2: value NaN is not finite"), "{e}");
        let p = write(&d, "e.csv", b"");
        assert!(DataFile::open(&p).unwrap_err().to_string().ends_with("e.csv holds no rows"));
    }

    #[test]
    fn npy_f32_f64_and_header_errors() {
        let d = tempfile::tempdir().unwrap();
        let p32 = d.path().join("a.npy");
        npyz::to_file_1d(&p32, vec![0f32; 1]).unwrap();
        let e = DataFile::open(&p32).unwrap_err().to_string();
        assert!(e.contains("1-D array"), "{e}");

        let mut buf = Vec::new();
        let mut w = npyz::WriteOptions::new().default_dtype().shape(&[2, 3]).writer(&mut buf).begin_nd().unwrap();
        w.extend([1.0f64, 2.0, 3.0, 4.0, 5.0, 6.5]).unwrap();
        w.finish().unwrap();
        let p64 = write(&d, "b.npy", &buf);
        let f = DataFile::open(&p64).unwrap();
        assert_eq!((f.rows(), f.cols()), (2, 3));
        assert_eq!(f.read_raw(1..2).unwrap(), vec![4.0, 5.0, 6.5]);
        let cut = write(&d, "t.npy", &buf[..buf.len() - 4]);
        assert!(DataFile::open(&cut).unwrap_err().to_string().contains("is truncated"));

        let mut ibuf = Vec::new();
        let mut w = npyz::WriteOptions::new().default_dtype().shape(&[1, 2]).writer(&mut ibuf).begin_nd().unwrap();
        w.extend([1i32, 2]).unwrap();
        w.finish().unwrap();
        let pi = write(&d, "i.npy", &ibuf);
        let e = DataFile::open(&pi).unwrap_err().to_string();
        assert!(e.starts_with("unsupported dtype '<i4'"), "{e}");
        let bad = write(&d, "bad.npy", b"not numpy at all");
        assert!(DataFile::open(&bad).unwrap_err().to_string().contains("malformed .npy file"));
        let txt = write(&d, "x.txt", b"1");
        assert!(DataFile::open(&txt).unwrap_err().to_string().contains("expected a .npy or .csv"));
    }
}
