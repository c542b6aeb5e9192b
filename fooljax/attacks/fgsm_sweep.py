"""Logits along the FGSM direction as epsilon sweeps (Goodfellow et al. 2015,
Fig. 4).

The paper's argument for linearity: move an image along the fixed sign of its
loss gradient, ``x(eps) = clip(x + eps * sign(grad_x J(theta, x, y)), 0, 1)``,
for ``eps`` from ``-eps_max`` to ``+eps_max``, and watch the pre-softmax
outputs of all classes. For a maxout or ReLU network they are piecewise linear
in ``eps`` (the clip adds kinks of its own where pixels saturate), and wrong
classes win over a wide range of ``eps``.

``logit_sweep`` computes the gradient once and evaluates the model at every
``eps`` in one ``vmap`` over ``eps`` (no Python loop over epsilons), for any
pure ``logits_fn(params, images)``.

Example::

    from fooljax import models
    from fooljax.attacks.fgsm_sweep import logit_sweep
    clf = models.load_classifier("lenet")
    eps = jnp.linspace(-0.25, 0.25, 101)
    logits = logit_sweep(clf.logits_fn, clf.params, images, labels, eps)
    # logits: [101, B, 10]
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from fooljax.attacks.common import check_attack_inputs, input_gradient
from fooljax.checks import is_concrete
from fooljax.errors import InputError


def fgsm_direction(logits_fn, params, images, labels) -> jnp.ndarray:
    """``sign(d CE(f(x_i), y_i) / d x_i)``: ``[B, H, W, C]`` in {-1, 0, 1}; pure."""
    return jnp.sign(input_gradient(logits_fn, params, images, labels))


def logits_along(logits_fn, params, images, direction, epsilons) -> jnp.ndarray:
    """``logits_fn(params, clip(images + eps * direction, 0, 1))`` for every
    ``eps`` of ``epsilons [E]`` (one ``vmap``): ``[E, B, K]``; pure."""

    def at(eps):
        return logits_fn(params, jnp.clip(images + eps * direction, 0.0, 1.0))

    return jax.vmap(at)(epsilons)


@functools.partial(jax.jit, static_argnums=0)
def _logit_sweep(logits_fn, params, images, labels, epsilons):
    direction = fgsm_direction(logits_fn, params, images, labels)
    return logits_along(logits_fn, params, images, direction, epsilons)


def check_epsilons(epsilons) -> None:
    """Concrete ``epsilons`` must be a non-empty 1-D list of finite numbers in
    [-1, 1] (pixel units of the [0, 1] box; negative = against the gradient)."""
    if not is_concrete(epsilons):
        return
    e = np.asarray(epsilons, np.float64)
    if e.ndim != 1 or e.size == 0:
        raise InputError(f"epsilons must be a non-empty 1-D list, got shape {e.shape}")
    bad = ~np.isfinite(e) | (np.abs(e) > 1)
    if bad.any():
        raise InputError(
            f"epsilons must be finite numbers in [-1, 1] (pixel units of the "
            f"[0, 1] image box), got {e[bad][0]}"
        )


def logit_sweep(logits_fn, params, images, labels, epsilons) -> jnp.ndarray:
    """Logits of ``images`` moved along their FGSM direction, at every epsilon.

    Args:
      logits_fn: ``logits_fn(params, images) -> [B, K]`` (differentiable).
      images: ``[B, H, W, C]`` float32 in [0, 1].
      labels: ``[B]`` int, the true labels (the direction raises their loss).
      epsilons: ``[E]`` in [-1, 1]; negative values move against the gradient.

    Returns:
      ``[E, B, K]`` float32: the logits at ``clip(x + eps * sign(g), 0, 1)``.
      Same-shaped calls reuse one compiled program.
    """
    check_epsilons(epsilons)
    check_attack_inputs(logits_fn, params, images, labels)
    return _logit_sweep(
        logits_fn,
        params,
        jnp.asarray(images, jnp.float32),
        jnp.asarray(labels, jnp.int32),
        jnp.asarray(epsilons, jnp.float32),
    )
