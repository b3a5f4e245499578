"""The Python side of `ifp bench` (embedded in the ifp binary and run by it).

Times, on the .npy files `ifp bench` wrote to DIR, what a user would otherwise run:
- one scikit-learn `KMeans(algorithm="lloyd")` iteration, as (fit with max_iter=12 minus fit
  with max_iter=2) / 10 from the same initial centroids with tol=0, so that the fixed costs
  of a fit (validation, copies, the final E-step) cancel;
- one numpy full-batch logistic-regression gradient step (forward, loss and gradient);
- `KMeans(algorithm="lloyd")` and `KMeans(algorithm="elkan")` to convergence (tol=1e-4,
  max_iter=300) on the blobs, from each set of initial centroids ours started from
  (`blobs_init_<START>.npy`), CONVERGE_REPEATS times each (final centroids and iteration
  counts reported);
- the strongest CPU peers, when installed: Intel's scikit-learn-intelex (oneDAL) `KMeans`
  (per iteration as scikit-learn's, and to convergence) and faiss-cpu's `Kmeans` configured
  for full Lloyd passes (every row each iteration: no subsampling; faiss has no tolerance, so
  to convergence it runs the iterations our Lloyd took from that start, LLOYD_ITERS).
Thread pools are limited to THREADS (the caller also sets OMP/OPENBLAS/MKL_NUM_THREADS).
Prints one JSON object on the last line of stdout.

usage: python bench.py DIR THREADS REPEATS CONVERGE_REPEATS START=LLOYD_ITERS...
"""

import importlib.metadata
import json
import platform
import sys
import time

import numpy as np
import sklearn
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_info, threadpool_limits


def blas_name():
    try:
        cfg = np.show_config(mode="dicts")
        b = cfg["Build Dependencies"]["blas"]
        return f"{b.get('name')} {b.get('version', '')}".strip()
    except Exception as e:  # older numpy: no dict mode
        return f"unknown ({e})"


def kmeans_fit(x, c0, iters):
    km = KMeans(n_clusters=c0.shape[0], init=c0, n_init=1, max_iter=iters, tol=0.0, algorithm="lloyd")
    t = time.perf_counter()
    km.fit(x)
    return time.perf_counter() - t, km


def peers(threads):
    """The installed peers: {name: (version, fit(x, c0, iters, tol) -> (seconds, centers, n_iter))}."""
    found = {}
    try:
        from sklearnex.cluster import KMeans as KMeansX

        try:
            import daal4py

            daal4py.daalinit(threads)
        except Exception:
            pass

        def fit_x(x, c0, iters, tol):
            km = KMeansX(n_clusters=c0.shape[0], init=c0, n_init=1, max_iter=iters, tol=tol, algorithm="lloyd")
            t = time.perf_counter()
            km.fit(x)
            return time.perf_counter() - t, km.cluster_centers_, int(km.n_iter_)

        found["sklearnex"] = (importlib.metadata.version("scikit-learn-intelex"), fit_x)
    except ImportError:
        pass
    try:
        import faiss

        faiss.omp_set_num_threads(threads)

        def fit_f(x, c0, iters, tol):
            # Full Lloyd passes: every row every iteration (no subsampling), no reseeding
            # beyond faiss's own empty-cluster split, the given start.
            km = faiss.Kmeans(
                x.shape[1], c0.shape[0], niter=iters, max_points_per_centroid=x.shape[0] + 1,
                min_points_per_centroid=1, seed=1, verbose=False,
            )
            t = time.perf_counter()
            km.train(x, init_centroids=c0)
            return time.perf_counter() - t, km.centroids, iters

        found["faiss"] = (faiss.__version__, fit_f)
    except ImportError:
        pass
    return found


def logreg_step(x, y, w, b):
    z = x @ w + b
    p = 1.0 / (1.0 + np.exp(-z))
    loss = np.sum(np.logaddexp(0.0, z) - y * z)
    r = p - y
    gw = x.T @ r
    gb = r.sum()
    return gw, gb, loss


