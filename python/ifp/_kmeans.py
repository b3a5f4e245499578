"""`ifp.KMeans`: k-means (Lloyd's algorithm, by default with Hamerly's bounds) as an ifp job,
with scikit-learn's estimator conventions."""

import numbers
import os
import tempfile

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.metrics import pairwise_distances_argmin_min
from sklearn.metrics.pairwise import euclidean_distances
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from . import _job

INITS = {"k-means++": "kmeans++", "random": "random", "first": "first"}


class KMeans(ClusterMixin, TransformerMixin, BaseEstimator):
    """K-means clustering run as WebAssembly kernels over functions x inner workers.

    Parameters (defaults as `ifp run kmeans`):
    - n_clusters: int, 8.
    - init: "k-means++" (default), "random" (a seeded sample), "first" (the first
      n_clusters rows), or an array (n_clusters, n_features) of starting centroids.
    - max_iter: int, 300. tol: float, 1e-4, relative to the mean feature variance
      (scikit-learn's rule).
    - random_state: int, RandomState or None (None: seed 0, so fits repeat exactly).
    - algorithm: "hamerly" (default; distance bounds, exactly Lloyd's result) or "lloyd".
    - backend: "local" (threads of this process), "redis" (`ifp-worker` processes through
      `redis_url`), "lambda" (AWS Lambda `function`, with `lambda_endpoints`, `region`,
      `memory_mb`, and `redis_url` for the functions' Redis); n_functions, n_inner (default:
      the machine's parallelism), s3_endpoint for `s3://` data, sync_timeout (seconds).

    `fit(X)` takes an array (float32/float64, any order, lent to the job without a copy) or a
    path or `s3://` URI that the functions read themselves (then `labels_` is not gathered).

    Fitted attributes: cluster_centers_, labels_ (arrays only), inertia_ (the CLI's `loss`:
    the inertia of the centroids entering the last iteration), n_iter_, n_features_in_,
    result_ (the CLI's result JSON as a dict).
    """

    def __init__(
        self,
        n_clusters=8,
        *,
        init="k-means++",
        max_iter=300,
        tol=1e-4,
        random_state=None,
        algorithm="hamerly",
        backend="local",
        n_functions=1,
        n_inner=None,
        redis_url=None,
        function=None,
        lambda_endpoints=None,
        region=None,
        memory_mb=None,
        s3_endpoint=None,
        sync_timeout=60.0,
    ):
        self.n_clusters = n_clusters
        self.init = init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.algorithm = algorithm
        _job.store_backend_params(self, locals())

    def _args(self, n_features):
        """`ifp run kmeans` arguments, and the initial centroids to write (or None)."""
        k = _job.number(self.n_clusters, "n_clusters", kind=numbers.Integral, low=1)
        args = ["kmeans", "--k", k]
        args += ["--max-iter", _job.number(self.max_iter, "max_iter", kind=numbers.Integral, low=1)]
        args += ["--tol", _job.number(self.tol, "tol", low=0)]
        if self.algorithm not in ("hamerly", "lloyd"):
            raise ValueError(f"algorithm must be 'hamerly' or 'lloyd', got {self.algorithm!r}")
        args += ["--kmeans-algorithm", self.algorithm]
        seed = self.random_state
        if seed is None:
            seed = 0
        elif not isinstance(seed, numbers.Integral) or isinstance(seed, bool):
            seed = check_random_state(seed).randint(np.iinfo(np.int32).max)
        if seed < 0:
            raise ValueError(f"random_state must be >= 0, got {seed!r}")
        args += ["--seed", str(int(seed))]
        centroids = None
        if isinstance(self.init, str):
            if self.init not in INITS:
                raise ValueError(f"init must be one of {', '.join(map(repr, INITS))} or an array, got {self.init!r}")
            args += ["--init", INITS[self.init]]
        else:
            centroids = np.asarray(self.init, dtype=np.float32)
            want = (int(k), n_features) if n_features is not None else (int(k), centroids.shape[-1])
            if centroids.shape != want:
                raise ValueError(f"init has shape {centroids.shape}, expected (n_clusters, n_features) = {want}")
            if not np.all(np.isfinite(centroids)):
                raise ValueError("init holds NaN or infinite values")
        return args + _job.backend_args(self), centroids

    def fit(self, X, y=None):
        """Runs k-means on `X` (array, path or `s3://` URI); returns self."""
        location = _job.is_location(X)
        if not location:
            X = _job.check_X(self, X, reset=True)
            n, d = X.shape
            if isinstance(self.n_clusters, numbers.Integral) and n < self.n_clusters:
                raise ValueError(f"n_samples={n} should be >= n_clusters={self.n_clusters}.")
        args, centroids = self._args(None if location else d)
        with tempfile.TemporaryDirectory(prefix="ifp-") as tmp:
            if centroids is not None:
                path = os.path.join(tmp, "init.npy")
                np.save(path, centroids)
                args += ["--init-centroids", path]
            if location:
                result, labels = _job.run_job(args + ["--data", os.fspath(X)])
            else:
                result, labels = _job.run_job(args, X, assignments=True)
        self.result_ = result
        self.cluster_centers_ = np.asarray(result["model"]["centroids"], dtype=np.float64)
        if location:
            self.n_features_in_ = int(result["config"]["cols"])
        else:
            self.labels_ = labels
        self.inertia_ = float(result["loss"])
        self.n_iter_ = int(result["iterations"])
        return self

    def fit_predict(self, X, y=None):
        """The labels of `X` after fitting on it (an array)."""
        return self.fit(X).labels_

    def predict(self, X):
        """The nearest centroid of each row of `X`."""
        check_is_fitted(self)
        X = _job.check_X(self, X, reset=False)
        return pairwise_distances_argmin_min(X, self.cluster_centers_)[0].astype(np.int32)

    def transform(self, X):
        """The distance of each row of `X` to each centroid."""
        check_is_fitted(self)
        X = _job.check_X(self, X, reset=False)
        return euclidean_distances(X, self.cluster_centers_)

    def score(self, X, y=None):
        """Minus the inertia of `X` under the centroids (higher is better)."""
        check_is_fitted(self)
        X = _job.check_X(self, X, reset=False)
        d = pairwise_distances_argmin_min(X, self.cluster_centers_)[1]
        return -float(np.dot(d, d))
