"""MAP-Elites over classes (Mouret & Clune 2015), as used by Nguyen et al. 2015.

The archive has one cell per class. A cell holds the genome with the highest
probability for that class found so far. Each generation: parents are drawn
uniformly from the occupied cells, varied into ``population`` offspring, every
offspring is scored once, and **every offspring is offered to every cell**: it
replaces the elite of class c if its probability for c is higher. One image may
hold several cells. Everything has a fixed shape, so ``run_chunk`` runs many
generations as one ``lax.scan`` inside one ``jit``.

Fitness is the class log-probability (monotone in the probability, so the same
replacements as the paper, but it still separates 0.99999 from 0.999999 where
float32 probabilities saturate at 1). Empty cells hold ``-inf``; a NaN score is
mapped to ``-inf`` so it never enters the archive. Keys: generation ``g`` uses
``fold_in(state.key, g)``; the initial random batch is generation 0.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.sharding import NamedSharding, PartitionSpec

from fooljax.checks import (
    PROB_SUM_TOL,
    check_int,
    check_memory,
    check_not_consumed,
    is_concrete,
)
from fooljax.encodings.base import Encoding
from fooljax.errors import InputError

THRESHOLDS = (0.99, 0.9999)


@struct.dataclass
class Archive:
    genomes: Any  # pytree, leaves [K, ...]
    fitness: jax.Array  # [K] float32 log p(class k | elite k); -inf = empty
    found_at: jax.Array  # [K] int32 generation the elite was found; -1 = empty


@struct.dataclass
class MapElitesState:
    archive: Archive
    key: jax.Array  # base key; generation g uses fold_in(key, g)
    generation: jax.Array  # int32 []: last completed generation (0 = random init)
    first_all: jax.Array  # [len(THRESHOLDS)] int32: first generation with all
    #   cells >= threshold, -1 = not yet


@dataclasses.dataclass(frozen=True)
class LogSoftmax:
    """``log_softmax(logits_fn(params, images))`` (float32); hashable."""

    logits_fn: Callable

    def __call__(self, params, images):
        return jax.nn.log_softmax(self.logits_fn(params, images).astype(jnp.float32))


@dataclasses.dataclass(frozen=True)
class LogOfProbs:
    """``log(probs_fn(params, images))`` (float32); hashable. Logits passed as
    probabilities give NaN (negative values) or rows that do not sum to 1, and
    ``make_init``'s ``init`` refuses them."""

    probs_fn: Callable

    def __call__(self, params, images):
        return jnp.log(self.probs_fn(params, images).astype(jnp.float32))


def log_probs_from(
    logits_fn: Callable | None = None, probs_fn: Callable | None = None
) -> Callable:
    """``log_probs(params, images [B,H,W,C]) -> [B, K]`` from a logits or probs fn."""
    if (logits_fn is None) == (probs_fn is None):
        raise InputError("pass exactly one of logits_fn or probs_fn to log_probs_from")
    for name, fn in (("logits_fn", logits_fn), ("probs_fn", probs_fn)):
        if fn is not None and not callable(fn):
            raise InputError(f"{name} must be callable, got {type(fn).__name__}")
    if logits_fn is not None:
        return LogSoftmax(logits_fn)
    return LogOfProbs(probs_fn)


class Layout(NamedTuple):
    """How a population is spread: ``mesh`` (None = one device) and the fixed
    micro-batch size every model call sees."""

    mesh: Any = None
    eval_batch: int = 50

    def constrain(self, tree):
        if self.mesh is None:
            return tree
        spec = NamedSharding(self.mesh, PartitionSpec(self.mesh.axis_names[0]))
        return jax.tree_util.tree_map(
            lambda x: jax.lax.with_sharding_constraint(x, spec), tree
        )


SINGLE_DEVICE = Layout()


