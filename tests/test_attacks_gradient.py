"""Gradient attacks: NumPy references, the [0, 1] box and the eps-ball, targets
reached, the L-BFGS-B batch decomposition, bad input."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fooljax.attacks import (
    check_differentiable,
    fgsm,
    gradient_ascent,
    initial_images,
    input_gradient,
    lbfgs_attack,
    per_example_loss,
    pgd,
    random_targets,
)
from fooljax.attacks.lbfgs import _solve
from fooljax.errors import FooljaxError

H, W, K = 6, 6, 4


def linear_logits(params, images):
    return images.reshape(images.shape[0], -1) @ params["w"] + params["b"]


def mlp_logits(params, images):
    h = jnp.tanh(images.reshape(images.shape[0], -1) @ params["w1"])
    return h @ params["w2"]


@pytest.fixture(scope="module")
def linear():
    rng = np.random.default_rng(0)
    params = {
        "w": jnp.asarray(rng.normal(0, 1.0, (H * W, K)), jnp.float32),
        "b": jnp.asarray(rng.normal(0, 0.1, K), jnp.float32),
    }
    x = rng.uniform(0, 1, (8, H, W, 1)).astype(np.float32)
    x[0, :2] = 0.0  # pixels on the box faces
    x[1, :2] = 1.0
    y = rng.integers(0, K, 8).astype(np.int32)
    return params, x, y


@pytest.fixture(scope="module")
def mlp():
    rng = np.random.default_rng(1)
    params = {
        "w1": jnp.asarray(rng.normal(0, 0.5, (H * W, 16)), jnp.float32),
        "w2": jnp.asarray(rng.normal(0, 1.0, (16, K)), jnp.float32),
    }
    x = rng.uniform(0, 1, (8, H, W, 1)).astype(np.float32)
    y = rng.integers(0, K, 8).astype(np.int32)
    return params, x, y


def numpy_linear_grad(params, x, y):
    w, b = np.asarray(params["w"], np.float64), np.asarray(params["b"], np.float64)
    z = x.reshape(len(x), -1).astype(np.float64) @ w + b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(y)), y] -= 1.0
    return (p @ w.T).reshape(x.shape)


def test_input_gradient_matches_numpy_and_summed_loss(linear, mlp):
    params, x, y = linear
    g = np.asarray(input_gradient(linear_logits, params, x, y))
    np.testing.assert_allclose(g, numpy_linear_grad(params, x, y), atol=1e-5)
    params, x, y = mlp
    g = input_gradient(mlp_logits, params, x, y)
    g_sum = jax.grad(lambda xx: per_example_loss(mlp_logits, params, xx, y).sum())(x)
    np.testing.assert_allclose(g, g_sum, atol=1e-6)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.25, 1.0])
def test_fgsm_matches_numpy_reference(linear, eps):
    params, x, y = linear
    ref = np.clip(x + eps * np.sign(numpy_linear_grad(params, x, y)), 0, 1)
    got = np.asarray(fgsm(linear_logits, params, x, y, epsilon=eps))
    np.testing.assert_allclose(got, ref, atol=1e-6)
    assert got.min() >= 0.0 and got.max() <= 1.0


def test_targeted_fgsm_lowers_target_loss(linear):
    params, x, y = linear
    t = (y + 1) % K
    xa = fgsm(linear_logits, params, x, t, epsilon=0.05, targeted=True)
    before = per_example_loss(linear_logits, params, x, t)
    after = per_example_loss(linear_logits, params, xa, t)
    assert np.all(np.asarray(after) < np.asarray(before))


@pytest.mark.parametrize("random_start", [False, True])
def test_pgd_stays_in_box_and_ball(mlp, random_start):
    params, x, y = mlp
    eps = 0.1
    xa = np.asarray(
        pgd(
            mlp_logits,
            params,
            x,
            y,
            epsilon=eps,
            num_steps=5,
            random_start=random_start,
            key=jax.random.key(3),
        )
    )
    assert xa.min() >= 0.0 and xa.max() <= 1.0
    assert np.all(np.abs(xa - x) <= eps + 1e-6)  # float32 rounding of x +- eps
    # PGD is at least as strong as its own start on the loss it ascends.
    assert np.mean(per_example_loss(mlp_logits, params, xa, y)) > np.mean(
        per_example_loss(mlp_logits, params, x, y)
    )


def test_pgd_one_full_step_equals_fgsm_and_seeds(mlp):
    params, x, y = mlp
    one = pgd(mlp_logits, params, x, y, epsilon=0.2, step_size=0.2, num_steps=1)
    np.testing.assert_array_equal(one, fgsm(mlp_logits, params, x, y, epsilon=0.2))
    a = pgd(
        mlp_logits,
        params,
        x,
        y,
        epsilon=0.2,
        random_start=True,
        key=jax.random.key(1),
        num_steps=2,
    )
    b = pgd(
        mlp_logits,
        params,
        x,
        y,
        epsilon=0.2,
        random_start=True,
        key=jax.random.key(1),
        num_steps=2,
    )
    c = pgd(
        mlp_logits,
        params,
        x,
        y,
        epsilon=0.2,
        random_start=True,
        key=jax.random.key(2),
        num_steps=2,
    )
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_targeted_pgd_reaches_targets(linear):
    params, x, y = linear
    t = (y + 2) % K
    xa = pgd(
        linear_logits,
        params,
        x,
        t,
        epsilon=1.0,
        step_size=0.2,
        num_steps=20,
        targeted=True,
    )
    pred = np.asarray(linear_logits(params, xa)).argmax(1)
    np.testing.assert_array_equal(pred, t)


def test_lbfgs_reaches_targets_inside_box(mlp):
    params, x, y = mlp
    t = random_targets(jax.random.key(0), y, K)
    assert np.all(t != y) and t.min() >= 0 and t.max() < K
    res = lbfgs_attack(mlp_logits, params, x, t, num_search_steps=6, max_iterations=60)
    assert res.success.all()
    pred = np.asarray(mlp_logits(params, res.adversarial)).argmax(1)
    np.testing.assert_array_equal(pred, t)
    assert res.adversarial.min() >= 0.0 and res.adversarial.max() <= 1.0
    n = H * W
    dist = np.sqrt(((res.adversarial - x).reshape(len(x), -1) ** 2).sum(1) / n)
    np.testing.assert_allclose(res.distortion, dist, rtol=1e-6)
    assert np.all(res.distortion > 0)


def test_lbfgs_batch_is_independent_problems(mlp):
    """One L-BFGS-B problem over the batch == each image solved alone."""
    params, x, y = mlp
    t = (y + 1) % K
    c = np.full(len(x), 0.5)
    joint = _solve(mlp_logits, params, x, t, c, max_iterations=500)
    for i in range(3):
        alone = _solve(
            mlp_logits, params, x[i : i + 1], t[i : i + 1], c[:1], max_iterations=500
        )
        np.testing.assert_allclose(joint[i], alone[0], atol=2e-3)


def test_lbfgs_larger_c_gives_smaller_perturbation(mlp):
    params, x, y = mlp
    t = (y + 1) % K
    small = _solve(mlp_logits, params, x, t, np.full(len(x), 0.1), max_iterations=200)
    large = _solve(mlp_logits, params, x, t, np.full(len(x), 10.0), max_iterations=200)
    assert np.sum((large - x) ** 2) < np.sum((small - x) ** 2)


def test_gradient_ascent_climbs_every_class(linear):
    params, _, _ = linear
    x0 = initial_images(jax.random.key(0), K, (H, W, 1), kind="noise")
    imgs, conf = gradient_ascent(
        linear_logits,
        params,
        x0,
        jnp.arange(K),
        step_size=0.5,
        num_steps=50,
        l2_decay=1e-4,
    )
    imgs, conf = np.asarray(imgs), np.asarray(conf)
    assert imgs.min() >= 0.0 and imgs.max() <= 1.0
    assert np.all(conf > 0.99)
    p0 = jax.nn.softmax(linear_logits(params, x0))[jnp.arange(K), jnp.arange(K)]
    assert np.all(conf > np.asarray(p0))
    blank = initial_images(jax.random.key(0), 2, (H, W, 1), kind="blank")
    assert np.all(np.asarray(blank) == 0.5)


def test_bad_input_is_refused(linear):
    params, x, y = linear
    for eps in (-0.1, 1.5, float("nan")):
        with pytest.raises(FooljaxError, match="epsilon must be in"):
            fgsm(linear_logits, params, x, y, epsilon=eps)
    with pytest.raises(FooljaxError, match="pixel box"):
        fgsm(linear_logits, params, x * 2.0, y, epsilon=0.1)
    with pytest.raises(FooljaxError, match="unknown target label 7"):
        lbfgs_attack(linear_logits, params, x, np.full(len(x), 7, np.int32))
    with pytest.raises(FooljaxError, match="unknown target label"):
        pgd(
            linear_logits,
            params,
            x,
            -np.ones(len(x), np.int32),
            epsilon=0.1,
            targeted=True,
        )
    with pytest.raises(FooljaxError, match="unknown class"):
        gradient_ascent(linear_logits, params, x[:1], np.array([K]))


def test_non_differentiable_model_points_to_gradient_free_attacks(linear):
    params, x, y = linear

    def numpy_model(params, images):  # host NumPy: JAX cannot trace it
        return jnp.asarray(np.asarray(images).reshape(len(images), -1) @ params["w"])

    def quantised(params, images):  # traceable, but the gradient is zero
        return linear_logits(params, jnp.round(images * 4) / 4)

    for model in (numpy_model, quantised):
        with pytest.raises(FooljaxError, match="gradient-free attacks"):
            check_differentiable(model, params, x, y)
    check_differentiable(linear_logits, params, x, y)


def test_fgsm_on_real_lenet(mnist_test):
    from fooljax import models

    clf = models.load_classifier("lenet", "default")
    images, labels = mnist_test
    x = images[:200].astype(np.float32) / 255.0
    y = labels[:200]
    xa = np.asarray(fgsm(clf.logits_fn, clf.params, x, y, epsilon=0.25))
    assert xa.min() >= 0.0 and xa.max() <= 1.0
    assert np.all(np.abs(xa - x) <= 0.25 + 1e-6)
    clean = (np.asarray(clf.logits_fn(clf.params, x)).argmax(1) != y).mean()
    adv = (np.asarray(clf.logits_fn(clf.params, xa)).argmax(1) != y).mean()
    assert clean < 0.03 and adv > 0.5


def test_cli_bad_epsilon_exits_2(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.fgsm",
            f"--workdir={tmp_path / 'w'}",
            "--epsilon=1.5",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith("error: epsilon must be in")


def test_checks_run_on_concrete_values_and_traced_epsilon_works(linear):
    params, x, y = linear
    for eps in (jnp.float32(1.5), np.float32(-0.1)):  # concrete arrays: checked
        with pytest.raises(FooljaxError, match="epsilon must be in"):
            fgsm(linear_logits, params, x, y, epsilon=eps)
    with pytest.raises(FooljaxError, match="step_size must be in"):
        pgd(linear_logits, params, x, y, epsilon=0.1, step_size=jnp.float32(2.0))
    ref = fgsm(linear_logits, params, x, y, epsilon=0.1)
    traced = jax.jit(lambda e, xx: fgsm(linear_logits, params, xx, y, epsilon=e))
    np.testing.assert_array_equal(traced(0.1, x), ref)
    ref_pgd = pgd(linear_logits, params, x, y, epsilon=0.1, num_steps=3)
    traced_pgd = jax.jit(
        lambda e: pgd(linear_logits, params, x, y, epsilon=e, num_steps=3)
    )
    np.testing.assert_allclose(traced_pgd(0.1), ref_pgd, atol=1e-6)
