"""Repeated attacks with same-shaped inputs compile nothing the second time.

Each test's model function is defined here, so the first call must compile
(the counter is shown to count) whatever ran before in the process.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from fooljax.attacks import check_differentiable, fgsm, pgd
from fooljax.attacks import one_pixel as op
from tests.compile_count import count_compiles

H = W = 8
K = 3


def _params(seed):
    rng = np.random.default_rng(seed)
    return {"w": jnp.asarray(rng.normal(0, 1, (H * W * 3, K)), jnp.float32)}


def _data(seed, b=4):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (b, H, W, 3)).astype(np.float32)
    return x, rng.integers(0, K, b).astype(np.int32)


def one_pixel_logits(params, images):
    return images.reshape(images.shape[0], -1) @ params["w"]


def fgsm_logits(params, images):
    return jnp.tanh(images.reshape(images.shape[0], -1) @ params["w"])


def test_counter_counts_a_fresh_jit():
    with count_compiles() as c:
        jax.jit(lambda x: x * 3.0 + 1.0)(jnp.ones(5))
    assert c.count >= 1


def test_one_pixel_attack_twice_compiles_nothing_the_second_time():
    cfg = op.OnePixelConfig(population_size=8, max_generations=3, early_stop="none")
    exe = op.Execution(eval_batch=3, compact_every=2)
    x, y = _data(0)
    with count_compiles() as first:
        op.attack(
            jax.random.key(0),
            op.probs_from_logits(one_pixel_logits),
            _params(0),
            x,
            y,
            config=cfg,
            execution=exe,
        )
    assert first.count > 0  # init, run_chunk and best were compiled
    x2, y2 = _data(1)
    with count_compiles() as second:
        # a new wrapper of the same model, other values, another budget
        op.attack(
            jax.random.key(1),
            op.probs_from_logits(one_pixel_logits),
            _params(1),
            x2,
            y2,
            config=dataclasses.replace(cfg, max_generations=5),
            execution=exe,
        )
    assert second.count == 0, second.names
    # what the counter catches: a fresh lambda (the old probs_from_logits) is a
    # new static argument, so the attack compiles again
    with count_compiles() as fresh:
        op.attack(
            jax.random.key(1),
            lambda p, im: jax.nn.softmax(one_pixel_logits(p, im), -1),
            _params(1),
            x2,
            y2,
            config=cfg,
            execution=exe,
        )
    assert fresh.count > 0


def test_fgsm_pgd_and_checks_twice_compile_nothing_the_second_time():
    x, y = _data(2)
    with count_compiles() as first:
        fgsm(fgsm_logits, _params(2), x, y, epsilon=0.1)
        pgd(fgsm_logits, _params(2), x, y, epsilon=0.1, num_steps=2)
        check_differentiable(fgsm_logits, _params(2), x, y)
    assert first.count > 0
    x2, y2 = _data(3)
    with count_compiles() as second:
        fgsm(fgsm_logits, _params(3), x2, y2, epsilon=0.25)  # epsilon is traced
        pgd(fgsm_logits, _params(3), x2, y2, epsilon=0.2, step_size=0.05, num_steps=2)
        check_differentiable(fgsm_logits, _params(3), x2, y2)
    assert second.count == 0, second.names
