"""Every public pure function of the encodings, DE and MAP-Elites, in variants.

As optax tests its transformations: each function runs plain, under ``jit``,
under ``vmap`` (over keys, genomes or whole states) and ``jit(vmap)``, and under
``grad`` where it is differentiable, and every variant must give the plain
call's values (integers and masks exactly, floats to a few ulps). Gradients are
also checked against finite differences (float64 ``colorsys`` for the HSV
decoding), so a wrong derivative fails, not only a wrong shape.
"""

import colorsys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fooljax.encodings import cppn, direct, make_encoding
from fooljax.evolution import de
from fooljax.evolution import map_elites as me
from tests.tiny import direct_encoding, tiny_classifier

N = 2  # independent calls per variant check
SHAPE = (8, 8, 3)


def _is_key(x):
    return jax.dtypes.issubdtype(jnp.asarray(x).dtype, jax.dtypes.prng_key)


def assert_trees_close(got, want, rtol=1e-5, atol=1e-5):
    """Same structure; keys, integers and bools equal; floats allclose."""
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        if _is_key(w):
            g, w = jax.random.key_data(g), jax.random.key_data(w)
        g, w = np.asarray(g), np.asarray(w)
        assert g.shape == w.shape and g.dtype == w.dtype
        if np.issubdtype(w.dtype, np.floating):
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)
        else:
            np.testing.assert_array_equal(g, w)


def _take(tree, i):
    return jax.tree.map(lambda x: x[i], tree)


def _stack(trees):
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def check_variants(fn, *args, in_axes, rtol=1e-5, atol=1e-5):
    """``fn`` plain on each of the ``N`` slices of the mapped args == ``jit(fn)``
    on the same slice; ``jit(vmap(fn))`` on the batch == the stacked plain
    results (eager ``vmap`` traces the same batching rules, only slower).
    Returns the stacked plain results."""
    n = jax.tree.leaves(args[in_axes.index(0)])[0].shape[0]
    jitted = jax.jit(fn)
    plain = []
    for i in range(n):
        args_i = [
            _take(a, i) if ax == 0 else a for a, ax in zip(args, in_axes, strict=True)
        ]
        out = fn(*args_i)
        assert_trees_close(jitted(*args_i), out, rtol, atol)
        plain.append(out)
    plain = _stack(plain)
    batched = jax.jit(jax.vmap(fn, in_axes=in_axes))
    assert_trees_close(batched(*args), plain, rtol, atol)
    return plain


def _keys(seed, n=N):
    return jax.random.split(jax.random.key(seed), n)


# ---------------------------------------------------------------- direct


def _direct_genomes(seed=0, n=N, shape=SHAPE):
    return jax.vmap(lambda k: direct.init(k, shape))(_keys(seed, n))


def test_direct_init_variants():
    out = check_variants(lambda k: direct.init(k, SHAPE), _keys(1), in_axes=(0,))
    assert out.shape == (N, *SHAPE) and 0 <= out.min() and out.max() <= 255
    assert not np.array_equal(out[0], out[1])  # each key its own genome


@pytest.mark.parametrize("eta", [15.0, 20.0])  # power-of-two root and general pow
def test_polynomial_mutation_variants(eta):
    genomes = _direct_genomes(2)
    rates = jnp.asarray([0.0, 1.0])
    out = check_variants(
        lambda k, g, r: direct.polynomial_mutation(k, g, rate=r, eta=eta),
        _keys(3),
        genomes,
        rates,
        in_axes=(0, 0, 0),
        atol=1e-4,
    )
    np.testing.assert_array_equal(out[0], genomes[0])  # rate 0: unchanged
    assert np.mean(out[1] != genomes[1]) > 0.99  # rate 1: (almost) every gene moves


def test_sbx_crossover_variants():
    a, b = _direct_genomes(4), _direct_genomes(5)
    out = check_variants(
        lambda k, x, y: direct.sbx_crossover(k, x, y, eta=10.0),
        _keys(6),
        a,
        b,
        in_axes=(0, 0, 0),
        atol=1e-4,
    )
    assert np.any(out != a) and np.any(out == a)  # some genes crossed, some kept


@pytest.mark.parametrize("fn", [direct.decode_grey, direct.decode_hsv])
def test_decode_variants(fn):
    genomes = _direct_genomes(7)
    out = check_variants(fn, genomes, in_axes=(0,))
    assert out.shape == genomes.shape and 0 <= out.min() <= out.max() <= 1


