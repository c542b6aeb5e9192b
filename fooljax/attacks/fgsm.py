"""Fast gradient sign method and its iterated, projected form.

Goodfellow, Shlens, Szegedy, "Explaining and Harnessing Adversarial Examples"
(ICLR 2015), Sec. 4: ``x' = clip(x + eps * sign(grad_x J(theta, x, y)))``.
Kurakin et al. (2016, BIM) and Madry et al. (2018, PGD): repeat a smaller sign
step and project back onto the L-inf ball of radius ``eps`` around ``x``
intersected with the pixel box, optionally from a uniform random start.

The step is an optax transformation (``chain(scale_by_sign(), scale(step))``,
see ``common.sign_step``) followed by an exact projection, so every returned
image satisfies ``0 <= x' <= 1`` and ``|x' - x|_inf <= eps``.

``epsilon`` and ``step_size`` may be traced: ``jax.vmap(lambda e: fgsm(f, p,
x, y, epsilon=e))(eps_curve)`` computes a whole epsilon curve in one call, and
``fgsm``/``pgd`` run inside a caller's ``jit`` (the host-side range checks run
only on concrete values).

Example::

    from fooljax import models
    from fooljax.attacks import fgsm
    clf = models.load_classifier("lenet")
    x_adv = fgsm(clf.logits_fn, clf.params, images, labels, epsilon=0.25)
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from fooljax.attacks.common import (
    check_attack_inputs,
    check_epsilon,
    input_gradient,
    project_linf_box,
    sign_step,
)
from fooljax.checks import (
    check_finite,
    check_input_shape,
    check_int,
    check_not_consumed,
)
from fooljax.errors import FooljaxError


def _check_inputs(logits_fn, params, images, labels, targeted, input_shape):
    if input_shape is not None:
        check_input_shape(np.shape(images), input_shape)
    what = "target label" if targeted else "label"
    check_attack_inputs(logits_fn, params, images, labels, what)


@functools.partial(jax.jit, static_argnames=("logits_fn", "targeted"))
def _fgsm(logits_fn, params, images, labels, epsilon, *, targeted):
    grad = input_gradient(logits_fn, params, images, labels)
    # A targeted attack descends the loss of the target label.
    grad = -grad if targeted else grad
    tx = sign_step(step_size=epsilon)
    updates, _ = tx.update(grad, tx.init(images))
    return project_linf_box(images + updates, images, epsilon=epsilon)


def fgsm(
    logits_fn,
    params,
    images,
    labels,
    *,
    epsilon: float,
    targeted: bool = False,
    input_shape=None,
):
    """One-step FGSM.

    Args:
      logits_fn: ``logits_fn(params, images) -> [B, K]`` (differentiable).
      images: ``[B, H, W, C]`` float32 in [0, 1].
      labels: ``[B]`` int; the true labels (untargeted: raise their loss) or the
        target labels (``targeted=True``: lower their loss).
      epsilon: L-inf size in pixel units of [0, 1]; a float or a traced
        scalar (``vmap`` over an epsilon curve).
      input_shape: the model's ``[H, W, C]``, to refuse other image shapes.

    Returns:
      ``[B, H, W, C]`` adversarial images in ``[0, 1]`` with
      ``|x' - x|_inf <= epsilon``.
    """
    epsilon = check_epsilon(epsilon)
    _check_inputs(logits_fn, params, images, labels, targeted, input_shape)
    return _fgsm(
        logits_fn,
        params,
        jnp.asarray(images, jnp.float32),
        jnp.asarray(labels, jnp.int32),
        jnp.asarray(epsilon, jnp.float32),
        targeted=targeted,
    )


@functools.partial(
    jax.jit, static_argnames=("logits_fn", "targeted"), donate_argnums=(2,)
)
def _pgd_step(logits_fn, params, x, images, labels, epsilon, step_size, *, targeted):
    grad = input_gradient(logits_fn, params, x, labels)
    grad = -grad if targeted else grad
    tx = sign_step(step_size=step_size)  # stateless: init/update carry nothing
    updates, _ = tx.update(grad, tx.init(x))
    return project_linf_box(x + updates, images, epsilon=epsilon)


def pgd_step(logits_fn, params, x, images, labels, epsilon, step_size, *, targeted):
    """One projected sign step from ``x`` (donated) in the ball around ``images``.

    ``x, images: [B, H, W, C]``; returns the next ``x`` (same shape, in the box
    and the ball). The host drives the steps: on XLA:CPU the same backward pass
    inside ``lax.fori_loop`` ran about 3x slower (BUILD_NOTES.md). An ``x``
    whose buffer an earlier call donated is refused (``ConsumedStateError``).
    """
    check_not_consumed(x, "x (pgd_step's iterate)")
    return _pgd_step(
        logits_fn, params, x, images, labels, epsilon, step_size, targeted=targeted
    )


@functools.partial(jax.jit, static_argnames=("random_start",))
def _pgd_start(key, images, epsilon, *, random_start):
    if not random_start:
        return images + 0.0  # a fresh buffer: pgd_step donates its ``x``
    noise = jax.random.uniform(key, images.shape, images.dtype, -1.0, 1.0)
    return project_linf_box(images + epsilon * noise, images, epsilon=epsilon)


def pgd(
    logits_fn,
    params,
    images,
    labels,
    *,
    epsilon: float,
    step_size: float | None = None,
    num_steps: int = 10,
    targeted: bool = False,
    random_start: bool = False,
    key: jax.Array | None = None,
    input_shape=None,
):
    """Iterated FGSM (BIM; PGD with ``random_start=True``) in the L-inf ball.

    Args:
      images: ``[B, H, W, C]`` float32 in [0, 1]; labels ``[B]`` int (true or
        target labels, as in ``fgsm``).
      epsilon: radius of the L-inf ball (pixel units of [0, 1]); may be traced.
      step_size: per-step sign step; default ``2.5 * epsilon / num_steps``;
        may be traced.
      num_steps: number of projected sign steps (``pgd_step``, host loop).
      random_start: start from a uniform point of the ball (needs ``key``).
      input_shape: the model's ``[H, W, C]``, to refuse other image shapes.

    Returns:
      ``[B, H, W, C]`` in ``[0, 1]`` with ``|x' - x|_inf <= epsilon``.
    """
    epsilon = check_epsilon(epsilon)
    if step_size is None:
        step_size = 2.5 * epsilon / max(num_steps, 1)
    step_size = check_finite("step_size", step_size, 0.0, 1.0)
    num_steps = check_int("num_steps", num_steps, 0)
    _check_inputs(logits_fn, params, images, labels, targeted, input_shape)
    if random_start and key is None:
        raise FooljaxError("pgd(random_start=True) needs a PRNG key")
    if key is None:
        key = jax.random.key(0)  # unused
    images = jnp.asarray(images, jnp.float32)
    labels = jnp.asarray(labels, jnp.int32)
    epsilon = jnp.asarray(epsilon, jnp.float32)
    step_size = jnp.asarray(step_size, jnp.float32)
    x = _pgd_start(key, images, epsilon, random_start=bool(random_start))
    for _ in range(int(num_steps)):
        x = _pgd_step(
            logits_fn,
            params,
            x,
            images,
            labels,
            epsilon,
            step_size,
            targeted=targeted,
        )
    return x
