"""The experiment ``run_*`` functions on tiny settings: summary keys the reports
read, pictures written, finished runs not clobbered."""

import json
import os

import jax
import numpy as np
import pytest

from fooljax import models
from fooljax.attacks import fgsm, initial_images, pgd
from fooljax.errors import WorkdirError
from fooljax.runs import gradient as runs
from fooljax.runs.common import list_artifacts, load_artifact, load_mnist_test


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


def test_run_pgd_artifact_matches_pgd(tmp_path, mnist_dir):
    """``--method=pgd``: the artifact holds ``attacks.pgd``'s images at
    ``epsilon`` and the summary's error is theirs; PGD beats FGSM on LeNet."""
    wd = str(tmp_path / "pgd")
    x, y = load_mnist_test(mnist_dir, 16)
    s = runs.run_fgsm(
        runs.FgsmConfig(
            models="lenet",
            method="pgd",
            num_steps=3,
            epsilon=0.2,
            curve_epsilons=(0.0,),
            num_images=16,
            batch_size=16,
            data_dir=mnist_dir,
        ),
        wd,
    )
    assert s["method"] == "pgd" and s["num_steps"] == 3
    clf = models.load_classifier("lenet", "default")
    want = pgd(clf.logits_fn, clf.params, x, y, epsilon=0.2, num_steps=3)
    art = load_artifact(wd)
    np.testing.assert_allclose(art["images"], want, atol=1e-6)
    assert np.abs(art["images"] - x).max() <= 0.2 + 1e-6
    _, pred = _source_probs(clf, art["images"], y)
    row = s["models"]["lenet"]
    assert row["error"] == pytest.approx(np.mean(pred != y))
    assert row["curve"]["0"] == row["clean_error"]
    _, pred_fgsm = _source_probs(
        clf, fgsm(clf.logits_fn, clf.params, x, y, epsilon=0.2), y
    )
    assert row["error"] >= np.mean(pred_fgsm != y)


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


def _fake_zoo(zoo_dir, names_seeds):
    """Zoo entries without training: ``fc10`` params from ``init_params`` with
    a seed (scaled up so FGSM moves them), a summary.json marking them done."""
    spec = models.get_spec("fc10")
    for name, seed in names_seeds.items():
        d = os.path.join(zoo_dir, name)
        os.makedirs(d)
        params = jax.tree_util.tree_map(
            lambda a: 30 * a, models.init_params(spec, seed)
        )
        models.save_params_npz(os.path.join(d, "params.npz"), params)
        with open(os.path.join(d, "summary.json"), "w") as f:
            json.dump({"fake": True}, f)


def _source_probs(clf, images, labels):
    p = np.asarray(jax.nn.softmax(clf.logits_fn(clf.params, images)))
    return p[np.arange(len(labels)), labels], p.argmax(1)


def test_every_gradient_run_leaves_artifacts(tmp_path, mnist_dir):
    """FGSM with several models: one artifact each, named by the shown name;
    with one model: artifact.npz; L-BFGS tables: one per Table-1 model. Each
    holds the run's adversarial images with true labels and the source's
    probability of the true label."""
    x, y = load_mnist_test(mnist_dir, 12)
    wd = str(tmp_path / "fgsm2")
    s = runs.run_fgsm(
        runs.FgsmConfig(
            models="a=lenet,b=lenet:init",
            curve_epsilons=(0.0,),
            num_images=12,
            batch_size=5,
            data_dir=mnist_dir,
        ),
        wd,
    )
    assert sorted(list_artifacts(wd)) == ["a", "b"]
    assert s["artifacts"] == {"a": "artifact_a.npz", "b": "artifact_b.npz"}
    art = load_artifact(f"{wd}:a")
    assert art["kind"] == "adversarial" and art["model"] == "lenet"
    assert art["weights"] == "default"
    clf = models.load_classifier("lenet", "default")
    np.testing.assert_array_equal(art["labels"], y)
    np.testing.assert_allclose(
        art["images"], fgsm(clf.logits_fn, clf.params, x, y, epsilon=0.25), atol=1e-6
    )
    conf, pred = _source_probs(clf, art["images"], y)
    np.testing.assert_allclose(art["confidence"], conf, rtol=1e-5, atol=1e-7)
    assert np.mean(pred != y) == pytest.approx(s["models"]["a"]["error"])
    assert load_artifact(f"{wd}:b")["weights"] == "init"

    wd1 = str(tmp_path / "fgsm1")
    runs.run_fgsm(
        runs.FgsmConfig(
            models="lenet", curve_epsilons=(), num_images=12, data_dir=mnist_dir
        ),
        wd1,
    )
    assert list(list_artifacts(wd1)) == [""]
    assert load_artifact(wd1)["images"].shape == (12, 28, 28, 1)

    wdl = str(tmp_path / "lbfgs2")
    runs.run_lbfgs_tables(
        runs.LbfgsTablesConfig(
            models="p=lenet,q=lenet:init",
            table2_columns="lenet",
            num_images=4,
            batch_size=4,
            num_search_steps=1,
            max_iterations=5,
            noise_stddevs=(),
            data_dir=mnist_dir,
        ),
        wdl,
    )
    assert sorted(list_artifacts(wdl)) == ["p", "q"]
    art = load_artifact(os.path.join(wdl, "artifact_p.npz"))
    with np.load(os.path.join(wdl, "lbfgs_p.npz")) as z:
        np.testing.assert_array_equal(art["images"], z["adversarial"])
    conf, _ = _source_probs(clf, art["images"], y[:4])
    np.testing.assert_allclose(art["confidence"], conf, rtol=1e-5, atol=1e-7)


def test_adversarial_training_reports_the_transfer_pair(tmp_path, mnist_dir):
    """Each model's FGSM examples are an artifact; the transfer pair is the
    error of each model on the other's examples (Goodfellow et al. Sec. 6)."""
    zoo_dir = str(tmp_path / "zoo")
    _fake_zoo(zoo_dir, {"fc10_1e-4": 0, "fc10_1e-4_adv": 1})
    wd = str(tmp_path / "adv")
    s = runs.run_adversarial_training(
        runs.AdversarialTrainingConfig(
            model="fc10_1e-4",
            num_images=30,
            batch_size=30,
            zoo_dir=zoo_dir,
            data_dir=mnist_dir,
        ),
        wd,
    )
    x, y = load_mnist_test(mnist_dir, 30)
    clfs = {
        n: models.load_classifier("fc10", os.path.join(zoo_dir, n, "params.npz"))
        for n in ("fc10_1e-4", "fc10_1e-4_adv")
    }
    examples = {}
    for n, clf in clfs.items():
        art = load_artifact(f"{wd}:{n}")
        assert art["model"] == n
        examples[n] = fgsm(clf.logits_fn, clf.params, x, y, epsilon=0.25)
        np.testing.assert_allclose(art["images"], examples[n], atol=1e-6)
    _, pred = _source_probs(clfs["fc10_1e-4_adv"], examples["fc10_1e-4"], y)
    assert s["transfer"]["after_on_examples_of_before"] == pytest.approx(
        np.mean(pred != y)
    )
    _, pred = _source_probs(clfs["fc10_1e-4"], examples["fc10_1e-4_adv"], y)
    assert s["transfer"]["before_on_examples_of_after"] == pytest.approx(
        np.mean(pred != y)
    )
    assert s["paper"]["transfer"] == {
        "after_on_examples_of_before": 0.196,
        "before_on_examples_of_after": 0.409,
    }
