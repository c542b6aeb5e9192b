"""experiments.one_pixel: bad flags exit 2; a tiny real run, refusal, resume."""

import dataclasses
import json
import os
import subprocess
import sys

import pytest

from fooljax.errors import FooljaxError, WorkdirError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_bad_pixel_count_exits_2(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.one_pixel", "--model=cifar_lenet",
         "--weights=init", f"--workdir={tmp_path / 'w'}", "--pixels=1025"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("error: pixel count must be between 1 and")
    assert not (tmp_path / "w").exists()  # refused before touching the workdir


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(pixels=0), "pixel count"),
        (dict(population=3), "population"),
        (dict(early_stop="later"), "early_stop"),
        (dict(eval_batch=-1), "eval_batch"),
    ],
)
def test_bad_config_is_one_clear_error(tmp_path, kw, message):
    from fooljax.runs.one_pixel import OnePixelRunConfig, run

    with pytest.raises(FooljaxError, match=message):
        run(OnePixelRunConfig(weights="init", **kw), str(tmp_path / "w"))
    assert not (tmp_path / "w").exists()  # nothing written for a bad config


def test_tiny_real_run_refuses_clobber_and_resumes(data_root, tmp_path):
    from fooljax.runs.one_pixel import OnePixelRunConfig, run

    cfg = OnePixelRunConfig(
        model="cifar_lenet",
        weights=os.path.join(data_root, "cifar10-keras-one-pixel", "lenet.h5"),
        data_dir=os.path.join(data_root, "foolbox-samples"),
        num_images=3,
        population=8,
        max_generations=2,
        batch_size=9,
        compact_every=0,
        targeted=True,
    )
    wd = str(tmp_path / "run")
    s = run(cfg, wd)
    for k in ("success_rate", "mean_adversarial_confidence", "mean_queries",
              "num_images", "wall_seconds", "images_per_second",
              "classes_per_image"):  # fmt: skip
        assert k in s
    assert s["num_images"] == 3 and s["num_attacks"] == 27
    assert 0 <= s["classes_per_image"] <= 9
    assert 8 <= s["mean_queries"] <= 8 * 3
    assert os.path.getsize(os.path.join(wd, "grid.png")) > 1000
    with open(os.path.join(wd, "results.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    assert len(rows) == 27 and all(r["target"] != r["label"] for r in rows)
    with pytest.raises(WorkdirError, match="finished run"):
        run(cfg, wd)
    # an interrupted run: drop the summary and the last batch, then resume
    os.remove(os.path.join(wd, "summary.json"))
    batches = sorted(
        b for b in os.listdir(os.path.join(wd, "batches")) if b.endswith(".npz")
    )  # (each has its .sha256 checksum next to it)
    assert len(batches) == 3  # 27 attacks in batches of 9
    os.remove(os.path.join(wd, "batches", batches[-1]))
    s2 = run(cfg, wd)
    for k in ("success_rate", "mean_queries", "classes_per_image"):
        assert s2[k] == s[k]
    assert s["memoize"] is True
    # memoisation off: the same attacks, at least as many queries
    s3 = run(dataclasses.replace(cfg, memoize=False), str(tmp_path / "plain"))
    assert s3["memoize"] is False and s3["success_rate"] == s["success_rate"]
    assert s3["mean_adversarial_confidence"] == s["mean_adversarial_confidence"]
    assert s3["mean_queries"] >= s["mean_queries"]
