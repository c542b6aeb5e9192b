"""Library ``run_*`` functions behind the gradient-method experiments.

Each writes into its work directory (``config.json``, per-model partial results
so an interrupted run resumes, ``summary.json`` last, PNG pictures) and returns
the summary. The absl entry points in ``experiments/`` only parse flags and call
one of these; a notebook can call them directly.

Images are MNIST test images as ``[N, 28, 28, 1]`` float32 in [0, 1]. Errors
and rates are fractions.
"""

from __future__ import annotations

import json
import logging
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from fooljax.attacks.common import check_differentiable, check_epsilon
from fooljax.attacks.fgsm import fgsm
from fooljax.attacks.gradient_ascent import gradient_ascent, initial_images
from fooljax.attacks.lbfgs import lbfgs_attack, random_targets
from fooljax.errors import FooljaxError
from fooljax.io.workdir import SUMMARY, atomic_write_json, prepare_workdir

log = logging.getLogger("fooljax")

# Goodfellow et al. 2015 (MNIST, eps = 0.25): error and mean confidence.
GOODFELLOW_FGSM = {"softmax_regression": (0.999, 0.793), "maxout": (0.894, 0.976)}


# ------------------------------------------------------------------ helpers


def load_mnist_test(data_dir: str | None, num_images: int | None = None):
    """``(images [N, 28, 28, 1] float32 in [0, 1], labels [N] int32)``."""
    from fooljax.data import load_dataset

    x, y = load_dataset("mnist", "test", data_dir=data_dir)
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


def _zoo(zoo_name: str, zoo_dir: str, data_dir):
    from fooljax.train.zoo import zoo_classifier

    return zoo_classifier(zoo_name, zoo_dir, data_dir=data_dir)


