"""One-pixel attack with ``optimizer="cmaes"`` (evosax CMA-ES via
``fooljax.evolution.es``) on tiny shapes; DE's own tests are test_one_pixel*.py."""

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fooljax.attacks import one_pixel as op
from fooljax.errors import FooljaxError, InputError
from fooljax.evolution import es
from tests.cli_harness import one_line_problems, run_in_subprocess
from tests.compile_count import count_compiles

H = W = 8
ROW, COL = 5, 2  # the pixel that decides the class


def _spot_probs(params, images):
    """Class 1 when a red pixel sits at (or next to) (ROW, COL): the red
    channel's excess over the dark background, weighted by a Gaussian around
    the spot, must exceed 0.5 (only reachable within one pixel of it). Smooth
    in the pixel's position, so a search can climb towards the spot."""
    rows, cols = np.mgrid[:H, :W]
    w = jnp.asarray(np.exp(-((rows - ROW) ** 2 + (cols - COL) ** 2) / 2.0))
    excess = jnp.sum(w * (images[..., 0] - 0.1), axis=(1, 2))
    logits = jnp.stack([jnp.zeros_like(excess), 20.0 * (excess - 0.5)], -1)
    return jax.nn.softmax(logits, -1)


@pytest.fixture(scope="module")
def noisy():
    """Six dark noisy images, less red from one to the next: the spot is
    found at different generations, so images stop at different times."""
    rng = np.random.RandomState(0)
    images = 0.1 + 0.1 * rng.rand(6, H, W, 3)
    images[..., 0] -= 0.02 * np.arange(6)[:, None, None]
    return images.astype(np.float32), np.zeros(6, np.int32)


CMA = op.OnePixelConfig(
    population_size=8,
    max_generations=10,
    optimizer="cmaes",
    cmaes_strategies=2,
    cmaes_restart_sigma=0.05,
)


# eval_batch 3 does not divide the population (8): calls mix images, are
# padded, and with memoize pack the new trials of all images. One chunk (no
# compaction, a generic host step DE's tests cover): stopped images stay in
# the batch, frozen, so each batch size compiles once
EXE = op.Execution(eval_batch=3, memoize=True, compact_every=0)


def test_cmaes_finds_the_deciding_pixel():
    images = np.full((6, H, W, 3), 0.1, np.float32)
    labels = np.zeros(6, np.int32)
    # the kernels do not depend on the budget: this reuses the next tests' ones
    cfg = dataclasses.replace(CMA, max_generations=30)
    r = op.attack(
        jax.random.key(0), _spot_probs, None, images, labels, config=cfg, execution=EXE
    )
    assert r.success.all(), r.probabilities
    # found by the search, not by the initial population
    assert (r.generations > 0).all()
    assert (r.queries <= 8 * (1 + r.generations)).all()
    xy = np.floor(r.candidates[:, 0, :2]).astype(int)  # (x, y)
    assert (np.abs(xy[:, 0] - COL) + np.abs(xy[:, 1] - ROW) <= 1).all()
    np.testing.assert_allclose(r.probabilities, _spot_probs(None, r.adversarial_images))


def test_cmaes_results_do_not_depend_on_batching(noisy):
    images, labels = noisy
    probs_fn, params = _spot_probs, None
    key = jax.random.key(7)
    a = op.attack(key, probs_fn, params, images, labels, config=CMA, execution=EXE)
    assert (a.queries <= 8 * (1 + a.generations)).all()
    assert (a.generations > 0).any()
    sub = [4, 1]
    s = op.attack(
        key,
        probs_fn,
        params,
        images[sub],
        labels[sub],
        config=CMA,
        execution=EXE,
        image_indices=sub,
    )
    for x, y in zip(s, a, strict=True):
        np.testing.assert_array_equal(x, y[sub])
    assert a.success.any() and len(set(a.generations)) > 2  # stopped at different times


def test_second_call_with_same_shapes_compiles_nothing(noisy):
    images, labels = noisy
    probs_fn, params = _spot_probs, None
    run = lambda k: op.attack(
        jax.random.key(k), probs_fn, params, images, labels, config=CMA, execution=EXE
    )
    run(1)
    with count_compiles() as c:
        run(2)
    assert c.count == 0, c.names


def test_es_core_under_jit_and_vmap_keeps_the_best():
    params = es.ESParams(
        lower=jnp.zeros(3), upper=jnp.asarray([4.0, 8.0, 255.0]), num_strategies=2
    )
    f = lambda x: -jnp.sum(((x - 1.0) / params.upper) ** 2, -1)  # max at 1

    @jax.jit
    def run(pops):  # [2, 8, 3]: two independent populations
        states = jax.vmap(es.init, in_axes=(0, 0, None))(pops, f(pops), params)

        def step(carry, g):
            states, inside = carry
            keys = jax.random.split(jax.random.fold_in(jax.random.key(1), g), 2)
            cands, states = jax.vmap(es.ask, in_axes=(0, 0, None))(keys, states, params)
            inside &= jnp.all((cands >= params.lower) & (cands <= params.upper))
            states = jax.vmap(es.tell, in_axes=(0, 0, 0, None))(
                cands, f(cands), states, params
            )
            return (states, inside), states.best_fitness

        (states, inside), best = jax.lax.scan(step, (states, True), jnp.arange(30))
        return states, inside, best, f(states.population)

    pops = jax.random.uniform(jax.random.key(0), (2, 8, 3)) * params.upper
    states, inside, best, refit = run(pops)
    assert inside
    np.testing.assert_array_equal(states.generation, 30)
    np.testing.assert_allclose(states.fitness, refit, rtol=1e-6)
    assert (np.diff(np.asarray(best), axis=0) >= 0).all()  # the best never worsens
    assert (states.best_fitness > -1e-3).all()
    assert (states.best_fitness > f(pops).max(-1)).all()
    np.testing.assert_allclose(es.reflect(jnp.asarray([-0.25, 0.5, 1.5, 2.25])),
                               [0.25, 0.5, 0.5, 0.25])  # fmt: skip


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(optimizer="pso"), "optimizer must be one of de, cmaes, got 'pso'"),
        (dict(cmaes_strategies=3), "must split into 3 strategies"),
        (dict(cmaes_sigma=0.0), "sigma_init"),
    ],
)
def test_bad_optimizer_settings_are_refused(noisy, kw, message):
    images, labels = noisy
    probs_fn, params = _spot_probs, None
    cfg = op.OnePixelConfig(population_size=8, **dict(dict(optimizer="cmaes"), **kw))
    with pytest.raises(InputError, match=message):
        op.attack(jax.random.key(0), probs_fn, params, images, labels, config=cfg)


def test_cli_refuses_a_bad_optimizer_in_one_line(tmp_path):
    from fooljax.runs.one_pixel import OnePixelRunConfig, run

    with pytest.raises(FooljaxError, match="--optimizer must be one of de, cmaes"):
        run(OnePixelRunConfig(weights="init", optimizer="DE"), str(tmp_path / "x"))
    common = ["--model=cifar_lenet", "--weights=init"]
    cases = [
        ([*common, "--optimizer=nes", f"--workdir={tmp_path / 'w0'}"], "--optimizer"),
        (
            [*common, "--optimizer=cmaes", "--population=10", "--cmaes_strategies=4"],
            "split into 4 strategies",
        ),
    ]
    cases[1][0].append(f"--workdir={tmp_path / 'w1'}")
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    results = run_in_subprocess(
        "experiments.one_pixel", "one_pixel.main", [c[0] for c in cases], tmp_path, env
    )
    assert not one_line_problems(cases, results, tmp_path)
