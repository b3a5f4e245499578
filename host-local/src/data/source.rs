//! A job's data set behind one API, wherever it lives: rows in memory, a local file, or an
//! object in S3. It gives the shape (an S3 CSV's row count only after the census, see
//! [`crate::census`]), any range of rows, the init sample of a whole data set read in one
//! process, and (for S3) a function's share as parts its inner workers stream straight into
//! their shards. Rows held by an embedding program (a numpy array in the Python package) come
//! in through [`RowSource`], read a chunk at a time straight into the shards, never copied whole.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use super::libsvm::{is_libsvm, LibsvmFile, LibsvmFormat};
use super::lines::CsvLines;
use super::local::DataFile;
use super::object::{S3Connector, S3Url};
use super::s3::ObjectData;
use super::sample::SampleCollector;
use super::{CsvFormat, DataError, LabelCol, Rows};
use crate::census::ROWS_UNKNOWN;
use crate::kernel::{DataShape, Sample, SamplePlan};

/// Rows that live outside the engine (e.g. a caller's numpy array, in any layout): read a
/// range at a time, so loading them into the shards copies each row once, chunk by chunk.
pub trait RowSource: Send + Sync {
    fn shape(&self) -> DataShape;
    /// Rows `range` (0-based, end exclusive, within the shape), row-major.
    fn read(&self, range: Range<u64>) -> Rows;
}

/// A job's data: rows in memory, rows of the embedding program, a file, or an object in S3.
pub enum Data {
    /// Rows in memory, shared (a caller that keeps them hands out a clone of the `Arc`).
    Memory(Arc<Rows>),
    /// Rows the embedding program holds and lends for the job.
    External(Arc<dyn RowSource>),
    File {
        file: DataFile,
        label: LabelCol,
    },
    /// A local CSV file, read by line-aligned byte ranges like a CSV object (its rows are
    /// counted by the functions that read them).
    Lines {
        file: CsvLines,
        label: LabelCol,
    },
    Object {
        data: ObjectData,
        label: LabelCol,
    },
    /// A LIBSVM file, local or in S3: sparse rows, each with its label, read by line-aligned
    /// byte ranges straight into sparse shards (its rows are counted by the functions that
    /// read them).
    Libsvm(LibsvmFile),
}

impl Data {
    /// Opens a data set at `location`: a local path or `s3://bucket/key`, a CSV laid out as
    /// `csv` says; `etag`: the version of an S3 object the job started with (`None`: the
    /// current one).
    pub fn open(
        location: &str,
        label: LabelCol,
        csv: CsvFormat,
        s3: &S3Connector,
        etag: Option<&str>,
    ) -> Result<Data, DataError> {
        Self::open_with(location, label, csv, LibsvmFormat::default(), s3, etag)
    }

