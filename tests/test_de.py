"""Differential evolution: donors, ask/tell against NumPy, bounds, convergence."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fooljax.evolution import de


def test_distinct_donors_are_distinct_and_not_self():
    donors = np.asarray(de.distinct_donors(jax.random.key(0), 8, 3))
    assert donors.shape == (8, 3)
    for i, row in enumerate(donors):
        assert len(set(row.tolist()) | {i}) == 4
        assert row.min() >= 0 and row.max() < 8


def test_distinct_donors_uniform():
    # Each of the other P - 1 members should be drawn as donor 1, 2 and 3 about
    # equally often (exact sampling without replacement).
    p, n = 6, 400
    keys = jax.random.split(jax.random.key(1), n)
    donors = np.asarray(jax.vmap(lambda k: de.distinct_donors(k, p, 3))(keys))
    for j in range(3):
        counts = np.bincount(donors[:, 0, j], minlength=p)
        assert counts[0] == 0
        expected = n / (p - 1)
        # chi-square with 4 dof; 0.999 quantile is 18.5
        assert ((counts[1:] - expected) ** 2 / expected).sum() < 18.5


def test_distinct_donors_rejects_tiny_population():
    with pytest.raises(ValueError):
        de.distinct_donors(jax.random.key(0), 3, 3)


def _params(d=3, **kw):
    return de.DEParams(lower=-jnp.ones(d), upper=jnp.ones(d), **kw)


def test_ask_is_rand1_mutant_without_crossover():
    params = _params(differential_weight=0.5)
    pop = de.uniform_population(jax.random.key(2), params, 8)
    state = de.init(pop, jnp.zeros(8), params)
    key = jax.random.key(3)
    trials = np.asarray(de.ask(key, state, params))
    # recompute with the same donor draw
    kd = jax.random.split(key, 4)[0]
    d = np.asarray(de.distinct_donors(kd, 8, 3))
    pop = np.asarray(pop)
    ref = np.clip(pop[d[:, 0]] + 0.5 * (pop[d[:, 1]] - pop[d[:, 2]]), -1, 1)
    np.testing.assert_allclose(trials, ref, rtol=1e-6, atol=1e-6)


def test_ask_keeps_bounds_both_rules():
    for rule in ("clip", "resample"):
        params = _params(differential_weight=2.0, bound_handling=rule)
        pop = de.uniform_population(jax.random.key(4), params, 16)
        state = de.init(pop, jnp.zeros(16), params)
        t = np.asarray(de.ask(jax.random.key(5), state, params))
        assert (t >= -1).all() and (t <= 1).all()


def test_crossover_takes_parent_genes():
    params = _params(d=6, crossover_rate=0.0)
    pop = de.uniform_population(jax.random.key(6), params, 8)
    state = de.init(pop, jnp.zeros(8), params)
    t = np.asarray(de.ask(jax.random.key(7), state, params))
    # CR = 0: exactly one gene (j_rand) comes from the mutant
    assert ((t != np.asarray(pop)).sum(axis=1) <= 1).all()


def test_tell_greedy_selection_matches_numpy():
    params = _params()
    pop = np.random.RandomState(0).uniform(-1, 1, (8, 3)).astype(np.float32)
    fit = np.arange(8, dtype=np.float32)
    state = de.init(jnp.asarray(pop), jnp.asarray(fit), params)
    trials = np.random.RandomState(1).uniform(-1, 1, (8, 3)).astype(np.float32)
    tfit = np.asarray([9, 0, 2, 3, 10, 1, 6, 5], np.float32)  # ties do not replace
    new = de.tell(jnp.asarray(trials), jnp.asarray(tfit), state, params)
    better = tfit > fit
    np.testing.assert_array_equal(
        np.asarray(new.population), np.where(better[:, None], trials, pop)
    )
    np.testing.assert_array_equal(np.asarray(new.fitness), np.maximum(tfit, fit))
    assert float(new.best_fitness) == 10.0
    np.testing.assert_array_equal(np.asarray(new.best_member), trials[4])
    assert int(new.generation) == 1


def test_de_maximises_in_a_box_and_scan_equals_loop():
    centre = jnp.asarray([0.3, -0.7, 0.9])
    f = lambda x: -jnp.sum((x - centre) ** 2, axis=-1)
    params = _params()
    key = jax.random.key(8)
    pop = de.uniform_population(key, params, 16)
    state0 = de.init(pop, f(pop), params)

    def step(state, g):
        trials = de.ask(jax.random.fold_in(key, g), state, params)
        return de.tell(trials, f(trials), state, params), None

    scanned, _ = jax.lax.scan(step, state0, jnp.arange(60))
    looped = state0
    step = jax.jit(step)
    for g in range(60):
        looped, _ = step(looped, jnp.asarray(g))
    np.testing.assert_array_equal(
        np.asarray(scanned.population), np.asarray(looped.population)
    )
    assert float(scanned.best_fitness) > -1e-3
    assert int(scanned.generation) == 60
