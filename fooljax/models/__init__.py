"""Model registry: pick networks by name, load weights, get a ``logits_fn``.

Everything in fooljax that consumes a classifier takes a pure
``logits_fn(params, images)`` (``images: [B, H, W, C]`` float32 in [0, 1]) and
its ``params``. ``load_classifier`` builds that pair for a registered model; a
user's own Flax model plugs in directly with
``logits_fn = lambda p, x: model.apply(p, x)``; a PyTorch, Keras or ONNX
model through ``from_torch`` / ``from_keras`` / ``from_onnx`` (the framework
is imported only then).
"""

from fooljax.io.params import flatten_params, load_params_npz, save_params_npz

# Importing a family module registers its models.
from fooljax.models import (
    alexnet,
    cifar_nets,
    keras_cifar,
    lenet,
    mlp,
    mobilenet,
    rbf,
)
from fooljax.models.foreign import (
    ForeignModelError,
    callback_error,
    from_keras,
    from_onnx,
    from_torch,
)
from fooljax.models.loading import (
    classifier_with_classes,
    load_classifier,
    load_params,
    load_pretrained,
    pretrained_metadata,
)
from fooljax.models.registry import (
    Classifier,
    LogitsFn,
    ModelSpec,
    get_spec,
    init_params,
    model_names,
    register,
    register_family,
)
from fooljax.models.split import split_batch

__all__ = [
    "Classifier",
    "ForeignModelError",
    "LogitsFn",
    "ModelSpec",
    "alexnet",
    "callback_error",
    "classifier_with_classes",
    "cifar_nets",
    "flatten_params",
    "from_keras",
    "from_onnx",
    "from_torch",
    "get_spec",
    "init_params",
    "keras_cifar",
    "lenet",
    "load_classifier",
    "load_params",
    "load_params_npz",
    "load_pretrained",
    "mlp",
    "split_batch",
    "mobilenet",
    "model_names",
    "pretrained_metadata",
    "rbf",
    "register",
    "register_family",
    "save_params_npz",
]
