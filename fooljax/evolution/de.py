"""Differential evolution (Storn & Price 1997), bounded, maximising, ask/tell.

The variant of the one pixel attack (Su, Vargas & Sakurai, IEEE TEVC 2019,
Sec. III-B): DE/rand/1 with scale factor ``F = 0.5`` and no crossover (trial =
mutant), a trial replaces its parent only if strictly better. Binomial
crossover (``crossover_rate < 1``) is available for other uses.

Why not evosax's ``DifferentialEvolution``: it minimises, has no bounds and its
donors are drawn with replacement; the one-pixel candidates need box bounds
(pixel coordinates and colours) and the textbook distinct donors.

fooljax convention: fitness is **maximised**. Everything is pure and
fixed-shape: ``init/ask/tell`` act on one population (``[P, D]``); ``vmap`` them
for many independent populations (one per attacked image) and run generations
in ``lax.while_loop``/``lax.scan``.

Example::

    params = de.DEParams(lower=jnp.zeros(2), upper=jnp.ones(2))
    pop = de.uniform_population(jax.random.key(0), params, 8)
    state = de.init(pop, f(pop), params)
    for g in range(10):
        trials = de.ask(jax.random.fold_in(key, g), state, params)
        state = de.tell(trials, f(trials), state, params)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from fooljax.checks import check_finite, is_concrete
from fooljax.errors import InputError

BOUND_HANDLING = ("clip", "resample")


@struct.dataclass
class DEParams:
    """Hyper-parameters and the search box. ``lower, upper: [D]``."""

    lower: jax.Array  # [D] inclusive lower bound
    upper: jax.Array  # [D] inclusive upper bound
    differential_weight: float = 0.5  # F, in (0, 2]
    crossover_rate: float = 1.0  # CR in [0, 1]; 1 = no crossover (trial = mutant)
    # "clip": out-of-box coordinates are clipped onto the box;
    # "resample": replaced by a uniform draw in the box (scipy's rule).
    bound_handling: str = struct.field(pytree_node=False, default="clip")


@struct.dataclass
class DEState:
    population: jax.Array  # [P, D] inside [lower, upper]
    fitness: jax.Array  # [P] fitness of each member (maximised)
    best_member: jax.Array  # [D] best member so far
    best_fitness: jax.Array  # [] its fitness
    generation: jax.Array  # [] int32, number of tell() calls


def check_params(params: DEParams) -> DEParams:
    """Refuses meaningless hyper-parameters (``InputError``, one line): ``F``
    not finite in (0, 2], ``CR`` not finite in [0, 1], an unknown bound rule, a
    box that is not finite ``[D]`` with ``lower <= upper``. Only concrete values
    are looked at (``ask``/``tell`` run it at trace time: free, never per
    generation); traced ones pass."""
    if not isinstance(params, DEParams):
        raise InputError(f"params must be DEParams, got {type(params).__name__}")
    check_finite(
        "differential_weight (F)", params.differential_weight, 0.0, 2.0, lo_open=True
    )
    check_finite("crossover_rate (CR)", params.crossover_rate, 0.0, 1.0)
    if params.bound_handling not in BOUND_HANDLING:
        raise InputError(
            f"unknown bound_handling '{params.bound_handling}' "
            f"(known: {', '.join(BOUND_HANDLING)})"
        )
    check_box(params.lower, params.upper)
    return params


def check_box(lo, hi) -> None:
    """Refuses a search box ``[lower, upper]`` that is not two ``[D]`` arrays,
    or (when concrete) not finite or with ``lower > upper`` somewhere."""
    if np.shape(lo) != np.shape(hi) or len(np.shape(lo)) != 1:
        raise InputError(
            f"lower and upper must both be [D], got shapes {list(np.shape(lo))} "
            f"and {list(np.shape(hi))}"
        )
    if is_concrete((lo, hi)):
        lo, hi = np.asarray(lo), np.asarray(hi)
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise InputError("the search box (lower, upper) must be finite")
        if np.any(lo > hi):
            i = int(np.argmax(lo > hi))
            raise InputError(
                f"lower > upper in dimension {i} ({lo[i]:.4g} > {hi[i]:.4g})"
            )


def _check_population(population, fitness=None) -> None:
    if len(np.shape(population)) != 2:
        raise InputError(
            f"population must be [P, D], got shape {list(np.shape(population))}"
        )
    p = np.shape(population)[0]
    if fitness is not None and tuple(np.shape(fitness)) != (p,):
        raise InputError(
            f"fitness must be [{p}] (one per member), got {list(np.shape(fitness))}"
        )


def uniform_population(key: jax.Array, params: DEParams, population_size: int):
    """``[P, D]`` uniform in the box."""
    check_params(params)
    if population_size < 1:
        raise InputError(f"population_size must be >= 1, got {population_size}")
    u = jax.random.uniform(key, (population_size, params.lower.shape[0]))
    return params.lower + u * (params.upper - params.lower)


def init(population: jax.Array, fitness: jax.Array, params: DEParams) -> DEState:
    """State from an evaluated initial population (``[P, D]``, ``[P]``)."""
    check_params(params)
    _check_population(population, fitness)
    i = jnp.argmax(fitness)
    return DEState(
        population=population,
        fitness=fitness,
        best_member=population[i],
        best_fitness=fitness[i],
        generation=jnp.zeros((), jnp.int32),
    )


def _skip_excluded(value: jax.Array, excluded_sorted: jax.Array) -> jax.Array:
    """Maps ``value`` in ``[0, n - m)`` onto ``[0, n)`` minus ``m`` sorted,
    distinct excluded indices (uniform in, uniform out)."""

    for j in range(excluded_sorted.shape[0]):  # static and tiny (<= 3)
        value = value + (value >= excluded_sorted[j]).astype(value.dtype)
    return value


def distinct_donors(key: jax.Array, population_size: int, num_donors: int = 3):
    """``[P, num_donors]`` int32: row ``i`` holds distinct indices, none equal ``i``.

    Sampling without replacement with fixed shapes: the j-th donor is uniform
    over the ``P - 1 - j`` indices not yet taken, mapped past the taken ones.
    """
    if population_size < num_donors + 1:
        raise InputError(
            f"population must be at least {num_donors + 1} for DE/rand/1, "
            f"got {population_size}"
        )
    keys = jax.random.split(key, num_donors)

    def for_member(i, draws):
        taken = i[None]
        out = []
        for j in range(num_donors):  # static, num_donors = 3
            v = _skip_excluded(draws[j], jnp.sort(taken))
            out.append(v)
            taken = jnp.concatenate([taken, v[None]])
        return jnp.stack(out)

    draws = jnp.stack(
        [
            jax.random.randint(keys[j], (population_size,), 0, population_size - 1 - j)
            for j in range(num_donors)
        ],
        axis=1,
    )
    return jax.vmap(for_member)(jnp.arange(population_size), draws)


def ask(key: jax.Array, state: DEState, params: DEParams) -> jax.Array:
    """Trial vectors ``[P, D]`` (rand/1, optional binomial crossover, in the box)."""
    check_params(params)
    pop = state.population
    p, d = pop.shape
    key_donors, key_cross, key_jrand, key_bounds = jax.random.split(key, 4)
    donors = distinct_donors(key_donors, p, 3)
    r1, r2, r3 = pop[donors[:, 0]], pop[donors[:, 1]], pop[donors[:, 2]]
    mutant = r1 + params.differential_weight * (r2 - r3)
    cross = jax.random.uniform(key_cross, (p, d)) < params.crossover_rate
    cross = cross | (
        jnp.arange(d)[None, :] == jax.random.randint(key_jrand, (p, 1), 0, d)
    )
    # crossover_rate >= 1 means trial = mutant exactly (the paper's setting)
    trial = jnp.where(cross | (params.crossover_rate >= 1.0), mutant, pop)
    if params.bound_handling == "clip":
        return jnp.clip(trial, params.lower, params.upper)
    if params.bound_handling == "resample":
        fresh = uniform_population(key_bounds, params, p)
        out = (trial < params.lower) | (trial > params.upper)
        return jnp.where(out, fresh, trial)
    raise InputError(f"unknown bound_handling '{params.bound_handling}'")


def tell(
    trials: jax.Array, fitness: jax.Array, state: DEState, params: DEParams
) -> DEState:
    """Greedy one-to-one selection: a trial replaces its parent if strictly better."""
    check_params(params)
    _check_population(trials, fitness)
    better = fitness > state.fitness
    population = jnp.where(better[:, None], trials, state.population)
    new_fitness = jnp.where(better, fitness, state.fitness)
    i = jnp.argmax(new_fitness)
    improved = new_fitness[i] > state.best_fitness
    return DEState(
        population=population,
        fitness=new_fitness,
        best_member=jnp.where(improved, population[i], state.best_member),
        best_fitness=jnp.where(improved, new_fitness[i], state.best_fitness),
        generation=state.generation + 1,
    )
