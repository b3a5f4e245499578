"""`ifp.LogisticRegression`: binary or multinomial (softmax) logistic regression, by full-batch
gradient descent or mini-batch SGD / momentum / Nesterov / Adam, as an ifp job, with
scikit-learn's classifier conventions."""

import numbers
import os

import numpy as np
from scipy.special import expit, softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from . import _job


class LogisticRegression(ClassifierMixin, BaseEstimator):
    """Logistic regression (mean log-loss, intercept, L2) run as WebAssembly kernels over
    functions x inner workers: binary for two classes, multinomial (softmax, as scikit-learn's
    `LogisticRegression` for more than two) otherwise. Full-batch gradient descent
    `w <- w - learning_rate (mean gradient + l2 w)` by default; scikit-learn's
    `LogisticRegression(C=C)` minimises the same loss with `l2 = 1 / (C n_samples)`.

    Parameters (defaults as `ifp run logreg`): learning_rate 0.1, l2 0.0, max_iter 100,
    tol 1e-6 (change of the loss; full batch only); batch_size None (full batch) or rows per
    mini-batch, drawn from a permutation of the rows seeded by random_state (0) per epoch;
    epochs (with batch_size: passes over the data, instead of max_iter iterations);
    optimizer "sgd" (default), "momentum", "nesterov" or "adam" (as SGDClassifier's
    `learning_rate="constant"` with these updates); classes None, or the number of classes of
    the labels 0..classes-1 of data at a path or URI (arrays give theirs through y); the
    backend parameters of `ifp.KMeans`.

    `fit(X, y)` takes arrays (X float32/float64 in any order, lent to the job; y any labels),
    or a path or `s3://` URI whose last column is the class number (y=None).

    Fitted attributes: coef_ (1, n_features) for two classes, (n_classes, n_features)
    otherwise; intercept_ (1,) or (n_classes,); classes_, n_iter_ (1,), n_features_in_,
    train_accuracy_ (accuracy on the training data, counted by the functions over their own
    rows), result_ (the CLI's result JSON as a dict).
    """

    def __init__(
        self,
        *,
        learning_rate=0.1,
        l2=0.0,
        max_iter=100,
        tol=1e-6,
        batch_size=None,
        epochs=None,
        optimizer="sgd",
        random_state=0,
        classes=None,
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
        self.batch_size = batch_size
        self.epochs = epochs
        self.optimizer = optimizer
        self.random_state = random_state
        self.classes = classes
        _job.store_backend_params(self, locals())

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = True
        return tags

    def _args(self, n_classes):
        args = ["logreg"]
        args += ["--learning-rate", _job.number(self.learning_rate, "learning_rate", low=0, low_inclusive=False)]
        args += ["--l2", _job.number(self.l2, "l2", low=0)]
        args += ["--tol", _job.number(self.tol, "tol", low=0)]
        if n_classes > 2:
            args += ["--classes", str(n_classes)]
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(map(repr, OPTIMIZERS))}, got {self.optimizer!r}")
        if self.optimizer != "sgd":
            args += ["--optimizer", self.optimizer]
        batch = _job.number(self.batch_size, "batch_size", kind=numbers.Integral, low=1, allow_none=True)
        epochs = _job.number(self.epochs, "epochs", kind=numbers.Integral, low=1, allow_none=True)
        if batch is None:
            if epochs is not None:
                raise ValueError("epochs needs batch_size (full batch counts iterations: max_iter)")
            args += ["--max-iter", _job.number(self.max_iter, "max_iter", kind=numbers.Integral, low=1)]
        else:
            args += ["--batch-size", batch, "--seed", _job.number(self.random_state, "random_state", kind=numbers.Integral, low=0)]
            if epochs is not None:
                args += ["--epochs", epochs]
            else:
                args += ["--max-iter", _job.number(self.max_iter, "max_iter", kind=numbers.Integral, low=1)]
        return args + _job.backend_args(self)

    def fit(self, X, y=None):
        """Fits on arrays `X`, `y`, or on a path / `s3://` URI with the label last; returns self."""
        if _job.is_location(X):
            if y is not None:
                raise ValueError("with data at a path or URI, the label is its last column: give y=None")
            n = 2 if self.classes is None else int(_job.number(self.classes, "classes", kind=numbers.Integral, low=2))
            result, _ = _job.run_job(self._args(n) + ["--data", os.fspath(X)])
            self.classes_ = np.arange(n, dtype=np.float64)
            self.n_features_in_ = int(result["config"]["cols"])
        else:
            if y is None:
                raise ValueError("LogisticRegression requires y to be passed, but the target y is None")
            X, y = _job.check_X_y(self, X, y)
            check_classification_targets(y)
            self.classes_ = np.unique(y)
            n = len(self.classes_)
            if n < 2:
                raise ValueError(f"LogisticRegression needs samples of 2 classes, got 1 class: {self.classes_[0]!r}")
            if self.classes is not None and self.classes != n:
                raise ValueError(f"classes={self.classes!r} but y has {n} classes (arrays give theirs through y)")
            labels = np.searchsorted(self.classes_, y).astype(np.float32)
            result, _ = _job.run_job(self._args(n), X, labels)
        self.result_ = result
        weights = np.asarray(result["model"]["weights"], dtype=np.float64)
        self.coef_ = weights.reshape(-1, self.n_features_in_)
        self.intercept_ = np.atleast_1d(np.asarray(result["model"]["intercept"], dtype=np.float64))
        self.n_iter_ = np.array([int(result["iterations"])])
        self.train_accuracy_ = float(result["accuracy"]["train"]["accuracy"])
        return self

    def decision_function(self, X):
        """`X @ coef_.T + intercept_`: for two classes one score per row, positive for the
        second class; else one per class."""
        check_is_fitted(self)
        X = _job.check_X(self, X, reset=False)
        scores = X @ self.coef_.T + self.intercept_
        return scores[:, 0] if len(self.classes_) == 2 else scores

    def predict(self, X):
        check_is_fitted(self)
        scores = self.decision_function(X)
        if scores.ndim == 1:
            return self.classes_[(scores > 0).astype(int)]
        return self.classes_[np.argmax(scores, axis=1)]

    def predict_proba(self, X):
        check_is_fitted(self)
        scores = self.decision_function(X)
        if scores.ndim == 1:
            p = expit(scores)
            return np.column_stack([1.0 - p, p])
        return softmax(scores, axis=1)

    def predict_log_proba(self, X):
        return np.log(self.predict_proba(X))


OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam")
