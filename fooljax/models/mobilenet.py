"""ImageNet MobileNets in Flax, with weights dequantized from TFLite files.

``mobilenet_v2``: MobileNetV2 1.0/224 (Sandler et al. 2018): stem conv 32/2,
17 inverted-residual blocks (1x1 expand + ReLU6, 3x3 depthwise + ReLU6, linear
1x1 project, residual add when shapes allow), 1x1 conv 1280 + ReLU6, global
average pool, 1x1 conv to 1001 logits. Batch norm is folded into the conv
weights/biases in the TFLite files, so every layer here is conv + bias.

``mobilenet_v1_025``: MobileNetV1 0.25/128 (a tiny, fast test model).

Both take fooljax images ``[B, H, W, 3]`` RGB float in [0, 1] and do their own
preprocessing inside ``__call__``: a bilinear resize to the network's input
size when needed, then the affine map the quantized input tensor implies
(``float = scale * (255 x - zero_point)``, [-1, 1] for these files). They
return **1000** ImageNet logits: TFLite output 0 ("background") is dropped, so
logit k is ImageNet class k.

Weights: ``load_file`` reads a ``.tflite`` (detected by ``TFL3`` at bytes 4..8),
walks its CONV_2D / DEPTHWISE_CONV_2D ops in execution order, checks kernel
shapes, strides, padding and fused activations against the architecture and
dequantizes (``scale * (q - zero_point)``, per-tensor or per-channel). The
float network therefore differs from the TFLite interpreter's integer
arithmetic by quantization noise (activations are not re-quantized here).

Padding: TFLite 'SAME' (pad total ``max((out-1)*s + k - in, 0)``, the smaller
half before) is exactly ``lax``'s 'SAME', which every conv here uses.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from fooljax.data.imagenet import try_imagenet_class_names
from fooljax.errors import FooljaxError, WeightsError
from fooljax.io.tflite import load_tflite, looks_like_tflite
from fooljax.models.registry import register_family

# (expansion t, output channels c, repeats n, first stride s) of MobileNetV2.
_V2_BLOCKS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
# (output channels, stride) of MobileNetV1's 13 depthwise-separable blocks (x1.0).
_V1_BLOCKS = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
)


@functools.lru_cache(maxsize=64)
def _resize_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Sparse form of ``jax.image.resize``'s antialiased bilinear weights on one axis.

    Returns ``(idx [n_out, K], w [n_out, K])`` with ``out[o] = sum_k w[o,k] * x[idx[o,k]]``;
    the weights are read off ``jax.image.resize`` of an identity matrix, so the
    result equals it (up to float rounding).
    """
    with jax.ensure_compile_time_eval():
        dense = np.asarray(
            jax.image.resize(
                jnp.eye(n_in, dtype=jnp.float32),
                (n_out, n_in),
                "bilinear",
                antialias=True,
            )
        )
    k = max(int((dense != 0).sum(1).max()), 1)
    idx = np.argsort(dense == 0, axis=1, kind="stable")[:, :k]
    return idx.astype(np.int32), np.take_along_axis(dense, idx, 1).astype(np.float32)


def resize_bilinear(x: jnp.ndarray, h: int, w: int) -> jnp.ndarray:
    """``jax.image.resize(x, (B, h, w, C), "bilinear", antialias=True)`` for NHWC,
    as 2-6 gathers per axis instead of dense matmuls (256 -> 224 at batch 64:
    0.047 instead of 0.27 CPU-seconds)."""
    for axis, n_out in ((1, h), (2, w)):
        n_in = x.shape[axis]
        if n_in == n_out:
            continue
        idx, wt = _resize_taps(n_in, n_out)
        shape = [1, 1, 1, 1]
        shape[axis] = n_out
        out = None
        for k in range(idx.shape[1]):
            term = jnp.take(x, jnp.asarray(idx[:, k]), axis=axis) * jnp.asarray(
                wt[:, k]
            ).reshape(shape)
            out = term if out is None else out + term
        x = out
    return x


def prepare_images(x: jnp.ndarray, size: int) -> jnp.ndarray:
    """Checks ``[B, H, W, 3]`` and bilinearly resizes to ``size x size`` if needed."""
    if x.ndim != 4 or x.shape[-1] != 3:
        raise FooljaxError(
            f"ImageNet models take RGB images [B, H, W, 3]; got shape {tuple(x.shape)}"
        )
    if x.shape[1] < 8 or x.shape[2] < 8:
        raise FooljaxError(f"images of {x.shape[1]}x{x.shape[2]} are too small")
    x = x.astype(jnp.float32)
    if x.shape[1:3] != (size, size):
        x = resize_bilinear(x, size, size)
    return x


