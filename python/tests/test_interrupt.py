"""Ctrl-C during a fit stops the job between iterations and raises KeyboardInterrupt; the
interpreter is intact (the next fit works) and the GIL was free while the job ran."""

import json
import os
import signal
import subprocess
import sys
import textwrap

CHILD = textwrap.dedent(
    """
    import json, sys, threading
    import numpy as np
    import ifp
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20000, 8)).astype(np.float32)
    y = (X[:, 0] + rng.logistic(size=20000) > 0).astype(np.float32)
    # A job that would run for a very long time: a million iterations, never converging.
    backend = json.loads(sys.argv[1])
    lr = ifp.LogisticRegression(max_iter=1000000, tol=0.0, learning_rate=1e-9, n_functions=2, n_inner=1, **backend)
    # Another Python thread runs while the job does (the GIL is released): a second into
    # the fit, it says so, and the parent sends Ctrl-C.
    started = threading.Event()
    def announce():
        started.wait()
        threading.Event().wait(1.0)
        print("python thread ran during the fit", flush=True)
    threading.Thread(target=announce, daemon=True).start()
    started.set()
    try:
        lr.fit(X, y)
        print("finished (not interrupted)", flush=True)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    # The interpreter and the engine are usable afterwards.
    ok = ifp.LogisticRegression(max_iter=5, **backend).fit(X, y)
    print("next fit", ok.n_iter_[0], flush=True)
    """
)


import pytest


@pytest.mark.parametrize("backend", ["local", "redis"])
def test_ctrl_c_stops_the_job_and_raises_keyboard_interrupt(backend, request):
    """Threads stop through the in-process store; `ifp-worker` processes through an abort
    announced in the job's Redis keys."""
    params, env = {}, dict(os.environ)
    if backend == "redis":
        params = {"backend": "redis", "redis_url": request.getfixturevalue("redis_url")}
        env["IFP_WORKER_BIN"] = str(request.getfixturevalue("worker_bin"))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(params)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        first = child.stdout.readline()
        assert first == "python thread ran during the fit\n", first + child.stderr.read()
        os.kill(child.pid, signal.SIGINT)
        # A guard against a hang, not a timing assertion: the job would run for hours.
        out, err = child.communicate(timeout=120)
    finally:
        child.kill()
    assert out.splitlines() == ["interrupted", "next fit 5"], out + err
    assert child.returncode == 0, err
