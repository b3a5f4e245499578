//! A local CSV file read the way a CSV object in S3 is ([`super::s3`]): by line-aligned byte
//! ranges, never counted at open. Opening it reads its first line only (for the columns);
//! each function and inner worker reads its own byte range plus at most one line, and the
//! row count comes from the functions' own reads at the census ([`crate::census`]). So a
//! job's functions read the file about once in all, however many there are.
//!
//! A part `[s, e)` holds the bytes `[cut(s), cut(e))`, where a cut point `p` (`0 < p < size`)
//! moves to just after the first `\n` at or after byte `p`: the same rule as for S3 objects,
//! so neighbouring parts agree on their shared cut point and every line is read once.
//! Empty lines are skipped; a row's number (in an error) is found only when there is an
//! error, by counting the lines before it. A header line ([`CsvFormat::header`]) is left out
//! by splitting the bytes after it, as for S3 objects.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::local::{csv_error, parse_record};
use super::s3::{with_row, Part};
use super::{CsvFormat, DataError, LabelCol, Rows};

/// Bytes read first when looking for the end of a line (doubling while the line goes on).
const SEARCH_BYTES: usize = 256;

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> DataError + '_ {
    move |error| DataError::Io { path: path.to_path_buf(), error }
}

/// A local CSV file opened without counting its rows.
#[derive(Clone, Debug)]
pub struct CsvLines {
    path: PathBuf,
    size: u64,
    /// Columns per row, label included.
    cols: u64,
    csv: CsvFormat,
    /// Where the data rows start (after the header line, if any).
    data_start: u64,
}

impl CsvLines {
    /// Opens `path`, a comma-separated CSV without header.
    pub fn open(path: &Path) -> Result<Self, DataError> {
        Self::open_as(path, CsvFormat::default())
    }

    /// Opens `path`, laid out as `csv` says: its size, and its first non-empty line (after
    /// the header) for the columns (the only bytes read: a few KiB).
    pub fn open_as(path: &Path, csv: CsvFormat) -> Result<Self, DataError> {
        let size = std::fs::metadata(path).map_err(io_err(path))?.len();
        let data_start = super::local::csv_data_start(path, csv)?;
        if data_start >= size {
            return Err(DataError::Empty { path: path.to_path_buf() });
        }
        let mut lines = Self { path: path.to_path_buf(), size, cols: 0, csv, data_start };
        // The bytes up to the end of the first non-empty line (or of the file).
        let mut end = data_start;
        loop {
            let (cut, _) = lines.cut(end + 1)?;
            let start = end;
            end = cut;
            if end >= size || lines.has_data(start..end)? {
                break;
            }
        }
        let mut first = lines.open_part(&Part::Bytes(data_start..end))?;
        let row = first.next_raw_unchecked()?.ok_or_else(|| DataError::Empty { path: path.to_path_buf() })?;
        lines.cols = row.len() as u64;
        Ok(lines)
    }

