"""The model registry: named networks, how to build them and read their weights.

Model families register themselves in their own modules (``lenet``, ``mlp``,
``cifar_nets``, ``keras_cifar``, ``mobilenet``, ``alexnet``), which import this
module, never the package ``fooljax.models``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from fooljax.errors import FooljaxError

LogitsFn = Callable[[Any, jnp.ndarray], jnp.ndarray]


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """How to build a registered model and read its weights.

    ``load_file(path, template) -> params`` reads a weights file whose format it
    detects from content; ``None`` when the model has no foreign format.
    """

    name: str
    build: Callable[[], Any]
    input_shape: tuple[int, int, int]
    num_classes: int
    default_preprocess: str = "identity"
    load_file: Callable[[str, Any], Any] | None = None
    pretrained: str | None = None  # name of the embedded default, if any
    class_names: tuple[str, ...] | None = None


class Classifier(NamedTuple):
    """A plain bundle of data: the pure function, its params and metadata."""

    logits_fn: LogitsFn
    params: Any
    input_shape: tuple[int, int, int]
    num_classes: int
    name: str
    class_names: tuple[str, ...] | None = None


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Adds a model to the registry (later registrations replace earlier ones)."""
    _REGISTRY[spec.name] = spec
    return spec


def register_family(
    builds: Mapping[str, Callable[[], Any]],
    *,
    input_shape: tuple[int, int, int],
    num_classes: int,
    class_names: tuple[str, ...] | None = None,
    load_file: Callable[[str, Any], Any] | None = None,
    pretrained: str | None = None,
) -> None:
    """Registers every ``name: build`` of ``builds`` with the same input shape,
    classes and weights reader (``default_preprocess="identity"``: fooljax
    modules carry their own normalisation)."""
    for name, build in builds.items():
        register(
            ModelSpec(
                name=name,
                build=build,
                input_shape=input_shape,
                num_classes=num_classes,
                load_file=load_file,
                pretrained=pretrained,
                class_names=class_names,
            )
        )


def get_spec(name: str) -> ModelSpec:
    if name not in _REGISTRY:
        raise FooljaxError(
            f"unknown model '{name}' (known: {', '.join(sorted(_REGISTRY))})"
        )
    return _REGISTRY[name]


def model_names() -> list[str]:
    return sorted(_REGISTRY)


def init_params(spec: ModelSpec, seed: int = 0):
    """Random params of ``spec``'s model (seed 0 by default), also the template
    every weights reader checks shapes against."""
    model = spec.build()
    return model.init(jax.random.key(seed), jnp.zeros((1, *spec.input_shape)))
