import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from fooljax.errors import FooljaxError, WorkdirError
from fooljax.runs import fooling

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = [
    "--population=20",
    "--eval_batch=10",
    "--log_every=10",
    "--mutation_halving=0",
]


def _cli(*args, env_extra=None, **kw):
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run(
        [sys.executable, "-m", "experiments.mnist_direct", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        **kw,
    )


def _final_archive(workdir):
    import orbax.checkpoint as ocp

    mngr = ocp.CheckpointManager(os.path.join(workdir, "checkpoints"))
    step = mngr.latest_step()
    state = mngr.restore(step, args=ocp.args.StandardRestore())
    mngr.close()
    return step, state["archive"]


@pytest.mark.slow
def test_killed_run_resumes_bit_identically(tmp_path):
    args = [*SMALL, "--generations=1500", "--checkpoint_every=50", "--seed=3"]
    killed = str(tmp_path / "killed")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "experiments.mnist_direct",
            *args,
            f"--workdir={killed}",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ckpts = os.path.join(killed, "checkpoints")
    deadline = time.time() + 240
    while time.time() < deadline:
        steps = (
            [int(d) for d in os.listdir(ckpts) if d.isdigit()]
            if os.path.isdir(ckpts)
            else []
        )
        if any(s >= 100 for s in steps):
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not os.path.exists(os.path.join(killed, "summary.json")), "finished too soon"
    r = _cli(*args, f"--workdir={killed}")
    assert r.returncode == 0, r.stderr
    assert "resumed" in r.stderr
    clean = str(tmp_path / "clean")
    r = _cli(*args, f"--workdir={clean}")
    assert r.returncode == 0, r.stderr
    s_killed = json.load(open(os.path.join(killed, "summary.json")))
    s_clean = json.load(open(os.path.join(clean, "summary.json")))
    assert s_killed["confidence"] == s_clean["confidence"]
    assert s_killed["found_at_generation"] == s_clean["found_at_generation"]
    step_k, arch_k = _final_archive(killed)
    step_c, arch_c = _final_archive(clean)
    assert step_k == step_c == 1500
    np.testing.assert_array_equal(arch_k["genomes"], arch_c["genomes"])
    np.testing.assert_array_equal(arch_k["fitness"], arch_c["fitness"])
    gens = [
        json.loads(x)["generation"] for x in open(os.path.join(killed, "metrics.jsonl"))
    ]
    assert gens == list(range(1, 1501))  # no duplicated or missing rows


@pytest.mark.slow
def test_four_devices_equal_one_device(tmp_path):
    code = textwrap.dedent(
        f"""
        import json, jax, numpy as np
        from fooljax.runs import fooling
        assert jax.local_device_count() == 4
        out = {{}}
        for nd in (1, 4):
            cfg = fooling.FoolingConfig(population=40, generations=40, log_every=20,
                                        eval_batch=5, num_devices=nd, seed=5)
            s = fooling.run(cfg, r"{tmp_path}/nd%d" % nd)
            out[nd] = s
        assert out[4]["num_devices"] == 4 and out[1]["num_devices"] == 1
        print(json.dumps([out[1]["confidence"], out[4]["confidence"],
                          out[1]["found_at_generation"], out[4]["found_at_generation"]]))
        """
    )
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4")
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=env
    )
    assert r.returncode == 0, r.stderr[-2000:]
    c1, c4, f1, f4 = json.loads(r.stdout.strip().splitlines()[-1])
    assert c1 == c4 and f1 == f4


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"population": 1}, "--population must be a finite number in \\[2, inf\\]"),
        ({"generations": 0}, "--generations must be a finite number in \\[1, inf\\]"),
        ({"mutation_rate": 1.5}, "--mutation_rate .* in \\[0, 1\\], got 1.5"),
        ({"crossover_rate": -0.1}, "--crossover_rate .* in \\[0, 1\\], got -0.1"),
        ({"encoding": "bogus"}, "unknown encoding"),
        ({"model": "bogus"}, "unknown model"),
        ({"image_shape": (8, 8, 1)}, "does not accept images of shape"),
    ],
)
def test_bad_config_is_one_clear_error(tmp_path, overrides, message):
    with pytest.raises(FooljaxError, match=message):
        fooling.run(fooling.FoolingConfig(**overrides), str(tmp_path / "w"))
    assert not os.path.exists(tmp_path / "w" / "summary.json")


def test_finished_run_is_not_clobbered_and_corrupt_checkpoint(tmp_path):
    w = str(tmp_path / "w")
    r = _cli(*SMALL, "--generations=20", "--checkpoint_every=10", f"--workdir={w}")
    assert r.returncode == 0, r.stderr
    assert "results in" in r.stdout
    for name in ("summary.json", "archive.png", "confidence.png", "metrics.jsonl"):
        assert os.path.exists(os.path.join(w, name)), name
    assert len(os.listdir(os.path.join(w, "classes"))) == 10
    before = open(os.path.join(w, "summary.json")).read()
    r = _cli(*SMALL, "--generations=20", "--checkpoint_every=10", f"--workdir={w}")
    assert r.returncode == 2
    assert r.stderr.strip().startswith("error:") and "--overwrite" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert open(os.path.join(w, "summary.json")).read() == before
    r = _cli(*SMALL, "--population=1", f"--workdir={tmp_path / 'p1'}")
    assert r.returncode == 2 and "--population must be a finite number" in r.stderr

    # An unfinished run whose latest checkpoint is damaged: refused, clearly.
    w2 = str(tmp_path / "w2")
    cfg = fooling.FoolingConfig(
        population=20, eval_batch=10, generations=40, log_every=10, checkpoint_every=10
    )
    assert fooling.run(cfg, w2, stop_after=20) == {"stopped_at": 20}
    # (every step: a damaged latest step alone falls back to the one before)
    for step in ("10", "20"):
        for dirpath, _, files in os.walk(os.path.join(w2, "checkpoints", step)):
            for f in files:
                with open(os.path.join(dirpath, f), "wb") as fh:
                    fh.write(b"garbage")
    with pytest.raises(WorkdirError, match="damaged"):
        fooling.run(cfg, w2)


def test_resume_in_process_equals_uninterrupted(tmp_path):
    cfg = fooling.FoolingConfig(
        population=20, eval_batch=10, generations=60, log_every=10, checkpoint_every=20
    )
    a = str(tmp_path / "a")
    assert fooling.run(cfg, a, stop_after=30)["stopped_at"] == 30
    sa = fooling.run(cfg, a)  # resumes from the checkpoint at 20
    sb = fooling.run(cfg, str(tmp_path / "b"))
    assert sa["confidence"] == sb["confidence"]
    assert sa["found_at_generation"] == sb["found_at_generation"]
    with pytest.raises(WorkdirError, match="other settings"):
        b2 = str(tmp_path / "b2")
        fooling.run(cfg, b2, stop_after=10)
        fooling.run(fooling.FoolingConfig(population=20, eval_batch=10, seed=9), b2)


@pytest.mark.slow
def test_main_job_reaches_every_class():
    """The main job's flagfile, as the README runs it (about 20-60 s here)."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        r = _cli("--flagfile=experiments/configs/mnist_direct.flags", f"--workdir={d}")
        assert r.returncode == 0, r.stderr[-2000:]
        s = json.load(open(os.path.join(d, "summary.json")))
    assert s["generations"] == 1000 and s["model"] == "lenet" and s["seed"] == 0
    assert min(s["confidence"]) >= 0.9999
    assert s["first_generation_all_at_least"]["0.9999"] is not None
    assert s["flags"]["population"] == 200
