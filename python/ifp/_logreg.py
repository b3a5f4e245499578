"""`ifp.LogisticRegression`: binary logistic regression by full-batch gradient descent as an
ifp job, with scikit-learn's classifier conventions."""

import numbers
import os

import numpy as np
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from . import _job


class LogisticRegression(ClassifierMixin, BaseEstimator):
    """Binary logistic regression (mean log-loss, intercept, L2), full-batch gradient descent
    `w <- w - learning_rate (mean gradient + l2 w)`, run as WebAssembly kernels over functions
    x inner workers. scikit-learn's `LogisticRegression(C=C)` minimises the same loss with
    `l2 = 1 / (C n_samples)`.

    Parameters (defaults as `ifp run logreg`): learning_rate 0.1, l2 0.0, max_iter 100,
    tol 1e-6 (change of the loss); the backend parameters of `ifp.KMeans`.

    `fit(X, y)` takes arrays (X float32/float64 in any order, lent to the job; y any two
    classes), or a path or `s3://` URI whose last column is the 0/1 label (y=None).

    Fitted attributes: coef_ (1, n_features), intercept_ (1,), classes_, n_iter_ (1,),
    n_features_in_, result_ (the CLI's result JSON as a dict).
    """

    def __init__(
        self,
        *,
        learning_rate=0.1,
        l2=0.0,
        max_iter=100,
        tol=1e-6,
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
        self.learning_rate = learning_rate
        self.l2 = l2
        self.max_iter = max_iter
        self.tol = tol
        _job.store_backend_params(self, locals())

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    def _args(self):
        args = ["logreg"]
        args += ["--learning-rate", _job.number(self.learning_rate, "learning_rate", low=0, low_inclusive=False)]
        args += ["--l2", _job.number(self.l2, "l2", low=0)]
        args += ["--max-iter", _job.number(self.max_iter, "max_iter", kind=numbers.Integral, low=1)]
        args += ["--tol", _job.number(self.tol, "tol", low=0)]
        return args + _job.backend_args(self)

    def fit(self, X, y=None):
        """Fits on arrays `X`, `y`, or on a path / `s3://` URI with the label last; returns self."""
        if _job.is_location(X):
            if y is not None:
                raise ValueError("with data at a path or URI, the label is its last column: give y=None")
            result, _ = _job.run_job(self._args() + ["--data", os.fspath(X)])
            self.classes_ = np.array([0.0, 1.0])
            self.n_features_in_ = int(result["config"]["cols"])
        else:
            if y is None:
                raise ValueError("LogisticRegression requires y to be passed, but the target y is None")
            X, y = _job.check_X_y(self, X, y)
            check_classification_targets(y)
            self.classes_ = np.unique(y)
            if len(self.classes_) > 2:
                raise ValueError(
                    "Only binary classification is supported. The type of the target is multiclass "
                    f"with {len(self.classes_)} classes"
                )
            if len(self.classes_) < 2:
                raise ValueError(f"LogisticRegression needs samples of 2 classes, got 1 class: {self.classes_[0]!r}")
            labels = (y == self.classes_[1]).astype(np.float32)
            result, _ = _job.run_job(self._args(), X, labels)
        self.result_ = result
        self.coef_ = np.asarray(result["model"]["weights"], dtype=np.float64).reshape(1, -1)
        self.intercept_ = np.array([float(result["model"]["intercept"])])
        self.n_iter_ = np.array([int(result["iterations"])])
        return self

    def decision_function(self, X):
        """`X @ coef_ + intercept_`: positive for the second class."""
        check_is_fitted(self)
        X = _job.check_X(self, X, reset=False)
        return X @ self.coef_[0] + self.intercept_[0]

    def predict(self, X):
        check_is_fitted(self)
        return self.classes_[(self.decision_function(X) > 0).astype(int)]

    def predict_proba(self, X):
        check_is_fitted(self)
        p = expit(self.decision_function(X))
        return np.column_stack([1.0 - p, p])

    def predict_log_proba(self, X):
        return np.log(self.predict_proba(X))
