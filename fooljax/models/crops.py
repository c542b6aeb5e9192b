"""Ten-crop averaging, as the fooling paper optionally scored ImageNet images
(Nguyen et al. 2015, Sec. 2.2: "the average over 10 crops")."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from fooljax.errors import FooljaxError


def ten_crops(images: jax.Array, crop_h: int, crop_w: int) -> jax.Array:
    """``[B, H, W, C]`` -> ``[10, B, crop_h, crop_w, C]``: the four corners and the
    centre, and their horizontal mirrors (Caffe's ``oversample``)."""
    _, h, w, _ = images.shape
    if crop_h > h or crop_w > w:
        raise FooljaxError(f"crop {crop_h}x{crop_w} is larger than images {h}x{w}")
    tops = (0, 0, h - crop_h, h - crop_h, (h - crop_h) // 2)
    lefts = (0, w - crop_w, 0, w - crop_w, (w - crop_w) // 2)
    crops = [
        images[:, t : t + crop_h, lf : lf + crop_w, :]
        for t, lf in zip(tops, lefts, strict=True)
    ]
    crops += [c[:, :, ::-1, :] for c in crops]
    return jnp.stack(crops)


def ten_crop_log_probs(
    logits_fn: Callable, crop_h: int, crop_w: int
) -> Callable[[object, jax.Array], jax.Array]:
    """``log_probs(params, images)``: log of the softmax averaged over ten crops."""

    def log_probs(params, images):
        crops = ten_crops(images, crop_h, crop_w)
        lp = jax.vmap(lambda c: jax.nn.log_softmax(logits_fn(params, c)))(crops)
        return jax.nn.logsumexp(lp, axis=0) - jnp.log(10.0)

    return log_probs
