"""Shared test support: the `ifp` and `ifp-worker` binaries of the same build (for the CLI
comparisons and the Redis backend), the reference fixtures, the example plugin, a Redis server."""

import glob
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "driver" / "tests" / "fixtures"
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))


def _binary(env, name):
    path = Path(os.environ.get(env, TARGET / "debug" / name))
    if not path.is_file():
        pytest.fail(f"{path} is missing: build it with `cargo build` (or set {env})")
    return path


@pytest.fixture(scope="session")
def ifp_bin():
    return _binary("IFP_BIN", "ifp")


@pytest.fixture(scope="session")
def worker_bin():
    return _binary("IFP_WORKER_BIN", "ifp-worker")


@pytest.fixture(scope="session")
def linreg_wasm():
    """The example plugin as `kernels/test-plugins` built it (the newest build)."""
    given = os.environ.get("IFP_LINREG_WASM")
    if given:
        return Path(given)
    # `<target>/wasm-kernels/<checkout>/...` (kernels/build_guests.rs: the target directory is
    # the one holding cargo's CACHEDIR.TAG); older cargo builds put it under `debug/`.
    found = [
        p
        for base in (TARGET, TARGET / "debug")
        for p in glob.glob(str(base / "wasm-kernels" / "*" / "wasm32-wasip2" / "wasm" / "ifp_plugin_linreg.wasm"))
    ]
    if not found:
        pytest.fail("the example plugin is missing: `cargo build -p ifp-test-plugins` builds it")
    return Path(max(found, key=os.path.getmtime))


def fixture(name):
    return FIXTURES / name


def run_cli(ifp_bin, tmp_path, *args):
    """`ifp run ARGS... --out` and its result JSON."""
    import json

    out = tmp_path / "cli.json"
    subprocess.run([str(ifp_bin), "run", *map(str, args), "--quiet", "--out", str(out)], check=True)
    return json.loads(out.read_text())


@pytest.fixture
def redis_url():
    """A fresh redis-server on a free port of 127.0.0.1, stopped after the test."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is missing (.ci/test.sh installs it)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port)
        yield f"redis://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait()


@pytest.fixture
def s3_bucket(tmp_path, monkeypatch):
    """An `s3s-fs` server (a real S3-compatible server) on a free port over a directory with one
    bucket `data`: returns (endpoint, the bucket's directory, where a file is an object)."""
    server = shutil.which("s3s-fs")
    if server is None:
        pytest.fail("s3s-fs is missing (.ci/test.sh installs it)")
    (tmp_path / "s3" / "data").mkdir(parents=True)
    for k, v in {"AWS_ACCESS_KEY_ID": "ifp-test", "AWS_SECRET_ACCESS_KEY": "ifp-test-secret",
                 "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(k, v)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [server, "--host", "127.0.0.1", "--port", str(port), "--access-key", "ifp-test",
         "--secret-key", "ifp-test-secret", str(tmp_path / "s3")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port)
        yield f"http://127.0.0.1:{port}", tmp_path / "s3" / "data"
    finally:
        proc.terminate()
        proc.wait()


@pytest.fixture
def lambda_endpoint(monkeypatch):
    """AWS's Lambda Runtime Interface Emulator running the real `bootstrap` (the Lambda host of
    the same build) on a free port; its invocation endpoint."""
    rie = Path(os.environ.get("IFP_LAMBDA_RIE", Path.home() / ".cache/ifp/aws-lambda-rie-x86_64"))
    if not rie.is_file():
        pytest.fail(f"the Lambda Runtime Interface Emulator is missing at {rie} (.ci/test.sh fetches it)")
    bootstrap = _binary("IFP_BOOTSTRAP_BIN", "bootstrap")
    for k, v in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1",
                 "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/nonexistent",
                 "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}.items():
        monkeypatch.setenv(k, v)
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    env = dict(os.environ, AWS_LAMBDA_FUNCTION_MEMORY_SIZE="3538", IFP_LOG="warn")
    proc = subprocess.Popen(
        [str(rie), "--log-level", "error", "--runtime-interface-emulator-address", f"127.0.0.1:{ports[0]}",
         "--runtime-api-address", f"127.0.0.1:{ports[1]}", str(bootstrap)],
        stdout=subprocess.DEVNULL, env=env, start_new_session=True,
    )
    try:
        _wait_for_port(ports[0])
        yield f"http://127.0.0.1:{ports[0]}"
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()


def _wait_for_port(port):
    for _ in range(400):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"nothing listens on 127.0.0.1:{port}")


def blobs(n=6000, d=8, k=5, seed=11, dtype=np.float32):
    """Seeded Gaussian blobs (numpy only)."""
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-10, 10, size=(k, d))
    X = centers[rng.integers(0, k, size=n)] + rng.normal(size=(n, d))
    return X.astype(dtype)


def linear(n=5000, d=6, seed=5, dtype=np.float32):
    """Seeded features and 0/1 labels from a noisy linear rule."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    w = rng.normal(size=d)
    y = (X @ w + 0.3 + rng.logistic(size=n) > 0).astype(np.float32)
    return X.astype(dtype), y


def assert_close(got, want, rel, abs_=0.0, what=""):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    np.testing.assert_allclose(got, want, rtol=rel, atol=abs_, err_msg=what)
