"""Classifiers from other frameworks (PyTorch, Keras/TensorFlow, ONNX) behind
fooljax's pure ``logits_fn(params, images)``.

``from_torch``, ``from_keras`` and ``from_onnx`` return the same ``Classifier``
bundle as ``load_classifier``. The network runs in its own framework through
``jax.pure_callback``: one host call per batch (also under ``vmap``, whose
extra axes are folded into the batch), inside ``jit``, ``scan`` and
``lax.map``, so every black-box method (MAP-Elites, one-pixel, transfer) runs
unchanged. Gradients come from a ``jax.custom_vjp`` whose backward calls the
framework's own autograd (``torch.autograd``, ``tf.GradientTape``), so FGSM/PGD,
L-BFGS and gradient ascent work too; ONNX models are black-box only and raise a
``ForeignModelError`` when a gradient is traced.

Images enter as fooljax's ``[B, H, W, C]`` float32 in [0, 1]; ``preprocess``
(applied in JAX, so it is differentiated by JAX) maps them to what the network
was trained on, and ``layout`` transposes to NCHW where the network wants it.
``preprocess`` is ``None`` (the network takes [0, 1]), a name (``"pixels"``:
0..255; or a ``fooljax.models.preprocess`` name), a dict
``{"scale": 255, "mean": [...], "std": [...]}`` (``(x * scale - mean) / std``
per channel) or a JAX function of the NHWC images.

Every adapter runs the network once on a probe batch when it is built: a
network that raises, returns NaN, a non-float dtype or not ``[B, num_classes]``
is refused there with one line naming the model and the problem. The same
checks run on every call inside the callback; such an error inside compiled
code reaches the caller as JAX's runtime error, and ``callback_error(e)``
recovers the one-line ``ForeignModelError``.

The frameworks are optional extras, imported only when such a model is built.
Command lines name a foreign model as ``torch:PATH`` (TorchScript),
``keras:PATH`` (``.h5``/``.keras``) or ``onnx:PATH``, optionally followed by
``?key=value&...`` options (``shape=28x28x1``, ``classes=10``, ``layout=NCHW``,
``scale=255``, ``mean=a/b/c``, ``std=a/b/c``, ``outputs=logits|probs``); see
``load_foreign``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fooljax.checks import check_input_shape
from fooljax.errors import FooljaxError
from fooljax.models.preprocess import make_preprocess
from fooljax.models.registry import Classifier

FRAMEWORKS = ("torch", "keras", "onnx")
LAYOUTS = ("NCHW", "NHWC")
_EXTRAS = {"torch": "torch", "tensorflow": "tf", "keras": "tf", "onnxruntime": "onnx"}
_PROBE_BATCH = 2


class ForeignModelError(FooljaxError):
    """A foreign model raised, returned NaN or the wrong shape/dtype, or was
    asked for something it cannot do (a gradient from an ONNX model)."""


# the last error raised inside a callback: compiled code re-raises it as a
# JaxRuntimeError with a traceback in its text; ``callback_error`` gets it back
_LAST_ERROR: list[ForeignModelError | None] = [None]


def callback_error(e: BaseException) -> ForeignModelError | None:
    """The one-line ``ForeignModelError`` behind a JAX runtime error raised by
    a foreign model's callback (``None`` for any other exception)."""
    if isinstance(e, ForeignModelError):
        return e
    err = _LAST_ERROR[0]
    if err is not None and "callback" in str(e) and str(err) in str(e):
        return err
    return None