    /// [`Data::open`], where a LIBSVM file (`.svm`, `.libsvm`, `.svmlight`) is read as
    /// `libsvm` says (its label is always the first field of a line: `label` does not apply).
    pub fn open_with(
        location: &str,
        label: LabelCol,
        csv: CsvFormat,
        libsvm: LibsvmFormat,
        s3: &S3Connector,
        etag: Option<&str>,
    ) -> Result<Data, DataError> {
        if is_libsvm(location) {
            if S3Url::is_s3(location) {
                let object = ObjectData::open_text(&s3.store()?, &S3Url::parse(location)?, etag)?;
                return Ok(Data::Libsvm(LibsvmFile::open_object(object, libsvm)?));
            }
            return Ok(Data::Libsvm(LibsvmFile::open(Path::new(location), libsvm)?));
        }
        if S3Url::is_s3(location) {
            let url = S3Url::parse(location)?;
            Ok(Data::Object { data: ObjectData::open_as(&s3.store()?, &url, etag, csv)?, label })
        } else if Path::new(location).extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) {
            Ok(Data::Lines { file: CsvLines::open_as(Path::new(location), csv)?, label })
        } else {
            Ok(Data::File { file: DataFile::open_as(Path::new(location), csv)?, label })
        }
    }

    /// Whether the data is a CSV file or object.
    pub fn is_csv(&self) -> bool {
        match self {
            Data::File { file, .. } => file.is_csv(),
            Data::Object { data, .. } => data.is_csv(),
            Data::Lines { .. } => true,
            Data::Memory(_) | Data::External(_) | Data::Libsvm(_) => false,
        }
    }

    /// The data set as parts streamed by byte range, when it is read that way (an S3 object
    /// or a local CSV file), with where the label is.
    pub fn parted(&self) -> Option<(&dyn super::Parted, LabelCol)> {
        match self {
            Data::Object { data, label } => Some((data, *label)),
            Data::Lines { file, label } => Some((file, *label)),
            _ => None,
        }
    }

    /// The ETag of an S3 object (the version every function must read).
    pub fn etag(&self) -> Option<&str> {
        match self {
            Data::Object { data, .. } => data.etag(),
            Data::Libsvm(file) => file.etag(),
            _ => None,
        }
    }

    /// Rows `range` (0-based, end exclusive).
    pub fn read(&self, range: Range<u64>) -> Result<Rows, DataError> {
        match self {
            Data::Memory(rows) => {
                let (f, l) = rows.slice(range.start as usize..range.end as usize);
                Ok(Rows { cols: rows.cols, features: f.to_vec(), labels: l.to_vec() })
            }
            Data::External(src) => Ok(src.read(range)),
            Data::File { file, label } => file.read(range, *label),
            Data::Lines { file, label } => {
                file.feature_cols(*label)?;
                Ok(Rows::from_raw(file.read_raw(range)?, file.cols() as usize, *label))
            }
            Data::Object { data, label } => data.read(range, *label),
            Data::Libsvm(file) => Err(DataError::Unsupported {
                path: file.path().to_path_buf(),
                reason: "LIBSVM rows are sparse: they are read by parts into sparse shards, never as dense rows".into(),
            }),
        }
    }

    /// Whether reading a range costs a pass from the start of the data: a CSV (object or
    /// local file) read by row numbers.
    pub fn sequential(&self) -> bool {
        matches!(self, Data::Object { data, .. } if data.is_csv()) || matches!(self, Data::Lines { .. })
    }

    pub fn shape(&self) -> Result<DataShape, DataError> {
        Ok(match self {
            Data::Memory(r) => {
                DataShape { cols: r.cols as u32, has_labels: r.has_labels(), total_rows: r.len() as u64 }
            }
            Data::External(src) => src.shape(),
            Data::File { file, label } => DataShape {
                cols: file.feature_cols(*label)? as u32,
                has_labels: *label == LabelCol::Last,
                total_rows: file.rows(),
            },
            Data::Object { data, label } => DataShape {
                cols: data.feature_cols(*label)? as u32,
                has_labels: *label == LabelCol::Last,
                total_rows: data.rows().unwrap_or(ROWS_UNKNOWN),
            },
            Data::Lines { file, label } => DataShape {
                cols: file.feature_cols(*label)? as u32,
                has_labels: *label == LabelCol::Last,
                total_rows: ROWS_UNKNOWN,
            },
            Data::Libsvm(file) => DataShape {
                cols: u32::try_from(file.width()).map_err(|_| DataError::Unsupported {
                    path: file.path().to_path_buf(),
                    reason: format!("{} features are more than 2^32 - 1: use --hash-features", file.width()),
                })?,
                has_labels: true,
                total_rows: ROWS_UNKNOWN,
            },
        })
    }

    /// The rows a kernel's sample plan asks for, drawn from the whole data set by the rule the
    /// functions follow together ([`crate::data::sample`]), so a model made here equals the
    /// one a job's census makes. Reads every row unless the plan asks for none: for runs in
    /// one process (benchmarks, tests), never for a job's functions.
    pub fn sample(&self, plan: SamplePlan) -> Result<Sample, DataError> {
        let shape = self.shape()?;
        let mut c = SampleCollector::new(plan, shape.cols as usize, shape.has_labels);
        let wanted = match plan {
            SamplePlan::Head(n) => n,
            SamplePlan::Uniform(u) => u.count,
        };
        if wanted > 0 {
            match self {
                Data::Libsvm(file) => {
                    return Err(DataError::Unsupported {
                        path: file.path().to_path_buf(),
                        reason: format!("this algorithm starts from {wanted} sample rows, which sparse LIBSVM data does not give: use dense (.npy or .csv) data"),
                    })
                }
                Data::Object { data, label } => {
                    let (_, raw) = data.read_all()?;
                    c.offer(&Rows::from_raw(raw, data.cols() as usize, *label));
                }
                Data::Lines { file, label } => {
                    let raw = file.read_raw(0..u64::MAX)?;
                    c.offer(&Rows::from_raw(raw, file.cols() as usize, *label));
                }
                _ => {
                    const CHUNK: u64 = 1 << 15;
                    let n = shape.total_rows;
                    let end = if let SamplePlan::Head(h) = plan { h.min(n) } else { n };
                    for start in (0..end).step_by(CHUNK as usize) {
                        c.offer(&self.read(start..(start + CHUNK).min(end))?);
                    }
                }
            }
        }
        Ok(c.finish(plan).expect("the plan it was collected for"))
    }
}

