"""Entry points keep compiled programs in JAX's persistent compilation cache
(``--compilation_cache``): the cache directory fills on the first run, a second
run gives the same result, and ``off`` turns it off."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--population=8", "--generations=4", "--eval_batch=8", "--log_every=2"]


def _run(*args, fast_exit="1"):
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    env["FOOLJAX_FAST_EXIT"] = fast_exit
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
    r = _run(f"--workdir={tmp_path / 'a'}", f"--compilation_cache={cache}")
    entries = os.listdir(cache)
    assert len(entries) >= 3, entries  # the chunk, init and scoring programs
    # the second run exits through the interpreter's teardown, the first did
    # not (cli.fast_exit): both wrote everything, piped stdout included
    r2 = _run(
        f"--workdir={tmp_path / 'b'}", f"--compilation_cache={cache}", fast_exit="0"
    )
    a, b = _summary(tmp_path / "a"), _summary(tmp_path / "b")
    assert a["confidence"] == b["confidence"]
    for out, w in ((r.stdout, "a"), (r2.stdout, "b")):
        assert out.rstrip().endswith(
            f"results in {tmp_path / w} "
            "(summary.json, archive.png, confidence.png, "
            "nines.png, qd.png)"
        ), out[-300:]
    for w in "ab":
        assert (tmp_path / w / "confidence.png").stat().st_size > 0


def test_fast_exit_only_when_nothing_is_left_running(monkeypatch):
    import threading

    from fooljax.runs import cli

    monkeypatch.setenv("FOOLJAX_FAST_EXIT", "1")
    if sys.gettrace() is None and sys.getprofile() is None:  # not under coverage
        assert cli.fast_exit_ok()
        sys.setprofile(lambda *a: None)  # as cProfile: its file is written at exit
        try:
            assert not cli.fast_exit_ok()
        finally:
            sys.setprofile(None)
    monkeypatch.setenv("FOOLJAX_FAST_EXIT", "0")
    assert not cli.fast_exit_ok()
    monkeypatch.setenv("FOOLJAX_FAST_EXIT", "1")
    release = threading.Event()
    t = threading.Thread(target=release.wait)  # a writer still at work
    t.start()
    try:
        assert not cli.fast_exit_ok()
    finally:
        release.set()
        t.join()
    assert cli.fast_exit_ok() == (sys.gettrace() is None)


def test_cache_off_and_default_directory(tmp_path, monkeypatch):
    """``off`` turns the cache off (checked in-process: a subprocess run costs
    as much as the test above); the default directory follows
    ``$JAX_COMPILATION_CACHE_DIR``, else ``$XDG_CACHE_HOME/fooljax/jax``."""
    import jax

    from fooljax.runs import cli

    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cli.default_cache_dir() == str(tmp_path / "xdg" / "fooljax" / "jax")
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "env"))
    assert cli.default_cache_dir() == str(tmp_path / "env")
    before = jax.config.jax_enable_compilation_cache
    try:
        assert cli.configure_compilation_cache("off") is None
        assert jax.config.jax_enable_compilation_cache is False
    finally:
        jax.config.update("jax_enable_compilation_cache", before)