def depthwise_conv3x3(x: jnp.ndarray, kernel: jnp.ndarray, stride: int) -> jnp.ndarray:
    """3x3 depthwise conv with TF 'SAME' padding as 9 shifted multiply-adds.

    ``kernel``: ``[3, 3, 1, C]`` (Flax's grouped-conv layout). XLA fuses this
    into one elementwise loop, which on CPU is much faster than a grouped
    ``conv_general_dilated`` with ``feature_group_count = C``.
    """
    _, h, w, _ = x.shape
    oh, ow = -(-h // stride), -(-w // stride)
    ph = max((oh - 1) * stride + 3 - h, 0)
    pw = max((ow - 1) * stride + 3 - w, 0)
    xp = jnp.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    out = None
    for i in range(3):
        for j in range(3):
            tap = xp[
                :,
                i : i + (oh - 1) * stride + 1 : stride,
                j : j + (ow - 1) * stride + 1 : stride,
                :,
            ]
            term = tap * kernel[i, j, 0]
            out = term if out is None else out + term
    return out


class DepthwiseConv(nn.Module):
    """3x3 depthwise conv + bias; params laid out like ``nn.Conv`` with groups=C."""

    stride: int = 1
    use_grouped_conv: bool = False  # reference path (lax grouped conv) for tests

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (3, 3, 1, c))
        bias = self.param("bias", nn.initializers.zeros, (c,))
        if self.use_grouped_conv:
            y = jax.lax.conv_general_dilated(
                x,
                kernel,
                (self.stride, self.stride),
                "SAME",
                dimension_numbers=("NHWC", "HWIO", "NHWC"),
                feature_group_count=c,
            )
        else:
            y = depthwise_conv3x3(x, kernel, self.stride)
        return y + bias


class NumpyInitMixin:
    """``init`` that fills params from NumPy instead of tracing Flax initializers.

    Eagerly running ~100 ``lecun_normal`` initializers costs XLA:CPU a compile
    each (tens of seconds for MobileNetV2), and ``load_params`` calls ``init``
    for a shape template even when it then loads a file. Shapes come from
    ``jax.eval_shape``; kernels are LeCun-normal (std ``1/sqrt(fan_in)``),
    biases zero, other params their module's defaults (``_numpy_defaults``:
    leaf name -> a constant, or a function of the shape).
    Deterministic in the key.
    """

    _numpy_defaults: dict = {}

    def init(self, rngs, *args, **kwargs):
        shapes = jax.eval_shape(
            lambda r, *a: nn.Module.init(self, r, *a, **kwargs), rngs, *args
        )
        key = rngs["params"] if isinstance(rngs, dict) else rngs
        if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
            key = jax.random.key_data(key)
        rng = np.random.default_rng(np.asarray(key, np.uint32).ravel().tolist())

        def fill(path, leaf):
            name = getattr(path[-1], "key", str(path[-1]))
            shape = leaf.shape
            if name == "kernel":
                std = 1.0 / np.sqrt(max(int(np.prod(shape[:-1])), 1))
                v = rng.standard_normal(shape, np.float32) * np.float32(std)
            elif name in self._numpy_defaults:
                d = self._numpy_defaults[name]
                v = np.asarray(
                    d(shape) if callable(d) else np.full(shape, d), np.float32
                )
            else:
                v = np.zeros(shape, np.float32)
            return jnp.asarray(v, leaf.dtype)

        return jax.tree_util.tree_map_with_path(fill, shapes)


class PointwiseConv(nn.Module):
    """1x1 conv + bias as a matmul (params laid out like ``nn.Conv``'s).

    On XLA:CPU a ``dot`` is ~2.5x faster than the same 1x1 convolution.
    """

    features: int

    @nn.compact
    def __call__(self, x):
        cin = x.shape[-1]
        kernel = self.param(
            "kernel", nn.initializers.lecun_normal(), (1, 1, cin, self.features)
        )
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        return jnp.einsum("bhwc,co->bhwo", x, kernel[0, 0]) + bias


def _conv(features, kernel, stride, name):
    if kernel == 1 and stride == 1:
        return PointwiseConv(features, name=name)
    return nn.Conv(features, (kernel, kernel), (stride, stride), "SAME", name=name)


class InputNorm(nn.Module):
    """``y = x * scale + offset`` with the quantized input tensor's (scale, zp).

    x in [0, 1]; scale = 255 * s_q and offset = -s_q * zp_q (so [-1, 1] for
    s_q = 1/128, zp_q = 128). Stored as params so they come from the file.
    """

    default_scale: float = 255.0 / 128.0
    default_offset: float = -1.0

    @nn.compact
    def __call__(self, x):
        scale = self.param("scale", nn.initializers.constant(self.default_scale), ())
        offset = self.param("offset", nn.initializers.constant(self.default_offset), ())
        return x * scale + offset


