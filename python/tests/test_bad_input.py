"""Bad input is a Python exception of the conventional type with one line naming what is
wrong and the offending value; the interpreter never crashes."""

import numpy as np
import pytest
import scipy.sparse
from sklearn.exceptions import NotFittedError

import ifp
from conftest import blobs, linear

X = blobs(n=300, d=4, k=3)


def raises_one_line(exc, match, fn, *args, **kwargs):
    with pytest.raises(exc, match=match) as e:
        fn(*args, **kwargs)
    assert "\n" not in str(e.value), f"more than one line: {e.value}"
    return str(e.value)


@pytest.mark.parametrize(
    "params, exc, match",
    [
        ({"n_clusters": 0}, ValueError, "n_clusters must be >= 1, got 0"),
        ({"n_clusters": 2.5}, TypeError, "n_clusters must be an integer, got 2.5"),
        ({"init": "bogus"}, ValueError, "init must be one of .* got 'bogus'"),
        ({"init": np.zeros((2, 4))}, ValueError, r"init has shape \(2, 4\), expected .* \(3, 4\)"),
        ({"max_iter": 0}, ValueError, "max_iter must be >= 1, got 0"),
        ({"tol": -1.0}, ValueError, "tol must be >= 0, got -1.0"),
        ({"tol": float("nan")}, ValueError, "tol must be finite, got nan"),
        ({"algorithm": "elkan"}, ValueError, "algorithm must be 'hamerly' or 'lloyd', got 'elkan'"),
        ({"random_state": -3}, ValueError, "random_state must be >= 0, got -3"),
        ({"backend": "gpu"}, ValueError, "backend must be one of 'local', 'redis', 'lambda', got 'gpu'"),
        ({"backend": "redis"}, ValueError, "backend='redis' needs redis_url"),
        ({"backend": "lambda"}, ValueError, "backend='lambda' needs function="),
        ({"function": "f"}, ValueError, "function applies to backend='lambda', not backend='local'"),
        ({"n_functions": 0}, ValueError, "n_functions must be >= 1, got 0"),
        ({"n_inner": "2"}, TypeError, "n_inner must be an integer, got '2'"),
        ({"n_functions": 5000}, ValueError, "invalid value '5000' for '--functions"),
    ],
)
def test_kmeans_parameters(params, exc, match):
    est = ifp.KMeans(**{"n_clusters": 3, **params})  # stored untouched: checked in fit
    raises_one_line(exc, match, est.fit, X)


@pytest.mark.parametrize(
    "params, exc, match",
    [
        ({"learning_rate": 0.0}, ValueError, "learning_rate must be > 0, got 0.0"),
        ({"learning_rate": "fast"}, TypeError, "learning_rate must be a number, got 'fast'"),
        ({"l2": -0.1}, ValueError, "l2 must be >= 0, got -0.1"),
        ({"optimizer": "rmsprop"}, ValueError, "optimizer must be one of 'sgd', 'momentum', 'nesterov', 'adam', got 'rmsprop'"),
        ({"batch_size": 0}, ValueError, "batch_size must be >= 1, got 0"),
        ({"batch_size": 500}, ValueError, "batch-size' is 500, more than the 200 rows"),
        ({"epochs": 2}, ValueError, "epochs needs batch_size"),
        ({"batch_size": 10, "epochs": 0}, ValueError, "epochs must be >= 1, got 0"),
    ],
)
def test_logreg_parameters(params, exc, match):
    Xl, y = linear(n=200)
    raises_one_line(exc, match, ifp.LogisticRegression(**params).fit, Xl, y)


def test_data_errors():
    km = ifp.KMeans(3)
    raises_one_line(ValueError, "Input X contains NaN. KMeans does not accept missing values", km.fit, np.where(X > 5, np.nan, X))
    raises_one_line(ValueError, "Expected 2D array, got 1D array", km.fit, X[:, 0])
    raises_one_line(ValueError, "could not convert string to float", km.fit, np.array([["a", "b"]] * 5))
    raises_one_line(TypeError, "Sparse data was passed", km.fit, scipy.sparse.csr_matrix(X))
    raises_one_line(ValueError, "n_samples=2 should be >= n_clusters=3", km.fit, X[:2])
    raises_one_line(ValueError, "Found array with 0 sample", km.fit, X[:0])


def test_files_that_cannot_be_read(tmp_path):
    missing = tmp_path / "missing.npy"
    msg = raises_one_line(FileNotFoundError, "missing.npy", ifp.KMeans(3).fit, str(missing))
    assert str(missing) in msg
    bad = tmp_path / "bad.npy"
    bad.write_text("not numpy")
    raises_one_line(ValueError, "malformed .npy file .*bad.npy", ifp.KMeans(3).fit, bad)
    raises_one_line(FileNotFoundError, "nope.wasm", ifp.Kernel(tmp_path / "nope.wasm").fit, X)


def test_unfitted_and_wrong_width():
    for est, method in [(ifp.KMeans(3), "predict"), (ifp.KMeans(3), "transform"), (ifp.LogisticRegression(), "predict_proba")]:
        raises_one_line(NotFittedError, "not fitted yet", getattr(est, method), X)
    km = ifp.KMeans(3).fit(X)
    raises_one_line(ValueError, "X has 3 features, but KMeans is expecting 4 features", km.predict, X[:, :3])


def test_targets():
    Xl, y = linear(n=200)
    lr = ifp.LogisticRegression()
    raises_one_line(ValueError, "classes=4 but y has 3 classes", ifp.LogisticRegression(classes=4).fit, Xl, np.arange(200) % 3)
    raises_one_line(ValueError, "needs samples of 2 classes, got 1 class", lr.fit, Xl, np.ones(200))
    raises_one_line(ValueError, "Unknown label type", lr.fit, Xl, np.linspace(0, 1, 200))
    raises_one_line(ValueError, "inconsistent numbers of samples", lr.fit, Xl, y[:-1])
    raises_one_line(ValueError, "requires y to be passed", lr.fit, Xl)


def test_unreachable_redis_is_one_line(monkeypatch, worker_bin):
    monkeypatch.setenv("IFP_WORKER_BIN", str(worker_bin))
    km = ifp.KMeans(3, backend="redis", redis_url="redis://127.0.0.1:1", sync_timeout=5.0)
    with pytest.raises(ConnectionError) as e:
        km.fit(X)
    assert "\n" not in str(e.value) and "127.0.0.1:1" in str(e.value)


def test_pickled_model_predicts_the_same():
    import pickle

    km = ifp.KMeans(3, random_state=2).fit(X)
    back = pickle.loads(pickle.dumps(km))
    np.testing.assert_array_equal(back.predict(X), km.predict(X))
    assert back.result_ == km.result_
    assert back.get_params() == km.get_params()
