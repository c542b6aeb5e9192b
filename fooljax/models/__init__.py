"""Model registry: pick networks by name, load weights, get a ``logits_fn``.

Everything in fooljax that consumes a classifier takes a pure
``logits_fn(params, images)`` (``images: [B, H, W, C]`` float32 in [0, 1]) and
its ``params``. ``load_classifier`` builds that pair for a registered model; a
user's own Flax model plugs in directly with
``logits_fn = lambda p, x: model.apply(p, x)``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from importlib import resources
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fooljax.errors import FooljaxError, WeightsError
from fooljax.models.lenet import LeNet
from fooljax.models.preprocess import make_preprocess

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


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Adds a model to the registry (later registrations replace earlier ones)."""
    _REGISTRY[spec.name] = spec
    return spec


def get_spec(name: str) -> ModelSpec:
    if name not in _REGISTRY:
        raise FooljaxError(
            f"unknown model '{name}' (known: {', '.join(sorted(_REGISTRY))})"
        )
    return _REGISTRY[name]


def model_names() -> list[str]:
    return sorted(_REGISTRY)


class Classifier(NamedTuple):
    """A plain bundle of data: the pure function, its params and metadata."""

    logits_fn: LogitsFn
    params: Any
    input_shape: tuple[int, int, int]
    num_classes: int
    name: str
    class_names: tuple[str, ...] | None = None


def init_params(spec: ModelSpec, seed: int = 0):
    model = spec.build()
    return model.init(jax.random.key(seed), jnp.zeros((1, *spec.input_shape)))


def _lenet_load_file(path: str, template):
    from fooljax.io.caffe import caffe_to_flax, load_caffemodel, looks_like_caffemodel

    if not looks_like_caffemodel(path):
        raise WeightsError(f"{path}: not a Caffe caffemodel (unrecognised content)")
    return caffe_to_flax(
        load_caffemodel(path), template, flatten_chw={"ip1": (50, 4, 4)}, source=path
    )


register(
    ModelSpec(
        name="lenet",
        build=lambda: LeNet(num_classes=10),
        input_shape=(28, 28, 1),
        num_classes=10,
        default_preprocess="identity",
        load_file=_lenet_load_file,
        pretrained="lenet_mnist",
        class_names=tuple(str(i) for i in range(10)),
    )
)

_PRETRAINED = {"lenet_mnist": ("lenet", "lenet_mnist.npz")}


def _unflatten(flat: dict[str, np.ndarray]) -> dict:
    tree: dict = {}
    for key, value in flat.items():
        node = tree
        parts = key.split("/")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = jnp.asarray(value)
    return tree


def flatten_params(params) -> dict[str, np.ndarray]:
    """``{"params": {"conv1": {"kernel": ...}}}`` -> ``{"params/conv1/kernel": ...}``."""
    flat = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        key = "/".join(str(getattr(p, "key", p)) for p in path)
        flat[key] = np.asarray(leaf)
    return flat


def save_params_npz(path: str, params, metadata: dict | None = None) -> None:
    """Writes params (and optional JSON metadata) to ``path`` atomically."""
    flat = flatten_params(params)
    if metadata is not None:
        flat["__metadata__"] = np.frombuffer(
            json.dumps(metadata).encode(), dtype=np.uint8
        )
    tmp = path + ".tmp.npz"
    np.savez(tmp, **flat)
    os.replace(tmp, path)


def load_params_npz(path: str, template=None):
    """Reads params saved by ``save_params_npz``; checks shapes against ``template``."""
    try:
        with np.load(path) as z:
            flat = {k: z[k] for k in z.files if k != "__metadata__"}
    except (OSError, ValueError) as e:
        raise WeightsError(f"cannot read params file {path}: {e}") from None
    params = _unflatten(flat)
    if template is not None:
        _check_shapes(params, template, path)
    return params


