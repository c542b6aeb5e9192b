"""CMA-ES (Hansen & Ostermeier 2001; Hansen 2016, arXiv 1604.00772) in a box,
maximising, ask/tell: an adapter over evosax's ``CMA_ES`` / ``Sep_CMA_ES``.

The one-pixel attack's alternative to DE, as IBM ART's ``PixelAttack(es=1)``
offers. evosax supplies the strategy (sampling, step-size and covariance
adaptation); this module adds what the attack needs around it, with the same
state fields and ``init/ask/tell`` contract as ``fooljax.evolution.de`` so the
caller's loop is the same:

- **Box**: a strategy searches the unit cube's unbounded *genotype* space; a
  candidate is ``lower + reflect(g) (upper - lower)`` where ``reflect`` folds
  every real number into [0, 1] (a triangle wave, continuous, like the ``cma``
  package's boundary transformation). The strategy is told the genotypes it
  sampled, so clipping never biases its update.
- **Maximised** fitness, negated at evosax's (minimising) boundary.
- **Several strategies per population** (``num_strategies = S``): the ``P``
  candidates are ``S`` independent CMA-ES of ``P / S`` each (vmapped), each
  started at the best of its share of the evaluated initial population; a
  strategy whose step size falls below ``restart_sigma`` (in box widths, along
  its longest axis) restarts at a uniform random point (a fixed-shape
  multi-start: one-pixel landscapes are piecewise constant in ``x, y``).
- **Archive** ``population/fitness [P, ...]``: slot ``i`` keeps the best
  candidate ever sampled at position ``i`` (replaced only if strictly better,
  DE's rule), so ``fitness.max()`` is the best so far and callers that keep
  per-member data (the attack's probabilities, its memoised queries) use it as
  they use DE's population.

Pure and fixed-shape: ``init/ask/tell`` act on one population; ``vmap`` them
over images. evosax's strategies are plain objects (created once per
``(strategy, P / S, D)`` and cached, so jit sees the same static object).

Example::

    params = es.ESParams(lower=jnp.zeros(2), upper=jnp.ones(2))
    pop = jax.random.uniform(key0, (8, 2))
    state = es.init(pop, f(pop), params)
    for g in range(10):
        cands, state = es.ask(jax.random.fold_in(key, g), state, params)
        state = es.tell(cands, f(cands), state, params)
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from fooljax.checks import check_finite
from fooljax.errors import InputError
from fooljax.evolution import de

# evosax class per strategy name; evosax is imported on first use (0.3 s of
# start-up that a run without an evosax strategy does not pay)
STRATEGIES = {"cma_es": "CMA_ES", "sep_cma_es": "Sep_CMA_ES"}


def strategy_class(name: str):
    """The evosax strategy class called ``name`` (a key of ``STRATEGIES``)."""
    from evosax import algorithms

    return getattr(algorithms, STRATEGIES[name])


@struct.dataclass
class ESParams:
    """Hyper-parameters and the search box. ``lower, upper: [D]``."""

    lower: jax.Array  # [D] inclusive lower bound
    upper: jax.Array  # [D] inclusive upper bound
    sigma_init: float = 0.3  # initial step size in box widths, > 0
    # restart a strategy whose step size along its longest axis falls below
    # this (box widths), >= 0; 0 = never
    restart_sigma: float = 0.0
    num_strategies: int = struct.field(pytree_node=False, default=1)  # S >= 1
    strategy: str = struct.field(pytree_node=False, default="cma_es")


@struct.dataclass
class ESState:
    population: jax.Array  # [P, D] archive: best candidate seen at each slot
    fitness: jax.Array  # [P] its fitness (maximised)
    best_member: jax.Array  # [D] best candidate so far
    best_fitness: jax.Array  # [] its fitness
    generation: jax.Array  # [] int32, number of tell() calls
    strategy_state: Any  # evosax state, batched over the S strategies
    genotypes: jax.Array  # [P, D] the last ask()'s samples (unit-cube space)
    restarts: jax.Array  # [] int32, strategy restarts so far


def check_params(params: ESParams, population_size: int | None = None) -> ESParams:
    """Refuses meaningless hyper-parameters (``InputError``, one line). Only
    concrete values are looked at; traced ones pass."""
    if not isinstance(params, ESParams):
        raise InputError(f"params must be ESParams, got {type(params).__name__}")
    if params.strategy not in STRATEGIES:
        raise InputError(
            f"unknown evosax strategy '{params.strategy}' "
            f"(known: {', '.join(STRATEGIES)})"
        )
    check_finite("sigma_init", params.sigma_init, 0.0, lo_open=True)
    check_finite("restart_sigma", params.restart_sigma, 0.0)
    s = params.num_strategies
    if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1:
        raise InputError(f"num_strategies must be an integer >= 1, got {s!r}")
    if population_size is not None and (
        population_size % s or population_size // s < 4
    ):
        raise InputError(
            f"population {population_size} must split into {s} strategies of at "
            "least 4 candidates each"
        )
    de.check_box(params.lower, params.upper)
    return params


@functools.cache
def strategy(name: str, population_size: int, num_dims: int):
    """The evosax strategy object (cached: one static object per shape). Built
    eagerly even when first asked for inside a trace: its constructor keeps
    arrays on the object, which must not be tracers."""
    with jax.ensure_compile_time_eval():
        return strategy_class(name)(population_size, np.zeros(num_dims, np.float32))


def _strategy_of(params: ESParams, population_size: int):
    check_params(params, population_size)
    d = params.lower.shape[0]
    alg = strategy(params.strategy, population_size // params.num_strategies, d)
    return alg, alg.default_params.replace(std_init=jnp.float32(params.sigma_init))


# CMA-ES's init and tell draw nothing; evosax's signatures still take a key
# (built when traced, not at import: an array at import starts the backend
# before jax.distributed.initialize could run)
def _unused_key():
    return jax.random.key(0)


def reflect(genotypes: jax.Array) -> jax.Array:
    """Folds every real into [0, 1] (a period-2 triangle wave: identity on
    [0, 1], mirrored beyond)."""
    return 1.0 - jnp.abs(1.0 - jnp.mod(genotypes, 2.0))


def to_box(genotypes: jax.Array, params: ESParams) -> jax.Array:
    """Genotypes ``[..., D]`` (unit-cube space) -> candidates in the box."""
    return params.lower + reflect(genotypes) * (params.upper - params.lower)


def from_box(candidates: jax.Array, params: ESParams) -> jax.Array:
    """Candidates in the box -> genotypes in [0, 1] (0 where the box is flat)."""
    width = params.upper - params.lower
    safe = jnp.where(width > 0, width, 1.0)
    return jnp.where(width > 0, (candidates - params.lower) / safe, 0.0)


def init(population: jax.Array, fitness: jax.Array, params: ESParams) -> ESState:
    """State from an evaluated initial population (``[P, D]``, ``[P]``); each
    strategy's mean starts at the best of its ``P / S`` consecutive members."""
    if len(np.shape(population)) != 2:
        raise InputError(
            f"population must be [P, D], got shape {list(np.shape(population))}"
        )
    p, d = population.shape
    if tuple(np.shape(fitness)) != (p,):
        raise InputError(
            f"fitness must be [{p}] (one per member), got {list(np.shape(fitness))}"
        )
    alg, eparams = _strategy_of(params, p)
    s = params.num_strategies
    share = fitness.reshape(s, p // s)
    starts = population.reshape(s, p // s, d)[jnp.arange(s), jnp.argmax(share, 1)]
    means = from_box(starts, params)
    sstate = jax.vmap(alg.init, in_axes=(None, 0, None))(_unused_key(), means, eparams)
    i = jnp.argmax(fitness)
    return ESState(
        population=population,
        fitness=fitness,
        best_member=population[i],
        best_fitness=fitness[i],
        generation=jnp.zeros((), jnp.int32),
        strategy_state=sstate,
        genotypes=jnp.zeros_like(population),
        restarts=jnp.zeros((), jnp.int32),
    )


def _longest_axis_sigma(sstate) -> jax.Array:
    """``[S]`` step size along each strategy's longest axis (box widths)."""
    c = sstate.C
    diag = jnp.diagonal(c, axis1=-2, axis2=-1) if c.ndim == 3 else c
    return sstate.std * jnp.sqrt(jnp.max(diag, axis=-1))


def ask(key: jax.Array, state: ESState, params: ESParams):
    """``(candidates [P, D] in the box, state)``: first restarts the strategies
    whose step size collapsed, then samples each strategy's ``P / S``."""
    p, d = state.population.shape
    alg, eparams = _strategy_of(params, p)
    s = params.num_strategies
    key_restart, key_sample = jax.random.split(key)
    sstate = state.strategy_state
    collapsed = _longest_axis_sigma(sstate) < params.restart_sigma  # [S]
    fresh_means = jax.random.uniform(key_restart, (s, d))
    fresh = jax.vmap(alg.init, in_axes=(None, 0, None))(
        _unused_key(), fresh_means, eparams
    )
    sstate = jax.tree_util.tree_map(
        lambda new, old: jnp.where(
            collapsed.reshape((s,) + (1,) * (new.ndim - 1)), new, old
        ),
        fresh,
        sstate,
    )
    keys = jax.random.split(key_sample, s)
    genotypes, sstate = jax.vmap(alg.ask, in_axes=(0, 0, None))(keys, sstate, eparams)
    genotypes = genotypes.reshape(p, d)
    state = state.replace(
        strategy_state=sstate,
        genotypes=genotypes,
        restarts=state.restarts + jnp.sum(collapsed, dtype=jnp.int32),
    )
    return to_box(genotypes, params), state


def tell(
    candidates: jax.Array, fitness: jax.Array, state: ESState, params: ESParams
) -> ESState:
    """Updates every strategy with its samples' fitness (``[P]``, maximised;
    ``candidates`` must be the last ``ask``'s) and the archive (a candidate
    replaces its slot if strictly better)."""
    p, d = state.population.shape
    if tuple(np.shape(candidates)) != (p, d) or tuple(np.shape(fitness)) != (p,):
        raise InputError(
            f"candidates and fitness must be [{p}, {d}] and [{p}], got "
            f"{list(np.shape(candidates))} and {list(np.shape(fitness))}"
        )
    alg, eparams = _strategy_of(params, p)
    s = params.num_strategies
    sstate, _ = jax.vmap(alg.tell, in_axes=(None, 0, 0, 0, None))(
        _unused_key(),
        state.genotypes.reshape(s, p // s, d),
        -fitness.reshape(s, p // s),  # evosax minimises
        state.strategy_state,
        eparams,
    )
    better = fitness > state.fitness
    population = jnp.where(better[:, None], candidates, state.population)
    new_fitness = jnp.where(better, fitness, state.fitness)
    i = jnp.argmax(new_fitness)
    improved = new_fitness[i] > state.best_fitness
    return state.replace(
        population=population,
        fitness=new_fitness,
        best_member=jnp.where(improved, population[i], state.best_member),
        best_fitness=jnp.where(improved, new_fitness[i], state.best_fitness),
        generation=state.generation + 1,
        strategy_state=sstate,
    )
