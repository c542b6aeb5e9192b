"""The CPPN through the shared runner: bit-identical resume, 4 devices == 1, the
entry point's bad input, and render_cppn on a finished run."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from fooljax import models
from fooljax.runs import fooling
from tests.tiny import tiny_classifier

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPTIONS = (("max_nodes", 9), ("max_edges", 14), ("p_add_node", 0.7))


def _tiny():
    _, params, logits_fn = tiny_classifier(num_classes=4, shape=(8, 8, 1))
    return models.Classifier(logits_fn, params, (8, 8, 1), 4, "tiny")


def _cfg(**kw):
    base = dict(
        encoding="cppn",
        encoding_options=OPTIONS,
        population=16,
        eval_batch=8,
        generations=40,
        log_every=10,
        checkpoint_every=20,
        seed=1,
    )
    base.update(kw)
    return fooling.FoolingConfig(**base)


def _archive(workdir):
    import orbax.checkpoint as ocp

    mngr = ocp.CheckpointManager(os.path.join(workdir, "checkpoints"))
    step = mngr.latest_step()
    state = mngr.restore(step, args=ocp.args.StandardRestore())
    mngr.close()
    return step, state["archive"]


@pytest.mark.slow
def test_resume_is_bit_identical(tmp_path):
    clf = _tiny()
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    assert fooling.run(_cfg(), a, classifier=clf, stop_after=30) == {"stopped_at": 30}
    sa = fooling.run(_cfg(), a, classifier=clf)  # resumes from the checkpoint at 20
    sb = fooling.run(_cfg(), b, classifier=clf)
    assert sa["confidence"] == sb["confidence"]
    assert sa["found_at_generation"] == sb["found_at_generation"]
    step_a, arch_a = _archive(a)
    step_b, arch_b = _archive(b)
    assert step_a == step_b == 40
    for name, leaf in arch_b["genomes"].items():
        np.testing.assert_array_equal(arch_a["genomes"][name], leaf, err_msg=name)
    np.testing.assert_array_equal(arch_a["fitness"], arch_b["fitness"])
    # The elites evolved real topology (hidden nodes), not just weights.
    assert np.asarray(arch_b["genomes"]["node_used"]).sum() > 4 * (4 + 1)
    gens = [json.loads(x)["generation"] for x in open(os.path.join(a, "metrics.jsonl"))]
    assert gens == list(range(1, 41))


@pytest.mark.slow
def test_four_devices_equal_one_device(tmp_path):
    code = textwrap.dedent(
        f"""
        import json, jax
        from fooljax import models
        from fooljax.runs import fooling
        from tests.tiny import tiny_classifier
        assert jax.local_device_count() == 4
        _, params, fn = tiny_classifier(num_classes=4, shape=(8, 8, 1))
        clf = models.Classifier(fn, params, (8, 8, 1), 4, "tiny")
        out = {{}}
        for nd in (1, 4):
            cfg = fooling.FoolingConfig(
                encoding="cppn", encoding_options={OPTIONS!r}, population=32,
                generations=20, log_every=10, checkpoint_every=10, eval_batch=4,
                num_devices=nd, seed=5)
            out[nd] = fooling.run(cfg, r"{tmp_path}/nd%d" % nd, classifier=clf)
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
    rows = {}
    for nd in (1, 4):
        with open(tmp_path / f"nd{nd}" / "metrics.jsonl") as f:
            rows[nd] = [
                {
                    k: v
                    for k, v in json.loads(x).items()
                    if not k.endswith(("second", "seconds")) and k != "crc32"
                }
                for x in f
            ]
    assert rows[1] == rows[4] and len(rows[1]) == 20


def _run(module_or_script, *args):
    cmd = [sys.executable]
    cmd += (
        ["-m", module_or_script] if "/" not in module_or_script else [module_or_script]
    )
    return subprocess.run(
        [*cmd, *args], cwd=ROOT, capture_output=True, text=True, env=dict(os.environ)
    )


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--cppn_max_nodes=4", "max_nodes=4 is too small"),
        ("--cppn_activations=sine,relu", "unknown CPPN activation 'relu'"),
        ("--crossover_rate=0.5", "no crossover"),
    ],
)
def test_entry_point_bad_input_is_one_line(tmp_path, flag, message):
    r = _run("experiments.mnist_cppn", flag, f"--workdir={tmp_path / 'w'}")
    assert r.returncode == 2, r.stderr[-2000:]
    err = r.stderr.strip()
    assert err.startswith("error:") and message in err and len(err.splitlines()) == 1
    assert not os.path.exists(tmp_path / "w" / "summary.json")


@pytest.mark.slow
def test_entry_point_and_render_at_another_resolution(tmp_path):
    w = str(tmp_path / "run")
    r = _run(
        "experiments.mnist_cppn",
        "--flagfile=experiments/configs/mnist_cppn.flags",
        "--population=20",
        "--eval_batch=10",
        "--generations=10",
        "--log_every=5",
        f"--workdir={w}",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.load(open(os.path.join(w, "summary.json")))
    assert s["encoding"] == "cppn" and s["generations"] == 10
    for name in ("archive.png", "confidence.png", "metrics.jsonl"):
        assert os.path.exists(os.path.join(w, name)), name
    assert len(os.listdir(os.path.join(w, "classes"))) == 10

    out = str(tmp_path / "big")
    r = _run(
        "scripts/render_cppn.py",
        f"--workdir={w}",
        "--height=96",
        "--width=64",
        "--classes=1,7",
        f"--out_dir={out}",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    paths = json.loads(r.stdout.strip().splitlines()[-1])["paths"]
    assert [os.path.basename(p) for p in paths] == [
        "class_1_96x64.png",
        "class_7_96x64.png",
    ]
    from PIL import Image

    img = np.asarray(Image.open(paths[0]))
    assert img.shape == (96, 64) and img.std() > 0

    for bad, message in (
        (["--size=0"], "render size must be positive"),
        (["--classes=12"], "out of range"),
    ):
        r = _run("scripts/render_cppn.py", f"--workdir={w}", *bad)
        assert r.returncode == 2 and message in r.stderr, r.stderr[-2000:]
    r = _run("scripts/render_cppn.py", f"--workdir={tmp_path / 'nothing'}")
    assert r.returncode == 2 and "config.json" in r.stderr
