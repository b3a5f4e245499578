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


def test_multinomial_matches_sklearn_lbfgs_with_any_labels():
    """More than two classes: softmax regression run to convergence reaches scikit-learn's
    multinomial optimum (coefficients within 1e-3 relative, as driver/tests/softmax.rs), with
    y given as strings; the accuracy the functions counted is the estimator's own score."""
    data = np.load(fixture("softmax.npy"))
    X, k = data[:, :-1], data[:, -1].astype(int)
    y = np.array(["a", "b", "c", "d", "e"])[k]
    l2 = 0.01
    sk = SkLogisticRegression(C=1.0 / (l2 * len(X)), tol=1e-12, max_iter=10000).fit(X.astype(np.float64), y)
    ours = ifp.LogisticRegression(learning_rate=2.0, l2=l2, max_iter=2000, tol=1e-13, n_functions=2, n_inner=1)
    ours.fit(X, y)
    np.testing.assert_array_equal(ours.classes_, sk.classes_)
    assert ours.coef_.shape == (5, 6) and ours.intercept_.shape == (5,)
    scale = np.abs(sk.coef_).max()
    assert_close(ours.coef_, sk.coef_, 1e-3, 1e-3 * scale, "coef_")
    assert_close(ours.intercept_, sk.intercept_, 1e-3, 1e-3 * scale, "intercept_")
    assert_close(ours.predict_proba(X), sk.predict_proba(X.astype(np.float64)), 1e-3, 1e-3, "predict_proba")
    assert np.mean(ours.predict(X) == sk.predict(X.astype(np.float64))) >= 0.995
    assert abs(ours.score(X, y) - sk.score(X.astype(np.float64), y)) <= 0.005
    assert ours.train_accuracy_ == ours.score(X, y)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_minibatch_optimizers_reach_sklearn_accuracy(optimizer):
    """Mini-batches (batch_size, epochs, optimizer, as SGDClassifier's constant-rate updates on
    the log-loss): epochs x batches per epoch iterations, the same model as `ifp run` would
    give, and at most 1 percentage point below scikit-learn's (lbfgs) training accuracy."""
    data = np.load(fixture("logreg.npy"))
    X, y = data[:, :-1], data[:, -1]
    sk = SkLogisticRegression(tol=1e-12, max_iter=10000).fit(X.astype(np.float64), y)
    lr = {"sgd": 0.5, "momentum": 0.1, "adam": 0.05}[optimizer]
    ours = ifp.LogisticRegression(batch_size=200, epochs=10, optimizer=optimizer, learning_rate=lr, random_state=3)
    ours.fit(X, y)
    assert ours.n_iter_[0] == 10 * 20
    params = ours.result_["config"]["params"]
    # sgd is ifp run's default optimiser, so it is not passed (the CLI's parameters exactly).
    assert (params["batch-size"], params.get("optimizer", "sgd"), params["seed"]) == ("200", optimizer, "3")
    assert ours.score(X, y) >= sk.score(X.astype(np.float64), y) - 0.01, optimizer
