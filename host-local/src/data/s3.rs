//! Data sets in S3: the same `.npy` and CSV formats as [`super::local`], read without
//! pre-splitting, each function and inner worker fetching only its own part.
//!
//! - `.npy`: the header is read once (one small ranged GET); a row range is an exact byte
//!   range.
//! - CSV: a part is a byte range realigned to line ends. Every cut point `p` of the object
//!   (`0 < p < size`) moves to just after the first `\n` at or after byte `p`; a part
//!   `[s, e)` therefore reads the lines starting after the first newline at or after `s`
//!   (from byte 0 for the first part) up to and including the first newline at or after `e`
//!   (or the end of the object, with or without a trailing newline). Neighbouring parts agree
//!   on their shared cut point, so every line is read exactly once, whatever the number of
//!   parts and the line lengths. Lines end with `\n` (or `\r\n`); empty lines are skipped, as
//!   the local reader does; quoted cells holding newlines are not supported. A header line
//!   ([`CsvFormat::header`]) is left out by splitting the bytes after it instead of the
//!   whole object.
//!
//! Opening an object reads its first bytes only (the `.npy` header, or a CSV's first line for
//! its columns): a CSV's row count is not known until the functions have loaded their parts
//! and met at the census ([`crate::census`]). The row number in an error is found only when
//! there is an error, by counting the lines before the offending one.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::local::{csv_error, npy_header_len, parse_npy_header, parse_record, Format};
use super::object::{ObjectError, Pin, RangeRead, RangeReader, S3Store, S3Url};
use super::{share, CsvFormat, DataError, LabelCol, Rows};

/// Bytes fetched first when following a CSV line past the end of a part (doubling, up to
/// [`TAIL_MAX_BYTES`], while the line goes on).
const TAIL_BYTES: u64 = 4 << 10;
const TAIL_MAX_BYTES: u64 = 1 << 20;

/// An opened data object in S3: its shape is known, parts are read on demand.
#[derive(Clone, Debug)]
pub struct ObjectData {
    store: Arc<S3Store>,
    url: S3Url,
    /// `s3://bucket/key`, for error messages.
    name: PathBuf,
    /// The size and ETag seen at open: every later read asks for this version.
    pin: Pin,
    format: Format,
    /// Known from a `.npy` header; a CSV's is not counted (see the module doc).
    rows: Option<u64>,
    /// Columns per row, label included.
    cols: u64,
    csv: CsvFormat,
    /// Where a CSV's data rows start (after its header line, if any).
    data_start: u64,
}

/// A part of an object: rows of a `.npy`, or a byte range of a CSV (realigned to lines).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    Rows(Range<u64>),
    Bytes(Range<u64>),
}

impl ObjectData {
    /// Opens `url`: reads its first bytes (one ranged GET of [`OPEN_BYTES`], more only
    /// for a longer `.npy` header or a CSV first line longer than that). `etag`: the version
    /// the job started with (the driver's open saw it); `None` pins the version seen now.
    pub fn open(store: &Arc<S3Store>, url: &S3Url, etag: Option<&str>) -> Result<Self, DataError> {
        Self::open_as(store, url, etag, CsvFormat::default())
    }

    /// The first bytes of `url` and its version, checked against `etag` (the version the job
    /// started with).
    fn pinned(store: &Arc<S3Store>, url: &S3Url, etag: Option<&str>) -> Result<(Bytes, Pin), DataError> {
        let (head, pin) = store.head_bytes(url, OPEN_BYTES, etag)?;
        if pin.size == 0 {
            return Err(DataError::Empty { path: PathBuf::from(url.to_string()) });
        }
        if let (Some(want), Some(got)) = (etag, pin.etag.as_deref()) {
            if want != got {
                let what = format!("ETag {want} when the job started, {got} now");
                return Err(ObjectError::Changed { url: url.clone(), what }.into());
            }
        }
        Ok((head, pin))
    }

