"""FGSM on CIFAR-10 conv nets at epsilon = 0.1 (Goodfellow et al. 2015, Sec. 4:
the paper's maxout conv net misclassifies 87.15 % of its FGSM examples).

``epsilon`` is in pixel units of the [0, 1] image box, as everywhere in
fooljax: the models (``cifar_lenet``/``cifar_resnet32``, Keras weights that
expect 0..255 minus a per-channel mean over a std, and ``cifar_allconv``, which
standardises per channel) do their own preprocessing inside ``logits_fn``, so
the attack perturbs and clips the raw image and 0.1 is 25.5 grey levels,
whatever each network does next.

Images: the first ``num_images`` CIFAR-10 test images with the classes
interleaved (image 0 of each class, then image 1, ...: the staged JPEG set is
ordered class by class). Per model: clean accuracy, FGSM error over all
images and over those it classifies correctly, the mean confidence on the
misclassified, and the error-vs-epsilon curve, all from one vmapped FGSM call
per batch (``gradient.fgsm_sweep``). ``run(config, workdir)`` writes
``summary.json``, ``cifar_fgsm_error_vs_epsilon.png`` (with the paper's
point), ``cifar_fgsm_examples.png`` (one image per class: clean and FGSM
predictions with confidences) and the FGSM images as ``artifact_<model>.npz``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time

import numpy as np
from absl import flags

from fooljax import data, models
from fooljax.attacks import check_differentiable
from fooljax.attacks.common import check_epsilon
from fooljax.errors import FooljaxError
from fooljax.runs import config
from fooljax.runs.cli import print_json_line
from fooljax.runs.common import (
    Workdir,
    artifact_file,
    error_and_confidence,
    load_classifier,
    predict,
    save_artifact,
)
from fooljax.runs.gradient import fgsm_sweep
from fooljax.runs.one_pixel import interleave_order
from fooljax.runs.pictures import plot_lines, save_grid_png
from fooljax.runs.transfer import parse_target

log = logging.getLogger("fooljax")
FLAGS = flags.FLAGS
opt = config.opt

# Goodfellow et al. 2015, Sec. 4: a maxout conv net on CIFAR-10 (ZCA-whitened
# inputs in the paper), FGSM at epsilon = 0.1.
PAPER_ERROR = 0.8715
PAPER_MODEL = "maxout conv net, CIFAR-10 (Goodfellow et al. 2015)"
_W = "$FOOLJAX_DATA/cifar10-keras-one-pixel"
DEFAULT_MODELS = (
    f"lenet=cifar_lenet:{_W}/lenet.h5,resnet32=cifar_resnet32:{_W}/resnet.h5"
)
CIFAR_SHAPE = (32, 32, 3)


@dataclasses.dataclass(frozen=True)
class CifarFgsmConfig:
    models: str = opt(
        DEFAULT_MODELS,
        "Comma list of [SHOWN=]MODEL:WEIGHTS[:PREPROCESS] (CIFAR-10 models).",
    )
    epsilon: float = opt(0.1, "FGSM epsilon (pixels in [0, 1]).")
    curve_epsilons: tuple[float, ...] = opt(
        (0.01, 0.02, 0.05, 0.1), "Epsilons of the error curve (0: the clean error)."
    )
    num_images: int = opt(2000, "Test images attacked (classes interleaved).")
    batch_size: int = opt(250, "Attack batch size.")
    dataset: str = opt("cifar10", "Test images.", choices=("cifar10", "cifar10_files"))
    data_dir: str | None = opt(None, "Data directory (default $FOOLJAX_DATA).")

    def validate(self) -> None:
        config.check_fields(self, num_images=(1, None), batch_size=(1, None))
        config.check_number("epsilon", self.epsilon, lo=0, hi=1, lo_open=True)
        for e in self.curve_epsilons:
            config.check_number("curve_epsilons", e, lo=0, hi=1)


def parse_models(spec: str) -> dict[str, tuple[str, str, str | None]]:
    """``"shown=model:weights,..."`` -> ``{shown: (model, weights, preprocess)}``
    (``shown`` defaults to the model name); unknown models and models that do
    not take 32x32x3 images are refused in one line."""
    out = {}
    items = [i.strip() for i in spec.split(",") if i.strip()]
    if not items:
        raise FooljaxError("--models names no model")
    for item in items:
        head, eq, rest = item.partition("=")
        shown, target = (head, rest) if eq and ":" not in head else ("", item)
        shown = shown or target.split(":", 1)[0]
        model, weights, pre = parse_target(target)
        if ":" not in target:
            raise FooljaxError(
                f"--models entry '{target}' names no weights (use MODEL:WEIGHTS)"
            )
        got = tuple(models.get_spec(model).input_shape)
        if got != CIFAR_SHAPE:
            raise FooljaxError(
                f"model '{model}' takes {list(got)} images, not CIFAR-10's "
                f"{list(CIFAR_SHAPE)}"
            )
        if shown in out:
            raise FooljaxError(f"--models names '{shown}' twice")
        out[shown] = (model, weights, pre)
    return out


def load_test_images(cfg: CifarFgsmConfig):
    """``(images [N, 32, 32, 3] float32 in [0, 1], labels [N], dataset indices
    [N])``: the first ``num_images`` test images, classes interleaved."""
    images, labels = data.load_dataset(
        cfg.dataset, "test", data_dir=cfg.data_dir, source="auto"
    )
    if cfg.num_images > len(labels):
        raise FooljaxError(
            f"--num_images={cfg.num_images} but {cfg.dataset} has {len(labels)} "
            "test images"
        )
    idx = interleave_order(labels)[: cfg.num_images]
    x = images[idx].astype(np.float32) / 255.0
    return x, np.asarray(labels[idx], np.int32), idx


def _model_row(clf, x, y, curve, at, batch_size):
    """``(summary row, FGSM images at curve[at], their probs, clean probs)``."""
    check_differentiable(clf.logits_fn, clf.params, x[:4], y[:4])
    clean = predict(clf.logits_fn, clf.params, x, batch_size)
    probs, adv = fgsm_sweep(clf, x, y, curve, batch_size, keep=at)
    correct = clean.argmax(1) == y
    row = {
        "clean_accuracy": float(correct.mean()),
        "curve": {
            "0": float((~correct).mean()),
            **{
                f"{e:g}": error_and_confidence(p, y)["error"]
                for e, p in zip(curve, probs, strict=True)
            },
        },
        "error_on_clean_correct": (
            float((probs[at][correct].argmax(1) != y[correct]).mean())
            if correct.any()
            else float("nan")
        ),
        "paper_error": PAPER_ERROR,
    }
    row.update(error_and_confidence(probs[at], y))
    return row, adv, probs[at], clean


def run(cfg: CifarFgsmConfig, workdir: str, *, overwrite: bool = False) -> dict:
    """FGSM error of every ``cfg.models`` entry; returns the summary."""
    cfg.validate()
    epsilon = check_epsilon(cfg.epsilon)
    curve = sorted({check_epsilon(e) for e in cfg.curve_epsilons} | {epsilon} - {0.0})
    named = parse_models(cfg.models)
    # weights are read (and refused) before the data and the work directory
    clfs = {s: load_classifier(m, w, p) for s, (m, w, p) in named.items()}
    x, y, idx = load_test_images(cfg)
    wd = Workdir(workdir, cfg, overwrite=overwrite)
    t0 = time.time()
    results = wd.load_json("partial.json")
    examples = {}
    at = curve.index(epsilon)
    num_show = min(10, len(x))
    for shown, clf in clfs.items():
        art = artifact_file(shown)
        saved = wd.load_npz(f"examples_{shown}.npz")
        if shown in results and saved is not None and os.path.exists(wd.file(art)):
            log.info("cifar_fgsm: %s already done (resumed)", shown)
            examples[shown] = saved
            continue
        ts = time.time()
        row, adv, adv_probs, clean = _model_row(clf, x, y, curve, at, cfg.batch_size)
        model, weights, _ = named[shown]
        row.update(model=model, weights=weights, seconds=time.time() - ts)
        save_artifact(
            wd.path,
            adv,
            y,
            adv_probs[np.arange(len(y)), y],
            kind="adversarial",
            model=model,
            weights=weights,
            name=shown,
        )
        examples[shown] = dict(
            images=adv[:num_show], probs=adv_probs[:num_show], clean=clean[:num_show]
        )
        wd.save_npz(f"examples_{shown}.npz", **examples[shown])
        log.info(
            "cifar_fgsm %s: clean accuracy %.4f, eps %.3g error %.4f (mean "
            "confidence %.4f), %.0f s",
            shown,
            row["clean_accuracy"],
            epsilon,
            row["error"],
            row["mean_confidence"],
            row["seconds"],
        )
        results[shown] = row
        wd.save_json("partial.json", results)
    _pictures(wd, cfg, clfs, examples, x[:num_show], y[:num_show], results, epsilon)
    return wd.finish(
        {
            "epsilon": epsilon,
            "num_images": int(len(x)),
            "dataset": cfg.dataset,
            "images": "first num_images test images, classes interleaved",
            "dataset_indices_head": [int(i) for i in idx[:20]],
            "models": results,
            "paper": {"error": PAPER_ERROR, "model": PAPER_MODEL, "epsilon": 0.1},
            "artifacts": {s: artifact_file(s) for s in clfs},
            "wall_seconds": time.time() - t0,
        }
    )


def _pictures(wd, cfg, clfs, examples, x, y, results, epsilon) -> None:
    lines = {
        name: (
            [float(e) for e in r["curve"]],
            [100 * v for v in r["curve"].values()],
        )
        for name, r in results.items()
    }
    lines["paper: maxout conv net"] = ([0.1], [100 * PAPER_ERROR])
    plot_lines(
        wd.file("cifar_fgsm_error_vs_epsilon.png"),
        lines,
        xlabel="epsilon (pixels in [0, 1])",
        ylabel="test error under FGSM (%)",
        title=f"CIFAR-10, FGSM, {cfg.num_images} test images",
    )
    first = next(iter(clfs.values()))
    names = first.class_names or tuple(str(i) for i in range(first.num_classes))
    titles = [f"true: {names[c]}" for c in y]
    for shown in clfs:
        ex = examples[shown]
        for c, a in zip(ex["clean"], ex["probs"], strict=True):
            titles.append(
                f"{names[c.argmax()]} {c.max():.2f}\n-> {names[a.argmax()]} "
                f"{a.max():.2f}"
            )
    save_grid_png(
        wd.file("cifar_fgsm_examples.png"),
        np.concatenate([x, *(examples[s]["images"] for s in clfs)]),
        ncols=len(x),
        titles=titles,
        row_labels=["clean", *(f"{s}: clean ->\nFGSM {epsilon:g}" for s in clfs)],
    )


def define_flags() -> None:
    config.define_workdir_flags()
    config.define_flags(CifarFgsmConfig)


def main(argv) -> None:
    del argv
    cfg = config.from_flags(CifarFgsmConfig)
    summary = run(cfg, FLAGS.workdir, overwrite=FLAGS.overwrite)
    print(
        f"results in {FLAGS.workdir} (summary.json, cifar_fgsm_error_vs_epsilon.png, "
        "cifar_fgsm_examples.png)"
    )
    print_json_line(
        {
            s: {k: round(r[k], 4) for k in ("clean_accuracy", "error")}
            for s, r in summary["models"].items()
        }
    )
