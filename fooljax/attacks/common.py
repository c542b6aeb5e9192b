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

from fooljax.checks import (
    check_finite,
    check_finite_outputs,
    check_images,
    check_labels,
    check_probabilities,
    is_concrete,
)
from fooljax.errors import FooljaxError, InputError

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


def check_epsilon(epsilon, name: str = "epsilon"):
    """A concrete ``epsilon`` must be a finite float in [0, 1] (returned as a
    Python float); a traced one is returned unchecked."""
    return check_finite(
        name, epsilon, 0.0, 1.0, hint="pixel units of the [0, 1] image box"
    )


# module level: a jit built inside the check would compile again on every call
_apply_jit = jax.jit(lambda fn, params, x: fn(params, x), static_argnums=0)


def probe_model(
    fn, params, images, *, name: str = "the model", probabilities: bool = False
):
    """Runs ``fn(params, images[:1])`` once (cached compile) and checks it.

    Refuses non-finite outputs and, with ``probabilities``, outputs that are not
    probabilities. Returns the class count (the output width), or None when the
    inputs are traced by a caller's ``jit``/``vmap`` (nothing is checked then).
    """
    if not is_concrete((params, images)):
        return None
    try:
        out = _apply_jit(fn, params, jnp.asarray(images[:1], jnp.float32))
        if isinstance(out, jax.core.Tracer):
            return None  # inside a caller's jit with closed-over values
        out = np.asarray(out)
    except InputError:
        raise
    except Exception as e:
        raise InputError(
            f"cannot evaluate {name} on the first image ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''})"
        ) from None
    if out.ndim != 2 or out.shape[0] != 1:
        raise InputError(
            f"{name} must return [N, K] outputs, got shape {list(out.shape)} for "
            "one image"
        )
    check_finite_outputs(out, name)
    if probabilities:
        check_probabilities(out, "probs_fn")
    return int(out.shape[-1])


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


def check_attack_inputs(logits_fn, params, images, labels, what: str = "label"):
    """The boundary checks of the gradient attacks, all before any compile.

    ``images [B, H, W, C]`` finite in [0, 1]; ``labels [B]`` integers of the
    model's classes; the model probed once on the first image (finite outputs;
    its width is the class count). Values are checked only when concrete.
    Returns the class count, or None when it could not be known cheaply.
    """
    check_images(images)
    check_labels(labels, None, what, batch=np.shape(images)[0])
    num_classes = probe_model(logits_fn, params, images)
    if num_classes is None and is_concrete(labels):
        num_classes = num_classes_of(logits_fn, params, images)
    if num_classes is not None:
        check_labels(labels, num_classes, what)
    return num_classes
