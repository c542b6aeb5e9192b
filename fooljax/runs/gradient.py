"""The gradient-method experiments: FGSM error and the error-vs-epsilon curve
(Goodfellow et al. 2015, Sec. 4), Szegedy et al. (2014) Tables 1 and 2 by
box-constrained L-BFGS, adversarial training (Goodfellow et al., Sec. 6) and
gradient-ascent fooling images (Nguyen et al. 2015, Sec. 3).

Each family is a config dataclass (its flags are generated from the fields)
and a ``run_*(config, workdir)`` that writes ``config.json``, per-model partial
results (so an interrupted run resumes), PNG pictures and ``summary.json``
last, and returns the summary. Images are MNIST test images ``[N, 28, 28, 1]``
float32 in [0, 1]; errors and rates are fractions.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from fooljax import models
from fooljax.attacks import (
    check_differentiable,
    fgsm,
    gradient_ascent,
    initial_images,
    lbfgs_attack,
    pgd,
    random_targets,
)
from fooljax.attacks.common import check_epsilon
from fooljax.errors import FooljaxError
from fooljax.runs import config
from fooljax.runs.cli import family_main
from fooljax.runs.common import (
    Workdir,
    artifact_file,
    error_and_confidence,
    load_mnist_test,
    parse_model_list,
    predict,
    save_artifact,
    zoo,
)
from fooljax.runs.pictures import plot_lines, save_grid_png
from fooljax.train.evaluate import evaluate_classifier
from fooljax.train.zoo import ADV_SUFFIX, SZEGEDY_TABLE1, zoo_config

log = logging.getLogger("fooljax")
FLAGS = flags.FLAGS
opt = config.opt

# Goodfellow et al. 2015 (MNIST, eps = 0.25): error and mean confidence.
GOODFELLOW_FGSM = {"softmax_regression": (0.999, 0.793), "maxout": (0.894, 0.976)}
TABLE1_MODELS = "fc10_1e-4,fc10_1e-2,fc10_1,fc100_100_10,fc200_200_10,ae400_10"

_MODELS_HELP = "Comma list of [shown_name=]zoo_model."
_ZOO_HELP = "Cache of trained models (default <workdir>/models)."
_DATA_HELP = "MNIST directory (default $FOOLJAX_DATA/mnist)."


@dataclasses.dataclass(frozen=True)
class MnistAttackConfig:
    """Settings every MNIST attack run shares."""

    num_images: int = opt(10000, "Test images attacked.")
    batch_size: int = opt(500, "Attack batch size.")
    zoo_dir: str = opt("", _ZOO_HELP)
    data_dir: str | None = opt(None, _DATA_HELP)

    def validate(self) -> None:
        config.check_fields(self, num_images=(1, None), batch_size=(1, None))


@dataclasses.dataclass(frozen=True)
class FgsmConfig(MnistAttackConfig):
    models: str = opt(
        "softmax_regression=fc10_1e-4,fc100_100_10,maxout,lenet", _MODELS_HELP
    )
    epsilon: float = opt(0.25, "FGSM epsilon (pixels in [0, 1]).")
    curve_epsilons: tuple[float, ...] = opt(
        (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3), "Epsilons of the error curve."
    )
    method: str = opt(
        "fgsm", "fgsm (one sign step) or pgd (iterated).", choices=("fgsm", "pgd")
    )
    num_steps: int = opt(10, "PGD: projected sign steps.")
    random_start: bool = opt(False, "PGD: start from a uniform point of the ball.")
    seed: int = opt(0, "PGD: seed of the random start.")

    def validate(self) -> None:
        super().validate()
        config.check_fields(self, num_steps=(1, None))

    def attack_record(self) -> dict:
        """The attack's settings in the work directory's record; an FGSM run's
        record is what it was before PGD existed, so those runs still resume."""
        if self.method == "fgsm":
            return {}
        return dict(
            method="pgd",
            num_steps=self.num_steps,
            random_start=self.random_start,
            seed=self.seed,
        )


@dataclasses.dataclass(frozen=True)
class LbfgsTablesConfig(MnistAttackConfig):
    models: str = opt(TABLE1_MODELS, "Table 1 rows: [shown=]zoo_model list.")
    table2_columns: str = opt("fc10_1e-4,fc100_100_10,ae400_10", "Table 2 columns.")
    num_images: int = opt(1000, "Test images attacked per model.")
    num_search_steps: int = opt(10, "Values of c tried per image.")
    max_iterations: int = opt(50, "L-BFGS-B iterations per solve.")
    initial_c: float = opt(1.0, "First penalty weight c.")
    noise_stddevs: tuple[float, ...] = opt(
        (0.1, 0.3), "Gaussian-noise rows of Table 2."
    )
    seed: int = opt(0, "Seed of the target labels and the noise.")

    def validate(self) -> None:
        super().validate()
        config.check_fields(
            self,
            num_search_steps=(1, None),
            max_iterations=(1, None),
            initial_c=dict(lo=0, lo_open=True),
        )
        for sd in self.noise_stddevs:
            config.check_number("noise_stddevs", sd, lo=0)


@dataclasses.dataclass(frozen=True)
class AdversarialTrainingConfig(MnistAttackConfig):
    model: str = opt("lenet", "Zoo model (lenet, maxout, fc100_100_10, ...).")
    epsilon: float = opt(0.25, "FGSM epsilon of the adversarial test error.")


@dataclasses.dataclass(frozen=True)
class GradientAscentConfig:
    model: str = opt("lenet", "Registered model name.")
    weights: str = opt("default", "default, a checkpoint dir, or a file.")
    init: str = opt("noise", "Start images.", choices=("noise", "blank"))
    num_steps: int = opt(1000, "Ascent steps.")
    step_size: float = opt(1.0, "Gradient step size.")
    l2_decay: float = opt(1e-4, "L2 decay weight on the pixels.")
    seed: int = opt(0, "Seed of the noise start.")
    classes: tuple[int, ...] = opt((), "Classes to climb (empty: every class).")

    def validate(self) -> None:
        config.check_fields(
            self,
            num_steps=(0, None),
            step_size=dict(lo=0, lo_open=True),
            l2_decay=(0, None),
        )


def _open(
    cfg: MnistAttackConfig, workdir: str, overwrite: bool, record: dict, zoo_names
):
    """``(Workdir, zoo_dir, x, y)`` for an MNIST attack run; ``record`` is what
    config.json holds (the config as the run understood it). Bad settings,
    unknown zoo models and missing data are refused before the work directory
    is touched."""
    cfg.validate()
    for name in zoo_names:
        if ":" not in name:
            zoo_config(name)  # unknown names: one line
    x, y = load_mnist_test(cfg.data_dir, cfg.num_images)
    common = {k: getattr(cfg, k) for k in ("num_images", "batch_size", "zoo_dir")}
    wd = Workdir(
        workdir, {**record, **common, "data_dir": cfg.data_dir}, overwrite=overwrite
    )
    zoo_dir = cfg.zoo_dir or wd.file("models")
    return wd, zoo_dir, x, y


def fgsm_sweep(clf, x, y, epsilons, batch_size: int, keep: int = 0, pgd_args=None):
    """FGSM at every epsilon in one vmapped call per batch: ``(probs [E, N, K],
    the adversarial images at epsilons[keep] [N, H, W, C])``. With
    ``pgd_args`` (``num_steps``, ``random_start``, ``key``) PGD instead, one
    call per epsilon (its steps are host-driven, see ``attacks.pgd_step``)."""
    eps = jnp.asarray(epsilons, jnp.float32)
    sweep = jax.vmap(
        lambda e, xb, yb: fgsm(clf.logits_fn, clf.params, xb, yb, epsilon=e),
        in_axes=(0, None, None),
    )
    if pgd_args is not None:

        def sweep(_, xb, yb):
            return [
                pgd(clf.logits_fn, clf.params, xb, yb, epsilon=e, **pgd_args)
                for e in epsilons
            ]

    probs, kept = [], []
    for i in range(0, len(x), batch_size):
        xa = sweep(eps, x[i : i + batch_size], y[i : i + batch_size])
        kept.append(np.asarray(xa[keep]))
        probs.append(
            np.stack([predict(clf.logits_fn, clf.params, a, batch_size) for a in xa])
        )
    return np.concatenate(probs, axis=1), np.concatenate(kept)


def zoo_weights(zoo_name: str, zoo_dir: str) -> str:
    """The weights a transfer target names for zoo model ``zoo_name``."""
    if ":" in zoo_name:
        return zoo_name.split(":", 1)[1]
    if zoo_config(zoo_name) is None:
        return "default"
    return os.path.join(zoo_dir, zoo_name, "params.npz")


def _artifact_names(named: dict) -> dict[str, str]:
    """``{shown name: artifact file}`` of a run over the models ``named``."""
    if len(named) == 1:
        return {next(iter(named)): artifact_file()}
    return {s: artifact_file(s) for s in named}


def _adversarial_artifact(wd, name, images, y, probs, *, model, zoo_dir):
    """``artifact_<name>.npz`` (``artifact.npz`` when ``name`` is None): the
    adversarial ``images`` of zoo ``model`` with their true labels ``y`` and
    its probability of the true label (``probs [N, K]``, its softmax on them)."""
    save_artifact(
        wd.path,
        images,
        y,
        probs[np.arange(len(y)), y],
        kind="adversarial",
        model=model,
        weights=zoo_weights(model, zoo_dir),
        name=name,
    )


def run_fgsm(cfg: FgsmConfig, workdir: str, *, overwrite: bool = False) -> dict:
    """FGSM error and mean confidence at ``epsilon`` per model, plus the error-
    vs-epsilon curve (``fgsm_error_vs_epsilon.png``) and example pictures."""
    epsilon = check_epsilon(cfg.epsilon)
    curve = sorted({check_epsilon(e) for e in cfg.curve_epsilons} | {epsilon})
    named = parse_model_list(cfg.models)
    record = dict(models=named, epsilon=epsilon, curve_epsilons=curve)
    record.update(cfg.attack_record())
    wd, zoo_dir, x, y = _open(cfg, workdir, overwrite, record, named.values())
    pgd_args = None
    if cfg.method == "pgd":
        key = jax.random.key(cfg.seed)
        pgd_args = dict(num_steps=cfg.num_steps, random_start=cfg.random_start, key=key)
    attack_name = cfg.method.upper()
    t0 = time.time()
    results = wd.load_json("partial.json")
    examples = {}
    at = curve.index(epsilon)
    for shown, zoo_name in named.items():
        art = None if len(named) == 1 else shown
        if shown in results and os.path.exists(wd.file(artifact_file(art))):
            examples[shown] = wd.load_npy(f"examples_{shown}.npy")
            if examples[shown] is not None:
                log.info("fgsm: %s already done (resumed)", shown)
                continue
        clf = zoo(zoo_name, zoo_dir, cfg.data_dir)
        check_differentiable(clf.logits_fn, clf.params, x[:4], y[:4])
        clean = predict(clf.logits_fn, clf.params, x)
        probs, adv = fgsm_sweep(
            clf, x, y, curve, cfg.batch_size, keep=at, pgd_args=pgd_args
        )
        _adversarial_artifact(
            wd, art, adv, y, probs[at], model=zoo_name, zoo_dir=zoo_dir
        )
        row = {
            "zoo_model": zoo_name,
            "clean_error": float((clean.argmax(1) != y).mean()),
            "curve": {
                f"{e:g}": error_and_confidence(p, y)["error"]
                for e, p in zip(curve, probs, strict=True)
            },
        }
        row.update(error_and_confidence(probs[at], y))
        row["example_predictions"] = [
            [int(p.argmax()), round(float(p.max()), 4)] for p in probs[at][:10]
        ]
        examples[shown] = adv[:10]
        wd.save_npy(f"examples_{shown}.npy", examples[shown])
        if shown in GOODFELLOW_FGSM and cfg.method == "fgsm":
            row["paper_error"], row["paper_mean_confidence"] = GOODFELLOW_FGSM[shown]
        log.info(
            "%s %s: eps %.3g error %.4f mean confidence %.4f (clean %.4f)",
            cfg.method,
            shown,
            epsilon,
            row["error"],
            row["mean_confidence"],
            row["clean_error"],
        )
        results[shown] = row
        wd.save_json("partial.json", results)
    plot_lines(
        wd.file("fgsm_error_vs_epsilon.png"),
        {
            name: (
                [float(e) for e in r["curve"]],
                [100 * v for v in r["curve"].values()],
            )
            for name, r in results.items()
        },
        xlabel="epsilon (pixels in [0, 1])",
        ylabel=f"test error under {attack_name} (%)",
        title=f"MNIST, {attack_name}",
        references={
            f"paper, {name}: {100 * GOODFELLOW_FGSM[name][0]:.1f} %": (
                epsilon,
                100 * GOODFELLOW_FGSM[name][0],
            )
            for name in results
            if name in GOODFELLOW_FGSM and cfg.method == "fgsm"
        },
    )
    ncols = min(10, len(x))
    titles = [f"true {int(c)}" for c in y[:ncols]]
    for name in named:  # (rows resumed from before predictions were kept: no title)
        preds = results[name].get("example_predictions") or [None] * ncols
        titles += [f"{p[0]}: {p[1]:.2f}" if p else "" for p in preds]
    save_grid_png(
        wd.file("fgsm_examples.png"),
        np.concatenate([x[:ncols], *(examples[s] for s in named)]),
        ncols=ncols,
        titles=titles,
        row_labels=["clean", *named],
    )
    return wd.finish(
        {
            "method": cfg.method,
            **cfg.attack_record(),
            "epsilon": epsilon,
            "num_images": int(len(x)),
            "artifacts": _artifact_names(named),
            "models": results,
            "wall_seconds": time.time() - t0,
        }
    )


def lbfgs_examples(
    logits_fn,
    params,
    x,
    targets,
    *,
    batch_size: int,
    initial_c: float,
    num_search_steps: int,
    max_iterations: int,
) -> dict[str, np.ndarray]:
    """Box-constrained L-BFGS examples of ``x [N, H, W, C]`` for ``targets [N]``
    in batches: ``{adversarial [N, H, W, C], success [N], distortion [N]}``."""
    parts = [
        lbfgs_attack(
            logits_fn,
            params,
            x[i : i + batch_size],
            targets[i : i + batch_size],
            initial_c=initial_c,
            num_search_steps=num_search_steps,
            max_iterations=max_iterations,
        )
        for i in range(0, len(x), batch_size)
    ]
    return {
        f: np.concatenate([getattr(p, f) for p in parts])
        for f in ("adversarial", "success", "distortion")
    }


def _lbfgs_row(cfg: LbfgsTablesConfig, clf, zoo_name, x, targets, x_full, y_full):
    """One row of Table 1 and the model's adversarial examples."""
    check_differentiable(clf.logits_fn, clf.params, x[:4])
    ts = time.time()
    arrays = lbfgs_examples(
        clf.logits_fn,
        clf.params,
        x,
        targets,
        batch_size=cfg.batch_size,
        initial_c=cfg.initial_c,
        num_search_steps=cfg.num_search_steps,
        max_iterations=cfg.max_iterations,
    )
    adv, success, dist = (arrays[f] for f in ("adversarial", "success", "distortion"))
    test = evaluate_classifier(
        clf.logits_fn, clf.params, np.round(x_full * 255).astype(np.uint8), y_full
    )
    row = {
        "zoo_model": zoo_name,
        "test_error": 1.0 - test["accuracy"],
        "mean_distortion": float(np.nanmean(dist)) if success.any() else None,
        "success_rate": float(success.mean()),
        "num_images": int(len(x)),
        "attack_seconds": time.time() - ts,
        "max_pixel": float(adv.max()),
        "min_pixel": float(adv.min()),
    }
    if zoo_name in SZEGEDY_TABLE1:
        row["paper_test_error"], row["paper_mean_distortion"] = SZEGEDY_TABLE1[zoo_name]
    return row, arrays


