"""Multi-process runs (``jax.distributed`` on CPU, gloo collectives): 2
processes with 2 forced host devices each give, bit for bit, what 1 process
with 4 devices gives: the MAP-Elites archive (genomes, fitness; the 2-process
run is interrupted after its first checkpoint and resumed) and the one-pixel
results (each process attacks its share of every batch). Only process 0
writes the work directory.

This file is also the worker: ``python tests/test_multiprocess.py NPROC PID
PORT OUT DATA_DIR``.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ME_STOP = 3  # the 2-process MAP-Elites run stops here, then resumes


def _me_config():
    from fooljax.runs import fooling

    return fooling.FoolingConfig(
        population=8,
        generations=6,
        log_every=3,
        checkpoint_every=3,
        eval_batch=2,
        seed=3,
    )


def _op_config(data_dir: str):
    from fooljax.runs import one_pixel

    return one_pixel.OnePixelRunConfig(
        model="lenet",
        dataset="mnist",
        data_dir=data_dir,
        only_correct=False,
        targeted=True,
        num_images=2,
        population=8,
        max_generations=3,
        compact_every=0,
        batch_size=9,  # 18 attacks: 2 batches, shares of 5 and 4 rows
        eval_batch=16,
        early_stop="success",
    )


def worker(nproc: int, pid: int, port: int, out: str, data_dir: str) -> None:
    # imported first, as an entry point does before run_main (evosax builds
    # an array at import: initialize must cope with a started backend)
    from fooljax.runs import distributed, fooling, one_pixel

    if nproc > 1:
        assert distributed.initialize(f"localhost:{port}", nproc, pid)
    import jax

    assert jax.process_count() == nproc and jax.device_count() == 4

    wd = os.path.join(out, "me")
    if nproc > 1:  # interrupted after its first checkpoint, then resumed
        assert fooling.run(_me_config(), wd, stop_after=ME_STOP) == {
            "stopped_at": ME_STOP
        }
    me = fooling.run(_me_config(), wd)
    op = one_pixel.run(_op_config(data_dir), os.path.join(out, "op"))
    with open(os.path.join(out, f"summaries_{pid}.json"), "w") as f:
        json.dump({"me": me, "op": op}, f)


def _write_idx(path, arr) -> None:
    arr = np.asarray(arr, np.uint8)
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in arr.shape
    )
    with gzip.open(path, "wb") as f:
        f.write(header + arr.tobytes())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _start(nproc: int, pid: int, port: int, out, data_dir, devices: int):
    env = dict(
        os.environ,
        XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
        JAX_PLATFORMS="cpu",
    )
    return subprocess.Popen(
        [sys.executable, __file__, str(nproc), str(pid), str(port), str(out)]
        + [str(data_dir)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _archive(wd: str) -> tuple[int, dict]:
    """The newest checkpoint's archive as NumPy arrays (the runs saved it from
    4 devices; this process has 1)."""
    import jax
    import orbax.checkpoint as ocp

    d = os.path.join(wd, "checkpoints")
    step = max(int(s) for s in os.listdir(d) if s.isdigit())
    path = os.path.join(d, str(step), "default")
    ckptr = ocp.PyTreeCheckpointer()
    tree = ckptr.metadata(path).item_metadata.tree
    as_numpy = jax.tree_util.tree_map(
        lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree
    )
    state = ckptr.restore(path, args=ocp.args.PyTreeRestore(restore_args=as_numpy))
    return step, state["archive"]


def _batches(wd: str) -> list[dict]:
    d = os.path.join(wd, "batches")
    out = []
    for name in sorted(f for f in os.listdir(d) if f.endswith(".npz")):
        with np.load(os.path.join(d, name)) as z:
            out.append({k: z[k] for k in z.files if k != "seconds"})
    return out


def test_two_processes_equal_one_process(tmp_path):
    rng = np.random.default_rng(0)
    data_dir = tmp_path / "mnist"
    data_dir.mkdir()
    _write_idx(
        data_dir / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (2, 28, 28))
    )
    _write_idx(data_dir / "t10k-labels-idx1-ubyte.gz", [3, 7])
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    port = _free_port()
    procs = [_start(1, 0, 0, one, data_dir, 4)]
    procs += [_start(2, i, port, two, data_dir, 2) for i in range(2)]
    logs = []
    for p in procs:
        try:
            logs.append(p.communicate(timeout=300)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
    for p, log in zip(procs, logs, strict=True):
        assert p.returncode == 0, log[-3000:]

    # MAP-Elites: the same archive, bit for bit, after an interrupted and
    # resumed 2-process run
    step1, a1 = _archive(str(one / "me"))
    step2, a2 = _archive(str(two / "me"))
    assert step1 == step2 == 6
    for k in ("genomes", "fitness", "found_at"):
        np.testing.assert_array_equal(np.asarray(a1[k]), np.asarray(a2[k]), err_msg=k)
    assert np.isfinite(np.asarray(a1["fitness"])).any()
    s1 = json.loads((one / "summaries_0.json").read_text())
    s2 = [json.loads((two / f"summaries_{i}.json").read_text()) for i in range(2)]
    assert s2[0] == s2[1]  # every process returns process 0's summary
    for k in ("confidence", "found_at_generation", "first_generation_all_at_least"):
        assert s1["me"][k] == s2[0]["me"][k], k
    # process 0 alone wrote the metrics: one row per generation, none twice
    with open(two / "me" / "metrics.jsonl") as f:
        gens = [json.loads(line)["generation"] for line in f]
    assert gens == list(range(1, 7))

    # one-pixel: every batch's results, bit for bit
    b1, b2 = _batches(str(one / "op")), _batches(str(two / "op"))
    assert len(b1) == len(b2) == 2
    for x, y in zip(b1, b2, strict=True):
        assert x.keys() == y.keys()
        for k in x:
            np.testing.assert_array_equal(x[k], y[k], err_msg=k)
    assert len(np.concatenate([b["success"] for b in b1])) == 18
    for k in ("success_rate", "num_success", "mean_queries", "mean_generations"):
        assert s1["op"][k] == s2[0]["op"][k], k
    assert s2[0]["op"]["num_processes"] == 2 and "num_processes" not in s1["op"]
    with open(two / "op" / "results.jsonl") as f:
        assert len(f.readlines()) == 18


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(num_processes=2, process_id=2), "--process_id must be in \\[0, 2\\)"),
        (dict(num_processes=0), "--num_processes must be >= 1"),
        (dict(num_processes=2), "missing --coordinator_address, --process_id"),
    ],
)
def test_bad_settings_are_one_clear_line(monkeypatch, kw, message):
    from fooljax.errors import FooljaxError
    from fooljax.runs import distributed

    for name in (*distributed.ENV.values(), "FOOLJAX_DISTRIBUTED"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.settings() is None  # nothing asked: one process
    with pytest.raises(FooljaxError, match=message):
        distributed.settings(**kw)
    monkeypatch.setenv("JAX_PROCESS_ID", "one")
    with pytest.raises(FooljaxError, match="JAX_PROCESS_ID must be an integer"):
        distributed.settings()


def test_cli_refuses_bad_process_id_before_the_workdir(tmp_path):
    w = tmp_path / "w"
    r = subprocess.run(
        [sys.executable, "-m", "experiments.mnist_direct", f"--workdir={w}",
         "--coordinator_address=localhost:1", "--num_processes=2",
         "--process_id=5"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, JAX_PLATFORMS="cpu"),
    )  # fmt: skip
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1] == (
        "error: --process_id must be in [0, 2), got 5"
    )
    assert not w.exists()


if __name__ == "__main__":
    nproc, pid, port = (int(a) for a in sys.argv[1:4])
    sys.path.insert(0, ROOT)
    worker(nproc, pid, port, sys.argv[4], sys.argv[5])
