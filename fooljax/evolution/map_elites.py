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

Many independent runs (other seeds, e.g. for statistics over runs) compile as
one: ``make_init_many`` / ``make_run_chunk_many`` hold the same states with a
leading ``[num_runs]`` axis; each generation vmaps every run's ask and tell
and scores all runs' offspring together, so a small population per run still
fills the model's micro-batches. Each run is the run its key gives alone (bit
for bit at the same micro-batch size; see ``make_init_many``).
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
from jax.experimental import multihost_utils
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
from fooljax.evolution import emitters as em

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
    emitter_states: Any = ()  # one entry per emitter (None: stateless); () for
    #   the paper's mutation


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


@dataclasses.dataclass(frozen=True)
class FirstClasses:
    """The archive's cells are the first ``num_classes`` classes of a wider
    model: ``log_probs_fn(params, images)[:, :num_classes]`` (float32);
    hashable. The other classes keep their share of the softmax, so rows sum
    to at most 1 (Nguyen et al. 2015 §3.6: fooling images for the ``n`` real
    classes of a network with an extra ``n + 1``-th "fooling" class)."""

    log_probs_fn: Callable
    num_classes: int

    def __call__(self, params, images):
        return self.log_probs_fn(params, images)[:, : self.num_classes]


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


_pad_rows = em.pad_rows
# Up to this many micro-batches are scored as straight-line code, more in a
# ``lax.map``: XLA:CPU runs independent micro-batches side by side on its
# threads (one's decoding while another's model call), but the iterations
# of a loop one after the other (Caffe LeNet, CPPN, 200 offspring in 4 x 50:
# 15 vs 20 ms); past this the compile time grows with the copies.
UNROLL_BATCHES = 8


