"""The needy mutation emitter (``mutation_needy:N``): parents drawn with
weight 1 - p of their cell, never from an empty cell."""

import jax
import jax.numpy as jnp
import numpy as np

from fooljax.evolution import emitters as em
from fooljax.evolution import map_elites as me
from tests.tiny import direct_encoding

K, SHAPE = 4, (8, 8, 1)


def test_needy_mutation_breeds_the_least_certain_cell():
    enc = direct_encoding()
    # cell k's elite is the constant image 50 * k: its parent is readable back
    genomes = jnp.broadcast_to((50.0 * jnp.arange(K))[:, None, None, None], (K, *SHAPE))
    p = jnp.array([0.999999, 0.5, 0.999999, 0.999999])
    archive = me.Archive(
        genomes=genomes,
        fitness=jnp.log(p).at[3].set(-jnp.inf),  # cell 3 empty
        found_at=jnp.zeros((K,), jnp.int32),
    )
    ctx = em.Context(enc, None, None, 8, jnp.int32(1))
    assert em.parse("mutation:6,mutation_needy:10", 16)[1] == em.NeedyMutation(10)
    kids = jax.jit(lambda k: em.NeedyMutation(400).emit(k, archive, ctx))(
        jax.random.key(0)
    ).offspring
    parents = np.round(np.asarray(kids).mean(axis=(1, 2, 3)) / 50.0).astype(int)
    counts = np.bincount(parents, minlength=K)
    # weights 1e-6 : 0.5 : 1e-6 : 1 (empty, redrawn uniformly among 0, 1, 2):
    # expected 89, 222, 89, 0
    assert counts[3] == 0
    assert counts[1] > 0.45 * 400
    assert 40 < counts[0] < 140 and 40 < counts[2] < 140
    # the uniform emitter spreads its parents over the occupied cells
    uni = em.Mutation(400).emit(jax.random.key(0), archive, ctx).offspring
    u = np.bincount(
        np.round(np.asarray(uni).mean(axis=(1, 2, 3)) / 50.0).astype(int),
        minlength=K,
    )
    assert u[3] == 0 and u[1] < 0.45 * 400  # expected 133


def test_gradient_any_starts_from_any_elite_gradient_from_the_target():
    """``gradient_any``: the target is drawn as ``needy_cells`` but the start is
    a uniformly drawn elite; ``gradient`` starts from the target's own elite."""
    enc = direct_encoding()
    genomes = jnp.broadcast_to((50.0 * jnp.arange(K))[:, None, None, None], (K, *SHAPE))
    p = jnp.array([0.999999, 0.5, 0.999999, 0.999999])
    archive = me.Archive(
        genomes=genomes, fitness=jnp.log(p), found_at=jnp.zeros((K,), jnp.int32)
    )
    w = jnp.zeros((64, K))  # a flat classifier: zero gradient, offspring = parent

    def log_probs_fn(params, x):
        return jax.nn.log_softmax(x.reshape(x.shape[0], -1) @ params)

    ctx = em.Context(enc, log_probs_fn, w, 8, jnp.int32(1))
    assert em.parse("mutation:6,gradient_any:10", 16, steps=2)[1] == em.GradientAny(
        10, steps=2
    )

    def parents(emitter):
        out = jax.jit(lambda k: emitter.emit(k, archive, ctx))(jax.random.key(0))
        mean = np.asarray(out.offspring).mean(axis=(1, 2, 3))
        return np.bincount(np.round(mean / 50.0).astype(int), minlength=K)

    own = parents(em.Gradient(400, steps=1))
    anyp = parents(em.GradientAny(400, steps=1))
    assert own[1] > 0.9 * 400  # the needy cell's own elite, nearly always
    assert np.all(anyp > 60) and anyp[1] < 0.45 * 400  # uniform: expected 100 each