def predict(logits_fn, params, images, batch_size: int = 1000):
    """Softmax probabilities ``[N, K]`` in batches."""
    fn = jax.jit(lambda p, x: jax.nn.softmax(logits_fn(p, x), axis=-1))
    outs = [
        np.asarray(fn(params, jnp.asarray(images[i : i + batch_size])))
        for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(outs)


def save_grid_png(path: str, images, *, ncols: int, titles=None, row_labels=None):
    """Writes ``images [N, H, W, C]`` in [0, 1] as a grid PNG (matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = np.asarray(images)
    n = len(images)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.3 * ncols, 1.5 * nrows))
    axes = np.atleast_1d(axes).ravel()
    for i, ax in enumerate(axes):
        ax.axis("off")
        if i >= n:
            continue
        img = images[i]
        cmap = "gray" if img.shape[-1] == 1 else None
        ax.imshow(
            img.squeeze(-1) if img.shape[-1] == 1 else img, cmap=cmap, vmin=0, vmax=1
        )
        if titles is not None:
            ax.set_title(titles[i], fontsize=7)
    if row_labels is not None:
        for r, label in enumerate(row_labels):
            axes[r * ncols].text(
                -0.1,
                0.5,
                label,
                transform=axes[r * ncols].transAxes,
                ha="right",
                va="center",
                fontsize=7,
            )
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def _load_partial(path: str) -> dict:
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return {}


def _fgsm_eval(clf, x, y, epsilon: float, batch_size: int):
    """``(adversarial probs [N, K], adversarial images of the first batch)``."""
    probs, first = [], None
    for i in range(0, len(x), batch_size):
        xa = fgsm(
            clf.logits_fn,
            clf.params,
            x[i : i + batch_size],
            y[i : i + batch_size],
            epsilon=epsilon,
        )
        if first is None:
            first = np.asarray(xa)
        probs.append(predict(clf.logits_fn, clf.params, xa, batch_size))
    return np.concatenate(probs), first


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


# ------------------------------------------------------------------ FGSM


def run_fgsm(
    workdir: str,
    *,
    models: str = "softmax_regression=fc10_1e-4,fc100_100_10,maxout,lenet",
    epsilon: float = 0.25,
    curve_epsilons=(0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3),
    num_images: int = 10000,
    batch_size: int = 500,
    zoo_dir: str = "",
    data_dir: str | None = None,
    overwrite: bool = False,
) -> dict:
    """FGSM error and mean confidence at ``epsilon`` per model, plus the error-
    vs-epsilon curve (``fgsm_error_vs_epsilon.png``) and example pictures."""
    epsilon = check_epsilon(epsilon)
    curve_epsilons = sorted({check_epsilon(e) for e in curve_epsilons} | {epsilon})
    named = parse_model_list(models)
    config = dict(
        models=named,
        epsilon=epsilon,
        curve_epsilons=curve_epsilons,
        num_images=num_images,
        batch_size=batch_size,
        zoo_dir=zoo_dir,
        data_dir=data_dir,
    )
    prepare_workdir(workdir, config, overwrite=overwrite)
    zoo_dir = zoo_dir or os.path.join(workdir, "models")
    t0 = time.time()
    x, y = load_mnist_test(data_dir, num_images)
    partial_path = os.path.join(workdir, "partial.json")
    results = _load_partial(partial_path)
    examples = []
    for shown, zoo_name in named.items():
        clf = _zoo(zoo_name, zoo_dir, data_dir)
        if shown in results:
            log.info("fgsm: %s already done (resumed)", shown)
            continue
        check_differentiable(clf.logits_fn, clf.params, x[:4], y[:4])
        clean = predict(clf.logits_fn, clf.params, x)
        row = {
            "zoo_model": zoo_name,
            "clean_error": float((clean.argmax(1) != y).mean()),
            "curve": {},
        }
        for eps in curve_epsilons:
            probs, first = _fgsm_eval(clf, x, y, eps, batch_size)
            ec = error_and_confidence(probs, y)
            row["curve"][f"{eps:g}"] = ec["error"]
            if eps == epsilon:
                row.update(ec)
                np.save(os.path.join(workdir, f"examples_{shown}.npy"), first[:10])
        if shown in GOODFELLOW_FGSM:
            row["paper_error"], row["paper_mean_confidence"] = GOODFELLOW_FGSM[shown]
        log.info(
            "fgsm %s: eps %.3g error %.4f mean confidence %.4f (clean %.4f)",
            shown,
            epsilon,
            row["error"],
            row["mean_confidence"],
            row["clean_error"],
        )
        results[shown] = row
        atomic_write_json(partial_path, results)
    for shown in named:
        p = os.path.join(workdir, f"examples_{shown}.npy")
        if os.path.exists(p):
            examples.append(np.load(p))
    _plot_curves(os.path.join(workdir, "fgsm_error_vs_epsilon.png"), results)
    if examples:
        save_grid_png(
            os.path.join(workdir, "fgsm_examples.png"),
            np.concatenate([x[:10][None], *[e[None] for e in examples]]).reshape(
                -1, *x.shape[1:]
            ),
            ncols=10,
            row_labels=["clean", *named],
        )
    summary = {
        "epsilon": epsilon,
        "num_images": int(len(x)),
        "models": results,
        "wall_seconds": time.time() - t0,
    }
    atomic_write_json(os.path.join(workdir, SUMMARY), summary)
    return summary


def _plot_curves(path: str, results: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, row in results.items():
        eps = sorted(row["curve"], key=float)
        ax.plot(
            [float(e) for e in eps],
            [100 * row["curve"][e] for e in eps],
            marker="o",
            label=name,
        )
    ax.set_xlabel("epsilon (pixels in [0, 1])")
    ax.set_ylabel("test error under FGSM (%)")
    ax.set_title("MNIST, FGSM")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


# ------------------------------------------------------------------ L-BFGS tables

TABLE1_MODELS = "fc10_1e-4,fc10_1e-2,fc10_1,fc100_100_10,fc200_200_10,ae400_10"


def run_lbfgs_tables(
    workdir: str,
    *,
    models: str = TABLE1_MODELS,
    table2_columns: str = "fc10_1e-4,fc100_100_10,ae400_10",
    num_images: int = 1000,
    batch_size: int = 500,
    num_search_steps: int = 10,
    max_iterations: int = 50,
    initial_c: float = 1.0,
    noise_stddevs=(0.1, 0.3),
    seed: int = 0,
    zoo_dir: str = "",
    data_dir: str | None = None,
    overwrite: bool = False,
) -> dict:
    """Szegedy et al. Table 1 and Table 2 on the first ``num_images`` test images.

    Table 1: per model, test error (full test set), mean minimal distortion of
    the successful box-constrained L-BFGS examples, success rate. Table 2: the
    error each row's examples (or Gaussian noise of that stddev, clipped to the
    box) cause on each column model, plus the row's mean distortion.
    """
    from fooljax.train.evaluate import evaluate_classifier
    from fooljax.train.zoo import SZEGEDY_TABLE1

    named = parse_model_list(models)
    columns = parse_model_list(table2_columns)
    config = dict(
        models=named,
        table2_columns=columns,
        num_images=num_images,
        batch_size=batch_size,
        num_search_steps=num_search_steps,
        max_iterations=max_iterations,
        initial_c=initial_c,
        noise_stddevs=list(noise_stddevs),
        seed=seed,
        zoo_dir=zoo_dir,
        data_dir=data_dir,
    )
    prepare_workdir(workdir, config, overwrite=overwrite)
    zoo_dir = zoo_dir or os.path.join(workdir, "models")
    t0 = time.time()
    x, y = load_mnist_test(data_dir, num_images)
    x_full, y_full = load_mnist_test(data_dir)
    key = jax.random.key(seed)
    targets = random_targets(jax.random.fold_in(key, 0), y, 10)
    partial_path = os.path.join(workdir, "partial.json")
    table1 = _load_partial(partial_path)
    classifiers = {}
    for shown, zoo_name in {**named, **columns}.items():
        classifiers[shown] = _zoo(zoo_name, zoo_dir, data_dir)
    adversarial = {}
    for shown in named:
        clf = classifiers[shown]
        npz = os.path.join(workdir, f"lbfgs_{shown}.npz")
        if shown in table1 and os.path.exists(npz):
            with np.load(npz) as z:
                adversarial[shown] = z["adversarial"]
            log.info("lbfgs: %s already done (resumed)", shown)
            continue
        check_differentiable(clf.logits_fn, clf.params, x[:4], y[:4])
        ts = time.time()
        parts = [
            lbfgs_attack(
                clf.logits_fn,
                clf.params,
                x[i : i + batch_size],
                targets[i : i + batch_size],
                initial_c=initial_c,
                num_search_steps=num_search_steps,
                max_iterations=max_iterations,
            )
            for i in range(0, len(x), batch_size)
        ]
        adv = np.concatenate([p.adversarial for p in parts])
        success = np.concatenate([p.success for p in parts])
        dist = np.concatenate([p.distortion for p in parts])
        if adv.min() < 0.0 or adv.max() > 1.0:  # cannot happen; guard the table
            raise AssertionError("L-BFGS-B left the [0, 1] box")
        test = evaluate_classifier(
            clf.logits_fn, clf.params, np.round(x_full * 255).astype(np.uint8), y_full
        )
        row = {
            "zoo_model": named[shown],
            "test_error": 1.0 - test["accuracy"],
            "mean_distortion": float(np.nanmean(dist)) if success.any() else None,
            "success_rate": float(success.mean()),
            "num_images": int(len(x)),
            "attack_seconds": time.time() - ts,
            "max_pixel": float(adv.max()),
            "min_pixel": float(adv.min()),
        }
        if named[shown] in SZEGEDY_TABLE1:
            row["paper_test_error"], row["paper_mean_distortion"] = SZEGEDY_TABLE1[
                named[shown]
            ]
        log.info(
            "lbfgs %s: test error %.4f, distortion %.4f, success %.4f (%.0f s)",
            shown,
            row["test_error"],
            row["mean_distortion"] or float("nan"),
            row["success_rate"],
            row["attack_seconds"],
        )
        np.savez(npz + ".tmp.npz", adversarial=adv, success=success, distortion=dist)
        os.replace(npz + ".tmp.npz", npz)
        adversarial[shown] = adv
        table1[shown] = row
        atomic_write_json(partial_path, table1)

    rows = dict(adversarial)
    noise_key = jax.random.fold_in(key, 1)
    for i, sd in enumerate(noise_stddevs):
        noise = np.asarray(jax.random.normal(jax.random.fold_in(noise_key, i), x.shape))
        rows[f"gaussian_noise_{sd:g}"] = np.clip(x + sd * noise, 0.0, 1.0)
    table2, table2_distortion = {}, {}
    for row_name, xr in rows.items():
        table2_distortion[row_name] = float(
            np.sqrt(((xr - x).reshape(len(x), -1) ** 2).mean(1)).mean()
        )
        table2[row_name] = {}
        for col, clf in classifiers.items():
            if col not in columns and col != row_name:
                continue
            pred = predict(clf.logits_fn, clf.params, xr).argmax(1)
            table2[row_name][col] = float((pred != y).mean())
    pics = [x[:8]] + [adversarial[m][:8] for m in named]
    save_grid_png(
        os.path.join(workdir, "lbfgs_examples.png"),
        np.concatenate(pics),
        ncols=8,
        row_labels=["clean", *named],
    )
    summary = {
        "table1": table1,
        "table2": table2,
        "table2_distortion": table2_distortion,
        "table2_columns": list(columns),
        "num_images": int(len(x)),
        "targets": f"uniformly random label != true label, seed {seed}",
        "wall_seconds": time.time() - t0,
    }
    atomic_write_json(os.path.join(workdir, SUMMARY), summary)
    return summary


# ------------------------------------------------------------------ adversarial training


def run_adversarial_training(
    workdir: str,
    *,
    model: str = "lenet",
    epsilon: float = 0.25,
    num_images: int = 10000,
    batch_size: int = 500,
    zoo_dir: str = "",
    data_dir: str | None = None,
    overwrite: bool = False,
) -> dict:
    """Clean and FGSM(``epsilon``) test error of ``model`` before and after
    adversarial training (zoo ``<model>_adv``: alpha 0.5, epsilon 0.25, otherwise
    the same training config)."""
    from fooljax.train.zoo import ADV_SUFFIX, zoo_config

    epsilon = check_epsilon(epsilon)
    after_name = model + ADV_SUFFIX
    after_cfg = zoo_config(after_name)
    config = dict(
        model=model,
        epsilon=epsilon,
        num_images=num_images,
        batch_size=batch_size,
        zoo_dir=zoo_dir,
        data_dir=data_dir,
    )
    prepare_workdir(workdir, config, overwrite=overwrite)
    zoo_dir = zoo_dir or os.path.join(workdir, "models")
    t0 = time.time()
    x, y = load_mnist_test(data_dir, num_images)
    out, pics = {}, [x[:10]]
    for phase, name in (("before", model), ("after", after_name)):
        clf = _zoo(name, zoo_dir, data_dir)
        check_differentiable(clf.logits_fn, clf.params, x[:4], y[:4])
        clean = predict(clf.logits_fn, clf.params, x)
        probs, first = _fgsm_eval(clf, x, y, epsilon, batch_size)
        ec = error_and_confidence(probs, y)
        out[phase] = {
            "model": name,
            "clean_error": float((clean.argmax(1) != y).mean()),
            "adversarial_error": ec["error"],
            "adversarial_mean_confidence": ec["mean_confidence"],
        }
        pics.append(first[:10])
        log.info(
            "%s (%s): clean error %.4f, FGSM eps %.2f error %.4f",
            phase,
            name,
            out[phase]["clean_error"],
            epsilon,
            ec["error"],
        )
    save_grid_png(
        os.path.join(workdir, "adversarial_training_examples.png"),
        np.concatenate(pics),
        ncols=10,
        row_labels=["clean", "FGSM before", "FGSM after"],
    )
    b, a = out["before"], out["after"]
    summary = {
        **out,
        "epsilon": epsilon,
        "train_alpha": after_cfg.adv_alpha,
        "train_epsilon": after_cfg.adv_epsilon,
        "adversarial_error_reduction": b["adversarial_error"]
        / max(a["adversarial_error"], 1e-12),
        "clean_error_change_points": 100 * (a["clean_error"] - b["clean_error"]),
        "num_images": int(len(x)),
        "paper": {
            "before": {"clean_error": 0.0094, "adversarial_error": 0.894},
            "after": {"clean_error": 0.0084, "adversarial_error": 0.179},
        },
        "wall_seconds": time.time() - t0,
    }
    atomic_write_json(os.path.join(workdir, SUMMARY), summary)
    return summary


# ------------------------------------------------------------------ gradient ascent


def run_gradient_ascent(
    workdir: str,
    *,
    model: str = "lenet",
    weights: str = "default",
    init: str = "noise",
    num_steps: int = 1000,
    step_size: float = 1.0,
    l2_decay: float = 1e-4,
    seed: int = 0,
    overwrite: bool = False,
) -> dict:
    """Fooling images for every class of ``model`` by gradient ascent; the
    summary's ``confidence`` has one float per class (as the evolution runs)."""
    from fooljax import models as models_lib

    config = dict(
        model=model,
        weights=weights,
        init=init,
        num_steps=num_steps,
        step_size=step_size,
        l2_decay=l2_decay,
        seed=seed,
    )
    prepare_workdir(workdir, config, overwrite=overwrite)
    t0 = time.time()
    clf = models_lib.load_classifier(model, weights)
    k = clf.num_classes
    x0 = initial_images(jax.random.key(seed), k, clf.input_shape, kind=init)
    check_differentiable(clf.logits_fn, clf.params, x0[:4])
    images, conf = gradient_ascent(
        clf.logits_fn,
        clf.params,
        x0,
        jnp.arange(k),
        step_size=step_size,
        num_steps=num_steps,
        l2_decay=l2_decay,
    )
    images, conf = np.asarray(images), np.asarray(conf, np.float64)
    np.save(os.path.join(workdir, "images.npy"), images)
    names = clf.class_names or tuple(str(i) for i in range(k))
    if k <= 100:
        save_grid_png(
            os.path.join(workdir, "fooling_images.png"),
            images,
            ncols=min(k, 10),
            titles=[f"{names[i]}: {conf[i]:.5f}" for i in range(k)],
        )
    summary = {
        "model": model,
        "weights": weights,
        "confidence": [float(c) for c in conf],
        "min_confidence": float(conf.min()),
        "median_confidence": float(np.median(conf)),
        "num_classes_at_least_0.9999": int((conf >= 0.9999).sum()),
        "images_min": float(images.min()),
        "images_max": float(images.max()),
        "wall_seconds": time.time() - t0,
    }
    atomic_write_json(os.path.join(workdir, SUMMARY), summary)
    return summary
