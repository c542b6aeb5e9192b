"""The MNIST models of the gradient-method tables, trained once and cached.

Each entry is a ``TrainConfig`` for ``train_classifier``; ``zoo_classifier``
trains it into ``<zoo_dir>/<name>`` the first time and afterwards only loads
``params.npz`` (an unfinished training resumes from its checkpoints). ``lenet``
is the embedded default checkpoint (``models.load_pretrained``), never retrained.

Szegedy et al. (ICLR 2014) Table 1 names the softmax-regression models by their
weight penalty: ``fc10_1e-4`` is FC10(lambda=1e-4) and so on.
"""

from __future__ import annotations

import dataclasses
import logging
import os

from fooljax import models
from fooljax.errors import FooljaxError
from fooljax.io.workdir import SUMMARY
from fooljax.train.classifier import TrainConfig, train_classifier

log = logging.getLogger("fooljax")

_MLP = dict(epochs=8, batch_size=128, learning_rate=1e-3, optimizer="adam")
_DEEP = dict(_MLP, epochs=15)

ZOO: dict[str, TrainConfig | None] = {
    "fc10_1e-4": TrainConfig(model="fc10", weight_decay=1e-4, **_MLP),
    "fc10_1e-2": TrainConfig(model="fc10", weight_decay=1e-2, **_MLP),
    "fc10_1": TrainConfig(model="fc10", weight_decay=1.0, **_MLP),
    "fc100_100_10": TrainConfig(model="fc100_100_10", **_DEEP),
    "fc200_200_10": TrainConfig(model="fc200_200_10", **_DEEP),
    "ae400_10": TrainConfig(model="ae400_10", **{**_DEEP, "learning_rate": 3e-3}),
    "maxout": TrainConfig(model="maxout", **_MLP),
    # Goodfellow et al. 2015 train their maxout net with dropout (as the maxout
    # paper: input 0.2, hidden 0.5); 12 epochs of Adam, not the paper's long
    # SGD schedule with max-norm (about 10 min on the loaded 2-core CPU).
    "maxout_dropout": TrainConfig(model="maxout_dropout", **{**_MLP, "epochs": 12}),
    "lenet": None,  # the embedded checkpoint (experiments/configs/lenet_mnist.flags)
}

# The config the embedded ``lenet`` checkpoint was trained with (its metadata).
LENET_CONFIG = TrainConfig(
    model="lenet", epochs=4, batch_size=64, learning_rate=1e-3, optimizer="adam"
)

ADV_SUFFIX = "_adv"

# Szegedy et al. Table 1 (test error, mean minimal distortion), for the reports.
SZEGEDY_TABLE1 = {
    "fc10_1e-4": (0.074, 0.062),
    "fc10_1e-2": (0.094, 0.1),
    "fc10_1": (0.20, 0.14),
    "fc100_100_10": (0.0164, 0.058),
    "fc200_200_10": (0.0154, 0.065),
    "ae400_10": (0.019, 0.086),
}


def zoo_names() -> list[str]:
    return list(ZOO)


def zoo_config(
    name: str, *, adv_alpha: float = 0.5, adv_epsilon: float = 0.25
) -> TrainConfig | None:
    """The training config of zoo model ``name``; ``None`` for embedded weights.

    ``<base>_adv`` is ``<base>`` trained identically but adversarially
    (Goodfellow et al. 2015, Sec. 6: ``alpha = 0.5``, ``epsilon = 0.25``).
    """
    if name.endswith(ADV_SUFFIX) and name[: -len(ADV_SUFFIX)] in ZOO:
        base = ZOO[name[: -len(ADV_SUFFIX)]] or LENET_CONFIG
        return dataclasses.replace(base, adv_alpha=adv_alpha, adv_epsilon=adv_epsilon)
    if name not in ZOO:
        raise FooljaxError(
            f"unknown zoo model '{name}' (known: {', '.join(ZOO)}, and "
            f"<name>{ADV_SUFFIX} for the adversarially trained ones)"
        )
    return ZOO[name]


def zoo_classifier(
    name: str, zoo_dir: str, *, data_dir: str | None = None
) -> models.Classifier:
    """Returns the trained classifier ``name``, training it into ``zoo_dir``
    first if ``<zoo_dir>/<name>/summary.json`` is not there yet.

    ``name`` may also be a registered model name with weights ``default``
    (``lenet``) or ``model:path`` for any weights ``load_classifier`` reads.
    """
    if ":" in name:
        model, weights = name.split(":", 1)
        return models.load_classifier(model, weights)._replace(name=name)
    config = zoo_config(name)
    if config is None:
        return models.load_classifier(name, "default")
    config = dataclasses.replace(config, data_dir=data_dir)
    workdir = os.path.join(zoo_dir, name)
    if not os.path.exists(os.path.join(workdir, SUMMARY)):
        log.info("training zoo model %s into %s", name, workdir)
        train_classifier(config, workdir)
    clf = models.load_classifier(config.model, os.path.join(workdir, "params.npz"))
    return clf._replace(name=name)
