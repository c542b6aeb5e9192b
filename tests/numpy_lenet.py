"""An independent NumPy forward pass of Caffe's LeNet on Caffe-layout weights."""

import numpy as np


def conv_valid_nchw(x, w, b):
    """x: [B, C, H, W]; w: [O, C, kh, kw] (Caffe); cross-correlation, stride 1."""
    bsz, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    ho, wo = h - kh + 1, wd - kw + 1
    out = np.zeros((bsz, o, ho, wo), np.float64)
    for i in range(kh):
        for j in range(kw):
            patch = x[:, :, i : i + ho, j : j + wo]  # [B, C, ho, wo]
            out += np.einsum("bchw,oc->bohw", patch, w[:, :, i, j])
    return out + b[None, :, None, None]


def maxpool2_nchw(x):
    bsz, c, h, w = x.shape
    return x.reshape(bsz, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def lenet_forward(x_nchw, weights):
    """Caffe LeNet logits; ``weights = {name: (W, b)}`` in Caffe layout."""
    x = conv_valid_nchw(x_nchw, *weights["conv1"])
    x = maxpool2_nchw(x)
    x = conv_valid_nchw(x, *weights["conv2"])
    x = maxpool2_nchw(x)
    x = x.reshape(x.shape[0], -1)  # Caffe's C,H,W flatten
    w, b = weights["ip1"]
    x = np.maximum(x @ w.T + b, 0)
    w, b = weights["ip2"]
    return x @ w.T + b
