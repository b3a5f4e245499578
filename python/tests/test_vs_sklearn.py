"""ifp's estimators against scikit-learn on the reference fixtures (driver/tests/fixtures), at
the tolerance of the existing reference tests (driver/tests/reference.rs): 1e-6 relative,
1e-9 absolute."""

import numpy as np
import pytest
from sklearn.cluster import KMeans as SkKMeans
from sklearn.linear_model import LogisticRegression as SkLogisticRegression

import ifp
from conftest import assert_close, fixture

REL, ABS = 1e-6, 1e-9


@pytest.mark.parametrize("algorithm", ["hamerly", "lloyd"])
@pytest.mark.parametrize("init", ["first", "given"])
def test_kmeans_matches_sklearn_lloyd(algorithm, init):
    X = np.load(fixture("blobs.npy"))
    start = X[:4] if init == "first" else np.load(fixture("init_centroids.npy"))
    sk = SkKMeans(4, init=start.astype(np.float64), n_init=1, max_iter=100, tol=1e-4, algorithm="lloyd")
    sk.fit(X.astype(np.float64))
    ours = ifp.KMeans(4, init=start, max_iter=100, tol=1e-4, algorithm=algorithm, n_functions=2, n_inner=2).fit(X)
    assert ours.n_iter_ == sk.n_iter_
    assert_close(ours.cluster_centers_, sk.cluster_centers_, REL, ABS, "centroids")
    np.testing.assert_array_equal(ours.labels_, sk.labels_)
    np.testing.assert_array_equal(ours.predict(X), sk.predict(X.astype(np.float64)))
    assert_close(ours.transform(X[:50]), sk.transform(X[:50].astype(np.float64)), REL, ABS, "transform")
    assert_close(ours.score(X), sk.score(X.astype(np.float64)), REL, what="score")


def test_logreg_matches_sklearn_at_the_same_optimum():
    """Gradient descent run to convergence minimises scikit-learn's objective with
    C = 1 / (l2 n): the same weights, intercept and probabilities."""
    data = np.load(fixture("logreg.npy"))
    X, y = data[:, :-1], data[:, -1]
    l2 = 0.01
    sk = SkLogisticRegression(C=1.0 / (l2 * len(X)), tol=1e-12, max_iter=10000).fit(X.astype(np.float64), y)
    ours = ifp.LogisticRegression(learning_rate=0.5, l2=l2, max_iter=5000, tol=0.0).fit(X, y)
    assert_close(ours.coef_, sk.coef_, REL, ABS, "coef_")
    assert_close(ours.intercept_, sk.intercept_, REL, ABS, "intercept_")
    assert_close(ours.predict_proba(X), sk.predict_proba(X.astype(np.float64)), REL, ABS, "predict_proba")
    np.testing.assert_array_equal(ours.classes_, sk.classes_)
    assert ours.score(X, y) == sk.score(X.astype(np.float64), y)