def test_gradient_mut_ascends_a_mutated_copy():
    """``gradient_mut``: the target's elite is mutated by the encoding first (a
    zero gradient then leaves the mutated copy), ``gradient`` keeps it."""
    enc = direct_encoding()
    genomes = jnp.broadcast_to((50.0 * jnp.arange(K))[:, None, None, None], (K, *SHAPE))
    p = jnp.array([0.999999, 0.5, 0.999999, 0.999999])
    archive = me.Archive(
        genomes=genomes, fitness=jnp.log(p), found_at=jnp.zeros((K,), jnp.int32)
    )
    w = jnp.zeros((64, K))  # zero gradient: the steps change nothing

    def log_probs_fn(params, x):
        return jax.nn.log_softmax(x.reshape(x.shape[0], -1) @ params)

    ctx = em.Context(enc, log_probs_fn, w, 8, jnp.int32(1))
    assert em.parse("mutation:6,gradient_mut:10", 16, steps=2)[1] == em.GradientMutated(
        10, steps=2
    )
    emitted = jax.jit(lambda k: em.GradientMutated(50, steps=2).emit(k, archive, ctx))(
        jax.random.key(0)
    )
    kids = np.asarray(emitted.offspring)
    plain = np.asarray(
        em.Gradient(50, steps=2).emit(jax.random.key(0), archive, ctx).offspring
    )
    assert np.all(np.isin(plain, [0.0, 50.0, 100.0, 150.0]))  # elites unchanged
    changed = ~np.isin(kids, [0.0, 50.0, 100.0, 150.0])
    assert changed.any(axis=(1, 2, 3)).mean() > 0.9  # mutated, as the encoding does
    assert emitted.extra_lp.shape == (50, K)  # the first step's scores kept


def test_tune_perturbs_only_the_cppn_weights_of_needy_elites():
    """``tune``: parents as ``needy_cells``; a CPPN keeps its topology and
    activations, its used connections' weights move (finely, within bounds)."""
    from fooljax.encodings import cppn, make_encoding

    enc, _ = make_encoding("cppn", SHAPE)
    keys = jax.random.split(jax.random.key(1), K)
    genomes = jax.vmap(enc.init)(keys)
    for _ in range(3):  # some hidden nodes and edges
        keys = jax.random.split(keys[0], K)
        genomes = jax.vmap(enc.mutate, in_axes=(0, 0, None))(keys, genomes, 1)
    p = jnp.array([0.999999, 0.5, 0.999999, 0.999999])
    archive = me.Archive(
        genomes=genomes, fitness=jnp.log(p), found_at=jnp.zeros((K,), jnp.int32)
    )
    ctx = em.Context(enc, None, None, 8, jnp.int32(1))
    tune = em.parse("mutation:6,tune:10", 16, tune_options={"genes": "cppn"})[1]
    assert tune == em.Tune(10, genes="cppn")
    kids = jax.jit(
        lambda k: em.Tune(200, genes="cppn", rate=1.0).emit(k, archive, ctx)
    )(jax.random.key(0)).offspring
    w = np.asarray(em.GENES["cppn"].get(genomes))  # [K, E]
    kw = np.asarray(jax.vmap(em.GENES["cppn"].get)(kids))
    # each kid's parent: the elite whose weights it is closest to (fine steps)
    parent = np.argmin(np.abs(kw[:, None, :] - w[None]).sum(-1), axis=1)
    assert np.bincount(parent, minlength=K)[1] > 0.45 * 200  # the needy cell
    for leaf, kid in zip(
        jax.tree_util.tree_leaves(genomes), jax.tree_util.tree_leaves(kids), strict=True
    ):
        if leaf.shape[1:] != w.shape[1:]:  # not the weights: unchanged
            np.testing.assert_array_equal(np.asarray(kid), np.asarray(leaf)[parent])
    mask = np.asarray(jax.vmap(em.GENES["cppn"].mask)(kids))
    moved = kw != w[parent]
    assert not np.any(moved & ~mask)  # unused edges keep their weights
    assert np.all(moved.any(axis=1) == mask.any(axis=1))  # rate 1: every used edge
    assert np.all((kw >= cppn.WEIGHT_LOW) & (kw <= cppn.WEIGHT_HIGH))
    step = np.abs(kw - w[parent])[moved]
    assert np.median(step) < 0.1 * (cppn.WEIGHT_HIGH - cppn.WEIGHT_LOW)
