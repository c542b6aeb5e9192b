"""The analysis figures of Nguyen, Yosinski, Clune (CVPR 2015) over finished
fooling runs: gradient ascent next to the CPPN elites (Sec. 3.9, Fig. 13), the
repetition ablation (Sec. 3.4, Fig. 9) and per-class / per-category confidence
(Sec. 3.3, Figs. 6-8).

  python -m experiments.nguyen_figures --figure=ascent_vs_cppn \
      --cppn=runs/imagenet_cppn --workdir=runs/nguyen_ascent

Every figure reads existing work directories (``common.load_artifact`` for the
images, ``summary.json`` for the per-class confidences) and writes its own work
directory: ``summary.json`` and PNGs.

- ``ascent_vs_cppn``: gradient ascent on ``log p_c`` (``attacks.gradient_ascent``)
  from noise on the model of the CPPN run for ``--classes`` (or the
  ``--num_shown`` best CPPN classes), or the images of a finished
  ``experiments.gradient_ascent`` run (``--ascent``); ``ascent_vs_cppn.png``
  has one row per class, the ascent image and the CPPN elite side by side.
- ``repetition``: each elite is split into ``grid x grid`` tiles; the tiles are
  ranked by gradient saliency (``sum |d log p_c / d x|`` per tile) and all but
  the top 1 (``keep_top1``) or top ``--keep_tiles`` (``keep_topK``) tiles, or
  all but a central box (``center``), are filled with the image's mean colour
  (or grey). The table holds each class's confidence before and after;
  ``repetition_bars.png`` and ``repetition_examples.png``.
- ``per_class``: the elites' confidences sorted (``per_class_sorted.png``, the
  paper's medians as reference lines) and their mean over ImageNet's dog and
  cat classes (151-285) versus the rest (``per_category.png``).

The masking code is pure and vmapped over images (``ablate_batch``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from fooljax.attacks import gradient_ascent, initial_images
from fooljax.attacks.gradient_ascent import class_log_prob
from fooljax.errors import FooljaxError
from fooljax.io import integrity
from fooljax.runs import config, pictures
from fooljax.runs.cli import print_json_line
from fooljax.runs.common import (
    Workdir,
    load_artifact,
    load_classifier,
    save_artifact,
)
from fooljax.runs.pictures import save_grid_png
from fooljax.runs.transfer import intended_probs

FLAGS = flags.FLAGS
opt = config.opt

FIGURES = ("ascent_vs_cppn", "repetition", "per_class")
# Nguyen et al. 2015, Sec. 3.3 (AlexNet, ImageNet): median elite confidence.
PAPER_MEDIAN = {"direct": 0.2159, "cppn": 0.8811}
# ImageNet's dog and cat classes in the standard 0..999 order (Sec. 3.3: "dogs
# and cats" are the hardest to fool): 151 Chihuahua .. 285 Egyptian cat.
DOGS_CATS = (151, 285)


@dataclasses.dataclass(frozen=True)
class NguyenFiguresConfig:
    figure: str = opt("ascent_vs_cppn", "Which figure.", choices=FIGURES)
    cppn: str = opt("", "Finished CPPN fooling run (work directory).")
    direct: str = opt("", "Finished direct-encoding fooling run (per_class).")
    ascent: str = opt(
        "", "Finished experiments.gradient_ascent run (else ascent is run here)."
    )
    model: str = opt("", "Model to score/ascend (default: the CPPN run's).")
    weights: str = opt("", "Its weights (default: the CPPN run's).")
    preprocess: str = opt("", "Its preprocessing (default: the CPPN run's).")
    classes: tuple[int, ...] = opt((), "Classes shown (empty: the best CPPN ones).")
    num_shown: int = opt(10, "Classes shown when --classes is empty.")
    ascent_steps: int = opt(20, "Gradient-ascent steps.")
    step_size: float = opt(1.0, "Gradient-ascent step size.")
    l2_decay: float = opt(1e-4, "Gradient-ascent L2 decay on the pixels.")
    init: str = opt("noise", "Gradient-ascent start.", choices=("noise", "blank"))
    seed: int = opt(0, "Seed of the gradient-ascent noise start.")
    grid: int = opt(4, "repetition: tiles per side.")
    keep_tiles: int = opt(4, "repetition: salient tiles kept by keep_topK.")
    center_fraction: float = opt(0.5, "repetition: side of the kept central box.")
    fill: str = opt("mean", "repetition: fill colour.", choices=("mean", "grey"))
    batch_size: int = opt(16, "Images per model call.")

    def validate(self) -> None:
        config.check_fields(
            self,
            num_shown=(1, None),
            ascent_steps=(1, None),
            step_size=dict(lo=0, lo_open=True),
            l2_decay=(0, None),
            grid=(2, None),
            keep_tiles=(1, self.grid * self.grid - 1),
            center_fraction=dict(lo=0, hi=1, lo_open=True, hi_open=True),
            batch_size=(1, None),
        )
        if self.figure in ("ascent_vs_cppn", "repetition") and not self.cppn:
            raise FooljaxError(f"--figure={self.figure} needs --cppn=WORKDIR")
        if self.figure == "per_class" and not (self.cppn or self.direct):
            raise FooljaxError("--figure=per_class needs --cppn and/or --direct")
        if self.ascent and self.figure != "ascent_vs_cppn":
            raise FooljaxError("--ascent is only read by --figure=ascent_vs_cppn")
        for c in self.classes:
            if c < 0:
                raise FooljaxError(f"--classes must be >= 0, got {c}")


# ----------------------------------------------------------- pure masking code


def tile_index(size: int, grid: int) -> jnp.ndarray:
    """``[size]``: the tile (0..grid-1) each row/column falls in (any size)."""
    return (jnp.arange(size) * grid) // size


def tile_scores(saliency, grid: int):
    """``saliency [H, W]`` summed per tile: ``[grid * grid]`` (row-major)."""
    h, w = saliency.shape
    rows, cols = tile_index(h, grid), tile_index(w, grid)
    tile = rows[:, None] * grid + cols[None, :]
    return jax.ops.segment_sum(saliency.ravel(), tile.ravel(), num_segments=grid * grid)


def keep_tiles_mask(scores, shape, grid: int, k: int):
    """``[H, W, 1]`` float mask keeping the ``k`` tiles of highest ``scores``."""
    h, w = shape
    kept = jnp.zeros(grid * grid).at[jax.lax.top_k(scores, k)[1]].set(1.0)
    tile = tile_index(h, grid)[:, None] * grid + tile_index(w, grid)[None, :]
    return kept[tile][..., None]


def center_mask(shape, fraction: float):
    """``[H, W, 1]`` mask keeping the central box of side ``fraction``."""

    def one(n):
        lo = (n - round(n * fraction)) // 2
        i = jnp.arange(n)
        return (i >= lo) & (i < lo + round(n * fraction))

    h, w = shape
    return (one(h)[:, None] & one(w)[None, :]).astype(jnp.float32)[..., None]


def ablate(image, mask, fill: str = "mean"):
    """``image [H, W, C]`` where ``mask`` is 1, the image's mean colour
    (``fill="mean"``) or grey 0.5 elsewhere."""
    if fill == "mean":
        colour = image.mean(axis=(0, 1), keepdims=True)
    else:
        colour = jnp.full((1, 1, image.shape[-1]), 0.5, image.dtype)
    return mask * image + (1 - mask) * colour


def ablation_names(keep_tiles: int) -> tuple[str, ...]:
    return ("keep_top1", f"keep_top{keep_tiles}", "center")


@functools.partial(
    jax.jit, static_argnames=("grid", "keep_tiles", "center_fraction", "fill")
)
def ablate_batch(images, saliency, *, grid, keep_tiles, center_fraction, fill):
    """The ablations of ``images [N, H, W, C]`` in [0, 1] given per-pixel
    ``saliency [N, H, W]``: ``[A, N, H, W, C]`` in the order of
    ``ablation_names(keep_tiles)``."""
    shape = images.shape[1:3]
    centre = center_mask(shape, center_fraction)

    def one(x, s):
        scores = tile_scores(s, grid)
        masks = (
            keep_tiles_mask(scores, shape, grid, 1),
            keep_tiles_mask(scores, shape, grid, keep_tiles),
            centre,
        )
        return jnp.stack([ablate(x, m, fill) for m in masks])

    return jnp.moveaxis(jax.vmap(one)(images, saliency), 1, 0)


@functools.partial(jax.jit, static_argnums=0)
def saliency_map(logits_fn, params, images, labels):
    """``[N, H, W]``: ``sum_c |d log p_label / d x|`` per pixel (one image each)."""

    def one(x, k):
        return class_log_prob(logits_fn, params, x[None], k[None])[0]

    g = jax.vmap(jax.grad(one))(images, labels)
    return jnp.abs(g).sum(-1)


# ------------------------------------------------------------------ host side


def _in_batches(fn, batch_size: int, *arrays) -> np.ndarray:
    out = []
    for i in range(0, len(arrays[0]), batch_size):
        out.append(
            np.asarray(fn(*(jnp.asarray(a[i : i + batch_size]) for a in arrays)))
        )
    return np.concatenate(out)


def class_probs(clf, images, labels, batch_size: int) -> np.ndarray:
    """``p(labels[i] | images[i])`` on ``clf``: ``[N]`` float64."""
    labels = np.asarray(labels, np.int32)
    return _in_batches(
        lambda x, y: intended_probs(clf.logits_fn, clf.params, x, y)[0],
        batch_size,
        images,
        labels,
    ).astype(np.float64)


def read_summary(workdir: str) -> dict:
    """The ``summary.json`` of a finished run; one line when there is none."""
    path = os.path.join(workdir, "summary.json")
    if not os.path.isdir(workdir):
        raise FooljaxError(f"work directory {workdir} does not exist")
    if not os.path.exists(path):
        raise FooljaxError(f"{workdir} holds no finished run (no summary.json)")
    try:
        return json.loads(integrity.read_verified(path))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise FooljaxError(f"{path} is not JSON") from None


def elite_confidence(summary: dict, source: str) -> np.ndarray:
    """``[K]`` per-class elite confidence of a fooling run's summary (the
    median over runs for a ``--num_runs`` run)."""
    conf = summary.get("confidence")
    if not conf:
        raise FooljaxError(f"{source}: summary.json has no per-class confidence")
    conf = np.asarray(conf, np.float64)
    return np.median(conf, axis=0) if conf.ndim == 2 else conf


def _class_names(summary: dict, k: int) -> list[str]:
    names = summary.get("class_names") or [str(i) for i in range(k)]
    return [str(n) for n in names]


def best_elites(art: dict) -> dict[int, tuple[np.ndarray, float]]:
    """``{class: (image, confidence)}``: the best elite per class of a fooling
    artifact (several runs leave several per class)."""
    out = {}
    for img, lab, c in zip(
        art["images"], art["labels"], art["confidence"], strict=True
    ):
        if int(lab) not in out or c > out[int(lab)][1]:
            out[int(lab)] = (img, float(c))
    return out


def _fooling_artifact(source: str) -> dict:
    art = load_artifact(source)
    if art["kind"] != "fooling" or len(art["labels"]) == 0:
        raise FooljaxError(f"{source} holds no fooling images (kind {art['kind']})")
    return art


def _pick_classes(cfg, elites: dict, num_classes: int) -> list[int]:
    if cfg.classes:
        bad = [c for c in cfg.classes if c >= num_classes or c not in elites]
        if bad:
            raise FooljaxError(
                f"--classes {bad} not in the CPPN run (it has {len(elites)} elites "
                f"of {num_classes} classes)"
            )
        return list(cfg.classes)
    best = sorted(elites, key=lambda c: -elites[c][1])
    return sorted(best[: cfg.num_shown])


def _classifier(cfg, art: dict, source: str):
    """The model the figure scores with: ``--model``/``--weights``, else the
    source run's (with the preprocessing its ``config.json`` records)."""
    model = cfg.model or art["model"]
    weights = cfg.weights or art["weights"]
    run_cfg = {}
    if not cfg.model and not cfg.weights:
        path = os.path.join(source, "config.json")
        if os.path.exists(path):
            run_cfg = json.loads(integrity.read_verified(path))
    pre = cfg.preprocess or run_cfg.get("preprocess")
    clf = load_classifier(model, weights, pre, run_cfg.get("mean_file"))
    return clf, model, weights


