"""The Keras CIFAR-10 networks of the one-pixel attack experiments, in Flax.

Su, Vargas and Sakurai (one pixel attack, IEEE TEVC 2019) attack CIFAR-10
networks; we attack the Keras weights staged in ``data/``:

- ``cifar_lenet``: Hyperparticle/one-pixel-attack-keras ``lenet.h5``
  (conv 6@5x5 - pool - conv 16@5x5 - pool - fc 120 - fc 84 - fc 10, all ReLU).
- ``cifar_resnet32``: the same repo's ``resnet.h5``, a pre-activation ResNet-32
  (stack_n = 5, 16/32/64 channels, 1x1 stride-2 projection shortcuts).
- ``cifar_resnet8``: the MLPerf Tiny ``pretrainedResnet.h5`` (post-activation
  ResNet-8, 8x8 average pool).

Each module takes fooljax images ``[B, 32, 32, 3]`` float32 in [0, 1] and applies
its weights' own preprocessing inside ``__call__`` (pixels 0..255, then per
channel ``(x - mean) / std`` for the Hyperparticle nets, nothing more for
ResNet-8), so an attack can work on raw pixels. The output is the logits before
Keras' final softmax (``softmax(logits)`` is the Keras output).

Keras semantics kept exactly: ``padding='same'`` is TF's (for stride 2 on an even
input all padding goes after: XLA's ``SAME`` is the same rule), BatchNormalization
runs in inference mode with its moving statistics and ``epsilon = 1e-3``, the
flatten before ``dense_1`` is in NHWC order. Flax submodules carry the Keras
layer names, so the HDF5 importer maps ``model_weights/<layer>/<layer>/<w>:0``
straight onto ``params[<layer>][<w>]``; BN statistics live in ``params`` too
(these modules are inference-only).
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from fooljax.data.cifar10 import CLASSES as CIFAR10_CLASSES
from fooljax.errors import WeightsError
from fooljax.models.conv import Conv
from fooljax.models.lenet import max_pool_2x2
from fooljax.models.registry import register_family

# Hyperparticle/one-pixel-attack-keras networks/{lenet,resnet}.py
HYPERPARTICLE_MEAN = (125.307, 122.95, 113.865)
HYPERPARTICLE_STD = (62.9932, 62.0887, 66.7048)


def _standardize(x, mean, std):
    """[0, 1] images -> ``(255 x - mean) / std`` per channel (identity if None)."""
    x = x * 255.0
    if mean is None:
        return x
    return (x - jnp.asarray(mean, x.dtype)) / jnp.asarray(std, x.dtype)


class KerasBatchNorm(nn.Module):
    """Keras ``BatchNormalization`` in inference mode (moving statistics)."""

    epsilon: float = 1e-3

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        gamma = self.param("gamma", nn.initializers.ones, (c,))
        beta = self.param("beta", nn.initializers.zeros, (c,))
        mean = self.param("moving_mean", nn.initializers.zeros, (c,))
        var = self.param("moving_variance", nn.initializers.ones, (c,))
        scale = gamma * jnp.reciprocal(jnp.sqrt(var + self.epsilon))
        return x * scale + (beta - mean * scale)


def _conv(features, kernel, strides, name):
    return nn.Conv(
        features,
        (kernel, kernel),
        strides=(strides, strides),
        padding="SAME",
        name=name,
    )


class KerasCifarLeNet(nn.Module):
    """``lenet.h5``: logits ``[B, 10]`` from images ``[B, 32, 32, 3]`` in [0, 1]."""

    num_classes: int = 10
    mean: tuple | None = HYPERPARTICLE_MEAN
    std: tuple | None = HYPERPARTICLE_STD
    # convolution form (fooljax.models.conv): auto = row_conv for the RGB layer
    # on CPU (2.7x the network's throughput there), XLA's convolution elsewhere
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x):
        x = _standardize(x, self.mean, self.std)
        x = Conv(6, (5, 5), impl=self.conv_impl, name="conv2d_1")(x)
        x = max_pool_2x2(nn.relu(x))
        x = Conv(16, (5, 5), impl=self.conv_impl, name="conv2d_2")(x)
        x = nn.relu(x)
        x = max_pool_2x2(x)
        x = x.reshape((x.shape[0], -1))  # NHWC flatten, as Keras/TF
        x = nn.relu(nn.Dense(120, name="dense_1")(x))
        x = nn.relu(nn.Dense(84, name="dense_2")(x))
        return nn.Dense(self.num_classes, name="dense_3")(x)


class KerasCifarResNet32(nn.Module):
    """``resnet.h5``: pre-activation ResNet (6n+2 layers, n = ``stack_n``).

    Block: ``y = conv(relu(bn(conv_s(relu(bn(x))))))``, ``x = shortcut(x) + y``;
    the first block of stacks 2 and 3 has stride 2 and a 1x1 stride-2 conv
    shortcut taken from the (pre-BN) block input; the head is relu(bn), global
    average pool and dense.
    """

    num_classes: int = 10
    stack_n: int = 5
    mean: tuple | None = HYPERPARTICLE_MEAN
    std: tuple | None = HYPERPARTICLE_STD

    @nn.compact
    def __call__(self, x):
        conv_i, bn_i = iter(range(1, 1000)), iter(range(1, 1000))

        def conv(h, features, kernel=3, strides=1):
            return _conv(features, kernel, strides, f"conv2d_{next(conv_i)}")(h)

        def bn_relu(h):
            return nn.relu(KerasBatchNorm(name=f"batch_normalization_{next(bn_i)}")(h))

        x = _standardize(x, self.mean, self.std)
        x = conv(x, 16)
        for stage, features in enumerate((16, 32, 64)):
            for block in range(self.stack_n):
                down = stage > 0 and block == 0
                y = conv(bn_relu(x), features, strides=2 if down else 1)
                y = conv(bn_relu(y), features)
                # Keras numbers the projection after the block's second conv.
                shortcut = conv(x, features, kernel=1, strides=2) if down else x
                x = shortcut + y
        x = bn_relu(x)
        x = jnp.mean(x, axis=(1, 2))
        return nn.Dense(self.num_classes, name="dense_1")(x)


class KerasCifarResNet8(nn.Module):
    """MLPerf Tiny ResNet-8 (Keras names ``conv2d``, ``conv2d_1``, ...).

    Raw 0..255 input; post-activation residual blocks 16/32/64, 8x8 average
    pool, dense.
    """

    num_classes: int = 10

    @nn.compact
    def __call__(self, x):
        def name(base, i):
            return base if i == 0 else f"{base}_{i}"

        x = _standardize(x, None, None)
        x = nn.relu(
            KerasBatchNorm(name="batch_normalization")(_conv(16, 3, 1, "conv2d")(x))
        )
        # (features, stride, conv index of the block's first conv, bn index)
        for features, strides, c, b in ((16, 1, 1, 1), (32, 2, 3, 3), (64, 2, 6, 5)):
            y = _conv(features, 3, strides, name("conv2d", c))(x)
            y = nn.relu(KerasBatchNorm(name=name("batch_normalization", b))(y))
            y = _conv(features, 3, 1, name("conv2d", c + 1))(y)
            y = KerasBatchNorm(name=name("batch_normalization", b + 1))(y)
            if strides != 1:
                x = _conv(features, 1, strides, name("conv2d", c + 2))(x)
            x = nn.relu(x + y)
        x = jnp.mean(x, axis=(1, 2))  # AveragePooling2D(8) on the 8x8 map + flatten
        return nn.Dense(self.num_classes, name="dense")(x)


HDF5_MAGIC = b"\x89HDF"


def looks_like_hdf5(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == HDF5_MAGIC


def read_keras_h5(path: str) -> dict[str, dict[str, np.ndarray]]:
    """``{layer: {weight: array}}`` from a whole-model Keras HDF5 or a weights file.

    ``weight`` is the short name (``kernel``, ``bias``, ``gamma``, ``beta``,
    ``moving_mean``, ``moving_variance``). Needs ``h5py`` (``pip install
    'fooljax[import]'``).
    """
    if not looks_like_hdf5(path):
        raise WeightsError(f"{path}: not an HDF5 file (unrecognised content)")
    try:
        import h5py
    except ImportError:
        raise WeightsError(
            "reading Keras .h5 weights needs h5py: pip install -e '.[import]'"
        ) from None
    out: dict[str, dict[str, np.ndarray]] = {}
    try:
        with h5py.File(path, "r") as f:
            group = f["model_weights"] if "model_weights" in f else f
            if "layer_names" not in group.attrs:
                raise WeightsError(f"{path}: HDF5 file holds no Keras layer list")
            for layer in group.attrs["layer_names"]:
                layer = layer.decode() if isinstance(layer, bytes) else str(layer)
                g = group[layer]
                for wname in g.attrs.get("weight_names", []):
                    wname = wname.decode() if isinstance(wname, bytes) else str(wname)
                    short = wname.split("/")[-1].split(":")[0]
                    out.setdefault(layer, {})[short] = np.asarray(g[wname], np.float32)
    except WeightsError:
        raise
    except Exception as e:  # h5py raises OSError/KeyError on corrupt files
        raise WeightsError(f"{path}: cannot read Keras HDF5 ({e})") from None
    return out


def keras_h5_to_params(path: str, template):
    """Params shaped like ``template`` from a Keras .h5 (names must match)."""
    weights = read_keras_h5(path)
    want = template["params"]
    missing = sorted(set(want) - set(weights))
    extra = sorted(set(weights) - set(want))
    if missing or extra:
        raise WeightsError(
            f"{path}: Keras layers do not fit the model (missing {missing[:3]}, "
            f"unexpected {extra[:3]}); is this the right --model?"
        )
    params = {}
    for layer, leaves in want.items():
        params[layer] = {}
        for wname, leaf in leaves.items():
            if wname not in weights[layer]:
                raise WeightsError(f"{path}: layer {layer} has no '{wname}' weight")
            got = weights[layer][wname]
            if got.shape != leaf.shape:
                raise WeightsError(
                    f"{path}: {layer}/{wname} has shape {got.shape}, the model "
                    f"expects {leaf.shape}; is this the right --model?"
                )
            params[layer][wname] = jnp.asarray(got)
    return {"params": params}


# The modules standardise their input themselves: identity preprocessing.
register_family(
    {
        "cifar_lenet": KerasCifarLeNet,
        "cifar_resnet32": KerasCifarResNet32,
        "cifar_resnet8": KerasCifarResNet8,
    },
    input_shape=(32, 32, 3),
    num_classes=10,
    class_names=CIFAR10_CLASSES,
    load_file=keras_h5_to_params,
)