def _check_shapes(params, template, source: str):
    want = flatten_params(template)
    got = flatten_params(params)
    if set(want) != set(got):
        missing = sorted(set(want) - set(got))
        extra = sorted(set(got) - set(want))
        raise WeightsError(
            f"{source}: parameters do not fit the model (missing {missing[:3]}, "
            f"unexpected {extra[:3]})"
        )
    for name, w in want.items():
        if w.shape != got[name].shape:
            raise WeightsError(
                f"{source}: '{name}' has shape {got[name].shape}, "
                f"the model expects {w.shape}"
            )


def pretrained_metadata(name: str) -> dict:
    if name not in _PRETRAINED:
        raise FooljaxError(
            f"no embedded model '{name}' (have: {', '.join(_PRETRAINED)})"
        )
    _, fname = _PRETRAINED[name]
    ref = resources.files("fooljax.models") / "pretrained" / fname
    with resources.as_file(ref) as p, np.load(p) as z:
        return json.loads(bytes(z["__metadata__"]).decode())


def load_pretrained(name: str = "lenet_mnist"):
    """Returns ``(model, params)`` of an embedded checkpoint; no data or network."""
    if name not in _PRETRAINED:
        raise FooljaxError(
            f"no embedded model '{name}' (have: {', '.join(_PRETRAINED)})"
        )
    model_name, fname = _PRETRAINED[name]
    spec = get_spec(model_name)
    ref = resources.files("fooljax.models") / "pretrained" / fname
    with resources.as_file(ref) as p:
        params = load_params_npz(str(p), init_params(spec))
    return spec.build(), params


def load_params(spec: ModelSpec, weights: str):
    """Params for ``spec`` from ``weights``.

    ``weights``: ``default`` (embedded checkpoint), ``init`` (random, seed 0), a
    training work directory / checkpoint directory, a ``.npz`` from
    ``save_params_npz``, or a foreign weights file whose format the model's
    ``load_file`` detects from content.
    """
    if "$" in weights:
        expanded = os.path.expandvars(weights)
        if "$" in expanded:
            raise WeightsError(
                f"--weights={weights} names an unset environment variable "
                "(set FOOLJAX_DATA to the folder with the data and weights)"
            )
        weights = expanded
    template = init_params(spec)
    if weights == "default":
        if spec.pretrained is None:
            raise FooljaxError(
                f"model '{spec.name}' has no embedded weights; pass --weights=FILE"
            )
        return load_pretrained(spec.pretrained)[1]
    if weights == "init":
        return template
    if os.path.isdir(weights):
        from fooljax.io.checkpoint import restore_params_dir

        return restore_params_dir(weights, template)
    if not os.path.exists(weights):
        raise WeightsError(f"weights file {weights} does not exist")
    with open(weights, "rb") as f:
        head = f.read(4)
    if head == b"PK\x03\x04":
        return load_params_npz(weights, template)
    if spec.load_file is None:
        raise WeightsError(f"model '{spec.name}' cannot read {weights}")
    params = spec.load_file(weights, template)
    _check_shapes(params, template, weights)
    return params


def load_classifier(
    name: str,
    weights: str = "default",
    *,
    preprocess: str | None = None,
    mean: np.ndarray | None = None,
) -> Classifier:
    """Builds ``(logits_fn, params)`` for a registered model.

    ``preprocess``: see ``fooljax.models.preprocess``; defaults to the model's own
    (``identity`` for fooljax checkpoints; pass ``unit`` or ``caffe_deploy`` for
    Caffe weights).
    """
    spec = get_spec(name)
    params = load_params(spec, weights)
    pre = make_preprocess(
        preprocess or spec.default_preprocess, mean=mean, image_shape=spec.input_shape
    )
    model = spec.build()

    def logits_fn(params, images):
        return model.apply(params, pre(images))

    return Classifier(
        logits_fn, params, spec.input_shape, spec.num_classes, name, spec.class_names
    )


# Model families register themselves in their own modules (keep this last).
from fooljax.models import alexnet as _alexnet  # noqa: E402,F401
from fooljax.models import cifar_nets as _cifar_nets  # noqa: E402,F401
from fooljax.models import keras_cifar as _keras_cifar  # noqa: E402,F401
from fooljax.models import mlp as _mlp  # noqa: E402,F401
from fooljax.models import mobilenet as _mobilenet  # noqa: E402,F401