_INPUT_DEFAULTS = {"scale": 255.0 / 128.0, "offset": -1.0}


class MobileNetV2(NumpyInitMixin, nn.Module):
    """MobileNetV2 (width 1.0) on ``[B, H, W, 3]`` in [0, 1]; 1000 logits."""

    input_size: int = 224
    num_outputs: int = 1001  # including TFLite's "background" output 0
    use_grouped_conv: bool = False
    resizes_input = True  # takes any H, W (resized inside); see experiments.evaluate
    _numpy_defaults = _INPUT_DEFAULTS

    @nn.compact
    def __call__(self, x):
        x = prepare_images(x, self.input_size)
        x = InputNorm(name="input_norm")(x)
        x = jax.nn.relu6(_conv(32, 3, 2, "conv_stem")(x))
        cin = 32
        k = 0
        for t, c, n, s in _V2_BLOCKS:
            for r in range(n):
                stride = s if r == 0 else 1
                h = x
                if t != 1:
                    h = jax.nn.relu6(_conv(cin * t, 1, 1, f"block{k}_expand")(h))
                h = DepthwiseConv(
                    stride, self.use_grouped_conv, name=f"block{k}_depthwise"
                )(h)
                h = jax.nn.relu6(h)
                h = _conv(c, 1, 1, f"block{k}_project")(h)
                x = x + h if (stride == 1 and cin == c) else h
                cin = c
                k += 1
        x = jax.nn.relu6(_conv(1280, 1, 1, "conv_head")(x))
        x = jnp.mean(x, axis=(1, 2), keepdims=True)
        x = _conv(self.num_outputs, 1, 1, "logits")(x)
        x = x.reshape(x.shape[0], -1)
        return x[:, self.num_outputs - 1000 :]


class MobileNetV1(NumpyInitMixin, nn.Module):
    """MobileNetV1 with a width multiplier on ``[B, H, W, 3]`` in [0, 1]."""

    width: float = 0.25
    input_size: int = 128
    num_outputs: int = 1001
    use_grouped_conv: bool = False
    resizes_input = True
    _numpy_defaults = _INPUT_DEFAULTS

    @nn.compact
    def __call__(self, x):
        x = prepare_images(x, self.input_size)
        x = InputNorm(name="input_norm")(x)
        x = jax.nn.relu6(_conv(int(32 * self.width), 3, 2, "conv_stem")(x))
        for k, (c, s) in enumerate(_V1_BLOCKS):
            x = DepthwiseConv(s, self.use_grouped_conv, name=f"block{k}_depthwise")(x)
            x = jax.nn.relu6(x)
            x = jax.nn.relu6(_conv(int(c * self.width), 1, 1, f"block{k}_pointwise")(x))
        x = jnp.mean(x, axis=(1, 2), keepdims=True)
        x = _conv(self.num_outputs, 1, 1, "logits")(x)
        x = x.reshape(x.shape[0], -1)
        return x[:, self.num_outputs - 1000 :]


# ---------------------------------------------------------------------------
# TFLite -> Flax params


def _v2_layers() -> list[tuple[str, str, int, str | None]]:
    """(flax name, op type, stride, fused activation) in execution order."""
    out = [("conv_stem", "CONV_2D", 2, "relu6")]
    k = 0
    for t, _c, n, s in _V2_BLOCKS:
        for r in range(n):
            stride = s if r == 0 else 1
            if t != 1:
                out.append((f"block{k}_expand", "CONV_2D", 1, "relu6"))
            out.append((f"block{k}_depthwise", "DEPTHWISE_CONV_2D", stride, "relu6"))
            out.append((f"block{k}_project", "CONV_2D", 1, None))
            k += 1
    out.append(("conv_head", "CONV_2D", 1, "relu6"))
    out.append(("logits", "CONV_2D", 1, None))
    return out


def _v2_num_residuals() -> int:
    n_res, cin = 0, 32
    for _, c, n, s in _V2_BLOCKS:
        for r in range(n):
            n_res += int((s if r == 0 else 1) == 1 and cin == c)
            cin = c
    return n_res


def _v1_layers() -> list[tuple[str, str, int, str | None]]:
    out = [("conv_stem", "CONV_2D", 2, "relu6")]
    for k, (_, s) in enumerate(_V1_BLOCKS):
        out.append((f"block{k}_depthwise", "DEPTHWISE_CONV_2D", s, "relu6"))
        out.append((f"block{k}_pointwise", "CONV_2D", 1, "relu6"))
    out.append(("logits", "CONV_2D", 1, None))
    return out


