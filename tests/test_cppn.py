"""CPPN encoding: validity under any mutation sequence (hypothesis), rendering
against an independent NumPy evaluation, resolution independence, bad options."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fooljax import encodings
from fooljax.encodings import cppn
from fooljax.errors import FooljaxError

# A saturating spec (tiny capacities: every "no room" branch is hit) and a
# roomy colour one.
SPECS = {
    "tiny_grey": dict(image_shape=(6, 5, 1), max_nodes=7, max_edges=6),
    "hsv": dict(
        image_shape=(5, 7, 3),
        max_nodes=14,
        max_edges=30,
        p_add_node=0.9,
        p_del_node=0.1,
        p_del_conn=0.2,
    ),
    # The Sferes2 code's conventions: pixel-index x, y and |o| as the grey value.
    "sferes_grey": dict(
        image_shape=(9, 7, 1),
        max_nodes=12,
        max_edges=24,
        coords="pixel",
        output_map="abs",
    ),
}
POP, STEPS = 8, 40


@functools.cache
def _setup(name):
    opts = dict(SPECS[name])
    shape = opts.pop("image_shape")
    enc, extra = cppn.make_encoding(shape, **opts)

    @jax.jit
    def evolve(key):
        """Mutation trajectories of POP genomes: leaves [STEPS + 1, POP, ...]."""
        g0 = jax.vmap(enc.init)(jax.random.split(jax.random.fold_in(key, 0), POP))

        def step(g, t):
            keys = jax.random.split(jax.random.fold_in(key, t + 1), POP)
            g = jax.vmap(enc.mutate, in_axes=(0, 0, None))(keys, g, t)
            return g, g

        _, gs = jax.lax.scan(step, g0, jnp.arange(STEPS))
        return jax.tree_util.tree_map(
            lambda a, b: jnp.concatenate([a[None], b]), g0, gs
        )

    render = jax.jit(jax.vmap(enc.decode))
    return shape, extra["spec"], evolve, render


def _one(genomes, *idx):
    return jax.tree_util.tree_map(lambda a: np.asarray(a[idx]), genomes)


def check_valid(g, spec: cppn.Spec):
    """Every invariant of a genome, checked in NumPy (acyclicity by Kahn)."""
    n, e, o = spec.max_nodes, spec.max_edges, spec.num_outputs
    assert g.activation.shape == g.node_used.shape == g.order.shape == (n,)
    assert g.src.shape == g.dst.shape == g.weight.shape == g.edge_on.shape == (e,)
    io = cppn.NUM_INPUTS + o
    assert g.node_used[:io].all()
    assert (g.order[: cppn.NUM_INPUTS] == 0).all() and (
        g.order[cppn.NUM_INPUTS : io] == 1
    ).all()
    hidden = np.flatnonzero(g.node_used[io:]) + io
    assert ((g.order[hidden] > 0) & (g.order[hidden] < 1)).all()
    assert ((0 <= g.activation) & (g.activation < len(spec.activations))).all()
    on = np.flatnonzero(g.edge_on)
    s, d = g.src[on], g.dst[on]
    assert ((0 <= s) & (s < n) & (0 <= d) & (d < n)).all()
    assert g.node_used[s].all() and g.node_used[d].all(), "edge to an unused node"
    assert (g.order[s] < g.order[d]).all(), "edge against the order"
    assert (d >= cppn.NUM_INPUTS).all(), "edge into an input"
    assert not ((s >= cppn.NUM_INPUTS) & (s < io)).any(), "edge out of an output"
    assert len(set(zip(s.tolist(), d.tolist(), strict=True))) == len(on), (
        "duplicate edge"
    )
    assert ((g.weight[on] >= -10) & (g.weight[on] <= 10)).all()
    # Kahn's algorithm over the enabled edges: acyclic iff every node is emitted.
    indeg = np.zeros(n, int)
    np.add.at(indeg, d, 1)
    ready = [i for i in range(n) if indeg[i] == 0]
    seen = 0
    while ready:
        i = ready.pop()
        seen += 1
        for j in d[s == i]:
            indeg[j] -= 1
            if indeg[j] == 0:
                ready.append(j)
    assert seen == n, "cycle"


def reference_image(g, spec: cppn.Spec, height: int, width: int) -> np.ndarray:
    """Independent float64 evaluation: Kahn order, explicit edge list."""
    xs = np.linspace(-1, 1, width) if width > 1 else np.zeros(1)
    ys = np.linspace(-1, 1, height) if height > 1 else np.zeros(1)
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    inputs = [xx, yy, np.sqrt(xx**2 + yy**2), np.ones_like(xx)]
    if spec.coords == "pixel":  # column / row indices at the native size
        assert (height, width) == spec.native_hw
        rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
        inputs[:2] = [cols.astype(float), rows.astype(float)]
    fns = {
        "sine": np.sin,
        "sigmoid": lambda s: 2.0 / (1.0 + np.exp(-s)) - 1.0,
        "gaussian": lambda s: np.exp(-(s**2)),
        "identity": lambda s: np.clip(s, -3, 3) / 3,
    }
    on = np.flatnonzero(g.edge_on)
    n = spec.max_nodes
    val = {i: inputs[i] for i in range(cppn.NUM_INPUTS)}
    pending = [i for i in range(cppn.NUM_INPUTS, n) if g.node_used[i]]
    while pending:
        for i in pending:
            ins = [k for k in on if g.dst[k] == i]
            if all(g.src[k] in val for k in ins):
                acc = sum((g.weight[k] * val[g.src[k]] for k in ins), np.zeros_like(xx))
                val[i] = fns[spec.activations[g.activation[i]]](acc)
                pending.remove(i)
                break
        else:
            raise AssertionError("cycle")
    outs = [val[cppn.NUM_INPUTS + c] for c in range(spec.num_outputs)]
    if spec.output_map == "abs":
        chan = np.stack([np.abs(o) for o in outs], -1)
    else:
        chan = np.stack([(o + 1) / 2 for o in outs], -1)
    if spec.num_outputs == 3:
        import colorsys

        flat = chan.reshape(-1, 3)
        chan = np.array([colorsys.hsv_to_rgb(*p) for p in flat]).reshape(chan.shape)
    return chan


@pytest.mark.parametrize("name", sorted(SPECS))
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1))
def test_mutations_keep_genomes_valid_and_renders_in_range(name, seed):
    shape, spec, evolve, render = _setup(name)
    gs = evolve(jax.random.key(seed))
    for t in range(STEPS + 1):
        for p in range(POP):
            check_valid(_one(gs, t, p), spec)
    last = jax.tree_util.tree_map(lambda a: a[-1], gs)
    imgs = np.asarray(render(last))
    assert imgs.shape == (POP, *shape)
    assert np.isfinite(imgs).all() and imgs.min() >= 0 and imgs.max() <= 1
    np.testing.assert_array_equal(imgs, np.asarray(render(last)))  # deterministic
    # Topologies really change (the operators fire), and only within capacity.
    used = np.asarray(gs.node_used).sum(-1)
    assert used.max() > cppn.NUM_INPUTS + spec.num_outputs
    assert used.max() <= spec.max_nodes


@pytest.mark.parametrize("name", sorted(SPECS))
def test_render_matches_independent_numpy_evaluation(name):
    shape, spec, evolve, render = _setup(name)
    gs = evolve(jax.random.key(7))
    imgs = np.asarray(render(jax.tree_util.tree_map(lambda a: a[-1], gs)))
    n_hidden = 0
    for p in range(POP):
        g = _one(gs, -1, p)
        n_hidden += int(g.node_used.sum()) - cppn.NUM_INPUTS - spec.num_outputs
        ref = reference_image(g, spec, shape[0], shape[1])
        np.testing.assert_allclose(imgs[p], ref, atol=2e-4)
    assert n_hidden > 0  # the comparison covered hidden nodes


@pytest.mark.parametrize("name", ["hsv", "sferes_grey"])
def test_same_genome_renders_at_any_resolution(name):
    shape, spec, evolve, _ = _setup(name)
    g = jax.tree_util.tree_map(lambda a: a[-1, 0], evolve(jax.random.key(3)))
    render = jax.jit(functools.partial(cppn.render, spec=spec), static_argnums=(1, 2))
    h, w = (8, 8) if spec.coords == "centered" else spec.native_hw
    small = np.asarray(render(g, h, w))
    big = np.asarray(render(g, 2 * h - 1, 2 * w - 1))  # every other pixel is small's
    np.testing.assert_allclose(big[::2, ::2], small, atol=1e-5)
    wide = np.asarray(render(g, 3, 40))
    assert wide.shape == (3, 40, shape[-1]) and np.isfinite(wide).all()


def test_pixel_coordinates_are_the_sferes2_column_and_row_indices():
    x = np.asarray(cppn.coordinates(28, 28, "pixel", (28, 28)))
    cols, rows = np.meshgrid(np.arange(28), np.arange(28))
    np.testing.assert_array_equal(x[0], cols.ravel())
    np.testing.assert_array_equal(x[1], rows.ravel())
    centred = np.asarray(cppn.coordinates(28, 28))
    np.testing.assert_array_equal(x[2:], centred[2:])  # d from [-1, 1] coordinates
    assert centred[0].min() == -1 and centred[0].max() == 1
    # A 1024 render samples the same 0..27 range.
    big = np.asarray(cppn.coordinates(1024, 1024, "pixel", (28, 28)))
    assert big[0].min() == 0 and np.isclose(big[0].max(), 27)


def test_init_has_no_hidden_nodes_and_connects_inputs_to_outputs():
    _, spec, evolve, _ = _setup("hsv")
    g = _one(evolve(jax.random.key(0)), 0, 0)
    check_valid(g, spec)
    assert g.node_used.sum() == cppn.NUM_INPUTS + 3
    assert g.edge_on.sum() == cppn.NUM_INPUTS * 3


def test_sine_matches_numpy():
    x = np.linspace(-300, 300, 100001, dtype=np.float32)
    got = np.asarray(cppn.sine(jnp.asarray(x)))
    np.testing.assert_allclose(got, np.sin(x.astype(np.float64)), atol=2e-5)


def test_operators_do_what_they_say():
    spec = cppn.make_spec((4, 4, 1), max_nodes=8, max_edges=10)
    g = cppn.init(jax.random.key(1), spec)
    ops = {
        name: jax.jit(functools.partial(getattr(cppn, name), spec=spec))
        for name in (
            "add_node",
            "add_connection",
            "delete_connection",
            "delete_node",
            "change_connection",
        )
    }
    g1 = ops["add_node"](jax.random.key(2), g)
    assert int(g1.node_used.sum()) == int(g.node_used.sum()) + 1
    assert int(g1.edge_on.sum()) == int(g.edge_on.sum()) + 1
    g2 = ops["add_connection"](jax.random.key(3), g1)
    assert int(g2.edge_on.sum()) == int(g1.edge_on.sum()) + 1
    g3 = ops["delete_connection"](jax.random.key(4), g2)
    assert int(g3.edge_on.sum()) == int(g2.edge_on.sum()) - 1
    g4 = ops["delete_node"](jax.random.key(5), g1)
    assert int(g4.node_used.sum()) == int(g.node_used.sum())
    assert int(g4.edge_on.sum()) == int(g1.edge_on.sum()) - 2
    g5 = ops["change_connection"](jax.random.key(6), g1)
    assert int(g5.edge_on.sum()) == int(g1.edge_on.sum())
    for x in (g1, g2, g3, g4, g5):
        check_valid(jax.tree_util.tree_map(np.asarray, x), spec)
    # No room: a full edge table leaves the genome unchanged.
    full = g.replace(edge_on=jnp.ones_like(g.edge_on) & False)
    assert not bool(ops["delete_connection"](jax.random.key(7), full).edge_on.any())


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(max_nodes=4), "max_nodes=4 is too small"),
        (dict(max_edges=3), "max_edges=3 is too small"),
        (dict(activations="sine,relu"), "unknown CPPN activation 'relu'"),
        (dict(activations=""), "at least one activation"),
        (dict(p_add_conn=1.5), "p_add_conn=1.5 is not a probability"),
        (dict(p_del_node=-0.1), "p_del_node=-0.1 is not a probability"),
        (dict(weight_rate=2.0), "weight_rate=2.0 is not a probability"),
        (dict(bogus=1), "unknown CPPN option"),
        (dict(coords="polar"), "unknown CPPN coords 'polar'"),
        (dict(output_map="square"), "unknown CPPN output_map 'square'"),
    ],
)
def test_bad_options_are_one_clear_error(options, message):
    with pytest.raises(FooljaxError, match=message):
        cppn.make_encoding((28, 28, 1), **options)


def test_bad_shapes_and_render_sizes():
    with pytest.raises(FooljaxError, match="1 \\(grey\\) or 3"):
        cppn.make_encoding((8, 8, 2))
    with pytest.raises(FooljaxError, match="max_nodes=6 is too small"):
        cppn.make_encoding((8, 8, 3), max_nodes=6)
    enc, extra = cppn.make_encoding((8, 8, 1))
    g = enc.init(jax.random.key(0))
    for h, w in ((0, 8), (8, -1)):
        with pytest.raises(FooljaxError, match="render size must be positive"):
            extra["render_fn"](g, h, w)
    with pytest.raises(FooljaxError, match="unknown CPPN activation"):
        encodings.make_encoding("cppn", (8, 8, 1), options={"activations": ("tanh",)})


def _zero_tangent(a):
    if jnp.issubdtype(a.dtype, jnp.floating):
        return jnp.zeros_like(a)
    return np.zeros(a.shape, jax.dtypes.float0)


@pytest.mark.parametrize("name", ["hsv", "sferes_grey"])
def test_hand_written_backward_matches_autodiff_of_the_forward(name):
    """``_sweep``'s backward pass (written by hand for speed) gives the gradient
    autodiff gives through the plain loop, for the weights and the inputs."""
    shape, spec, evolve, _ = _setup(name)
    gs = jax.tree_util.tree_map(lambda a: a[-1], evolve(jax.random.key(11)))
    inputs = cppn.coordinates(shape[0], shape[1], spec.coords, spec.native_hw)
    n = spec.max_nodes

    def outputs(g, w, x, sweep):
        dense = jnp.zeros((n, n)).at[g.src, g.dst].add(jnp.where(g.edge_on, w, 0.0))
        perm = jnp.argsort(jnp.where(g.node_used, g.order, 0.0), stable=True)
        return sweep(dense[perm][:, perm], g.activation[perm], x, spec.activations)

    plain = lambda d, a, x, names: cppn._sweep_values(d, a, x, names)[0]  # noqa: E731
    cot = jax.random.normal(jax.random.key(1), (POP, n, inputs.shape[1]))

    def loss(sweep):
        def f(w, x):
            out = jax.vmap(lambda g, wi: outputs(g, wi, x, sweep))(gs, w)
            return jnp.sum(jnp.sin(3.0 * out) * cot)

        return jax.grad(f, argnums=(0, 1))(gs.weight, inputs)

    (gw_ref, gx_ref), (gw, gx) = loss(plain), loss(cppn._sweep)
    assert float(jnp.max(jnp.abs(gw_ref))) > 1.0  # a real gradient is compared
    np.testing.assert_allclose(
        gw, gw_ref, rtol=1e-4, atol=1e-4 * float(jnp.abs(gw_ref).max())
    )
    np.testing.assert_allclose(
        gx, gx_ref, rtol=1e-4, atol=1e-4 * float(jnp.abs(gx_ref).max())
    )
    # the encoding's decode keeps forward mode; its decode_for_gradients
    # renders the same image, bit for bit
    enc, _ = cppn.make_encoding(
        shape, **{k: v for k, v in SPECS[name].items() if k != "image_shape"}
    )
    g0 = jax.tree_util.tree_map(lambda a: a[0], gs)
    jax.jvp(enc.decode, (g0,), (jax.tree_util.tree_map(_zero_tangent, g0),))
    np.testing.assert_array_equal(enc.decode(g0), enc.decode_for_gradients(g0))
    # the forward is the plain loop's, bit for bit
    np.testing.assert_array_equal(
        jax.vmap(lambda g: outputs(g, g.weight, inputs, cppn._sweep))(gs),
        jax.vmap(lambda g: outputs(g, g.weight, inputs, plain))(gs),
    )


@pytest.mark.parametrize("name", ["hsv", "tiny_grey"])
def test_candidate_edges_fill_free_slots_with_new_valid_edges_of_weight_zero(name):
    shape, spec, evolve, render = _setup(name)
    gs = jax.tree_util.tree_map(lambda a: a[-1], evolve(jax.random.key(5)))
    out, cand = jax.vmap(cppn.candidate_edges)(
        jax.random.split(jax.random.key(6), POP), gs
    )
    np.testing.assert_array_equal(render(out), render(gs))  # weight 0: same image
    for p in range(POP):
        g, o, c = _one(gs, p), _one(out, p), np.asarray(cand[p])
        assert not np.any(c & np.asarray(g.edge_on))  # only free slots
        check_valid(o, spec)  # acyclic, used endpoints, in capacity
        pairs = set(
            zip(
                np.asarray(o.src)[np.asarray(o.edge_on)],
                np.asarray(o.dst)[np.asarray(o.edge_on)],
                strict=True,
            )
        )
        assert len(pairs) == int(np.asarray(o.edge_on).sum())  # no pair twice
        np.testing.assert_array_equal(np.asarray(o.weight)[c], 0.0)
        used = np.flatnonzero(np.asarray(g.node_used))
        order = np.asarray(g.order)
        possible = sum(order[a] < order[b] for a in used for b in used) - int(
            np.asarray(g.edge_on).sum()
        )
        assert c.sum() == min(possible, int((~np.asarray(g.edge_on)).sum()))
