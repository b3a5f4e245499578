"""A fit through Python and `ifp run` with the same arguments on the same seeded data reach the
same model (1e-12 relative; in practice the same bits), iterations, losses and labels, and the
Python result has the CLI's JSON fields."""

import numpy as np
import pytest

import ifp
from conftest import assert_close, blobs, linear, run_cli

REL = 1e-12


def same_result(py, cli, fields):
    assert py["iterations"] == cli["iterations"]
    assert py["converged"] == cli["converged"]
    assert_close(py["losses"], cli["losses"], REL, what="losses")
    for f in fields:
        assert_close(py["model"][f], cli["model"][f], REL, what=f"model.{f}")
    assert py["config"]["params"] == cli["config"]["params"]
    # The same JSON fields (the Python run adds nothing and loses nothing).
    assert set(py) == set(cli)
    assert set(py["config"]) == set(cli["config"])
    assert set(py["timing"]) == set(cli["timing"])


@pytest.mark.parametrize("layout", ["float32 C", "float64 Fortran"])
def test_kmeans_array_equals_cli(ifp_bin, tmp_path, layout):
    X = blobs()
    data = tmp_path / "blobs.npy"
    np.save(data, X)
    labels = tmp_path / "labels.npy"
    cli = run_cli(
        ifp_bin, tmp_path, "kmeans", "--data", data, "--k", 5, "--init", "kmeans++", "--seed", 3,
        "--max-iter", 50, "--tol", 1e-4, "--kmeans-algorithm", "hamerly", "--functions", 2, "--inner", 2,
        "--labels-out", labels,
    )
    given = X if layout == "float32 C" else np.asfortranarray(X.astype(np.float64))
    km = ifp.KMeans(5, init="k-means++", random_state=3, max_iter=50, tol=1e-4, n_functions=2, n_inner=2)
    km.fit(given)
    same_result(km.result_, cli, ["centroids"])
    assert_close(km.cluster_centers_, cli["model"]["centroids"], REL)
    np.testing.assert_array_equal(km.labels_, np.load(labels))
    assert km.n_iter_ == cli["iterations"]
    assert km.inertia_ == cli["loss"]


def test_kmeans_on_a_path_equals_cli(ifp_bin, tmp_path):
    data = tmp_path / "blobs.npy"
    np.save(data, blobs(seed=2))
    cli = run_cli(
        ifp_bin, tmp_path, "kmeans", "--data", data, "--k", 5, "--init", "random", "--seed", 9,
        "--kmeans-algorithm", "lloyd", "--tol", 1e-4,
    )
    km = ifp.KMeans(5, init="random", random_state=9, algorithm="lloyd").fit(str(data))
    same_result(km.result_, cli, ["centroids"])
    assert km.n_features_in_ == 8
    assert not hasattr(km, "labels_"), "labels are not gathered from data the functions read"


def test_kmeans_on_s3_equals_the_same_file(s3_bucket, tmp_path):
    """`X` as an `s3://` URI: the functions read the object (a real S3-compatible server);
    the same model as from the local file."""
    endpoint, bucket = s3_bucket
    np.save(bucket / "blobs.npy", blobs(seed=6))
    on_s3 = ifp.KMeans(5, random_state=2, n_functions=2, s3_endpoint=endpoint).fit("s3://data/blobs.npy")
    local = ifp.KMeans(5, random_state=2, n_functions=2).fit(bucket / "blobs.npy")
    assert on_s3.result_["data"] == "s3://data/blobs.npy"
    assert on_s3.n_iter_ == local.n_iter_
    assert_close(on_s3.cluster_centers_, local.cluster_centers_, REL)
    assert sum(w["bytes_fetched"] for w in on_s3.result_["workers"]) > 0