def main():
    d, threads, repeats, converge_repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    starts = [a.split("=") for a in sys.argv[5:]]
    x = np.load(f"{d}/kmeans_x.npy")
    c0 = np.load(f"{d}/kmeans_init.npy")
    xl = np.load(f"{d}/logreg_x.npy")
    y = np.load(f"{d}/logreg_y.npy").ravel()
    out = {"python": platform.python_version(), "numpy": np.__version__, "sklearn": sklearn.__version__, "blas": blas_name()}
    with threadpool_limits(limits=threads):
        out["threadpools"] = [
            {k: p.get(k) for k in ("user_api", "internal_api", "version", "num_threads", "architecture")}
            for p in threadpool_info()
        ]
        kmeans_fit(x, c0, 2)  # warm-up: imports, thread pools, page faults
        per_iter, iters12, fits = [], None, {"t2": [], "t12": []}
        for _ in range(repeats):
            t2, _ = kmeans_fit(x, c0, 2)
            t12, km = kmeans_fit(x, c0, 12)
            iters12 = int(km.n_iter_)
            per_iter.append((t12 - t2) / 10.0)
            fits["t2"].append(t2)
            fits["t12"].append(t12)
        out["kmeans_iter_s"] = per_iter
        out["kmeans_iter_fits"] = fits
        out["kmeans_n_iter_12"] = iters12
        _, km2 = kmeans_fit(x, c0, 2)
        out["kmeans_centers_2"] = km2.cluster_centers_.astype(float).ravel().tolist()
        found = peers(threads)
        out["peers"] = {name: version for name, (version, _) in found.items()}
        for name, (_, fit) in found.items():
            fit(x, c0, 2, 0.0)  # warm-up
            per_iter, fits = [], {"t2": [], "t12": []}
            for _ in range(repeats):
                t2 = fit(x, c0, 2, 0.0)[0]
                t12 = fit(x, c0, 12, 0.0)[0]
                per_iter.append((t12 - t2) / 10.0)
                fits["t2"].append(t2)
                fits["t12"].append(t12)
            out[f"kmeans_iter_{name}_s"] = per_iter
            out[f"kmeans_iter_{name}_fits"] = fits

        w = (0.01 * (np.arange(xl.shape[1]) - xl.shape[1] / 2)).astype(np.float32)
        b = np.float32(0.1)
        logreg_step(xl, y, w, b)
        steps = []
        for _ in range(max(repeats, 5)):
            t = time.perf_counter()
            logreg_step(xl, y, w, b)
            steps.append(time.perf_counter() - t)
        out["logreg_step_s"] = steps
        del x, xl, y

        xb = np.load(f"{d}/blobs_x.npy")
        for start, lloyd_iters in starts:
            cb = np.load(f"{d}/blobs_init_{start}.npy")
            runs = {}
            for alg in ("lloyd", "elkan"):
                times = []
                for _ in range(converge_repeats):
                    km = KMeans(n_clusters=cb.shape[0], init=cb, n_init=1, max_iter=300, tol=1e-4, algorithm=alg)
                    t = time.perf_counter()
                    km.fit(xb)
                    times.append(time.perf_counter() - t)
                runs[alg] = (times, km.cluster_centers_, int(km.n_iter_))
            for name, (_, fit) in found.items():
                fit(xb[:10000], cb, 2, 1e-4)  # warm-up
                results = [fit(xb, cb, 300 if name != "faiss" else int(lloyd_iters), 1e-4) for _ in range(converge_repeats)]
                runs[name] = ([r[0] for r in results], results[-1][1], results[-1][2])
            # The yardstick for "close": scikit-learn's own float32 run against its float64 run.
            km64 = KMeans(n_clusters=cb.shape[0], init=cb.astype(np.float64), n_init=1, max_iter=300, tol=1e-4)
            km64.fit(xb.astype(np.float64))
            out[f"converge_{start}_f64_centers"] = km64.cluster_centers_.ravel().tolist()
            out[f"converge_{start}"] = {
                name: {"s": times, "n_iter": n_iter, "centers": np.asarray(c, dtype=float).ravel().tolist()}
                for name, (times, c, n_iter) in runs.items()
            }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
