"""Retraining with an extra "fooling images" class (Nguyen et al. 2015,
§3.6-3.8): does training on fooling images protect a network?

Iteration ``i`` (1-based) evolves fooling images against ``DNN_i`` for its
``n`` real classes (MAP-Elites, many independent runs as one compiled step,
``fooling.evolve_runs``; on an ``n + 1``-class network a class's score is its
probability in the ``n + 1``-way softmax, ``map_elites.FirstClasses``, so the
fooling class competes) in two sets:

- **measurement runs** (``measure_runs`` runs of ``measure_population`` x
  ``measure_generations``, the paper's budget per run by default): how far new
  evolution gets against ``DNN_i``, the same budget at every iteration. Their
  elites are never trained on: later networks are asked to put them in the
  fooling class (``fooling_class_recall``).
- **production runs** (``population`` x ``generations``, cheap): the images
  added to the training set as class ``n``, one elite per class and run
  (``first_images`` in the first iteration, ``images_per_iteration`` in each
  later one; the paper's MNIST figures are 6000 and 1000).

Then ``DNN_{i+1}`` with ``n + 1`` outputs is trained on the data plus every
production image so far: fine-tuned from ``DNN_i`` (``--train_from=finetune``,
the extra output freshly initialised in the first iteration) or from scratch.

Per iteration ``summary.json``'s ``iterations`` records ``DNN_i``'s clean test
accuracy, its ``fooling_class_recall`` on the measurement images of earlier
iterations, and what the measurement runs against it reached (min/median
confidence over classes and runs, classes whose best run reaches 0.99 /
0.9999, median generations until a run has all classes there). Every
iteration's images and trained network are saved (checksummed) in the work
directory, so an interrupted loop resumes at the first unfinished step.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from fooljax import data, models
from fooljax.encodings import make_encoding
from fooljax.errors import FooljaxError
from fooljax.evolution import map_elites as me
from fooljax.io.images import to_uint8
from fooljax.io.params import flatten_params, unflatten_params
from fooljax.runs import config, fooling
from fooljax.runs.cli import print_json_line
from fooljax.runs.common import Workdir, load_classifier, save_artifact
from fooljax.runs.pictures import plot_lines, save_grid_png
from fooljax.train.classifier import fit
from fooljax.train.evaluate import evaluate_classifier, predict_logits

log = logging.getLogger("fooljax")
FLAGS = flags.FLAGS
opt = config.opt

THRESHOLDS = tuple(str(t) for t in me.THRESHOLDS)
_SECONDS = "__train_seconds__"  # saved beside DNN_i's params
# Nguyen et al. 2015: MNIST stays fooled (>= 99.99 % at every iteration);
# ImageNet, one iteration: median confidence 88.1 % -> 11.7 %.
PAPER = {
    "mnist": "new fooling images still reach >= 99.99 % at every iteration",
    "imagenet_median_confidence": [0.881, 0.117],
}


@dataclasses.dataclass(frozen=True)
class RetrainConfig:
    model: str = opt("lenet", "Registered model with a num_classes field.")
    weights: str = opt("default", "Weights of DNN_1 (n classes).")
    preprocess: str | None = opt(None, "identity, unit or caffe_deploy.")
    dataset: str = opt("mnist", "Training data: mnist or cifar10.")
    data_dir: str | None = opt(None, "Dataset directory (default: $FOOLJAX_DATA).")
    data_source: str = opt("auto", "How the dataset is stored (see data/).")
    num_train_examples: int = opt(0, "Train on the first N images only (0 = all).")
    encoding: str = opt("direct", "Genome encoding: direct or cppn.")
    encoding_options: tuple = ()  # the --cppn_* flags, filled by from_flags
    iterations: int = opt(15, "Networks DNN_1..DNN_N evolved against (paper ~15).")
    first_images: int = opt(6000, "Fooling images added in iteration 1 (paper 6000).")
    images_per_iteration: int = opt(1000, "Added in each later one (paper 1000).")
    population: int = opt(20, "Offspring per generation of a production run.")
    generations: int = opt(100, "Generations of a production run.")
    measure_runs: int = opt(5, "Measurement runs per iteration (never trained on).")
    measure_population: int = opt(200, "Population of a measurement run (paper 200).")
    measure_generations: int = opt(400, "Generations of a measurement run.")
    mutation_rate: float = opt(0.1, "Per-gene mutation probability.")
    mutation_eta: float = opt(15.0, "Polynomial mutation index.")
    eval_batch: int = opt(1000, "Images per model call (all runs together).")
    train_from: str = opt(
        "finetune",
        "DNN_{i+1} from DNN_i or from scratch.",
        choices=("finetune", "scratch"),
    )
    epochs: int = opt(1, "Training epochs per network.")
    batch_size: int = opt(64, "Training batch size.")
    learning_rate: float = opt(1e-3, "Peak Adam learning rate (cosine decay).")
    augment_shift: int = opt(
        0, "Train on images moved by random offsets of up to N pixels (0: off)."
    )
    seed: int = opt(0, "Seed of the runs and of the training.")
    log_every: int = opt(50, "Generations per compiled chunk (one log line).")

    def validate(self) -> None:
        config.check_fields(
            self,
            iterations=(1, None),
            num_train_examples=(0, None),
            first_images=(1, None),
            images_per_iteration=(1, None),
            population=(2, None),
            generations=(1, None),
            measure_runs=(1, None),
            measure_population=(2, None),
            measure_generations=(1, None),
            mutation_rate=(0, 1),
            mutation_eta=(0, None),
            eval_batch=(1, None),
            epochs=(1, None),
            batch_size=(1, None),
            augment_shift=(0, None),
            learning_rate=dict(lo=0, lo_open=True),
            log_every=(1, None),
        )
        if self.dataset not in ("mnist", "cifar10"):
            raise FooljaxError(
                f"--dataset must be mnist or cifar10, got {self.dataset}"
            )


def runs_for(num_images: int, num_classes: int) -> int:
    """Runs whose elites (one per class) give at least ``num_images`` images."""
    return math.ceil(num_images / num_classes)


def add_class_params(params, template):
    """``params`` of an ``n``-class network + a random ``template`` of the same
    network with ``n + 1`` outputs -> ``n + 1``-class params: every leaf of
    ``params``, the output layer's leaves extended by the template's new slice
    (the leaves whose last axis grew by one)."""

    def merge(p, t):
        if p.shape == t.shape:
            return p
        if p.shape[:-1] != t.shape[:-1] or t.shape[-1] != p.shape[-1] + 1:
            raise FooljaxError(
                f"cannot add a class to a parameter of shape {p.shape} "
                f"(template {t.shape})"
            )
        return jnp.concatenate([p, t[..., -1:]], axis=-1)

    return jax.tree_util.tree_map(merge, params, template)


def evolution_stats(confidence: np.ndarray, first_all: np.ndarray) -> dict:
    """``confidence [R, K]`` and ``first_all [R, T]`` of one iteration's runs ->
    the numbers the summary records."""
    best = confidence.max(0)
    out = {
        "median_confidence": float(np.median(confidence)),
        "min_confidence": float(confidence.min()),
        "max_confidence": float(confidence.max()),
        "num_classes_at_least": {t: int(np.sum(best >= float(t))) for t in THRESHOLDS},
        "fraction_images_at_least": {
            t: float(np.mean(confidence >= float(t))) for t in THRESHOLDS
        },
        "median_classes_per_run_at_least": {
            t: float(np.median(np.sum(confidence >= float(t), axis=1)))
            for t in THRESHOLDS
        },
    }
    med = {t: fooling.median_first(first_all[:, j]) for j, t in enumerate(THRESHOLDS)}
    out["median_first_generation_all_at_least"] = med
    return out


def _load_data(cfg: RetrainConfig):
    kw = dict(data_dir=cfg.data_dir, source=cfg.data_source)
    if cfg.dataset == "mnist" and cfg.data_source == "auto":
        kw["source"] = "idx"
    x, y = data.load_dataset(cfg.dataset, "train", **kw)
    xt, yt = data.load_dataset(cfg.dataset, "test", **kw)
    if cfg.num_train_examples:
        x, y = x[: cfg.num_train_examples], y[: cfg.num_train_examples]
    return x, np.asarray(y, np.int32), xt, np.asarray(yt, np.int32)


class _Loop:
    """The state of one retraining loop: the work directory, the data, the
    encoding and the network of the current iteration."""

    def __init__(self, cfg: RetrainConfig, workdir: str, overwrite: bool):
        cfg.validate()
        self.cfg = cfg
        self.base = load_classifier(cfg.model, cfg.weights, cfg.preprocess)
        self.n = self.base.num_classes
        self.wide = models.classifier_with_classes(
            cfg.model, self.n + 1, preprocess=cfg.preprocess, seed=cfg.seed
        )
        shape = tuple(self.base.input_shape)
        self.encoding, _ = make_encoding(
            cfg.encoding,
            shape,
            mutation_rate0=cfg.mutation_rate,
            mutation_eta=cfg.mutation_eta,
            options=dict(cfg.encoding_options),
        )
        self.x, self.y, self.xt, self.yt = _load_data(cfg)
        if self.x.shape[1:] != shape:
            raise FooljaxError(
                f"{cfg.dataset} images are {self.x.shape[1:]}, model '{cfg.model}' "
                f"takes {shape}"
            )
        self.wd = Workdir(workdir, cfg, overwrite=overwrite)
        self.rows = self.wd.load_json("iterations.json").get("iterations", [])

    def network(self, i: int):
        """``(logits_fn, params, num_classes)`` of ``DNN_i``."""
        if i == 1:
            return self.base.logits_fn, self.base.params, self.n
        flat = self.wd.load_npz(f"dnn{i:02d}.npz")
        if flat is None:
            raise FooljaxError(f"DNN_{i} is not saved in {self.wd.path}")
        flat.pop(_SECONDS, None)
        params = jax.tree_util.tree_map(jnp.asarray, unflatten_params(flat))
        return self.wide.logits_fn, params, self.n + 1

    def evolve(self, i: int, logits_fn, params) -> dict:
        """Iteration ``i``'s production and measurement runs against
        ``DNN_i`` (saved, or loaded if done before an interruption)."""
        name = f"images{i:02d}.npz"
        saved = self.wd.load_npz(name)
        if saved is not None:
            return saved
        cfg = self.cfg
        lp = me.FirstClasses(me.log_probs_from(logits_fn=logits_fn), self.n)
        images = cfg.first_images if i == 1 else cfg.images_per_iteration
        base = cfg.seed * 1_000_003 + i * 100_003  # disjoint seeds per iteration
        out = {"num_train_images": np.asarray(images)}
        for prefix, runs, pop, gens in (
            ("", runs_for(images, self.n), cfg.population, cfg.generations),
            ("m_", cfg.measure_runs, cfg.measure_population, cfg.measure_generations),
        ):
            t0 = time.time()
            got = fooling.evolve_runs(
                lp,
                params,
                self.encoding,
                num_classes=self.n,
                population=pop,
                seeds=range(base, base + runs),
                generations=gens,
                eval_batch=cfg.eval_batch,
                log_every=cfg.log_every,
                label=f"iteration {i} {'measurement' if prefix else 'production'}: ",
            )
            base += 50_000
            out |= {prefix + k: v for k, v in got.items()}
            out[prefix + "seconds"] = np.asarray(time.time() - t0)
        self.wd.save_npz(name, **out)
        return out

    def pool(self, upto: int, *, measured: bool):
        """Images ``[N, H, W, C]`` uint8 of iterations ``1..upto``: the
        production images trained on (the first ``num_train_images`` elites),
        or every measurement run's elites (``measured``)."""
        parts = [np.zeros((0, *self.x.shape[1:]), np.uint8)]
        for j in range(1, upto + 1):
            d = self.wd.load_npz(f"images{j:02d}.npz")
            if d is None:
                raise FooljaxError(f"images of iteration {j} are not saved")
            imgs = d["m_images" if measured else "images"]
            imgs = imgs.reshape(-1, *imgs.shape[2:])
            if not measured:
                imgs = imgs[: int(d["num_train_images"])]
            parts.append(to_uint8(imgs))
        return np.concatenate(parts)

    def train(self, i: int, logits_fn, params) -> float:
        """Trains and saves ``DNN_{i+1}``; returns the seconds it took."""
        cfg = self.cfg
        t0 = time.time()
        fool = self.pool(i, measured=False)
        x = np.concatenate([self.x, fool])
        y = np.concatenate([self.y, np.full(len(fool), self.n, np.int32)])
        if cfg.train_from == "scratch":
            start = models.classifier_with_classes(
                cfg.model, self.n + 1, preprocess=cfg.preprocess, seed=cfg.seed + i
            ).params
        elif i == 1:
            start = add_class_params(params, self.wide.params)
        else:
            start = params
        log.info(
            "iteration %d: training DNN_%d (%s) on %d images (%d fooling)",
            i,
            i + 1,
            cfg.train_from,
            len(y),
            len(fool),
        )
        new = fit(
            self.wide.logits_fn,
            start,
            x,
            y,
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
            learning_rate=cfg.learning_rate,
            shift_pixels=cfg.augment_shift,
            seed=cfg.seed + i,
            on_epoch=lambda e, p, m: log.info(
                "  epoch %d: loss %.4f train acc %.4f", e, m["loss"], m["accuracy"]
            ),
        )
        seconds = time.time() - t0
        self.wd.save_npz(
            f"dnn{i + 1:02d}.npz", **flatten_params(new), **{_SECONDS: seconds}
        )
        return seconds

    def train_seconds(self, i: int) -> float:
        """Seconds ``DNN_{i+1}`` took to train (saved with it)."""
        return float(self.wd.load_npz(f"dnn{i + 1:02d}.npz")[_SECONDS])

    def row(self, i: int, logits_fn, params, evolved: dict, train_seconds) -> dict:
        ev = evaluate_classifier(logits_fn, params, self.xt, self.yt)
        held = self.pool(i - 1, measured=True)
        recall = None
        if len(held):
            pred = predict_logits(logits_fn, params, held).argmax(-1)
            recall = float(np.mean(pred == self.n))
        produced = evolved["confidence"].reshape(-1)[: int(evolved["num_train_images"])]
        return {
            "iteration": i,
            "num_classes": int(self.n + (i > 1)),
            "clean_accuracy": ev["accuracy"],
            "fooling_class_recall": recall,
            "num_heldout_images": int(len(held)),
            **evolution_stats(evolved["m_confidence"], evolved["m_first_all"]),
            "num_measure_runs": int(len(evolved["m_confidence"])),
            "num_images_added": int(len(produced)),
            "added_images_median_confidence": float(np.median(produced)),
            "added_images_fraction_at_least": {
                t: float(np.mean(produced >= float(t))) for t in THRESHOLDS
            },
            "num_fooling_images_in_training": None
            if train_seconds is None
            else int(len(self.pool(i, measured=False))),
            "evolution_seconds": float(evolved["seconds"] + evolved["m_seconds"]),
            "training_seconds": train_seconds,
        }


