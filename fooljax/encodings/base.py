"""The interface every genome encoding implements (one individual at a time)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax


class Encoding(NamedTuple):
    """How genomes are made, varied and turned into images (one individual each).

    ``init(key) -> genome``; ``mutate(key, genome, generation) -> genome``;
    ``crossover(key, genome, other) -> genome`` or None; ``decode(genome) ->
    image [H, W, C] in [0, 1]``. Genomes may be any fixed-shape pytree.
    ``decode_for_gradients``: optional, ``decode`` with the same forward (bit
    for bit) and a faster reverse-mode gradient, but no forward mode (a
    ``custom_vjp``); the gradient emitters use it when present.
    """

    init: Callable[[jax.Array], Any]
    mutate: Callable[[jax.Array, Any, jax.Array], Any]
    decode: Callable[[Any], jax.Array]
    crossover: Callable[[jax.Array, Any, Any], Any] | None = None
    crossover_rate: float = 0.0
    decode_for_gradients: Callable[[Any], jax.Array] | None = None
