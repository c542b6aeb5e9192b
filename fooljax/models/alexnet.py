"""Caffe's reference CaffeNet / AlexNet in Flax, loadable from ``.caffemodel``.

``alexnet``: BVLC reference CaffeNet exactly as in the fooling paper's deploy
prototxt (``caffenet-imagenet-fooling/imagenet_deploy_image_memory_data.prototxt``):

  conv1 96@11x11/4 -> ReLU -> max-pool 3/2 -> LRN(5, 1e-4, 0.75)
  conv2 256@5x5 pad 2 group 2 -> ReLU -> max-pool 3/2 -> LRN
  conv3 384@3x3 pad 1 -> ReLU -> conv4 384@3x3 pad 1 group 2 -> ReLU
  conv5 256@3x3 pad 1 group 2 -> ReLU -> max-pool 3/2
  fc6 4096 -> ReLU -> fc7 4096 -> ReLU -> fc8 1000   (dropout: identity at test)

``bvlc_alexnet``: the same layers with LRN *before* pooling (the original
AlexNet order of ``bvlc_alexnet.caffemodel``). Both files have the same
parameter shapes, so the order cannot be told from the weights: pick the
model that matches the file.

Input: fooljax images ``[B, H, W, 3]`` RGB in [0, 1]. Inside ``__call__``:
RGB -> BGR, x255, subtract the ILSVRC-2012 mean image (BGR, 256x256) and take
the centre 227x227 crop (offset 14, Caffe's test-time crop). A 256x256 input
is mean-subtracted then cropped (the paper's pipeline), a 227x227 input gets
the centre crop of the mean, and any other size is first resized (bilinear)
to 256x256. The mean is a parameter (``params["mean"]``, ``[256, 256, 3]``
BGR pixel units) so it travels with the weights.

Pooling uses Caffe's ceil-mode output size, ``ceil((H + 2p - k) / s) + 1``
(identical to floor for 227x227 inputs, where all sizes divide exactly).
LRN is Caffe's across-channel formula ``x / (1 + alpha/n * sum x^2)^beta``
over the ``n`` channels centred on each channel (zero padded).

Weights: ``load_file`` reads a ``.caffemodel`` (V1 or V2) with
``fooljax.io.caffe``; fc6's rows are permuted from Caffe's C,H,W flatten order
(256, 6, 6) to ours. The mean comes from ``ilsvrc_2012_mean.npy`` (or
``imagenet_mean.binaryproto``) next to the weights file, else from
``$FOOLJAX_DATA/caffenet-imagenet-fooling/ilsvrc_2012_mean.npy``, else the
per-channel mean (B 104.007, G 116.669, R 122.679) with a warning.
"""

from __future__ import annotations

import logging
import math
import os

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from fooljax.data.imagenet import try_imagenet_class_names
from fooljax.errors import FooljaxError, WeightsError
from fooljax.io.caffe import (
    caffe_to_flax,
    load_binaryproto,
    load_caffemodel,
    looks_like_caffemodel,
)
from fooljax.models.mobilenet import NumpyInitMixin, resize_bilinear
from fooljax.models.registry import register_family

CROP = 227
MEAN_SIZE = 256
CROP_OFFSET = (MEAN_SIZE - CROP) // 2  # 14, Caffe's (256 - 227) / 2
CAFFE_BGR_MEAN = (104.00698793, 116.66876762, 122.67891434)
MEAN_FILE_NAMES = ("ilsvrc_2012_mean.npy", "imagenet_mean.binaryproto")
_LOG = logging.getLogger("fooljax")


def lrn_across_channels(
    x: jnp.ndarray,
    size: int = 5,
    alpha: float = 1e-4,
    beta: float = 0.75,
    k: float = 1.0,
) -> jnp.ndarray:
    """Caffe ``LRN`` (ACROSS_CHANNELS) on NHWC: ``x / (k + alpha/size * S)^beta``.

    ``S`` sums ``x^2`` over channels ``c - (size-1)/2 .. c + size - 1 - (size-1)/2``,
    zero padded at the ends.
    """
    c = x.shape[-1]
    pre = (size - 1) // 2
    sq = jnp.pad(x * x, [(0, 0)] * (x.ndim - 1) + [(pre, size - 1 - pre)])
    s = sq[..., 0:c]
    for i in range(1, size):
        s = s + sq[..., i : i + c]
    return x * jnp.power(k + (alpha / size) * s, -beta)


def caffe_pool_out(h: int, k: int, s: int, p: int = 0) -> int:
    """Caffe's pooled size: ``ceil((h + 2p - k) / s) + 1``, clipped to start in-image."""
    out = int(math.ceil((h + 2 * p - k) / s)) + 1
    if p and (out - 1) * s >= h + p:
        out -= 1
    return out


def caffe_max_pool(x: jnp.ndarray, k: int = 3, s: int = 2, p: int = 0) -> jnp.ndarray:
    """Max-pool NHWC with Caffe's ceil-mode output size (windows may overhang)."""
    pads = []
    for dim in (x.shape[1], x.shape[2]):
        out = caffe_pool_out(dim, k, s, p)
        pads.append((p, max((out - 1) * s + k - dim - p, 0)))
    return nn.max_pool(x, (k, k), strides=(s, s), padding=pads)


