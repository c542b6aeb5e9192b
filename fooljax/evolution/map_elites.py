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

import functools
import logging
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct
from jax.sharding import NamedSharding, PartitionSpec

from fooljax.encodings.base import Encoding
from fooljax.errors import FooljaxError

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


def log_probs_from(
    logits_fn: Callable | None = None, probs_fn: Callable | None = None
) -> Callable:
    """``log_probs(params, images [B,H,W,C]) -> [B, K]`` from a logits or probs fn."""
    if (logits_fn is None) == (probs_fn is None):
        raise ValueError("pass exactly one of logits_fn or probs_fn")
    if logits_fn is not None:
        return lambda p, x: jax.nn.log_softmax(logits_fn(p, x).astype(jnp.float32))
    return lambda p, x: jnp.log(probs_fn(p, x).astype(jnp.float32))


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
    """Checks that ``population`` splits over the mesh and into micro-batches.

    If ``eval_batch`` does not divide the per-device population, the largest
    divisor below it is used (logged): results then match only runs that use the
    same micro-batch size.
    """
    n_dev = 1 if mesh is None else mesh.size
    if population % n_dev:
        raise FooljaxError(
            f"population {population} is not divisible by {n_dev} devices"
        )
    if eval_batch < 1:
        raise FooljaxError(f"eval_batch must be >= 1, got {eval_batch}")
    local = population // n_dev
    eb = min(eval_batch, local)
    while local % eb:
        eb -= 1
    if eb != eval_batch and eval_batch < local:
        logging.getLogger("fooljax").warning(
            "eval_batch %d does not divide the per-device population %d; using %d",
            eval_batch,
            local,
            eb,
        )
    return Layout(mesh if n_dev > 1 else None, eb)


def _score_local(log_probs_fn, params, encoding: Encoding, genomes, eval_batch: int):
    n = jax.tree_util.tree_leaves(genomes)[0].shape[0]
    eb = min(eval_batch, n)
    batches = jax.tree_util.tree_map(
        lambda a: a.reshape(n // eb, eb, *a.shape[1:]), genomes
    )
    lp = jax.lax.map(
        lambda g: log_probs_fn(params, jax.vmap(encoding.decode)(g)), batches
    )
    lp = lp.reshape(n, lp.shape[-1])
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


def init(
    key: jax.Array,
    params,
    *,
    log_probs_fn: Callable,
    encoding: Encoding,
    num_classes: int,
    population: int,
    layout: Layout = SINGLE_DEVICE,
) -> MapElitesState:
    """Generation 0: ``population`` random genomes scored and offered to the archive."""
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
        raise ValueError(
            f"model gives {lp.shape[-1]} classes, archive has {num_classes}"
        )
    archive = tell(empty, genomes, lp, 0)
    first_all = jnp.full((len(THRESHOLDS),), -1, jnp.int32)
    first_all = _update_first_all(first_all, archive.fitness, 0)
    return MapElitesState(archive, key, jnp.asarray(0, jnp.int32), first_all)


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


def make_run_chunk(
    *,
    log_probs_fn: Callable,
    encoding: Encoding,
    population: int,
    layout: Layout = SINGLE_DEVICE,
):
    """Returns ``run_chunk(state, params, num_generations) -> (state, metrics)``.

    ``num_generations`` is static; all generations run in one ``lax.scan`` under
    ``jit`` with ``state`` donated. ``metrics``: dict of ``[num_generations]``
    arrays (elite min/median/max probability, counts >= 0.99 / 0.9999).
    """
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

    return run_chunk


def make_init(*, log_probs_fn, encoding, num_classes, population, layout=SINGLE_DEVICE):
    """Returns jitted ``init(key, params) -> MapElitesState`` (generation 0)."""
    return jax.jit(
        functools.partial(
            init,
            log_probs_fn=log_probs_fn,
            encoding=encoding,
            num_classes=num_classes,
            population=population,
            layout=layout,
        )
    )
