"""Box-constrained L-BFGS adversarial examples (Szegedy et al., ICLR 2014, Sec. 4.1).

For a target label ``l`` != the true one, minimise over ``x'`` in ``[0, 1]^n``

    c * |x' - x|_2^2 + CE(f(x'), l)

with the box handled by a real box-constrained quasi-Newton method:
``scipy.optimize.minimize(method="L-BFGS-B")`` (Byrd, Lu, Nocedal, Zhu 1995).
The batch is ONE L-BFGS-B problem: the objective is a sum of independent
per-image terms, so its minimiser is the per-image minimisers and the box is the
product of the per-image boxes. Value and gradient come from one jitted
``value_and_grad`` over the whole batch.

``c`` is searched per image (Szegedy's "line search"): a larger ``c`` gives a
smaller perturbation but may no longer reach ``l``; every image keeps the
smallest distortion ``sqrt(sum (x' - x)^2 / n)`` among the values of ``c``
whose minimiser is classified as ``l``. The search multiplies/divides ``c`` by
10 until it has brackets, then bisects geometrically.

The paper writes the penalty as ``c|r|``; we use the squared L2 norm, which is
smooth at ``r = 0`` where every solve starts (BUILD_NOTES.md).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fooljax.attacks.common import check_attack_inputs, per_example_loss
from fooljax.checks import check_finite, check_int


class LbfgsResult(NamedTuple):
    """Per-image results of ``lbfgs_attack`` (NumPy arrays).

    adversarial: ``[B, H, W, C]`` in [0, 1]; the best adversarial image found
      (the original image where none was found).
    success: ``[B]`` bool; the model labels ``adversarial`` as the target.
    distortion: ``[B]`` ``sqrt(sum (x' - x)^2 / n)``; ``nan`` where no success.
    c: ``[B]`` the penalty weight of the kept solution (``nan`` if none).
    """

    adversarial: np.ndarray
    success: np.ndarray
    distortion: np.ndarray
    c: np.ndarray


@functools.partial(jax.jit, static_argnums=0)
def _objective(logits_fn, params, x_adv, images, targets, c):
    def total(xa):
        r = (xa - images).reshape(xa.shape[0], -1)
        ce = per_example_loss(logits_fn, params, xa, targets)
        return jnp.sum(c * jnp.sum(r * r, axis=1) + ce)

    return jax.value_and_grad(total)(x_adv)


@functools.partial(jax.jit, static_argnums=0)
def _predict(logits_fn, params, x):
    return jnp.argmax(logits_fn(params, x), axis=-1)


def _solve(logits_fn, params, images, targets, c, *, max_iterations):
    """One L-BFGS-B solve over the batch, from ``x' = x``; returns ``x'``."""
    # imported here: scipy.optimize costs every entry point ~0.3 s of start-up
    # (fooljax.attacks is imported through runs.common -> train) for the few
    # that solve L-BFGS
    import scipy.optimize

    shape = images.shape
    images_dev = jnp.asarray(images)
    targets_dev = jnp.asarray(targets)
    c_dev = jnp.asarray(c, jnp.float32)

    def fun(flat):
        xa = jnp.asarray(flat.reshape(shape), jnp.float32)
        v, g = _objective(logits_fn, params, xa, images_dev, targets_dev, c_dev)
        return float(v), np.asarray(g, np.float64).ravel()

    res = scipy.optimize.minimize(
        fun,
        np.asarray(images, np.float64).ravel(),
        jac=True,
        method="L-BFGS-B",
        bounds=scipy.optimize.Bounds(0.0, 1.0),
        options={"maxiter": max_iterations, "maxcor": 10, "ftol": 1e-10},
    )
    # L-BFGS-B keeps iterates inside the bounds; the clip only undoes float64 ->
    # float32 rounding so the box holds exactly.
    return np.clip(res.x.reshape(shape).astype(np.float32), 0.0, 1.0)


def lbfgs_attack(
    logits_fn,
    params,
    images,
    targets,
    *,
    initial_c: float = 1.0,
    num_search_steps: int = 8,
    max_iterations: int = 100,
    num_retries: int = 1,
) -> LbfgsResult:
    """Szegedy's targeted box-constrained L-BFGS attack with a search over ``c``.

    Args:
      logits_fn: differentiable ``logits_fn(params, images) -> [B, K]``.
      images: ``[B, H, W, C]`` float32 in [0, 1].
      targets: ``[B]`` int target labels.
      initial_c: first penalty weight tried for every image.
      num_search_steps: L-BFGS-B solves per image (one per value of ``c``).
      max_iterations: L-BFGS-B iteration limit of each solve.
      num_retries: images with no success are searched again on their own, as
        a smaller L-BFGS-B problem (in one big problem the shared curvature
        pairs and iteration limit serve the well-conditioned images first).

    Returns:
      ``LbfgsResult`` (NumPy arrays).
    """
    initial_c = check_finite("initial_c", initial_c, 0.0, lo_open=True)
    num_search_steps = check_int("num_search_steps", num_search_steps, 1)
    max_iterations = check_int("max_iterations", max_iterations, 1)
    num_retries = check_int("num_retries", num_retries, 0)
    check_attack_inputs(logits_fn, params, images, targets, "target label")
    images = np.asarray(images, np.float32)
    targets = np.asarray(targets, np.int32)
    b = images.shape[0]
    n = images[0].size
    c = np.full(b, float(initial_c))
    lo = np.zeros(b)  # largest c known to succeed (0: none yet)
    hi = np.full(b, np.inf)  # smallest c known to fail
    best = images.copy()
    best_dist = np.full(b, np.inf)
    best_c = np.full(b, np.nan)
    for _ in range(num_search_steps):
        x_adv = _solve(
            logits_fn, params, images, targets, c, max_iterations=max_iterations
        )
        pred = np.asarray(_predict(logits_fn, params, jnp.asarray(x_adv)))
        ok = pred == targets
        dist = np.sqrt(((x_adv - images).reshape(b, -1) ** 2).sum(1) / n)
        better = ok & (dist < best_dist)
        best[better] = x_adv[better]
        best_dist[better] = dist[better]
        best_c[better] = c[better]
        lo = np.where(ok, np.maximum(lo, c), lo)
        hi = np.where(ok, hi, np.minimum(hi, c))
        c = np.where(
            np.isinf(hi),
            c * 10.0,
            np.where(lo > 0, np.sqrt(lo * hi), c / 10.0),
        )
    success = np.isfinite(best_dist)
    failed = np.flatnonzero(~success)
    if num_retries > 0 and failed.size and failed.size < b:
        again = lbfgs_attack(
            logits_fn,
            params,
            images[failed],
            targets[failed],
            initial_c=initial_c,
            num_search_steps=num_search_steps,
            max_iterations=max_iterations,
            num_retries=num_retries - 1,
        )
        ok = again.success
        best[failed[ok]] = again.adversarial[ok]
        best_dist[failed[ok]] = again.distortion[ok]
        best_c[failed[ok]] = again.c[ok]
        success = np.isfinite(best_dist)
    return LbfgsResult(
        adversarial=best,
        success=success,
        distortion=np.where(success, best_dist, np.nan),
        c=best_c,
    )


def random_targets(key: jax.Array, labels, num_classes: int) -> np.ndarray:
    """A uniformly random label different from each true label: ``[B]`` int32."""
    labels = jnp.asarray(labels, jnp.int32)
    shift = jax.random.randint(key, labels.shape, 1, num_classes)
    return np.asarray((labels + shift) % num_classes, np.int32)
