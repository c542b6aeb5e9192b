"""A stride-1 convolution that is fast on XLA:CPU for few input channels.

XLA:CPU runs a convolution with 1-4 input channels (an RGB or grey first layer)
far below its matmul speed: on the project's 2-core CPU the 5x5 RGB -> 6
first layer of ``cifar_lenet`` ran at 23 K images/s, which made it 90 % of the
network's time. ``row_conv`` computes the same convolution as one matmul: each
group of ``group`` adjacent output pixels of a row is the product of its input
window (``kh x (group + kw - 1) x C`` values) with a banded (Toeplitz) weight
matrix ``[kh (group + kw - 1) C, group O]`` built from the kernel. It does
``(group + kw - 1) / group`` times the multiply-adds of the convolution, but as
a well-shaped matmul: the same layer ran at 93 K images/s with ``group = 4``
(``scripts/bench_forward.py``, BUILD_NOTES.md). With 16 or more input channels
XLA's own convolution is faster, so ``Conv`` uses the row form only on CPU and
only for ``C <= ROW_CONV_MAX_CHANNELS``; on GPU/TPU it is always
``lax.conv_general_dilated``. Results agree with the plain convolution to
float32 rounding (different summation order).

``Conv`` has ``nn.Conv``'s parameters (``kernel [kh, kw, C, O]``, ``bias [O]``),
so weights import unchanged.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

ROW_CONV_MAX_CHANNELS = 4
ROW_CONV_GROUP = 4


def toeplitz_weight(kernel: jax.Array, group: int) -> jax.Array:
    """``kernel [kh, kw, C, O]`` -> ``[kh (group + kw - 1) C, group O]``: column
    block ``g`` holds the kernel shifted right by ``g`` pixels."""
    kh, kw, c, o = kernel.shape
    cols = [
        jnp.pad(kernel, ((0, 0), (g, group - 1 - g), (0, 0), (0, 0)))
        for g in range(group)
    ]
    return jnp.stack(cols, 3).reshape(kh * (group + kw - 1) * c, group * o)


def row_conv(
    x: jax.Array, kernel: jax.Array, group: int = ROW_CONV_GROUP, padding="VALID"
):
    """``x [B, H, W, C]``, ``kernel [kh, kw, C, O]`` -> stride-1 convolution
    ``[B, Ho, Wo, O]`` (``padding`` 'VALID' or 'SAME', XLA's rule)."""
    kh, kw, c, o = kernel.shape
    if x.shape[-1] != c:
        raise ValueError(f"input has {x.shape[-1]} channels, kernel {c}")
    if padding == "SAME":
        x = jnp.pad(
            x, ((0, 0), ((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2), (0, 0))
        )
    elif padding != "VALID":
        raise ValueError(f"padding must be 'VALID' or 'SAME', got {padding!r}")
    b, h, w, _ = x.shape
    ho, wo = h - kh + 1, w - kw + 1
    groups = -(-wo // group)
    need = groups * group + kw - 1
    if need > w:
        x = jnp.pad(x, ((0, 0), (0, 0), (0, need - w), (0, 0)))
    rows = jnp.stack([x[:, dy : dy + ho] for dy in range(kh)], 2)  # [B, Ho, kh, W, C]
    windows = jnp.stack(
        [rows[:, :, :, g * group : g * group + group + kw - 1] for g in range(groups)],
        2,
    )  # [B, Ho, groups, kh, group + kw - 1, C]
    out = windows.reshape(b, ho, groups, -1) @ toeplitz_weight(kernel, group)
    return out.reshape(b, ho, groups * group, o)[:, :, :wo]


def use_row_conv(in_channels: int, backend: str | None = None) -> bool:
    """The rule ``Conv`` applies: CPU backend and at most 4 input channels."""
    backend = backend or jax.default_backend()
    return backend == "cpu" and in_channels <= ROW_CONV_MAX_CHANNELS


class Conv(nn.Module):
    """Stride-1 ``nn.Conv`` (same parameters) that picks ``row_conv`` where it
    is faster (``use_row_conv``); ``impl`` 'lax' or 'row' forces one form."""

    features: int
    kernel_size: tuple[int, int]
    padding: str = "VALID"
    impl: str = "auto"  # auto | lax | row

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        kernel = self.param(
            "kernel",
            nn.initializers.lecun_normal(),
            (*self.kernel_size, c, self.features),
        )
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        if self.impl not in ("auto", "lax", "row"):
            raise ValueError(f"impl must be auto, lax or row, got {self.impl!r}")
        row = self.impl == "row" or (self.impl == "auto" and use_row_conv(c))
        if row:
            y = row_conv(x, kernel.astype(x.dtype), padding=self.padding)
        else:
            y = jax.lax.conv_general_dilated(
                x,
                kernel.astype(x.dtype),
                (1, 1),
                self.padding,
                dimension_numbers=("NHWC", "HWIO", "NHWC"),
            )
        return y + bias.astype(y.dtype)
