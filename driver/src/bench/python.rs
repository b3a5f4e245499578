//! The Python side of `ifp bench`: the interpreter (given, or a virtual environment set up
//! with pinned packages), the embedded `bench.py` that times scikit-learn, numpy and the CPU
//! peers, and the peak memory of a child `ifp run`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context as _, Result};
use serde_json::Value;

use super::measure::{timed, CONVERGE_TOL, FASTEST};

/// The Python side (scikit-learn and numpy timings).
pub(super) const BENCH_PY: &str = include_str!("bench.py");
/// Pinned versions for `--setup-python` (the same pins as the reference fixtures).
/// The CPU peers, installed by `--setup-python` when the platform has wheels for them.
pub(super) const PEERS: &str = include_str!("peers-requirements.txt");
pub(super) const REQUIREMENTS: &str = include_str!("../../tests/fixtures/requirements.txt");
/// Peak resident memory (bytes) of a child `ifp run kmeans` on `data` from `init`, read by
/// `python` as `ru_maxrss` of its finished child.
pub(super) fn peak_rss(python: &Path, data: &Path, init: &Path, inner: u64) -> Result<u64> {
    let exe = std::env::current_exe().context("cannot find the ifp binary")?;
    let out_json = data.with_file_name("rss-run.json");
    let script = "import resource, subprocess, sys\n\
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n\
sys.stderr.write(r.stderr.decode(errors='replace')[-2000:])\n\
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss if r.returncode == 0 else -1)\n";
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(&exe)
        .args(["run", "kmeans", "--quiet", "--workers", "1", "--inner"])
        .arg(inner.to_string())
        .arg("--data")
        .arg(data)
        .arg("--init-centroids")
        .arg(init)
        .args(["--tol", CONVERGE_TOL, "--out"])
        .arg(&out_json)
        .output()
        .with_context(|| format!("cannot run python '{}' to measure the peak memory", python.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let kb: i64 = stdout.trim().parse().unwrap_or(-1);
    if kb < 0 {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!("the memory run of 'ifp run kmeans' failed: {}", err.lines().last().unwrap_or("no output"));
    }
    Ok(kb as u64 * 1024)
}

/// Creates (or reuses) a venv in `dir` with the pinned packages; returns its interpreter.
pub(super) fn setup_python(dir: &Path) -> Result<PathBuf> {
    let py = dir.join("bin").join("python");
    if !py.exists() {
        eprintln!("creating a Python virtual environment in {}", dir.display());
        let st = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(dir)
            .status()
            .context("cannot run python3 to create the virtual environment")?;
        ensure!(st.success(), "python3 -m venv {} failed ({st})", dir.display());
    }
    eprintln!("installing the pinned packages (numpy, scikit-learn, threadpoolctl, ...)");
    let st = pip_install(&py, REQUIREMENTS)?;
    ensure!(st.success(), "pip install into {} failed ({st})", dir.display());
    // The peers are wheels for some platforms only: without them the table just lacks them.
    eprintln!("installing the CPU peers (faiss-cpu, scikit-learn-intelex)");
    let st = pip_install(&py, PEERS)?;
    if !st.success() {
        eprintln!("warning: the CPU peers could not be installed ({st}); comparing with scikit-learn only");
    }
    Ok(py)
}

/// `pip install -r` of the `requirements` text with the interpreter `py`.
fn pip_install(py: &Path, requirements: &str) -> Result<std::process::ExitStatus> {
    let req = tempfile::Builder::new().prefix("ifp-requirements-").suffix(".txt").tempfile()?;
    std::fs::write(req.path(), requirements)?;
    Command::new(py)
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
        .arg(req.path())
        .status()
        .with_context(|| format!("cannot run {}", py.display()))
}

/// The last non-empty line of a failed Python's stderr (its exception), for a one-line error.
pub(super) fn last_line(stderr: &[u8]) -> String {
    let err = String::from_utf8_lossy(stderr);
    err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output").to_string()
}

/// Fails early, in one line, when `python` cannot run or lacks a package the script needs.
pub(super) fn check_python(python: &Path) -> Result<()> {
    let out =
        Command::new(python).args(["-c", "import numpy, sklearn, threadpoolctl"]).output().with_context(|| {
            format!("cannot run python '{}' (give --python PATH or --setup-python DIR)", python.display())
        })?;
    if !out.status.success() {
        let last = last_line(&out.stderr);
        bail!(
            "python '{}' cannot import numpy, scikit-learn and threadpoolctl: {last} (try --setup-python DIR)",
            python.display()
        );
    }
    Ok(())
}

pub(super) fn run_python(
    python: &Path,
    dir: &Path,
    threads: u64,
    repeats: u64,
    converge_repeats: u64,
    starts: &[(String, u32)],
) -> Result<Value> {
    let script = dir.join("bench.py");
    std::fs::write(&script, BENCH_PY)?;
    let n = threads.to_string();
    eprintln!("timing scikit-learn, numpy and the installed peers with {} ({threads} threads)", python.display());
    let out = Command::new(python)
        .arg(&script)
        .arg(dir)
        .arg(&n)
        .arg(repeats.to_string())
        .arg(converge_repeats.to_string())
        .args(starts.iter().map(|(name, lloyd_iters)| format!("{name}={lloyd_iters}")))
        .envs(
            ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"].map(|v| (v, n.as_str())),
        )
        .output()
        .with_context(|| {
            format!("cannot run python '{}' (give --python PATH or --setup-python DIR)", python.display())
        })?;
    if !out.status.success() {
        let last = last_line(&out.stderr);
        bail!(
            "the Python benchmark failed under '{}' ({}): {last} (it needs numpy, scikit-learn and threadpoolctl: try --setup-python DIR)",
            python.display(),
            out.status
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line =
        stdout.lines().rev().find(|l| l.starts_with('{')).context("the Python benchmark printed no JSON result")?;
    serde_json::from_str(line).context("the Python benchmark printed malformed JSON")
}

pub(super) fn secs(v: &Value, key: &str) -> Result<f64> {
    let mut xs: Vec<f64> = v[key]
        .as_array()
        .with_context(|| format!("python result lacks '{key}'"))?
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    ensure!(!xs.is_empty(), "python result '{key}' is empty");
    Ok(timed(&format!("python's {key}"), &mut xs))
}

/// A per-iteration time that `bench.py` measured as the difference of a 12-iteration and a
/// 2-iteration fit, / 10: the median of the repeats' differences, or with `--fastest` the
/// fastest 12-iteration fit less the fastest 2-iteration one (the smallest difference would
/// reward a repeat whose 2-iteration fit was slowed down; it could be negative).
pub(super) fn iter_secs(v: &Value, key: &str) -> Result<f64> {
    // Read in both modes: it also notes the repeats' spread for the busy-machine warning.
    let median = secs(v, &format!("{key}_s"))?;
    if !FASTEST.load(std::sync::atomic::Ordering::Relaxed) {
        return Ok(median);
    }
    let fastest = |fits: &str| -> Result<f64> {
        v[format!("{key}_fits")][fits]
            .as_array()
            .with_context(|| format!("python result lacks '{key}_fits.{fits}'"))?
            .iter()
            .filter_map(Value::as_f64)
            .reduce(f64::min)
            .with_context(|| format!("python result '{key}_fits.{fits}' is empty"))
    };
    Ok((fastest("t12")? - fastest("t2")?) / 10.0)
}

/// One peer's runs to convergence from one start, as `bench.py` reported them.
pub(super) struct PeerRun {
    /// `lloyd` and `elkan` (scikit-learn), `sklearnex`, `faiss`.
    pub(super) name: String,
    pub(super) secs: f64,
    pub(super) iterations: u64,
    pub(super) centers: Vec<f64>,
}

impl PeerRun {
    pub(super) fn label(&self) -> String {
        match self.name.as_str() {
            "lloyd" | "elkan" => format!("scikit-learn {}", self.name),
            "sklearnex" => "scikit-learn-intelex".into(),
            "faiss" => "faiss (our Lloyd's iterations)".into(),
            other => other.into(),
        }
    }
}

/// The peers' runs to convergence from `start` (median seconds, iterations, final centroids).
pub(super) fn peer_runs(v: &Value, start: &str) -> Result<Vec<PeerRun>> {
    let runs = v[format!("converge_{start}")]
        .as_object()
        .with_context(|| format!("python result lacks the runs from {start}"))?;
    runs.iter()
        .map(|(name, r)| {
            let mut times: Vec<f64> = r["s"].as_array().into_iter().flatten().filter_map(Value::as_f64).collect();
            ensure!(!times.is_empty(), "python result has no times for {name} from {start}");
            Ok(PeerRun {
                name: name.clone(),
                secs: timed(&format!("{name} to convergence from {start}"), &mut times),
                iterations: r["n_iter"].as_u64().unwrap_or(0),
                centers: r["centers"].as_array().into_iter().flatten().filter_map(Value::as_f64).collect(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `bench.py`'s runs to convergence: the median time of each peer, its iterations and
    /// centroids; a start the script did not run is an error naming it.
    #[test]
    fn peer_runs_take_the_median_of_each_peer() {
        let _timing = super::super::measure::timing_test_lock();
        let v = serde_json::json!({"converge_first": {
            "lloyd": {"s": [1.1, 1.0, 1.05], "n_iter": 7, "centers": [1.0, 2.0]},
            "faiss": {"s": [0.5], "n_iter": 9, "centers": [1.5, 2.5]}
        }});
        let runs = peer_runs(&v, "first").unwrap();
        let got: Vec<(String, f64, u64, Vec<f64>, String)> =
            runs.iter().map(|p| (p.name.clone(), p.secs, p.iterations, p.centers.clone(), p.label())).collect();
        assert_eq!(
            got,
            [
                ("faiss".into(), 0.5, 9, vec![1.5, 2.5], "faiss (our Lloyd's iterations)".into()),
                ("lloyd".into(), 1.05, 7, vec![1.0, 2.0], "scikit-learn lloyd".into()),
            ]
        );
        let e = peer_runs(&v, "kmeans++").err().unwrap().to_string();
        assert_eq!(e, "python result lacks the runs from kmeans++");
    }
}