def _label(name: str, what: str, conf: float) -> str:
    """Two title lines: the class name, then what the image is and its
    confidence for that class."""
    return f"{name[:20]}\n{what} {100 * conf:.3f}%"


def ascent_vs_cppn(cfg, open_workdir) -> dict:
    art = _fooling_artifact(cfg.cppn)
    names = _class_names(read_summary(cfg.cppn), 0)
    elites = best_elites(art)
    clf, model, weights = _classifier(cfg, art, cfg.cppn)
    names = list(clf.class_names or names)
    classes = _pick_classes(cfg, elites, clf.num_classes)
    labels = np.asarray(classes, np.int32)
    if cfg.ascent:
        asc = _fooling_artifact(cfg.ascent)
        mine = best_elites(asc)
        missing = [c for c in classes if c not in mine]
        if missing:
            raise FooljaxError(f"{cfg.ascent} has no ascent image of class {missing}")
        images = np.stack([mine[c][0] for c in classes])
        conf = np.asarray([mine[c][1] for c in classes])
        source = {"ascent": cfg.ascent, "model": asc["model"]}
        wd = open_workdir()
    else:
        wd = open_workdir()
        saved = wd.load_npz("ascent.npz")
        if saved is None or not np.array_equal(saved["classes"], labels):
            key = jax.random.key(cfg.seed)
            x0 = initial_images(key, len(classes), clf.input_shape, kind=cfg.init)
            parts = [
                gradient_ascent(
                    clf.logits_fn,
                    clf.params,
                    x0[i : i + cfg.batch_size],
                    jnp.asarray(labels[i : i + cfg.batch_size]),
                    step_size=cfg.step_size,
                    num_steps=cfg.ascent_steps,
                    l2_decay=cfg.l2_decay,
                )
                for i in range(0, len(classes), cfg.batch_size)
            ]
            images = np.concatenate([np.asarray(p[0]) for p in parts])
            conf = np.concatenate([np.asarray(p[1], np.float64) for p in parts])
            wd.save_npz("ascent.npz", images=images, confidence=conf, classes=labels)
        else:
            images, conf = saved["images"], saved["confidence"]
        save_artifact(
            wd.path, images, labels, conf, kind="fooling", model=model, weights=weights
        )
        source = {"model": model, "weights": weights, "ascent_steps": cfg.ascent_steps}
    cppn_imgs = np.stack([elites[c][0] for c in classes])
    cppn_conf = np.asarray([elites[c][1] for c in classes])
    ascent_shown = _fit(images, cppn_imgs.shape[1:])
    tiles, titles = [], []
    for i, c in enumerate(classes):
        tiles += [ascent_shown[i], cppn_imgs[i]]
        titles += [
            _label(names[c], "ascent", conf[i]),
            _label(names[c], "CPPN", cppn_conf[i]),
        ]
    save_grid_png(
        wd.file("ascent_vs_cppn.png"), np.stack(tiles), ncols=2, titles=titles
    )
    return {
        **source,
        "classes": classes,
        "class_names": [names[c] for c in classes],
        "ascent_confidence": conf.tolist(),
        "cppn_confidence": cppn_conf.tolist(),
        "ascent_median_confidence": float(np.median(conf)),
        "cppn_median_confidence": float(np.median(cppn_conf)),
        "ascent_num_at_least_0.9999": int((conf >= 0.9999).sum()),
        "cppn_num_at_least_0.9999": int((cppn_conf >= 0.9999).sum()),
        "paper": "gradient ascent reaches >= 99.99 % (Sec. 3.9, Fig. 13)",
    }


