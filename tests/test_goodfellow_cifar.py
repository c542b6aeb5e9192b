"""Goodfellow et al. 2015 extras: the FGSM logit sweep (Fig. 4), maxout with
dropout, FGSM on CIFAR-10 conv nets: equivalences, dropout on/off, bad input."""

import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fooljax import models
from fooljax.attacks.fgsm_sweep import logit_sweep
from fooljax.errors import FooljaxError, InputError
from fooljax.runs import cifar_fgsm, fgsm_extras
from fooljax.train.classifier import (
    TrainState,
    dropout_logits_fn,
    make_loss_fn,
    make_train_step,
    run_epoch,
)
from tests.cli_harness import run_in_subprocess
from tests.compile_count import count_compiles


def _tiny_maxout(params, x):
    """A 2-piece maxout layer and a linear output on [B, 4, 4, 1] images."""
    h = x.reshape(x.shape[0], -1) @ params["w1"]
    h = h.reshape(x.shape[0], -1, 2).max(-1)
    return h @ params["w2"] + params["b"]


def _tiny():
    rng = np.random.default_rng(0)
    params = {
        "w1": jnp.asarray(rng.normal(size=(16, 12)), jnp.float32),
        "w2": jnp.asarray(rng.normal(size=(6, 4)), jnp.float32),
        "b": jnp.asarray(rng.normal(size=(4,)), jnp.float32),
    }
    x = jnp.asarray(rng.uniform(0, 1, (3, 4, 4, 1)), jnp.float32)
    return params, x, jnp.asarray([0, 2, 3], jnp.int32)


def _loop_reference(params, x, y, eps):
    def loss(xx):
        logits = _tiny_maxout(params, xx)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).sum()

    d = np.sign(np.asarray(jax.grad(loss)(x)))
    out = []
    for e in eps:  # the Python loop the vmapped sweep must equal
        out.append(np.asarray(_tiny_maxout(params, np.clip(x + e * d, 0.0, 1.0))))
    return np.stack(out)


def test_sweep_equals_python_loop_and_jit_and_no_recompile():
    params, x, y = _tiny()
    eps = np.linspace(-0.3, 0.3, 7).astype(np.float32)
    ref = _loop_reference(params, x, y, eps)
    got = np.asarray(logit_sweep(_tiny_maxout, params, x, y, eps))
    assert got.shape == (7, 3, 4)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    assert np.abs(got[0] - got[-1]).max() > 0.1  # the sweep moves the logits
    jitted = jax.jit(logit_sweep, static_argnums=0)(_tiny_maxout, params, x, y, eps)
    np.testing.assert_allclose(np.asarray(jitted), ref, rtol=1e-5, atol=1e-5)
    x2 = x[::-1]  # other values, same shapes (made outside the count)
    with count_compiles() as c:
        logit_sweep(_tiny_maxout, params, x2, y, eps * 0.5)
    assert c.count == 0


def test_linearity_measures():
    eps = np.linspace(-0.2, 0.2, 21)
    labels = np.zeros(2, np.int32)
    line = np.stack([3 * eps, -eps, 2 * eps + 1], -1)  # [E, K]
    kink = np.abs(eps)[:, None] * np.asarray([1.0, -2.0, 0.5])
    z = np.stack([line, kink], 1)  # [E, 2 images, 3 classes]
    m = fgsm_extras.linearity(eps, z, labels)
    assert m["two_piece_r2"] == pytest.approx(1.0, abs=1e-9)
    assert m["linear_r2"] < 0.6  # the kinked image's curves are not one line
    assert m["argmax_matches_linear_extrapolation"] == pytest.approx(1.0)
    # image 0: class 2 wins at both ends; image 1: its true class 0 does
    assert m["error_at_max"] == 0.5 and m["error_at_min"] == 0.5


@functools.cache
def _maxout_dropout():
    """``(logits_fn, params)`` of ``maxout_dropout`` (as ``load_classifier``
    builds it, identity preprocessing), params from one jitted init (the eager
    init of ``load_classifier(.., "init")`` costs seconds of small compiles)."""
    module = models.get_spec("maxout_dropout").build()
    params = jax.jit(module.init)(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
    return jax.jit(module.apply), params


def test_maxout_dropout_off_at_eval_on_in_training():
    logits_fn, params = _maxout_dropout()
    plain = models.get_spec("maxout").build()  # same params, no dropout
    x = jnp.asarray(np.random.default_rng(1).uniform(0, 1, (4, 28, 28, 1)))
    a, b = logits_fn(params, x), logits_fn(params, x)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, jax.jit(plain.apply)(params, x))
    assert dropout_logits_fn("maxout") is None
    train = jax.jit(dropout_logits_fn("maxout_dropout"))
    k0, k1 = jax.random.key(0), jax.random.key(1)
    t0, t1 = train(params, x, k0), train(params, x, k1)
    np.testing.assert_array_equal(t0, train(params, x, k0))
    assert np.abs(t0 - t1).max() > 1e-3 and np.abs(t0 - a).max() > 1e-3
    y = jnp.asarray([0, 1, 2, 3])
    with_drop = jax.jit(make_loss_fn(logits_fn, train_logits_fn=train))
    no_drop = jax.jit(make_loss_fn(logits_fn))
    assert with_drop(params, x, y, k0)[0] != with_drop(params, x, y)[0]
    assert no_drop(params, x, y, k0)[0] == no_drop(params, x, y)[0]