    /// Opens a text object read by byte ranges only ([`ObjectData::get_range`],
    /// [`ObjectData::range_reader`]): a LIBSVM file ([`super::libsvm`]), whose lines the caller
    /// parses. Its rows and columns are not known here.
    pub fn open_text(store: &Arc<S3Store>, url: &S3Url, etag: Option<&str>) -> Result<Self, DataError> {
        let (_, pin) = Self::pinned(store, url, etag)?;
        let name = PathBuf::from(url.to_string());
        let csv = CsvFormat::default();
        Ok(Self {
            store: store.clone(),
            url: url.clone(),
            name,
            pin,
            format: Format::Csv,
            rows: None,
            cols: 0,
            csv,
            data_start: 0,
        })
    }

    /// Bytes `range` of the version opened (one ranged GET).
    pub fn get_range(&self, range: Range<u64>) -> Result<Bytes, DataError> {
        Ok(self.store.get_range(&self.url, range, Some(&self.pin))?)
    }

    /// Bytes `range` of the version opened, streamed by concurrent ranged GETs.
    pub fn range_reader(&self, range: Range<u64>) -> RangeRead {
        RangeRead::new(self.store.reader(&self.url, range, Some(&self.pin)))
    }

    /// [`ObjectData::open`] for a CSV laid out as `csv` says.
    pub fn open_as(store: &Arc<S3Store>, url: &S3Url, etag: Option<&str>, csv: CsvFormat) -> Result<Self, DataError> {
        let name = PathBuf::from(url.to_string());
        let ext = url.extension();
        if !matches!(ext.as_deref(), Some("npy" | "csv")) {
            return Err(DataError::Extension { path: name });
        }
        let (head, pin) = Self::pinned(store, url, etag)?;
        let size = pin.size;
        let mut data_start = 0;
        let (format, rows, cols) = if ext.as_deref() == Some("npy") {
            let need = npy_header_len(&name, &head)?;
            let head =
                if need > head.len() as u64 { store.get_range(url, 0..need.min(size), Some(&pin))? } else { head };
            let (format, rows, cols) = parse_npy_header(&name, &head, size)?;
            if rows == 0 {
                return Err(DataError::Empty { path: name });
            }
            (format, Some(rows), cols)
        } else {
            // The first non-empty line after the header fixes the columns and shows whether
            // this is a CSV of numbers at all.
            let found = |head: &[u8]| csv.data_start(head).filter(|&s| first_line(&head[s as usize..]).is_some());
            let head = match found(&head) {
                None if (head.len() as u64) < size => {
                    store.get_range(url, 0..size.min(FIRST_LINE_MAX_BYTES), Some(&pin))?
                }
                _ => head,
            };
            data_start = match csv.data_start(&head) {
                Some(at) => at,
                None if (head.len() as u64) < size => {
                    let why = format!("its header line is longer than {FIRST_LINE_MAX_BYTES} bytes");
                    return Err(DataError::Io { path: name, error: std::io::Error::other(why) });
                }
                None => size,
            };
            let body = &head[data_start as usize..];
            if data_start >= size {
                return Err(DataError::Empty { path: name });
            }
            let line = first_line(body).unwrap_or(body);
            let mut out = Vec::new();
            let rec = first_record(&name, line, csv)?;
            parse_record(&name, 0, &rec, &mut out)?;
            (Format::Csv, None, rec.len() as u64)
        };
        if cols == 0 {
            return Err(DataError::Empty { path: name });
        }
        Ok(Self { store: store.clone(), url: url.clone(), name, pin, format, rows, cols, csv, data_start })
    }

