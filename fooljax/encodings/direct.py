"""Direct encoding of Nguyen et al. (CVPR 2015, Sec. 2.3): one gene per pixel value.

A genome is ``[H, W, C]`` float32 in [0, 255]: grey values for MNIST, HSV values
(each scaled to [0, 255]) for colour images. Genes start uniform in [0, 255];
variation is Deb's bounded polynomial mutation (as in Sferes2's ``evo_float``,
which the paper's code used) applied to each gene with probability ``rate``,
optionally preceded by SBX crossover (Deb & Agrawal 1995). Every function here
acts on ONE individual; ``jax.vmap`` makes it a population operation.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from fooljax.checks import check_finite, check_int
from fooljax.errors import InputError

LOW, HIGH = 0.0, 255.0


def init(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Uniform random genome ``shape`` in [0, 255]."""
    shape = tuple(check_int("genome shape entry", d, 1) for d in shape)
    return jax.random.uniform(key, shape, jnp.float32, LOW, HIGH)


def _pow_eta1(x: jax.Array, eta: float) -> jax.Array:
    """``x ** (eta + 1)``; an integer power (repeated multiplies) when eta is
    integral, which is the common case (eta = 15)."""
    e = eta + 1.0
    if float(e).is_integer():
        return jax.lax.integer_pow(x, int(e))
    return x**e


def _root_eta1(x: jax.Array, eta: float) -> jax.Array:
    """``x ** (1 / (eta + 1))`` for x >= 0; repeated square roots when eta + 1 is a
    power of two (eta = 15 -> four sqrt), which is exact and cheaper than exp/log."""
    e = eta + 1.0
    if float(e).is_integer() and int(e) & (int(e) - 1) == 0:
        for _ in range(int(e).bit_length() - 1):
            x = jnp.sqrt(x)
        return x
    return x ** (1.0 / e)


def polynomial_mutation(
    key: jax.Array,
    genome: jax.Array,
    *,
    rate: float | jax.Array,
    eta: float,
    low: float = LOW,
    high: float = HIGH,
) -> jax.Array:
    """Deb's bounded polynomial mutation of each gene with probability ``rate``.

    ``genome``: any shape, values in [low, high]. ``eta``: distribution index
    (larger = smaller steps), a Python number. The perturbation never leaves
    [low, high]; the result is clipped to guard against rounding. ``rate`` may
    be traced (e.g. a schedule over generations) without recompiling.

    One uniform ``r`` per gene does both jobs: the gene mutates iff ``r < rate``,
    and then ``u = r / rate`` is again uniform on [0, 1) (exact, and it halves
    the random bits drawn per generation).
    """
    r = jax.random.uniform(key, genome.shape)
    check_finite("mutation eta", eta, 0.0)
    if not low < high:
        raise InputError(f"mutation bounds need low < high, got [{low}, {high}]")
    rate = jnp.asarray(check_finite("mutation rate", rate, 0.0, 1.0), jnp.float32)
    mask = r < rate
    u = r / jnp.maximum(rate, 1e-30)
    span = high - low
    lower = u <= 0.5
    # Deb's formulas; pick each branch's operand first so each power runs once.
    xy = jnp.where(lower, (high - genome) / span, (genome - low) / span)
    xy_pow = _pow_eta1(xy, eta)
    base = jnp.where(
        lower,
        2.0 * u + (1.0 - 2.0 * u) * xy_pow,
        2.0 * (1.0 - u) + 2.0 * (u - 0.5) * xy_pow,
    )
    q = _root_eta1(base, eta)
    deltaq = jnp.where(lower, q - 1.0, 1.0 - q)
    mutated = jnp.clip(genome + deltaq * span, low, high)
    return jnp.where(mask, mutated, genome)


def polynomial_mutation_reference(u: float, x: float, eta: float, low=LOW, high=HIGH):
    """Scalar textbook version (Deb & Goyal 1996 / NSGA-II ``real_mutate_ind``) of
    the mutation of one selected gene given its uniform draw ``u``; for tests."""
    delta1 = (x - low) / (high - low)
    delta2 = (high - x) / (high - low)
    mut_pow = 1.0 / (eta + 1.0)
    if u <= 0.5:
        xy = 1.0 - delta1
        val = 2.0 * u + (1.0 - 2.0 * u) * xy ** (eta + 1.0)
        deltaq = val**mut_pow - 1.0
    else:
        xy = 1.0 - delta2
        val = 2.0 * (1.0 - u) + 2.0 * (u - 0.5) * xy ** (eta + 1.0)
        deltaq = 1.0 - val**mut_pow
    return min(max(x + deltaq * (high - low), low), high)


def sbx_crossover(
    key: jax.Array,
    parent1: jax.Array,
    parent2: jax.Array,
    *,
    eta: float,
    low: float = LOW,
    high: float = HIGH,
) -> jax.Array:
    """Simulated binary crossover (Deb & Agrawal 1995), bounded; returns one child.

    Each gene pair is crossed with probability 0.5 (as in NSGA-II/Sferes2), the
    child takes either of the two SBX offspring values at random.
    """
    check_finite("crossover eta", eta, 0.0)
    k_gene, k_u, k_side = jax.random.split(key, 3)
    y1 = jnp.minimum(parent1, parent2)
    y2 = jnp.maximum(parent1, parent2)
    u = jax.random.uniform(k_u, parent1.shape)
    diff = jnp.maximum(y2 - y1, 1e-9)

    def child(beta_bound):
        alpha = 2.0 - beta_bound ** (-(eta + 1.0))
        betaq = jnp.where(
            u <= 1.0 / alpha,
            (u * alpha) ** (1.0 / (eta + 1.0)),
            (1.0 / jnp.maximum(2.0 - u * alpha, 1e-12)) ** (1.0 / (eta + 1.0)),
        )
        return betaq

    beta_lo = 1.0 + 2.0 * (y1 - low) / diff
    beta_hi = 1.0 + 2.0 * (high - y2) / diff
    c1 = 0.5 * ((y1 + y2) - child(beta_lo) * diff)
    c2 = 0.5 * ((y1 + y2) + child(beta_hi) * diff)
    pick = jax.random.bernoulli(k_side, 0.5, parent1.shape)
    c = jnp.clip(jnp.where(pick, c1, c2), low, high)
    crossed = jax.random.bernoulli(k_gene, 0.5, parent1.shape) & (
        jnp.abs(parent1 - parent2) > 1e-9
    )
    return jnp.where(crossed, c, parent1)


def decode_grey(genome: jax.Array) -> jax.Array:
    """``[H, W, 1]`` in [0, 255] -> image in [0, 1]."""
    return genome * (1.0 / 255.0)


def hsv_to_rgb(hsv: jax.Array) -> jax.Array:
    """``[..., 3]`` HSV in [0, 1] -> RGB in [0, 1] (matches ``colorsys``)."""
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    h6 = (h % 1.0) * 6.0
    i = jnp.floor(h6)
    f = h6 - i
    p = v * (1.0 - s)
    q = v * (1.0 - s * f)
    t = v * (1.0 - s * (1.0 - f))
    i = i.astype(jnp.int32) % 6
    r = jnp.choose(i, [v, q, p, p, t, v], mode="clip")
    g = jnp.choose(i, [t, v, v, q, p, p], mode="clip")
    b = jnp.choose(i, [p, p, t, v, v, q], mode="clip")
    return jnp.stack([r, g, b], axis=-1)


def decode_hsv(genome: jax.Array) -> jax.Array:
    """``[H, W, 3]`` HSV genome in [0, 255] -> RGB image in [0, 1]."""
    return hsv_to_rgb(genome * (1.0 / 255.0))
