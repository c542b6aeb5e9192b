"""Fooling images by gradient ascent in pixel space, one class per image.

Nguyen, Yosinski, Clune (CVPR 2015), Sec. 3 ("images that fool DNNs can also be
produced by gradient ascent", after Simonyan et al. 2013 / Erhan et al. 2009):
starting from noise or a blank image, ascend the softmax probability of one
class with an L2 decay on the pixels and clipping to the valid range.

We ascend ``log p_c(x) - decay/2 * |x|^2`` (the log keeps the gradient alive
once ``p_c`` saturates near 1, where the gradient of ``p_c`` itself vanishes).
The step is an optax transformation (``optax.scale(step_size)``, ascent sign)
followed by the exact projection onto ``[0, 1]``. Every class is optimised at
once: image ``k`` of the batch climbs class ``classes[k]``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

from fooljax.attacks.common import check_attack_inputs
from fooljax.checks import check_finite, check_int
from fooljax.errors import FooljaxError


def class_log_prob(logits_fn, params, images, classes):
    """``log softmax(f(x_i))[classes_i]``: ``[B]``."""
    logp = jax.nn.log_softmax(logits_fn(params, images), axis=-1)
    return jnp.take_along_axis(logp, classes[:, None], axis=1)[:, 0]


@functools.partial(jax.jit, static_argnames=("logits_fn", "num_steps"))
def _ascend(logits_fn, params, images, classes, step_size, l2_decay, *, num_steps):
    tx = optax.scale(step_size)

    def objective_one(x, k):
        lp = class_log_prob(logits_fn, params, x[None], k[None])[0]
        return lp - 0.5 * l2_decay * jnp.sum(x * x)

    grad_fn = jax.vmap(jax.grad(objective_one))

    def body(_, carry):
        x, state = carry
        updates, state = tx.update(grad_fn(x, classes), state)
        return jnp.clip(x + updates, 0.0, 1.0), state

    x, _ = jax.lax.fori_loop(0, num_steps, body, (images, tx.init(images)))
    return x


def gradient_ascent(
    logits_fn,
    params,
    init_images,
    classes,
    *,
    step_size: float = 1.0,
    num_steps: int = 1000,
    l2_decay: float = 1e-4,
):
    """Ascends ``log p_{classes[i]}`` from ``init_images[i]``.

    Args:
      logits_fn: differentiable ``logits_fn(params, images) -> [B, K]``.
      init_images: ``[B, H, W, C]`` float32 in [0, 1] (noise or blank).
      classes: ``[B]`` int, the class each image climbs.
      step_size: gradient step (pixel units per unit gradient); may be traced,
        as may ``l2_decay`` (then unchecked).
      num_steps: ascent steps (``lax.fori_loop``).
      l2_decay: weight of the L2 decay ``decay/2 * |x|^2``.

    Returns:
      ``(images [B, H, W, C] in [0, 1], confidence [B])``: the final images and
      the softmax probability of each image's class.
    """
    step_size = check_finite("step_size", step_size, 0.0, lo_open=True)
    l2_decay = check_finite("l2_decay", l2_decay, 0.0)
    num_steps = check_int("num_steps", num_steps, 0)
    check_attack_inputs(logits_fn, params, init_images, classes, "class")
    classes = jnp.asarray(classes, jnp.int32)
    x = _ascend(
        logits_fn,
        params,
        jnp.asarray(init_images, jnp.float32),
        classes,
        jnp.asarray(step_size, jnp.float32),
        jnp.asarray(l2_decay, jnp.float32),
        num_steps=int(num_steps),
    )
    conf = jnp.exp(class_log_prob(logits_fn, params, x, classes))
    return x, conf


def initial_images(key: jax.Array, num_images: int, shape, *, kind: str = "noise"):
    """``[num_images, *shape]`` start images: uniform ``noise`` or ``blank`` (0.5)."""
    if kind == "noise":
        return jax.random.uniform(key, (num_images, *shape), jnp.float32)
    if kind == "blank":
        return jnp.full((num_images, *shape), 0.5, jnp.float32)
    raise FooljaxError(f"unknown init '{kind}' (noise or blank)")
