"""Shared pieces of the gradient attacks: losses, input gradients, projections and
the input checks every attack runs on the host before it traces anything.

Images are ``[B, H, W, C]`` float32 in [0, 1]; labels ``[B]`` int32. The model
is any pure ``logits_fn(params, images) -> [B, K]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from fooljax.errors import FooljaxError

LogitsFn = Callable[[Any, jnp.ndarray], jnp.ndarray]

GRADIENT_FREE_HINT = (
    "the gradient attacks need a differentiable JAX logits_fn; for black-box or "
    "non-differentiable models use the gradient-free attacks "
    "(fooljax.attacks.one_pixel, the MAP-Elites evolution in fooljax.evolution)"
)


def per_example_loss(logits_fn: LogitsFn, params, images, labels) -> jnp.ndarray:
    """Softmax cross-entropy per image: ``[B]``."""
    logits = logits_fn(params, images)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def input_gradient(logits_fn: LogitsFn, params, images, labels) -> jnp.ndarray:
    """``d CE(f(x_i), y_i) / d x_i`` for every image: ``[B, H, W, C]``.

    Written for one image and ``vmap``-ed over the batch; for models without
    cross-example coupling (no batch norm in training mode) this equals the
    gradient of the summed batch loss (tested).
    """

    def one(x, y):
        return per_example_loss(logits_fn, params, x[None], y[None])[0]

    return jax.vmap(jax.grad(one))(images, labels)


def project_linf_box(x, x_orig, *, epsilon):
    """Projection onto ``{x : |x - x_orig|_inf <= epsilon} ∩ [0, 1]^n``.

    Both sets are boxes, so their intersection is a box and the projection is
    one clip (exact).
    """
    lo = jnp.maximum(x_orig - epsilon, 0.0)
    hi = jnp.minimum(x_orig + epsilon, 1.0)
    return jnp.clip(x, lo, hi)


def sign_step(*, step_size) -> optax.GradientTransformation:
    """FGSM's step as an optax chain: ``step_size * sign(g)``."""
    return optax.chain(optax.scale_by_sign(), optax.scale(step_size))


# ----------------------------------------------------------------- input checks


def is_concrete(x) -> bool:
    """False for values traced by a caller's ``jit``/``vmap``/``grad`` (their
    values are unknown here, so the host-side checks are skipped)."""
    return not any(
        isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(x)
    )


def check_epsilon(epsilon, name: str = "epsilon"):
    """A concrete ``epsilon`` must be a float in [0, 1] (returned as a Python
    float); a traced one is returned unchecked."""
    if not is_concrete(epsilon):
        return epsilon
    eps = float(epsilon)
    if not np.isfinite(eps) or eps < 0.0 or eps > 1.0:
        raise FooljaxError(
            f"{name} must be in [0, 1] (pixel units of the [0, 1] image box), "
            f"got {epsilon}"
        )
    return eps


def check_images(images) -> None:
    """Refuses images outside the valid pixel box [0, 1] (or not [B, H, W, C])."""
    if not is_concrete(images):
        return  # inside a caller's jit/vmap: values are not known here
    a = np.asarray(images)
    if a.ndim != 4:
        raise FooljaxError(f"images must be [B, H, W, C], got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.floating):
        raise FooljaxError(
            f"images must be float in [0, 1], got dtype {a.dtype} (divide uint8 "
            "pixels by 255)"
        )
    if a.size and (not np.all(np.isfinite(a)) or a.min() < 0.0 or a.max() > 1.0):
        raise FooljaxError(
            f"images must lie in the pixel box [0, 1]; got values in "
            f"[{np.nanmin(a):.4g}, {np.nanmax(a):.4g}]"
        )


def check_labels(labels, num_classes: int, what: str = "label") -> None:
    """Refuses concrete labels outside ``0..num_classes - 1`` (or not integer)."""
    if not is_concrete(labels):
        return
    a = np.asarray(labels)
    if not np.issubdtype(a.dtype, np.integer):
        raise FooljaxError(f"{what}s must be integers, got dtype {a.dtype}")
    bad = a[(a < 0) | (a >= num_classes)]
    if bad.size:
        raise FooljaxError(
            f"unknown {what} {int(bad[0])}: the model has classes 0..{num_classes - 1}"
        )


_NUM_CLASSES_CACHE: dict = {}


def num_classes_of(logits_fn: LogitsFn, params, images) -> int:
    """Number of model outputs, from shapes only (``eval_shape``, cached per
    model function and parameter/image shapes so repeated attacks do not retrace).
    """
    leaves, treedef = jax.tree_util.tree_flatten(params)
    key = (
        logits_fn,
        treedef,
        tuple((np.shape(v), str(getattr(v, "dtype", type(v)))) for v in leaves),
        tuple(np.shape(images)[1:]),
    )
    if key not in _NUM_CLASSES_CACHE:
        try:
            out = jax.eval_shape(logits_fn, params, images[:1])
        except Exception as e:
            raise FooljaxError(
                f"cannot trace the model ({e}); {GRADIENT_FREE_HINT}"
            ) from None
        _NUM_CLASSES_CACHE[key] = int(out.shape[-1])
    return _NUM_CLASSES_CACHE[key]


# module level: a jit built inside the check would compile again on every call
_input_gradient_jit = jax.jit(input_gradient, static_argnums=0)


def check_differentiable(logits_fn: LogitsFn, params, images, labels=None) -> None:
    """Raises ``FooljaxError`` if ``logits_fn`` has no usable input gradient.

    Catches models JAX cannot differentiate (host callbacks, NumPy inside) and
    models whose input gradient is zero or non-finite on every probe image
    (rounding, argmax, quantisation).
    """
    probe = jnp.asarray(images[:4])
    if labels is None:
        labels = jnp.zeros(probe.shape[0], jnp.int32)
    labels = jnp.asarray(labels[: probe.shape[0]])
    try:
        g = np.asarray(_input_gradient_jit(logits_fn, params, probe, labels))
    except Exception as e:
        raise FooljaxError(
            f"the model is not differentiable ({type(e).__name__}); "
            f"{GRADIENT_FREE_HINT}"
        ) from None
    if not np.all(np.isfinite(g)) or not np.any(g):
        raise FooljaxError(
            "the model's input gradient is zero or undefined everywhere (not "
            f"differentiable); {GRADIENT_FREE_HINT}"
        )