def run(
    cfg: RetrainConfig,
    workdir: str,
    *,
    overwrite: bool = False,
    stop_after: int | None = None,
) -> dict:
    """Runs (or resumes) the retraining loop; returns the summary.
    ``stop_after``: stop unfinished after that many iterations (tests)."""
    t0 = time.time()
    loop = _Loop(cfg, workdir, overwrite)
    rows = loop.rows
    for i in range(len(rows) + 1, cfg.iterations + 1):
        if stop_after is not None and i > stop_after:
            return {"stopped_after": stop_after}
        logits_fn, params, _ = loop.network(i)
        evolved = loop.evolve(i, logits_fn, params)
        train_s = None
        if i < cfg.iterations:
            if loop.wd.load_npz(f"dnn{i + 1:02d}.npz") is None:
                train_s = loop.train(i, logits_fn, params)
            else:  # trained before an interruption
                train_s = loop.train_seconds(i)
        row = loop.row(i, logits_fn, params, evolved, train_s)
        rows.append(row)
        loop.wd.save_json("iterations.json", {"iterations": rows})
        log.info(
            "iteration %d: clean acc %.4f, fooling-class recall %s, new images "
            "median %.4f min %.4f, classes >= 0.9999: %d (evolution %.0f s, "
            "training %s s)",
            i,
            row["clean_accuracy"],
            "-"
            if row["fooling_class_recall"] is None
            else f"{row['fooling_class_recall']:.4f}",
            row["median_confidence"],
            row["min_confidence"],
            row["num_classes_at_least"]["0.9999"],
            row["evolution_seconds"],
            "-" if train_s is None else f"{train_s:.0f}",
        )
    _pictures(loop, rows)
    last = loop.wd.load_npz(f"images{cfg.iterations:02d}.npz")
    conf = last["m_confidence"]  # the last network's measurement runs
    save_artifact(
        workdir,
        last["m_images"].reshape(-1, *last["m_images"].shape[2:]),
        np.tile(np.arange(loop.n), len(conf)),
        conf.reshape(-1),
        kind="fooling",
        model=f"{cfg.model} DNN_{cfg.iterations} ({loop.n + 1} classes)"
        if cfg.iterations > 1
        else cfg.model,
        weights=loop.wd.file(f"dnn{cfg.iterations:02d}.npz")
        if cfg.iterations > 1
        else cfg.weights,
    )
    return loop.wd.finish(
        {
            "iterations": rows,
            "dataset": cfg.dataset,
            "model": cfg.model,
            "encoding": cfg.encoding,
            "train_from": cfg.train_from,
            "evolution_seconds": sum(r["evolution_seconds"] for r in rows),
            "training_seconds": sum(r["training_seconds"] or 0.0 for r in rows),
            "paper": PAPER,
            "wall_seconds": time.time() - t0,
            "config": dataclasses.asdict(cfg),
        }
    )


