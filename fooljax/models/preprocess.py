"""Input preprocessing: every fooljax image is ``[B, H, W, C]`` float32 in [0, 1].

A model's ``logits_fn(params, images)`` takes images in [0, 1] and applies the
preprocessing its weights were trained with:

- ``identity``: the network sees [0, 1] (fooljax's own checkpoints).
- ``unit``: pixel/256 with pixel in 0..255, i.e. ``x * 255/256`` (Caffe's LeNet
  training scale, ``scale: 0.00390625``).
- ``caffe_deploy``: ``(pixel - mean) / 256`` with the Caffe mean image, as the
  fooling paper's deploy prototxt feeds its LeNet.
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
import numpy as np

from fooljax.errors import FooljaxError

PREPROCESS_NAMES = ("identity", "unit", "caffe_deploy")


def make_preprocess(
    name: str, *, mean: np.ndarray | None = None, image_shape=None
) -> Callable[[jnp.ndarray], jnp.ndarray]:
    """Returns ``f(images [B, H, W, C] in [0, 1]) -> network input``.

    ``mean``: ``[H, W, C]`` in pixel units 0..255 (required for ``caffe_deploy``).
    """
    if name == "identity":
        return lambda x: x
    if name == "unit":
        return lambda x: x * (255.0 / 256.0)
    if name == "caffe_deploy":
        if mean is None:
            raise FooljaxError("--preprocess=caffe_deploy needs --mean_file")
        mean = np.asarray(mean, np.float32)
        if image_shape is not None and tuple(mean.shape) != tuple(image_shape):
            raise FooljaxError(
                f"mean image has shape {mean.shape}, the model takes {tuple(image_shape)}"
            )
        mean_j = jnp.asarray(mean)
        return lambda x: (x * 255.0 - mean_j) * (1.0 / 256.0)
    raise FooljaxError(
        f"unknown preprocessing '{name}' (choose from {', '.join(PREPROCESS_NAMES)})"
    )
