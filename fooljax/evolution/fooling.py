"""Fooling-image experiments (Nguyen et al. 2015, Sec. 2-3) as one library call.

``run(FoolingConfig(...), workdir)`` loads the classifier, builds the encoding,
and runs MAP-Elites over its classes through the shared runner. The absl entry
points (``experiments.mnist_direct`` and friends) only parse flags into a
``FoolingConfig``; a notebook calls ``run`` directly.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp

from fooljax import models
from fooljax.errors import FooljaxError
from fooljax.evolution import map_elites as me
from fooljax.evolution.runner import default_mesh, run_map_elites
from fooljax.evolution.setup import make_encoding


@dataclasses.dataclass(frozen=True)
class FoolingConfig:
    model: str = "lenet"
    weights: str = "default"
    preprocess: str | None = None  # None: the model's own; unit/caffe_deploy: Caffe
    mean_file: str | None = None
    encoding: str = "direct"
    # Encoding-specific settings (CPPN capacities, probabilities, ...), as
    # (name, value) pairs so the config stays hashable.
    encoding_options: tuple = ()
    image_shape: tuple[int, int, int] | None = None  # None: the model's input
    population: int = 200  # offspring per generation (paper: 200)
    generations: int = 1000  # paper, MNIST: 1000
    mutation_rate: float = 0.1  # per-gene probability (paper: 0.1)
    mutation_eta: float = 15.0  # polynomial mutation index (paper: 15)
    mutation_halving: int = 0  # halve the rate every N generations (paper: 1000)
    crossover_rate: float = 0.0  # SBX probability (original code: 0.5)
    crossover_eta: float = 10.0
    seed: int = 0
    checkpoint_every: int = 250
    log_every: int = 50
    num_devices: int = 0  # 0: all local devices that divide the population
    eval_batch: int = 50  # images per model call on every device (see Layout)
    ten_crop: bool = False  # score the mean softmax over 10 crops of input size

    def validate(self) -> None:
        if self.population < 2:
            raise FooljaxError(f"population must be >= 2, got {self.population}")
        if self.generations <= 0:
            raise FooljaxError(f"generations must be > 0, got {self.generations}")
        if self.checkpoint_every <= 0 or self.log_every <= 0:
            raise FooljaxError("checkpoint_every and log_every must be > 0")
        if self.num_devices < 0:
            raise FooljaxError("num_devices must be >= 0")
        if self.mutation_halving < 0:
            raise FooljaxError("mutation_halving must be >= 0")


def _check_image_shape(clf: models.Classifier, shape) -> None:
    try:
        out = jax.eval_shape(
            clf.logits_fn, clf.params, jax.ShapeDtypeStruct((2, *shape), jnp.float32)
        )
    except Exception as e:  # shape errors surface as many exception types
        raise FooljaxError(
            f"model '{clf.name}' does not accept images of shape {tuple(shape)} "
            f"(it takes {clf.input_shape}): {type(e).__name__}"
        ) from None
    if out.shape != (2, clf.num_classes):
        raise FooljaxError(
            f"model '{clf.name}' maps {tuple(shape)} images to {out.shape[1:]}, "
            f"expected ({clf.num_classes},) class scores"
        )


def load_for(config: FoolingConfig) -> models.Classifier:
    mean = None
    if config.mean_file:
        from fooljax.io.caffe import load_binaryproto

        mean = load_binaryproto(config.mean_file)
    return models.load_classifier(
        config.model, config.weights, preprocess=config.preprocess, mean=mean
    )


def run(
    config: FoolingConfig,
    workdir: str,
    *,
    overwrite: bool = False,
    classifier: models.Classifier | None = None,
    t_start: float | None = None,
    stop_after: int | None = None,
) -> dict:
    """Evolves fooling images for every class of the model; returns summary.json.

    ``classifier``: pass your own ``models.Classifier(logits_fn, params, ...)``
    to fool a model that is not registered (``config.model`` is then a label).
    """
    t_start = time.time() if t_start is None else t_start
    config.validate()
    clf = classifier if classifier is not None else load_for(config)
    shape = tuple(config.image_shape or clf.input_shape)
    _check_image_shape(clf, shape)
    encoding, extra = make_encoding(
        config.encoding,
        shape,
        mutation_rate0=config.mutation_rate,
        mutation_eta=config.mutation_eta,
        halve_every=config.mutation_halving,
        crossover_rate=config.crossover_rate,
        crossover_eta=config.crossover_eta,
        options=dict(config.encoding_options),
    )
    log_probs_fn = me.log_probs_from(logits_fn=clf.logits_fn)
    if config.ten_crop:
        from fooljax.models.crops import ten_crop_log_probs

        crop_h, crop_w, _ = clf.input_shape
        if (crop_h, crop_w) == tuple(shape[:2]):
            raise FooljaxError(
                f"--ten_crop needs genomes larger than the model's input "
                f"{clf.input_shape[:2]}; set --image_shape (e.g. 256,256,3)"
            )
        log_probs_fn = ten_crop_log_probs(clf.logits_fn, crop_h, crop_w)
        _check_image_shape(clf, (crop_h, crop_w, shape[2]))
    mesh = default_mesh(config.population, config.num_devices)
    return run_map_elites(
        workdir=workdir,
        config=dataclasses.asdict(config),
        log_probs_fn=log_probs_fn,
        params=clf.params,
        encoding=encoding,
        num_classes=clf.num_classes,
        population=config.population,
        num_generations=config.generations,
        seed=config.seed,
        class_names=list(clf.class_names) if clf.class_names else None,
        checkpoint_every=config.checkpoint_every,
        log_every=config.log_every,
        overwrite=overwrite,
        mesh=mesh,
        eval_batch=config.eval_batch,
        t_start=t_start,
        stop_after=stop_after,
        summary_extra={"encoding": config.encoding, "weights": config.weights},
    )
