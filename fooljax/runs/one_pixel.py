"""One pixel attack experiments (Su et al. 2019) on a registered classifier;
resumable per batch.

Attacks the first ``num_images`` correctly classified images from
``start_index`` (untargeted, or with ``targeted`` towards every other class)
with the paper's DE budget (or evosax's CMA-ES, ``--optimizer=cmaes``, same
budget), ``batch_size`` attacks at once (``attacks.one_pixel.attack``). Each finished batch is saved in
``WORKDIR/batches/`` and skipped when the run is restarted. Writes
``summary.json`` (optimizer, success_rate, mean_adversarial_confidence, mean_queries,
num_images, wall_seconds, images_per_second, classes_per_image for targeted
runs), ``results.jsonl`` (one line per attacked image/target) and ``grid.png``
(originals over adversarials).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time

import jax
import numpy as np
from absl import flags

from fooljax import data, models
from fooljax.attacks import one_pixel as op
from fooljax.errors import FooljaxError
from fooljax.io.workdir import atomic_write_text
from fooljax.runs import config, distributed
from fooljax.runs.cli import print_json_line
from fooljax.runs.common import Workdir, save_artifact
from fooljax.runs.pictures import save_grid_png
from fooljax.train.evaluate import predict_logits

log = logging.getLogger("fooljax")
FLAGS = flags.FLAGS
opt = config.opt


@dataclasses.dataclass(frozen=True)
class OnePixelRunConfig:
    model: str = opt("cifar_lenet", "Registered model name.")
    weights: str = opt("default", "Weights file (e.g. a Keras .h5).")
    dataset: str = opt("cifar10_files", "Dataset name (cifar10, cifar10_files).")
    split: str = opt("test", "Dataset split.")
    data_dir: str | None = opt(None, "Data directory (default $FOOLJAX_DATA/<set>).")
    data_source: str = opt("idx", "Dataset source (cifar10: auto/batches/jpg).")
    interleave_classes: bool = opt(
        False,
        "Order images by (rank within class, class): the class-sorted JPEG set "
        "then yields every class in turn.",
    )
    pixels: int = opt(1, "Number of pixels k the attack may change.")
    targeted: bool = opt(False, "Attack towards each other class.")
    num_images: int = opt(20, "Correctly classified images to attack.")
    start_index: int = opt(0, "First dataset index considered.")
    only_correct: bool = opt(True, "Skip images the model misclassifies.")
    optimizer: str = opt(
        "de",
        "de (differential evolution, the paper's) or cmaes (evosax's CMA-ES, as "
        "ART's PixelAttack es=1); same candidates, budget and early stop.",
    )
    population: int = opt(400, "Candidates per generation (>= 4).")
    max_generations: int = opt(100, "Generations after initialisation.")
    differential_weight: float = opt(0.5, "DE scale factor F.")
    crossover_rate: float = opt(1.0, "DE crossover rate (1 = none, as the paper).")
    cmaes_sigma: float = opt(
        0.5, "CMA-ES initial step size, in widths of the (x, y, colour) box."
    )
    cmaes_strategies: int = opt(
        4, "Independent CMA-ES per image, population / this candidates each."
    )
    cmaes_restart_sigma: float = opt(
        0.05,
        "Restart a CMA-ES (at a random point) when its step along its longest "
        "axis falls below this (box widths); 0 = never.",
    )
    early_stop: str = opt("threshold", "threshold, success or none.")
    batch_size: int = opt(100, "Attacks (image, target pairs) run at once.")
    compact_every: int = opt(10, "Generations between batch compactions.")
    eval_batch: int | None = opt(
        None,
        "Images per model call (the generation's candidates are evaluated in "
        "calls of this fixed size); 0 = one call per generation; default: 100 on "
        "CPU, 0 on GPU/TPU.",
    )
    memoize: bool = opt(
        True,
        "Reuse the probabilities of a trial that paints the same pixels as a "
        "current population member or an earlier trial (exact; fewer model "
        "queries). Needs eval_batch > 0.",
    )
    seed: int = opt(0, "Random seed.")

    def validate(self) -> None:
        config.check_fields(
            self,
            num_images=(1, None),
            batch_size=(1, None),
            start_index=(0, None),
            max_generations=(0, None),
            compact_every=(0, None),
            differential_weight=dict(lo=0, hi=2, lo_open=True),
            crossover_rate=(0, 1),
        )
        if self.optimizer not in op.OPTIMIZERS:
            raise FooljaxError(
                f"--optimizer must be one of {', '.join(op.OPTIMIZERS)}, "
                f"got '{self.optimizer}'"
            )
        if self.num_images < 1 or self.batch_size < 1:
            raise FooljaxError("--num_images and --batch_size must be >= 1")
        if self.pixels < 1:
            raise FooljaxError(f"pixel count must be >= 1, got {self.pixels}")
        if self.population < 4:
            raise FooljaxError(
                f"population must be at least 4 for DE/rand/1, got {self.population}"
            )
        if self.early_stop not in op.EARLY_STOP_MODES:
            raise FooljaxError(f"--early_stop must be one of {op.EARLY_STOP_MODES}")
        op.resolve_eval_batch(self.eval_batch)  # < 0: one clear line
        op.validate_config(self.attack_config())  # CMA-ES settings

    def attack_config(self) -> op.OnePixelConfig:
        return op.OnePixelConfig(
            num_pixels=self.pixels,
            population_size=self.population,
            max_generations=self.max_generations,
            differential_weight=self.differential_weight,
            crossover_rate=self.crossover_rate,
            early_stop=self.early_stop,
            optimizer=self.optimizer,
            cmaes_sigma=self.cmaes_sigma,
            cmaes_strategies=self.cmaes_strategies,
            cmaes_restart_sigma=self.cmaes_restart_sigma,
        )

    def execution(self) -> op.Execution:
        return op.Execution(
            eval_batch=self.eval_batch,
            memoize=self.memoize,
            compact_every=self.compact_every,
        )


def interleave_order(labels: np.ndarray) -> np.ndarray:
    """Indices sorted by (rank of the image within its class, class)."""
    rank = np.zeros(len(labels), np.int64)
    for c in np.unique(labels):
        idx = np.nonzero(labels == c)[0]
        rank[idx] = np.arange(len(idx))
    return np.lexsort((labels, rank))


def select_images(cfg: OnePixelRunConfig, clf):
    """``(images uint8, labels, dataset indices)`` of the images to attack."""
    images, labels = data.load_dataset(
        cfg.dataset, cfg.split, data_dir=cfg.data_dir, source=cfg.data_source
    )
    if tuple(images.shape[1:]) != tuple(clf.input_shape):
        raise FooljaxError(
            f"dataset images are {images.shape[1:]}, model '{cfg.model}' takes "
            f"{clf.input_shape}"
        )
    order = (
        interleave_order(labels) if cfg.interleave_classes else np.arange(len(labels))
    )
    order = order[cfg.start_index :]
    chosen: list[int] = []
    for lo in range(0, len(order), 1000):
        idx = order[lo : lo + 1000]
        if cfg.only_correct:
            pred = predict_logits(clf.logits_fn, clf.params, images[idx], 500)
            idx = idx[pred.argmax(-1) == labels[idx]]
        chosen.extend(idx.tolist())
        if len(chosen) >= cfg.num_images:
            break
    chosen = chosen[: cfg.num_images]
    if not chosen:
        raise FooljaxError("no images to attack (check --start_index/--num_images)")
    sel = np.asarray(chosen)
    return images[sel], labels[sel], sel


def attack_rows(labels, indices, num_classes: int, targeted: bool):
    """One attack per (image, target): ``(image row [R], target [R] or None,
    key index [R])``; the key index ``dataset index * K + target`` makes every
    attack's result independent of its batch."""
    if targeted:
        rows_img = np.repeat(np.arange(len(labels)), num_classes - 1)
        rows_tgt = np.asarray(
            [t for y in labels for t in range(num_classes) if t != y], np.int64
        )
        return rows_img, rows_tgt, indices[rows_img] * num_classes + rows_tgt
    rows_img = np.arange(len(labels))
    return rows_img, None, indices[rows_img] * num_classes


