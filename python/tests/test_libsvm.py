"""LIBSVM data. `ifp gen sparse-logreg` writes LIBSVM text that scikit-learn's
`load_svmlight_file` reads to the same matrix and labels as the dense file of the same seed
(the Rust test `driver/tests/libsvm.rs` checks ifp's own parser against the same pair), and
logistic regression on sparse shards equals a float64 scipy.sparse reference."""

import subprocess

import numpy as np
from sklearn.datasets import load_svmlight_file

from conftest import run_cli


def test_generated_libsvm_is_what_sklearn_reads(ifp_bin, tmp_path):
    rows, features, nnz = 3000, 500, 20
    args = ["gen", "sparse-logreg", "--rows", rows, "--features", features, "--nnz", nnz, "--seed", 11]
    svm, npy = tmp_path / "x.svm", tmp_path / "x.npy"
    for out in (svm, npy):
        subprocess.run([str(ifp_bin), *map(str, args), "--out", str(out)], check=True)
    X, y = load_svmlight_file(str(svm), n_features=features)
    dense = np.load(npy)
    assert dense.shape == (rows, features + 1)
    assert X.nnz == rows * nnz
    np.testing.assert_array_equal(X.toarray(), dense[:, :features].astype(np.float64))
    np.testing.assert_array_equal(y, dense[:, features].astype(np.float64))
    # Power-law columns: the first column is far more frequent than the hundredth.
    counts = np.bincount(X.indices, minlength=features)
    assert counts[0] > 5 * counts[99] > 0


def _sparse_gradient_descent(X, y, lr, l2, iterations, classes=2):
    """float64 scipy.sparse/numpy full-batch gradient descent on the mean log-loss (+ l2/2 |W|^2,
    intercepts not regularised): the update `ifp run logreg` documents."""
    n, d = X.shape
    if classes == 2:
        w, b = np.zeros(d), 0.0
        for _ in range(iterations):
            z = X @ w + b
            r = 1.0 / (1.0 + np.exp(-z)) - y
            w, b = w - lr * (X.T @ r / n + l2 * w), b - lr * r.sum() / n
        return w, np.array([b])
    W, b = np.zeros((classes, d)), np.zeros(classes)
    Y = np.eye(classes)[y.astype(int)]
    for _ in range(iterations):
        Z = X @ W.T + b
        P = np.exp(Z - Z.max(axis=1, keepdims=True))
        P /= P.sum(axis=1, keepdims=True)
        R = P - Y
        W, b = W - lr * ((X.T @ R).T / n + l2 * W), b - lr * R.sum(axis=0) / n
    return W.ravel(), b


def test_sparse_logreg_equals_a_float64_scipy_sparse_reference(ifp_bin, tmp_path):
    """The model `ifp run logreg` trains on a generated LIBSVM file (2 functions x 2 inner
    workers, sparse shards) equals float64 gradient descent on the matrix scikit-learn reads."""
    svm = tmp_path / "s.svm"
    args = ["gen", "sparse-logreg", "--rows", 4000, "--features", 3000, "--nnz", 15, "--seed", 5]
    subprocess.run([str(ifp_bin), *map(str, args), "--out", str(svm)], check=True)
    X, y = load_svmlight_file(str(svm), n_features=3000)
    lr, l2, iterations = 0.5, 0.01, 25
    run = run_cli(
        ifp_bin, tmp_path, "logreg", "--data", svm, "--features", 3000, "--functions", 2, "--inner", 2,
        "--learning-rate", lr, "--l2", l2, "--tol", 0, "--max-iter", iterations,
    )
    assert run["iterations"] == iterations and run["config"]["rows"] == 4000
    w, b = _sparse_gradient_descent(X, y, lr, l2, iterations)
    np.testing.assert_allclose(run["model"]["weights"], w, rtol=0, atol=1e-6)
    np.testing.assert_allclose([run["model"]["intercept"]], b, rtol=0, atol=1e-6)
    assert np.abs(w).max() > 1e-3, "the reference moved away from zero"


def test_sparse_multiclass_logreg_equals_the_reference(ifp_bin, tmp_path):
    """Three classes, hand-written LIBSVM rows (0-based indices, a qid, comments), 3 functions."""
    rng = np.random.default_rng(3)
    n, d, classes = 600, 50, 3
    lines = ["# three classes", ""]
    dense = np.zeros((n, d))
    labels = rng.integers(0, classes, n)
    for r in range(n):
        cols = np.sort(rng.choice(d, size=rng.integers(1, 8), replace=False))
        vals = np.round(rng.normal(size=cols.size) + labels[r] * (cols % 3 == labels[r]), 3)
        dense[r, cols] = vals
        entries = " ".join(f"{c}:{v}" for c, v in zip(cols, vals))
        lines.append(f"{labels[r]} qid:{r % 4} {entries}")
    svm = tmp_path / "m.libsvm"
    svm.write_text("\n".join(lines) + "\n")
    run = run_cli(
        ifp_bin, tmp_path, "logreg", "--data", svm, "--zero-based", "--features", d, "--classes", classes,
        "--functions", 3, "--inner", 1, "--learning-rate", 0.3, "--tol", 0, "--max-iter", 20,
    )
    X = load_svmlight_file(str(svm), n_features=d, zero_based=True)[0]
    np.testing.assert_array_equal(X.toarray(), dense)
    # ifp reads values as float32 (as from .npy and CSV): the reference takes the same values.
    X = X.astype(np.float32).astype(np.float64)
    W, b = _sparse_gradient_descent(X, labels.astype(float), 0.3, 0.0, 20, classes)
    np.testing.assert_allclose(np.ravel(run["model"]["weights"]), W, rtol=0, atol=1e-6)
    np.testing.assert_allclose(run["model"]["intercept"], b, rtol=0, atol=1e-6)


def test_the_python_estimator_fits_a_libsvm_file(ifp_bin, tmp_path):
    """`LogisticRegression().fit("data.svm")`: the functions read the LIBSVM file themselves (the
    width from a pass over it) and the model is the reference's."""
    import ifp

    svm = tmp_path / "p.svm"
    args = ["gen", "sparse-logreg", "--rows", 2000, "--features", 800, "--nnz", 10, "--seed", 8]
    subprocess.run([str(ifp_bin), *map(str, args), "--out", str(svm)], check=True)
    X, y = load_svmlight_file(str(svm))
    est = ifp.LogisticRegression(learning_rate=0.5, tol=0.0, max_iter=15, n_functions=2).fit(str(svm))
    assert est.n_features_in_ == X.shape[1]
    w, b = _sparse_gradient_descent(X, y, 0.5, 0.0, 15)
    np.testing.assert_allclose(est.coef_.ravel(), w, rtol=0, atol=1e-6)
    np.testing.assert_allclose(est.intercept_, b, rtol=0, atol=1e-6)