def caffe_preprocess(x: jnp.ndarray, mean_bgr: jnp.ndarray) -> jnp.ndarray:
    """[0, 1] RGB ``[B, H, W, 3]`` -> mean-subtracted BGR ``[B, 227, 227, 3]``."""
    if x.ndim != 4 or x.shape[-1] != 3:
        raise FooljaxError(
            f"AlexNet takes RGB images [B, H, W, 3]; got shape {tuple(x.shape)}"
        )
    x = x.astype(jnp.float32)[..., ::-1] * 255.0
    o = CROP_OFFSET
    if x.shape[1:3] == (CROP, CROP):
        return x - mean_bgr[o : o + CROP, o : o + CROP]
    if x.shape[1:3] != (MEAN_SIZE, MEAN_SIZE):
        if x.shape[1] < 8 or x.shape[2] < 8:
            raise FooljaxError(f"images of {x.shape[1]}x{x.shape[2]} are too small")
        x = resize_bilinear(x, MEAN_SIZE, MEAN_SIZE)
    return (x - mean_bgr)[:, o : o + CROP, o : o + CROP]


def _default_mean(shape):
    return np.broadcast_to(np.asarray(CAFFE_BGR_MEAN, np.float32), shape)


class AlexNet(NumpyInitMixin, nn.Module):
    """CaffeNet (``lrn_before_pool=False``) or BVLC AlexNet; 1000 logits."""

    num_classes: int = 1000
    lrn_before_pool: bool = False
    resizes_input = True  # takes any H, W (see experiments.evaluate)
    _numpy_defaults = {"mean": _default_mean}

    @nn.compact
    def __call__(self, x):
        mean = self.param(
            "mean",
            lambda _, shape: jnp.asarray(_default_mean(shape)),
            (MEAN_SIZE, MEAN_SIZE, 3),
        )
        x = caffe_preprocess(x, mean)

        def pool_norm(h):
            if self.lrn_before_pool:
                return caffe_max_pool(lrn_across_channels(h))
            return lrn_across_channels(caffe_max_pool(h))

        def conv(features, k, stride, pad, groups, name):
            return nn.Conv(
                features,
                (k, k),
                (stride, stride),
                [(pad, pad), (pad, pad)],
                feature_group_count=groups,
                name=name,
            )

        x = nn.relu(conv(96, 11, 4, 0, 1, "conv1")(x))
        x = pool_norm(x)
        x = nn.relu(conv(256, 5, 1, 2, 2, "conv2")(x))
        x = pool_norm(x)
        x = nn.relu(conv(384, 3, 1, 1, 1, "conv3")(x))
        x = nn.relu(conv(384, 3, 1, 1, 2, "conv4")(x))
        x = nn.relu(conv(256, 3, 1, 1, 2, "conv5")(x))
        x = caffe_max_pool(x)
        x = x.reshape((x.shape[0], -1))  # NHWC order; fc6 rows permuted at import
        x = nn.relu(nn.Dense(4096, name="fc6")(x))
        x = nn.relu(nn.Dense(4096, name="fc7")(x))
        return nn.Dense(self.num_classes, name="fc8")(x)


def load_mean_file(path: str) -> np.ndarray:
    """A Caffe mean (``.npy`` (3, H, W) or ``.binaryproto``) as ``[H, W, 3]`` BGR."""
    if path.endswith(".npy"):
        try:
            m = np.load(path)
        except (OSError, ValueError) as e:
            raise WeightsError(f"cannot read mean file {path}: {e}") from None
        if m.ndim == 4 and m.shape[0] == 1:
            m = m[0]
        if m.ndim != 3 or m.shape[0] != 3:
            raise WeightsError(f"{path}: expected a (3, H, W) BGR mean, got {m.shape}")
        m = m.transpose(1, 2, 0)
    else:
        m = load_binaryproto(path)
    if m.shape != (MEAN_SIZE, MEAN_SIZE, 3):
        raise WeightsError(
            f"{path}: mean image is {m.shape}, AlexNet needs (256, 256, 3) (BGR)"
        )
    return np.ascontiguousarray(m, np.float32)


def find_mean_file(weights_path: str) -> str | None:
    here = os.path.dirname(os.path.abspath(weights_path))
    cands = [os.path.join(here, n) for n in MEAN_FILE_NAMES]
    if os.environ.get("FOOLJAX_DATA"):
        cands.append(
            os.path.join(
                os.environ["FOOLJAX_DATA"],
                "caffenet-imagenet-fooling",
                "ilsvrc_2012_mean.npy",
            )
        )
    return next((c for c in cands if os.path.isfile(c)), None)


def alexnet_load_file(path: str, template) -> dict:
    """``.caffemodel`` (+ mean image) -> AlexNet params; ``WeightsError`` if unfit."""
    if not looks_like_caffemodel(path):
        raise WeightsError(f"{path}: not a Caffe caffemodel (unrecognised content)")
    layers = load_caffemodel(path)
    tparams = template["params"]
    weights_only = {"params": {k: v for k, v in tparams.items() if k != "mean"}}
    params = caffe_to_flax(
        layers, weights_only, flatten_chw={"fc6": (256, 6, 6)}, source=path
    )
    mean_path = find_mean_file(path)
    if mean_path is None:
        _LOG.warning(
            "no ILSVRC mean image next to %s or in $FOOLJAX_DATA: using the "
            "per-channel BGR mean %s",
            path,
            CAFFE_BGR_MEAN,
        )
        mean = _default_mean(tuple(tparams["mean"].shape)).copy()
    else:
        mean = load_mean_file(mean_path)
    params["params"]["mean"] = mean
    return params


register_family(
    {
        "alexnet": lambda: AlexNet(lrn_before_pool=False),
        "bvlc_alexnet": lambda: AlexNet(lrn_before_pool=True),
    },
    input_shape=(CROP, CROP, 3),
    num_classes=1000,
    class_names=try_imagenet_class_names(),
    load_file=alexnet_load_file,
)
