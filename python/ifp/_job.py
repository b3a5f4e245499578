"""Running one ifp job from Python: the estimators' parameters as `ifp run` arguments, the data
as an array lent to the job or a location the functions read themselves, and the CLI's result.

Every estimator goes through `run_job`, which calls the driver's own `run_job` (the code behind
`ifp run`), so a fit gives the same result JSON as the command line with the same arguments.
"""

import contextlib
import json
import numbers
import os

import numpy as np
from sklearn.utils.validation import validate_data

from ._ifp import run as _run

BACKENDS = ("local", "redis", "lambda")

# The parameters every estimator shares: where the job runs (the same options as the CLI).
BACKEND_PARAMS = (
    "backend",
    "n_functions",
    "n_inner",
    "redis_url",
    "function",
    "lambda_endpoints",
    "region",
    "memory_mb",
    "s3_endpoint",
    "sync_timeout",
)


def store_backend_params(est, values):
    """Stores the backend parameters among an estimator's `__init__` arguments, untouched."""
    for name in BACKEND_PARAMS:
        setattr(est, name, values[name])


def is_location(X):
    """Whether `X` names data the functions read themselves: a path or an `s3://` URI."""
    return isinstance(X, (str, os.PathLike))


def number(value, name, *, kind=numbers.Real, low=None, low_inclusive=True, allow_none=False):
    """`value` as the text `ifp run` parses, after checking its type and lower bound."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, kind):
        what = "an integer" if kind is numbers.Integral else "a number"
        raise TypeError(f"{name} must be {what}, got {value!r}")
    if kind is numbers.Real and not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if low is not None and (value < low or (value == low and not low_inclusive)):
        bound = ">=" if low_inclusive else ">"
        raise ValueError(f"{name} must be {bound} {low}, got {value!r}")
    return repr(int(value)) if kind is numbers.Integral else repr(float(value))


def backend_args(est):
    """The `ifp run` options for where `est`'s job runs."""
    backend = est.backend
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}, got {backend!r}")
    args = ["--quiet", "--functions", number(est.n_functions, "n_functions", kind=numbers.Integral, low=1)]
    inner = number(est.n_inner, "n_inner", kind=numbers.Integral, low=1, allow_none=True)
    if inner is not None:
        args += ["--inner", inner]
    args += ["--sync-timeout", number(est.sync_timeout, "sync_timeout", low=0, low_inclusive=False)]
    if backend == "redis" and not est.redis_url:
        raise ValueError("backend='redis' needs redis_url='redis://host:port'")
    if backend == "lambda" and not est.function:
        raise ValueError("backend='lambda' needs function='NAME' (the deployed ifp Lambda function)")
    if backend != "lambda":
        for name in ("function", "lambda_endpoints", "region", "memory_mb"):
            if getattr(est, name) is not None:
                raise ValueError(f"{name} applies to backend='lambda', not backend={backend!r}")
    if backend == "local" and est.redis_url is not None:
        raise ValueError("redis_url applies to backend='redis' or 'lambda', not backend='local'")
    if est.redis_url is not None:
        args += ["--redis", str(est.redis_url)]
    if backend == "lambda":
        args += ["--backend", "lambda", "--function", str(est.function)]
        for endpoint in est.lambda_endpoints or ():
            args += ["--lambda-endpoint", str(endpoint)]
        if est.region is not None:
            args += ["--region", str(est.region)]
        if est.memory_mb is not None:
            args += ["--memory-mb", number(est.memory_mb, "memory_mb", kind=numbers.Integral, low=128)]
    if est.s3_endpoint is not None:
        args += ["--s3-endpoint", str(est.s3_endpoint)]
    return args


@contextlib.contextmanager
def one_line():
    """scikit-learn's input errors on one line (its lines joined), as every ifp error is."""
    try:
        yield
    except (ValueError, TypeError) as e:
        text = str(e)
        if "\n" not in text:
            raise
        raise type(e)(" ".join(text.split())) from None


def check_X(est, X, *, reset):
    """`X` checked as an estimator input (one shared path, scikit-learn's): 2-D, finite,
    float32 or float64 kept as they are (C or Fortran order, no copy), anything else as float64."""
    with one_line():
        return validate_data(est, X, dtype=[np.float64, np.float32], order=None, reset=reset)


def check_X_y(est, X, y):
    """`X` as `check_X` does, and `y` of the same length, for `fit`."""
    with one_line():
        return validate_data(est, X, y, dtype=[np.float64, np.float32], order=None)


def run_job(args, X=None, y=None, *, assignments=False):
    """Runs `ifp run ARGS...` over `X` (an array, lent to the job) or the `--data` in `args`;
    returns the result (the CLI's `--out` JSON as a dict) and the assignments (or None)."""
    text, labels = _run([str(a) for a in args], X, y, assignments)
    return json.loads(text), labels


def model_array(value):
    """A field of the result's model as numpy (a number stays a float)."""
    return float(value) if isinstance(value, (int, float)) else np.asarray(value, dtype=np.float64)