def run_lbfgs_tables(
    cfg: LbfgsTablesConfig, workdir: str, *, overwrite: bool = False
) -> dict:
    """Szegedy et al. Table 1 and Table 2 on the first ``num_images`` test images.

    Table 1: per model, test error (full test set), mean minimal distortion of
    the successful box-constrained L-BFGS examples, success rate. Table 2: the
    error each row's examples (or Gaussian noise of that stddev, clipped to the
    box) cause on each column model, plus the row's mean distortion.
    """
    named = parse_model_list(cfg.models)
    columns = parse_model_list(cfg.table2_columns)
    record = dataclasses.asdict(cfg) | dict(
        models=named, table2_columns=columns, noise_stddevs=list(cfg.noise_stddevs)
    )
    wd, zoo_dir, x, y = _open(
        cfg, workdir, overwrite, record, [*named.values(), *columns.values()]
    )
    t0 = time.time()
    x_full, y_full = load_mnist_test(cfg.data_dir)
    key = jax.random.key(cfg.seed)
    targets = random_targets(jax.random.fold_in(key, 0), y, 10)
    table1 = wd.load_json("partial.json")
    classifiers = {
        s: zoo(z, zoo_dir, cfg.data_dir) for s, z in {**named, **columns}.items()
    }
    adversarial = {}
    for shown in named:
        npz = f"lbfgs_{shown}.npz"
        arrays = wd.load_npz(npz) if shown in table1 else None
        if arrays is None:
            row, arrays = _lbfgs_row(
                cfg, classifiers[shown], named[shown], x, targets, x_full, y_full
            )
            log.info(
                "lbfgs %s: test error %.4f, distortion %.4f, success %.4f (%.0f s)",
                shown,
                row["test_error"],
                row["mean_distortion"] or float("nan"),
                row["success_rate"],
                row["attack_seconds"],
            )
            wd.save_npz(npz, **arrays)
            table1[shown] = row
            wd.save_json("partial.json", table1)
        else:
            log.info("lbfgs: %s already done (resumed)", shown)
        adversarial[shown] = arrays["adversarial"]
        clf = classifiers[shown]
        _adversarial_artifact(
            wd,
            None if len(named) == 1 else shown,
            adversarial[shown],
            y,
            predict(clf.logits_fn, clf.params, adversarial[shown]),
            model=named[shown],
            zoo_dir=zoo_dir,
        )

    rows = dict(adversarial)
    noise_key = jax.random.fold_in(key, 1)
    for i, sd in enumerate(cfg.noise_stddevs):
        noise = np.asarray(jax.random.normal(jax.random.fold_in(noise_key, i), x.shape))
        rows[f"gaussian_noise_{sd:g}"] = np.clip(x + sd * noise, 0.0, 1.0)
    table2, table2_distortion = {}, {}
    for row_name, xr in rows.items():
        table2_distortion[row_name] = float(
            np.sqrt(((xr - x).reshape(len(x), -1) ** 2).mean(1)).mean()
        )
        table2[row_name] = {
            col: float((predict(clf.logits_fn, clf.params, xr).argmax(1) != y).mean())
            for col, clf in classifiers.items()
            if col in columns or col == row_name
        }
    save_grid_png(
        wd.file("lbfgs_examples.png"),
        np.concatenate([x[:8]] + [adversarial[m][:8] for m in named]),
        ncols=min(8, len(x)),
        row_labels=["clean", *named],
    )
    return wd.finish(
        {
            "table1": table1,
            "table2": table2,
            "table2_distortion": table2_distortion,
            "table2_columns": list(columns),
            "num_images": int(len(x)),
            "artifacts": _artifact_names(named),
            "targets": f"uniformly random label != true label, seed {cfg.seed}",
            "wall_seconds": time.time() - t0,
        }
    )