    pub fn url(&self) -> &S3Url {
        &self.url
    }
    pub fn name(&self) -> &Path {
        &self.name
    }
    pub fn is_csv(&self) -> bool {
        self.format == Format::Csv
    }
    /// The row count, when the header gives it (a `.npy`; not a CSV).
    pub fn rows(&self) -> Option<u64> {
        self.rows
    }
    /// Columns per row, label included.
    pub fn cols(&self) -> u64 {
        self.cols
    }
    /// The object's size in bytes.
    pub fn size(&self) -> u64 {
        self.pin.size
    }

    /// The object's ETag, if the server gives one: tasks carry it so that every function
    /// reads the same version.
    pub fn etag(&self) -> Option<&str> {
        self.pin.etag.as_deref()
    }

    /// Feature columns under `label`, or an error if there would be none.
    pub fn feature_cols(&self, label: LabelCol) -> Result<u64, DataError> {
        match label {
            LabelCol::None => Ok(self.cols),
            LabelCol::Last if self.cols < 2 => Err(DataError::NoFeatures { path: self.name.clone(), cols: self.cols }),
            LabelCol::Last => Ok(self.cols - 1),
        }
    }

    /// The part of inner worker `inner` of `inners` in function `worker` of `workers`:
    /// contiguous rows of a `.npy` ([`share`] of the rows, then of the function's share), or
    /// bytes of a CSV (the same split of the bytes after its header).
    pub fn part(&self, worker: u64, workers: u64, inner: u64, inners: u64) -> Part {
        match self.format {
            Format::Npy { .. } => {
                let f = share(self.rows.unwrap_or(0), workers, worker);
                let i = share(f.end - f.start, inners, inner);
                Part::Rows(f.start + i.start..f.start + i.end)
            }
            Format::Csv => {
                Part::Bytes(super::byte_part(self.data_start..self.pin.size, worker, workers, inner, inners))
            }
        }
    }

    /// The bytes a part covers before realignment (what a worker is expected to fetch).
    pub fn part_bytes(&self, part: &Part) -> u64 {
        match (part, self.format) {
            (Part::Rows(r), Format::Npy { f64, .. }) => (r.end - r.start) * self.cols * if f64 { 8 } else { 4 },
            (Part::Bytes(b), _) => b.end - b.start,
            (Part::Rows(_), Format::Csv) => 0,
        }
    }

    /// Streams the rows of `part`, a chunk at a time.
    pub fn open_part(&self, part: &Part) -> Result<PartReader, DataError> {
        match (part, self.format) {
            (Part::Rows(r), Format::Npy { offset, f64 }) => {
                assert!(Some(r.end) <= self.rows, "row range {r:?} beyond {:?} rows", self.rows);
                let row_bytes = self.cols * if f64 { 8 } else { 4 };
                let bytes = offset + r.start * row_bytes..offset + r.end * row_bytes;
                let reader = RangeRead::new(self.store.reader(&self.url, bytes, Some(&self.pin)));
                Ok(PartReader::Npy {
                    data: self.clone(),
                    reader,
                    next_row: r.start,
                    end_row: r.end,
                    f64,
                    buf: Vec::new(),
                })
            }
            (Part::Bytes(b), Format::Csv) => {
                let aligned = AlignedLines::new(self, b.clone());
                let rdr = self.csv.reader(true).buffer_capacity(1 << 16).from_reader(aligned);
                Ok(PartReader::Csv {
                    data: self.clone(),
                    rdr: Box::new(rdr),
                    rec: csv::ByteRecord::new(),
                    skip: 0,
                    left: u64::MAX,
                })
            }
            (Part::Rows(r), Format::Csv) => {
                // Rows of a CSV by number: one pass from the start (initialisation samples,
                // small tables such as initial centroids).
                let mut p = self.open_part(&Part::Bytes(self.data_start..self.pin.size))?;
                if let PartReader::Csv { skip, left, .. } = &mut p {
                    *skip = r.start;
                    *left = r.end - r.start;
                }
                Ok(p)
            }
            (Part::Bytes(_), Format::Npy { .. }) => panic!("a .npy is split by rows"),
        }
    }