def test_hsv_to_rgb_variants_match_colorsys():
    hsv = jax.random.uniform(jax.random.key(8), (N, 8, 8, 3))
    out = check_variants(direct.hsv_to_rgb, hsv, in_axes=(0,))
    ref = np.apply_along_axis(lambda p: colorsys.hsv_to_rgb(*p), -1, np.asarray(hsv))
    np.testing.assert_allclose(out, ref, atol=1e-6)


def _hsv_loss_np(genome, weights):
    rgb = np.apply_along_axis(
        lambda p: colorsys.hsv_to_rgb(*p), -1, np.asarray(genome, np.float64) / 255
    )
    return float(np.sum(rgb * weights))


@pytest.mark.parametrize(
    "decode,ref_decode",
    [
        (direct.decode_grey, lambda g: np.asarray(g, np.float64) / 255.0),
        (direct.decode_hsv, None),
    ],
)
def test_decode_grad_variants_match_finite_differences(decode, ref_decode):
    genomes = _direct_genomes(9, shape=(8, 8, 3))
    weights = jax.random.normal(jax.random.key(10), (8, 8, 3))

    def loss(g):
        return jnp.sum(decode(g) * weights)

    grads = check_variants(jax.grad(loss), genomes, in_axes=(0,))
    # the plain gradient against float64 central differences along a direction
    direction = np.asarray(jax.random.normal(jax.random.key(11), (8, 8, 3)))
    w64 = np.asarray(weights, np.float64)
    eps = 1e-3
    for g, grad in zip(np.asarray(genomes, np.float64), np.asarray(grads), strict=True):
        if ref_decode is None:
            up = _hsv_loss_np(g + eps * direction, w64)
            down = _hsv_loss_np(g - eps * direction, w64)
        else:
            up = np.sum(ref_decode(g + eps * direction) * w64)
            down = np.sum(ref_decode(g - eps * direction) * w64)
        fd = (up - down) / (2 * eps)
        np.testing.assert_allclose(np.sum(grad * direction), fd, rtol=1e-4, atol=1e-5)
    if ref_decode is not None:  # linear: the gradient is weights / 255 everywhere
        np.testing.assert_allclose(grads[0], weights / 255.0, rtol=1e-6)


def test_hsv_to_rgb_grad_variants():
    hsv = jax.random.uniform(jax.random.key(12), (N, 4, 4, 3), minval=0.05, maxval=0.95)
    weights = jax.random.normal(jax.random.key(13), (4, 4, 3))
    grads = check_variants(
        jax.grad(lambda x: jnp.sum(direct.hsv_to_rgb(x) * weights)), hsv, in_axes=(0,)
    )
    # V scales RGB linearly: d/dV sum(w * rgb) = sum(w * rgb) / V
    rgb = direct.hsv_to_rgb(hsv)
    np.testing.assert_allclose(
        grads[..., 2], jnp.sum(rgb * weights, -1) / hsv[..., 2], rtol=1e-4, atol=1e-5
    )


# ---------------------------------------------------------------- CPPN


@pytest.fixture(scope="module")
def spec():
    return cppn.make_spec((8, 8, 3), max_nodes=8, max_edges=16)


@pytest.fixture(scope="module")
def cppn_genomes(spec):
    """``N`` genomes, each mutated a few times so hidden nodes and gaps exist."""
    genomes = jax.vmap(lambda k: cppn.init(k, spec))(_keys(20))
    mutate = jax.jit(jax.vmap(lambda k, g: cppn.mutate(k, g, spec)))
    for step in range(4):
        genomes = mutate(_keys(21 + step), genomes)
    return genomes


def test_cppn_init_variants(spec):
    out = check_variants(lambda k: cppn.init(k, spec), _keys(30), in_axes=(0,))
    assert not np.array_equal(out.weight[0], out.weight[1])


@pytest.mark.parametrize(
    "op",
    [
        cppn.mutate,
        cppn.add_connection,
        cppn.delete_connection,
        cppn.change_connection,
        cppn.add_node,
        cppn.delete_node,
    ],
    ids=lambda op: op.__name__,
)
def test_cppn_mutation_operator_variants(spec, cppn_genomes, op):
    out = check_variants(
        lambda k, g: op(k, g, spec), _keys(31), cppn_genomes, in_axes=(0, 0)
    )
    changed = jax.tree.map(lambda a, b: np.any(a != b), out, cppn_genomes)
    assert any(jax.tree.leaves(changed)), f"{op.__name__} changed nothing"


