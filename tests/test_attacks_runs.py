"""The experiment ``run_*`` functions on tiny settings: summary keys the reports
read, pictures written, finished runs not clobbered."""

import json
import os

import jax
import numpy as np
import pytest

from fooljax import models
from fooljax.attacks import fgsm, initial_images
from fooljax.errors import WorkdirError
from fooljax.runs import gradient as runs
from fooljax.runs.common import load_mnist_test


@pytest.fixture(scope="module")
def mnist_dir(data_root):
    return os.path.join(data_root, "mnist")


def _summary(workdir):
    with open(os.path.join(workdir, "summary.json")) as f:
        return json.load(f)


def test_run_fgsm_keys_and_no_clobber(tmp_path, mnist_dir):
    wd = str(tmp_path / "fgsm")
    cfg = runs.FgsmConfig(
        models="softmax_regression=lenet",
        epsilon=0.25,
        curve_epsilons=(0.0, 0.1),
        num_images=40,
        batch_size=40,
        data_dir=mnist_dir,
    )
    runs.run_fgsm(cfg, wd)
    s = _summary(wd)
    assert s["epsilon"] == 0.25
    row = s["models"]["softmax_regression"]
    assert row["curve"]["0"] == row["clean_error"]
    # the vmapped epsilon sweep of the run equals one direct FGSM call
    clf = models.load_classifier("lenet", "default")
    x, y = load_mnist_test(mnist_dir, 40)
    probs = np.asarray(
        jax.nn.softmax(
            clf.logits_fn(
                clf.params, fgsm(clf.logits_fn, clf.params, x, y, epsilon=0.25)
            )
        )
    )
    wrong = probs.argmax(1) != y
    assert row["error"] == pytest.approx(wrong.mean())
    assert row["mean_confidence"] == pytest.approx(probs.max(1)[wrong].mean(), rel=1e-5)
    assert row["error"] > row["curve"]["0.1"] > row["clean_error"] + 0.05
    for png in ("fgsm_error_vs_epsilon.png", "fgsm_examples.png"):
        assert os.path.getsize(os.path.join(wd, png)) > 0
    with pytest.raises(WorkdirError):
        runs.run_fgsm(cfg, wd)


def test_run_lbfgs_tables_keys(tmp_path, mnist_dir):
    wd = str(tmp_path / "lbfgs")
    runs.run_lbfgs_tables(
        runs.LbfgsTablesConfig(
            models="lenet",
            table2_columns="lenet",
            num_images=6,
            batch_size=6,
            num_search_steps=2,
            max_iterations=15,
            noise_stddevs=(0.1,),
            data_dir=mnist_dir,
        ),
        wd,
    )
    s = _summary(wd)
    t1 = s["table1"]["lenet"]
    assert set(t1) >= {"test_error", "mean_distortion", "success_rate", "num_images"}
    assert t1["num_images"] == 6 and 0.0 <= t1["success_rate"] <= 1.0
    assert t1["min_pixel"] >= 0.0 and t1["max_pixel"] <= 1.0
    assert set(s["table2"]) == {"lenet", "gaussian_noise_0.1"}
    # Successful targeted examples are errors of the attacked model itself.
    with np.load(os.path.join(wd, "lbfgs_lenet.npz")) as z:
        frac_success = z["success"].mean()
    assert s["table2"]["lenet"]["lenet"] >= frac_success - 1e-9
    assert os.path.getsize(os.path.join(wd, "lbfgs_examples.png")) > 0


def test_run_gradient_ascent_keys(tmp_path):
    wd = str(tmp_path / "ga")
    runs.run_gradient_ascent(runs.GradientAscentConfig(num_steps=30), wd)
    s = _summary(wd)
    clf = models.load_classifier("lenet", "default")
    start = initial_images(jax.random.key(0), 10, clf.input_shape, kind="noise")
    p0 = np.asarray(jax.nn.softmax(clf.logits_fn(clf.params, start)))[
        range(10), range(10)
    ]
    images = np.load(os.path.join(wd, "images.npy"))
    p1 = np.asarray(jax.nn.softmax(clf.logits_fn(clf.params, images)))[
        range(10), range(10)
    ]
    np.testing.assert_allclose(s["confidence"], p1, rtol=1e-5)
    assert np.all(p1 > p0)  # every class climbed
    assert s["images_min"] >= 0.0 and s["images_max"] <= 1.0
    assert os.path.getsize(os.path.join(wd, "fooling_images.png")) > 0