    /// Reads every row (all columns, label included) as f32: `(rows, values)`.
    pub fn read_all(&self) -> Result<(u64, Vec<f32>), DataError> {
        let part = match self.rows {
            Some(n) => Part::Rows(0..n),
            None => Part::Bytes(self.data_start..self.pin.size),
        };
        let mut p = self.open_part(&part)?;
        let mut out = Vec::new();
        while let Some(chunk) = p.next_raw(1 << 16)? {
            out.extend_from_slice(&chunk);
        }
        Ok(((out.len() as u64).checked_div(self.cols).unwrap_or(0), out))
    }

    /// Reads rows `range` (all columns, label included) as f32.
    pub fn read_raw(&self, range: Range<u64>) -> Result<Vec<f32>, DataError> {
        let mut p = self.open_part(&Part::Rows(range.clone()))?;
        let mut out = Vec::with_capacity(((range.end - range.start) * self.cols) as usize);
        while let Some(chunk) = p.next_raw(1 << 16)? {
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// Reads rows `range` split into features and labels.
    pub fn read(&self, range: Range<u64>, label: LabelCol) -> Result<Rows, DataError> {
        self.feature_cols(label)?;
        Ok(Rows::from_raw(self.read_raw(range)?, self.cols as usize, label))
    }

    /// Reads the rows at sorted `indices`: a `.npy` by concurrent ranged GETs over runs of
    /// nearby rows, a CSV in one pass up to the last index.
    pub fn read_rows_at(&self, indices: &[u64], label: LabelCol) -> Result<Rows, DataError> {
        self.feature_cols(label)?;
        let Some(&last) = indices.last() else { return Ok(Rows::from_raw(Vec::new(), self.cols as usize, label)) };
        let raw = match self.format {
            Format::Csv => {
                let all = self.read_raw(0..last + 1)?;
                let c = self.cols as usize;
                indices.iter().flat_map(|&i| all[i as usize * c..(i as usize + 1) * c].iter().copied()).collect()
            }
            Format::Npy { offset, f64 } => {
                let row_bytes = self.cols * if f64 { 8 } else { 4 };
                // Runs of rows at most 64 KiB apart, each at most 1 MiB, decoded as they
                // arrive, so that a sample of a large object never holds much of it at once.
                let mut runs: Vec<Range<u64>> = Vec::new();
                for &i in indices {
                    match runs.last_mut() {
                        Some(r) if (i - r.end) * row_bytes <= 64 << 10 && (i + 1 - r.start) * row_bytes <= 1 << 20 => {
                            r.end = i + 1
                        }
                        _ => runs.push(i..i + 1),
                    }
                }
                let byte_ranges: Vec<Range<u64>> =
                    runs.iter().map(|r| offset + r.start * row_bytes..offset + r.end * row_bytes).collect();
                let mut raw = Vec::with_capacity(indices.len() * self.cols as usize);
                let mut it = indices.iter().peekable();
                self.store.for_each_range(&self.url, Some(&self.pin), &byte_ranges, |k, body| {
                    let run = &runs[k];
                    while let Some(&&i) = it.peek() {
                        if i >= run.end {
                            break;
                        }
                        let at = ((i - run.start) * row_bytes) as usize;
                        decode(&body[at..at + row_bytes as usize], f64, &mut raw);
                        it.next();
                    }
                    Ok::<_, DataError>(())
                })?;
                check_finite(&self.name, &raw, self.cols as usize, |k| indices[k])?;
                raw
            }
        };
        Ok(Rows::from_raw(raw, self.cols as usize, label))
    }

    /// The 1-based row number of the line starting at byte `at` of a CSV: one more than the
    /// non-empty lines before it after the header (read only to report an error).
    fn row_at(&self, at: u64) -> u64 {
        match count_csv_rows(self.store.reader(&self.url, self.data_start..at, Some(&self.pin))) {
            Ok(rows) => rows + 1,
            Err(_) => 0,
        }
    }
}

/// Counts the non-empty lines of a stream (the last may lack its newline).
fn count_csv_rows(mut reader: RangeReader) -> Result<u64, ObjectError> {
    let mut rows = 0u64;
    let mut line_has_data = false;
    while let Some(chunk) = reader.next_chunk()? {
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', &chunk).chain(std::iter::once(chunk.len())) {
            line_has_data |= chunk[start..nl].iter().any(|&b| b != b'\r');
            if nl < chunk.len() {
                rows += line_has_data as u64;
                line_has_data = false;
            }
            start = nl + 1;
        }
    }
    Ok(rows + line_has_data as u64)
}

/// Bytes of the first GET of an object: a `.npy` header (64-byte aligned, usually 128
/// bytes) or a CSV's first line fits in it; each function and the driver pay it once.
const OPEN_BYTES: u64 = 4 << 10;

/// Bytes read at most to find a CSV's first line.
const FIRST_LINE_MAX_BYTES: u64 = 1 << 20;

/// The first non-empty line of `bytes` that ends in a newline, if any.
fn first_line(bytes: &[u8]) -> Option<&[u8]> {
    let mut start = 0;
    for nl in memchr::memchr_iter(b'\n', bytes) {
        let line = &bytes[start..nl];
        if line.iter().any(|&b| b != b'\r') {
            return Some(line);
        }
        start = nl + 1;
    }
    None
}

fn first_record(name: &Path, line: &[u8], csv: CsvFormat) -> Result<csv::ByteRecord, DataError> {
    let mut rdr = csv.reader(true).from_reader(line);
    let mut rec = csv::ByteRecord::new();
    match rdr.read_byte_record(&mut rec) {
        Ok(true) => Ok(rec),
        Ok(false) => Err(DataError::Empty { path: name.to_path_buf() }),
        Err(e) => Err(csv_error(name, e)),
    }
}

fn decode(bytes: &[u8], f64: bool, out: &mut Vec<f32>) {
    if f64 {
        out.extend(bytes.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap()) as f32));
    } else {
        out.extend(bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())));
    }
}