def test_cppn_coordinates_and_sine_variants():
    coords = cppn.coordinates(8, 8)
    np.testing.assert_allclose(
        jax.jit(cppn.coordinates, static_argnums=(0, 1))(8, 8), coords, atol=1e-6
    )
    s = jnp.linspace(-20.0, 20.0, N * 64).reshape(N, 64)
    out = check_variants(cppn.sine, s, in_axes=(0,))
    np.testing.assert_allclose(out, np.sin(np.asarray(s, np.float64)), atol=1e-6)


def test_cppn_network_outputs_and_render_variants(spec, cppn_genomes):
    inputs = cppn.coordinates(8, 8)
    outs = check_variants(
        lambda g, x: cppn.network_outputs(g, x, spec),
        cppn_genomes,
        inputs,
        in_axes=(0, None),
    )
    assert outs.shape == (N, 3, 64) and np.all(np.abs(outs) <= 1)
    images = check_variants(
        lambda g: cppn.render(g, 8, 8, spec), cppn_genomes, in_axes=(0,)
    )
    # render = outputs (affine to [0, 1]) as HSV -> RGB
    hsv = ((outs + 1) * 0.5).transpose(0, 2, 1).reshape(N, 8, 8, 3)
    np.testing.assert_allclose(images, direct.hsv_to_rgb(hsv), atol=1e-6)


def test_cppn_render_grad_wrt_weights_variants(spec, cppn_genomes):
    # small weights keep every activation smooth, so differences are accurate
    genomes = cppn_genomes.replace(weight=cppn_genomes.weight * 0.1)
    target = jax.random.uniform(jax.random.key(40), (8, 8, 3))

    def loss(weight, g):
        return jnp.sum(cppn.render(g.replace(weight=weight), 8, 8, spec) * target)

    grad_fn = jax.grad(loss)
    grads = check_variants(grad_fn, genomes.weight, genomes, in_axes=(0, 0), atol=1e-4)
    assert np.all(grads[~np.asarray(genomes.edge_on)] == 0)  # absent edges: no grad
    direction = jax.random.normal(jax.random.key(41), genomes.weight.shape[1:])
    eps = 1e-3
    for i in range(N):
        g, w = _take(genomes, i), genomes.weight[i]
        along = jnp.sum(grads[i] * direction)
        # forward mode (an independent transformation) agrees to rounding ...
        _, jvp = jax.jvp(lambda w: loss(w, g), (w,), (direction,))
        np.testing.assert_allclose(along, jvp, rtol=1e-4, atol=1e-4)
        # ... and central differences to their truncation error (float32 loss,
        # a few pixels sit on HSV's piecewise-linear kinks)
        fd = (loss(w + eps * direction, g) - loss(w - eps * direction, g)) / (2 * eps)
        np.testing.assert_allclose(along, fd, rtol=0.1, atol=0.05)


def test_cppn_encoding_init_and_decode_variants():
    enc, _ = make_encoding("cppn", (8, 8, 1), options={"max_nodes": 8, "max_edges": 12})
    genomes = check_variants(enc.init, _keys(50), in_axes=(0,))
    # enc.mutate is cppn.mutate with the spec bound (tested above)
    check_variants(enc.decode, genomes, in_axes=(0,))


# ---------------------------------------------------------------- DE


def _de_params(dim=4, **kw):
    return de.DEParams(
        lower=jnp.full((dim,), -1.0), upper=jnp.arange(1.0, dim + 1.0), **kw
    )


def _sphere(pop):
    return -jnp.sum(pop * pop, axis=-1)  # maximised at 0


def test_de_uniform_population_and_donors_variants():
    params = _de_params()
    pops = check_variants(
        lambda k: de.uniform_population(k, params, 8), _keys(60), in_axes=(0,)
    )
    assert pops.shape == (N, 8, 4)
    assert np.all(pops >= params.lower) and np.all(pops <= params.upper)
    donors = check_variants(
        lambda k: de.distinct_donors(k, 8, 3), _keys(61), in_axes=(0,)
    )
    rows = np.concatenate([np.arange(8)[None, :, None].repeat(N, 0), donors], -1)
    assert all(len(set(r)) == 4 for r in rows.reshape(-1, 4))


