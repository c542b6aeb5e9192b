"""Entry points keep compiled programs in JAX's persistent compilation cache
(``--compilation_cache``): the cache directory fills on the first run, a second
run gives the same result, and ``off`` writes no cache."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--population=8", "--generations=4", "--eval_batch=8", "--log_every=2"]


def _run(*args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    r = subprocess.run(
        [sys.executable, "-m", "experiments.mnist_direct", *TINY, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return r


def _summary(workdir):
    with open(os.path.join(workdir, "summary.json")) as f:
        return json.load(f)


def test_cache_fills_and_a_cached_run_gives_the_same_result(tmp_path):
    cache = tmp_path / "cache"
    _run(f"--workdir={tmp_path / 'a'}", f"--compilation_cache={cache}")
    entries = os.listdir(cache)
    assert len(entries) >= 3, entries  # the chunk, init and scoring programs
    _run(f"--workdir={tmp_path / 'b'}", f"--compilation_cache={cache}")
    a, b = _summary(tmp_path / "a"), _summary(tmp_path / "b")
    assert a["confidence"] == b["confidence"]


def test_cache_off_writes_nothing(tmp_path):
    xdg = tmp_path / "xdg"
    env_run = ["--compilation_cache=off", f"--workdir={tmp_path / 'c'}"]
    os.environ["XDG_CACHE_HOME"] = str(xdg)
    try:
        _run(*env_run)
    finally:
        del os.environ["XDG_CACHE_HOME"]
    assert not (xdg / "fooljax").exists()  # (matplotlib keeps its font cache there)