def _fit(images, shape) -> np.ndarray:
    """``images`` resized (bilinear) to ``shape`` so that grids line up."""
    if tuple(images.shape[1:]) == tuple(shape):
        return np.asarray(images)
    out = jax.image.resize(jnp.asarray(images), (len(images), *shape), "linear")
    return np.clip(np.asarray(out), 0, 1)


def repetition(cfg, open_workdir) -> dict:
    art = _fooling_artifact(cfg.cppn)
    elites = best_elites(art)
    clf, model, weights = _classifier(cfg, art, cfg.cppn)
    names = list(clf.class_names or _class_names(read_summary(cfg.cppn), 0))
    classes = _pick_classes(cfg, elites, clf.num_classes)
    labels = np.asarray(classes, np.int32)
    images = np.stack([elites[c][0] for c in classes])
    kinds = ablation_names(cfg.keep_tiles)
    wd = open_workdir()
    sal = _in_batches(
        lambda x, y: saliency_map(clf.logits_fn, clf.params, x, y),
        cfg.batch_size,
        images,
        labels,
    )
    ablated = np.asarray(
        ablate_batch(
            jnp.asarray(images),
            jnp.asarray(sal),
            grid=cfg.grid,
            keep_tiles=cfg.keep_tiles,
            center_fraction=cfg.center_fraction,
            fill=cfg.fill,
        )
    )  # [A, N, H, W, C]
    original = class_probs(clf, images, labels, cfg.batch_size)
    after = {
        k: class_probs(clf, ablated[a], labels, cfg.batch_size)
        for a, k in enumerate(kinds)
    }
    rows = [
        {
            "class": c,
            "name": names[c],
            "archive_confidence": elites[c][1],
            "original": float(original[i]),
            **{k: float(after[k][i]) for k in kinds},
        }
        for i, c in enumerate(classes)
    ]
    _bar_chart(
        wd.file("repetition_bars.png"),
        [names[c][:16] for c in classes],
        {"original": original, **after},
        xlabel="class",
        ylabel="confidence of the class (%)",
        title=f"Repetition ablation ({cfg.grid}x{cfg.grid} tiles, fill {cfg.fill})",
    )
    shown = np.concatenate([images[:, None], np.moveaxis(ablated, 0, 1)], 1)
    titles = [
        _label(names[c], k, p[i])
        for i, c in enumerate(classes)
        for k, p in zip(("original", *kinds), (original, *after.values()), strict=True)
    ]
    save_grid_png(
        wd.file("repetition_examples.png"),
        shown.reshape(-1, *images.shape[1:]),
        ncols=1 + len(kinds),
        titles=titles,
    )
    return {
        "model": model,
        "weights": weights,
        "grid": cfg.grid,
        "keep_tiles": cfg.keep_tiles,
        "center_fraction": cfg.center_fraction,
        "fill": cfg.fill,
        "ablations": list(kinds),
        "table": rows,
        "median_original": float(np.median(original)),
        "median": {k: float(np.median(v)) for k, v in after.items()},
        "mean_drop": {k: float(np.mean(original - v)) for k, v in after.items()},
        "fraction_still_at_least_0.99": {
            k: float(np.mean(v[original >= 0.99] >= 0.99))
            if (original >= 0.99).any()
            else None
            for k, v in after.items()
        },
        "paper": "removing repeated copies lowers confidence only a little (Fig. 9)",
    }


