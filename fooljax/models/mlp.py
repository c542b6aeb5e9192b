"""Fully connected MNIST networks of the gradient-method papers.

Szegedy et al. (ICLR 2014), Sec. 4.3 / Table 1: softmax regression ``fc10``
(trained with an L2 weight penalty lambda, see ``TrainConfig.weight_decay``),
``fc100_100_10`` and ``fc200_200_10`` (two hidden layers), ``ae400_10`` (one
400-unit sigmoid layer; the paper pre-trains it as an autoencoder, here it is
trained end to end, see BUILD_NOTES.md). Goodfellow et al. (ICLR 2015), Sec. 5:
a permutation-invariant ``maxout`` network (2 maxout layers of 240 units with 5
pieces, as in Goodfellow et al. 2013), trained without dropout, and
``maxout_dropout``, the same network trained as the maxout paper trains it:
dropout 0.2 on the input and 0.5 on each hidden layer (pylearn2's
``mnist_pi`` settings). Both have the same params; dropout acts only in
training mode (``apply(..., train=True, rngs={"dropout": key})``), so every
``logits_fn`` (``apply(params, x)``) is deterministic.

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
    """Maxout MLP: each hidden unit is the max over ``num_pieces`` linear pieces.

    ``input_dropout``/``hidden_dropout``: drop rates of the input and of each
    hidden layer's output, used only when called with ``train=True`` (which
    needs a ``"dropout"`` rng); ``train=False`` (the default) is deterministic.
    """

    hidden: Sequence[int] = (240, 240)
    num_pieces: int = 5
    num_classes: int = 10
    input_dropout: float = 0.0
    hidden_dropout: float = 0.0

    @property
    def has_dropout(self) -> bool:
        """Whether training mode differs from inference (the trainer's cue)."""
        return self.input_dropout > 0 or self.hidden_dropout > 0

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        x = x.reshape((x.shape[0], -1))
        x = nn.Dropout(self.input_dropout, deterministic=not train)(x)
        for i, width in enumerate(self.hidden):
            z = nn.Dense(width * self.num_pieces, name=f"fc{i + 1}")(x)
            x = z.reshape(x.shape[0], width, self.num_pieces).max(axis=-1)
            x = nn.Dropout(self.hidden_dropout, deterministic=not train)(x)
        return nn.Dense(self.num_classes, name="out")(x)


register_family(
    {
        "fc10": lambda: MLP(hidden=()),
        "fc100_100_10": lambda: MLP(hidden=(100, 100)),
        "fc200_200_10": lambda: MLP(hidden=(200, 200)),
        "ae400_10": lambda: MLP(hidden=(400,), activation=nn.sigmoid),
        "maxout": lambda: Maxout(),
        "maxout_dropout": lambda: Maxout(input_dropout=0.2, hidden_dropout=0.5),
    },
    input_shape=(28, 28, 1),
    num_classes=10,
    class_names=_DIGITS,
)
