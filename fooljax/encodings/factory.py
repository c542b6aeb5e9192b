"""Builds encodings for the experiments from flag values, with validation."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from fooljax.checks import check_finite, check_int
from fooljax.encodings.base import Encoding
from fooljax.encodings.cppn import _check_image_shape
from fooljax.encodings.cppn import make_encoding as make_cppn_encoding
from fooljax.encodings.direct import (
    decode_grey,
    decode_hsv,
    polynomial_mutation,
    sbx_crossover,
)
from fooljax.encodings.direct import init as init_direct
from fooljax.errors import FooljaxError, InputError

ENCODINGS = ("direct", "cppn")
COLOURS = ("auto", "rgb")


def mutation_rate(rate0: float, halve_every: int, generation) -> jax.Array:
    """The paper's schedule: ``rate0`` halved every ``halve_every`` generations
    (0 = constant). ``generation`` may be traced, so nothing recompiles."""
    if halve_every <= 0:
        return jnp.asarray(rate0, jnp.float32)
    return rate0 * jnp.exp2(-(generation // halve_every).astype(jnp.float32))


def make_encoding(
    name: str,
    image_shape: tuple[int, int, int],
    *,
    mutation_rate0: float = 0.1,
    mutation_eta: float = 15.0,
    halve_every: int = 0,
    crossover_rate: float = 0.0,
    crossover_eta: float = 10.0,
    colour: str = "auto",
    options: dict | None = None,
):
    """Returns ``(Encoding, extra)`` for a named encoding and the model's input shape.

    ``colour``: for 3-channel images the direct genome is HSV (the paper); ``rgb``
    uses the genes as RGB directly. ``options``: encoding-specific settings
    (e.g. the CPPN's capacities and mutation probabilities).
    """
    if not 0.0 <= mutation_rate0 <= 1.0:  # (NaN fails this too)
        raise InputError(f"mutation probability {mutation_rate0} is not in [0, 1]")
    if not 0.0 <= crossover_rate <= 1.0:
        raise InputError(f"crossover probability {crossover_rate} is not in [0, 1]")
    # ``eta < 0`` is False for NaN: check finiteness explicitly
    check_finite("mutation_eta (distribution index)", mutation_eta, 0.0)
    check_finite("crossover_eta (distribution index)", crossover_eta, 0.0)
    check_int("halve_every (0 = constant rate)", halve_every, 0)
    if colour not in COLOURS:
        raise InputError(f"unknown colour '{colour}' (known: {', '.join(COLOURS)})")
    if options is not None and not isinstance(options, dict):
        raise InputError(f"options must be a dict, got {type(options).__name__}")
    if name == "direct":
        _check_image_shape(image_shape)
        h, w, c = (int(d) for d in image_shape)
        if c == 1 or colour == "rgb":
            decode = decode_grey
        elif c == 3:
            decode = decode_hsv
        else:
            raise FooljaxError(f"direct encoding cannot decode {c}-channel images")

        def mutate(key, genome, generation):
            rate = mutation_rate(mutation_rate0, halve_every, generation)
            return polynomial_mutation(key, genome, rate=rate, eta=mutation_eta)

        def crossover(key, a, b):
            return sbx_crossover(key, a, b, eta=crossover_eta)

        enc = Encoding(
            init=lambda key: init_direct(key, (h, w, c)),
            mutate=mutate,
            decode=decode,
            crossover=crossover if crossover_rate > 0 else None,
            crossover_rate=crossover_rate,
        )
        return enc, {}
    if name == "cppn":
        if crossover_rate > 0:
            raise FooljaxError("the CPPN encoding has no crossover: use crossover 0")
        if halve_every > 0:
            raise FooljaxError(
                "mutation halving is a direct-encoding schedule: use 0 with the CPPN"
            )
        # The generic mutation settings drive the CPPN's weight mutation unless
        # the options name them explicitly.
        opts = {"weight_rate": mutation_rate0, "weight_eta": mutation_eta}
        opts.update(options or {})
        return make_cppn_encoding(image_shape, **opts)
    raise FooljaxError(f"unknown encoding '{name}' (known: {', '.join(ENCODINGS)})")
