"""Transfer: do images made against one network fool others? (Nguyen et al.
2015 §3.5; Szegedy et al. 2014 Table 2; Goodfellow et al. 2015 §8.)

Every run that makes images leaves ``artifact.npz`` in its work directory
(``common.save_artifact``: the images, the class each was made for or its true
class, the source model); runs with several source models (FGSM, L-BFGS
tables, adversarial training, cross-training) leave one
``artifact_<model>.npz`` per model. A source is a work directory with one
artifact, ``DIR:NAME`` for ``DIR/artifact_NAME.npz``, or an artifact file.
``run(TransferConfig(sources=..., models=...))`` scores each source's images
on each target model and writes ``summary.json`` with ``matrix[source][model]``
and ``transfer.png`` (a heat map):

- fooling images: the fraction whose intended class gets >= 0.99 and >= 0.9999
  on the target, and the median probability of that class;
- adversarial images: the fraction the target misclassifies, and the median
  probability of the true class.
"""

from __future__ import annotations

import dataclasses
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from fooljax import models
from fooljax.errors import FooljaxError
from fooljax.models.preprocess import PREPROCESS_NAMES
from fooljax.runs import config
from fooljax.runs.cli import print_json_line
from fooljax.runs.common import Workdir, load_artifact, load_classifier
from fooljax.runs.pictures import save_heatmap

FLAGS = flags.FLAGS
opt = config.opt


@dataclasses.dataclass(frozen=True)
class TransferConfig:
    sources: str = opt(
        "",
        "Comma list of sources: finished work directories (with one artifact), "
        "DIR:NAME (DIR/artifact_NAME.npz) or artifact files.",
    )
    models: str = opt(
        "lenet:default", "Comma list of target models NAME:WEIGHTS[:PREPROCESS]."
    )
    batch_size: int = opt(500, "Images per model call.")

    def validate(self) -> None:
        config.check_fields(self, batch_size=(1, None))
        if not _items(self.sources):
            raise FooljaxError("--sources names no work directory")
        if not _items(self.models):
            raise FooljaxError("--models names no target model")


def _items(spec: str) -> list[str]:
    return [s.strip() for s in spec.split(",") if s.strip()]


def parse_target(spec: str) -> tuple[str, str, str | None]:
    """``NAME[:WEIGHTS[:PREPROCESS]]`` -> ``(name, weights, preprocess)``."""
    parts = spec.split(":")
    pre = parts.pop() if len(parts) > 2 and parts[-1] in PREPROCESS_NAMES else None
    name, weights = parts[0], ":".join(parts[1:]) or "default"
    return name, weights, pre


@functools.partial(jax.jit, static_argnums=0)
def intended_probs(logits_fn, params, images, labels):
    """``(p(labels[i] | images[i]) [N], argmax [N])`` on one model; pure."""
    probs = jax.nn.softmax(logits_fn(params, images), axis=-1)
    return jnp.take_along_axis(probs, labels[:, None], 1)[:, 0], probs.argmax(-1)


def transfer_scores(clf, artifact: dict, batch_size: int) -> dict:
    """The matrix entry of one source's images on one target classifier."""
    x, y = artifact["images"], artifact["labels"]
    p, pred = [], []
    for i in range(0, len(x), batch_size):
        pi, ai = intended_probs(
            clf.logits_fn,
            clf.params,
            jnp.asarray(x[i : i + batch_size]),
            y[i : i + batch_size],
        )
        p.append(np.asarray(pi))
        pred.append(np.asarray(ai))
    p, pred = np.concatenate(p), np.concatenate(pred)
    row = {"num_images": int(len(x)), "median_confidence": float(np.median(p))}
    if artifact["kind"] == "fooling":
        row.update(
            {f"fraction_at_least_{t}": float(np.mean(p >= t)) for t in (0.99, 0.9999)}
        )
        row["score"] = row["fraction_at_least_0.99"]
    else:
        row["fraction_misclassified"] = float(np.mean(pred != y))
        row["score"] = row["fraction_misclassified"]
    return row


def _check_fits(clf: models.Classifier, name: str, artifact: dict, source: str):
    shape = tuple(artifact["images"].shape[1:])
    if shape != tuple(clf.input_shape):
        raise FooljaxError(
            f"target {name} takes {tuple(clf.input_shape)} images, source {source} "
            f"holds {shape}"
        )
    top = int(artifact["labels"].max(initial=0))
    if top >= clf.num_classes:
        raise FooljaxError(
            f"target {name} has {clf.num_classes} classes, source {source} has "
            f"images made for class {top}"
        )


def run(cfg: TransferConfig, workdir: str, *, overwrite: bool = False) -> dict:
    """Scores every source's images on every target; returns the summary."""
    cfg.validate()
    t0 = time.time()
    sources = {s: load_artifact(s) for s in _items(cfg.sources)}
    targets = {}
    for spec in _items(cfg.models):
        name, weights, pre = parse_target(spec)
        targets[spec] = load_classifier(name, weights, pre)
    for spec, clf in targets.items():
        for s, art in sources.items():
            _check_fits(clf, spec, art, s)
    wd = Workdir(workdir, cfg, overwrite=overwrite)
    matrix = {
        s: {
            spec: transfer_scores(clf, art, cfg.batch_size)
            for spec, clf in targets.items()
        }
        for s, art in sources.items()
    }
    save_heatmap(
        wd.file("transfer.png"),
        [[matrix[s][m]["score"] for m in targets] for s in sources],
        rows=[f"{s} ({sources[s]['kind']}, {sources[s]['model']})" for s in sources],
        cols=list(targets),
        title="fooling: fraction >= 0.99 on the target; adversarial: misclassified",
    )
    return wd.finish(
        {
            "matrix": matrix,
            "sources": {
                s: {k: a[k] for k in ("kind", "model", "weights")}
                | {"num_images": int(len(a["labels"]))}
                for s, a in sources.items()
            },
            "models": list(targets),
            "wall_seconds": time.time() - t0,
        }
    )


def define_flags() -> None:
    config.define_workdir_flags()
    config.define_flags(TransferConfig)


def main(argv) -> None:
    del argv
    summary = run(
        config.from_flags(TransferConfig), FLAGS.workdir, overwrite=FLAGS.overwrite
    )
    print(f"results in {FLAGS.workdir} (summary.json, transfer.png)")
    print_json_line(
        {
            s: {m: round(r["score"], 4) for m, r in row.items()}
            for s, row in summary["matrix"].items()
        }
    )
