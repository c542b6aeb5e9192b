"""What the peer scripts share: the data paths, the plain Caffe LeNet forward
the peers score with, and the one JSON result line each prints."""

from __future__ import annotations

import json
import os

import jax
import numpy as np

DATA = os.environ.get("FOOLJAX_DATA", "../shared/data")
CAFFE = os.path.join(DATA, "lenet-mnist-caffe-fooling")
NUM_CLASSES = 10
DN = ("NHWC", "HWIO", "NHWC")


def plain_lenet(params, x):
    """Caffe LeNet on network input ``x [B, 28, 28, 1]``: conv, pool, conv,
    pool, ip1 + ReLU, ip2 (lax convolutions, NHWC; pools as reshape + max)."""
    p = params["params"]

    def conv(x, layer):
        y = jax.lax.conv_general_dilated(
            x, p[layer]["kernel"], (1, 1), "VALID", dimension_numbers=DN
        )
        return y + p[layer]["bias"]

    def pool(x):
        b, h, w, c = x.shape
        return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))

    x = pool(conv(pool(conv(x, "conv1")), "conv2"))
    x = x.reshape(x.shape[0], -1) @ p["ip1"]["kernel"] + p["ip1"]["bias"]
    x = jax.nn.relu(x)
    return x @ p["ip2"]["kernel"] + p["ip2"]["bias"]


def print_result(peer: str, generations: int, seconds: float, conf, **extra):
    """The result line: generations/s and the elites' confidences ``conf``."""
    conf = np.asarray(conf)
    row = {
        "peer": peer,
        "generations": generations,
        "seconds": seconds,
        "generations_per_second": generations / seconds,
        "min_confidence": float(conf.min()),
        "median_confidence": float(np.median(conf)),
        "backend": jax.default_backend(),
        **extra,
    }
    print(json.dumps(row, sort_keys=True), flush=True)