@pytest.mark.parametrize("bound_handling", ["clip", "resample"])
@pytest.mark.parametrize("crossover_rate", [1.0, 0.5])
def test_de_init_ask_tell_variants(bound_handling, crossover_rate):
    params = _de_params(crossover_rate=crossover_rate, bound_handling=bound_handling)
    pops = jax.vmap(lambda k: de.uniform_population(k, params, 8))(_keys(62))
    states = check_variants(
        lambda p, f: de.init(p, f, params), pops, _sphere(pops), in_axes=(0, 0)
    )
    for gen in range(2):  # two generations, every call in variants
        trials = check_variants(
            lambda k, s: de.ask(k, s, params),
            _keys(63 + gen),
            states,
            in_axes=(0, 0),
        )
        assert np.all(trials >= params.lower) and np.all(trials <= params.upper)
        new = check_variants(
            lambda t, f, s: de.tell(t, f, s, params),
            trials,
            _sphere(trials),
            states,
            in_axes=(0, 0, 0),
        )
        assert np.all(new.fitness >= states.fitness)  # greedy selection
        assert np.all(new.generation == gen + 1)
        states = new


def test_de_params_as_a_batched_argument():
    """Different boxes per population: params themselves vmapped."""
    params = _stack([_de_params(), _de_params()])
    params = params.replace(upper=params.upper * jnp.asarray([[1.0], [3.0]]))
    pops = check_variants(
        lambda k, p: de.uniform_population(k, p, 8), _keys(70), params, in_axes=(0, 0)
    )
    assert np.all(pops <= params.upper[:, None, :])


# ---------------------------------------------------------------- MAP-Elites


@pytest.fixture(scope="module")
def classifier():
    return tiny_classifier(num_classes=4, shape=(8, 8, 1))


def _me_kwargs(classifier, crossover_rate=0.5):
    _, _, logits_fn = classifier
    return dict(
        log_probs_fn=me.log_probs_from(logits_fn),
        encoding=direct_encoding((8, 8, 1), crossover_rate=crossover_rate),
        population=8,
        layout=me.make_layout(8, eval_batch=4),
    )


def test_map_elites_init_variants(classifier):
    _, params, _ = classifier
    kw = _me_kwargs(classifier)
    init = me.make_init(num_classes=4, **kw)
    # the jitted init == the plain pure function, also under an outer jit/vmap
    plain = [me.init(k, params, num_classes=4, **kw) for k in _keys(80)]
    states = check_variants(init, _keys(80), params, in_axes=(0, None))
    assert_trees_close(states, _stack(plain))
    assert np.all(np.isfinite(states.archive.fitness[:, :1]))


def test_map_elites_run_chunk_variants(classifier):
    _, params, _ = classifier
    kw = _me_kwargs(classifier)
    init = me.make_init(num_classes=4, **kw)
    run_chunk = me.make_run_chunk(**kw)
    states = jax.vmap(init, in_axes=(0, None))(_keys(81), params)

    def fresh():  # run_chunk donates its state
        return jax.tree.map(jnp.copy, states)

    def chunk2(s, p):
        return run_chunk(s, p, 2)[0]

    plain = _stack([chunk2(_take(fresh(), i), params) for i in range(N)])
    assert np.all(plain.generation == 2)
    assert np.all(plain.archive.fitness >= states.archive.fitness)
    assert np.any(plain.archive.found_at > 0)  # two generations changed elites
    # run_chunk is jitted already: an outer jit inlines it, vmap batches it
    batched = jax.jit(jax.vmap(chunk2, in_axes=(0, None)))(fresh(), params)
    assert_trees_close(batched, plain)


def test_map_elites_ask_and_tell_variants(classifier):
    _, params, logits_fn = classifier
    kw = _me_kwargs(classifier)
    enc = kw["encoding"]
    states = jax.vmap(me.make_init(num_classes=4, **kw), in_axes=(0, None))(
        _keys(82), params
    )
    gens = jnp.asarray([1, 2])
    offspring = check_variants(
        lambda k, a, g: me.ask(k, a, enc, 8, g),
        _keys(83),
        states.archive,
        gens,
        in_axes=(0, 0, 0),
        atol=1e-4,
    )
    log_probs = jax.vmap(
        lambda g: jax.nn.log_softmax(logits_fn(params, jax.vmap(enc.decode)(g)))
    )(offspring)
    archives = check_variants(
        me.tell, states.archive, offspring, log_probs, gens, in_axes=(0, 0, 0, 0)
    )
    assert np.all(archives.fitness >= states.archive.fitness)
