"""Caffe's LeNet exactly as used by Nguyen et al. (CVPR 2015, Sec. 2.2).

conv 20@5x5 -> max-pool 2 -> conv 50@5x5 -> max-pool 2 -> fc 500 -> ReLU -> fc 10.
There is deliberately no non-linearity after the convolutions (Caffe's
``lenet_train_test.prototxt``). Inputs are NHWC; the flatten before ``ip1`` is in
NHWC order, and the Caffe importer permutes ``ip1``'s rows from Caffe's C,H,W order.
"""

import flax.linen as nn
import jax.numpy as jnp

from fooljax.errors import WeightsError
from fooljax.io.caffe import caffe_to_flax, load_caffemodel, looks_like_caffemodel
from fooljax.models.registry import register_family


def max_pool_2x2(x: jnp.ndarray) -> jnp.ndarray:
    """2x2/2 max-pool as reshape + max: identical to ``nn.max_pool`` on even sizes,
    and its gradient avoids XLA:CPU's slow ``select_and_scatter``."""
    b, h, w, c = x.shape
    if h % 2 or w % 2:
        return nn.max_pool(x, (2, 2), strides=(2, 2))
    return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


class LeNet(nn.Module):
    """LeNet on ``x: [B, 28, 28, 1]`` network input (already preprocessed).

    Returns logits ``[B, num_classes]``.
    """

    num_classes: int = 10

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        x = nn.Conv(20, (5, 5), padding="VALID", name="conv1")(x)
        x = max_pool_2x2(x)
        x = nn.Conv(50, (5, 5), padding="VALID", name="conv2")(x)
        x = max_pool_2x2(x)
        x = x.reshape((x.shape[0], -1))
        x = nn.Dense(500, name="ip1")(x)
        x = nn.relu(x)
        return nn.Dense(self.num_classes, name="ip2")(x)


def lenet_load_file(path: str, template):
    """``.caffemodel`` -> LeNet params (``ip1`` rows permuted from C,H,W)."""
    if not looks_like_caffemodel(path):
        raise WeightsError(f"{path}: not a Caffe caffemodel (unrecognised content)")
    return caffe_to_flax(
        load_caffemodel(path), template, flatten_chw={"ip1": (50, 4, 4)}, source=path
    )


register_family(
    {"lenet": lambda: LeNet(num_classes=10)},
    input_shape=(28, 28, 1),
    num_classes=10,
    class_names=tuple(str(i) for i in range(10)),
    load_file=lenet_load_file,
    pretrained="lenet_mnist",
)
