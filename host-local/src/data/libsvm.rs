//! LIBSVM / svmlight text, the format of sparse click and text data sets: one row per line,
//! `label idx:value idx:value ... [# comment]`, with `qid:n` ignored, indices strictly
//! increasing within a row, 1-based by default (LIBSVM's convention) or 0-based
//! ([`LibsvmFormat::zero_based`]). Rows are kept sparse ([`SparseRows`], CSR): a row of
//! 2^20 features with 30 non-zeros costs 30 entries, never a dense copy.
//!
//! Unbounded indices (hashed click logs) fit a fixed width with feature hashing
//! ([`LibsvmFormat::hash_bits`]): index `i` goes to `h(i) mod 2^bits` ([`hash_index`]), and
//! values that meet at one coordinate are added.
//!
//! A file is split like a CSV in S3 ([`super::s3`]): a part `[s, e)` of the bytes holds the
//! lines that start after the first newline at or after `s` (from byte 0 for the first part)
//! up to and including the line that crosses or starts at `e` (an empty part holds none), so
//! any number of parts reads every line once. Errors name the line of the file (1-based, counting blank and comment lines), found
//! only when there is an error.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::s3::ObjectData;

use super::DataError;

/// How to read the indices of a LIBSVM file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct LibsvmFormat {
    /// Indices start at 0 (default: at 1, LIBSVM's convention; scikit-learn's
    /// `load_svmlight_file` guesses from whether a 0 occurs).
    pub zero_based: bool,
    /// The number of features: an index at or beyond it (after the base) is an error.
    /// `None`: as many as the largest index needs.
    pub features: Option<u64>,
    /// Feature hashing into `2^bits` features, for unbounded indices.
    pub hash_bits: Option<u32>,
}

impl LibsvmFormat {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
    /// The width the rows have, when the format fixes it.
    pub fn width(&self) -> Option<u64> {
        self.hash_bits.map(|b| 1u64 << b).or(self.features)
    }
}

/// Rows in compressed sparse row form: row `r`'s entries are
/// `indices[indptr[r]..indptr[r + 1]]` (strictly increasing) and the same range of `values`.
#[derive(Clone, Debug, PartialEq)]
pub struct SparseRows {
    /// Features per row: the format's width, else one more than the largest index seen.
    pub width: u64,
    pub indptr: Vec<u64>,
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
    pub labels: Vec<f32>,
}

impl Default for SparseRows {
    fn default() -> Self {
        Self { width: 0, indptr: vec![0], indices: Vec::new(), values: Vec::new(), labels: Vec::new() }
    }
}

impl SparseRows {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// Stored entries (non-zeros, unless a value was written as 0).
    pub fn nnz(&self) -> usize {
        self.indices.len()
    }
    /// Row `r` as `(indices, values)`.
    pub fn row(&self, r: usize) -> (&[u32], &[f32]) {
        let span = self.indptr[r] as usize..self.indptr[r + 1] as usize;
        (&self.indices[span.clone()], &self.values[span])
    }
    /// The rows as dense row-major features (for small widths: tests, conversions).
    pub fn to_dense(&self) -> Vec<f32> {
        let w = self.width as usize;
        let mut out = vec![0f32; self.len() * w];
        for r in 0..self.len() {
            let (idx, val) = self.row(r);
            for (&i, &v) in idx.iter().zip(val) {
                out[r * w + i as usize] = v;
            }
        }
        out
    }
}

/// Parses lines into [`SparseRows`].
pub struct LineParser {
    format: LibsvmFormat,
    /// A hashed row's entries before they are sorted and merged.
    scratch: Vec<(u32, f32)>,
}

impl LineParser {
    pub fn new(format: LibsvmFormat) -> Self {
        Self { format, scratch: Vec::new() }
    }

