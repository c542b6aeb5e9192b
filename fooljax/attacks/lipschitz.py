"""Upper bounds of a network's Lipschitz constant, layer by layer (Szegedy et
al., "Intriguing properties of neural networks", ICLR 2014, §4.3, Table 5).

For a feed-forward network ``phi = phi_K o ... o phi_1`` with
``||phi_k(x) - phi_k(x + r)|| <= L_k ||r||`` the whole network satisfies
``||phi(x) - phi(x + r)|| <= (prod_k L_k) ||r||``: a large product means the
bound cannot rule out instability (small ``r``, large change of the logits).

- Convolutions and fully-connected layers are affine; their ``L_k`` is the
  operator (spectral) norm of the linear part, estimated here by power
  iteration on ``A^T A`` with ``jax.linearize`` (the bias drops out) and
  ``jax.linear_transpose``, at the exact input shape the layer sees; no
  kernel is ever reshaped into a dense matrix, so strides, padding and groups
  are exactly the network's. Power iteration approaches the norm from below;
  ``power_iteration`` also returns the relative change of the last step.
- ReLU (and ReLU6) are 1-Lipschitz coordinate-wise: ``|relu(a) - relu(b)| <=
  |a - b|``.
- Max-pooling: ``|max_w(a) - max_w(b)| <= max_w |a - b| <= ||a_w - b_w||_2`` for
  each window ``w``, so summing squares over windows gives
  ``||pool(a) - pool(b)||^2 <= m ||a - b||^2`` with ``m`` the largest number of
  windows that share one input: ``m = 1`` (bound 1, Szegedy's value) for
  non-overlapping pools, ``m = prod ceil(k / s)`` (bound 2 for AlexNet's 3x3
  stride-2 pools, reached when one input is the maximum of four windows).
- Contrast normalisation ``x / (k + alpha/n sum x^2)^beta``: Szegedy bounds it by
  ``k^-beta`` (his ``eps^-gamma``, "for gamma in [0.5, 1]").
- Residual blocks: ``||x + F(x) - y - F(y)|| <= (1 + Lip(F)) ||x - y||``, so a
  block contributes ``L_shortcut + prod(bounds of F)``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp


class PowerIteration(NamedTuple):
    """norm: the estimate of ``||A||_2`` (from below); rel_change: relative
    change of the estimate over the last iteration (a convergence check);
    vector: the unit input direction it was reached at, ``input_shape``."""

    norm: jax.Array
    rel_change: jax.Array
    vector: jax.Array


def power_iteration(
    linear_fn: Callable[[jax.Array], jax.Array],
    input_shape: tuple[int, ...],
    key: jax.Array,
    *,
    num_iters: int = 100,
    dtype=jnp.float32,
) -> PowerIteration:
    """Largest singular value of the LINEAR map ``linear_fn`` by power iteration.

    Args:
      linear_fn: ``x [*input_shape] -> y``, linear in JAX's sense (built from
        linear primitives, e.g. a ``jax.linearize`` tangent map or a conv with
        no bias) so that ``jax.linear_transpose`` can transpose it.
      input_shape: the shape of ``x`` (static).
      key: PRNG key of the random start.
      num_iters: iterations of ``v <- A^T A v / ||A^T A v||`` (static).

    Pure and jittable (``linear_fn``, ``input_shape`` and ``num_iters`` static).
    """
    primal = jax.ShapeDtypeStruct(tuple(input_shape), dtype)
    transpose = jax.linear_transpose(linear_fn, primal)

    def normalize(v):
        return v / jnp.maximum(jnp.linalg.norm(v.ravel()), jnp.finfo(dtype).tiny)

    def gram(v):
        return transpose(linear_fn(v))[0]

    def body(_, carry):
        v, sq, _ = carry
        w = gram(v)
        # ||A^T A v|| for unit v tends to sigma_max^2
        return normalize(w), jnp.linalg.norm(w.ravel()), sq

    v0 = normalize(jax.random.normal(key, tuple(input_shape), dtype))
    zero = jnp.zeros((), dtype)
    v, sq, prev_sq = jax.lax.fori_loop(0, num_iters, body, (v0, zero, zero))
    norm = jnp.linalg.norm(linear_fn(v).ravel())
    rel_change = jnp.abs(sq - prev_sq) / jnp.maximum(sq, jnp.finfo(dtype).tiny)
    return PowerIteration(norm, rel_change, v)


def operator_norm(
    linear_fn: Callable[[jax.Array], jax.Array],
    input_shape: tuple[int, ...],
    key: jax.Array,
    num_iters: int = 100,
    *,
    dtype=jnp.float32,
) -> jax.Array:
    """``||linear_fn||_2`` (scalar) by ``power_iteration``; pure, jittable."""
    return power_iteration(
        linear_fn, input_shape, key, num_iters=num_iters, dtype=dtype
    ).norm


@functools.partial(jax.jit, static_argnames=("apply_fn", "input_shape", "num_iters"))
def affine_operator_norm(
    apply_fn: Callable,
    params,
    input_shape: tuple[int, ...],
    key: jax.Array,
    *,
    num_iters: int = 100,
) -> PowerIteration:
    """Operator norm of the linear part of the affine layer ``apply_fn(params, x)``.

    The layer is linearised at ``x = 0`` (its bias drops out; exact for an
    affine map) and the tangent map is power-iterated. Jitted: ``apply_fn``
    must be hashable and stable (a module-level function, or a Flax module's
    ``apply``: equal modules share one compilation), so a second call with the
    same layer and shape compiles nothing.
    """
    x0 = jnp.zeros(input_shape, jnp.float32)
    _, lin = jax.linearize(lambda x: apply_fn(params, x), x0)
    return power_iteration(lin, input_shape, key, num_iters=num_iters)


@functools.partial(jax.jit, static_argnames=("apply_fn", "input_shape"))
def diagonal_operator_norm(apply_fn: Callable, params, input_shape) -> jax.Array:
    """Exact norm of an element-wise affine map (inference batch norm, input
    scaling): ``max |d|`` with ``d = J 1`` its diagonal. Only valid when the
    map is diagonal (each output coordinate depends on its own input)."""
    x0 = jnp.zeros(input_shape, jnp.float32)
    _, d = jax.jvp(lambda x: apply_fn(params, x), (x0,), (jnp.ones_like(x0),))
    return jnp.max(jnp.abs(d))


def max_pool_bound(window: tuple[int, ...], strides: tuple[int, ...]) -> float:
    """``sqrt(prod ceil(k / s))``: 1 for non-overlapping pools (see module doc)."""
    m = math.prod(-(-k // s) for k, s in zip(window, strides, strict=True))
    return math.sqrt(m)


def lrn_bound(k: float = 1.0, beta: float = 0.75) -> float:
    """Szegedy's bound ``k^-beta`` of contrast normalisation (Caffe's LRN with
    ``k = 1``: 1)."""
    return float(k) ** (-float(beta))


def residual_bound(shortcut_bound: float, branch_bounds) -> float:
    """Bound of ``S(x) + F(x)``: ``L_S + prod(bounds of F's layers)``."""
    return float(shortcut_bound) + math.prod(float(b) for b in branch_bounds)