# Goodfellow et al. 2015 (MNIST maxout): clean and FGSM(0.25) error before and
# after adversarial training (Sec. 6), and the FGSM transfer pair: the error of
# each model on the examples made on the other.
GOODFELLOW_ADVERSARIAL_TRAINING = {
    "before": {"clean_error": 0.0094, "adversarial_error": 0.894},
    "after": {"clean_error": 0.0084, "adversarial_error": 0.179},
    "transfer": {
        "after_on_examples_of_before": 0.196,
        "before_on_examples_of_after": 0.409,
    },
}


def run_adversarial_training(
    cfg: AdversarialTrainingConfig, workdir: str, *, overwrite: bool = False
) -> dict:
    """Clean and FGSM(``epsilon``) test error of ``model`` before and after
    adversarial training (zoo ``<model>_adv``: alpha 0.5, epsilon 0.25, otherwise
    the same training config), and the transfer of the FGSM examples between
    the two (Goodfellow et al. Sec. 6): the error of the trained model on the
    examples made on the original and the reverse. Each model's FGSM examples
    are left as ``artifact_<zoo name>.npz``."""
    epsilon = check_epsilon(cfg.epsilon)
    after_name = cfg.model + ADV_SUFFIX
    after_cfg = zoo_config(after_name)
    wd, zoo_dir, x, y = _open(
        cfg,
        workdir,
        overwrite,
        dict(model=cfg.model, epsilon=epsilon),
        [cfg.model, after_name],
    )
    t0 = time.time()
    out, pics, clfs, adv = {}, [x[:10]], {}, {}
    for phase, name in (("before", cfg.model), ("after", after_name)):
        clf = clfs[phase] = zoo(name, zoo_dir, cfg.data_dir)
        check_differentiable(clf.logits_fn, clf.params, x[:4], y[:4])
        clean = predict(clf.logits_fn, clf.params, x)
        probs, adv[phase] = fgsm_sweep(clf, x, y, [epsilon], cfg.batch_size)
        _adversarial_artifact(
            wd, name, adv[phase], y, probs[0], model=name, zoo_dir=zoo_dir
        )
        ec = error_and_confidence(probs[0], y)
        out[phase] = {
            "model": name,
            "clean_error": float((clean.argmax(1) != y).mean()),
            "adversarial_error": ec["error"],
            "adversarial_mean_confidence": ec["mean_confidence"],
        }
        pics.append(adv[phase][:10])
        log.info(
            "%s (%s): clean error %.4f, FGSM eps %.2f error %.4f",
            phase,
            name,
            out[phase]["clean_error"],
            epsilon,
            ec["error"],
        )
    transfer = {}
    for target, source in (("after", "before"), ("before", "after")):
        clf = clfs[target]
        pred = predict(clf.logits_fn, clf.params, adv[source]).argmax(1)
        transfer[f"{target}_on_examples_of_{source}"] = float((pred != y).mean())
    log.info("FGSM transfer: %s", transfer)
    save_grid_png(
        wd.file("adversarial_training_examples.png"),
        np.concatenate(pics),
        ncols=min(10, len(x)),
        row_labels=["clean", "FGSM before", "FGSM after"],
    )
    b, a = out["before"], out["after"]
    return wd.finish(
        {
            **out,
            "transfer": transfer,
            "epsilon": epsilon,
            "train_alpha": after_cfg.adv_alpha,
            "train_epsilon": after_cfg.adv_epsilon,
            "adversarial_error_reduction": b["adversarial_error"]
            / max(a["adversarial_error"], 1e-12),
            "clean_error_change_points": 100 * (a["clean_error"] - b["clean_error"]),
            "num_images": int(len(x)),
            "artifacts": {n: artifact_file(n) for n in (cfg.model, after_name)},
            "paper": {
                "model": "maxout",
                **GOODFELLOW_ADVERSARIAL_TRAINING,
            },
            "wall_seconds": time.time() - t0,
        }
    )