def test_logreg_equals_cli(ifp_bin, tmp_path):
    X, y = linear()
    data = tmp_path / "linear.npy"
    np.save(data, np.column_stack([X, y]).astype(np.float32))
    args = ["--learning-rate", 0.5, "--l2", 0.01, "--max-iter", 80, "--tol", 1e-7, "--functions", 3, "--inner", 1]
    cli = run_cli(ifp_bin, tmp_path, "logreg", "--data", data, *args)
    lr = ifp.LogisticRegression(learning_rate=0.5, l2=0.01, max_iter=80, tol=1e-7, n_functions=3, n_inner=1)
    lr.fit(X, y)
    same_result(lr.result_, cli, ["weights", "intercept"])
    assert_close(lr.coef_[0], cli["model"]["weights"], REL)
    assert_close(lr.intercept_, [cli["model"]["intercept"]], REL)
    # The same through a path, label last.
    lr_path = ifp.LogisticRegression(learning_rate=0.5, l2=0.01, max_iter=80, tol=1e-7, n_functions=3, n_inner=1)
    same_result(lr_path.fit(data).result_, cli, ["weights", "intercept"])


def test_redis_backend_equals_local(redis_url, worker_bin, monkeypatch):
    """`backend="redis"` runs `ifp-worker` processes through a real Redis: same model."""
    monkeypatch.setenv("IFP_WORKER_BIN", str(worker_bin))
    X = blobs(seed=4)
    local = ifp.KMeans(5, random_state=1, n_functions=2, n_inner=1).fit(X)
    remote = ifp.KMeans(5, random_state=1, n_functions=2, n_inner=1, backend="redis", redis_url=redis_url).fit(X)
    assert remote.result_["sync"]["store"] == "redis"
    assert local.result_["sync"]["store"] == "in-process"
    assert remote.n_iter_ == local.n_iter_
    assert_close(remote.cluster_centers_, local.cluster_centers_, REL)
    np.testing.assert_array_equal(remote.labels_, local.labels_)


def test_lambda_backend_equals_local(lambda_endpoint, redis_url, tmp_path):
    """`backend="lambda"`: the function runs in AWS's Lambda emulator (the real `bootstrap`),
    reads the data where it is, synchronises through Redis: the same model as locally."""
    data = tmp_path / "blobs.npy"
    np.save(data, blobs(seed=7))
    local = ifp.KMeans(5, random_state=4).fit(data)
    remote = ifp.KMeans(
        5, random_state=4, backend="lambda", function="function", lambda_endpoints=[lambda_endpoint], redis_url=redis_url
    ).fit(data)
    assert "lambda" in remote.result_ and "lambda" not in local.result_
    assert remote.n_iter_ == local.n_iter_
    assert_close(remote.cluster_centers_, local.cluster_centers_, REL)


def test_plugin_kernel_equals_cli(ifp_bin, linreg_wasm, tmp_path):
    """`ifp.Kernel(...).fit` returns the plugin's described model, the CLI's."""
    rng = np.random.default_rng(8)
    X = rng.normal(size=(3000, 4)).astype(np.float32)
    y = (X @ np.array([1.5, -2.0, 0.5, 3.0]) + 0.7 + 0.01 * rng.normal(size=3000)).astype(np.float32)
    data = tmp_path / "lin.npy"
    np.save(data, np.column_stack([X, y]))
    cli = run_cli(
        ifp_bin, tmp_path, "--kernel", linreg_wasm, "--data", data, "--label-col", "last",
        "--param", "learning-rate=0.3", "--param", "tol=1e-8", "--max-iter", 500,
    )
    model = ifp.Kernel(linreg_wasm).fit(X, y, max_iter=500, learning_rate=0.3, tol=1e-8)
    assert set(model) == set(cli["model"]) == {"weights", "intercept"}
    assert_close(model["weights"], cli["model"]["weights"], REL)
    assert_close([model["intercept"]], [cli["model"]["intercept"]], REL)
    # And the fit is the least-squares solution (numpy), to the tolerance the plugin stops at.
    A = np.column_stack([X, np.ones(len(X))]).astype(np.float64)
    ref = np.linalg.lstsq(A, y.astype(np.float64), rcond=None)[0]
    assert_close(model["weights"], ref[:4], 1e-4, 1e-4)
