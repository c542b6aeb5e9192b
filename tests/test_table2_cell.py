"""Szegedy Table 2's FC10 -> FC100-100-10 cell: the rescaling against NumPy,
the run end to end on a fake zoo (untrained nets, 8 images), resume and bad
flags."""

import json
import os

import numpy as np
import pytest

from fooljax import models
from fooljax.errors import FooljaxError
from fooljax.runs import table2_cell as t2
from fooljax.runs.common import load_mnist_test


def test_rescale_sets_each_distortion_before_the_box():
    rng = np.random.default_rng(0)
    x = np.full((3, 4, 4, 1), 0.5, np.float32)
    r = rng.normal(size=x.shape).astype(np.float32) * 0.01
    r[2] = 0.0
    out = t2.rescale(x, r, 0.05)
    np.testing.assert_allclose(t2.rms_distortion(x, out)[:2], 0.05, rtol=1e-5)
    np.testing.assert_array_equal(out[2], x[2])
    big = t2.rescale(x, r, 2.0)  # clipped to the box
    assert big.min() >= 0 and big.max() <= 1
    assert (t2.rms_distortion(x, big)[:2] < 2.0).all()
    # the direction is kept: same sign pattern as r
    np.testing.assert_array_equal(np.sign(out - x)[:2], np.sign(r)[:2])


def _fake_zoo(zoo_dir):
    for name, model, seed in (
        ("fc10_1e-4", "fc10", 0),
        ("fc100_100_10", "fc100_100_10", 1),
    ):
        d = os.path.join(zoo_dir, name)
        os.makedirs(d)
        models.save_params_npz(
            os.path.join(d, "params.npz"),
            models.init_params(models.get_spec(model), seed),
        )
        with open(os.path.join(d, "summary.json"), "w") as f:
            json.dump({"fake": True}, f)


def test_run_end_to_end_and_resume(tmp_path, data_root):
    zoo_dir = str(tmp_path / "zoo")
    _fake_zoo(zoo_dir)
    cfg = t2.Table2CellConfig(
        zoo_dir=zoo_dir,
        data_dir=os.path.join(data_root, "mnist"),
        num_images=8,
        batch_size=8,
        num_search_steps=2,
        max_iterations=5,
        distortions=(0.02, 0.3),
        c_values=(1.0,),
    )
    wd = str(tmp_path / "w")
    s = t2.run(cfg, wd)
    saved = np.load(os.path.join(wd, "lbfgs.npz"))
    x, y = load_mnist_test(cfg.data_dir, 8)
    tgt = models.load_classifier(
        "fc100_100_10", os.path.join(zoo_dir, "fc100_100_10", "params.npz")
    )
    pred = np.asarray(tgt.logits_fn(tgt.params, saved["adversarial"])).argmax(1)
    assert s["counting"]["all_images"] == pytest.approx((pred != y).mean())
    assert s["transfer_error"] == s["counting"]["all_images"]
    assert [c["distortion"] for c in s["curve"]] == [0.02, 0.3]
    small, large = s["curve"]
    assert small["actual_mean_distortion"] == pytest.approx(0.02, rel=0.05)
    assert large["actual_mean_distortion"] <= 0.3 + 1e-6
    assert s["c_search"][0]["c"] == 1.0 and len(s["c_search"]) == 1
    assert s["paper"]["transfer_error"] == 0.02
    assert os.path.getsize(os.path.join(wd, "transfer.png")) > 1000
    # a finished run is kept; an unfinished one resumes from the saved examples
    with pytest.raises(FooljaxError, match="finished"):
        t2.run(cfg, wd)
    os.remove(os.path.join(wd, "summary.json"))
    again = t2.run(cfg, wd)
    assert again["curve"] == s["curve"] and again["counting"] == s["counting"]


@pytest.mark.parametrize(
    "kw, pattern",
    [
        (dict(distortions=(0.05, -1.0)), "distortions"),
        (dict(c_values=(0.0,)), "c_values"),
        (dict(source="nope"), "nope"),
    ],
)
def test_bad_settings_are_one_line_before_anything_is_written(tmp_path, kw, pattern):
    with pytest.raises(FooljaxError, match=pattern):
        t2.run(t2.Table2CellConfig(**kw), str(tmp_path / "w"))
    assert not os.path.exists(tmp_path / "w")