    /// Appends the row on `line` (without its newline) to `out`; `Ok(false)` for a blank or
    /// comment-only line. The error is the reason alone; the caller names the line.
    pub fn parse(&mut self, line: &[u8], out: &mut SparseRows) -> Result<bool, String> {
        let text = std::str::from_utf8(line).map_err(|_| "it is not UTF-8 text".to_string())?;
        let text = text.split('#').next().unwrap_or("");
        let mut tokens = text.split_ascii_whitespace();
        let Some(label) = tokens.next() else { return Ok(false) };
        let label = number(label).ok_or_else(|| format!("label '{}' is not a number", shown(label)))?;
        let base = if self.format.zero_based { 0 } else { 1 };
        let start = out.indices.len();
        let mut last: Option<u64> = None;
        for token in tokens {
            let (index, value) =
                token.split_once(':').ok_or_else(|| format!("'{}' is not index:value", shown(token)))?;
            if index == "qid" {
                continue;
            }
            let raw: u64 =
                index.parse().map_err(|_| format!("feature index '{}' is not a whole number", shown(index)))?;
            if raw < base {
                let hint = if raw == 0 { " (a 0-based file: give --zero-based)" } else { "" };
                return Err(format!("feature index {raw} is below the first index {base}{hint}"));
            }
            if last.is_some_and(|l| raw <= l) {
                return Err(format!("feature indices must increase within a row: {} after {}", raw, last.unwrap()));
            }
            last = Some(raw);
            let value =
                number(value).ok_or_else(|| format!("value '{}' of feature {raw} is not a number", shown(value)))?;
            let i = raw - base;
            let i = match (self.format.hash_bits, self.format.features) {
                (Some(bits), _) => hash_index(i, bits),
                (None, Some(n)) if i >= n => {
                    return Err(format!("feature index {raw} is beyond --features {n}"));
                }
                (None, _) => {
                    u32::try_from(i).map_err(|_| format!("feature index {raw} is beyond 2^32 (use --hash-features)"))?
                }
            };
            if self.format.hash_bits.is_some() {
                self.scratch.push((i, value));
            } else {
                out.indices.push(i);
                out.values.push(value);
            }
        }
        if self.format.hash_bits.is_some() {
            // Entries that meet at one coordinate are added, in their order in the line.
            self.scratch.sort_by_key(|&(i, _)| i);
            for &(i, v) in &self.scratch {
                if out.indices.len() > start && out.indices.last() == Some(&i) {
                    *out.values.last_mut().unwrap() += v;
                } else {
                    out.indices.push(i);
                    out.values.push(v);
                }
            }
            self.scratch.clear();
        }
        let needed = out.indices[start..].last().map_or(0, |&i| i as u64 + 1);
        out.width = out.width.max(self.format.width().unwrap_or(needed)).max(needed);
        out.labels.push(label);
        out.indptr.push(out.indices.len() as u64);
        Ok(true)
    }
}

/// A finite number, parsed as f64 then rounded to f32 (as the CSV reader does).
fn number(s: &str) -> Option<f32> {
    s.parse::<f64>().ok().map(|v| v as f32).filter(|v| v.is_finite())
}

/// A token as shown in an error: at most 40 characters, control characters escaped.
fn shown(s: &str) -> String {
    s.chars().take(40).flat_map(char::escape_debug).collect()
}

/// The hashed coordinate of 0-based index `i` among `2^bits` (SplitMix64's finaliser: every
/// input bit moves every output bit, the same on every platform).
pub fn hash_index(i: u64, bits: u32) -> u32 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z & ((1u64 << bits) - 1)) as u32
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> DataError + '_ {
    move |error| DataError::Io { path: path.to_path_buf(), error }
}

/// Whether `location` (a path or an S3 key) names a LIBSVM file: `.svm`, `.libsvm` or
/// `.svmlight`, in any case.
pub fn is_libsvm(location: &str) -> bool {
    let ext = location.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    matches!(ext.as_deref(), Some("svm" | "libsvm" | "svmlight"))
}

/// Where a LIBSVM file's bytes are.
#[derive(Clone, Debug)]
enum Origin {
    Local(PathBuf),
    Object(ObjectData),
}

/// Bytes looked at first when searching for a line end (doubling while the line goes on).
const SEARCH_BYTES: u64 = 4 << 10;
/// Bytes before an error's line in an S3 object up to which its line number is counted (one
/// ranged GET); beyond, the error names the byte where the line starts.
const COUNT_LINES_MAX_BYTES: u64 = 64 << 20;