def make_layout(population: int, mesh=None, eval_batch: int = 50) -> Layout:
    """Checks that ``population`` splits over the mesh; picks the micro-batch.

    The model sees micro-batches of ``ceil(local / ceil(local / eval_batch))``
    images (``local``: the per-device population): exactly ``eval_batch``
    whenever it divides ``local`` (so those runs are unchanged, bit for bit),
    otherwise the smallest size that needs no more model calls than
    ``eval_batch`` would; the last micro-batch is padded (``_score_local``).
    For populations with a divisor of that size (120 and 50 -> 40) this is the
    divisor the earlier version picked; where the earlier version fell back to
    a much smaller divisor (101 and 50 -> 1, 101 calls) it now pads (3 calls
    of 34, one padding row), a different (faster) micro-batch size.
    """
    population = check_int("population", population, 1)
    eval_batch = check_int("eval_batch", eval_batch, 1)
    n_dev = 1 if mesh is None else mesh.size
    if population % n_dev:
        raise InputError(f"population {population} is not divisible by {n_dev} devices")
    local = population // n_dev
    eb = balanced_batch(local, eval_batch)
    if eb != eval_batch and eval_batch < local:
        logging.getLogger("fooljax").info(
            "eval_batch %d does not divide the per-device population %d; "
            "micro-batches of %d (the last one padded)",
            eval_batch,
            local,
            eb,
        )
    return Layout(mesh if n_dev > 1 else None, eb)


