"""CPPN indirect encoding of Nguyen et al. (CVPR 2015, Sec. 2.3), fixed capacity.

A compositional pattern-producing network (Stanley 2007) maps each pixel's
inputs (x, y, distance d from the centre, bias 1) to one grey value or three HSV
values. Its topology and weights evolve as in NEAT, without crossover, as in the
paper's Sferes2 code. Activations (Sferes2/nn2 ``AfCppn``, every value in
[-1, 1]): sine ``sin(s)``, bipolar sigmoid ``2 / (1 + e^-s) - 1 = tanh(s / 2)``,
Gaussian ``exp(-s^2)`` and identity, clamped like nn2's "linear"
``clip(s, -3, 3) / 3``, so no value can overflow whatever the topology. An output
``o`` in [-1, 1] becomes the channel value ``(o + 1) / 2`` in [0, 1].

Unlike NEAT's unbounded genome, a genome here has a fixed node capacity ``N``
and edge capacity ``E`` with masks, so a population is one array pytree and
everything runs under ``jit``/``vmap``. Node slots ``0..3`` are the inputs,
``4..4+O-1`` the outputs, the rest hidden. Every node has an ``order`` key:
inputs 0, outputs 1, a hidden node strictly between the endpoints of the edge it
split. Only edges from lower to higher order exist, so every genome is acyclic by
construction and sorting the slots by ``order`` is a topological order.

Mutation (one call per individual; each operator fires with its probability,
as Sferes2's ``gen::Dnn::mutate``): every enabled weight gets bounded
polynomial mutation in [-10, 10] (per-weight rate 0.1, eta 15); each non-input
node's activation is redrawn with probability ``activation_rate``; then
"change connection" (rewire one endpoint of a random edge), add connection,
delete connection, add node (split an edge, NEAT style: in-weight 1, out-weight
the old weight) and delete node (with its edges). An operator that finds no
room (capacity full, no candidate) leaves the genome unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from fooljax.checks import check_finite, check_int
from fooljax.encodings.base import Encoding
from fooljax.encodings.direct import hsv_to_rgb, polynomial_mutation
from fooljax.errors import FooljaxError, InputError

NUM_INPUTS = 4  # x, y, d, bias
WEIGHT_LOW, WEIGHT_HIGH = -10.0, 10.0

_TWO_PI_HI = float(np.float32(2 * np.pi))
_TWO_PI_LO = float(np.float32(2 * np.pi - _TWO_PI_HI))


def sine(s: jax.Array) -> jax.Array:
    """``sin(s)``, |error| < 3e-7 for |s| <= 10 and < 5e-5 for |s| <= 1000; several
    times faster than XLA:CPU's ``sin``, which dominated rendering: reduce to
    [-pi, pi] (two-constant Cody-Waite), fold to [-pi/2, pi/2], odd Taylor
    polynomial to degree 11 (truncation error < 6e-8 there)."""
    k = jnp.round(s * (0.5 / jnp.pi))
    r = (s - k * _TWO_PI_HI) - k * _TWO_PI_LO
    r = jnp.where(r > 0.5 * jnp.pi, jnp.pi - r, r)
    r = jnp.where(r < -0.5 * jnp.pi, -jnp.pi - r, r)
    r2 = r * r
    c = (-1 / 39916800, 1 / 362880, -1 / 5040, 1 / 120, -1 / 6, 1.0)
    p = jnp.float32(c[0])
    for ci in c[1:]:
        p = p * r2 + ci
    return jnp.clip(p * r, -1.0, 1.0)


ACTIVATIONS = {
    "sine": sine,
    "sigmoid": lambda s: jnp.tanh(0.5 * s),
    "gaussian": lambda s: jnp.exp(-(s * s)),
    "identity": lambda s: jnp.clip(s, -3.0, 3.0) * (1.0 / 3.0),
}
# d activation / d s from the sum ``s`` and the output ``y`` (cheap, elementwise;
# autodiff through ``_activate``'s chain of selects was most of the backward)
ACTIVATION_GRADS = {
    "sine": lambda s, y: sine(s + 0.5 * jnp.pi),
    "sigmoid": lambda s, y: 0.5 * (1.0 - y * y),
    "gaussian": lambda s, y: -2.0 * s * y,
    "identity": lambda s, y: jnp.where(jnp.abs(s) < 3.0, 1.0 / 3.0, 0.0),
}
ACTIVATION_ALIASES = {"sin": "sine", "linear": "identity", "gauss": "gaussian"}


@struct.dataclass
class Genome:
    """One CPPN; a population stacks every leaf along a leading axis."""

    activation: jax.Array  # [N] int32 index into the activation tuple
    node_used: jax.Array  # [N] bool; inputs and outputs always True
    order: jax.Array  # [N] float32: inputs 0, outputs 1, hidden in (0, 1)
    src: jax.Array  # [E] int32 source node slot
    dst: jax.Array  # [E] int32 target node slot
    weight: jax.Array  # [E] float32 in [-10, 10]
    edge_on: jax.Array  # [E] bool: the edge exists


class Spec(struct.PyTreeNode):
    """Static settings of a CPPN encoding (hashable; closed over, never traced)."""

    num_outputs: int = struct.field(pytree_node=False, default=1)
    max_nodes: int = struct.field(pytree_node=False, default=16)
    max_edges: int = struct.field(pytree_node=False, default=48)
    activations: tuple = struct.field(
        pytree_node=False, default=("sine", "sigmoid", "gaussian", "identity")
    )
    p_add_conn: float = struct.field(pytree_node=False, default=0.5)
    p_del_conn: float = struct.field(pytree_node=False, default=0.3)
    p_change_conn: float = struct.field(pytree_node=False, default=0.5)
    p_add_node: float = struct.field(pytree_node=False, default=0.5)
    p_del_node: float = struct.field(pytree_node=False, default=0.2)
    weight_rate: float = struct.field(pytree_node=False, default=0.1)
    weight_eta: float = struct.field(pytree_node=False, default=15.0)
    activation_rate: float = struct.field(pytree_node=False, default=0.1)
    # How pixels become inputs and outputs become pixels (see ``render``).
    coords: str = struct.field(pytree_node=False, default="centered")
    output_map: str = struct.field(pytree_node=False, default="affine")
    native_hw: tuple = struct.field(pytree_node=False, default=(28, 28))


COORDS = ("centered", "pixel")
OUTPUT_MAPS = ("affine", "abs")


def _kinds(spec: Spec):
    idx = jnp.arange(spec.max_nodes)
    is_input = idx < NUM_INPUTS
    is_output = (idx >= NUM_INPUTS) & (idx < NUM_INPUTS + spec.num_outputs)
    return is_input, is_output, ~(is_input | is_output)


def _pick(key: jax.Array, mask: jax.Array):
    """A uniform random index where ``mask`` is True, and whether there is one."""
    score = jnp.where(mask, jax.random.uniform(key, mask.shape), -1.0)
    return jnp.argmax(score), jnp.any(mask)


def _select(ok, new: Genome, old: Genome) -> Genome:
    return jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, old)


def init(key: jax.Array, spec: Spec) -> Genome:
    """No hidden nodes; every input connected to every output, weights uniform in
    [-10, 10], output activations uniform (NEAT's minimal start)."""
    k_act, k_w = jax.random.split(key)
    n, e, o = spec.max_nodes, spec.max_edges, spec.num_outputs
    is_input, is_output, _ = _kinds(spec)
    slot = jnp.arange(e)
    initial = slot < NUM_INPUTS * o
    return Genome(
        activation=jnp.where(
            is_input, 0, jax.random.randint(k_act, (n,), 0, len(spec.activations))
        ).astype(jnp.int32),
        node_used=is_input | is_output,
        order=jnp.where(is_output, 1.0, 0.0).astype(jnp.float32),
        src=jnp.where(initial, slot % NUM_INPUTS, 0).astype(jnp.int32),
        dst=jnp.where(initial, NUM_INPUTS + slot // NUM_INPUTS, 0).astype(jnp.int32),
        weight=jnp.where(
            initial,
            jax.random.uniform(k_w, (e,), jnp.float32, WEIGHT_LOW, WEIGHT_HIGH),
            0.0,
        ),
        edge_on=initial,
    )


def _linked_from(g: Genome, s) -> jax.Array:
    """``[N]`` bool: an enabled edge ``s -> j`` exists."""
    hit = g.edge_on & (g.src == s)
    return jnp.zeros(g.node_used.shape, bool).at[g.dst].max(hit)


def _linked_to(g: Genome, d) -> jax.Array:
    """``[N]`` bool: an enabled edge ``j -> d`` exists."""
    hit = g.edge_on & (g.dst == d)
    return jnp.zeros(g.node_used.shape, bool).at[g.src].max(hit)


def _new_pairs(g: Genome) -> jax.Array:
    """``[N * N]`` bool, row-major ``(s, d)``: the connections that may be
    added (used nodes, ``order[s] < order[d]``, not linked yet)."""
    n = g.node_used.shape[0]
    linked = jnp.zeros((n, n), bool).at[g.src, g.dst].max(g.edge_on)
    allowed = (
        g.node_used[:, None]
        & g.node_used[None, :]
        & (g.order[:, None] < g.order[None, :])
        & ~linked
    )
    return allowed.reshape(-1)


def add_connection(key: jax.Array, g: Genome, spec: Spec) -> Genome:
    """A new edge, uniform over all pairs ``s -> d`` of used nodes with
    ``order[s] < order[d]`` that are not connected yet; weight uniform."""
    k_pair, k_slot, k_w = jax.random.split(key, 3)
    n = spec.max_nodes
    pair, ok_pair = _pick(k_pair, _new_pairs(g))
    s, d = pair // n, pair % n
    slot, ok_slot = _pick(k_slot, ~g.edge_on)
    w = jax.random.uniform(k_w, (), jnp.float32, WEIGHT_LOW, WEIGHT_HIGH)
    new = g.replace(
        src=g.src.at[slot].set(s.astype(jnp.int32)),
        dst=g.dst.at[slot].set(d.astype(jnp.int32)),
        weight=g.weight.at[slot].set(w),
        edge_on=g.edge_on.at[slot].set(True),
    )
    return _select(ok_pair & ok_slot, new, g)


def delete_connection(key: jax.Array, g: Genome, spec: Spec) -> Genome:
    del spec
    e, ok = _pick(key, g.edge_on)
    return g.replace(edge_on=g.edge_on.at[e].set(g.edge_on[e] & ~ok))


def change_connection(key: jax.Array, g: Genome, spec: Spec) -> Genome:
    """Moves the source or the target of a random edge (weight kept), as
    Sferes2's ``_change_conn``; the new endpoint keeps the edge order-increasing
    and does not duplicate an existing edge."""
    k_e, k_side, k_n = jax.random.split(key, 3)
    _, is_output, _ = _kinds(spec)
    e, ok_e = _pick(k_e, g.edge_on)
    s, d = g.src[e], g.dst[e]
    move_src = jax.random.bernoulli(k_side)
    src_ok = g.node_used & ~is_output & (g.order < g.order[d]) & ~_linked_to(g, d)
    dst_ok = g.node_used & (g.order > g.order[s]) & ~_linked_from(g, s)
    n, ok_n = _pick(k_n, jnp.where(move_src, src_ok, dst_ok))
    new = g.replace(
        src=g.src.at[e].set(jnp.where(move_src, n, s)),
        dst=g.dst.at[e].set(jnp.where(move_src, d, n)),
    )
    return _select(ok_e & ok_n, new, g)


def add_node(key: jax.Array, g: Genome, spec: Spec) -> Genome:
    """Splits a random edge ``s -> d`` into ``s -> new -> d`` (weights 1 and the
    old weight); ``new`` gets the order midway between ``s`` and ``d``."""
    k_e, k_n, k_slot, k_act = jax.random.split(key, 4)
    _, _, is_hidden = _kinds(spec)
    e, ok_e = _pick(k_e, g.edge_on)
    n, ok_n = _pick(k_n, is_hidden & ~g.node_used)
    slot, ok_slot = _pick(k_slot, ~g.edge_on)
    s, d = g.src[e], g.dst[e]
    mid = 0.5 * (g.order[s] + g.order[d])
    # float32 midpoints run out after ~24 nested splits of one edge: then skip.
    ok_mid = (mid > g.order[s]) & (mid < g.order[d])
    act = jax.random.randint(k_act, (), 0, len(spec.activations), jnp.int32)
    new = g.replace(
        activation=g.activation.at[n].set(act),
        node_used=g.node_used.at[n].set(True),
        order=g.order.at[n].set(mid),
        dst=g.dst.at[e].set(n).at[slot].set(d),
        src=g.src.at[slot].set(n),
        weight=g.weight.at[e].set(1.0).at[slot].set(g.weight[e]),
        edge_on=g.edge_on.at[slot].set(True),
    )
    return _select(ok_e & ok_n & ok_slot & ok_mid, new, g)


def delete_node(key: jax.Array, g: Genome, spec: Spec) -> Genome:
    """Removes a random hidden node and every edge touching it."""
    _, _, is_hidden = _kinds(spec)
    n, ok = _pick(key, is_hidden & g.node_used)
    new = g.replace(
        node_used=g.node_used.at[n].set(False),
        order=g.order.at[n].set(0.0),
        edge_on=g.edge_on & (g.src != n) & (g.dst != n),
    )
    return _select(ok, new, g)


def candidate_edges(key: jax.Array, g: Genome) -> tuple[Genome, jax.Array]:
    """Fills every free edge slot with a distinct random new edge ``s -> d``
    (used nodes, ``order[s] < order[d]``, not yet linked) of weight 0, so the
    image is unchanged and a gradient with respect to the weights scores every
    candidate connection at once. Returns the genome and ``[E]`` bool: which
    slots are candidates."""
    n = g.node_used.shape[0]
    allowed = _new_pairs(g)
    score = jnp.where(allowed, jax.random.uniform(key, allowed.shape), -1.0)
    ranked = jnp.argsort(-score)  # the allowed pairs first, in random order
    free = ~g.edge_on
    k = jnp.clip(jnp.cumsum(free) - 1, 0, n * n - 1)  # k-th free slot
    pair = ranked[k]
    cand = free & (score[pair] >= 0.0)
    return (
        g.replace(
            src=jnp.where(cand, pair // n, g.src).astype(jnp.int32),
            dst=jnp.where(cand, pair % n, g.dst).astype(jnp.int32),
            weight=jnp.where(cand, 0.0, g.weight),
            edge_on=g.edge_on | cand,
        ),
        cand,
    )


def mutate(key: jax.Array, g: Genome, spec: Spec) -> Genome:
    """One NEAT-style mutation of one genome (see the module docstring)."""
    keys = jax.random.split(key, 9)
    is_input, _, _ = _kinds(spec)
    w = polynomial_mutation(
        keys[0],
        g.weight,
        rate=spec.weight_rate,
        eta=spec.weight_eta,
        low=WEIGHT_LOW,
        high=WEIGHT_HIGH,
    )
    redraw = (
        jax.random.uniform(keys[1], g.activation.shape) < spec.activation_rate
    ) & ~is_input
    fresh = jax.random.randint(
        keys[2], g.activation.shape, 0, len(spec.activations), jnp.int32
    )
    g = g.replace(
        weight=jnp.where(g.edge_on, w, g.weight),
        activation=jnp.where(redraw, fresh, g.activation),
    )
    ops = (
        (spec.p_change_conn, change_connection),
        (spec.p_add_conn, add_connection),
        (spec.p_del_conn, delete_connection),
        (spec.p_add_node, add_node),
        (spec.p_del_node, delete_node),
    )
    fire = jax.random.uniform(keys[3], (len(ops),))
    for i, (p, op) in enumerate(ops):
        if p > 0:
            g = _select(fire[i] < p, op(keys[4 + i], g, spec), g)
    return g


def coordinates(
    height: int, width: int, coords: str = "centered", native_hw=None
) -> jax.Array:
    """``[4, H*W]``: x, y, d, bias for every pixel, row-major.

    ``coords="centered"``: x, y in [-1, 1] (pixel centres span the range), d =
    sqrt(x² + y²). ``coords="pixel"``, as the paper's Sferes2 code
    (``phen_grayscale_image.hpp``): x and y are the column and row *indices* of
    the native ``native_hw`` image (0 … W0-1, 0 … H0-1; another resolution
    samples the same range), d is still computed from the [-1, 1] coordinates.
    """

    def span(n, lo, hi):
        return jnp.linspace(lo, hi, n) if n > 1 else jnp.full((1,), (lo + hi) / 2)

    yy, xx = jnp.meshgrid(
        span(height, -1.0, 1.0), span(width, -1.0, 1.0), indexing="ij"
    )
    xx, yy = xx.reshape(-1), yy.reshape(-1)
    d = jnp.sqrt(xx * xx + yy * yy)
    if coords == "pixel":
        h0, w0 = native_hw if native_hw is not None else (height, width)
        yy, xx = jnp.meshgrid(
            span(height, 0.0, h0 - 1.0), span(width, 0.0, w0 - 1.0), indexing="ij"
        )
        xx, yy = xx.reshape(-1), yy.reshape(-1)
    elif coords != "centered":
        raise FooljaxError(
            f"unknown CPPN coords '{coords}' (known: {', '.join(COORDS)})"
        )
    return jnp.stack([xx, yy, d, jnp.ones_like(xx)]).astype(jnp.float32)


def _activate(ids: jax.Array, s: jax.Array, names: tuple) -> jax.Array:
    out = ACTIVATIONS[names[0]](s)
    for i, name in enumerate(names[1:], start=1):
        out = jnp.where(ids == i, ACTIVATIONS[name](s), out)
    return out


def network_outputs(
    g: Genome, inputs: jax.Array, spec: Spec, fast_backward: bool = False
) -> jax.Array:
    """``inputs [4, P]`` -> outputs ``[O, P]`` in [-1, 1].

    Slots sorted by ``order`` (unused ones tie with the inputs and sit after
    them, by a stable argsort) form a topological order: inputs first, outputs
    last. The weights become a dense ``[N, N]`` matrix in that order, and node
    ``i`` sums only over the ``i`` nodes before it (a static slice: the loop
    over node slots is unrolled at trace time, nothing is looped at run time).
    ``fast_backward``: the same forward, bit for bit, with ``_sweep``'s
    hand-written backward pass (reverse mode only: no ``jax.jvp``).
    """
    n, o = spec.max_nodes, spec.num_outputs
    dense = (
        jnp.zeros((n, n), jnp.float32)
        .at[g.src, g.dst]
        .add(jnp.where(g.edge_on, g.weight, 0.0))
    )
    perm = jnp.argsort(jnp.where(g.node_used, g.order, 0.0), stable=True)
    args = (dense[perm][:, perm], g.activation[perm], inputs, spec.activations)
    values = _sweep(*args) if fast_backward else _sweep_values(*args)[0]
    return values[n - o :]


def _sweep_values(dense, act, inputs, names):
    """Every node's output ``[N, P]`` in topological order (inputs first) and
    the hidden/output nodes' sums ``[N - 4, P]``: node ``i`` sums only over
    the ``i`` nodes before it (a static slice: the loop is unrolled at trace
    time, nothing is looped at run time)."""
    values, sums = inputs, []
    for i in range(NUM_INPUTS, dense.shape[0]):
        s = dense[:i, i] @ values
        sums.append(s)
        values = jnp.concatenate([values, _activate(act[i], s, names)[None]])
    return values, jnp.stack(sums)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _sweep(dense, act, inputs, names):
    """``_sweep_values``'s outputs, with a hand-written backward pass (the same
    gradient up to float rounding): autodiff of the unrolled matrix-vector
    loop and of ``_activate``'s selects took 74-80 ms for 50 MNIST-sized
    CPPNs on XLA:CPU, 25-35x the forward; the reverse sweep below, in
    elementwise rows with each activation's slope from its output
    (``ACTIVATION_GRADS``), about 14 ms. The forward is unchanged, bit for
    bit."""
    return _sweep_values(dense, act, inputs, names)[0]


def _sweep_fwd(dense, act, inputs, names):
    values, sums = _sweep_values(dense, act, inputs, names)
    return values, (dense, act, values, sums)


def _sweep_bwd(names, res, g_values):
    dense, act, values, sums = res
    n = dense.shape[0]
    g = [g_values[j] for j in range(n)]  # d loss / d node j's output
    g_sums = []
    for i in range(n - 1, NUM_INPUTS - 1, -1):
        s, y = sums[i - NUM_INPUTS], values[i]
        slope = ACTIVATION_GRADS[names[0]](s, y)
        for k, name in enumerate(names[1:], start=1):
            slope = jnp.where(act[i] == k, ACTIVATION_GRADS[name](s, y), slope)
        gs = g[i] * slope
        g_sums.append(gs)
        for j in range(i):
            g[j] = g[j] + dense[j, i] * gs
    g_sums = jnp.stack(g_sums[::-1])  # [N - 4, P]
    # d dense[j, i] = <output_j, d sum_i> for j < i (the entries the loop reads)
    d_cols = values @ g_sums.T  # [N, N - 4]
    d_dense = jnp.concatenate([jnp.zeros((n, NUM_INPUTS), d_cols.dtype), d_cols], 1)
    upper = jnp.arange(n)[:, None] < jnp.arange(n)[None, :]
    return jnp.where(upper, d_dense, 0.0), None, jnp.stack(g[:NUM_INPUTS])


_sweep.defvjp(_sweep_fwd, _sweep_bwd)


def render(
    g: Genome, height: int, width: int, spec: Spec, fast_backward: bool = False
) -> jax.Array:
    """One genome -> image ``[height, width, C]`` float32 in [0, 1] (C = 1 grey,
    or 3: the outputs are H, S, V, converted to RGB). Any resolution.

    An output ``o`` in [-1, 1] becomes ``(o + 1) / 2`` (``output_map="affine"``)
    or ``|o|`` (``"abs"``, the Sferes2 code's ``convert_to_color_scale``).
    ``fast_backward``: see ``network_outputs``."""
    if height <= 0 or width <= 0:
        raise FooljaxError(f"render size must be positive, got {height}x{width}")
    inputs = coordinates(height, width, spec.coords, spec.native_hw)
    out = network_outputs(g, inputs, spec, fast_backward)
    if spec.output_map == "abs":
        out = jnp.abs(out)
    else:
        out = (out + 1.0) * 0.5
    chan = jnp.clip(out, 0.0, 1.0).T.reshape(height, width, -1)
    if spec.num_outputs == 3:
        return jnp.clip(hsv_to_rgb(chan), 0.0, 1.0)
    return chan


def _names(activations) -> tuple:
    if isinstance(activations, str):
        activations = [a for a in activations.split(",") if a.strip()]
    names = []
    for a in activations:
        a = ACTIVATION_ALIASES.get(a.strip().lower(), a.strip().lower())
        if a not in ACTIVATIONS:
            raise FooljaxError(
                f"unknown CPPN activation '{a}' (known: {', '.join(ACTIVATIONS)})"
            )
        if a not in names:
            names.append(a)
    if not names:
        raise FooljaxError("the CPPN needs at least one activation function")
    return tuple(names)


def _check_image_shape(image_shape) -> None:
    shape = tuple(image_shape) if isinstance(image_shape, (tuple, list)) else None
    if (
        shape is None
        or len(shape) != 3
        or any(
            isinstance(d, bool) or not isinstance(d, (int, np.integer)) for d in shape
        )
        or min(shape) <= 0
    ):
        raise InputError(f"image shape must be H,W,C > 0 integers, got {image_shape!r}")


def make_spec(
    image_shape: Sequence[int],
    *,
    max_nodes: int = 16,
    max_edges: int = 48,
    activations: str | Sequence[str] = ("sine", "sigmoid", "gaussian", "identity"),
    p_add_conn: float = 0.5,
    p_del_conn: float = 0.3,
    p_change_conn: float = 0.5,
    p_add_node: float = 0.5,
    p_del_node: float = 0.2,
    weight_rate: float = 0.1,
    weight_eta: float = 15.0,
    activation_rate: float = 0.1,
    coords: str = "centered",
    output_map: str = "affine",
) -> Spec:
    """Validated static settings; every bad value is one ``FooljaxError``."""
    _check_image_shape(image_shape)
    c = int(image_shape[-1])
    if c not in (1, 3):
        raise FooljaxError(f"the CPPN draws 1 (grey) or 3 (HSV) channels, not {c}")
    max_nodes = check_int("cppn max_nodes", max_nodes)
    max_edges = check_int("cppn max_edges", max_edges)
    if max_nodes < NUM_INPUTS + c:
        raise FooljaxError(
            f"cppn max_nodes={max_nodes} is too small: {NUM_INPUTS} inputs and {c} "
            f"output(s) need at least {NUM_INPUTS + c}"
        )
    if max_nodes > 256:
        raise FooljaxError(f"cppn max_nodes={max_nodes} > 256 (compile time)")
    if max_edges < NUM_INPUTS * c:
        raise FooljaxError(
            f"cppn max_edges={max_edges} is too small: connecting {NUM_INPUTS} "
            f"inputs to {c} output(s) needs at least {NUM_INPUTS * c}"
        )
    probs = dict(
        p_add_conn=p_add_conn,
        p_del_conn=p_del_conn,
        p_change_conn=p_change_conn,
        p_add_node=p_add_node,
        p_del_node=p_del_node,
        weight_rate=weight_rate,
        activation_rate=activation_rate,
    )
    for name, p in probs.items():
        if not 0.0 <= float(p) <= 1.0:  # NaN fails this too
            raise InputError(f"cppn {name}={p} is not a probability in [0, 1]")
    check_finite("cppn weight_eta", weight_eta, 0.0)
    if coords not in COORDS:
        raise FooljaxError(
            f"unknown CPPN coords '{coords}' (known: {', '.join(COORDS)})"
        )
    if output_map not in OUTPUT_MAPS:
        raise FooljaxError(
            f"unknown CPPN output_map '{output_map}' (known: {', '.join(OUTPUT_MAPS)})"
        )
    return Spec(
        coords=str(coords),
        output_map=str(output_map),
        native_hw=(int(image_shape[0]), int(image_shape[1])),
        num_outputs=c,
        max_nodes=max_nodes,
        max_edges=max_edges,
        activations=_names(activations),
        weight_eta=float(weight_eta),
        **{k: float(v) for k, v in probs.items()},
    )


OPTIONS = tuple(
    k for k in make_spec.__kwdefaults__ if k != "image_shape"
)  # the option names make_encoding accepts


def make_encoding(image_shape: Sequence[int], **options):
    """``(Encoding, extra)`` for images of ``image_shape`` (H, W, C).

    ``options``: see ``make_spec``. ``extra``: ``spec`` and ``render_fn(genome,
    height, width)`` for any resolution.
    """
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise FooljaxError(
            f"unknown CPPN option(s) {', '.join(unknown)} (known: {', '.join(OPTIONS)})"
        )
    spec = make_spec(image_shape, **options)
    h, w = int(image_shape[0]), int(image_shape[1])
    enc = Encoding(
        init=functools.partial(init, spec=spec),
        mutate=lambda key, g, generation: mutate(key, g, spec),
        decode=lambda g: render(g, h, w, spec),
        decode_for_gradients=lambda g: render(g, h, w, spec, fast_backward=True),
    )
    return enc, {
        "spec": spec,
        "render_fn": lambda g, height, width: render(g, height, width, spec),
    }