/// Values must be finite (after the f32 conversion: f64 overflow becomes inf); `row_of`
/// maps a row of `raw` to its 0-based row in the object.
fn check_finite(name: &Path, raw: &[f32], cols: usize, row_of: impl Fn(usize) -> u64) -> Result<(), DataError> {
    match raw.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(DataError::NotFinite {
            path: name.to_path_buf(),
            row: row_of(i / cols) + 1,
            col: i % cols + 1,
            value: raw[i] as f64,
        }),
    }
}

/// Streams the rows of one [`Part`].
#[allow(clippy::large_enum_variant)] // one per inner worker, never moved in a loop
pub enum PartReader {
    Npy { data: ObjectData, reader: RangeRead, next_row: u64, end_row: u64, f64: bool, buf: Vec<u8> },
    Csv { data: ObjectData, rdr: Box<csv::Reader<AlignedLines>>, rec: csv::ByteRecord, skip: u64, left: u64 },
}

impl PartReader {
    /// Bytes downloaded for this part so far.
    pub fn fetched(&self) -> u64 {
        match self {
            PartReader::Npy { reader, .. } => reader.inner.fetched(),
            PartReader::Csv { rdr, .. } => rdr.get_ref().fetched(),
        }
    }

    /// How many rows this part holds in all, given that the `read` rows returned so far
    /// came first: exact for a `.npy`; for CSV, the rows still to come are estimated from the
    /// bytes the read rows took (2% over, so a well-behaved file never outgrows it).
    pub fn rows_hint(&self, read: u64) -> u64 {
        match self {
            PartReader::Npy { next_row, end_row, .. } => read + (end_row - next_row),
            PartReader::Csv { rdr, left, .. } => {
                let consumed = rdr.position().byte();
                let lines = rdr.get_ref();
                let remaining = lines.end.saturating_sub(lines.body_start + consumed);
                if read == 0 || consumed == 0 {
                    return read;
                }
                let estimate = (remaining as f64 * read as f64 / consumed as f64 * 1.02).ceil() as u64;
                read + estimate.min(*left)
            }
        }
    }

