import colorsys

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fooljax.encodings import direct, mutation_rate


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    rate=st.floats(0.0, 1.0),
    eta=st.sampled_from([0.0, 1.0, 5.5, 15.0, 20.0, 31.0]),
)
def test_mutation_stays_in_range_and_respects_rate(seed, rate, eta):
    key = jax.random.key(seed)
    g = direct.init(jax.random.fold_in(key, 1), (16, 16, 1))
    m = direct.polynomial_mutation(key, g, rate=rate, eta=eta)
    assert bool(jnp.all((m >= 0) & (m <= 255)))
    changed = np.asarray(m != g)
    # The genes that may change are exactly those whose uniform fell below rate.
    r = np.asarray(jax.random.uniform(key, g.shape))
    assert not np.any(changed & (r >= rate))


def test_mutation_matches_scalar_reference():
    key = jax.random.key(3)
    g = direct.init(jax.random.key(4), (64,))
    rate = 0.5
    for eta in (15.0, 7.0, 2.5):
        m = np.asarray(direct.polynomial_mutation(key, g, rate=rate, eta=eta))
        r = np.asarray(jax.random.uniform(key, g.shape))
        for i in range(64):
            if r[i] < rate:
                ref = direct.polynomial_mutation_reference(
                    float(r[i] / rate), float(g[i]), eta
                )
                np.testing.assert_allclose(m[i], ref, rtol=1e-4, atol=1e-3)
            else:
                assert m[i] == g[i]


def test_mutation_step_size_shrinks_with_eta():
    g = jnp.full((20000,), 128.0)
    small = direct.polynomial_mutation(jax.random.key(0), g, rate=1.0, eta=30.0)
    large = direct.polynomial_mutation(jax.random.key(0), g, rate=1.0, eta=1.0)
    assert float(jnp.mean(jnp.abs(small - g))) < float(jnp.mean(jnp.abs(large - g)))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_sbx_child_in_range_and_identity(seed):
    k = jax.random.key(seed)
    a = direct.init(jax.random.fold_in(k, 1), (32,))
    b = direct.init(jax.random.fold_in(k, 2), (32,))
    c = direct.sbx_crossover(k, a, b, eta=10.0)
    assert bool(jnp.all((c >= 0) & (c <= 255)))
    same = direct.sbx_crossover(k, a, a, eta=10.0)
    np.testing.assert_array_equal(same, a)


def test_hsv_to_rgb_matches_colorsys():
    rng = np.random.default_rng(0)
    hsv = rng.random((200, 3)).astype(np.float32)
    ours = np.asarray(direct.hsv_to_rgb(jnp.asarray(hsv)))
    ref = np.array([colorsys.hsv_to_rgb(*p) for p in hsv])
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_mutation_schedule_halves_without_recompiling():
    f = jax.jit(lambda g: mutation_rate(0.1, 1000, g))
    assert float(f(jnp.int32(999))) == np.float32(0.1)
    assert float(f(jnp.int32(1000))) == np.float32(0.05)
    assert float(f(jnp.int32(2500))) == np.float32(0.025)
    assert f._cache_size() == 1
    assert float(mutation_rate(0.1, 0, jnp.int32(5000))) == np.float32(0.1)
