"""One pixel attack (Su et al. 2019) on a registered classifier; resumable.

  python -m experiments.one_pixel --flagfile=experiments/configs/one_pixel_lenet.flags \
      --weights=../shared/data/cifar10-keras-one-pixel/lenet.h5 --workdir=runs/op_lenet

Attacks the first ``--num_images`` correctly classified images from
``--start_index`` (untargeted, or with ``--targeted`` towards every other class)
with the paper's DE budget, in batches of ``--batch_size`` images attacked at
once. Each finished batch is saved in ``WORKDIR/batches/`` and skipped when the
run is restarted. Writes ``summary.json`` (success_rate,
mean_adversarial_confidence, mean_queries, num_images, wall_seconds,
images_per_second, classes_per_image for targeted runs), ``results.jsonl`` (one
line per attacked image/target) and ``grid.png`` (originals vs adversarials).
The last output line is the summary as JSON.

Expected (measured on the shared 2-core CPU under load; see BUILD_NOTES.md):
``--model=cifar_lenet --num_images=20`` (the 17 correctly classified exact PNGs)
takes about 160-200 s with success 0.53 (1 pixel), 0.82 (3) and 0.88 (5).
``cifar_resnet32`` costs about 200 s per image that is not fooled early.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time

import numpy as np
from absl import flags

from fooljax.cli import extra_args, print_json_line, run_main
from fooljax.errors import FooljaxError

log = logging.getLogger("fooljax")

flags.DEFINE_string("workdir", None, "Run directory (created; resumed if unfinished).")
flags.DEFINE_bool("overwrite", False, "Replace a finished run in --workdir.")
flags.DEFINE_string("model", "cifar_lenet", "Registered model name.")
flags.DEFINE_string("weights", "default", "Weights file (e.g. a Keras .h5).")
flags.DEFINE_string(
    "dataset", "cifar10_files", "Dataset name (cifar10, cifar10_files)."
)
flags.DEFINE_string("split", "test", "Dataset split.")
flags.DEFINE_string("data_dir", None, "Data directory (default $FOOLJAX_DATA/<set>).")
flags.DEFINE_string("data_source", "idx", "Dataset source (cifar10: auto/batches/jpg).")
flags.DEFINE_bool(
    "interleave_classes",
    False,
    "Order images by (rank within class, class): the class-sorted JPEG set then "
    "yields every class in turn.",
)
flags.DEFINE_integer("pixels", 1, "Number of pixels k the attack may change.")
flags.DEFINE_bool("targeted", False, "Attack towards each other class.")
flags.DEFINE_integer("num_images", 20, "Correctly classified images to attack.")
flags.DEFINE_integer("start_index", 0, "First dataset index considered.")
flags.DEFINE_bool("only_correct", True, "Skip images the model misclassifies.")
flags.DEFINE_integer("population", 400, "DE population size (>= 4).")
flags.DEFINE_integer("max_generations", 100, "DE generations after initialisation.")
flags.DEFINE_float("differential_weight", 0.5, "DE scale factor F.")
flags.DEFINE_float("crossover_rate", 1.0, "DE crossover rate (1 = none, as the paper).")
flags.DEFINE_string("early_stop", "threshold", "threshold, success or none.")
flags.DEFINE_integer("batch_size", 100, "Attacks (image, target pairs) run at once.")
flags.DEFINE_integer("compact_every", 10, "Generations between batch compactions.")
flags.DEFINE_integer(
    "eval_batch",
    None,
    "Images per model call (the generation's candidates are evaluated in calls "
    "of this fixed size); 0 = one call per generation; default: 100 on CPU, "
    "0 on GPU/TPU.",
)
flags.DEFINE_bool(
    "memoize",
    True,
    "Reuse the probabilities of a trial that paints the same pixels as a current "
    "population member or an earlier trial (exact; fewer model queries). Needs "
    "eval_batch > 0.",
)
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.mark_flag_as_required("workdir")
FLAGS = flags.FLAGS


@dataclasses.dataclass(frozen=True)
class OnePixelRunConfig:
    model: str = "cifar_lenet"
    weights: str = "default"
    dataset: str = "cifar10_files"
    split: str = "test"
    data_dir: str | None = None
    data_source: str = "idx"
    interleave_classes: bool = False
    pixels: int = 1
    targeted: bool = False
    num_images: int = 20
    start_index: int = 0
    only_correct: bool = True
    population: int = 400
    max_generations: int = 100
    differential_weight: float = 0.5
    crossover_rate: float = 1.0
    early_stop: str = "threshold"
    batch_size: int = 100
    compact_every: int = 10
    eval_batch: int | None = None
    memoize: bool = True
    seed: int = 0


def interleave_order(labels: np.ndarray) -> np.ndarray:
    """Indices sorted by (rank of the image within its class, class)."""
    rank = np.zeros(len(labels), np.int64)
    for c in np.unique(labels):
        idx = np.nonzero(labels == c)[0]
        rank[idx] = np.arange(len(idx))
    return np.lexsort((labels, rank))


def select_images(cfg: OnePixelRunConfig, clf):
    """``(images uint8, labels, dataset indices)`` of the images to attack."""
    from fooljax import data
    from fooljax.train.evaluate import predict_logits

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
            pred = predict_logits(clf.logits_fn, clf.params, images[idx], 500).argmax(
                -1
            )
            idx = idx[pred == labels[idx]]
        chosen.extend(idx.tolist())
        if len(chosen) >= cfg.num_images:
            break
    chosen = chosen[: cfg.num_images]
    if not chosen:
        raise FooljaxError("no images to attack (check --start_index/--num_images)")
    sel = np.asarray(chosen)
    return images[sel], labels[sel], sel


def _save_npz(path: str, **arrays) -> None:
    tmp = path + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def save_grid(path, originals, adversarials, labels, preds, probs, class_names, n=8):
    """Two rows: originals (true label) over adversarials (prediction, confidence)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(n, len(originals))
    if n == 0:
        return
    fig, axes = plt.subplots(2, n, figsize=(1.6 * n, 3.6), squeeze=False)
    name = lambda c: class_names[c] if class_names else str(c)
    for i in range(n):
        for row, img, title in (
            (0, originals[i], f"{name(labels[i])}"),
            (1, adversarials[i], f"{name(preds[i])} {probs[i]:.2f}"),
        ):
            ax = axes[row, i]
            im = np.asarray(img)
            ax.imshow(
                im[..., 0] if im.shape[-1] == 1 else im, cmap="gray", vmin=0, vmax=1
            )
            ax.set_title(title, fontsize=7)
            ax.axis("off")
    axes[0, 0].text(
        -0.15,
        0.5,
        "original",
        rotation=90,
        transform=axes[0, 0].transAxes,
        va="center",
        ha="right",
        fontsize=8,
    )
    axes[1, 0].text(
        -0.15,
        0.5,
        "adversarial",
        rotation=90,
        transform=axes[1, 0].transAxes,
        va="center",
        ha="right",
        fontsize=8,
    )
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def run(cfg: OnePixelRunConfig, workdir: str, *, overwrite: bool = False) -> dict:
    """Runs (or resumes) the attack experiment in ``workdir``; returns the summary."""
    import jax

    from fooljax import models
    from fooljax.attacks import one_pixel as op
    from fooljax.io.workdir import SUMMARY, atomic_write_json, prepare_workdir

    attack_cfg = op.OnePixelConfig(
        num_pixels=cfg.pixels,
        population_size=cfg.population,
        max_generations=cfg.max_generations,
        differential_weight=cfg.differential_weight,
        crossover_rate=cfg.crossover_rate,
        early_stop=cfg.early_stop,
        compact_every=cfg.compact_every,
        eval_batch=cfg.eval_batch,
        memoize=cfg.memoize,
    )
    if cfg.num_images < 1 or cfg.batch_size < 1:
        raise FooljaxError("--num_images and --batch_size must be >= 1")
    if not 1 <= cfg.pixels:
        raise FooljaxError(f"pixel count must be >= 1, got {cfg.pixels}")
    if cfg.population < 4:
        raise FooljaxError(
            f"population must be at least 4 for DE/rand/1, got {cfg.population}"
        )
    if cfg.early_stop not in op.EARLY_STOP_MODES:
        raise FooljaxError(f"--early_stop must be one of {op.EARLY_STOP_MODES}")
    op.resolve_eval_batch(cfg.eval_batch)  # --eval_batch < 0: clear error, exit 2
    clf = models.load_classifier(cfg.model, cfg.weights)
    h, w, _ = clf.input_shape
    if cfg.pixels > h * w:
        raise FooljaxError(
            f"pixel count must be between 1 and the image's {h * w} pixels, "
            f"got {cfg.pixels}"
        )
    resume = prepare_workdir(workdir, dataclasses.asdict(cfg), overwrite=overwrite)
    if resume:
        log.info("resuming the unfinished run in %s", workdir)
    images_u8, labels, indices = select_images(cfg, clf)
    images = images_u8.astype(np.float32) / 255.0
    k = clf.num_classes
    # one attack per (image, target) row
    if cfg.targeted:
        rows_img = np.repeat(np.arange(len(labels)), k - 1)
        rows_tgt = np.asarray([t for y in labels for t in range(k) if t != y], np.int64)
    else:
        rows_img = np.arange(len(labels))
        rows_tgt = None
    # keys: fold_in(seed key, dataset index * K + target) -> batch-independent
    row_keys = indices[rows_img] * k + (rows_tgt if cfg.targeted else 0)
    probs_fn = op.probs_from_logits(clf.logits_fn)
    key = jax.random.key(cfg.seed)
    batch_dir = os.path.join(workdir, "batches")
    os.makedirs(batch_dir, exist_ok=True)
    n_rows = len(rows_img)
    parts = []
    t_run = time.time()
    for b, lo in enumerate(range(0, n_rows, cfg.batch_size)):
        path = os.path.join(batch_dir, f"batch_{b:05d}.npz")
        sl = slice(lo, min(lo + cfg.batch_size, n_rows))
        if os.path.exists(path):
            with np.load(path) as z:
                parts.append({f: z[f] for f in z.files})
            continue
        t0 = time.time()
        res = op.attack(
            key,
            probs_fn,
            clf.params,
            images[rows_img[sl]],
            labels[rows_img[sl]],
            targets=None if rows_tgt is None else rows_tgt[sl],
            config=attack_cfg,
            image_indices=row_keys[sl],
            input_shape=clf.input_shape,
            num_classes=k,
        )
        secs = time.time() - t0
        part = dict(res._asdict(), seconds=np.asarray(secs))
        _save_npz(path, **part)
        parts.append(part)
        log.info(
            "batch %d: %d attacks, success %d, %.1f s",
            b,
            sl.stop - sl.start,
            int(res.success.sum()),
            secs,
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
    if cfg.targeted:
        per_image = success.reshape(len(labels), k - 1).sum(1)
        summary["classes_per_image"] = float(per_image.mean())
    res_path = os.path.join(workdir, "results.jsonl")
    tmp = res_path + ".tmp"
    with open(tmp, "w") as f:
        import json

        for r in range(n_rows):
            i = rows_img[r]
            f.write(
                json.dumps(
                    {
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
                )
                + "\n"
            )
    os.replace(tmp, res_path)
    # grid: successful attacks first (one per image), then failures
    order = np.argsort(~success, kind="stable")
    seen, show = set(), []
    for r in order:
        if rows_img[r] not in seen:
            seen.add(rows_img[r])
            show.append(r)
    show = np.asarray(show[:8])
    save_grid(
        os.path.join(workdir, "grid.png"),
        images[rows_img[show]],
        cat["adversarial_images"][show],
        labels[rows_img[show]],
        cat["predicted"][show],
        conf[show],
        clf.class_names,
    )
    atomic_write_json(os.path.join(workdir, SUMMARY), summary)
    return summary


def main(argv):
    extra_args(argv)
    cfg = OnePixelRunConfig(
        **{
            f.name: getattr(FLAGS, f.name)
            for f in dataclasses.fields(OnePixelRunConfig)
        }
    )
    summary = run(cfg, FLAGS.workdir, overwrite=FLAGS.overwrite)
    print(f"results in {FLAGS.workdir}")
    print_json_line(summary)


if __name__ == "__main__":
    run_main(main)
