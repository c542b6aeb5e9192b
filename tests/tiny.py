"""Tiny models and encodings for fast tests (8x8 images, a few classes)."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from fooljax.encodings import direct
from fooljax.evolution import map_elites as me


class TinyNet(nn.Module):
    num_classes: int = 4

    @nn.compact
    def __call__(self, x):
        x = nn.Conv(4, (3, 3), padding="VALID")(x)
        x = jnp.tanh(x).reshape(x.shape[0], -1)
        return nn.Dense(self.num_classes)(x) * 3.0


def tiny_classifier(num_classes=4, shape=(8, 8, 1), seed=0):
    model = TinyNet(num_classes)
    params = model.init(jax.random.key(seed), jnp.zeros((1, *shape)))
    return model, params, (lambda p, x: model.apply(p, x))


def direct_encoding(shape=(8, 8, 1), rate=0.2, eta=15.0, crossover_rate=0.0):
    return me.Encoding(
        init=lambda k: direct.init(k, shape),
        mutate=lambda k, g, gen: direct.polynomial_mutation(k, g, rate=rate, eta=eta),
        decode=direct.decode_grey,
        crossover=(lambda k, a, b: direct.sbx_crossover(k, a, b, eta=10.0))
        if crossover_rate
        else None,
        crossover_rate=crossover_rate,
    )
