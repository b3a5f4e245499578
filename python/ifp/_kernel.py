"""`ifp.Kernel`: any plugin component of the `ifp:kernel` world, fitted from Python."""

import numbers
import os

import numpy as np
from sklearn.utils import check_array

from . import _job


class Kernel:
    """A plugin kernel (`FILE.wasm` or `s3://bucket/key`), run like `ifp run --kernel`.

    The backend parameters are those of `ifp.KMeans`; `kernel_memory_mb` caps each instance's
    memory and `step_timeout` (seconds) bounds each call into the kernel.
    """

    def __init__(self, path, *, kernel_memory_mb=None, step_timeout=None, **backend):
        unknown = set(backend) - set(_job.BACKEND_PARAMS)
        if unknown:
            raise TypeError(f"unknown Kernel parameter(s): {', '.join(sorted(unknown))}")
        self.path = os.fspath(path)
        self.kernel_memory_mb = kernel_memory_mb
        self.step_timeout = step_timeout
        for name in _job.BACKEND_PARAMS:
            setattr(self, name, backend.get(name))
        self.backend = self.backend or "local"
        self.n_functions = self.n_functions or 1
        self.sync_timeout = self.sync_timeout or 60.0

    def fit(self, X, y=None, *, max_iter=None, **params):
        """Runs the plugin on `X` (array, with labels `y` if it wants them, or a path / URI,
        label in the last column when `label_last=True` is given); every other keyword is a
        kernel parameter (`--param NAME=VALUE`). Returns the plugin's described model: a dict
        of its named fields (numbers or numpy arrays). The whole result is `self.result_`."""
        args = ["--kernel", self.path]
        label_last = params.pop("label_last", False)
        for name, value in params.items():
            args += ["--param", f"{name.replace('_', '-')}={value}"]
        if max_iter is not None:
            args += ["--max-iter", _job.number(max_iter, "max_iter", kind=numbers.Integral, low=1)]
        if self.kernel_memory_mb is not None:
            args += ["--kernel-memory-mb", _job.number(self.kernel_memory_mb, "kernel_memory_mb", kind=numbers.Integral, low=1)]
        if self.step_timeout is not None:
            args += ["--step-timeout", _job.number(self.step_timeout, "step_timeout", low=0, low_inclusive=False)]
        args += _job.backend_args(self)
        if _job.is_location(X):
            args += ["--data", os.fspath(X), "--label-col", "last" if label_last else "none"]
            result, _ = _job.run_job(args)
        else:
            X = check_array(X, dtype=[np.float64, np.float32], order=None)
            if y is not None:
                y = np.asarray(y, dtype=np.float32).ravel()
            result, _ = _job.run_job(args, X, y)
        self.result_ = result
        return {name: _job.model_array(v) for name, v in result["model"].items()}
