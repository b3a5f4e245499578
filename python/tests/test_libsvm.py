"""`ifp gen sparse-logreg` writes LIBSVM text that scikit-learn's `load_svmlight_file` reads
to the same matrix and labels as the dense file of the same seed (the Rust test
`driver/tests/libsvm.rs` checks ifp's own parser against the same pair)."""

import subprocess

import numpy as np
from sklearn.datasets import load_svmlight_file


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