def _bar_chart(
    path,
    labels,
    groups: dict,
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    annotate: bool = False,
) -> None:
    """Grouped bars: one group per label, one bar per ``groups`` entry
    (values in [0, 1], shown in %); ``annotate`` writes each bar's value and
    scales the axis to the data (for small values)."""
    plt = pictures.pyplot()
    n, m = len(labels), len(groups)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.22 * n * m + 1.5), 4))
    width = 0.8 / m
    top = 0.0
    for j, (name, vals) in enumerate(groups.items()):
        bars = ax.bar(
            np.arange(n) + (j - (m - 1) / 2) * width,
            100 * np.asarray(vals),
            width,
            label=name,
        )
        top = max(top, 100 * float(np.max(vals)))
        if annotate:
            ax.bar_label(bars, fmt="%.2f%%", fontsize=7)
    ax.set_xticks(np.arange(n), labels, rotation=40, ha="right", fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if annotate:
        ax.set_ylim(0, 1.35 * top if top > 0 else 1)  # room for the legend
    else:
        ax.set_ylim(0, 118)  # room for the legend above the 100 % bars
        ax.set_yticks(range(0, 101, 20))
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncol=m, loc="upper center")
    pictures.save_figure(fig, path)


def dogs_cats_mask(num_classes: int) -> np.ndarray:
    if num_classes != 1000:
        raise FooljaxError(
            f"per-category needs the 1000 ImageNet classes, got {num_classes}"
        )
    k = np.arange(num_classes)
    return (k >= DOGS_CATS[0]) & (k <= DOGS_CATS[1])


