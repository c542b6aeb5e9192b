"""CIFAR-10 networks of the one-pixel attack paper, trained by fooljax itself.

``cifar_allconv``: the All convolutional net "All-CNN-C" (Springenberg et al.
2015), one of the three networks Su, Vargas and Sakurai attack (their
"All conv."): 3x3 convs 96-96-96/2, 192-192-192/2, 3x3 192 (valid), 1x1 192,
1x1 10, global average pool. Differences from the original, stated in
BUILD_NOTES.md: no dropout (fooljax's training step is deterministic), the
input is standardised per channel inside the module instead of ZCA whitening,
and the last 1x1 conv has no ReLU (its outputs are the logits).
Images ``[B, 32, 32, 3]`` in [0, 1] -> logits ``[B, 10]``.

Train: ``python -m experiments.train_classifier
--flagfile=experiments/configs/allconv_cifar10.flags --workdir=runs/allconv``;
then ``--model=cifar_allconv --weights=runs/allconv/params.npz`` works in
``experiments.evaluate`` and ``experiments.one_pixel``.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from fooljax.data.cifar10 import CLASSES as CIFAR10_CLASSES
from fooljax.models.conv import Conv
from fooljax.models.registry import register_family

# per-channel statistics of the CIFAR-10 training images (0..1 scale)
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


class AllConvC(nn.Module):
    num_classes: int = 10
    width: int = 96  # 96 -> 192 as in All-CNN-C

    @nn.compact
    def __call__(self, x):
        x = (x - jnp.asarray(CIFAR10_MEAN, x.dtype)) / jnp.asarray(CIFAR10_STD, x.dtype)
        w1, w2 = self.width, 2 * self.width
        x = nn.relu(Conv(w1, (3, 3), padding="SAME", name="conv1")(x))
        x = nn.relu(nn.Conv(w1, (3, 3), padding="SAME", name="conv2")(x))
        x = nn.relu(nn.Conv(w1, (3, 3), strides=2, padding="SAME", name="conv3")(x))
        x = nn.relu(nn.Conv(w2, (3, 3), padding="SAME", name="conv4")(x))
        x = nn.relu(nn.Conv(w2, (3, 3), padding="SAME", name="conv5")(x))
        x = nn.relu(nn.Conv(w2, (3, 3), strides=2, padding="SAME", name="conv6")(x))
        x = nn.relu(nn.Conv(w2, (3, 3), padding="VALID", name="conv7")(x))
        x = nn.relu(nn.Conv(w2, (1, 1), name="conv8")(x))
        x = nn.Conv(self.num_classes, (1, 1), name="conv9")(x)
        return jnp.mean(x, axis=(1, 2))


register_family(
    {"cifar_allconv": lambda: AllConvC()},
    input_shape=(32, 32, 3),
    num_classes=10,
    class_names=CIFAR10_CLASSES,
)