def _one_line(text, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _import(module: str):
    """Imports an optional framework, or one line naming the extra to install."""
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as e:
        extra = _EXTRAS.get(module.split(".")[0], module)
        raise FooljaxError(
            f"{module} is not installed ({_one_line(e, 120)}); "
            f"pip install 'fooljax[{extra}]'"
        ) from None


# ---------------------------------------------------------------------------
# preprocessing and layout


def make_foreign_preprocess(preprocess, image_shape) -> Callable:
    """``f(images NHWC in [0, 1]) -> network input NHWC`` (a JAX function)."""
    if preprocess is None:
        return lambda x: x
    if callable(preprocess):
        return preprocess
    if isinstance(preprocess, str):
        if preprocess in ("pixels", "0-255", "255"):
            return lambda x: x * 255.0
        return make_preprocess(preprocess, image_shape=image_shape)
    if isinstance(preprocess, dict):
        unknown = set(preprocess) - {"scale", "mean", "std"}
        if unknown:
            raise FooljaxError(
                f"preprocess dict has unknown keys {sorted(unknown)} "
                "(use scale, mean, std)"
            )
        c = image_shape[-1]
        scale = float(preprocess.get("scale", 1.0))

        def vec(key, default):
            v = np.asarray(preprocess.get(key, default), np.float32).reshape(-1)
            if v.size not in (1, c):
                raise FooljaxError(
                    f"preprocess {key} has {v.size} values, the images have {c} "
                    "channels"
                )
            return v

        mean, std = vec("mean", 0.0), vec("std", 1.0)
        if not np.all(np.isfinite(mean)) or not np.all(std > 0):
            raise FooljaxError("preprocess std must be > 0 and mean finite")
        inv = jnp.asarray(1.0 / std)
        mean_j = jnp.asarray(mean)
        return lambda x: (x * scale - mean_j) * inv
    raise FooljaxError(
        f"preprocess must be None, a name, a dict or a function, got "
        f"{type(preprocess).__name__}"
    )


def _check_layout(layout: str) -> str:
    up = str(layout).upper()
    if up not in LAYOUTS:
        raise FooljaxError(f"layout must be NCHW or NHWC, got {layout!r}")
    return up


def _check_shape(input_shape, what: str) -> tuple[int, int, int]:
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise FooljaxError(
            f"{what}: input_shape must be fooljax's [H, W, C] (3 positive ints), "
            f"got {input_shape!r}"
        )
    return shape


def _to_layout(x, layout: str):
    return jnp.moveaxis(x, -1, -3) if layout == "NCHW" else x


def _model_item_shape(input_shape, layout):
    h, w, c = input_shape
    return (c, h, w) if layout == "NCHW" else (h, w, c)


# ---------------------------------------------------------------------------
# the callback core


def _error_text(e: BaseException) -> str:
    """An exception's message; of a multi-line one (TorchScript's interpreter
    traceback) its last line, where the error itself is."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[-1] if len(lines) > 1 else " ".join(lines)


class _Runner:
    """NumPy side of a foreign model: ``forward(x) -> [N, K]`` and
    ``vjp(x, g) -> dL/dx`` on network inputs ``x [N, *item]`` in the model's
    layout, with the checks every call goes through. Leading axes (a caller's
    ``vmap``) are folded into the batch, so one call serves a whole batch."""

    def __init__(self, name, forward, vjp, item_shape, num_classes, outputs):
        self.name = name
        self.forward = forward
        self.vjp = vjp  # None: black box
        self.no_grad_reason = "it is a black box" if vjp is None else None
        self.item_shape = tuple(item_shape)
        self.num_classes = num_classes
        self.outputs = outputs  # "logits" or "probs" (-> log)

    def fail(self, problem: str) -> ForeignModelError:
        err = ForeignModelError(_one_line(f"model '{self.name}' {problem}"))
        _LAST_ERROR[0] = err
        return err

    def _flat(self, x):
        x = np.asarray(x, np.float32)
        lead = x.shape[: x.ndim - 3]
        return x.reshape((-1, *x.shape[-3:])), lead

    def _check_out(self, out, n, x_shape):
        try:
            out = np.asarray(out)
        except Exception as e:
            raise self.fail(
                f"returned a {type(out).__name__}, not an array ({e})"
            ) from None
        k = self.num_classes
        want = f"[{n}, {k if k is not None else 'num_classes'}]"
        if out.ndim != 2 or out.shape[0] != n or (k is not None and out.shape[1] != k):
            raise self.fail(
                f"returned shape {list(out.shape)} for input {list(x_shape)}, "
                f"expected {want} (check input_shape, layout and num_classes)"
            )
        if not np.issubdtype(out.dtype, np.floating):
            raise self.fail(f"returned dtype {out.dtype}, expected floating point")
        out = out.astype(np.float32)
        if self.outputs == "probs":
            if np.any(out < 0) or np.any(np.abs(out.sum(-1) - 1) > 1e-3):
                raise self.fail(
                    "was declared to return probabilities but its rows do not sum "
                    "to 1 (pass outputs='logits')"
                )
            with np.errstate(divide="ignore"):
                out = np.log(out)
        elif not np.all(np.isfinite(out)):
            bad = int((~np.isfinite(out)).any(-1).sum())
            raise self.fail(f"returned NaN or inf logits for {bad} of {n} images")
        return out

    def logits(self, x):
        flat, lead = self._flat(x)
        n = flat.shape[0]
        if n == 0:
            return np.zeros((*lead, self.num_classes), np.float32)
        try:
            out = self.forward(flat)
        except ForeignModelError:
            raise
        except Exception as e:
            raise self.fail(
                f"raised {type(e).__name__} on input {list(flat.shape)}: "
                f"{_error_text(e)}"
            ) from None
        out = self._check_out(out, n, flat.shape)
        return out.reshape((*lead, out.shape[-1]))

    def input_grad(self, x, g):
        flat, lead = self._flat(x)
        g = np.asarray(g, np.float32).reshape(-1, self.num_classes)
        if flat.shape[0] == 0:
            return np.zeros(np.shape(x), np.float32)
        if self.outputs == "probs":  # d log p / dp = 1 / p
            p = np.exp(self.logits(flat))
            g = g / np.maximum(p, np.finfo(np.float32).tiny)
        try:
            grad = np.asarray(self.vjp(flat, g))
        except Exception as e:
            raise self.fail(
                f"gradient raised {type(e).__name__} on input {list(flat.shape)}: "
                f"{_error_text(e)}"
            ) from None
        if grad.shape != flat.shape or not np.all(np.isfinite(grad)):
            raise self.fail(
                f"gradient has shape {list(grad.shape)} (want {list(flat.shape)}) "
                "or is not finite"
            )
        return grad.astype(np.float32).reshape(np.shape(x))


def _callback_fn(runner: _Runner) -> Callable:
    """``f(x) -> logits`` on network inputs (model layout), a ``custom_vjp``
    around ``jax.pure_callback``."""

    def call(x):
        k = runner.num_classes  # known once the probe batch has run
        out = jax.ShapeDtypeStruct((*x.shape[:-3], k), jnp.float32)
        return jax.pure_callback(runner.logits, out, x, vmap_method="broadcast_all")

    @jax.custom_vjp
    def f(x):
        return call(x)

    def fwd(x):
        return call(x), x

    def bwd(x, g):
        if runner.no_grad_reason is not None:
            raise runner.fail(
                f"cannot give gradients: {runner.no_grad_reason}; use a black-box "
                "method (MAP-Elites, one-pixel, transfer)"
            )
        out = jax.ShapeDtypeStruct(x.shape, jnp.float32)
        grad = jax.pure_callback(
            runner.input_grad, out, x, g, vmap_method="broadcast_all"
        )
        return (grad.astype(x.dtype),)

    f.defvjp(fwd, bwd)
    return f


def _build(
    runner: _Runner,
    *,
    input_shape,
    layout,
    preprocess,
    class_names=None,
    probe: bool = True,
) -> Classifier:
    """The ``Classifier`` around ``runner``, after a probe batch."""
    input_shape = _check_shape(input_shape, f"model '{runner.name}'")
    pre = make_foreign_preprocess(preprocess, input_shape)
    net = _callback_fn(runner)
    name = runner.name

    def logits_fn(params, images):
        del params  # the weights live in the other framework
        check_input_shape(np.shape(images), input_shape, model=f"model '{name}'")
        x = pre(jnp.asarray(images, jnp.float32))
        return net(_to_layout(x.astype(jnp.float32), layout))

    if probe:
        _probe(runner, input_shape, pre, layout)
    if class_names is not None and len(class_names) != runner.num_classes:
        class_names = None
    return Classifier(
        logits_fn, {}, input_shape, int(runner.num_classes), name, class_names
    )


def _probe(runner: _Runner, input_shape, pre, layout):
    """Runs the model on a probe batch of random images (eagerly, outside
    JAX): the output must be ``[B, num_classes]`` finite floats; the gradient
    is tried once, and a model whose autograd fails is marked black-box."""
    images = np.random.default_rng(0).random((_PROBE_BATCH, *input_shape), np.float32)
    try:
        x = np.asarray(_to_layout(pre(jnp.asarray(images)), layout), np.float32)
    except FooljaxError:
        raise
    except Exception as e:
        raise runner.fail(
            f"preprocess failed on images {list(images.shape)}: {type(e).__name__}: {e}"
        ) from None
    if x.shape != (_PROBE_BATCH, *runner.item_shape):
        raise runner.fail(
            f"preprocess turned images {list(images.shape)} into {list(x.shape)}, "
            f"expected {[_PROBE_BATCH, *runner.item_shape]}"
        )
    out = runner.logits(x)
    if runner.num_classes is None:
        runner.num_classes = int(out.shape[-1])
    if runner.vjp is not None:
        try:
            runner.input_grad(x, np.ones_like(out))
        except ForeignModelError as e:
            runner.no_grad_reason = f"its autograd failed on a probe batch ({e})"
    _LAST_ERROR[0] = None


def _check_outputs(outputs: str, allowed) -> str:
    if outputs not in allowed:
        raise FooljaxError(
            f"outputs must be one of {', '.join(allowed)}, got {outputs!r}"
        )
    return outputs


# ---------------------------------------------------------------------------
# PyTorch


def from_torch(
    module,
    input_shape,
    num_classes: int,
    *,
    layout: str = "NCHW",
    preprocess=None,
    outputs: str = "logits",
    name: str | None = None,
    class_names=None,
) -> Classifier:
    """A ``torch.nn.Module`` (or TorchScript file path) as a ``Classifier``.

    Args:
      module: the network, put in ``eval()`` mode; its output on a batch is
        ``[B, num_classes]``. A ``str`` is loaded with ``torch.jit.load``.
      input_shape: fooljax's ``[H, W, C]`` of the images.
      num_classes: the output width, checked on a probe batch.
      layout: what the network takes: ``NCHW`` (PyTorch's) or ``NHWC``.
      preprocess: see the module docstring (e.g. ``{"scale": 1, "mean":
        [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}``).
      outputs: ``logits`` (default) or ``probs`` (the network ends in a
        softmax; its log is used as logits).

    The forward runs under ``torch.no_grad()`` on the module's device and
    dtype; gradients with respect to the images come from ``torch.autograd``.
    """
    layout = _check_layout(layout)
    _check_outputs(outputs, ("logits", "probs"))
    path = os.fspath(module) if isinstance(module, (str, os.PathLike)) else None
    if path is not None:
        name = name or f"torch:{path}"
        if not os.path.exists(path):  # before the (slow) import
            raise FooljaxError(f"model '{name}': file {path} does not exist")
    torch = _import("torch")
    if path is not None:
        try:
            if path.endswith(".pt2"):  # torch.export.save
                module = torch.export.load(path).module()
            else:
                module = torch.jit.load(path, map_location="cpu")
        except Exception as e:
            kind = "torch.export" if path.endswith(".pt2") else "TorchScript"
            raise FooljaxError(
                f"model '{name}': {path} is not a {kind} file "
                f"({type(e).__name__}: {_one_line(e, 150)})"
            ) from None
    if not callable(module):
        raise FooljaxError(
            f"from_torch needs a torch.nn.Module, got {type(module).__name__}"
        )
    name = name or f"torch:{type(module).__name__}"
    try:
        module.eval()  # dropout off, batch-norm statistics frozen
    except (AttributeError, NotImplementedError):
        pass  # torch.export modules are already in the mode they were exported in
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise FooljaxError(
            f"model '{name}': num_classes must be >= 1, got {num_classes}"
        )
    try:
        p = next(iter(module.parameters()))
        device, dtype = p.device, p.dtype if p.dtype.is_floating_point else None
    except (StopIteration, AttributeError, TypeError):
        device, dtype = torch.device("cpu"), None
    dtype = dtype or torch.float32

    def to_torch(x):
        if not x.flags.writeable:
            x = x.copy()
        return torch.from_numpy(x).to(device=device, dtype=dtype)

    def forward(x):
        with torch.no_grad():
            out = module(to_torch(x))
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"returned {type(out).__name__}, not a tensor")
        if not out.dtype.is_floating_point:
            return out.cpu().numpy()
        return out.detach().float().cpu().numpy()

    def vjp(x, g):
        with torch.enable_grad():
            xt = to_torch(x).requires_grad_(True)
            out = module(xt)
            (grad,) = torch.autograd.grad(
                out, xt, grad_outputs=to_torch(g).to(out.dtype)
            )
        return grad.detach().float().cpu().numpy()

    runner = _Runner(
        name,
        forward,
        vjp,
        _model_item_shape(_check_shape(input_shape, f"model '{name}'"), layout),
        int(num_classes),
        outputs,
    )
    return _build(
        runner,
        input_shape=input_shape,
        layout=layout,
        preprocess=preprocess,
        class_names=class_names,
    )


# ---------------------------------------------------------------------------
# Keras / TensorFlow


def _keras_softmax_split(keras, model):
    """``(logits model, True)`` when ``model`` ends in a softmax that can be
    cut off, else ``(model, False)``."""

    def is_softmax(fn):
        return getattr(fn, "__name__", "") == "softmax"

    layers = getattr(model, "layers", None)
    if not layers:
        return model, False
    last = layers[-1]
    cls = last.__class__.__name__
    if cls == "Softmax" or (cls == "Activation" and is_softmax(last.activation)):
        return keras.Model(model.inputs, layers[-2].output), True
    if not is_softmax(getattr(last, "activation", None)):
        return model, False
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    clone.layers[-1].activation = keras.activations.linear
    return clone, True


def _load_keras(keras, path: str, name: str):
    if not os.path.exists(path):
        raise FooljaxError(f"model '{name}': file {path} does not exist")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as e:
        first = e
    if path.endswith((".h5", ".hdf5")):
        # Keras 2 HDF5 files whose config current Keras cannot read (layer
        # arguments since removed): rebuild the Sequential from the config
        # with the unknown arguments dropped, then load the weights
        try:
            return _load_old_keras_h5(keras, path)
        except Exception:
            pass
    raise FooljaxError(
        f"model '{name}': {path} does not load as a Keras model "
        f"({type(first).__name__}: {_one_line(first, 150)})"
    ) from None


_OLD_KERAS_DROP = (
    "batch_input_shape",
    "input_dtype",
    "kernel_constraint",
    "bias_constraint",
    "activity_regularizer",
    "kernel_regularizer",
    "bias_regularizer",
)


def _load_old_keras_h5(keras, path: str):
    import h5py

    with h5py.File(path, "r") as f:
        raw = f.attrs["model_config"]
    cfg = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    if cfg.get("class_name") != "Sequential":
        raise ValueError("only Sequential Keras 2 models are rebuilt")
    layers_cfg = cfg["config"]
    layers_cfg = (
        layers_cfg.get("layers", layers_cfg)
        if isinstance(layers_cfg, dict)
        else layers_cfg
    )
    shape = None
    layers = []
    for lc in layers_cfg:
        conf = dict(lc["config"])
        if shape is None and "batch_input_shape" in conf:
            shape = tuple(conf["batch_input_shape"][1:])
        for k in _OLD_KERAS_DROP:
            conf.pop(k, None)
        for k in ("kernel_initializer", "bias_initializer"):
            conf.pop(k, None)
        conf.pop("dtype", None)
        cls = getattr(keras.layers, lc["class_name"])
        layers.append(cls.from_config(conf))
    model = keras.Sequential([keras.Input(shape), *layers])
    model.load_weights(path)
    return model


def from_keras(
    model_or_path,
    *,
    preprocess=None,
    outputs: str = "auto",
    layout: str = "NHWC",
    name: str | None = None,
    class_names=None,
) -> Classifier:
    """A Keras model (or ``.keras``/``.h5`` path) as a ``Classifier``.

    The input shape and class count come from the model (``[None, H, W, C]``
    in, ``[None, K]`` out; ``layout="NCHW"`` for ``channels_first`` models).
    ``outputs="auto"`` cuts off a final softmax (the logits before it are the
    ``logits_fn``), ``"probs"`` takes the log of the model's probabilities,
    ``"logits"`` takes the output as it is. The forward and the gradient
    (``tf.GradientTape``) are ``tf.function``s traced once per batch shape.
    """
    layout = _check_layout(layout)
    _check_outputs(outputs, ("auto", "logits", "probs"))
    if isinstance(model_or_path, (str, os.PathLike)):
        path = os.fspath(model_or_path)
        name = name or f"keras:{path}"
        if not os.path.exists(path):  # before the (slow) import
            raise FooljaxError(f"model '{name}': file {path} does not exist")
    tf = _import("tensorflow")
    keras = _import("keras")
    if isinstance(model_or_path, (str, os.PathLike)):
        model = _load_keras(keras, path, name)
    else:
        model = model_or_path
        name = name or f"keras:{getattr(model, 'name', type(model).__name__)}"
    try:
        in_shape = tuple(model.input_shape)
        out_shape = tuple(model.output_shape)
    except Exception as e:
        raise FooljaxError(
            f"model '{name}' has no input/output shape (build it first: {e})"
        ) from None
    if len(in_shape) != 4 or any(d is None for d in in_shape[1:]):
        raise FooljaxError(
            f"model '{name}' takes {list(in_shape)}, expected [None, H, W, C] "
            "with known sizes"
        )
    if len(out_shape) != 2 or out_shape[-1] is None:
        raise FooljaxError(
            f"model '{name}' returns {list(out_shape)}, expected [None, K]"
        )
    item = tuple(int(d) for d in in_shape[1:])
    if layout == "NCHW":
        c, h, w = item
        input_shape = (h, w, c)
    else:
        input_shape = item
    if outputs == "auto":
        try:
            model, _ = _keras_softmax_split(keras, model)
            outputs = "logits"
        except Exception:  # a softmax that cannot be cut off (subclassed model)
            outputs = "probs"
    spec = tf.TensorSpec([None, *item], tf.float32)

    @tf.function(input_signature=[spec], reduce_retracing=True)
    def tf_forward(x):
        return model(x, training=False)

    @tf.function(
        input_signature=[spec, tf.TensorSpec([None, out_shape[-1]], tf.float32)],
        reduce_retracing=True,
    )
    def tf_vjp(x, g):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.cast(model(x, training=False), tf.float32)
        return tape.gradient(y, x, output_gradients=g)

    def forward(x):
        return tf_forward(tf.constant(x)).numpy()

    def vjp(x, g):
        return tf_vjp(tf.constant(x), tf.constant(g)).numpy()

    runner = _Runner(name, forward, vjp, item, int(out_shape[-1]), outputs)
    return _build(
        runner,
        input_shape=input_shape,
        layout=layout,
        preprocess=preprocess,
        class_names=class_names,
    )


# ---------------------------------------------------------------------------
# ONNX


def _onnx_guess_layout(dims) -> str | None:
    c1, c3 = dims[1], dims[3]
    chan = (1, 3, 4)
    if isinstance(c1, int) and c1 in chan and not (isinstance(c3, int) and c3 in chan):
        return "NCHW"
    if isinstance(c3, int) and c3 in chan and not (isinstance(c1, int) and c1 in chan):
        return "NHWC"
    return None


def from_onnx(
    path,
    *,
    layout: str | None = None,
    preprocess=None,
    input_shape=None,
    num_classes: int | None = None,
    outputs: str = "auto",
    name: str | None = None,
    class_names=None,
) -> Classifier:
    """An ONNX file as a black-box ``Classifier`` (onnxruntime, CPU).

    ``layout`` (``NCHW``/``NHWC``) and ``input_shape`` (``[H, W, C]``) are read
    from the graph's input when its sizes are static, else required. A graph
    with a fixed batch size is run in chunks of that size within one callback.
    ``outputs="auto"`` reads the input of a final ``Softmax`` node as the
    logits. Asking for a gradient raises a ``ForeignModelError``.
    """
    path = os.fspath(path)
    name = name or f"onnx:{path}"
    _check_outputs(outputs, ("auto", "logits", "probs"))
    if not os.path.exists(path):
        raise FooljaxError(f"model '{name}': file {path} does not exist")
    ort = _import("onnxruntime")
    with open(path, "rb") as f:
        blob = f.read()
    output_name = None
    if outputs == "auto":
        blob, output_name = _onnx_cut_softmax(blob)
        outputs = "logits"
    try:
        sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise FooljaxError(
            f"model '{name}': {path} does not load as an ONNX model "
            f"({type(e).__name__}: {_one_line(e, 150)})"
        ) from None
    inputs = sess.get_inputs()
    if len(inputs) != 1:
        raise FooljaxError(
            f"model '{name}' has {len(inputs)} inputs, expected one image input"
        )
    dims = [d if isinstance(d, int) else None for d in inputs[0].shape]
    if len(dims) != 4:
        raise FooljaxError(
            f"model '{name}' takes a rank-{len(dims)} input {inputs[0].shape}, "
            "expected [B, C, H, W] or [B, H, W, C]"
        )
    layout = _check_layout(layout) if layout else _onnx_guess_layout(dims)
    if layout is None:
        raise FooljaxError(
            f"model '{name}' takes {inputs[0].shape}: pass layout='NCHW' or 'NHWC'"
        )
    item = dims[1:]
    from_graph = (item[1], item[2], item[0]) if layout == "NCHW" else tuple(item)
    if input_shape is None:
        if any(d is None for d in from_graph):
            raise FooljaxError(
                f"model '{name}' takes {inputs[0].shape} with free sizes: pass "
                "input_shape=[H, W, C]"
            )
        input_shape = from_graph
    input_shape = _check_shape(input_shape, f"model '{name}'")
    for got, want in zip(from_graph, input_shape, strict=True):
        if got is not None and got != want:
            raise FooljaxError(
                f"model '{name}' takes {inputs[0].shape} ({layout}), not images of "
                f"{list(input_shape)}"
            )
    in_name = inputs[0].name
    out_name = output_name or sess.get_outputs()[0].name
    fixed_batch = dims[0]
    in_type = inputs[0].type
    np_dtype = {"tensor(double)": np.float64, "tensor(float16)": np.float16}.get(
        in_type, np.float32
    )

    def forward(x):
        x = x.astype(np_dtype, copy=False)
        if fixed_batch is None:
            return sess.run([out_name], {in_name: x})[0]
        n = x.shape[0]
        pad = -n % fixed_batch
        if pad:
            x = np.concatenate([x, np.repeat(x[-1:], pad, 0)])
        outs = [
            sess.run([out_name], {in_name: x[i : i + fixed_batch]})[0]
            for i in range(0, len(x), fixed_batch)
        ]
        return np.concatenate(outs)[:n]

    runner = _Runner(
        name,
        forward,
        None,
        _model_item_shape(input_shape, layout),
        num_classes,
        outputs,
    )
    runner.no_grad_reason = "ONNX models are black-box only"
    return _build(
        runner,
        input_shape=input_shape,
        layout=layout,
        preprocess=preprocess,
        class_names=class_names,
    )


def _onnx_cut_softmax(blob: bytes):
    """``(model bytes, output name)``: when the first output comes from a
    ``Softmax`` node, the graph also outputs that node's input (the logits)."""
    onnx = _import("onnx")
    try:
        model = onnx.load_from_string(blob)
    except Exception:
        return blob, None  # onnxruntime says what is wrong
    graph = model.graph
    if not graph.output:
        return blob, None
    out = graph.output[0].name
    producer = next((n for n in graph.node if out in n.output), None)
    if producer is None or producer.op_type not in ("Softmax", "LogSoftmax"):
        return blob, None
    logits = producer.input[0]
    graph.output.append(onnx.helper.make_empty_tensor_value_info(logits))
    return model.SerializeToString(), logits


# ---------------------------------------------------------------------------
# command-line names: torch:PATH, keras:PATH, onnx:PATH


def is_foreign(name: str | None) -> bool:
    """``torch:...``, ``keras:...`` or ``onnx:...``."""
    return isinstance(name, str) and name.split(":", 1)[0] in FRAMEWORKS and ":" in name


_OPTION_KEYS = ("shape", "classes", "layout", "scale", "mean", "std", "outputs")


def parse_foreign(spec: str) -> tuple[str, str, dict[str, Any]]:
    """``"torch:PATH?shape=28x28x1&classes=10"`` -> ``(framework, path, options)``
    with ``$VARS`` in the path expanded."""
    framework, rest = spec.split(":", 1)
    path, _, query = rest.partition("?")
    if "$" in path:
        expanded = os.path.expandvars(path)
        if "$" in expanded:
            raise FooljaxError(
                f"model {spec} names an unset environment variable (set "
                "FOOLJAX_DATA to the folder with the data and weights)"
            )
        path = expanded
    if not path:
        raise FooljaxError(f"model {spec} names no file ({framework}:PATH)")
    opts: dict[str, Any] = {}
    for item in filter(None, query.split("&")):
        key, eq, value = item.partition("=")
        if key not in _OPTION_KEYS or not eq:
            raise FooljaxError(
                f"model {spec}: unknown option {item!r} (use "
                f"{', '.join(k + '=' for k in _OPTION_KEYS)})"
            )
        try:
            if key == "shape":
                value = tuple(int(v) for v in re.split("[x,/]", value))
            elif key == "classes":
                value = int(value)
            elif key == "scale":
                value = float(value)
            elif key in ("mean", "std"):
                value = [float(v) for v in re.split("[,/]", value)]
        except ValueError:
            raise FooljaxError(f"model {spec}: bad value in {item!r}") from None
        opts[key] = value
    return framework, path, opts


def load_foreign(
    spec: str,
    *,
    input_shape=None,
    num_classes: int | None = None,
    class_names=None,
    preprocess=None,
    name: str | None = None,
) -> Classifier:
    """A ``Classifier`` from a command-line name ``torch:PATH``,
    ``keras:PATH`` or ``onnx:PATH`` with ``?key=value&...`` options:
    ``shape=HxWxC`` and ``classes=K`` (needed for TorchScript unless a
    registered model gives them), ``layout=NCHW|NHWC``, ``scale=255``,
    ``mean=a/b/c``, ``std=a/b/c`` (the preprocessing, see ``from_torch``),
    ``outputs=logits|probs|auto``. ``input_shape``/``num_classes``/
    ``class_names`` come from a registered model named with it
    (``--model=lenet --weights=torch:lenet.pt``); ``preprocess`` from a
    ``--preprocess`` flag when the options give none."""
    framework, path, opts = parse_foreign(spec)
    input_shape = opts.get("shape", input_shape)
    num_classes = opts.get("classes", num_classes)
    if any(k in opts for k in ("scale", "mean", "std")):
        preprocess = {k: opts[k] for k in ("scale", "mean", "std") if k in opts}
    kw: dict[str, Any] = {
        "preprocess": preprocess,
        "name": name or f"{framework}:{path}",
    }
    kw["class_names"] = class_names
    if "outputs" in opts:
        kw["outputs"] = opts["outputs"]
    if framework == "torch":
        if input_shape is None or num_classes is None:
            raise FooljaxError(
                f"model {spec}: a TorchScript model needs its image shape and class "
                "count: add ?shape=HxWxC&classes=K, or name a registered model with "
                "the same input (--model=NAME --weights=torch:PATH)"
            )
        return from_torch(
            path, input_shape, num_classes, layout=opts.get("layout", "NCHW"), **kw
        )
    clf = (
        from_keras(path, layout=opts.get("layout", "NHWC"), **kw)
        if framework == "keras"
        else from_onnx(
            path,
            layout=opts.get("layout"),
            input_shape=input_shape,
            num_classes=num_classes,
            **kw,
        )
    )
    if input_shape is not None and tuple(clf.input_shape) != tuple(input_shape):
        raise FooljaxError(
            f"model {spec} takes images of {list(clf.input_shape)}, expected "
            f"{list(input_shape)}"
        )
    if num_classes is not None and clf.num_classes != num_classes:
        raise FooljaxError(
            f"model {spec} has {clf.num_classes} classes, expected {num_classes}"
        )
    return clf


def torch_lenet(flax_params):
    """Caffe's LeNet (``fooljax.models.lenet``) as a PyTorch module with the
    weights of the Flax ``flax_params`` copied in (NCHW convs, the flatten in
    Flax's NHWC order): the twin the parity tests and
    ``scripts/bench_foreign.py`` put behind ``from_torch``."""
    import torch

    nn, F = torch.nn, torch.nn.functional

    class TorchLeNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 20, 5)
            self.conv2 = nn.Conv2d(20, 50, 5)
            self.ip1 = nn.Linear(800, 500)
            self.ip2 = nn.Linear(500, 10)

        def forward(self, x):
            x = F.max_pool2d(self.conv1(x), 2)
            x = F.max_pool2d(self.conv2(x), 2)
            x = x.permute(0, 2, 3, 1).flatten(1)
            return self.ip2(F.relu(self.ip1(x)))

    net = TorchLeNet()
    p = flax_params["params"]
    with torch.no_grad():
        for layer, perm in (("conv1", (3, 2, 0, 1)), ("conv2", (3, 2, 0, 1))):
            k = np.asarray(p[layer]["kernel"]).transpose(perm)
            getattr(net, layer).weight.copy_(torch.from_numpy(k.copy()))
            getattr(net, layer).bias.copy_(torch.from_numpy(np.array(p[layer]["bias"])))
        for layer in ("ip1", "ip2"):
            k = np.asarray(p[layer]["kernel"]).T
            getattr(net, layer).weight.copy_(torch.from_numpy(k.copy()))
            getattr(net, layer).bias.copy_(torch.from_numpy(np.array(p[layer]["bias"])))
    return net.eval()