def _write_results(path, rows_img, rows_tgt, indices, labels, cat, success, conf):
    lines = []
    for r in range(len(rows_img)):
        i = rows_img[r]
        row = {
            "dataset_index": int(indices[i]),
            "label": int(labels[i]),
            "target": None if rows_tgt is None else int(rows_tgt[r]),
            "success": bool(success[r]),
            "predicted": int(cat["predicted"][r]),
            "confidence": float(conf[r]),
            "queries": int(cat["queries"][r]),
            "generations": int(cat["generations"][r]),
            "pixels": cat["candidates"][r].round(2).tolist(),
        }
        lines.append(json.dumps(row) + "\n")
    atomic_write_text(path, "".join(lines))


def _resumed_batch(wd: Workdir, name: str) -> dict | None:
    """A batch saved by an earlier start, ``None`` when it must be run; every
    process follows process 0's answer."""
    done = wd.load_npz(name)
    if not distributed.is_multiprocess():
        return done
    agreed = distributed.broadcast_json(done is not None)
    if agreed and done is None:
        raise FooljaxError(
            f"process 0 resumes {wd.file(name)} but this process cannot read it: "
            "the work directory must be on a filesystem every process sees"
        )
    return done if agreed else None


def run(cfg: OnePixelRunConfig, workdir: str, *, overwrite: bool = False) -> dict:
    """Runs (or resumes) the attack experiment in ``workdir``; returns the summary."""
    cfg.validate()
    attack_cfg, execution = cfg.attack_config(), cfg.execution()
    clf = models.load_classifier(cfg.model, cfg.weights)
    h, w, _ = clf.input_shape
    if cfg.pixels > h * w:
        raise FooljaxError(
            f"pixel count must be between 1 and the image's {h * w} pixels, "
            f"got {cfg.pixels}"
        )
    images_u8, labels, indices = select_images(cfg, clf)
    wd = Workdir(workdir, cfg, overwrite=overwrite)
    if wd.resumed:
        log.info("resuming the unfinished run in %s", workdir)
    images = images_u8.astype(np.float32) / 255.0
    k = clf.num_classes
    rows_img, rows_tgt, row_keys = attack_rows(labels, indices, k, cfg.targeted)
    probs_fn = op.probs_from_logits(clf.logits_fn)
    key = jax.random.key(cfg.seed)
    os.makedirs(wd.file("batches"), exist_ok=True)
    n_rows = len(rows_img)
    parts = []
    t_run = time.time()
    for b, lo in enumerate(range(0, n_rows, cfg.batch_size)):
        name = os.path.join("batches", f"batch_{b:05d}.npz")
        sl = slice(lo, min(lo + cfg.batch_size, n_rows))
        done = _resumed_batch(wd, name)
        if done is not None:
            parts.append(done)
            continue
        t0 = time.time()
        # multi-process: each process attacks its share of the batch (every
        # attack's key is its own, so shares change no result), then all
        # processes get every row back
        rows = np.arange(sl.start, sl.stop)
        mine = rows[distributed.split_rows(len(rows))]
        run_rows = mine if len(mine) else rows[:1]  # an empty share: dropped
        res = op.attack(
            key,
            probs_fn,
            clf.params,
            images[rows_img[run_rows]],
            labels[rows_img[run_rows]],
            targets=None if rows_tgt is None else rows_tgt[run_rows],
            config=attack_cfg,
            execution=execution,
            image_indices=row_keys[run_rows],
            input_shape=clf.input_shape,
            num_classes=k,
        )
        got = {f: np.asarray(v)[: len(mine)] for f, v in res._asdict().items()}
        part = dict(distributed.gather_rows(got, len(rows)))
        part["seconds"] = np.asarray(time.time() - t0)
        wd.save_npz(name, **part)
        parts.append(part)
        log.info(
            "batch %d: %d attacks, success %d, %.1f s",
            b,
            sl.stop - sl.start,
            int(part["success"].sum()),
            float(part["seconds"]),
        )
    cat = {f: np.concatenate([p[f] for p in parts]) for f in parts[0] if f != "seconds"}
    attack_seconds = float(sum(float(p["seconds"]) for p in parts))
    success = cat["success"].astype(bool)
    conf = cat["probabilities"][np.arange(n_rows), cat["predicted"]]
    summary = {
        "model": cfg.model,
        "weights": cfg.weights,
        "dataset": cfg.dataset,
        "pixels": cfg.pixels,
        "targeted": cfg.targeted,
        "optimizer": cfg.optimizer,
        "population": cfg.population,
        "max_generations": cfg.max_generations,
        "early_stop": cfg.early_stop,
        "eval_batch": op.resolve_eval_batch(cfg.eval_batch),
        "memoize": cfg.memoize,
        "device": jax.default_backend(),
        "num_images": int(len(labels)),
        "num_attacks": int(n_rows),
        "first_dataset_index": int(indices[0]),
        "success_rate": float(success.mean()),
        "num_success": int(success.sum()),
        "mean_adversarial_confidence": float(conf[success].mean())
        if success.any()
        else None,
        "mean_queries": float(cat["queries"].mean()),
        "mean_generations": float(cat["generations"].mean()),
        "wall_seconds": round(attack_seconds, 3),
        "images_per_second": round(len(labels) / attack_seconds, 4),
        "seconds_per_attack": round(attack_seconds / n_rows, 4),
        "process_seconds": round(time.time() - t_run, 3),
    }
    if cfg.optimizer == "cmaes":
        summary["cmaes"] = {
            "sigma": cfg.cmaes_sigma,
            "strategies": cfg.cmaes_strategies,
            "restart_sigma": cfg.cmaes_restart_sigma,
        }
    if cfg.targeted:
        per_image = success.reshape(len(labels), k - 1).sum(1)
        summary["classes_per_image"] = float(per_image.mean())
    if distributed.is_multiprocess():
        summary["num_processes"] = jax.process_count()
    if not distributed.is_main():  # process 0 writes the work directory
        return wd.finish(summary)
    _write_results(
        wd.file("results.jsonl"),
        rows_img,
        rows_tgt,
        indices,
        labels,
        cat,
        success,
        conf,
    )
    # the standard image set for transfer: untargeted -> adversarial images
    # with their true labels; targeted -> images made for their targets
    intended = labels[rows_img] if rows_tgt is None else rows_tgt
    save_artifact(
        wd.path,
        cat["adversarial_images"],
        intended,
        cat["probabilities"][np.arange(n_rows), intended],
        kind="adversarial" if rows_tgt is None else "fooling",
        model=cfg.model,
        weights=cfg.weights,
    )
    # grid: successful attacks first (one per image), then failures
    order = np.argsort(~success, kind="stable")
    _, first = np.unique(rows_img[order], return_index=True)
    show = order[np.sort(first)][:8]
    name = lambda c: clf.class_names[c] if clf.class_names else str(c)
    save_grid_png(
        wd.file("grid.png"),
        np.concatenate([images[rows_img[show]], cat["adversarial_images"][show]]),
        ncols=len(show),
        titles=[name(labels[rows_img[r]]) for r in show]
        + [f"{name(cat['predicted'][r])} {conf[r]:.2f}" for r in show],
        row_labels=["original", "adversarial"],
    )
    return wd.finish(summary)


def define_flags() -> None:
    config.define_workdir_flags()
    config.define_flags(OnePixelRunConfig)


def main(argv) -> None:
    del argv
    cfg = config.from_flags(OnePixelRunConfig)
    summary = run(cfg, FLAGS.workdir, overwrite=FLAGS.overwrite)
    print(f"results in {FLAGS.workdir}")
    print_json_line(summary)
