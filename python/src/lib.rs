//! `ifp._ifp`: the compiled half of the Python package. One entry point, [`run`], takes
//! `ifp run`'s own arguments (the estimators in `ifp/` translate their parameters into them)
//! and optionally a numpy array, runs the job through the driver's `run_job` (the same code as
//! the `ifp` binary, so the result JSON is the CLI's) and returns that JSON and the per-row
//! assignments.
//!
//! What it guarantees:
//! - an array is lent to the job, never copied whole: float32 or float64, C or Fortran order
//!   (any strides), its rows are read a chunk at a time straight into the shards;
//! - the GIL is released while the job runs (other Python threads run), and Ctrl-C stops
//!   the job between iterations, then raises `KeyboardInterrupt`;
//! - every error is a Python exception of the conventional type with one line: `ValueError`
//!   for bad arguments, parameters, data or plugins, `OSError` (`FileNotFoundError`) for data
//!   or kernels that cannot be read, `ConnectionError` for an unreachable Redis,
//!   `RuntimeError` for a job that failed on its own.

use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use numpy::{PyArray1, PyArrayDescrMethods, PyReadonlyArray1, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyConnectionError, PyFileNotFoundError, PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;

use ifp_driver::run::{parse_run_args, run_job, Embedding};
use ifp_host::data::{Data, DataError, RowSource, Rows};
use ifp_host::function::Classify;
use ifp_host::job::JobFailure;
use ifp_host::kernel::DataShape;
use ifp_host::run_task::InitError;
use ifp_host::sync::redis::RedisSetupError;
use ifp_host::{FailureKind, LoadError};

/// How often the waiting caller looks for Ctrl-C while a job runs.
const SIGNAL_POLL: Duration = Duration::from_millis(50);

/// The element types an array may hold.
#[derive(Clone, Copy)]
enum Elem {
    F32,
    F64,
}

/// A 2-D numpy array lent to a job (the caller keeps it alive and unchanged until [`run`]
/// returns), plus the labels, converted to f32 (one value per row, small beside the rows).
struct ArrayRows {
    /// The first element's address (a `usize` so the job's threads may hold it).
    base: usize,
    elem: Elem,
    rows: u64,
    cols: usize,
    /// Byte strides of a row and of a column.
    strides: [isize; 2],
    labels: Vec<f32>,
}

impl ArrayRows {
    /// Value `(r, c)` as f32, as the CLI reads a float64 `.npy`.
    ///
    /// # Safety
    /// `r < rows`, `c < cols`, and the array lent at `base` is alive.
    unsafe fn at(&self, r: u64, c: usize) -> f32 {
        let offset = r as isize * self.strides[0] + c as isize * self.strides[1];
        let p = (self.base as *const u8).offset(offset);
        match self.elem {
            Elem::F32 => (p as *const f32).read_unaligned(),
            Elem::F64 => (p as *const f64).read_unaligned() as f32,
        }
    }
}

impl RowSource for ArrayRows {
    fn shape(&self) -> DataShape {
        DataShape { cols: self.cols as u32, has_labels: !self.labels.is_empty(), total_rows: self.rows }
    }

    fn read(&self, range: Range<u64>) -> Rows {
        let range = range.start.min(self.rows)..range.end.min(self.rows);
        let n = (range.end - range.start) as usize;
        let row_major = self.strides[1] == std::mem::size_of::<f32>() as isize
            && self.strides[0] == (self.cols * std::mem::size_of::<f32>()) as isize;
        let features = match self.elem {
            // C-ordered float32: the rows are one slice already.
            // SAFETY: the range is within the array, which the caller keeps alive.
            Elem::F32 if row_major => unsafe {
                let first = (self.base as *const f32).add(range.start as usize * self.cols);
                std::slice::from_raw_parts(first, n * self.cols).to_vec()
            },
            _ => {
                let mut v = Vec::with_capacity(n * self.cols);
                for r in range.clone() {
                    // SAFETY: as above, element by element.
                    v.extend((0..self.cols).map(|c| unsafe { self.at(r, c) }));
                }
                v
            }
        };
        let labels = if self.labels.is_empty() {
            Vec::new()
        } else {
            self.labels[range.start as usize..range.end as usize].to_vec()
        };
        Rows { cols: self.cols, features, labels }
    }
}

/// Lends `x` (2-D, float32 or float64, any order) and `y` to a job.
fn lend(x: &Bound<'_, PyUntypedArray>, y: Option<PyReadonlyArray1<'_, f32>>) -> PyResult<ArrayRows> {
    let elem = if x.dtype().is_equiv_to(&numpy::dtype::<f32>(x.py())) {
        Elem::F32
    } else if x.dtype().is_equiv_to(&numpy::dtype::<f64>(x.py())) {
        Elem::F64
    } else {
        return Err(PyTypeError::new_err(format!("X must hold float32 or float64 values, got {}", x.dtype())));
    };
    let [rows, cols] = x.shape() else {
        return Err(PyValueError::new_err(format!("X must be a 2-D array, got shape {:?}", x.shape())));
    };
    let labels = match y {
        Some(y) => y.as_array().iter().copied().collect(),
        None => Vec::new(),
    };
    if !labels.is_empty() && labels.len() != *rows {
        return Err(PyValueError::new_err(format!("y has {} values but X has {rows} rows", labels.len())));
    }
    let strides = x.strides();
    // The data's address, by numpy's array interface (the struct is opaque under the stable ABI).
    let base: usize = x.getattr("__array_interface__")?.get_item("data")?.get_item(0)?.extract()?;
    Ok(ArrayRows { base, elem, rows: *rows as u64, cols: *cols, strides: [strides[0], strides[1]], labels })
}

/// The Python exception for a failed job: the first error in the chain that says what kind
/// of failure it is decides the type; the message is the whole chain on one line.
fn exception(e: &anyhow::Error) -> PyErr {
    let msg = format!("{e:#}").split_whitespace().collect::<Vec<_>>().join(" ");
    for cause in e.chain() {
        if let Some(d) = cause.downcast_ref::<DataError>() {
            return match d {
                DataError::Io { error, .. } if error.kind() == std::io::ErrorKind::NotFound => {
                    PyFileNotFoundError::new_err(msg)
                }
                DataError::Io { .. } | DataError::Object(_) => PyOSError::new_err(msg),
                _ => PyValueError::new_err(msg),
            };
        }
        if let Some(l) = cause.downcast_ref::<LoadError>() {
            return match l {
                LoadError::Read { kernel, .. } if !kernel.starts_with("s3://") && !Path::new(kernel).exists() => {
                    PyFileNotFoundError::new_err(msg)
                }
                LoadError::Read { .. } => PyOSError::new_err(msg),
                LoadError::UnknownBuiltin { .. } | LoadError::NotComponent { .. } | LoadError::WrongWorld { .. } => {
                    PyValueError::new_err(msg)
                }
                _ => PyRuntimeError::new_err(msg),
            };
        }
        let kind = if let Some(j) = cause.downcast_ref::<JobFailure>() {
            Some(j.kind())
        } else if let Some(i) = cause.downcast_ref::<InitError>() {
            Some(i.kind())
        } else {
            cause.downcast_ref::<RedisSetupError>().map(Classify::kind)
        };
        match kind {
            Some(FailureKind::BadInput) => return PyValueError::new_err(msg),
            Some(FailureKind::DataSource) => return PyOSError::new_err(msg),
            Some(FailureKind::StoreUnreachable) => return PyConnectionError::new_err(msg),
            Some(_) => return PyRuntimeError::new_err(msg),
            None => {}
        }
    }
    // What the driver refuses before a job starts: its arguments.
    PyValueError::new_err(msg)
}

/// Runs `ifp run ARGS...` and returns `(result JSON, assignments or None)`.
///
/// `x` (optional): the data as a 2-D float32/float64 array, in place of `--data`; `y`: its
/// labels as float32 (0 or 1 for logistic regression). `assignments`: return every row's
/// assignment under the final model (int32), as `--labels-out` writes it.
#[pyfunction]
#[pyo3(signature = (args, x=None, y=None, assignments=false))]
fn run<'py>(
    py: Python<'py>,
    args: Vec<String>,
    x: Option<&Bound<'py, PyUntypedArray>>,
    y: Option<PyReadonlyArray1<'py, f32>>,
    assignments: bool,
) -> PyResult<(String, Option<Bound<'py, PyArray1<i32>>>)> {
    let parsed = parse_run_args(&args).map_err(|e| {
        let text = e.render().to_string();
        PyValueError::new_err(text.lines().next().unwrap_or("invalid arguments").to_string())
    })?;
    let data = match x {
        Some(x) => {
            let rows = lend(x, y)?;
            let name = format!("array {}x{} {}", rows.rows, rows.cols, x.dtype());
            Some((Data::External(Arc::new(rows)), name))
        }
        None => None,
    };
    let cancel = Arc::new(AtomicBool::new(false));
    let embed = Embedding { data, assignments, cancel: Some(cancel.clone()) };
    let (tx, rx) = mpsc::channel();
    let mut interrupted = None;
    let out = std::thread::scope(|s| {
        s.spawn(move || {
            let _ = tx.send(run_job(&parsed, embed));
        });
        let mut rx = rx;
        loop {
            let (back, got) = py.detach(move || {
                let got = rx.recv_timeout(SIGNAL_POLL);
                (rx, got)
            });
            rx = back;
            match got {
                Ok(out) => return out,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if interrupted.is_none() {
                        if let Err(e) = py.check_signals() {
                            cancel.store(true, Ordering::Relaxed);
                            interrupted = Some(e);
                        }
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(anyhow::anyhow!("the job's thread ended without a result"));
                }
            }
        }
    });
    if let Some(e) = interrupted {
        return Err(e);
    }
    let out = out.map_err(|e| exception(&e))?;
    let json = serde_json::to_string(&out.result).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    let labels = out.labels.map(|l| PyArray1::from_vec(py, l.into_iter().map(|v| v as i32).collect()));
    Ok((json, labels))
}

#[pymodule]
fn _ifp(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // As in the `ifp` binary: freed chunk buffers go back to the OS at once, so a fit's peak
    // memory is the shards', not every buffer it ever read through.
    ifp_host::release_large_buffers();
    m.add_function(wrap_pyfunction!(run, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
