"""Fully connected MNIST networks of the gradient-method papers.

Szegedy et al. (ICLR 2014), Sec. 4.3 / Table 1: softmax regression ``fc10``
(trained with an L2 weight penalty lambda, see ``TrainConfig.weight_decay``),
``fc100_100_10`` and ``fc200_200_10`` (two hidden layers), ``ae400_10`` (one
400-unit sigmoid layer; the paper pre-trains it as an autoencoder, here it is
trained end to end, see BUILD_NOTES.md). Goodfellow et al. (ICLR 2015), Sec. 5:
a permutation-invariant ``maxout`` network (2 maxout layers of 240 units with 5
pieces, as in Goodfellow et al. 2013; no dropout here).

All take ``x: [B, 28, 28, 1]`` float32 and return logits ``[B, 10]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp

from fooljax.models.registry import register_family

_DIGITS = tuple(str(i) for i in range(10))


class MLP(nn.Module):
    """``hidden`` Dense layers with ``activation``, then a Dense output layer."""

    hidden: Sequence[int] = ()
    num_classes: int = 10
    activation: Callable[[jnp.ndarray], jnp.ndarray] = nn.relu

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        x = x.reshape((x.shape[0], -1))
        for i, width in enumerate(self.hidden):
            x = self.activation(nn.Dense(width, name=f"fc{i + 1}")(x))
        return nn.Dense(self.num_classes, name="out")(x)


class Maxout(nn.Module):
    """Maxout MLP: each hidden unit is the max over ``num_pieces`` linear pieces."""

    hidden: Sequence[int] = (240, 240)
    num_pieces: int = 5
    num_classes: int = 10

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        x = x.reshape((x.shape[0], -1))
        for i, width in enumerate(self.hidden):
            z = nn.Dense(width * self.num_pieces, name=f"fc{i + 1}")(x)
            x = z.reshape(x.shape[0], width, self.num_pieces).max(axis=-1)
        return nn.Dense(self.num_classes, name="out")(x)


register_family(
    {
        "fc10": lambda: MLP(hidden=()),
        "fc100_100_10": lambda: MLP(hidden=(100, 100)),
        "fc200_200_10": lambda: MLP(hidden=(200, 200)),
        "ae400_10": lambda: MLP(hidden=(400,), activation=nn.sigmoid),
        "maxout": lambda: Maxout(),
    },
    input_shape=(28, 28, 1),
    num_classes=10,
    class_names=_DIGITS,
)