impl Origin {
    fn name(&self) -> PathBuf {
        match self {
            Origin::Local(p) => p.clone(),
            Origin::Object(o) => o.name().to_path_buf(),
        }
    }

    fn size(&self) -> Result<u64, DataError> {
        match self {
            Origin::Local(p) => Ok(std::fs::metadata(p).map_err(io_err(p))?.len()),
            Origin::Object(o) => Ok(o.size()),
        }
    }

    /// Bytes `range` (clamped to the end).
    fn bytes(&self, range: Range<u64>) -> Result<Vec<u8>, DataError> {
        match self {
            Origin::Local(p) => {
                let mut f = File::open(p).map_err(io_err(p))?;
                f.seek(SeekFrom::Start(range.start)).map_err(io_err(p))?;
                let mut out = Vec::new();
                f.take(range.end - range.start).read_to_end(&mut out).map_err(io_err(p))?;
                Ok(out)
            }
            Origin::Object(o) => Ok(o.get_range(range.start..range.end.min(o.size()))?.to_vec()),
        }
    }

    /// Where the part cut at `p` starts: just after the first newline at or after `p` (0 at
    /// the start, the size at or past the end). A line that starts at `p` thus belongs to the
    /// part before, which reads up to this same point.
    fn cut(&self, p: u64, size: u64) -> Result<u64, DataError> {
        if p == 0 || p >= size {
            return Ok(p.min(size));
        }
        let (mut at, mut step) = (p, SEARCH_BYTES);
        while at < size {
            let b = self.bytes(at..(at + step).min(size))?;
            if let Some(i) = memchr::memchr(b'\n', &b) {
                return Ok(at + i as u64 + 1);
            }
            at += b.len() as u64;
            step = (step * 2).min(1 << 20);
        }
        Ok(size)
    }

    /// A reader of bytes `range`.
    fn reader(&self, range: Range<u64>) -> Result<Box<dyn BufRead + Send>, DataError> {
        Ok(match self {
            Origin::Local(p) => {
                let mut f = File::open(p).map_err(io_err(p))?;
                f.seek(SeekFrom::Start(range.start)).map_err(io_err(p))?;
                Box::new(BufReader::with_capacity(1 << 16, f.take(range.end - range.start)))
            }
            Origin::Object(o) => Box::new(BufReader::with_capacity(1 << 16, o.range_reader(range))),
        })
    }

    /// The error for `reason` on the line starting at byte `at`: named by its 1-based line
    /// number (counted only now, when there is an error).
    fn error(&self, at: u64, reason: String) -> DataError {
        let path = self.name();
        if matches!(self, Origin::Object(_)) && at > COUNT_LINES_MAX_BYTES {
            return DataError::Libsvm { path, line: 0, reason: format!("(the line at byte {at}) {reason}") };
        }
        let line = self.bytes(0..at).map_or(0, |b| memchr::memchr_iter(b'\n', &b).count() as u64 + 1);
        DataError::Libsvm { path, line, reason }
    }
}

/// A LIBSVM file, local or in S3, whose width is known: from the format (`--features`,
/// `--hash-features`) or, for a local file whose format does not fix one, from a pass over it
/// for the largest index (as scikit-learn's `load_svmlight_file` does). Functions read it by
/// parts ([`PartReader`]).
#[derive(Clone, Debug)]
pub struct LibsvmFile {
    origin: Origin,
    size: u64,
    /// The format with `features` set whenever hashing is not: every part has this width.
    format: LibsvmFormat,
}

impl LibsvmFile {
    /// A local file.
    pub fn open(path: &Path, format: LibsvmFormat) -> Result<Self, DataError> {
        Self::open_origin(Origin::Local(path.to_path_buf()), format)
    }

    /// An S3 object (opened with [`ObjectData::open_text`]): its width must be given, a pass
    /// over the object to find it would read it all once more.
    pub fn open_object(object: ObjectData, format: LibsvmFormat) -> Result<Self, DataError> {
        if format.width().is_none() {
            return Err(DataError::Unsupported {
                path: object.name().to_path_buf(),
                reason: "give --features N (or --hash-features 2^K) for LIBSVM data in S3".into(),
            });
        }
        Self::open_origin(Origin::Object(object), format)
    }