def tflite_to_flax(graph, template, layers, num_residual_adds: int, arch: str) -> dict:
    """Maps a parsed TFLite graph onto a Flax ``{"params": ...}`` tree.

    Raises ``WeightsError`` when the file's conv sequence, shapes, strides,
    activations or residual adds do not match ``arch``.
    """
    src = graph.source
    convs = [op for op in graph.ops if op.type in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    n_add = sum(op.type == "ADD" for op in graph.ops)
    if len(convs) != len(layers) or n_add != num_residual_adds:
        raise WeightsError(
            f"{src} has {len(convs)} conv layers and {n_add} residual adds, "
            f"{arch} has {len(layers)} and {num_residual_adds}: "
            "is it a weights file for another architecture?"
        )
    tparams = template["params"]
    out = {}
    for op, (name, op_type, stride, act) in zip(convs, layers, strict=True):
        o = op.options
        if (
            op.type != op_type
            or tuple(o.get("strides", ())) != (stride, stride)
            or o.get("activation") != act
            or o.get("padding") != "SAME"
            or tuple(o.get("dilation", (1, 1))) != (1, 1)
            or o.get("depth_multiplier", 1) != 1
        ):
            raise WeightsError(
                f"{src}: layer '{name}' of {arch} should be {op_type} stride {stride} "
                f"activation {act} SAME, the file has {op.type} {o}: "
                "is it a weights file for another architecture?"
            )
        w = graph.tensors[op.inputs[1]].dequantize()
        # CONV_2D: (O, kh, kw, I) -> (kh, kw, I, O); DEPTHWISE: (1, kh, kw, C) -> (kh, kw, 1, C)
        w = w.transpose(1, 2, 3, 0) if op.type == "CONV_2D" else w.transpose(1, 2, 0, 3)
        want = tuple(tparams[name]["kernel"].shape)
        if w.shape != want:
            raise WeightsError(
                f"{src}: layer '{name}' weights have shape {w.shape}, "
                f"{arch} expects {want}: is it a weights file for another architecture?"
            )
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            b = graph.tensors[op.inputs[2]].dequantize().reshape(-1)
        else:
            b = np.zeros(w.shape[-1], np.float32)
        out[name] = {
            "kernel": np.ascontiguousarray(w, np.float32),
            "bias": b.astype(np.float32),
        }
    # Input mapping: x in [0, 1] -> the float value of the (quantized) input.
    t_in = graph.input_tensor()
    norm_t = tparams["input_norm"]
    if len(t_in.shape) != 4 or t_in.shape[-1] != 3 or t_in.shape[1] != t_in.shape[2]:
        raise WeightsError(f"{src}: input tensor has shape {t_in.shape}, not [1,S,S,3]")
    if t_in.quantized:
        s = float(t_in.scale.reshape(-1)[0])
        zp = (
            float(t_in.zero_point.reshape(-1)[0])
            if t_in.zero_point is not None
            else 0.0
        )
        scale, offset = 255.0 * s, -s * zp
    else:  # float input: MobileNet's usual [-1, 1]
        scale, offset = 2.0, -1.0
    out["input_norm"] = {
        "scale": np.asarray(scale, np.float32).reshape(norm_t["scale"].shape),
        "offset": np.asarray(offset, np.float32).reshape(norm_t["offset"].shape),
    }
    return {"params": out}


def _make_load_file(layers_fn, n_res: int, arch: str, size: int):
    def load_file(path, template):
        if not looks_like_tflite(path):
            raise WeightsError(
                f"{path}: not a TFLite model (no 'TFL3' identifier at bytes 4..8); "
                f"{arch} reads .tflite files"
            )
        graph = load_tflite(path)
        t_in = graph.input_tensor()
        if tuple(t_in.shape[1:]) != (size, size, 3):
            raise WeightsError(
                f"{path}: input is {t_in.shape}, {arch} takes [1, {size}, {size}, 3]: "
                "is it a weights file for another architecture?"
            )
        return tflite_to_flax(graph, template, layers_fn(), n_res, arch)

    return load_file


_NAMES = try_imagenet_class_names()  # from $FOOLJAX_DATA when set, else None
register_family(
    {"mobilenet_v2": lambda: MobileNetV2()},
    input_shape=(224, 224, 3),
    num_classes=1000,
    class_names=_NAMES,
    load_file=_make_load_file(_v2_layers, _v2_num_residuals(), "mobilenet_v2", 224),
)
register_family(
    {"mobilenet_v1_025": lambda: MobileNetV1(width=0.25, input_size=128)},
    input_shape=(128, 128, 3),
    num_classes=1000,
    class_names=_NAMES,
    load_file=_make_load_file(_v1_layers, 0, "mobilenet_v1_025", 128),
)