def balanced_batch(n: int, eval_batch: int) -> int:
    """Micro-batch size for ``n`` rows: as few calls as ``eval_batch`` needs,
    as little padding as possible; ``eval_batch`` itself when it divides ``n``."""
    eb = min(eval_batch, n)
    return -(-n // -(-n // eb))


def _pad_rows(tree, m: int):
    """Pads every leaf ``[n, ...]`` to ``[m, ...]`` with copies of row 0 (a real
    genome: padding decodes and scores like any other, and is dropped)."""

    def pad(a):
        n = a.shape[0]
        if m == n:
            return a
        return jnp.concatenate([a, jnp.broadcast_to(a[:1], (m - n, *a.shape[1:]))])

    return jax.tree_util.tree_map(pad, tree)


def _score_local(log_probs_fn, params, encoding: Encoding, genomes, eval_batch: int):
    """``[n]`` genomes -> ``[n, K]`` log-probs in micro-batches of
    ``min(eval_batch, n)``; when that does not divide ``n`` the last batch is
    padded with copies of genome 0 whose scores are dropped. NaN -> -inf."""
    n = jax.tree_util.tree_leaves(genomes)[0].shape[0]
    eb = min(eval_batch, n)
    m = -(-n // eb) * eb
    batches = jax.tree_util.tree_map(
        lambda a: a.reshape(m // eb, eb, *a.shape[1:]), _pad_rows(genomes, m)
    )
    lp = jax.lax.map(
        lambda g: log_probs_fn(params, jax.vmap(encoding.decode)(g)), batches
    )
    lp = lp.reshape(m, lp.shape[-1])[:n]
    return jnp.where(jnp.isnan(lp), -jnp.inf, lp)


def _score(log_probs_fn, params, encoding: Encoding, genomes, layout: Layout):
    """Decodes and scores ``genomes`` (leaves ``[P, ...]``) -> ``[P, K]`` log-probs.

    The model always sees micro-batches of ``layout.eval_batch`` images (a
    ``lax.map``), on every device: XLA:CPU's GEMM picks its reduction blocking
    from the batch size, so this is what makes a sharded run bit-identical to a
    single-device one. With a mesh, ``shard_map`` gives each device its slice.
    """

    def local(params, genomes):
        return _score_local(log_probs_fn, params, encoding, genomes, layout.eval_batch)

    if layout.mesh is None:
        return local(params, genomes)
    n = jax.tree_util.tree_leaves(genomes)[0].shape[0]
    if n % layout.mesh.size:
        raise InputError(
            f"population {n} is not divisible by {layout.mesh.size} devices"
        )
    axis = layout.mesh.axis_names[0]
    return jax.shard_map(
        lambda p, g: local(p, g),
        mesh=layout.mesh,
        in_specs=(PartitionSpec(), PartitionSpec(axis)),
        out_specs=PartitionSpec(axis),
    )(params, genomes)


def tell(archive: Archive, genomes, log_probs: jax.Array, generation) -> Archive:
    """Offers every offspring to every cell.

    ``genomes``: pytree with leaves ``[P, ...]``; ``log_probs: [P, K]``.
    Ties keep the incumbent (strictly better replaces).
    """
    best = jnp.argmax(log_probs, axis=0)  # [K] best offspring per class
    best_fit = jnp.take_along_axis(log_probs, best[None, :], axis=0)[0]
    better = best_fit > archive.fitness
    new_genomes = jax.tree_util.tree_map(
        lambda a, g: jnp.where(better.reshape((-1,) + (1,) * (a.ndim - 1)), g[best], a),
        archive.genomes,
        genomes,
    )
    return Archive(
        genomes=new_genomes,
        fitness=jnp.where(better, best_fit, archive.fitness),
        found_at=jnp.where(
            better, jnp.asarray(generation, jnp.int32), archive.found_at
        ),
    )


def ask(
    key: jax.Array, archive: Archive, encoding: Encoding, population: int, generation
):
    """``population`` offspring of parents drawn uniformly from occupied cells."""
    k_parent, k_mate, k_cross, k_var = jax.random.split(key, 4)
    occupied = archive.fitness > -jnp.inf
    logits = jnp.where(occupied, 0.0, -jnp.inf)
    parents = jax.random.categorical(k_parent, logits, shape=(population,))
    genomes = jax.tree_util.tree_map(lambda a: a[parents], archive.genomes)
    if encoding.crossover is not None and encoding.crossover_rate > 0:
        mates = jax.random.categorical(k_mate, logits, shape=(population,))
        others = jax.tree_util.tree_map(lambda a: a[mates], archive.genomes)
        keys = jax.random.split(k_cross, population)
        crossed = jax.vmap(encoding.crossover)(keys, genomes, others)
        do = jax.random.bernoulli(k_mate, encoding.crossover_rate, (population,))
        genomes = jax.tree_util.tree_map(
            lambda c, g: jnp.where(do.reshape((-1,) + (1,) * (g.ndim - 1)), c, g),
            crossed,
            genomes,
        )
    keys = jax.random.split(k_var, population)
    return jax.vmap(encoding.mutate, in_axes=(0, 0, None))(keys, genomes, generation)


def _update_first_all(first_all, fitness, generation):
    probs = jnp.exp(fitness)
    reached = jnp.stack([jnp.all(probs >= t) for t in THRESHOLDS])
    return jnp.where((first_all < 0) & reached, generation, first_all)


def init(key: jax.Array, params, **kw) -> MapElitesState:
    """Generation 0: ``population`` random genomes scored and offered to the
    archive (keywords as ``init_and_scores``)."""
    return init_and_scores(key, params, **kw)[0]


def init_and_scores(
    key: jax.Array,
    params,
    *,
    log_probs_fn: Callable,
    encoding: Encoding,
    num_classes: int,
    population: int,
    layout: Layout = SINGLE_DEVICE,
):
    """``init``, plus the log-probs ``[P, K]`` of the initial genomes (what
    ``make_init`` checks on the host: the model's real outputs, no extra call)."""
    check_int("num_classes", num_classes, 1)
    check_int("population", population, 1)
    k0 = jax.random.fold_in(key, 0)
    genomes = jax.vmap(encoding.init)(jax.random.split(k0, population))
    genomes = layout.constrain(genomes)
    lp = _score(log_probs_fn, params, encoding, genomes, layout)
    empty = Archive(
        genomes=jax.tree_util.tree_map(
            lambda g: jnp.zeros((num_classes, *g.shape[1:]), g.dtype), genomes
        ),
        fitness=jnp.full((num_classes,), -jnp.inf, jnp.float32),
        found_at=jnp.full((num_classes,), -1, jnp.int32),
    )
    if lp.shape[-1] != num_classes:
        raise InputError(
            f"num_classes is {num_classes} but the model gives {lp.shape[-1]} classes"
        )
    archive = tell(empty, genomes, lp, 0)
    first_all = jnp.full((len(THRESHOLDS),), -1, jnp.int32)
    first_all = _update_first_all(first_all, archive.fitness, 0)
    return MapElitesState(archive, key, jnp.asarray(0, jnp.int32), first_all), lp


def step(
    state: MapElitesState,
    params,
    *,
    log_probs_fn: Callable,
    encoding: Encoding,
    population: int,
    layout: Layout = SINGLE_DEVICE,
):
    """One generation: ask -> decode -> score -> tell. Returns (state, metrics)."""
    check_int("population", population, 1)
    generation = state.generation + 1
    key = jax.random.fold_in(state.key, generation)
    offspring = ask(key, state.archive, encoding, population, generation)
    offspring = layout.constrain(offspring)
    lp = _score(log_probs_fn, params, encoding, offspring, layout)
    archive = tell(state.archive, offspring, lp, generation)
    first_all = _update_first_all(state.first_all, archive.fitness, generation)
    probs = jnp.exp(archive.fitness)
    metrics = {
        "min": jnp.min(probs),
        "median": jnp.median(probs),
        "max": jnp.max(probs),
        "num_at_least_0.99": jnp.sum(probs >= 0.99),
        "num_at_least_0.9999": jnp.sum(probs >= 0.9999),
    }
    return MapElitesState(archive, state.key, generation, first_all), metrics


class _Checked:
    """A jitted function behind host-side checks of its concrete arguments;
    attributes (``lower``, ``_cache_size``...) are the jitted function's."""

    def __init__(self, jitted, check):
        self._jitted = jitted
        self._check = check
        functools.update_wrapper(self, jitted)

    def __call__(self, *args, **kwargs):
        self._check(*args, **kwargs)
        return self._jitted(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._jitted, name)


def make_run_chunk(
    *,
    log_probs_fn: Callable,
    encoding: Encoding,
    population: int,
    layout: Layout = SINGLE_DEVICE,
):
    """Returns ``run_chunk(state, params, num_generations) -> (state, metrics)``.

    ``num_generations`` is static; all generations run in one ``lax.scan`` under
    ``jit`` with ``state`` donated: a state passed to an earlier call is refused
    (``ConsumedStateError``, checked on the host before the call). ``metrics``:
    dict of ``[num_generations]`` arrays (elite min/median/max probability,
    counts >= 0.99 / 0.9999).
    """
    population = check_int("population", population, 1)
    _check_encoding(encoding)
    body = functools.partial(
        step,
        log_probs_fn=log_probs_fn,
        encoding=encoding,
        population=population,
        layout=layout,
    )

    @functools.partial(jax.jit, static_argnums=(2,), donate_argnums=(0,))
    def run_chunk(state: MapElitesState, params, num_generations: int):
        return jax.lax.scan(lambda s, _: body(s, params), state, None, num_generations)

    def check(state, params=None, num_generations=0, *_, **kw):
        num_generations = kw.get("num_generations", num_generations)
        check_int("num_generations", num_generations, 0)
        if not isinstance(state, MapElitesState):
            raise InputError(
                f"run_chunk needs a MapElitesState, got {type(state).__name__}"
            )
        check_not_consumed(state, "MapElitesState")

    return _Checked(run_chunk, check)


def _check_encoding(encoding) -> None:
    if not isinstance(encoding, Encoding):
        raise InputError(f"encoding must be an Encoding, got {type(encoding).__name__}")
    if encoding.crossover_rate is not None and is_concrete(encoding.crossover_rate):
        r = float(encoding.crossover_rate)
        if not 0.0 <= r <= 1.0:
            raise InputError(f"encoding crossover_rate {r} is not in [0, 1]")


def estimate_bytes(encoding: Encoding, num_classes: int, population: int, layout):
    """A lower bound on MAP-Elites' memory (``jax.eval_shape``, nothing is
    allocated): parents, mates, crossed and mutated offspring (4 population
    copies of the genome), the archive (2 copies of ``K`` genomes), the
    ``[P, K]`` log-probs and one micro-batch of decoded images. Model
    activations come on top, so only sizes that certainly cannot fit are
    refused."""
    genome = jax.eval_shape(encoding.init, jax.random.key(0))
    image = jax.eval_shape(encoding.decode, genome)
    g_bytes = sum(
        math.prod(a.shape) * a.dtype.itemsize for a in jax.tree_util.tree_leaves(genome)
    )
    i_bytes = math.prod(image.shape) * 4
    local = population // (1 if layout.mesh is None else layout.mesh.size)
    return (
        4 * local * g_bytes
        + 2 * num_classes * g_bytes
        + 4 * local * num_classes
        + min(layout.eval_batch, local) * i_bytes
    )


def _check_outputs(lp, num_classes: int, *, of_probs_fn: bool) -> None:
    """Host check of the scored log-probs ``[n, K]`` of the first initial
    genomes (``_score`` maps NaN to ``-inf``). Refuses (``InputError``, one
    line): an output width other than ``num_classes``; no row with a finite
    score (NaN weights: every image would "fool" the model; for
    ``log_probs_from(probs_fn=...)`` also logits, whose negative values have no
    log); rows whose probabilities do not sum to 1 within ``PROB_SUM_TOL``.
    A model that is NaN on some images only is allowed (those rows never enter
    the archive)."""
    lp = np.asarray(lp, np.float64)
    n = lp.shape[0]
    if lp.ndim != 2 or lp.shape[-1] != num_classes:
        raise InputError(
            f"num_classes is {num_classes} but the model gives outputs of shape "
            f"{list(lp.shape[1:])}"
        )
    ok = np.all(~np.isnan(lp), axis=-1) & np.any(np.isfinite(lp), axis=-1)
    if not ok.any():
        raise InputError(
            f"the model returns non-finite outputs (NaN/inf) on the first {n} "
            "initial images: check its weights (or, for log_probs_from(probs_fn="
            "...), that probs_fn returns probabilities, not logits)"
        )
    sums = np.exp(lp[ok]).sum(-1)
    worst = float(sums[np.argmax(np.abs(sums - 1.0))])
    if abs(worst - 1.0) > PROB_SUM_TOL:
        name, what = (
            ("probs_fn", "probabilities")
            if of_probs_fn
            else ("log_probs_fn", "log-probabilities")
        )
        raise InputError(
            f"{name} does not return {what} (row sums {worst:.4g}): pass "
            "log_probs_from(logits_fn=...) for a model that returns logits"
        )


def make_init(*, log_probs_fn, encoding, num_classes, population, layout=SINGLE_DEVICE):
    """Returns jitted ``init(key, params) -> MapElitesState`` (generation 0).

    Refuses sizes that cannot fit in memory (``estimate_bytes``) here, and on
    every call with concrete arguments checks the log-probs of the first
    ``eval_batch`` initial genomes that ``init`` computed anyway
    (``_check_outputs``; no extra model call or compile): NaN outputs or
    non-probabilities are refused before the run starts.
    """
    population = check_int("population", population, 1)
    num_classes = check_int("num_classes", num_classes, 1)
    if not isinstance(layout, Layout):
        raise InputError(f"layout must be a Layout, got {type(layout).__name__}")
    check_int("eval_batch", layout.eval_batch, 1)
    _check_encoding(encoding)
    check_memory(
        estimate_bytes(encoding, num_classes, population, layout),
        f"MAP-Elites with population {population} and {num_classes} classes",
    )
    kw = dict(
        log_probs_fn=log_probs_fn,
        encoding=encoding,
        num_classes=num_classes,
        population=population,
        layout=layout,
    )
    jitted = jax.jit(functools.partial(init_and_scores, **kw))
    n = min(layout.eval_batch, population)

    class _CheckedInit(_Checked):
        # the initial genomes' own scores are checked: no extra model call
        def __call__(self, key, params):
            try:
                state, lp = self._jitted(key, params)
            except InputError as e:  # raised while tracing: drop JAX's note
                raise InputError(str(e).splitlines()[0]) from None
            if is_concrete((key, params)):
                _check_outputs(
                    lp[:n],
                    num_classes,
                    of_probs_fn=isinstance(log_probs_fn, LogOfProbs),
                )
            return state

    return _CheckedInit(jitted, None)