    fn open_origin(origin: Origin, format: LibsvmFormat) -> Result<Self, DataError> {
        let size = origin.size()?;
        let mut file = Self { origin, size, format };
        if format.width().is_none() {
            // The width the rows need: one pass, keeping no rows.
            let mut r = file.open_part(0..size)?;
            let mut width = 0;
            loop {
                let mut chunk = SparseRows::default();
                if r.read_into(&mut chunk, 1 << 16)? == 0 {
                    break;
                }
                width = width.max(chunk.width);
            }
            file.format.features = Some(width);
        }
        if file.open_part(0..size)?.read_into(&mut SparseRows::default(), 1)? == 0 {
            return Err(DataError::Empty { path: file.origin.name() });
        }
        if file.width() == 0 {
            let reason = "no row has a feature: give --features N".into();
            return Err(DataError::Libsvm { path: file.origin.name(), line: 1, reason });
        }
        Ok(file)
    }

    /// The file's name in messages.
    pub fn path(&self) -> PathBuf {
        self.origin.name()
    }
    pub fn size(&self) -> u64 {
        self.size
    }
    /// The ETag of an S3 object (the version every function must read).
    pub fn etag(&self) -> Option<&str> {
        match &self.origin {
            Origin::Object(o) => o.etag(),
            Origin::Local(_) => None,
        }
    }
    /// The feature columns every row has.
    pub fn width(&self) -> u64 {
        self.format.width().unwrap_or(0)
    }
    /// The format with the width fixed, as functions must read the file.
    pub fn format(&self) -> LibsvmFormat {
        self.format
    }
    /// The reader of part `bytes` (its lines as the module doc says).
    pub fn open_part(&self, bytes: Range<u64>) -> Result<PartReader, DataError> {
        let start = self.origin.cut(bytes.start, self.size)?;
        let end = self.origin.cut(bytes.end, self.size)?.max(start);
        Ok(PartReader {
            origin: self.origin.clone(),
            r: self.origin.reader(start..end)?,
            parser: LineParser::new(self.format),
            width: self.format.width().unwrap_or(0),
            start,
            at: start,
            end,
            line: Vec::new(),
        })
    }
}

/// The rows of one part of a LIBSVM file, a chunk at a time: no more than a chunk is held.
pub struct PartReader {
    origin: Origin,
    r: Box<dyn BufRead + Send>,
    parser: LineParser,
    width: u64,
    start: u64,
    /// The byte of the file where the next line starts.
    at: u64,
    end: u64,
    line: Vec<u8>,
}

impl PartReader {
    /// Appends up to `max_rows` rows to `out`; returns how many (0 at the end of the part).
    pub fn read_into(&mut self, out: &mut SparseRows, max_rows: usize) -> Result<usize, DataError> {
        out.width = out.width.max(self.width);
        let mut rows = 0;
        while rows < max_rows && self.at < self.end {
            self.line.clear();
            let n = self
                .r
                .read_until(b'\n', &mut self.line)
                .map_err(|error| DataError::Io { path: self.origin.name(), error })?;
            if n == 0 {
                break;
            }
            let text = self.line.strip_suffix(b"\n").unwrap_or(&self.line);
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            match self.parser.parse(text, out) {
                Ok(row) => rows += usize::from(row),
                Err(reason) => return Err(self.origin.error(self.at, reason)),
            }
            self.at += n as u64;
        }
        Ok(rows)
    }

    /// Bytes of the part read so far.
    pub fn fetched(&self) -> u64 {
        self.at - self.start
    }

    /// The part's rows in all, estimated from `read` rows in the bytes read so far.
    pub fn rows_hint(&self, read: u64) -> u64 {
        let consumed = self.fetched();
        if read == 0 || consumed == 0 {
            return read;
        }
        let remaining = self.end.saturating_sub(self.at);
        read + (remaining as f64 * read as f64 / consumed as f64 * 1.02).ceil() as u64
    }
}