    /// Whether bytes `range` hold anything but line ends.
    fn has_data(&self, range: Range<u64>) -> Result<bool, DataError> {
        let mut f = File::open(&self.path).map_err(io_err(&self.path))?;
        f.seek(SeekFrom::Start(range.start)).map_err(io_err(&self.path))?;
        let mut buf = vec![0u8; (range.end - range.start) as usize];
        f.read_exact(&mut buf).map_err(io_err(&self.path))?;
        Ok(buf.iter().any(|&b| b != b'\n' && b != b'\r'))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    /// Columns per row, label included.
    pub fn cols(&self) -> u64 {
        self.cols
    }
    /// The file's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Feature columns under `label`, or an error if there would be none.
    pub fn feature_cols(&self, label: LabelCol) -> Result<u64, DataError> {
        super::feature_cols(&self.path, self.cols, label)
    }

    /// The bytes of inner worker `inner` of `inners` in function `worker` of `workers`: the
    /// same split of the file's bytes (after the header) as for an S3 object.
    pub fn part(&self, worker: u64, workers: u64, inner: u64, inners: u64) -> Part {
        Part::Bytes(super::byte_part(self.data_start..self.size, worker, workers, inner, inners))
    }

    /// Where cut point `p` moves to, and the bytes read to find it.
    fn cut(&self, p: u64) -> Result<(u64, u64), DataError> {
        if p <= self.data_start || p >= self.size {
            return Ok((p.max(self.data_start).min(self.size), 0));
        }
        let mut f = File::open(&self.path).map_err(io_err(&self.path))?;
        f.seek(SeekFrom::Start(p)).map_err(io_err(&self.path))?;
        let (mut at, mut step, mut read) = (p, SEARCH_BYTES, 0u64);
        let mut buf = Vec::new();
        while at < self.size {
            buf.resize(step, 0);
            let n = super::local::read_up_to(&mut f, &mut buf).map_err(io_err(&self.path))?;
            read += n as u64;
            if let Some(i) = memchr::memchr(b'\n', &buf[..n]) {
                return Ok((at + i as u64 + 1, read));
            }
            if n == 0 {
                break;
            }
            at += n as u64;
            step = (step * 2).min(1 << 20);
        }
        Ok((self.size, read))
    }

    /// Streams the rows of `part`: bytes (realigned to lines), or rows by number (one pass
    /// from the top: samples and small tables).
    pub fn open_part(&self, part: &Part) -> Result<LinesReader, DataError> {
        let (bytes, skip, left) = match part {
            Part::Bytes(b) => (b.clone(), 0, u64::MAX),
            Part::Rows(r) => (self.data_start..self.size, r.start, r.end - r.start),
        };
        let ((start, a), (end, b)) = (self.cut(bytes.start)?, self.cut(bytes.end)?);
        let (start, end) = (start, end.max(start));
        let mut f = File::open(&self.path).map_err(io_err(&self.path))?;
        f.seek(SeekFrom::Start(start)).map_err(io_err(&self.path))?;
        let body = Counted { inner: f.take(end - start), read: 0 };
        let rdr = self.csv.reader(true).buffer_capacity(1 << 16).from_reader(body);
        Ok(LinesReader {
            lines: self.clone(),
            rdr: Box::new(rdr),
            rec: csv::ByteRecord::new(),
            start,
            end,
            aligning: a + b,
            skip,
            left,
            chunk_start: start,
        })
    }

    /// Reads rows `range` (all columns, label included) as f32, in one pass from the top.
    pub fn read_raw(&self, range: Range<u64>) -> Result<Vec<f32>, DataError> {
        let mut p = self.open_part(&Part::Rows(range))?;
        let mut out = Vec::new();
        while let Some(chunk) = p.next_raw(1 << 16)? {
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// The 1-based row number of the line starting at byte `at`: one more than the
    /// non-empty lines before it after the header (read only to report an error).
    fn row_at(&self, at: u64) -> u64 {
        let Ok(mut f) = File::open(&self.path) else { return 0 };
        if f.seek(SeekFrom::Start(self.data_start)).is_err() {
            return 0;
        }
        let mut r = std::io::BufReader::new(f.take(at.saturating_sub(self.data_start)));
        let (mut rows, mut line_has_data) = (0u64, false);
        let mut buf = [0u8; 1 << 16];
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 {
                break;
            }
            for &b in &buf[..n] {
                if b == b'\n' {
                    rows += line_has_data as u64;
                    line_has_data = false;
                } else {
                    line_has_data |= b != b'\r';
                }
            }
        }
        rows + line_has_data as u64 + 1
    }
}

/// A reader that counts the bytes it read.
pub struct Counted<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(out)?;
        self.read += n as u64;
        Ok(n)
    }
}

/// Streams the rows of one part of a [`CsvLines`].
pub struct LinesReader {
    lines: CsvLines,
    rdr: Box<csv::Reader<Counted<std::io::Take<File>>>>,
    rec: csv::ByteRecord,
    /// The file offsets of the part's first and last byte (realigned).
    start: u64,
    end: u64,
    /// Bytes read to find the cut points.
    aligning: u64,
    /// Rows to skip, and rows still to return (reading rows by number).
    skip: u64,
    left: u64,
    /// The file offset of the last chunk's first row.
    chunk_start: u64,
}

impl LinesReader {
    /// The 0-based row number of the last chunk's first row (counted from the top of the
    /// file: for error messages only).
    pub fn last_chunk_row(&self) -> u64 {
        self.lines.row_at(self.chunk_start) - 1
    }

    /// Bytes read from the file for this part so far.
    pub fn fetched(&self) -> u64 {
        self.aligning + self.rdr.get_ref().read
    }

    /// How many rows this part holds in all, given that the `read` rows returned so far came
    /// first: the rows still to come estimated from the bytes the read rows took (2% over).
    pub fn rows_hint(&self, read: u64) -> u64 {
        let consumed = self.rdr.position().byte();
        if read == 0 || consumed == 0 {
            return read;
        }
        let remaining = (self.end - self.start).saturating_sub(consumed);
        let estimate = (remaining as f64 * read as f64 / consumed as f64 * 1.02).ceil() as u64;
        read + estimate.min(self.left)
    }

    /// The next at most `max_rows` rows, split into features and labels; `None` at the end.
    pub fn next_rows(&mut self, max_rows: u64, label: LabelCol) -> Result<Option<Rows>, DataError> {
        let cols = self.lines.cols as usize;
        Ok(self.next_raw(max_rows)?.map(|raw| Rows::from_raw(raw, cols, label)))
    }

