"""ifp from Python: scikit-learn estimators whose `fit` runs an ifp job (WebAssembly kernels,
one instance per vCPU, over functions that synchronise once per iteration), in this process,
as `ifp-worker` processes through Redis, or on AWS Lambda. Results equal the `ifp` CLI's for
the same arguments; `estimator.result_` holds its result JSON."""

from ._ifp import __version__
from ._kernel import Kernel
from ._kmeans import KMeans
from ._logreg import LogisticRegression

__all__ = ["KMeans", "LogisticRegression", "Kernel", "__version__"]