def per_class(cfg, open_workdir) -> dict:
    runs = {}
    for enc, src in (("cppn", cfg.cppn), ("direct", cfg.direct)):
        if src:
            s = read_summary(src)
            runs[enc] = elite_confidence(s, src)
    out = {}
    for enc, conf in runs.items():
        dc = dogs_cats_mask(len(conf))
        out[enc] = {
            "num_classes": int(len(conf)),
            "median_confidence": float(np.median(conf)),
            "paper_median_confidence": PAPER_MEDIAN[enc],
            "num_at_least_0.99": int((conf >= 0.99).sum()),
            "mean_dogs_cats": float(conf[dc].mean()),
            "mean_other": float(conf[~dc].mean()),
            "median_dogs_cats": float(np.median(conf[dc])),
            "median_other": float(np.median(conf[~dc])),
            "sorted_confidence": np.sort(conf)[::-1].tolist(),
        }
    wd = open_workdir()
    plt = pictures.pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    colours = {"cppn": "tab:blue", "direct": "tab:orange"}
    for enc, r in out.items():
        ys = 100 * np.asarray(r["sorted_confidence"])
        ax.plot(
            np.arange(len(ys)),
            ys,
            color=colours[enc],
            label=f"{enc} (ours, median {100 * r['median_confidence']:.2f}%)",
        )
        ax.axhline(
            100 * PAPER_MEDIAN[enc],
            color=colours[enc],
            ls="--",
            lw=1,
            label=f"{enc}: paper median {100 * PAPER_MEDIAN[enc]:.2f}%",
        )
    ax.set_xlabel("class rank (sorted by elite confidence)")
    ax.set_ylabel("elite confidence (%)")
    ax.set_ylim(0, 102)
    ax.set_title("Per-class elite confidence, ImageNet (Figs. 6-7)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    pictures.save_figure(fig, wd.file("per_class_sorted.png"))
    _bar_chart(
        wd.file("per_category.png"),
        [f"{enc} encoding" for enc in out],
        {
            "dogs and cats (151-285)": [r["mean_dogs_cats"] for r in out.values()],
            "other classes": [r["mean_other"] for r in out.values()],
        },
        xlabel="run",
        ylabel="mean elite confidence (%)",
        title="Mean elite confidence per category (Fig. 8)",
        annotate=True,
    )
    return {"runs": out, "sources": {"cppn": cfg.cppn, "direct": cfg.direct}}


_FIGURE_FNS = {
    "ascent_vs_cppn": ascent_vs_cppn,
    "repetition": repetition,
    "per_class": per_class,
}


def run(cfg: NguyenFiguresConfig, workdir: str, *, overwrite: bool = False) -> dict:
    """Writes one figure's ``summary.json`` and PNGs into ``workdir``; the
    sources are read (and refused with one line) before it is touched."""
    cfg.validate()
    for src in (cfg.cppn, cfg.direct, cfg.ascent):
        if src:
            read_summary(src)  # a missing or unfinished source: before writing
    t0 = time.time()
    opened = []

    def open_workdir() -> Workdir:
        # called by each figure once its inputs are checked: bad input
        # leaves no trace in ``workdir``
        opened.append(Workdir(workdir, cfg, overwrite=overwrite))
        return opened[-1]

    summary = _FIGURE_FNS[cfg.figure](cfg, open_workdir)
    return opened[-1].finish(
        {"figure": cfg.figure, **summary, "wall_seconds": time.time() - t0}
    )


def define_flags() -> None:
    config.define_workdir_flags()
    config.define_flags(NguyenFiguresConfig)


def main(argv) -> None:
    del argv
    cfg = config.from_flags(NguyenFiguresConfig)
    s = run(cfg, FLAGS.workdir, overwrite=FLAGS.overwrite)
    print(f"results in {FLAGS.workdir}")
    head = {k: v for k, v in s.items() if not isinstance(v, (list, dict))}
    if cfg.figure == "per_class":
        head = {
            e: {k: v for k, v in r.items() if k != "sorted_confidence"}
            for e, r in s["runs"].items()
        }
    print_json_line(head)