    /// The next record, parsed, whatever its length (the first row fixes the columns).
    fn next_raw_unchecked(&mut self) -> Result<Option<Vec<f32>>, DataError> {
        let path = self.lines.path.clone();
        if !self.rdr.read_byte_record(&mut self.rec).map_err(|e| csv_error(&path, e))? {
            return Ok(None);
        }
        let mut out = Vec::new();
        parse_record(&path, 0, &self.rec, &mut out)?;
        Ok(Some(out))
    }

    /// The next at most `max_rows` rows, all columns; `None` at the end.
    pub fn next_raw(&mut self, max_rows: u64) -> Result<Option<Vec<f32>>, DataError> {
        let (path, cols) = (self.lines.path.clone(), self.lines.cols as usize);
        let mut raw = Vec::new();
        let mut got = 0u64;
        let start = self.start;
        while got < max_rows && self.left > 0 {
            match self.rdr.read_byte_record(&mut self.rec) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    let at = start + e.position().map_or_else(|| self.rdr.position().byte(), |p| p.byte());
                    return Err(with_row(csv_error(&path, e), self.lines.row_at(at)));
                }
            }
            if self.skip > 0 {
                self.skip -= 1;
                continue;
            }
            let here = start + self.rec.position().map_or(0, |p| p.byte());
            if self.rec.len() != cols {
                let row = self.lines.row_at(here);
                return Err(DataError::Ragged { path, row, got: self.rec.len(), expected: cols });
            }
            let before = raw.len();
            if let Err(e) = parse_record(&path, 0, &self.rec, &mut raw) {
                return Err(with_row(e, self.lines.row_at(here)));
            }
            if let Some(i) = raw[before..].iter().position(|v| !v.is_finite()) {
                let row = self.lines.row_at(here);
                return Err(DataError::NotFinite { path, row, col: i + 1, value: raw[before + i] as f64 });
            }
            if got == 0 {
                self.chunk_start = here;
            }
            got += 1;
            self.left -= 1;
        }
        Ok(if got == 0 { None } else { Some(raw) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every line is read once, by exactly one part, for any split, uneven lines, blank
    /// lines, CRLF and a missing final newline; all parts together read about the file once.
    #[test]
    fn parts_cover_every_line_once_and_read_the_file_about_once() {
        let dir = tempfile::tempdir().unwrap();
        for trailing in [true, false] {
            let mut text = String::new();
            for i in 0..2000u64 {
                let pad = "0".repeat(((i * 7919) % 53) as usize);
                text.push_str(&format!("{i}.{pad},{}", i % 7));
                if i == 700 {
                    text.push('\n');
                }
                text.push_str(if i % 10 == 3 { "\r\n" } else { "\n" });
            }
            if !trailing {
                text.pop();
            }
            let path = dir.path().join("d.csv");
            std::fs::write(&path, &text).unwrap();
            let lines = CsvLines::open(&path).unwrap();
            assert_eq!(lines.cols(), 2);
            for (workers, inners) in [(1, 1), (3, 2), (7, 3), (40, 1)] {
                let (mut firsts, mut fetched) = (Vec::new(), 0);
                for w in 0..workers {
                    for i in 0..inners {
                        let mut r = lines.open_part(&lines.part(w, workers, i, inners)).unwrap();
                        while let Some(raw) = r.next_raw(100).unwrap() {
                            firsts.extend(raw.chunks(2).map(|c| c[0] as u64));
                        }
                        fetched += r.fetched();
                    }
                }
                assert_eq!(firsts, (0..2000).collect::<Vec<_>>(), "{workers} x {inners}");
                let parts = workers * inners;
                let size = text.len() as u64;
                assert!(fetched >= size && fetched <= size + parts * 2 * 512, "{fetched} bytes of {size}");
            }
        }
    }

    #[test]
    fn errors_name_the_row_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.csv");
        let text: String = (0..500).map(|i| if i == 321 { "1,x\n".to_string() } else { format!("{i},1\n") }).collect();
        std::fs::write(&path, text).unwrap();
        let lines = CsvLines::open(&path).unwrap();
        // The bad line is in the second of three parts.
        assert!(lines.open_part(&lines.part(0, 3, 0, 1)).unwrap().next_raw(1000).is_ok());
        let mut r = lines.open_part(&lines.part(1, 3, 0, 1)).unwrap();
        let e = loop {
            match r.next_raw(10) {
                Err(e) => break e,
                Ok(Some(_)) => {}
                Ok(None) => panic!("no error"),
            }
        };
        assert!(e.to_string().ends_with("row 322 column 2: 'x' is not a number"), "{e}");
    }
}