    /// The next at most `max_rows` rows, split into features and labels; `None` at the end.
    pub fn next_rows(&mut self, max_rows: u64, label: LabelCol) -> Result<Option<Rows>, DataError> {
        let cols = match self {
            PartReader::Npy { data, .. } | PartReader::Csv { data, .. } => data.cols as usize,
        };
        Ok(self.next_raw(max_rows)?.map(|raw| Rows::from_raw(raw, cols, label)))
    }

    /// The next at most `max_rows` rows, all columns; `None` at the end.
    pub fn next_raw(&mut self, max_rows: u64) -> Result<Option<Vec<f32>>, DataError> {
        match self {
            PartReader::Npy { data, reader, next_row, end_row, f64, buf } => {
                if *next_row >= *end_row {
                    return Ok(None);
                }
                let n = max_rows.min(*end_row - *next_row);
                let row_bytes = data.cols as usize * if *f64 { 8 } else { 4 };
                buf.resize(n as usize * row_bytes, 0);
                std::io::Read::read_exact(reader, buf).map_err(|e| {
                    match e.into_inner().map(|i| i.downcast::<ObjectError>()) {
                        Some(Ok(o)) => DataError::Object(*o),
                        Some(Err(other)) => DataError::Truncated { path: data.name.clone(), reason: other.to_string() },
                        None => {
                            DataError::Truncated { path: data.name.clone(), reason: "the object ended early".into() }
                        }
                    }
                })?;
                let mut raw = Vec::with_capacity(n as usize * data.cols as usize);
                decode(buf, *f64, &mut raw);
                let first = *next_row;
                check_finite(&data.name, &raw, data.cols as usize, |r| first + r as u64)?;
                *next_row += n;
                Ok(Some(raw))
            }
            PartReader::Csv { data, rdr, rec, skip, left } => {
                let cols = data.cols as usize;
                let mut raw = Vec::new();
                let mut got = 0u64;
                while got < max_rows && *left > 0 {
                    match rdr.read_byte_record(rec) {
                        Ok(true) => {}
                        Ok(false) => break,
                        Err(e) if matches!(e.kind(), csv::ErrorKind::Io(_)) => {
                            let csv::ErrorKind::Io(io) = e.into_kind() else { unreachable!() };
                            return Err(match io.into_inner().map(|i| i.downcast::<ObjectError>()) {
                                Some(Ok(o)) => DataError::Object(*o),
                                Some(Err(other)) => {
                                    DataError::Truncated { path: data.name.clone(), reason: other.to_string() }
                                }
                                None => DataError::Truncated {
                                    path: data.name.clone(),
                                    reason: "the object ended early".into(),
                                },
                            });
                        }
                        Err(e) => {
                            let at = e.position().map(|p| p.byte()).unwrap_or(0);
                            let row = data.row_at(rdr.get_ref().body_start + at);
                            return Err(with_row(csv_error(&data.name, e), row));
                        }
                    }
                    if *skip > 0 {
                        *skip -= 1;
                        continue;
                    }
                    let at = || rdr.get_ref().body_start + rec.position().map(|p| p.byte()).unwrap_or(0);
                    if rec.len() != cols {
                        let row = data.row_at(at());
                        return Err(DataError::Ragged { path: data.name.clone(), row, got: rec.len(), expected: cols });
                    }
                    let before = raw.len();
                    if let Err(e) = parse_record(&data.name, 0, rec, &mut raw) {
                        return Err(with_row(e, data.row_at(at())));
                    }
                    if let Some(i) = raw[before..].iter().position(|v| !v.is_finite()) {
                        let row = data.row_at(at());
                        return Err(DataError::NotFinite {
                            path: data.name.clone(),
                            row,
                            col: i + 1,
                            value: raw[before + i] as f64,
                        });
                    }
                    got += 1;
                    *left -= 1;
                }
                Ok(if got == 0 { None } else { Some(raw) })
            }
        }
    }
}

