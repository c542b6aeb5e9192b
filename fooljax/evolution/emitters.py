"""Emitters: how MAP-Elites makes a generation's offspring (pluggable).

An emitter is a frozen (hashable) dataclass with a static ``count`` and a pure
``emit(key, archive, ctx) -> Emitted``: ``count`` new genomes (leaves ``[count,
...]``) that MAP-Elites scores with one forward pass each, plus optionally
``extra`` genomes the emitter already scored on its way (``extra_lp [m, K]``,
offered to the archive too at no further model cost). Every shape is fixed, so
a mix of emitters runs inside the compiled generation (``lax.scan``); a mix's
counts sum to the population.

- ``Mutation(count)``: parents drawn uniformly from the occupied cells, SBX
  (if the encoding has it) and the encoding's mutation: the paper's operator,
  today's ``map_elites.ask``. ``(Mutation(population),)`` is MAP-Elites as it
  was, bit for bit.
- ``NeedyMutation(count)`` (``mutation_needy:N``): the same operator, each
  parent the elite of a cell drawn with weight ``1 - p`` (``needy_cells``).
- ``Gradient(count, steps, step_size, genes)``: from the elite of a target
  class (drawn with weight ``1 - p`` of its cell, so the cells furthest from
  certainty get most of the work), ``steps`` projected sign-gradient ascent
  steps on ``log p(target)`` with respect to the genome's continuous genes
  (``genes="direct"``: every pixel gene in [0, 255]; ``"cppn"``: the weights of
  the enabled edges in [-10, 10], through the CPPN's rendering, so the image
  stays a CPPN image). Step sizes are drawn log-uniformly in ``[step_size / 16,
  step_size] * (high - low)`` per offspring. The intermediate points
  ``x_1..x_{steps-1}`` are scored by the gradient's own forward pass and are
  offered as ``extra``; the last point is scored as an ordinary offspring.

Cost (fair accounting, ``forward_equivalents_per_generation``): an emitter
spends ``forwards`` plain model forwards and ``forward_backwards`` forward +
backward passes per generation; a forward + backward counts as the measured
ratio ``r`` of its time to a forward's on the network in use.

This module imports only the encodings' constants (no models, data or runs).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fooljax.encodings import cppn, direct
from fooljax.encodings.base import Encoding
from fooljax.errors import InputError
from fooljax.evolution import es as es_lib


class Context(NamedTuple):
    """What an emitter may use inside the compiled generation."""

    encoding: Encoding
    log_probs_fn: Callable  # (params, images [B, H, W, C]) -> [B, K] log-probs
    params: Any
    eval_batch: int  # micro-batch of every model call (static)
    generation: jax.Array  # int32 [], the generation being made


class Emitted(NamedTuple):
    offspring: Any  # leaves [count, ...], scored by MAP-Elites afterwards
    extra: Any = None  # leaves [m, ...] already scored, or None
    extra_lp: jax.Array | None = None  # [m, K]


def select_parents(key, archive, n: int):
    """``n`` indices drawn uniformly from the occupied cells."""
    occupied = archive.fitness > -jnp.inf
    logits = jnp.where(occupied, 0.0, -jnp.inf)
    return jax.random.categorical(key, logits, shape=(n,))


def needy_cells(key, archive, n: int):
    """``n`` cells drawn with weight ``1 - p`` of their elite (an empty cell: 1),
    floored at 1e-7 so no cell is ever excluded: the cells furthest from
    certainty get most of the work."""
    fit = archive.fitness
    occupied = fit > -jnp.inf
    need = jnp.log(jnp.maximum(-jnp.expm1(jnp.where(occupied, fit, -1.0)), 1e-7))
    return jax.random.categorical(key, jnp.where(occupied, need, 0.0), shape=(n,))


def mutation_offspring(
    key, archive, encoding: Encoding, n: int, generation, needy: bool = False
):
    """``n`` offspring of parents drawn uniformly from occupied cells (SBX with
    ``encoding.crossover_rate`` when the encoding has a crossover, then the
    encoding's mutation); the operator of Nguyen et al. 2015. ``needy``:
    parents drawn as ``needy_cells`` instead (an empty cell drawn: a uniform
    occupied one)."""
    k_parent, k_mate, k_cross, k_var = jax.random.split(key, 4)
    occupied = archive.fitness > -jnp.inf
    logits = jnp.where(occupied, 0.0, -jnp.inf)
    if needy:
        cells = needy_cells(k_parent, archive, n)
        uniform = jax.random.categorical(
            jax.random.fold_in(k_parent, 1), logits, shape=(n,)
        )
        parents = jnp.where(occupied[cells], cells, uniform)
    else:
        parents = jax.random.categorical(k_parent, logits, shape=(n,))
    genomes = jax.tree_util.tree_map(lambda a: a[parents], archive.genomes)
    if encoding.crossover is not None and encoding.crossover_rate > 0:
        mates = jax.random.categorical(k_mate, logits, shape=(n,))
        others = jax.tree_util.tree_map(lambda a: a[mates], archive.genomes)
        keys = jax.random.split(k_cross, n)
        crossed = jax.vmap(encoding.crossover)(keys, genomes, others)
        do = jax.random.bernoulli(k_mate, encoding.crossover_rate, (n,))
        genomes = jax.tree_util.tree_map(
            lambda c, g: jnp.where(do.reshape((-1,) + (1,) * (g.ndim - 1)), c, g),
            crossed,
            genomes,
        )
    keys = jax.random.split(k_var, n)
    return jax.vmap(encoding.mutate, in_axes=(0, 0, None))(keys, genomes, generation)


class ForwardOnly:
    """The cost of an emitter whose ``count`` offspring are each scored by one
    forward (no gradient, no extra scored points)."""

    @property
    def forwards(self) -> int:
        return self.count

    @property
    def forward_backwards(self) -> int:
        return 0

    def num_extra(self) -> int:
        return 0


@dataclasses.dataclass(frozen=True)
class Mutation(ForwardOnly):
    """The paper's variation: ``count`` mutated (and crossed) elites."""

    count: int
    needy: ClassVar[bool] = False  # parents drawn as ``needy_cells``

    def emit(self, key, archive, ctx: Context) -> Emitted:
        return Emitted(
            mutation_offspring(
                key,
                archive,
                ctx.encoding,
                self.count,
                ctx.generation,
                needy=self.needy,
            )
        )


@dataclasses.dataclass(frozen=True)
class NeedyMutation(Mutation):
    """``mutation_needy:N``: the paper's variation, but each parent is the elite
    of a cell drawn with weight ``1 - p`` (``needy_cells``), so the cells
    furthest from certainty get most of the offspring (the uniform draw spends
    most of a late generation on cells already at p ~ 1)."""

    needy: ClassVar[bool] = True


# The continuous genes a gradient may move: (get, set, mask, low, high) for
# one genome. ``mask`` marks the genes that exist (the CPPN's enabled edges).
class Genes(NamedTuple):
    get: Callable[[Any], jax.Array]
    set: Callable[[Any, jax.Array], Any]
    mask: Callable[[Any], jax.Array]
    low: float
    high: float
    # optional, for ``grow_edges``: (key, genome) -> (genome with candidate
    # genes at a neutral value, [genes] bool candidates), and (genome, keep
    # [genes] bool) -> genome without the candidates not kept
    candidates: Callable | None = None
    restrict: Callable | None = None


def _direct_set(genome, x):
    return x


def _direct_get(genome):
    return genome


def _all(genome):
    return jnp.ones(genome.shape, bool)


def _cppn_get(g):
    return g.weight


def _cppn_set(g, w):
    return g.replace(weight=w)


def _cppn_mask(g):
    return g.edge_on


def _cppn_restrict(g, keep):
    return g.replace(edge_on=g.edge_on & keep)


GENES = {
    "direct": Genes(_direct_get, _direct_set, _all, direct.LOW, direct.HIGH),
    "cppn": Genes(
        _cppn_get,
        _cppn_set,
        _cppn_mask,
        cppn.WEIGHT_LOW,
        cppn.WEIGHT_HIGH,
        cppn.candidate_edges,
        _cppn_restrict,
    ),
}


def _chunks(n: int, eval_batch: int) -> tuple[int, int]:
    """(micro-batch, padded rows) for ``n`` rows, as ``map_elites._score_local``."""
    eb = min(eval_batch, n)
    return eb, -(-n // eb) * eb


def pad_rows(tree, m: int):
    """Pads every leaf ``[n, ...]`` to ``[m, ...]`` with copies of row 0 (a real
    genome: padding decodes and scores like any other, and is dropped)."""

    def pad(a):
        n = a.shape[0]
        if m == n:
            return a
        return jnp.concatenate([a, jnp.broadcast_to(a[:1], (m - n, *a.shape[1:]))])

    return jax.tree_util.tree_map(pad, tree)


OBJECTIVES = ("log_p", "margin")
OPTIMIZERS = ("sign", "adam")
# Up to this many gradient steps are unrolled (XLA:CPU runs a backward pass
# inside a loop slower); more run as a ``lax.scan``, whose compile time does
# not grow with the steps (20 unrolled CPPN + LeNet steps: minutes).
UNROLL_STEPS = 4


def target_objective(lp: jax.Array, targets: jax.Array, objective: str = "log_p"):
    """Per-row objective ``[n]`` from log-probs ``lp [n, K]``: ``"log_p"``, log
    p(target); ``"margin"``, log p(target) - logsumexp of the other classes'
    log-probs, i.e. log(p / (1 - p)): its gradient does not fade as p -> 1
    (log p's shrinks with 1 - p), so an ascent keeps climbing past 0.9999."""
    own = jnp.take_along_axis(lp, targets[:, None], axis=1)[:, 0]
    if objective == "log_p":
        return own
    if objective != "margin":
        raise InputError(
            f"unknown gradient objective '{objective}' (known: {', '.join(OBJECTIVES)})"
        )
    is_t = jnp.arange(lp.shape[1])[None, :] == targets[:, None]
    return own - jax.nn.logsumexp(jnp.where(is_t, -jnp.inf, lp), axis=1)


def target_grad(
    ctx: Context, genes: Genes, genomes, x, targets, objective: str = "log_p"
):
    """Per-row ``grad_x objective(targets | decode(set(genomes, x)))``
    (``target_objective``: log p or the margin) and the rows' log-probs ``[n,
    K]`` (NaN -> -inf; NaN gradients -> 0), computed in micro-batches of
    ``ctx.eval_batch`` (padded as the scoring is). The micro-batches are
    unrolled, not a ``lax.map``: XLA:CPU runs a backward pass inside a loop
    4-5x slower (LeNet, batch 50: 467 vs 106 ms)."""
    n = targets.shape[0]
    eb, m = _chunks(n, ctx.eval_batch)

    decode = ctx.encoding.decode_for_gradients or ctx.encoding.decode

    def objective_fn(xb, gb, tb):
        imgs = jax.vmap(lambda g, xi: decode(genes.set(g, xi)))(gb, xb)
        lp = ctx.log_probs_fn(ctx.params, imgs)
        return jnp.sum(target_objective(lp, tb, objective)), lp

    grad_fn = jax.grad(objective_fn, has_aux=True)
    padded = pad_rows((x, genomes, targets), m)
    outs = [
        grad_fn(*jax.tree_util.tree_map(lambda a, i=i: a[i : i + eb], padded))
        for i in range(0, m, eb)
    ]
    g = jnp.concatenate([o[0] for o in outs])[:n]
    lp = jnp.concatenate([o[1] for o in outs])[:n]
    return jnp.where(jnp.isnan(g), 0.0, g), jnp.where(jnp.isnan(lp), -jnp.inf, lp)


@dataclasses.dataclass(frozen=True)
class Gradient:
    """``count`` offspring, each ``steps`` projected sign-gradient ascent steps on
    log p(target class) from the target's elite (see the module docstring)."""

    count: int
    steps: int = 3
    step_size: float = 0.02  # largest step, a fraction of the genes' range
    genes: str = "direct"  # a key of GENES
    # False: start from the target cell's own elite; True (``gradient_any``):
    # from a uniformly drawn elite (another basin than the target's elite)
    any_parent: ClassVar[bool] = False
    # True (``gradient_mut``): the parent is first mutated by the encoding's
    # operator (a CPPN: weights and topology), then ascended; so the steps
    # polish a new structure instead of the elite's own local optimum
    mutate_first: ClassVar[bool] = False
    # "sign": projected sign steps; "adam": Adam steps (moments carried over
    # the ``steps`` of one offspring, learning rate = the drawn step size)
    optimizer: str = "sign"
    objective: str = "log_p"  # a key of OBJECTIVES (``target_objective``)
    # > 0 (CPPN genes): before the steps, every free edge slot gets a random
    # new connection of weight 0 (``cppn.candidate_edges``: the image is
    # unchanged), one forward + backward scores them all, and the
    # ``grow_edges`` with the largest |gradient| are kept: a structural
    # mutation chosen by the gradient, then polished by the steps
    grow_edges: int = 0

    def __post_init__(self):
        for what, value, known in (
            ("genes", self.genes, tuple(GENES)),
            ("optimizer", self.optimizer, OPTIMIZERS),
            ("objective", self.objective, OBJECTIVES),
        ):
            if value not in known:
                raise InputError(
                    f"unknown gradient {what} '{value}' (known: {', '.join(known)})"
                )
        if int(self.grow_edges) < 0:
            raise InputError(f"gradient grow_edges must be >= 0, got {self.grow_edges}")
        if self.grow_edges and GENES[self.genes].candidates is None:
            raise InputError(
                f"gradient grow_edges needs genes with connections (cppn), not "
                f"'{self.genes}'"
            )
        if int(self.steps) < 1:
            raise InputError(f"gradient steps must be >= 1, got {self.steps}")
        if not (self.step_size > 0 and math.isfinite(self.step_size)):
            raise InputError(f"gradient step_size must be > 0, got {self.step_size}")

    @property
    def forwards(self) -> int:
        return self.count

    @property
    def forward_backwards(self) -> int:
        return self.count * (self.steps + (1 if self.grow_edges else 0))

    def num_extra(self) -> int:
        return self.count * (self.steps - 1)

    def _parents(self, key, archive, targets, state):
        """The genomes the ascents start from (before ``mutate_first``): the
        targets' elites, or (``any_parent``) uniformly drawn ones."""
        uniform = select_parents(key, archive, targets.shape[0])
        parents = (
            uniform
            if self.any_parent
            else jnp.where(archive.fitness[targets] > -jnp.inf, targets, uniform)
        )
        return jax.tree_util.tree_map(lambda a: a[parents], archive.genomes)

    def emit(self, key, archive, ctx: Context, state=None) -> Emitted:
        genes = GENES[self.genes]
        n = self.count
        k_target, k_parent, k_step = jax.random.split(key, 3)
        targets = needy_cells(k_target, archive, n)
        genomes = self._parents(k_parent, archive, targets, state)
        if self.mutate_first:
            keys = jax.random.split(jax.random.fold_in(k_step, 1), n)
            genomes = jax.vmap(ctx.encoding.mutate, in_axes=(0, 0, None))(
                keys, genomes, ctx.generation
            )
        if self.grow_edges:
            keys = jax.random.split(jax.random.fold_in(k_step, 2), n)
            genomes, cand = jax.vmap(genes.candidates)(keys, genomes)
            g, _ = target_grad(
                ctx,
                genes,
                genomes,
                jax.vmap(genes.get)(genomes),
                targets,
                self.objective,
            )
            score = jnp.where(cand, jnp.abs(g), -1.0)
            k = min(int(self.grow_edges), score.shape[1])
            kth = jax.lax.top_k(score, k)[0][:, -1:]
            keep = ~cand | ((score >= kth) & (score > 0))
            genomes = jax.vmap(genes.restrict)(genomes, keep)
        x0 = jax.vmap(genes.get)(genomes)
        mask = jax.vmap(genes.mask)(genomes)
        span = genes.high - genes.low
        u = jax.random.uniform(k_step, (n,))
        alpha = self.step_size * span * jnp.exp2(-4.0 * u)  # log-uniform, 16:1
        alpha = alpha.reshape((n,) + (1,) * (x0.ndim - 1))

        on = mask.astype(x0.dtype)

        def ascend(carry, t):
            x, mom, vel = carry
            g, lp = target_grad(ctx, genes, genomes, x, targets, self.objective)
            if self.optimizer == "adam":  # optax.adam's update, b1 .9, b2 .999
                mom = 0.9 * mom + 0.1 * g
                vel = 0.999 * vel + 0.001 * g * g
                m_hat, v_hat = mom / (1 - 0.9**t), vel / (1 - 0.999**t)
                step = m_hat / (jnp.sqrt(v_hat) + 1e-8)
            else:
                step = jnp.sign(g)
            x_next = jnp.clip(x + alpha * step * on, genes.low, genes.high)
            return (x_next, mom, vel), (x, lp)

        carry = (x0, jnp.zeros_like(x0), jnp.zeros_like(x0))
        if self.steps <= UNROLL_STEPS:  # no backward inside a loop (see above)
            xs, lps = [], []
            for t in range(1, self.steps + 1):
                carry, (xt, lp) = ascend(carry, float(t))
                xs.append(xt)
                lps.append(lp)
            xs, lps = jnp.stack(xs), jnp.stack(lps)
        else:  # many steps: one compiled step in a loop (compile time)
            ts = jnp.arange(1, self.steps + 1, dtype=jnp.float32)
            carry, (xs, lps) = jax.lax.scan(ascend, carry, ts)
        x = carry[0]
        offspring = jax.vmap(genes.set)(genomes, x)
        if self.steps == 1:
            return Emitted(offspring)
        # x_1..x_{steps-1} with the log-probs their gradient's forward gave
        xs, lps = xs[1:], lps[1:]
        k = self.steps - 1
        extra_genomes = jax.tree_util.tree_map(
            lambda a: jnp.broadcast_to(a, (k, *a.shape)).reshape(k * n, *a.shape[1:]),
            genomes,
        )
        extra = jax.vmap(genes.set)(extra_genomes, xs.reshape(k * n, *xs.shape[2:]))
        return Emitted(offspring, extra, lps.reshape(k * n, lps.shape[-1]))


@dataclasses.dataclass(frozen=True)
class GradientAny(Gradient):
    """``gradient_any:N``: ``Gradient``'s steps toward a needy target class, but
    from a uniformly drawn elite, so the ascent can leave the basin the
    target's own elite is stuck in."""

    any_parent: ClassVar[bool] = True


@dataclasses.dataclass(frozen=True)
class GradientMutated(Gradient):
    """``gradient_mut:N``: ``Gradient``'s steps toward a needy target class from
    a mutated copy of the target's elite (the encoding's mutation first: for a
    CPPN a new node or edge, then the steps tune the weights around it), the
    memetic mix of PGA-ME's variation and gradient ascent."""

    mutate_first: ClassVar[bool] = True


@dataclasses.dataclass(frozen=True)
class Tune(ForwardOnly):
    """``tune:N``: ``N`` copies of needy cells' elites (``needy_cells``; an
    empty cell drawn: a uniform elite) with only their continuous genes (direct
    pixels, or the CPPN's connection weights: no change of topology or
    activation) perturbed by polynomial mutation of index ``eta`` (larger =
    smaller steps) with per-gene probability ``rate``: the fine steps that a
    class near certainty needs, which the paper's coarse mutation (η 15, with
    structural changes) rarely makes."""

    count: int
    genes: str = "direct"  # a key of GENES
    eta: float = 60.0
    rate: float = 0.1

    def __post_init__(self):
        if self.genes not in GENES:
            raise InputError(
                f"unknown tune genes '{self.genes}' (known: {', '.join(GENES)})"
            )
        if not (self.eta >= 0 and math.isfinite(self.eta)):
            raise InputError(f"tune eta must be >= 0, got {self.eta}")
        if not 0 < self.rate <= 1:
            raise InputError(f"tune rate must be in (0, 1], got {self.rate}")

    def emit(self, key, archive, ctx: Context) -> Emitted:
        genes = GENES[self.genes]
        k_cell, k_uni, k_mut = jax.random.split(key, 3)
        cells = needy_cells(k_cell, archive, self.count)
        uniform = select_parents(k_uni, archive, self.count)
        parents = jnp.where(archive.fitness[cells] > -jnp.inf, cells, uniform)
        genomes = jax.tree_util.tree_map(lambda a: a[parents], archive.genomes)
        x = jax.vmap(genes.get)(genomes)
        mask = jax.vmap(genes.mask)(genomes)
        moved = direct.polynomial_mutation(
            k_mut, x, rate=self.rate, eta=self.eta, low=genes.low, high=genes.high
        )
        x = jnp.where(mask, moved, x)
        return Emitted(jax.vmap(genes.set)(genomes, x))


# Second descriptors of a genome for ``DepthMutation``: (genome -> int32 bin,
# genome -> number of bins). "nodes": a CPPN's used nodes; "edges": its enabled
# connections; "structure": both (nodes x edges bins); "brightness": a direct
# genome's mean gene, 16 bins.
def _nodes_bin(g):
    return jnp.sum(g.node_used).astype(jnp.int32)


def _edges_bin(g):
    return jnp.sum(g.edge_on).astype(jnp.int32)


BRIGHTNESS_BINS = 16


def _brightness_bin(g):
    u = (jnp.mean(g) - direct.LOW) / (direct.HIGH - direct.LOW)
    return jnp.clip(jnp.floor(u * BRIGHTNESS_BINS), 0, BRIGHTNESS_BINS - 1).astype(
        jnp.int32
    )


def _structure_bin(g):
    return _nodes_bin(g) * (g.edge_on.shape[-1] + 1) + _edges_bin(g)


DESCRIPTORS = {
    "nodes": (_nodes_bin, lambda g: g.node_used.shape[-1] + 1),
    "edges": (_edges_bin, lambda g: g.edge_on.shape[-1] + 1),
    "structure": (
        _structure_bin,
        lambda g: (g.node_used.shape[-1] + 1) * (g.edge_on.shape[-1] + 1),
    ),
    "brightness": (_brightness_bin, lambda g: BRIGHTNESS_BINS),
}


# the encoding each descriptor reads
DESCRIPTOR_ENCODINGS = {
    "nodes": "cppn",
    "edges": "cppn",
    "structure": "cppn",
    "brightness": "direct",
}


def _check_descriptor(name: str) -> None:
    if name not in DESCRIPTORS:
        raise InputError(
            f"unknown depth descriptor '{name}' (known: {', '.join(DESCRIPTORS)})"
        )


def depth_descriptor(name: str, encoding: str) -> str:
    """``name`` (a key of DESCRIPTORS, or "auto": "nodes" for a CPPN,
    "brightness" for the direct encoding), refused if it does not describe
    ``encoding``'s genomes."""
    if name == "auto":
        return "nodes" if encoding == "cppn" else "brightness"
    _check_descriptor(name)
    if DESCRIPTOR_ENCODINGS[name] != encoding:
        raise InputError(
            f"depth descriptor '{name}' describes {DESCRIPTOR_ENCODINGS[name]} "
            f"genomes, not {encoding} ones (use "
            f"{', '.join(k for k, v in DESCRIPTOR_ENCODINGS.items() if v == encoding)}"
            f" or auto)"
        )
    return name


class DepthState(NamedTuple):
    """``DepthMutation``'s second archive: per class ``k`` and descriptor bin
    ``d`` the best genome seen (leaves ``[K, D, ...]``) and its log p(k)
    (``fitness [K, D]``, -inf = empty)."""

    genomes: Any
    fitness: jax.Array


@dataclasses.dataclass(frozen=True)
class DepthMutation(ForwardOnly):
    """``mutation_depth:N``: archive depth. The emitter keeps a second archive,
    class x ``descriptor`` bin (for a CPPN: how many nodes it uses), of the best
    genome per cell among every offspring of the generation and the main
    archive's elites; its ``N`` offspring are the paper's mutation of a parent
    drawn uniformly from the occupied bins of a needy class's row
    (``needy_cells``). So a class keeps lineages of other structures than its
    elite's, each the best of its size, and mutation climbs them too: the main
    archive keeps one elite per class, and when that elite sits at the optimum
    of its structure, all of the needy emitters' offspring were its variants."""

    count: int
    descriptor: str = "nodes"  # a key of DESCRIPTORS

    sees_all: ClassVar[bool] = True  # ``tell`` takes the whole generation

    def __post_init__(self):
        _check_descriptor(self.descriptor)

    @property
    def state_key(self):
        """Emitters of a mix with equal keys share one state (``init_states``)."""
        return ("depth", self.descriptor)

    def init_state(self, genome, num_classes: int) -> DepthState:
        """An empty second archive for genomes shaped like ``genome``."""
        bin_of, bins = DESCRIPTORS[self.descriptor]
        try:
            d = bins(genome)
            jax.eval_shape(bin_of, genome)
        except (AttributeError, TypeError):
            raise InputError(
                f"depth descriptor '{self.descriptor}' describes "
                f"{DESCRIPTOR_ENCODINGS[self.descriptor]} genomes, not a "
                f"{type(genome).__name__}"
            ) from None
        return DepthState(
            jax.tree_util.tree_map(
                lambda a: jnp.zeros((num_classes, d, *a.shape), a.dtype), genome
            ),
            jnp.full((num_classes, d), -jnp.inf, jnp.float32),
        )

    def emit(self, key, archive, ctx: Context, state: DepthState):
        k_pick, k_mut = jax.random.split(key)
        genomes = depth_parents(k_pick, archive, state, self.count)
        keys = jax.random.split(k_mut, self.count)
        offspring = jax.vmap(ctx.encoding.mutate, in_axes=(0, 0, None))(
            keys, genomes, ctx.generation
        )
        return Emitted(offspring), state

    def tell(self, state: DepthState, offspring, lp, archive_before) -> DepthState:
        """``depth_insert``: the whole generation's offspring and the main
        archive's elites offered to the second archive."""
        return depth_insert(self.descriptor, state, offspring, lp, archive_before)


@dataclasses.dataclass(frozen=True)
class GradientDepth(Gradient):
    """``gradient_depth:N``: ``gradient_mut``'s mutate-then-ascend, but the
    parent is drawn from a needy class's row of a second class x
    ``descriptor`` archive (``DepthMutation``'s, kept by this emitter): the
    gradient polishes mutants of the class's other structures, not only of its
    elite."""

    descriptor: str = "nodes"
    mutate_first: ClassVar[bool] = True
    sees_all: ClassVar[bool] = True

    def __post_init__(self):
        super().__post_init__()
        _check_descriptor(self.descriptor)

    state_key = DepthMutation.state_key

    def init_state(self, genome, num_classes: int) -> DepthState:
        return DepthMutation(1, self.descriptor).init_state(genome, num_classes)

    def _parents(self, key, archive, targets, state):
        return depth_parents(key, archive, state, targets.shape[0], targets)

    def emit(self, key, archive, ctx: Context, state=None):
        return super().emit(key, archive, ctx, state), state

    def tell(self, state: DepthState, offspring, lp, archive_before) -> DepthState:
        return depth_insert(self.descriptor, state, offspring, lp, archive_before)


def depth_parents(key, archive, state: DepthState, n: int, cells=None):
    """``n`` genomes from a second archive: for each of ``cells`` (default:
    ``needy_cells``) a uniformly drawn occupied bin of its row; a row still
    empty gives the cell's elite (or, empty too, a uniform one)."""
    k_cell, k_bin, k_uni = jax.random.split(key, 3)
    if cells is None:
        cells = needy_cells(k_cell, archive, n)
    occ = state.fitness[cells] > -jnp.inf  # [n, D]
    bins = jax.random.categorical(k_bin, jnp.where(occ, 0.0, -jnp.inf))
    have = jnp.any(occ, axis=1)
    bins = jnp.where(have, bins, 0)
    uniform = select_parents(k_uni, archive, n)
    elite = jnp.where(archive.fitness[cells] > -jnp.inf, cells, uniform)
    return jax.tree_util.tree_map(
        lambda s, a: jnp.where(
            have.reshape((-1,) + (1,) * (a.ndim - 1)), s[cells, bins], a[elite]
        ),
        state.genomes,
        archive.genomes,
    )


def depth_insert(descriptor: str, state: DepthState, offspring, lp, archive_before):
    """Offers ``offspring`` (leaves ``[P, ...]``, ``lp [P, K]``) and the main
    archive's elites (each to its own class) to every (class, ``descriptor``
    bin) cell of ``state``; strictly better replaces."""
    k = archive_before.fitness.shape[0]
    cand = jax.tree_util.tree_map(
        lambda a, b: jnp.concatenate([a, b]), offspring, archive_before.genomes
    )
    own = jnp.where(jnp.eye(k, dtype=bool), archive_before.fitness[:, None], -jnp.inf)
    score = jnp.concatenate([jnp.where(jnp.isnan(lp), -jnp.inf, lp), own])
    desc = jax.vmap(DESCRIPTORS[descriptor][0])(cand)  # [C]
    c, d = score.shape[0], state.fitness.shape[1]
    # per (bin, class): the best score and the first candidate that has it
    best_fit = jax.ops.segment_max(score, desc, num_segments=d)  # [D, K]
    first = jnp.where(score == best_fit[desc], jnp.arange(c)[:, None], c)  # [C, K]
    best = jnp.minimum(jax.ops.segment_min(first, desc, num_segments=d), c - 1).T
    best_fit = best_fit.T  # [K, D]; an empty bin: -inf (never better)
    better = best_fit > state.fitness
    genomes = jax.tree_util.tree_map(
        lambda s, c: jnp.where(
            better.reshape(better.shape + (1,) * (s.ndim - 2)), c[best], s
        ),
        state.genomes,
        cand,
    )
    return DepthState(genomes, jnp.where(better, best_fit, state.fitness))


STRATEGIES = es_lib.STRATEGIES


@functools.lru_cache(maxsize=64)
def _strategy(name: str, batch: int, shape: tuple, genes: str):
    """One evosax strategy object per (name, batch, gene shape) and its default
    params, computed once outside any trace: the same object keeps evosax's
    own jitted ask/tell cached, and its params are constants, not ops
    re-traced (or run eagerly) each generation."""
    with jax.ensure_compile_time_eval():
        es = es_lib.strategy_class(name)(batch, jnp.zeros(shape, jnp.float32))
        params = jax.tree_util.tree_map(np.asarray, es.default_params)
    return es, params


def _strong(tree):
    """Drops weak types (evosax starts counters as Python scalars), so a state
    has the same avals before and after a generation: no recompiles."""
    return jax.tree_util.tree_map(
        lambda a: jnp.asarray(a).astype(jnp.result_type(a)), tree
    )


class CMAState(NamedTuple):
    """One CMA-ME emitter's state: ``instances`` evosax states (leaves
    ``[I, ...]``), the genome each instance adapts (its non-continuous genes,
    e.g. a CPPN's topology, stay fixed until a restart), and whether each
    instance restarts from a random elite before its next ask."""

    es: Any
    parent: Any
    restart: jax.Array  # bool [I]
    restarts: jax.Array  # int32 [I], restarts so far (for summaries)


@dataclasses.dataclass(frozen=True)
class CMAME(ForwardOnly):
    """CMA-ME improvement emitters (Fontaine et al. 2020), ``instances`` of them
    vmapped, ``count // instances`` offspring each, on the genome's continuous
    genes (``genes`` as ``Gradient``'s), driven by an evosax strategy.

    Each instance starts (and restarts) at an elite's genes (drawn uniformly,
    as Fontaine et al., or with ``restart_from="needy"`` with weight ``1 - p``
    as the gradient emitter's targets) with step
    ``sigma * (high - low)``; every generation it asks its strategy for
    offspring (clipped to the genes' bounds), and tells it their improvement
    over the archive as it was before the generation, ``max_k (log p_k(x) -
    fitness_k)`` (an empty cell counts as an infinite improvement), so offspring
    that raise some class's elite most rank first: the "improvement" ranking.
    An instance none of whose offspring improves any elite restarts. Gradient
    free: ``count`` forwards per generation."""

    count: int
    instances: int = 1
    sigma: float = 0.05  # initial step, a fraction of the genes' range
    genes: str = "direct"
    strategy: str = "sep_cma_es"  # a key of STRATEGIES
    restart_from: str = "uniform"  # "uniform" elite, or "needy" (weight 1 - p)

    def __post_init__(self):
        if self.restart_from not in ("uniform", "needy"):
            raise InputError(
                f"CMA-ME restart_from must be uniform or needy, got "
                f"'{self.restart_from}'"
            )
        if self.genes not in GENES:
            raise InputError(
                f"unknown CMA-ME genes '{self.genes}' (known: {', '.join(GENES)})"
            )
        if self.strategy not in STRATEGIES:
            raise InputError(
                f"unknown CMA-ME strategy '{self.strategy}' "
                f"(known: {', '.join(STRATEGIES)})"
            )
        if int(self.instances) < 1 or self.count % int(self.instances):
            raise InputError(
                f"CMA-ME count {self.count} must be a multiple of its instances "
                f"({self.instances})"
            )
        if self.count // self.instances < 2:
            raise InputError("CMA-ME needs >= 2 offspring per instance")
        if not (0 < self.sigma and math.isfinite(self.sigma)):
            raise InputError(f"CMA-ME sigma must be > 0, got {self.sigma}")

    @property
    def batch(self) -> int:
        return self.count // self.instances

    def _es(self, template):
        """(evosax strategy, its params) for genes shaped like ``template``."""
        return _strategy(self.strategy, self.batch, tuple(template.shape), self.genes)

    def init_state(self, genome, num_classes: int = 0) -> CMAState:
        """Fresh state for a genome shaped like ``genome`` (one, no batch axis):
        every instance restarts (from a random elite) at its first ask."""
        genes = GENES[self.genes]
        x = genes.get(genome)
        es, params = self._es(x)
        params = self._params(params)
        one = es.init(jax.random.key(0), jnp.zeros_like(x), params)
        i = self.instances
        rep = lambda a: jnp.broadcast_to(a, (i, *jnp.shape(a)))  # noqa: E731
        return CMAState(
            _strong(jax.tree_util.tree_map(rep, one)),
            jax.tree_util.tree_map(rep, genome),
            jnp.ones((i,), bool),
            jnp.zeros((i,), jnp.int32),
        )

    def _params(self, params):
        genes = GENES[self.genes]
        return params.replace(
            std_init=jnp.asarray(self.sigma * (genes.high - genes.low), jnp.float32)
        )

    def emit(self, key, archive, ctx: Context, state: CMAState):
        """(Emitted, state after the ask)."""
        genes = GENES[self.genes]
        k_pick, k_init, k_ask = jax.random.split(key, 3)
        if self.restart_from == "needy":
            cells = needy_cells(k_pick, archive, self.instances)
            picks = jnp.where(
                archive.fitness[cells] > -jnp.inf,
                cells,
                select_parents(k_pick, archive, self.instances),
            )
        else:
            picks = select_parents(k_pick, archive, self.instances)
        elites = jax.tree_util.tree_map(lambda a: a[picks], archive.genomes)
        restart = state.restart
        parent = jax.tree_util.tree_map(
            lambda e, p: jnp.where(restart.reshape((-1,) + (1,) * (e.ndim - 1)), e, p),
            elites,
            state.parent,
        )
        es, params = self._es(genes.get(jax.tree_util.tree_map(lambda a: a[0], parent)))
        params = self._params(params)
        fresh = jax.vmap(lambda k, g: es.init(k, genes.get(g), params))(
            jax.random.split(k_init, self.instances), parent
        )
        es_state = jax.tree_util.tree_map(
            lambda f, o: jnp.where(restart.reshape((-1,) + (1,) * (f.ndim - 1)), f, o),
            fresh,
            state.es,
        )
        x, es_state = jax.vmap(lambda k, s: es.ask(k, s, params))(
            jax.random.split(k_ask, self.instances), es_state
        )  # [I, B, D]
        x0 = jax.vmap(genes.get)(parent)[:, None]
        mask = jax.vmap(genes.mask)(parent)[:, None]
        x = jnp.clip(jnp.where(mask, x, x0), genes.low, genes.high)
        b = self.batch
        rows = jax.tree_util.tree_map(
            lambda a: jnp.repeat(a, b, axis=0), parent
        )  # [I * B, ...]
        offspring = jax.vmap(genes.set)(rows, x.reshape(self.count, *x.shape[2:]))
        new = CMAState(
            _strong(es_state), parent, jnp.zeros_like(restart), state.restarts
        )
        return Emitted(offspring), (new, x)

    def tell(self, asked, lp, archive_before) -> CMAState:
        """Updates each instance with its offspring's improvement ranking
        (``asked``: ``emit``'s (state, genes asked), ``lp: [count, K]`` their
        log-probs, ``archive_before``: the archive the generation started
        from)."""
        state, x = asked
        genes = GENES[self.genes]
        es, params = self._es(
            genes.get(jax.tree_util.tree_map(lambda a: a[0], state.parent))
        )
        params = self._params(params)
        fit = archive_before.fitness
        lp = jnp.where(jnp.isnan(lp), -jnp.inf, lp)
        gain = jnp.where(fit > -jnp.inf, lp - fit, jnp.where(lp > -jnp.inf, jnp.inf, 0))
        best = jnp.max(gain, axis=1).reshape(self.instances, self.batch)
        improved = jnp.any(best > 0, axis=1)
        # evosax minimises; finite stand-in for "new cell" / "impossible"
        fitness = -jnp.clip(best, -1e6, 1e6)
        es_state, _ = jax.vmap(lambda k, xs, f, s: es.tell(k, xs, f, s, params))(
            jax.random.split(jax.random.key(0), self.instances), x, fitness, state.es
        )
        # a diverged strategy (non-finite mean or step) restarts too
        ok = jnp.all(jnp.isfinite(es_state.mean), axis=1) & jnp.isfinite(es_state.std)
        restart = ~improved | ~ok
        return CMAState(
            _strong(es_state), state.parent, restart, state.restarts + restart
        )


EMITTERS = {
    "mutation": Mutation,
    "mutation_needy": NeedyMutation,
    "gradient": Gradient,
    "gradient_any": GradientAny,
    "gradient_mut": GradientMutated,
    "tune": Tune,
    "cmame": CMAME,
    "mutation_depth": DepthMutation,
    "gradient_depth": GradientDepth,
}
_NAMES = {cls: name for name, cls in EMITTERS.items()}  # as --emitters spells them


def parse(
    spec: str,
    population: int,
    cmame_options: dict | None = None,
    tune_options: dict | None = None,
    depth_options: dict | None = None,
    **gradient_options,
) -> tuple:
    """``"mutation:150,gradient:50"`` -> ``(Mutation(150), Gradient(50, ...))``;
    ``"mutation"`` alone (no count) takes the whole population. Counts must sum
    to ``population``. ``gradient_options``: ``Gradient``'s other fields;
    ``cmame_options``: ``CMAME``'s (``"cmame:100"``); ``tune_options``:
    ``Tune``'s."""
    parts = [p.strip() for p in str(spec).split(",") if p.strip()]
    if not parts:
        raise InputError("emitters is empty (e.g. mutation:150,gradient:50)")
    out = []
    for p in parts:
        name, _, count = p.partition(":")
        name = name.strip()
        if name not in EMITTERS:
            raise InputError(f"unknown emitter '{name}' (known: {', '.join(EMITTERS)})")
        if not count and len(parts) == 1:
            n = population
        else:
            try:
                n = int(count)
            except ValueError:
                raise InputError(
                    f"emitter '{p}' needs a count, e.g. {name}:50"
                ) from None
        if n < 1:
            raise InputError(f"emitter '{p}' needs a count >= 1")
        opts = {
            "gradient": gradient_options,
            "gradient_any": gradient_options,
            "gradient_mut": gradient_options,
            "tune": tune_options or {},
            "mutation_depth": depth_options or {},
            "gradient_depth": {**gradient_options, **(depth_options or {})},
            "cmame": cmame_options or {},
        }.get(name, {})
        out.append(EMITTERS[name](n, **opts))
    check(tuple(out), population)
    return tuple(out)


def check(emitters, population: int) -> None:
    """Refuses a mix whose counts do not sum to ``population``."""
    if not isinstance(emitters, tuple) or not emitters:
        raise InputError("emitters must be a non-empty tuple of emitters")
    for e in emitters:
        if not hasattr(e, "emit") or not isinstance(getattr(e, "count", None), int):
            raise InputError(f"not an emitter: {e!r}")
    total = sum(e.count for e in emitters)
    if total != population:
        raise InputError(
            f"emitter counts sum to {total}, not the population {population}"
        )


def is_default(emitters, population: int) -> bool:
    """``None`` or the paper's ``(Mutation(population),)``."""
    return emitters is None or emitters == (Mutation(population),)


def is_stateful(emitters) -> bool:
    """Whether a mix holds emitters with state across generations (``CMAME``)."""
    return emitters is not None and any(hasattr(e, "tell") for e in emitters)


def state_owners(emitters) -> tuple:
    """For each emitter, the index of the emitter whose state it uses: its
    own, or the first one of the mix with an equal ``state_key`` (so
    ``mutation_depth`` and ``gradient_depth`` over one descriptor keep one
    second archive, told once a generation)."""
    first = {}
    return tuple(
        first.setdefault(getattr(e, "state_key", ("own", i)), i)
        for i, e in enumerate(emitters)
    )


def init_states(emitters, genome, num_classes: int) -> tuple:
    """Each emitter's initial state (``None`` for a stateless one, and for one
    that uses another's: ``state_owners``) for genomes shaped like ``genome``
    (one genome, no batch axis) and an archive of ``num_classes`` cells."""
    owners = state_owners(emitters)
    return tuple(
        e.init_state(genome, num_classes)
        if hasattr(e, "tell") and owners[i] == i
        else None
        for i, e in enumerate(emitters)
    )


def emit_all(emitters, key, archive, ctx: Context, states=()):
    """Every emitter's offspring: emitter ``i`` draws from ``key`` (``i = 0``) or
    ``fold_in(key, i)``; ``states``: ``init_states``'s tuple for a stateful mix.
    Returns (offspring leaves ``[P, ...]``, extra genomes ``[M, ...]`` or None,
    extra log-probs ``[M, K]`` or None, the stateful emitters' asks: a tuple
    for ``tell_all``, ``None`` entries for stateless emitters and those
    that use another's state)."""
    outs, asked = [], []
    owners = state_owners(emitters)
    for i, e in enumerate(emitters):
        k = key if i == 0 else jax.random.fold_in(key, i)
        if hasattr(e, "tell"):
            out, a = e.emit(k, archive, ctx, states[owners[i]])
        else:
            out, a = e.emit(k, archive, ctx), None
        outs.append(out)
        asked.append(a if owners[i] == i else None)
    cat = lambda *xs: jnp.concatenate(xs)  # noqa: E731
    offspring = jax.tree_util.tree_map(cat, *[o.offspring for o in outs])
    extras = [o for o in outs if o.extra is not None]
    if not extras:
        return offspring, None, None, tuple(asked)
    extra = jax.tree_util.tree_map(cat, *[o.extra for o in extras])
    return offspring, extra, jnp.concatenate([o.extra_lp for o in extras]), tuple(asked)


def tell_all(emitters, asked, lp, archive_before, offspring=None) -> tuple:
    """The stateful emitters' new states from their offspring's log-probs
    (``lp: [P, K]``, the offspring in ``emit_all``'s order) and the archive
    the generation started from; an emitter with ``sees_all`` gets the whole
    generation (``offspring``, leaves ``[P, ...]``, and ``lp``)."""
    out, start = [], 0
    owners = state_owners(emitters)
    for i, (e, a) in enumerate(zip(emitters, asked, strict=True)):
        if owners[i] != i:  # told through the state's owner
            out.append(None)
        elif getattr(e, "sees_all", False):
            out.append(e.tell(a, offspring, lp, archive_before))
        elif hasattr(e, "tell"):
            out.append(e.tell(a, lp[start : start + e.count], archive_before))
        else:
            out.append(None)
        start += e.count
    return tuple(out)


def forward_equivalents_per_generation(emitters, population: int, ratio: float):
    """Model forward-equivalents one generation costs: every offspring's forward
    plus ``ratio`` per forward + backward pass (``emitters`` None: the
    population's forwards)."""
    if emitters is None:
        return float(population)
    return float(
        sum(e.forwards for e in emitters)
        + ratio * sum(e.forward_backwards for e in emitters)
    )


def uses_gradients(emitters) -> bool:
    return emitters is not None and any(e.forward_backwards for e in emitters)


def describe(emitters) -> list[dict]:
    """The mix as JSON-able dicts (for summaries)."""
    return [{"emitter": _NAMES[type(e)], **dataclasses.asdict(e)} for e in emitters]
