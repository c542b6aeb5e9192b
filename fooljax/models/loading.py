"""Weights for registered models, and the ``(logits_fn, params)`` pair built
from them: embedded checkpoints, training work directories, ``.npz`` files and
foreign formats detected from content."""

from __future__ import annotations

import json
import os
from importlib import resources

import jax
import jax.numpy as jnp
import numpy as np

from fooljax.checks import check_input_shape
from fooljax.errors import FooljaxError, WeightsError
from fooljax.io.checkpoint import restore_params_dir
from fooljax.io.params import check_shapes, load_params_npz, looks_like_npz
from fooljax.models import foreign
from fooljax.models.preprocess import make_preprocess
from fooljax.models.registry import Classifier, ModelSpec, get_spec, init_params

_PRETRAINED = {"lenet_mnist": ("lenet", "lenet_mnist.npz")}


def _pretrained_file(name: str):
    """``(model name, packaged .npz)`` of an embedded checkpoint."""
    if name not in _PRETRAINED:
        raise FooljaxError(
            f"no embedded model '{name}' (have: {', '.join(_PRETRAINED)})"
        )
    model_name, fname = _PRETRAINED[name]
    return model_name, resources.files("fooljax.models") / "pretrained" / fname


def pretrained_metadata(name: str) -> dict:
    _, ref = _pretrained_file(name)
    with resources.as_file(ref) as p, np.load(p) as z:
        return json.loads(bytes(z["__metadata__"]).decode())


def load_pretrained(name: str = "lenet_mnist"):
    """Returns ``(model, params)`` of an embedded checkpoint; no data or network."""
    model_name, ref = _pretrained_file(name)
    spec = get_spec(model_name)
    with resources.as_file(ref) as p:
        params = load_params_npz(str(p), param_shapes(spec))
    return spec.build(), params


def param_shapes(spec: ModelSpec):
    """``spec``'s params as ``jax.ShapeDtypeStruct`` leaves (``eval_shape`` of
    ``init``): the template of readers that check shapes only, without running
    the initializers (eagerly, one XLA compile per op: ~0.5 s of LeNet's
    start-up, tens of seconds for a big network)."""
    model = spec.build()
    shape = (1, *spec.input_shape)
    try:
        # the key is made inside the trace too: an eager key is another compile
        return jax.eval_shape(
            lambda: model.init(jax.random.key(0), jnp.zeros(shape, jnp.float32))
        )
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        # an init that runs host code on its key (MobileNet's NumPy init)
        params = model.init(jax.random.key(0), jnp.zeros(shape, jnp.float32))
        return jax.tree_util.tree_map(
            lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), params
        )


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
    if weights == "default":
        if spec.pretrained is None:
            raise FooljaxError(
                f"model '{spec.name}' has no embedded weights; pass --weights=FILE"
            )
        return load_pretrained(spec.pretrained)[1]
    if weights == "init":
        return init_params(spec)
    if os.path.isdir(weights):
        return restore_params_dir(weights, param_shapes(spec))
    if not os.path.exists(weights):
        raise WeightsError(f"weights file {weights} does not exist")
    if looks_like_npz(weights):
        return load_params_npz(weights, param_shapes(spec))
    # foreign formats: their readers may use the template's values
    template = init_params(spec)
    if spec.load_file is None:
        raise WeightsError(f"model '{spec.name}' cannot read {weights}")
    params = spec.load_file(weights, template)
    check_shapes(params, template, weights)
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
    Caffe weights). ``logits_fn`` refuses images whose ``[H, W, C]`` is not the
    model's ``input_shape`` (only ``C`` for models that resize their input,
    ``resizes_input``) with an ``InputError``, at trace time.
    """
    if _foreign_spec(name, weights) is not None:
        return _load_foreign(name, weights, preprocess, mean)
    spec = get_spec(name)
    params = load_params(spec, weights)
    return _classifier(spec, spec.build(), params, preprocess, mean, spec.num_classes)


_FRAMEWORKS = ("torch", "keras", "onnx")


def _foreign_spec(name: str, weights: str) -> str | None:
    """``torch:PATH``/``keras:PATH``/``onnx:PATH`` named by ``name`` (or by
    ``name`` ``torch`` and ``weights`` ``PATH``, as ``NAME:WEIGHTS`` lists
    split it), or by ``weights`` of a registered model; else None."""
    if isinstance(name, str) and name.split(":", 1)[0] in _FRAMEWORKS:
        return name if ":" in name else f"{name}:{weights}"
    if isinstance(weights, str) and weights.split(":", 1)[0] in _FRAMEWORKS:
        return weights if ":" in weights else None
    return None


def _load_foreign(name, weights, preprocess, mean) -> Classifier:
    """A PyTorch/Keras/ONNX model (``fooljax.models.foreign``); a registered
    ``name`` with foreign ``weights`` lends its image shape, classes and class
    names."""
    spec = _foreign_spec(name, weights)
    if spec == name and ":" in name and weights not in ("default", "", None):
        raise FooljaxError(
            f"--model={name} holds its own weights; drop --weights={weights}"
        )
    pre = make_preprocess(preprocess, mean=mean) if preprocess else None
    if spec == weights:
        reg = get_spec(name)
        return foreign.load_foreign(
            spec,
            input_shape=reg.input_shape,
            num_classes=reg.num_classes,
            class_names=reg.class_names,
            preprocess=pre,
        )
    return foreign.load_foreign(spec, preprocess=pre)


def _classifier(spec, model, params, preprocess, mean, num_classes) -> Classifier:
    name = spec.name
    pre = make_preprocess(
        preprocess or spec.default_preprocess, mean=mean, image_shape=spec.input_shape
    )
    resizes = bool(getattr(model, "resizes_input", False))

    def logits_fn(params, images):
        # at trace time (static shapes, free): a wrong H, W or channel count
        # would otherwise fail deep inside the network, or worse broadcast
        # (1 channel through a 3-channel mean/std) and run
        check_input_shape(
            np.shape(images), spec.input_shape, model=f"model '{name}'", resizes=resizes
        )
        return model.apply(params, pre(images))

    names = spec.class_names if num_classes == spec.num_classes else None
    return Classifier(logits_fn, params, spec.input_shape, num_classes, name, names)


def classifier_with_classes(
    name: str,
    num_classes: int,
    *,
    preprocess: str | None = None,
    mean: np.ndarray | None = None,
    seed: int = 0,
) -> Classifier:
    """Registered model ``name`` rebuilt with ``num_classes`` outputs (its
    Flax module's ``num_classes`` field), with random params from ``seed``:
    the n + 1-class networks of the retraining experiment (Nguyen et al. 2015
    §3.6). Models without such a field are refused."""
    spec = get_spec(name)
    model = spec.build()
    if not hasattr(model, "num_classes"):
        raise FooljaxError(f"model '{name}' has no num_classes field to change")
    model = model.clone(num_classes=num_classes)
    params = model.init(jax.random.key(seed), jnp.zeros((1, *spec.input_shape)))
    return _classifier(spec, model, params, preprocess, mean, num_classes)
