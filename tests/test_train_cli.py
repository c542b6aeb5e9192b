import json
import os
import subprocess
import sys

import numpy as np
import pytest

from fooljax import data
from fooljax.errors import WorkdirError
from fooljax.train import TrainConfig, train_classifier

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tiny_mnist(split, data_dir=None, source="idx"):
    """Two separable 'digits' (bright top vs bright bottom), 28x28."""
    rng = np.random.default_rng(0 if split == "train" else 1)
    n = 256 if split == "train" else 64
    y = rng.integers(0, 2, n).astype(np.int32)
    x = rng.integers(0, 60, (n, 28, 28, 1)).astype(np.uint8)
    x[y == 0, :14] += 150
    x[y == 1, 14:] += 150
    return x, y


@pytest.fixture()
def tiny_dataset():
    data.register_dataset("tiny_test", _tiny_mnist)
    return "tiny_test"


def test_train_learns_resumes_and_refuses_finished(tmp_path, tiny_dataset, monkeypatch):
    cfg = TrainConfig(dataset=tiny_dataset, epochs=2, batch_size=32, seed=1)
    workdir = str(tmp_path / "run")
    # Crash after the first epoch's checkpoint, then resume.
    from fooljax.io import checkpoint

    real_save = checkpoint.Checkpointer.save

    def crash_after_first(self, step, state):
        real_save(self, step, state)
        if step == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint.Checkpointer, "save", crash_after_first)
    with pytest.raises(KeyboardInterrupt):
        train_classifier(cfg, workdir)
    monkeypatch.setattr(checkpoint.Checkpointer, "save", real_save)
    summary = train_classifier(cfg, workdir)
    rows = [json.loads(s) for s in open(os.path.join(workdir, "metrics.jsonl"))]
    assert [r["epoch"] for r in rows] == [1, 2]  # epoch 1 not redone
    assert summary["test_accuracy"] >= 0.95

    fresh = train_classifier(cfg, str(tmp_path / "fresh"))
    assert fresh["test_accuracy"] == summary["test_accuracy"]  # resume == no crash

    with pytest.raises(WorkdirError, match="finished run"):
        train_classifier(cfg, workdir)
    with pytest.raises(WorkdirError, match="other settings"):
        os.remove(os.path.join(workdir, "summary.json"))
        train_classifier(TrainConfig(dataset=tiny_dataset, epochs=3), workdir)
    # TensorBoard events: epoch 1 before the crash, epoch 2 after the resume
    loader = pytest.importorskip(
        "tensorboard.backend.event_processing.event_file_loader"
    )
    steps = sorted(
        (e.step, v.simple_value)
        for f in os.listdir(os.path.join(workdir, "tensorboard"))
        for e in loader.LegacyEventFileLoader(
            os.path.join(workdir, "tensorboard", f)
        ).Load()
        for v in e.summary.value
        if v.tag == "test/accuracy"
    )
    assert steps == [(r["epoch"], pytest.approx(r["test_accuracy"])) for r in rows]


def _run(*args, env_extra=None):
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, env=env
    )


def test_evaluate_cli_bad_input_is_one_line(tmp_path):
    r = _run("-m", "experiments.evaluate", f"--data_dir={tmp_path}")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "not found; tried" in r.stderr
    r = _run("-m", "experiments.evaluate", "--model=alexnet9")
    assert r.returncode == 2 and "unknown model" in r.stderr


def test_evaluate_cli_json_last_line(data_root):
    r = _run(
        "-m",
        "experiments.evaluate",
        "--weights=default",
        f"--data_dir={os.path.join(data_root, 'mnist')}",
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["num_examples"] == 10000 and out["accuracy"] >= 0.99