/// A whole small table (such as initial centroids) from a local path or `s3://bucket/key`:
/// `(rows, cols, row-major values)`.
pub fn read_table(location: &str, s3: &S3Connector) -> Result<(u64, u64, Vec<f32>), DataError> {
    if S3Url::is_s3(location) {
        let url = S3Url::parse(location)?;
        let d = ObjectData::open(&s3.store()?, &url, None)?;
        let (rows, raw) = d.read_all()?;
        Ok((rows, d.cols(), raw))
    } else {
        let f = DataFile::open(Path::new(location))?;
        Ok((f.rows(), f.cols(), f.read_raw(0..f.rows())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::UniformSample;

    /// A CSV and an `.npy` of the same data give the same sample rows, in the same order
    /// (the rule keys rows by their values, not by where they are stored).
    #[test]
    fn csv_and_npy_samples_of_the_same_data_are_the_same_rows() {
        use npyz::WriterBuilder as _;
        let dir = tempfile::tempdir().unwrap();
        let n = 70_000u64;
        let values: Vec<f32> = (0..n).flat_map(|i| [i as f32 + 0.25, (i % 97) as f32]).collect();
        let text: String = values.chunks(2).map(|r| format!("{},{}\n", r[0], r[1])).collect();
        std::fs::write(dir.path().join("d.csv"), text).unwrap();
        let mut w = npyz::WriteOptions::<f32>::new()
            .default_dtype()
            .shape(&[n, 2])
            .writer(std::fs::File::create(dir.path().join("d.npy")).unwrap())
            .begin_nd()
            .unwrap();
        w.extend(values.iter().copied()).unwrap();
        w.finish().unwrap();
        let open =
            |name: &str| Data::File { file: DataFile::open(&dir.path().join(name)).unwrap(), label: LabelCol::None };
        let (csv, npy) = (open("d.csv"), open("d.npy"));
        for plan in [
            SamplePlan::Uniform(UniformSample { count: 5000, seed: 3 }),
            SamplePlan::Uniform(UniformSample { count: 3, seed: 1 }),
            SamplePlan::Head(5),
        ] {
            let (a, b) = (csv.sample(plan).unwrap(), npy.sample(plan).unwrap());
            assert!(!a.features.is_empty());
            assert_eq!(a.features, b.features, "{plan:?}");
        }
        let head: Vec<f32> = csv.sample(SamplePlan::Head(3)).unwrap().features;
        assert_eq!(head, [0.25, 0.0, 1.25, 1.0, 2.25, 2.0]);
    }
}