def _score_local(log_probs_fn, params, encoding: Encoding, genomes, eval_batch: int):
    """``[n]`` genomes -> ``[n, K]`` log-probs in micro-batches of
    ``min(eval_batch, n)``; when that does not divide ``n`` the last batch is
    padded with copies of genome 0 whose scores are dropped. NaN -> -inf."""
    n = jax.tree_util.tree_leaves(genomes)[0].shape[0]
    eb = min(eval_batch, n)
    m = -(-n // eb) * eb
    padded = _pad_rows(genomes, m)

    def batch(g):
        return log_probs_fn(params, jax.vmap(encoding.decode)(g))

    if m // eb <= UNROLL_BATCHES:
        lp = jnp.concatenate(
            [
                batch(jax.tree_util.tree_map(lambda a, i=i: a[i : i + eb], padded))
                for i in range(0, m, eb)
            ]
        )
    else:
        batches = jax.tree_util.tree_map(
            lambda a: a.reshape(m // eb, eb, *a.shape[1:]), padded
        )
        lp = jax.lax.map(batch, batches)
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
    """``population`` offspring of parents drawn uniformly from occupied cells
    (``emitters.mutation_offspring``: SBX if the encoding has it, then mutation)."""
    return em.mutation_offspring(key, archive, encoding, population, generation)


def _update_first_all(first_all, fitness, generation):
    probs = jnp.exp(fitness)
    reached = jnp.stack([jnp.all(probs >= t) for t in THRESHOLDS])
    return jnp.where((first_all < 0) & reached, generation, first_all)


def init(key: jax.Array, params, **kw) -> MapElitesState:
    """Generation 0: ``population`` random genomes scored and offered to the
    archive (keywords as ``init_and_scores``)."""
    return init_and_scores(key, params, **kw)[0]


# One run's pieces. ``step`` and ``init_and_scores`` call them directly, the
# many-run versions under ``vmap``; only the scoring in between differs.


def _initial_genomes(key: jax.Array, encoding: Encoding, population: int):
    """Generation 0's ``population`` random genomes (leaves ``[P, ...]``), drawn
    from ``fold_in(key, 0)``."""
    k0 = jax.random.fold_in(key, 0)
    return jax.vmap(encoding.init)(jax.random.split(k0, population))


def _check_num_classes(lp: jax.Array, num_classes: int) -> None:
    if lp.shape[-1] != num_classes:
        raise InputError(
            f"num_classes is {num_classes} but the model gives {lp.shape[-1]} classes"
        )


def _first_state(key: jax.Array, genomes, lp: jax.Array, num_classes: int):
    """One run's generation 0: its initial ``genomes`` (leaves ``[P, ...]``) with
    log-probs ``lp: [P, K]`` offered to an empty archive of ``num_classes`` cells."""
    empty = Archive(
        genomes=jax.tree_util.tree_map(
            lambda g: jnp.zeros((num_classes, *g.shape[1:]), g.dtype), genomes
        ),
        fitness=jnp.full((num_classes,), -jnp.inf, jnp.float32),
        found_at=jnp.full((num_classes,), -1, jnp.int32),
    )
    archive = tell(empty, genomes, lp, 0)
    first_all = jnp.full((len(THRESHOLDS),), -1, jnp.int32)
    first_all = _update_first_all(first_all, archive.fitness, 0)
    return MapElitesState(archive, key, jnp.asarray(0, jnp.int32), first_all)


def _propose(state: MapElitesState, encoding: Encoding, population: int):
    """One run's ``population`` offspring for generation ``g = state.generation
    + 1`` (leaves ``[P, ...]``), drawn from ``fold_in(state.key, g)``."""
    generation = state.generation + 1
    key = jax.random.fold_in(state.key, generation)
    return ask(key, state.archive, encoding, population, generation)


def _emit(state: MapElitesState, emitters, ctx_of):
    """One run's offspring from a mix of ``emitters`` (keys as ``_propose``):
    (offspring ``[P, ...]``, extra genomes ``[M, ...]`` or None, their log-probs
    ``[M, K]`` or None, the stateful emitters' asks for ``em.tell_all``);
    ``ctx_of(generation)`` is the emitters' context."""
    generation = state.generation + 1
    key = jax.random.fold_in(state.key, generation)
    return em.emit_all(
        emitters, key, state.archive, ctx_of(generation), state.emitter_states
    )


def _accept(state: MapElitesState, offspring, lp: jax.Array, extra=None, extra_lp=None):
    """Offers one run's scored ``offspring`` (leaves ``[P, ...]``, ``lp: [P, K]``)
    and any ``extra`` genomes the emitters scored themselves (after them) to its
    archive as generation ``state.generation + 1``. Returns (state, metrics):
    the elites' min/median/max probability, the counts of elites >= 0.99 /
    0.9999, the QD-score (sum of the cells' probabilities) and coverage
    (fraction of occupied cells): scalars; ``fitness``: the cells' log-probs
    ``[K]``."""
    generation = state.generation + 1
    if extra is not None:
        offspring = jax.tree_util.tree_map(
            lambda a, b: jnp.concatenate([a, b]), offspring, extra
        )
        lp = jnp.concatenate([lp, extra_lp])
    archive = tell(state.archive, offspring, lp, generation)
    first_all = _update_first_all(state.first_all, archive.fitness, generation)
    probs = jnp.exp(archive.fitness)
    metrics = {
        "min": jnp.min(probs),
        "median": jnp.median(probs),
        "max": jnp.max(probs),
        "num_at_least_0.99": jnp.sum(probs >= 0.99),
        "num_at_least_0.9999": jnp.sum(probs >= 0.9999),
        # QD-score: the sum over cells of the elite's probability (an empty
        # cell adds 0), coverage: the fraction of occupied cells
        "qd_score": jnp.sum(probs),
        "coverage": jnp.mean(archive.fitness > -jnp.inf),
        "fitness": archive.fitness,  # [K] log p per cell, for per-class curves
    }
    return state.replace(
        archive=archive, generation=jnp.asarray(generation), first_all=first_all
    ), metrics


def _runs(many: bool):
    """``vmap`` over a leading run axis for many runs; the function itself for one."""
    return jax.vmap if many else (lambda fn: fn)


def _score_runs(
    many: bool, log_probs_fn, params, encoding: Encoding, genomes, layout: Layout
):
    """``_score`` of one run's genomes (leaves ``[P, ...]`` -> ``[P, K]``) or of
    ``R`` runs' (``many``: leaves ``[R, P, ...]`` -> ``[R, P, K]``).

    Many runs are scored as one population of ``R * P``: one model call per
    micro-batch of ``layout.eval_batch`` rows, a micro-batch may hold several
    runs' offspring; each row's score depends only on its own image and the
    micro-batch size."""
    if not many:
        return _score(log_probs_fn, params, encoding, layout.constrain(genomes), layout)
    r, p = jax.tree_util.tree_leaves(genomes)[0].shape[:2]
    flat = jax.tree_util.tree_map(lambda a: a.reshape(r * p, *a.shape[2:]), genomes)
    lp = _score(log_probs_fn, params, encoding, layout.constrain(flat), layout)
    return lp.reshape(r, p, lp.shape[-1])


def _init_runs(
    many,
    key,
    params,
    log_probs_fn,
    encoding,
    num_classes,
    population,
    layout=SINGLE_DEVICE,
    emitters=None,
):
    """``init_and_scores`` (``many`` False) and ``init_many_and_scores``."""
    check_int("num_classes", num_classes, 1)
    check_int("population", population, 1)
    each = _runs(many)
    genomes = each(lambda k: _initial_genomes(k, encoding, population))(key)
    lp = _score_runs(many, log_probs_fn, params, encoding, genomes, layout)
    _check_num_classes(lp, num_classes)
    first = functools.partial(_first_state, num_classes=num_classes)
    state = each(first)(key, genomes, lp)
    if em.is_stateful(emitters):
        state = each(
            lambda s: s.replace(
                emitter_states=em.init_states(
                    emitters,
                    jax.tree_util.tree_map(lambda a: a[0], s.archive.genomes),
                    num_classes,
                )
            )
        )(state)
    return state, lp


def _step_runs(
    many,
    state,
    params,
    log_probs_fn,
    encoding,
    population,
    layout=SINGLE_DEVICE,
    emitters=None,
):
    """``step`` (``many`` False) and ``step_many``."""
    check_int("population", population, 1)
    if em.is_default(emitters, population):
        offspring = _runs(many)(lambda s: _propose(s, encoding, population))(state)
        lp = _score_runs(many, log_probs_fn, params, encoding, offspring, layout)
        return _runs(many)(_accept)(state, offspring, lp)
    em.check(emitters, population)

    def ctx_of(generation):
        return em.Context(encoding, log_probs_fn, params, layout.eval_batch, generation)

    each = _runs(many)
    offspring, extra, extra_lp, asked = each(lambda s: _emit(s, emitters, ctx_of))(
        state
    )
    lp = _score_runs(many, log_probs_fn, params, encoding, offspring, layout)
    if em.is_stateful(emitters):
        state = each(
            lambda s, a, l_, o: s.replace(
                emitter_states=em.tell_all(emitters, a, l_, s.archive, o)
            )
        )(state, asked, lp, offspring)
    return each(_accept)(state, offspring, lp, extra, extra_lp)


def init_and_scores(
    key: jax.Array,
    params,
    *,
    log_probs_fn: Callable,
    encoding: Encoding,
    num_classes: int,
    population: int,
    layout: Layout = SINGLE_DEVICE,
    emitters: tuple | None = None,
):
    """``init``, plus the log-probs ``[P, K]`` of the initial genomes (what
    ``make_init`` checks on the host: the model's real outputs, no extra call).
    ``emitters``: the mix ``step`` will use; stateful ones (``CMAME``) get their
    initial state in ``MapElitesState.emitter_states``."""
    return _init_runs(
        False,
        key,
        params,
        log_probs_fn,
        encoding,
        num_classes,
        population,
        layout,
        emitters,
    )


def step(
    state: MapElitesState,
    params,
    *,
    log_probs_fn: Callable,
    encoding: Encoding,
    population: int,
    layout: Layout = SINGLE_DEVICE,
    emitters: tuple | None = None,
):
    """One generation: ask -> decode -> score -> tell. Returns (state, metrics).

    ``emitters``: a tuple of ``evolution.emitters`` whose counts sum to
    ``population`` (``None``: the paper's mutation, ``ask``)."""
    return _step_runs(
        False, state, params, log_probs_fn, encoding, population, layout, emitters
    )


def init_many_and_scores(keys: jax.Array, params, **kw):
    """Generation 0 of ``R`` independent runs, ``keys: [R]`` typed keys
    (keywords as ``init_and_scores``).

    Returns (states: ``MapElitesState`` whose leaves have a leading ``[R]``
    axis, the log-probs ``[R, P, K]`` of the initial genomes). Run ``r`` is
    ``init_and_scores(keys[r], ...)``: the genome draws are vmapped, the ``R *
    P`` initial genomes are scored together, each run's archive is filled under
    ``vmap``. See ``make_init_many`` for when this is bit for bit."""
    return _init_runs(True, keys, params, **kw)


def step_many(states: MapElitesState, params, **kw):
    """One generation of ``R`` independent runs (``states``: leaves ``[R,
    ...]``; keywords as ``step``).

    Each run's ask is vmapped, the ``R * P`` offspring are scored together (the
    model sees micro-batches of ``layout.eval_batch`` rows, not ``R`` small
    batches), each run's tell is vmapped. Returns (states, metrics: ``step``'s
    keys, each ``[R]``)."""
    return _step_runs(True, states, params, **kw)


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


def _make_run_chunk(
    step_fn, num_runs, log_probs_fn, encoding, population, layout, emitters=None
):
    """``make_run_chunk`` (``num_runs`` None: ``step``) and
    ``make_run_chunk_many`` (``step_many``): one scan, one set of host checks."""
    population = check_int("population", population, 1)
    _check_encoding(encoding)
    if emitters is not None:
        em.check(emitters, population)
    body = functools.partial(
        step_fn,
        log_probs_fn=log_probs_fn,
        encoding=encoding,
        population=population,
        layout=layout,
        emitters=emitters,
    )
    name = "run_chunk" if num_runs is None else "run_chunk_many"
    gen_shape = () if num_runs is None else (num_runs,)

    @functools.partial(jax.jit, static_argnums=(2,), donate_argnums=(0,))
    def run_chunk(state: MapElitesState, params, num_generations: int):
        return jax.lax.scan(lambda s, _: body(s, params), state, None, num_generations)

    if em.uses_gradients(emitters):
        # XLA:CPU runs backward passes inside a loop 4-5x slower, so with
        # gradient emitters each generation is one jitted call (no loop around
        # it) driven from here; keys are fold_in(key, g): same results.
        one = jax.jit(lambda s, p: body(s, p), donate_argnums=(0,))

        def run_chunk(state: MapElitesState, params, num_generations: int):  # noqa: F811
            metrics = []
            for _ in range(num_generations):
                state, m = one(state, params)
                metrics.append(m)
            if not metrics:
                return state, {}
            return state, jax.tree_util.tree_map(lambda *a: jnp.stack(a), *metrics)

        run_chunk._cache_size = one._cache_size

    def check(state, params=None, num_generations=0, *_, **kw):
        num_generations = kw.get("num_generations", num_generations)
        check_int("num_generations", num_generations, 0)
        if not isinstance(state, MapElitesState):
            raise InputError(
                f"{name} needs a MapElitesState, got {type(state).__name__}"
            )
        check_not_consumed(state, "MapElitesState")
        got = tuple(jnp.shape(state.generation))
        if got != gen_shape:
            runs = "one run" if num_runs is None else f"num_runs={num_runs} runs"
            raise InputError(
                f"{name} needs the state of {runs} (generation of shape "
                f"{list(gen_shape)}), got generation of shape {list(got)}"
            )

    return _Checked(run_chunk, check)


def make_run_chunk(
    *,
    log_probs_fn: Callable,
    encoding: Encoding,
    population: int,
    layout: Layout = SINGLE_DEVICE,
    emitters: tuple | None = None,
):
    """Returns ``run_chunk(state, params, num_generations) -> (state, metrics)``.

    ``num_generations`` is static; all generations run in one ``lax.scan`` under
    ``jit`` with ``state`` donated: a state passed to an earlier call is refused
    (``ConsumedStateError``, checked on the host before the call). ``metrics``:
    dict of ``[num_generations]`` arrays (elite min/median/max probability,
    counts >= 0.99 / 0.9999). ``emitters``: as ``step`` (``None``: mutation,
    bit for bit the run before emitters existed).
    """
    return _make_run_chunk(
        step, None, log_probs_fn, encoding, population, layout, emitters
    )


def make_run_chunk_many(
    *,
    log_probs_fn: Callable,
    encoding: Encoding,
    population: int,
    num_runs: int,
    layout: Layout = SINGLE_DEVICE,
    emitters: tuple | None = None,
):
    """Returns ``run_chunk_many(states, params, num_generations) -> (states,
    metrics)`` for ``num_runs`` independent runs (``states`` from
    ``make_init_many``: leaves ``[num_runs, ...]``).

    As ``make_run_chunk``: one ``lax.scan`` of ``step_many`` under ``jit``,
    ``states`` donated (a consumed one is refused: ``ConsumedStateError``).
    ``metrics``: dict of ``[num_generations, num_runs]`` arrays, ``step``'s
    keys. Run ``r`` after ``g`` generations is what ``make_run_chunk`` gives
    from run ``r``'s initial state; bit for bit under the conditions of
    ``make_init_many``, else up to float rounding.
    """
    num_runs = check_int("num_runs", num_runs, 1)
    return _make_run_chunk(
        step_many, num_runs, log_probs_fn, encoding, population, layout, emitters
    )


def _check_encoding(encoding) -> None:
    if not isinstance(encoding, Encoding):
        raise InputError(f"encoding must be an Encoding, got {type(encoding).__name__}")
    if encoding.crossover_rate is not None and is_concrete(encoding.crossover_rate):
        r = float(encoding.crossover_rate)
        if not 0.0 <= r <= 1.0:
            raise InputError(f"encoding crossover_rate {r} is not in [0, 1]")


def estimate_bytes(
    encoding: Encoding, num_classes: int, population: int, layout, num_runs: int = 1
):
    """A lower bound on MAP-Elites' memory (``jax.eval_shape``, nothing is
    allocated) for ``num_runs`` runs of ``population``: parents, mates, crossed
    and mutated offspring (4 copies of the ``num_runs * population`` genomes,
    per device), the archives (2 copies of ``num_runs * K`` genomes), the
    ``[num_runs * P, K]`` log-probs and one micro-batch of decoded images.
    Model activations come on top, so only sizes that certainly cannot fit are
    refused."""
    genome = jax.eval_shape(encoding.init, jax.random.key(0))
    image = jax.eval_shape(encoding.decode, genome)
    g_bytes = sum(
        math.prod(a.shape) * a.dtype.itemsize for a in jax.tree_util.tree_leaves(genome)
    )
    i_bytes = math.prod(image.shape) * 4
    n_dev = 1 if layout.mesh is None else layout.mesh.size
    local = num_runs * population // n_dev
    return (
        4 * local * g_bytes
        + 2 * num_runs * num_classes * g_bytes
        + 4 * local * num_classes
        + min(layout.eval_batch, local) * i_bytes
    )


def _check_outputs(
    lp, num_classes: int, *, of_probs_fn: bool, subset: bool = False
) -> None:
    """Host check of the scored log-probs ``[n, K]`` of the first initial
    genomes (``_score`` maps NaN to ``-inf``). Refuses (``InputError``, one
    line): an output width other than ``num_classes``; no row with a finite
    score (NaN weights: every image would "fool" the model; for
    ``log_probs_from(probs_fn=...)`` also logits, whose negative values have no
    log); rows whose probabilities do not sum to 1 within ``PROB_SUM_TOL``
    (``subset``, for ``FirstClasses``: rows that sum to more than 1).
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
    if subset:
        worst = float(sums.max())
    if worst - 1.0 > PROB_SUM_TOL or (not subset and 1.0 - worst > PROB_SUM_TOL):
        name, what = (
            ("probs_fn", "probabilities")
            if of_probs_fn
            else ("log_probs_fn", "log-probabilities")
        )
        raise InputError(
            f"{name} does not return {what} (row sums {worst:.4g}): pass "
            "log_probs_from(logits_fn=...) for a model that returns logits"
        )


def _to_host(x) -> np.ndarray:
    """``x`` on the host; rows held by other processes (a mesh over several
    processes' devices) are gathered first: every process calls this."""
    if not isinstance(x, jax.Array) or x.is_fully_addressable or x.is_fully_replicated:
        return np.asarray(x)
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


class _CheckedInit(_Checked):
    """``init``: the jitted function returns (state, log-probs); the initial
    genomes' own scores of the first micro-batch, ``first(log_probs) -> [n,
    K]``, are checked on the host (``_check_outputs``; no extra model call)."""

    def __init__(self, jitted, check, first, num_classes: int, log_probs_fn):
        super().__init__(jitted, check)
        self._first = first
        self._num_classes = num_classes
        self._subset = isinstance(log_probs_fn, FirstClasses)
        inner = log_probs_fn.log_probs_fn if self._subset else log_probs_fn
        self._of_probs_fn = isinstance(inner, LogOfProbs)

    def __call__(self, key, params):
        self._check(key)
        try:
            state, lp = self._jitted(key, params)
        except InputError as e:  # raised while tracing: drop JAX's note
            raise InputError(str(e).splitlines()[0]) from None
        if is_concrete((key, params)):
            _check_outputs(
                _to_host(self._first(lp)),
                self._num_classes,
                of_probs_fn=self._of_probs_fn,
                subset=self._subset,
            )
        return state


def _make_init(
    init_fn,
    num_runs,
    log_probs_fn,
    encoding,
    num_classes,
    population,
    layout,
    emitters=None,
):
    """``make_init`` (``num_runs`` None: ``init_and_scores``) and
    ``make_init_many`` (``init_many_and_scores``): one set of checks."""
    population = check_int("population", population, 1)
    num_classes = check_int("num_classes", num_classes, 1)
    if not isinstance(layout, Layout):
        raise InputError(f"layout must be a Layout, got {type(layout).__name__}")
    check_int("eval_batch", layout.eval_batch, 1)
    _check_encoding(encoding)
    if emitters is not None:
        em.check(emitters, population)
    runs = 1 if num_runs is None else num_runs
    check_memory(
        estimate_bytes(encoding, num_classes, population, layout, runs),
        f"MAP-Elites with {'' if runs == 1 else f'{runs} runs of '}population "
        f"{population} and {num_classes} classes",
    )
    jitted = jax.jit(
        functools.partial(
            init_fn,
            log_probs_fn=log_probs_fn,
            encoding=encoding,
            num_classes=num_classes,
            population=population,
            layout=layout,
            emitters=emitters,
        )
    )
    n = min(layout.eval_batch, population)
    if num_runs is None:
        return _CheckedInit(
            jitted,
            lambda key: None,
            lambda lp: lp[:n],
            num_classes,
            log_probs_fn,
        )

    def check_keys(keys):
        shape = getattr(keys, "shape", None)
        typed = shape is not None and jax.dtypes.issubdtype(
            keys.dtype, jax.dtypes.prng_key
        )
        if (
            shape is None
            or tuple(shape[:1]) != (num_runs,)
            or (typed and len(shape) != 1)
        ):
            got = type(keys).__name__ if shape is None else f"shape {list(shape)}"
            raise InputError(
                f"keys must be [num_runs={num_runs}] typed keys (e.g. "
                f"jax.random.split(key, {num_runs})), got {got}"
            )

    return _CheckedInit(
        jitted, check_keys, lambda lp: lp[0, :n], num_classes, log_probs_fn
    )


def make_init(
    *,
    log_probs_fn,
    encoding,
    num_classes,
    population,
    layout=SINGLE_DEVICE,
    emitters=None,
):
    """Returns jitted ``init(key, params) -> MapElitesState`` (generation 0).

    Refuses sizes that cannot fit in memory (``estimate_bytes``) here, and on
    every call with concrete arguments checks the log-probs of the first
    ``eval_batch`` initial genomes that ``init`` computed anyway
    (``_check_outputs``; no extra model call or compile): NaN outputs or
    non-probabilities are refused before the run starts. ``emitters``: pass
    the mix given to ``make_run_chunk`` when it holds stateful emitters
    (``CMAME``), whose state lives in the ``MapElitesState``.
    """
    return _make_init(
        init_and_scores,
        None,
        log_probs_fn,
        encoding,
        num_classes,
        population,
        layout,
        emitters,
    )


def make_init_many(
    *,
    log_probs_fn: Callable,
    encoding: Encoding,
    num_classes: int,
    population: int,
    num_runs: int,
    layout: Layout = SINGLE_DEVICE,
    emitters: tuple | None = None,
):
    """Returns jitted ``init_many(keys, params) -> MapElitesState`` (generation
    0 of ``num_runs`` independent runs; ``emitters`` as ``make_init``'s).

    ``keys``: ``[num_runs]`` typed keys (``jax.random.split(key, num_runs)``,
    or ``jnp.stack([jax.random.key(s) for s in seeds])`` for the seeds of
    single runs). The state's leaves have a leading ``[num_runs]`` axis
    (``archive.genomes`` ``[num_runs, K, ...]``, ``archive.fitness`` ``[num_runs,
    K]``, ``key`` / ``generation`` ``[num_runs]``, ``first_all`` ``[num_runs,
    len(THRESHOLDS)]``); run ``r`` is ``make_init(...)(keys[r], params)``, and
    ``make_run_chunk_many`` continues all runs at once. Checks as ``make_init``
    (memory for ``num_runs * population`` genomes; the outputs of run 0's first
    micro-batch), and refuses keys of another length.

    Each generation draws every run's offspring (``vmap``), scores the
    ``num_runs * population`` of them together in micro-batches of
    ``layout.eval_batch`` rows (one model call each) and updates every run's
    archive (``vmap``). Equality with running the seeds one at a time:

    * **bit for bit** when the model sees the same micro-batch size in both,
      i.e. ``layout.eval_batch`` here equals the single run's micro-batch
      ``min(eval_batch, population)`` and divides ``population`` (the same
      ``make_layout(population, mesh, eval_batch)`` for both does this
      whenever ``eval_batch`` divides ``population``);
    * **up to float rounding** with a larger ``eval_batch`` here (the fast
      setting, e.g. ``make_layout(num_runs * population, None, 500)``):
      XLA:CPU's (and GPU's) matmul results can depend on the batch size, so
      scores may differ in the last bits and, where two offspring are almost
      tied, a different elite may win and the runs then diverge.
    """
    num_runs = check_int("num_runs", num_runs, 1)
    return _make_init(
        init_many_and_scores,
        num_runs,
        log_probs_fn,
        encoding,
        num_classes,
        population,
        layout,
        emitters,
    )
