"""Pieces every experiment family shares: the work directory of one run,
partial results for resumption, model loading and batched prediction."""

from __future__ import annotations

import dataclasses
import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from fooljax import data, models
from fooljax.errors import FooljaxError
from fooljax.io.caffe import load_binaryproto
from fooljax.io.workdir import SUMMARY, atomic_write_json, prepare_workdir
from fooljax.train.zoo import zoo_classifier


class Workdir:
    """One run's directory: ``config.json`` (a run with other settings is
    refused), partial results that make an interrupted run resume, and
    ``summary.json`` last (its presence marks the run finished)."""

    def __init__(self, path: str, config, *, overwrite: bool = False):
        if dataclasses.is_dataclass(config):
            config = dataclasses.asdict(config)
        self.path = path
        self.resumed = prepare_workdir(path, config, overwrite=overwrite)

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def load_json(self, name: str) -> dict:
        """A partial-results file, ``{}`` when the run has none yet."""
        p = self.file(name)
        if not os.path.exists(p):
            return {}
        with open(p) as f:
            return json.load(f)

    def save_json(self, name: str, obj) -> None:
        atomic_write_json(self.file(name), obj)

    def save_npz(self, name: str, **arrays) -> None:
        tmp = self.file(name) + ".tmp.npz"
        np.savez(tmp, **arrays)
        os.replace(tmp, self.file(name))

    def load_npz(self, name: str) -> dict[str, np.ndarray]:
        with np.load(self.file(name)) as z:
            return {k: z[k] for k in z.files}

    def finish(self, summary: dict) -> dict:
        atomic_write_json(self.file(SUMMARY), summary)
        return summary


def load_classifier(
    model: str, weights: str, preprocess: str | None = None, mean_file=None
) -> models.Classifier:
    """A registered model with ``weights``; Caffe mean subtraction from
    ``mean_file`` (a ``.binaryproto``) when given."""
    mean = load_binaryproto(mean_file) if mean_file else None
    return models.load_classifier(model, weights, preprocess=preprocess, mean=mean)


def load_mnist_test(data_dir: str | None, num_images: int | None = None):
    """``(images [N, 28, 28, 1] float32 in [0, 1], labels [N] int32)``."""
    x, y = data.load_dataset("mnist", "test", data_dir=data_dir)
    if num_images is not None:
        if not 1 <= num_images <= len(x):
            raise FooljaxError(f"num_images must be in 1..{len(x)}, got {num_images}")
        x, y = x[:num_images], y[:num_images]
    return x.astype(np.float32) / 255.0, np.asarray(y, np.int32)


def parse_model_list(spec) -> dict[str, str]:
    """``"shown=zoo_name,zoo_name2"`` (or a list) -> ``{shown: zoo_name}``."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out = {}
    for item in items:
        item = item.strip()
        if not item:
            continue
        shown, _, zoo = item.partition("=")
        out[shown] = zoo or shown
    if not out:
        raise FooljaxError("no models given")
    return out


def zoo(zoo_name: str, zoo_dir: str, data_dir):
    return zoo_classifier(zoo_name, zoo_dir, data_dir=data_dir)


@functools.partial(jax.jit, static_argnums=0)
def _softmax(logits_fn, params, images):
    return jax.nn.softmax(logits_fn(params, images), axis=-1)


def predict(logits_fn, params, images, batch_size: int = 1000) -> np.ndarray:
    """Softmax probabilities ``[N, K]`` of ``images [N, H, W, C]`` in [0, 1],
    in calls of ``batch_size`` (compiled once per model and batch shape)."""
    outs = [
        np.asarray(_softmax(logits_fn, params, jnp.asarray(images[i : i + batch_size])))
        for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(outs)


def error_and_confidence(probs, labels) -> dict:
    """Error rate and mean confidence (max softmax) on the misclassified images."""
    pred = probs.argmax(1)
    wrong = pred != labels
    conf = probs.max(1)
    return {
        "error": float(wrong.mean()),
        "mean_confidence": float(conf[wrong].mean()) if wrong.any() else float("nan"),
        "mean_confidence_all": float(conf.mean()),
    }