/// Reads the rows of part `bytes` of a local LIBSVM file (see the module doc for which lines
/// a part holds).
pub fn read_part(path: &Path, bytes: Range<u64>, format: LibsvmFormat) -> Result<SparseRows, DataError> {
    let origin = Origin::Local(path.to_path_buf());
    let size = origin.size()?;
    let file = LibsvmFile { origin, size, format };
    let mut out = SparseRows { width: format.width().unwrap_or(0), ..SparseRows::default() };
    file.open_part(bytes.start.min(size)..bytes.end.min(size))?.read_into(&mut out, usize::MAX)?;
    Ok(out)
}

/// Reads every row of a local LIBSVM file.
pub fn read_file(path: &Path, format: LibsvmFormat) -> Result<SparseRows, DataError> {
    read_part(path, 0..u64::MAX, format)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(format: LibsvmFormat, text: &str) -> Result<SparseRows, String> {
        let mut p = LineParser::new(format);
        let mut out = SparseRows { width: format.width().unwrap_or(0), ..SparseRows::default() };
        for line in text.lines() {
            p.parse(line.as_bytes(), &mut out)?;
        }
        Ok(out)
    }

    /// Labels, sparse entries, `qid`, comments and blank lines, against the matrix written
    /// out by hand; the same rows 0-based.
    #[test]
    fn rows_labels_qid_and_comments() {
        let text = "1 qid:3 1:0.5 4:-2 # a comment\n\n# only a comment\n-1 2:1e-3\n0\n2.5 3:7 5:1\n";
        let m = parse(LibsvmFormat::default(), text).unwrap();
        assert_eq!(m.labels, [1.0, -1.0, 0.0, 2.5]);
        assert_eq!(m.width, 5);
        assert_eq!(m.indptr, [0, 2, 3, 3, 5]);
        #[rustfmt::skip]
        let dense = [
            0.5, 0.0, 0.0, -2.0, 0.0,
            0.0, 1e-3, 0.0, 0.0, 0.0,
            0.0, 0.0, 0.0, 0.0, 0.0,
            0.0, 0.0, 7.0, 0.0, 1.0,
        ];
        assert_eq!(m.to_dense(), dense);
        let zero = parse(LibsvmFormat { zero_based: true, ..Default::default() }, "1 0:2 4:3\n").unwrap();
        assert_eq!((zero.width, zero.to_dense()), (5, vec![2.0, 0.0, 0.0, 0.0, 3.0]));
        let wide = parse(LibsvmFormat { features: Some(8), ..Default::default() }, "1 2:1\n").unwrap();
        assert_eq!(wide.width, 8);
    }

    /// Each kind of bad line gets a reason naming the offending token.
    #[test]
    fn bad_lines_name_the_token() {
        let f = LibsvmFormat { features: Some(10), ..Default::default() };
        for (line, want) in [
            ("x 1:2", "label 'x' is not a number"),
            ("1,2 1:2", "label '1,2' is not a number"),
            ("1 3", "'3' is not index:value"),
            ("1 a:2", "feature index 'a' is not a whole number"),
            ("1 -1:2", "feature index '-1' is not a whole number"),
            ("1 3:x", "value 'x' of feature 3 is not a number"),
            ("1 3:inf", "value 'inf' of feature 3 is not a number"),
            ("1 4:1 2:1", "feature indices must increase within a row: 2 after 4"),
            ("1 4:1 4:1", "feature indices must increase within a row: 4 after 4"),
            ("1 11:1", "feature index 11 is beyond --features 10"),
            ("1 0:1", "feature index 0 is below the first index 1 (a 0-based file: give --zero-based)"),
        ] {
            assert_eq!(parse(f, line).unwrap_err(), want, "{line}");
        }
        assert!(parse(f, "1 10:1").is_ok(), "the last of 10 features, 1-based");
    }

    /// Hashing maps every index below 2^bits, adds values that collide, keeps rows sorted.
    #[test]
    fn hashed_rows_are_sorted_and_collisions_add() {
        let bits = 3;
        let f = LibsvmFormat { hash_bits: Some(bits), ..Default::default() };
        let line: String = (1..=40u64).map(|i| format!(" {i}:{i}")).collect();
        let m = parse(f, &format!("1{line}")).unwrap();
        assert_eq!(m.width, 8);
        let (idx, val) = m.row(0);
        assert!(idx.windows(2).all(|w| w[0] < w[1]), "{idx:?}");
        let mut want = [0f32; 8];
        for i in 1..=40u64 {
            want[hash_index(i - 1, bits) as usize] += i as f32;
        }
        let got: Vec<(u32, f32)> = idx.iter().copied().zip(val.iter().copied()).collect();
        let want: Vec<(u32, f32)> = (0..8).filter(|&c| want[c] != 0.0).map(|c| (c as u32, want[c])).collect();
        assert_eq!(got, want);
        // The hash spreads consecutive indices: 10,000 of them fill 2^10 buckets evenly.
        let mut counts = [0u32; 1024];
        for i in 0..10_000u64 {
            counts[hash_index(i, 10) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| (1..=30).contains(&c)), "{:?}", counts.iter().max());
    }

    /// Parts of a file (uneven lines, CRLF, blank and comment lines, no final newline) cover
    /// every row once for any number of parts; errors name the line of the file whatever the
    /// part.
    #[test]
    fn parts_read_every_row_once_and_errors_name_the_line() {
        let d = tempfile::tempdir().unwrap();
        let mut text = String::new();
        for r in 0..300u64 {
            let entries: String = (1..=r % 13).map(|k| format!(" {}:{k}", k * 3)).collect();
            text.push_str(&format!("{r}{entries}{}", if r % 7 == 0 { "\r\n" } else { "\n" }));
            if r % 50 == 0 {
                text.push_str("\n# a comment\n");
            }
        }
        text.pop();
        let p = d.path().join("a.svm");
        std::fs::write(&p, &text).unwrap();
        let whole = read_file(&p, LibsvmFormat::default()).unwrap();
        assert_eq!((whole.len(), whole.width), (300, 36));
        let want: Vec<f32> = (0..300).map(|r| r as f32).collect();
        for parts in 1..=9u64 {
            let mut got = SparseRows::default();
            for i in 0..parts {
                let part = read_part(&p, super::super::share(text.len() as u64, parts, i), Default::default()).unwrap();
                got.labels.extend(&part.labels);
                got.indices.extend(&part.indices);
            }
            assert_eq!(got.labels, want, "{parts} parts: labels");
            assert_eq!(got.indices, whole.indices, "{parts} parts: entries");
        }
        // Every cut point of two parts and of three (a cut at a line's first byte, on a newline,
        // inside a \r\n, and empty parts), and cuts past the end.
        let small: String = text.split_inclusive('\n').take(24).collect();
        let want_small: Vec<f32> =
            (small.lines()).filter_map(|l| l.split(' ').next().and_then(|t| t.trim().parse::<f32>().ok())).collect();
        assert_eq!(want_small.len(), 22);
        let q = d.path().join("small.svm");
        std::fs::write(&q, &small).unwrap();
        let len = small.len() as u64;
        for a in 0..=len + 2 {
            for b in [a, a + 1, a + 7, len] {
                let mut labels = Vec::new();
                for r in [0..a, a..b.max(a), b.max(a)..u64::MAX] {
                    labels.extend(read_part(&q, r, Default::default()).unwrap().labels);
                }
                assert_eq!(labels, want_small, "cuts at {a} and {b}");
            }
        }
        let bad = text.replace("\n150 3:1", "\n150 3:x");
        std::fs::write(&p, &bad).unwrap();
        let line = bad.lines().position(|l| l.starts_with("150 ")).unwrap() as u64 + 1;
        for parts in [1, 4] {
            let e = (0..parts)
                .find_map(|i| read_part(&p, super::super::share(bad.len() as u64, parts, i), Default::default()).err())
                .unwrap();
            let want = format!("{} line {line}: value 'x' of feature 3 is not a number", p.display());
            assert_eq!(e.to_string(), want, "{parts} parts");
        }
    }
}