def _pictures(loop: _Loop, rows: list[dict]) -> None:
    its = [r["iteration"] for r in rows]
    recall = [(r["iteration"], r["fooling_class_recall"]) for r in rows[1:]]
    lines = {
        "clean test accuracy": (its, [r["clean_accuracy"] for r in rows]),
        "median confidence (new runs)": (its, [r["median_confidence"] for r in rows]),
        "min confidence (new runs)": (its, [r["min_confidence"] for r in rows]),
        "median confidence (images added)": (
            its,
            [r["added_images_median_confidence"] for r in rows],
        ),
        "classes >= 0.9999 / n": (
            its,
            [r["num_classes_at_least"]["0.9999"] / loop.n for r in rows],
        ),
    }
    if recall:
        lines["held-out fooling images -> class n"] = tuple(zip(*recall, strict=True))
    plot_lines(
        loop.wd.file("retrain.png"),
        lines,
        xlabel="iteration i (network DNN_i)",
        ylabel="fraction / confidence",
        title=f"{loop.cfg.dataset} {loop.cfg.encoding}: retraining with a fooling class",
    )
    pics, titles = [], []
    for r in rows:  # the first run's elites of every iteration, one row each
        d = loop.wd.load_npz(f"images{r['iteration']:02d}.npz")
        pics.append(d["m_images"][0])
        titles += [f"{k}: {100 * c:.3f}%" for k, c in enumerate(d["m_confidence"][0])]
    save_grid_png(
        loop.wd.file("iterations.png"),
        np.concatenate(pics),
        ncols=loop.n,
        titles=titles,
        row_labels=[f"DNN_{r['iteration']}" for r in rows],
    )


def define_flags() -> None:
    config.define_workdir_flags("runs/fooling_retrain")
    config.define_flags(RetrainConfig)
    fooling.define_cppn_flags()


def main(argv) -> None:
    del argv
    values = config.flag_values(RetrainConfig)
    if values["encoding"] == "cppn":
        values["encoding_options"] = fooling.cppn_options(values)
    cfg = RetrainConfig(**values)
    summary = run(cfg, FLAGS.workdir, overwrite=FLAGS.overwrite)
    print(f"results in {FLAGS.workdir} (summary.json, retrain.png, iterations.png)")
    print_json_line(
        [
            {
                k: r[k]
                for k in (
                    "iteration",
                    "clean_accuracy",
                    "fooling_class_recall",
                    "median_confidence",
                    "num_classes_at_least",
                )
            }
            for r in summary["iterations"]
        ]
    )
