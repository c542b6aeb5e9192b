"""Goodfellow et al. 2015 extras: the RBF network (Sec. 7), rubbish-class
noise (appendix) and logistic regression with adversarial training / L1
(Sec. 5). Tiny shapes against NumPy references, plus bad command lines."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fooljax import models
from fooljax.attacks import fgsm
from fooljax.errors import FooljaxError
from fooljax.models.rbf import rbf_unit_loss
from fooljax.runs import goodfellow_extras as ge
from fooljax.train.classifier import make_loss_fn
from tests.cli_harness import one_line_problems, run_in_subprocess


def _rbf_params(seed=0, num_classes=10, dim=784):
    rng = np.random.default_rng(seed)
    mu = rng.uniform(0, 1, (num_classes, dim)).astype(np.float32)
    log_beta = rng.normal(-5, 1, (num_classes, dim)).astype(np.float32)
    return {"params": {"mu": jnp.asarray(mu), "log_beta": jnp.asarray(log_beta)}}


def _images(n, seed=1, lo=0.0, hi=1.0):
    rng = np.random.default_rng(seed)
    return rng.uniform(lo, hi, (n, 28, 28, 1)).astype(np.float32)


def test_rbf_logits_match_numpy_and_are_log_probabilities():
    clf = models.load_classifier("rbf", "init")
    params = _rbf_params()
    x = _images(3)
    got = np.asarray(jax.jit(clf.logits_fn)(params, x))
    mu = np.asarray(params["params"]["mu"], np.float64)
    beta = np.exp(np.asarray(params["params"]["log_beta"], np.float64))
    flat = x.reshape(3, -1).astype(np.float64)
    want = -np.sum(beta[None] * (flat[:, None] - mu[None]) ** 2, -1)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert got.shape == (3, 10) and np.all(got <= 0)
    # vmap over single images equals the batch
    one = jax.vmap(lambda xi: clf.logits_fn(params, xi[None])[0])(x)
    np.testing.assert_allclose(np.asarray(one), got, rtol=1e-5, atol=1e-5)


def test_rbf_unit_loss_is_the_bernoulli_likelihood_and_differentiable():
    lp = jnp.asarray([[-0.1, -2.0, -5.0], [-3.0, -0.5, -1e-9]])
    y = jnp.asarray([0, 1])
    p = np.exp(np.asarray(lp, np.float64))
    p = np.minimum(p, np.exp(-1e-6))  # the loss floors d at 1e-6
    want = [
        -np.log(p[0, 0]) - np.log(1 - p[0, 1]) - np.log(1 - p[0, 2]),
        -np.log(p[1, 1]) - np.log(1 - p[1, 0]) - np.log(1 - p[1, 2]),
    ]
    np.testing.assert_allclose(np.asarray(rbf_unit_loss(lp, y)), want, rtol=1e-4)
    g = jax.jit(jax.grad(lambda v: rbf_unit_loss(v, y).sum()))(lp)
    assert np.all(np.isfinite(np.asarray(g)))


def test_fgsm_on_the_unit_loss_stays_in_the_ball_and_raises_the_loss():
    clf = models.load_classifier("rbf", "init")
    params = _rbf_params()
    x = _images(4, lo=0.2, hi=0.8)
    y = jnp.asarray([0, 1, 2, 3])
    adv = np.asarray(ge.fgsm_unit_loss(clf.logits_fn, params, x, y, 0.05))
    assert np.all(np.abs(adv - x) <= 0.05 + 1e-6) and adv.min() >= 0 and adv.max() <= 1

    def loss(images):
        return np.asarray(rbf_unit_loss(clf.logits_fn(params, images), y))

    assert np.all(loss(adv) > loss(x))
    # a traced epsilon (one vmapped curve) gives the same images
    curve = jax.vmap(lambda e: ge.fgsm_unit_loss(clf.logits_fn, params, x, y, e))(
        jnp.asarray([0.0, 0.05])
    )
    np.testing.assert_allclose(np.asarray(curve[1]), adv, atol=1e-6)
    np.testing.assert_allclose(np.asarray(curve[0]), x, atol=1e-6)


def test_unit_confidence_is_the_units_own_probability():
    lp = np.log(np.asarray([[0.02, 0.01], [0.9, 0.05], [0.1, 0.3]]))
    out = ge.unit_error_and_confidence(lp, np.asarray([1, 0, 1]))
    assert out["error"] == pytest.approx(1 / 3)
    assert out["mean_confidence"] == pytest.approx(0.02)  # not a softmax's 0.5+
    assert out["mean_confidence_all"] == pytest.approx((0.02 + 0.9 + 0.3) / 3)


def _logistic(seed=0):
    clf = models.load_classifier("logistic", "init")
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.1, (784, 1)).astype(np.float32)
    w[:50] = 0.0  # zero weights: sign 0, FGSM leaves those pixels alone
    params = {"params": {"out": {"kernel": jnp.asarray(w), "bias": jnp.zeros(1)}}}
    return clf, params, w[:, 0]


def test_logistic_softmax_ce_is_the_logistic_loss_and_fgsm_its_closed_form():
    clf, params, w = _logistic()
    x = _images(6)
    y = np.asarray([0, 1, 0, 1, 1, 0], np.int32)
    z = x.reshape(6, -1) @ w
    ce = optax.softmax_cross_entropy_with_integer_labels(clf.logits_fn(params, x), y)
    s = 2 * y - 1
    np.testing.assert_allclose(np.asarray(ce), np.logaddexp(0, -s * z), rtol=1e-5)
    adv = np.asarray(fgsm(clf.logits_fn, params, x, y, epsilon=0.25))
    step = 0.25 * np.sign(w).reshape(28, 28, 1)
    want = np.clip(x - s[:, None, None, None] * step, 0, 1)
    np.testing.assert_allclose(adv, want, atol=1e-6)


def test_closed_form_adversarial_loss_equals_fgsm_training_loss_without_clipping():
    clf, params, _ = _logistic(seed=3)
    x = _images(8, lo=0.3, hi=0.7)  # eps 0.25 never leaves [0, 1]: no clipping
    y = jnp.asarray([0, 1] * 4)
    via_fgsm = make_loss_fn(clf.logits_fn, adv_alpha=0.5, adv_epsilon=0.25)
    closed = ge.closed_form_adversarial_loss_fn(clf.logits_fn, epsilon=0.25, alpha=0.5)
    a, acc_a = jax.jit(via_fgsm)(params, x, y)
    b, acc_b = jax.jit(closed)(params, x, y)
    np.testing.assert_allclose(float(a), float(b), rtol=1e-5)
    assert float(acc_a) == float(acc_b)
    l1 = ge.l1_loss_fn(clf.logits_fn, 0.01)(params, x, y)[0]
    plain = make_loss_fn(clf.logits_fn)(params, x, y)[0]
    kernel = params["params"]["out"]["kernel"]
    want = float(plain) + 0.01 * float(jnp.abs(kernel).sum())
    np.testing.assert_allclose(float(l1), want, rtol=1e-5)


def test_train_with_loss_fits_a_separable_problem():
    clf = models.load_classifier("logistic", "init")
    rng = np.random.default_rng(0)
    y = (np.arange(128) % 2).astype(np.int32)
    x = rng.integers(0, 60, (128, 28, 28, 1)).astype(np.uint8)
    x[y == 1, :14] += 150  # the positive class is bright in the top half
    params, metrics = ge.train_with_loss(
        make_loss_fn(clf.logits_fn),
        clf.params,
        x,
        y,
        epochs=3,
        batch_size=32,
        learning_rate=0.05,
        seed=0,
    )
    pred = np.asarray(clf.logits_fn(params, x.astype(np.float32) / 255)).argmax(1)
    assert np.mean(pred == y) == 1.0 and metrics["accuracy"] > 0.9


def test_noise_images_and_rubbish_scores():
    x = np.asarray(ge.noise_images(jax.random.key(0), 5, 0.5, 0.5))
    assert x.shape == (5, 28, 28, 1) and x.min() == 0.0 and x.max() == 1.0
    again = np.asarray(ge.noise_images(jax.random.key(0), 5, 0.5, 0.5))
    np.testing.assert_array_equal(x, again)
    probs = np.asarray([[0.6, 0.4], [0.3, 0.7], [0.45, 0.55], [0.8, 0.2]])
    out = ge.rubbish_scores(probs, np.asarray([0, 0, 1, 1]), 0.5)
    assert out["fooled"] == 0.5  # rows 0 and 2 reach the target at >= 0.5
    assert out["top1_is_target"] == 0.5
    assert out["confident_any_class"] == 1.0
    assert out["mean_target_confidence"] == pytest.approx((0.6 + 0.3 + 0.55 + 0.2) / 4)


def test_binary_subset_relabels_the_two_digits():
    x = np.arange(6, dtype=np.uint8).reshape(6, 1, 1, 1)
    y = np.asarray([3, 1, 7, 7, 3, 0])
    xs, ys = ge.binary_subset(x, y, (3, 7))
    np.testing.assert_array_equal(xs[:, 0, 0, 0], [0, 2, 3, 4])
    np.testing.assert_array_equal(ys, [0, 1, 1, 0])


def test_linear_config_refuses_bad_values_before_any_data():
    for bad, pattern in [
        (dict(digits=(3, 3)), "two different digits"),
        (dict(digits=(3, 10)), "--digits"),
        (dict(l1_lambdas=(-1.0,)), "--l1_lambdas"),
        (dict(adv_alpha=2.0), "--adv_alpha"),
    ]:
        with pytest.raises(FooljaxError, match=pattern):
            ge.LinearConfig(**bad).validate()


# one interpreter for all cases (each subprocess costs a JAX import)
CLI_CASES = [
    (["--models=nope"], r"unknown zoo model 'nope'"),
    (["--noise_std=-1"], r"--noise_std"),
    (["--epsilon=2"], r"epsilon"),
]


def test_bad_command_lines_are_one_line(tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    argvs = [[*a, f"--workdir={tmp_path}/w{i}"] for i, (a, _) in enumerate(CLI_CASES)]
    results = run_in_subprocess(
        "experiments.rubbish_images",
        "m.goodfellow_extras.make_main(m.goodfellow_extras.RubbishConfig)",
        argvs,
        tmp_path,
        env,
    )
    problems = one_line_problems(CLI_CASES, results, tmp_path)
    assert not problems, "\n".join(problems)


def test_rubbish_run_end_to_end_and_resume(tmp_path):
    # LeNet is embedded and the noise needs no data: runs without FOOLJAX_DATA
    cfg = ge.RubbishConfig(
        models="lenet", num_images=12, pgd_steps=2, batch_size=6, zoo_dir="unused"
    )
    summary = ge.run_rubbish(cfg, str(tmp_path / "r"))
    row = summary["models"]["lenet"]
    assert set(row) == {"noise", "fgsm", "pgd"}
    assert row["pgd"]["mean_target_confidence"] > row["noise"]["mean_target_confidence"]
    for png in ("rubbish_grid.png", "rubbish_fooled.png"):
        assert os.path.getsize(tmp_path / "r" / png) > 0
    with pytest.raises(FooljaxError, match="finished run"):
        ge.run_rubbish(cfg, str(tmp_path / "r"))
    os.remove(tmp_path / "r" / "summary.json")
    again = ge.run_rubbish(cfg, str(tmp_path / "r"))  # resumes from partial.json
    assert again["models"] == summary["models"]