def run_gradient_ascent(
    cfg: GradientAscentConfig, workdir: str, *, overwrite: bool = False
) -> dict:
    """Fooling images for every class of ``model`` by gradient ascent; the
    summary's ``confidence`` has one float per class (as the evolution runs)."""
    cfg.validate()
    clf = models.load_classifier(cfg.model, cfg.weights)
    k = clf.num_classes
    classes = np.asarray(cfg.classes or range(k), np.int32)
    if classes.min() < 0 or classes.max() >= k:
        raise FooljaxError(f"--classes must be in 0..{k - 1}, got {list(cfg.classes)}")
    wd = Workdir(workdir, cfg, overwrite=overwrite)
    t0 = time.time()
    n = len(classes)
    x0 = initial_images(jax.random.key(cfg.seed), n, clf.input_shape, kind=cfg.init)
    check_differentiable(clf.logits_fn, clf.params, x0[:4])
    images, conf = gradient_ascent(
        clf.logits_fn,
        clf.params,
        x0,
        jnp.asarray(classes),
        step_size=cfg.step_size,
        num_steps=cfg.num_steps,
        l2_decay=cfg.l2_decay,
    )
    images, conf = np.asarray(images), np.asarray(conf, np.float64)
    wd.save_npy("images.npy", images)
    save_artifact(
        wd.path,
        images,
        classes,
        conf,
        kind="fooling",
        model=cfg.model,
        weights=cfg.weights,
    )
    names = clf.class_names or tuple(str(i) for i in range(k))
    if n <= 100:
        save_grid_png(
            wd.file("fooling_images.png"),
            images,
            ncols=min(n, 10),
            titles=[
                f"{names[c][:17]}: {p:.5f}" for c, p in zip(classes, conf, strict=True)
            ],
        )
    return wd.finish(
        {
            "model": cfg.model,
            "weights": cfg.weights,
            "classes": [int(c) for c in classes],
            "confidence": [float(c) for c in conf],
            "min_confidence": float(conf.min()),
            "median_confidence": float(np.median(conf)),
            "num_classes_at_least_0.9999": int((conf >= 0.9999).sum()),
            "images_min": float(images.min()),
            "images_max": float(images.max()),
            "wall_seconds": time.time() - t0,
        }
    )


# ---------------------------------------------------------------- entry points

# config class -> (run function, the summary's headline for the last JSON line)
FAMILIES = {
    FgsmConfig: (
        run_fgsm,
        lambda s: {
            "epsilon": s["epsilon"],
            "models": {
                k: {"error": v["error"], "mean_confidence": v["mean_confidence"]}
                for k, v in s["models"].items()
            },
        },
    ),
    LbfgsTablesConfig: (
        run_lbfgs_tables,
        lambda s: {
            m: {k: r[k] for k in ("test_error", "mean_distortion", "success_rate")}
            for m, r in s["table1"].items()
        },
    ),
    AdversarialTrainingConfig: (
        run_adversarial_training,
        lambda s: {k: s[k] for k in ("before", "after", "transfer", "epsilon")},
    ),
    GradientAscentConfig: (
        run_gradient_ascent,
        lambda s: {k: s[k] for k in ("confidence", "min_confidence")},
    ),
}


def define_flags(cls) -> None:
    """--workdir (required), --overwrite and the fields of ``cls``."""
    config.define_workdir_flags()
    config.define_flags(cls)


def make_main(cls):
    """``main(argv)`` of the entry point for the config class ``cls``."""
    return family_main(FAMILIES, cls)