/// Puts the 1-based `row` found by counting into a row-numbered error.
pub(crate) fn with_row(e: DataError, row: u64) -> DataError {
    match e {
        DataError::NotANumber { path, col, cell, .. } => DataError::NotANumber { path, row, col, cell },
        DataError::Ragged { path, got, expected, .. } => DataError::Ragged { path, row, got, expected },
        other => other,
    }
}

enum Align {
    /// Dropping bytes up to and including the first newline at or after the part's start.
    Skip,
    /// Passing the part's bytes through.
    Body,
    /// Following the last line past the part's end, from this byte.
    Tail(u64, u64),
    Done,
}

/// The bytes of a CSV part realigned to line ends (see the module doc), as [`std::io::Read`].
pub struct AlignedLines {
    store: Arc<S3Store>,
    url: S3Url,
    pin: Pin,
    end: u64,
    body: RangeReader,
    state: Align,
    buf: Bytes,
    /// The object offset of the first byte passed on.
    body_start: u64,
    tail_fetched: u64,
}

impl AlignedLines {
    fn new(data: &ObjectData, range: Range<u64>) -> Self {
        Self {
            store: data.store.clone(),
            url: data.url.clone(),
            pin: data.pin.clone(),
            end: range.end,
            body: data.store.reader(&data.url, range.clone(), Some(&data.pin)),
            // An empty part holds no line (its two cut points coincide), even at the start.
            state: if range.is_empty() {
                Align::Done
            } else if range.start == data.data_start {
                Align::Body
            } else {
                Align::Skip
            },
            buf: Bytes::new(),
            body_start: range.start,
            tail_fetched: 0,
        }
    }

    /// Bytes downloaded for this part so far.
    pub fn fetched(&self) -> u64 {
        self.body.fetched() + self.tail_fetched
    }

    fn fill(&mut self) -> Result<(), ObjectError> {
        while self.buf.is_empty() {
            match self.state {
                Align::Done => return Ok(()),
                Align::Skip => match self.body.next_chunk()? {
                    // The line crossing the start runs past the end: the part holds no line.
                    None => self.state = Align::Done,
                    Some(b) => match memchr::memchr(b'\n', &b) {
                        Some(i) => {
                            self.body_start += i as u64 + 1;
                            self.buf = b.slice(i + 1..);
                            self.state = Align::Body;
                        }
                        None => self.body_start += b.len() as u64,
                    },
                },
                Align::Body => match self.body.next_chunk()? {
                    Some(b) => self.buf = b,
                    None => {
                        self.state =
                            if self.end >= self.pin.size { Align::Done } else { Align::Tail(self.end, TAIL_BYTES) }
                    }
                },
                Align::Tail(at, step) => {
                    if at >= self.pin.size {
                        self.state = Align::Done;
                        continue;
                    }
                    let b = self.store.get_range(&self.url, at..(at + step).min(self.pin.size), Some(&self.pin))?;
                    self.tail_fetched += b.len() as u64;
                    match memchr::memchr(b'\n', &b) {
                        Some(i) => {
                            self.buf = b.slice(..i + 1);
                            self.state = Align::Done;
                        }
                        None => {
                            self.state = Align::Tail(at + b.len() as u64, (step * 2).min(TAIL_MAX_BYTES));
                            self.buf = b;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

impl std::io::Read for AlignedLines {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        self.fill().map_err(std::io::Error::other)?;
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        let _ = self.buf.split_to(n);
        Ok(n)
    }
}
