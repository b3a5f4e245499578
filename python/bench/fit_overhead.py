"""What `ifp.KMeans.fit` adds to the CLI: the same job (same data, parameters, functions and
inner workers) as `ifp run` and as `fit` on the array in memory, alternately, each in a fresh
process; medians of the wall times and the peak resident memory (ru_maxrss).

    python python/bench/fit_overhead.py --ifp target/debug/ifp --rows 1000000 --cols 32

The CLI's time is the whole `ifp run` process (start, read the .npy, the job); the Python time
is the `fit` call alone (the array is already in memory, as in a notebook). Memory: the CLI's
peak against the Python process's peak, whose baseline (interpreter, numpy, scikit-learn) and
array are reported separately.
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

FIT = """
import json, resource, sys, time
import numpy as np
import ifp
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
X = np.load(sys.argv[1])
loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
km = ifp.KMeans(int(sys.argv[2]), init="k-means++", random_state=1, max_iter=int(sys.argv[3]), n_inner=int(sys.argv[4]))
t = time.perf_counter()
km.fit(X)
fit_s = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"fit_s": fit_s, "base_kib": base, "loaded_kib": loaded, "peak_kib": peak,
                  "iterations": km.n_iter_, "centroids": km.cluster_centers_.tolist()}))
"""


def cli_run(ifp, data, k, max_iter, inner, out):
    t = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run(
        [ifp, "run", "kmeans", "--data", data, "--k", str(k), "--init", "kmeans++", "--seed", "1",
         "--max-iter", str(max_iter), "--inner", str(inner), "--quiet", "--out", out],
        check=True,
    )
    wall = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, peak, before


def cpu_model():
    try:
        return next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ifp", required=True)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--cols", type=int, default=32)
    p.add_argument("--k", type=int, default=16)
    p.add_argument("--max-iter", type=int, default=20)
    p.add_argument("--inner", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    print(f"CPU: {cpu_model()}; {os.cpu_count()} CPUs; Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        data, out = os.path.join(tmp, "x.npy"), os.path.join(tmp, "r.json")
        subprocess.run([a.ifp, "gen", "kmeans", "--rows", str(a.rows), "--cols", str(a.cols), "--k", str(a.k),
                        "--seed", "1", "--out", data], check=True, stderr=subprocess.DEVNULL)
        cli_s, py_s, cli_peaks, py = [], [], [], []
        for _ in range(a.repeats):
            # Each CLI run in its own measuring process, so RUSAGE_CHILDREN is that run's peak.
            r = subprocess.run([sys.executable, __file__, "--cli-once", a.ifp, data, str(a.k), str(a.max_iter),
                                str(a.inner), out], check=True, capture_output=True, text=True)
            wall, peak = map(float, r.stdout.split())
            cli_s.append(wall)
            cli_peaks.append(peak)
            r = subprocess.run([sys.executable, "-c", FIT, data, str(a.k), str(a.max_iter), str(a.inner)],
                               check=True, capture_output=True, text=True)
            py.append(json.loads(r.stdout))
            py_s.append(py[-1]["fit_s"])
        cli_json = json.load(open(out))
        same = cli_json["model"]["centroids"] == py[-1]["centroids"] and cli_json["iterations"] == py[-1]["iterations"]
        mib = lambda kib: kib / 1024
        array_mib = a.rows * a.cols * 4 / 2**20
        print(f"{a.rows} x {a.cols} float32 ({array_mib:.0f} MiB), k={a.k}, {cli_json['iterations']} iterations, "
              f"1 function x {a.inner} inner workers, {a.repeats} runs each, alternating")
        print(f"same model and iterations as the CLI: {same}")
        print(f"CLI `ifp run` wall: median {statistics.median(cli_s):.3f} s ({min(cli_s):.3f}-{max(cli_s):.3f})")
        print(f"Python `fit` wall:  median {statistics.median(py_s):.3f} s ({min(py_s):.3f}-{max(py_s):.3f})")
        print(f"fit / CLI: {statistics.median(py_s) / statistics.median(cli_s):.3f}")
        peak_py = statistics.median(r["peak_kib"] for r in py)
        base = statistics.median(r["base_kib"] for r in py)
        loaded = statistics.median(r["loaded_kib"] for r in py)
        print(f"peak RSS: CLI {mib(statistics.median(cli_peaks)):.0f} MiB; Python process {mib(peak_py):.0f} MiB "
              f"(interpreter + numpy + scikit-learn + ifp imported: {mib(base):.0f} MiB, with the array loaded: "
              f"{mib(loaded):.0f} MiB, so the fit added {mib(peak_py - loaded):.0f} MiB)")
        print(f"bound 'array + CLI's own': {array_mib + mib(statistics.median(cli_peaks)):.0f} MiB; "
              f"Python peak minus its import baseline: {mib(peak_py - base):.0f} MiB")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--cli-once":
        ifp, data, k, max_iter, inner, out = sys.argv[2:8]
        wall, peak, _ = cli_run(ifp, data, int(k), int(max_iter), int(inner), out)
        print(wall, peak)
    else:
        main()