def test_dropout_epoch_is_reproducible_and_key_dependent():
    logits_fn, init = _maxout_dropout()
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.integers(0, 256, (32, 28, 28, 1)), jnp.uint8)
    labels = jnp.asarray(rng.integers(0, 10, 32), jnp.int32)
    opt = optax.sgd(0.1)
    step = make_train_step(
        make_loss_fn(logits_fn, train_logits_fn=dropout_logits_fn("maxout_dropout")),
        opt,
    )

    def epoch(dropout_key):
        params = jax.tree_util.tree_map(jnp.array, init)
        state = TrainState(params, opt.init(params))
        state, _ = run_epoch(
            step, state, images, labels, jax.random.key(0), 0, 16, dropout_key
        )
        return np.asarray(state.params["params"]["out"]["kernel"])

    a, b = epoch(jax.random.key(5)), epoch(jax.random.key(5))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - epoch(jax.random.key(6))).max() > 0
    assert np.abs(a - epoch(None)).max() > 0  # None: the deterministic step


def test_bad_inputs_one_line():
    params, x, y = _tiny()
    with pytest.raises(InputError, match="epsilons must be finite numbers in"):
        logit_sweep(_tiny_maxout, params, x, y, [0.1, 2.0])
    with pytest.raises(FooljaxError, match="unknown model 'nope'"):
        cifar_fgsm.parse_models("a=nope:weights.h5")
    with pytest.raises(FooljaxError, match="takes \\[28, 28, 1\\] images"):
        cifar_fgsm.parse_models("lenet:default")
    with pytest.raises(FooljaxError, match="names no weights"):
        cifar_fgsm.parse_models("cifar_lenet")
    with pytest.raises(FooljaxError, match="--epsilon must be"):
        cifar_fgsm.CifarFgsmConfig(epsilon=1.5).validate()
    with pytest.raises(FooljaxError, match="--panels entry 5"):
        fgsm_extras.LogitSweepConfig(num_images=3, panels=(5,)).validate()
    with pytest.raises(FooljaxError, match="--epsilon_max must be"):
        fgsm_extras.LogitSweepConfig(epsilon_max=0.0).validate()
    with pytest.raises(FooljaxError, match="unknown zoo model"):
        fgsm_extras._check_models({"m": "maxout_nope"}, "mnist")


def test_cifar_fgsm_cli_bad_input(tmp_path):
    wd = tmp_path / "wd"
    cases = [
        ["--epsilon=1.5", f"--workdir={wd}"],
        ["--models=a=nope:w.h5", f"--workdir={wd}"],
    ]
    out = run_in_subprocess(
        "experiments.cifar_fgsm", "m.cifar_fgsm.main", cases, tmp_path, os.environ
    )
    for args, r in zip(cases, out, strict=True):
        assert r["code"] == 2 and not r["traceback"], (args, r)
        lines = r["stderr"].strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, r)
    assert not wd.exists()


def test_cifar_fgsm_end_to_end(tmp_path, data_root):
    w = os.path.join(data_root, "cifar10-keras-one-pixel", "lenet.h5")
    cfg = cifar_fgsm.CifarFgsmConfig(
        models=f"lenet=cifar_lenet:{w}",
        num_images=20,
        batch_size=20,
        curve_epsilons=(0.1,),
        dataset="cifar10_files",
    )
    s = cifar_fgsm.run(cfg, str(tmp_path / "run"))
    row = s["models"]["lenet"]
    assert row["clean_accuracy"] == pytest.approx(17 / 20)  # README: 17/20
    assert 1 - row["clean_accuracy"] <= row["error"] <= 1
    assert row["curve"]["0.1"] == row["error"] and row["paper_error"] == 0.8715
    for f in ("cifar_fgsm_examples.png", "cifar_fgsm_error_vs_epsilon.png"):
        assert os.path.getsize(tmp_path / "run" / f) > 1000
    art = np.load(tmp_path / "run" / "artifact_lenet.npz")
    orig, _, _ = cifar_fgsm.load_test_images(cfg)
    assert np.abs(art["images"] - orig).max() <= 0.1 + 1e-6
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["epsilon"] == 0.1


def test_logit_sweep_run_end_to_end(tmp_path, data_root):
    cfg = fgsm_extras.LogitSweepConfig(
        models="m=maxout:init",  # random weights: cheap, the pipeline is the point
        num_epsilons=11,
        num_images=8,
        panels=(0, 1),
        batch_size=8,
        data_dir=os.path.join(data_root, "mnist"),
    )
    s = fgsm_extras.run(cfg, str(tmp_path / "run"))
    row = s["models"]["m"]
    assert 0 <= row["linear_r2"] <= row["two_piece_r2"] <= 1 + 1e-9
    assert row["num_curves"] == 8 * 10 and 0 <= row["error_at_max"] <= 1
    assert s["epsilons"] == {"min": -0.25, "max": 0.25, "num": 11}
    for f in ("logit_sweep_m.png", "logit_sweep_images_m.png"):
        assert os.path.getsize(tmp_path / "run" / f) > 1000
