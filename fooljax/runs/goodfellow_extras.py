"""Three experiments of Goodfellow, Shlens and Szegedy, "Explaining and
Harnessing Adversarial Examples" (ICLR 2015) on MNIST:

- ``run_rbf`` (Sec. 7): a shallow RBF network (``fooljax.models.rbf``, one
  Gaussian unit per class, trained on the units' Bernoulli likelihoods with
  fooljax's train steps) under FGSM at epsilon = 0.25. Paper: 55.4 % error
  with 1.2 % mean confidence on the misclassified examples (60.6 % on clean
  test examples): low-capacity, non-linear units are not confidently fooled.
- ``run_rubbish`` (appendix, "rubbish class examples"): clipped Gaussian noise
  pushed by a targeted gradient-sign step (and a few PGD steps) toward a
  chosen class; the fraction whose target class reaches >= 0.5 (the paper's
  criterion, Fig. 8) and the mean confidences, with the unperturbed noise as
  the baseline, for softmax regression, maxout and LeNet.
- ``run_linear`` (Sec. 5, Fig. 2): logistic regression on 3s vs 7s, trained
  plainly, adversarially (``J~ = a J(x) + (1 - a) J(x + eps sign grad)``, by
  fooljax's FGSM and in the paper's closed form
  ``zeta(-s z + eps ||w||_1)``), and with L1 weight decay; clean and FGSM
  error of each and the paper's figure (weights, sign of the gradient,
  adversarial images). Paper: 1.6 % clean error, 99 % at eps = 0.25.

Each ``run_*(config, workdir)`` writes ``config.json``, partial results (an
interrupted run resumes), PNGs and ``summary.json`` last, and returns the
summary. Images are ``[N, 28, 28, 1]`` float32 in [0, 1]; rates are fractions.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from fooljax import data, models
from fooljax.attacks import fgsm, pgd
from fooljax.attacks.common import check_epsilon, project_linf_box, sign_step
from fooljax.errors import FooljaxError
from fooljax.io.params import flatten_params, unflatten_params
from fooljax.models.rbf import rbf_unit_loss
from fooljax.runs import config
from fooljax.runs.cli import family_main
from fooljax.runs.common import Workdir, parse_model_list, predict, zoo
from fooljax.runs.pictures import (
    plot_lines,
    pyplot,
    save_figure,
    save_grid_png,
    save_heatmap,
)
from fooljax.train.classifier import (
    fit,
    make_loss_fn,
)
from fooljax.train.zoo import zoo_config

log = logging.getLogger("fooljax")
FLAGS = flags.FLAGS
opt = config.opt

# The paper's numbers (fractions).
PAPER_RBF = {"error": 0.554, "mean_confidence": 0.012, "clean_mean_confidence": 0.606}
PAPER_LOGISTIC = {"clean_error": 0.016, "fgsm_error": 0.99}
PAPER_RUBBISH_THRESHOLD = 0.5  # Fig. 8: "at least 50 % confidence"

_DATA_HELP = "MNIST directory (default $FOOLJAX_DATA/mnist)."


# --------------------------------------------------------------- shared pieces


def train_with_loss(
    loss_fn,
    params,
    images_u8,
    labels,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
):
    """``train.fit`` (Adam, cosine schedule) with any ``loss_fn(params, x, y)
    -> (loss, accuracy)``; ``images_u8 [N, H, W, C]`` uint8. Returns the
    params and the last epoch's ``{"loss", "accuracy"}``."""
    metrics = {}

    def keep(epoch, _, m):
        metrics.update(m)
        log.debug("  epoch %d/%d: loss %.4f train acc %.4f", epoch, epochs, *m.values())

    params = fit(
        None,
        params,
        images_u8,
        labels,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
        on_epoch=keep,
        loss_fn=loss_fn,
    )
    log.info(
        "  trained: loss %.4f train acc %.4f", metrics["loss"], metrics["accuracy"]
    )
    return params, metrics


def _load_mnist(split: str, data_dir):
    """``(images [N, 28, 28, 1] uint8, labels [N] int32)``."""
    x, y = data.load_dataset("mnist", split, data_dir=data_dir)
    return np.asarray(x, np.uint8), np.asarray(y, np.int32)


def _save_params(wd: Workdir, name: str, params) -> None:
    wd.save_npz(name, **flatten_params(params))


def _load_params(wd: Workdir, name: str):
    flat = wd.load_npz(name)
    return None if flat is None else unflatten_params(flat)


def _batched(fn, *arrays, batch_size: int):
    """``fn`` over batches of ``arrays`` (same first axis), outputs concatenated."""
    n = len(arrays[0])
    outs = [
        np.asarray(fn(*(a[i : i + batch_size] for a in arrays)))
        for i in range(0, n, batch_size)
    ]
    return np.concatenate(outs)


# ------------------------------------------------------------------- RBF (§7)


@dataclasses.dataclass(frozen=True)
class RbfConfig:
    epochs: int = opt(10, "Training epochs (MNIST train, 60,000 images).")
    batch_size: int = opt(128, "Training batch size.")
    learning_rate: float = opt(0.01, "Adam peak learning rate (cosine-decayed).")
    epsilon: float = opt(0.25, "FGSM epsilon (pixels in [0, 1]).")
    curve_epsilons: tuple[float, ...] = opt(
        (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3), "Epsilons of the error curve."
    )
    num_images: int = opt(10000, "Test images attacked.")
    eval_batch: int = opt(1000, "Images per attack call.")
    seed: int = opt(0, "Training seed (batch order).")
    data_dir: str | None = opt(None, _DATA_HELP)

    def validate(self) -> None:
        config.check_fields(
            self,
            epochs=(1, None),
            batch_size=(1, None),
            learning_rate=dict(lo=0, lo_open=True),
            num_images=(1, 10000),
            eval_batch=(1, None),
        )
        check_epsilon(self.epsilon)
        for e in self.curve_epsilons:
            check_epsilon(e, "curve_epsilons")


def rbf_loss_fn(logits_fn):
    """``loss(params, x, y) -> (mean unit loss, accuracy)`` for the train steps."""

    def loss_fn(params, x, y):
        log_probs = logits_fn(params, x)
        loss = rbf_unit_loss(log_probs, y).mean()
        return loss, jnp.mean(jnp.argmax(log_probs, -1) == y)

    return loss_fn


@functools.partial(jax.jit, static_argnames=("logits_fn",))
def fgsm_unit_loss(logits_fn, params, images, labels, epsilon):
    """FGSM on the RBF network's own training cost (``rbf_unit_loss``) instead
    of a softmax cross-entropy: ``images [B, H, W, C]`` -> the same shape, in
    [0, 1] and within ``epsilon`` (may be traced: vmap over an epsilon curve).
    The attack package's sign step and projection."""

    def one(x, y):
        return rbf_unit_loss(logits_fn(params, x[None]), y[None])[0]

    grad = jax.vmap(jax.grad(one))(images, labels)
    tx = sign_step(step_size=epsilon)
    updates, _ = tx.update(grad, tx.init(images))
    return project_linf_box(images + updates, images, epsilon=epsilon)


def unit_error_and_confidence(log_probs, labels) -> dict:
    """Error, and the predicted unit's own probability ``exp(max log p)`` (the
    RBF network's confidence, not a softmax) on the misclassified and on all."""
    log_probs = np.asarray(log_probs)
    pred = log_probs.argmax(1)
    conf = np.exp(log_probs.max(1))
    wrong = pred != labels
    return {
        "error": float(wrong.mean()),
        "mean_confidence": float(conf[wrong].mean()) if wrong.any() else float("nan"),
        "mean_confidence_all": float(conf.mean()),
    }


def _rbf_init(x_u8, y, num_classes: int = 10):
    """Centres at the class means of the training images (data-dependent
    init), precisions at the module's default."""
    params = models.init_params(models.get_spec("rbf"))
    x = x_u8.reshape(len(x_u8), -1).astype(np.float32) / 255.0
    means = np.stack([x[y == k].mean(0) for k in range(num_classes)])
    inner = dict(params["params"])
    inner["mu"] = jnp.asarray(means)
    return {"params": inner}


def run_rbf(cfg: RbfConfig, workdir: str, *, overwrite: bool = False) -> dict:
    """Trains the RBF network (or reloads it from the work directory), attacks
    ``num_images`` test images with FGSM on its own cost and with fooljax's
    softmax-CE FGSM on its log-probabilities; writes summary.json,
    rbf_examples.png and rbf_fgsm_vs_epsilon.png."""
    cfg.validate()
    x_train, y_train = _load_mnist("train", cfg.data_dir)
    x_test, y_test = _load_mnist("test", cfg.data_dir)
    wd = Workdir(workdir, cfg, overwrite=overwrite)
    t0 = time.time()
    clf = models.load_classifier("rbf", "init")
    params = _load_params(wd, "rbf_params.npz")
    if params is None:
        log.info("rbf: training %d epochs", cfg.epochs)
        params, train_metrics = train_with_loss(
            rbf_loss_fn(clf.logits_fn),
            _rbf_init(x_train, y_train),
            x_train,
            y_train,
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
            learning_rate=cfg.learning_rate,
            seed=cfg.seed,
        )
        _save_params(wd, "rbf_params.npz", params)
        wd.save_json("train.json", train_metrics)
    train_metrics = wd.load_json("train.json")
    train_seconds = time.time() - t0
    x = x_test[: cfg.num_images].astype(np.float32) / 255.0
    y = y_test[: cfg.num_images]
    logits = jax.jit(clf.logits_fn)

    def log_probs(images):
        return _batched(lambda b: logits(params, b), images, batch_size=cfg.eval_batch)

    clean = unit_error_and_confidence(log_probs(x), y)
    curve = sorted({check_epsilon(e) for e in cfg.curve_epsilons} | {cfg.epsilon})
    attacks = {
        "fgsm_unit_loss": lambda xb, yb, e: fgsm_unit_loss(
            clf.logits_fn, params, xb, yb, e
        ),
        "fgsm_softmax_ce": lambda xb, yb, e: fgsm(
            clf.logits_fn, params, xb, yb, epsilon=e
        ),
    }
    results, adv_at = {}, {}
    for name, attack in attacks.items():
        rows = {}
        for e in curve:
            adv = _batched(
                lambda xb, yb, e=e, attack=attack: attack(xb, yb, jnp.float32(e)),
                x,
                y,
                batch_size=cfg.eval_batch,
            )
            rows[f"{e:g}"] = unit_error_and_confidence(log_probs(adv), y)
            if e == cfg.epsilon:
                adv_at[name] = adv
        results[name] = {**rows[f"{cfg.epsilon:g}"], "curve": rows}
        log.info(
            "rbf %s eps %.3g: error %.4f, mean confidence on mistakes %.4f",
            name,
            cfg.epsilon,
            results[name]["error"],
            results[name]["mean_confidence"],
        )
    _rbf_pictures(wd, params, x, y, adv_at["fgsm_unit_loss"], log_probs, results)
    return wd.finish(
        {
            "model": "rbf",
            "form": "p(y=k|x) = exp(-sum_j beta_kj (x_j - mu_kj)^2), one unit per "
            "class, trained on the sum of the units' Bernoulli likelihoods",
            "epsilon": cfg.epsilon,
            "num_images": int(len(y)),
            "clean_error": clean["error"],
            "clean_mean_confidence": clean["mean_confidence_all"],
            "clean_mean_confidence_on_mistakes": clean["mean_confidence"],
            "train": train_metrics,
            "fgsm": results["fgsm_unit_loss"]["error"],
            "fgsm_mean_confidence": results["fgsm_unit_loss"]["mean_confidence"],
            "attacks": results,
            "paper": PAPER_RBF,
            "train_seconds": train_seconds,
            "wall_seconds": time.time() - t0,
        }
    )


def _rbf_pictures(wd, params, x, y, adv, log_probs, results):
    inner = params["params"]
    mu = np.asarray(inner["mu"]).reshape(-1, 28, 28, 1)
    # log scale: a few rarely-inked pixels get precisions 100x the rest
    log_beta = np.asarray(inner["log_beta"]).reshape(-1, 28, 28, 1)
    lo = log_beta.min(axis=(1, 2, 3), keepdims=True)
    hi = log_beta.max(axis=(1, 2, 3), keepdims=True)
    beta = (log_beta - lo) / np.maximum(hi - lo, 1e-6)
    idx = np.concatenate([np.flatnonzero(y == k)[:1] for k in range(10)])
    clean_lp, adv_lp = log_probs(x[idx]), log_probs(adv[idx])

    def titles(lp):
        pairs = zip(y[idx], lp.argmax(1), lp.max(1), strict=True)
        return [f"{t}->{a}: {np.exp(m):.3f}" for t, a, m in pairs]

    save_grid_png(
        wd.file("rbf_examples.png"),
        np.concatenate([mu, beta, x[idx], adv[idx]]),
        ncols=10,
        titles=[f"mu {k}" for k in range(10)]
        + [f"log beta {k}" for k in range(10)]
        + titles(clean_lp)
        + titles(adv_lp),
        row_labels=["centres", "precisions\n(log)", "clean\ntrue->pred: p", "FGSM"],
    )
    curve = results["fgsm_unit_loss"]["curve"]
    eps = [float(e) for e in curve]
    plot_lines(
        wd.file("rbf_fgsm_vs_epsilon.png"),
        {
            "error, FGSM on own cost": (
                eps,
                [100 * r["error"] for r in curve.values()],
            ),
            "mean confidence on mistakes": (
                eps,
                [100 * r["mean_confidence"] for r in curve.values()],
            ),
        },
        references={
            "paper error 55.4 % (eps 0.25)": (0.25, 100 * PAPER_RBF["error"]),
            "paper confidence 1.2 %": (0.25, 100 * PAPER_RBF["mean_confidence"]),
        },
        xlabel="epsilon (pixels in [0, 1])",
        ylabel="percent",
        title="Shallow RBF network on MNIST under FGSM",
    )


# ------------------------------------------------------- rubbish class (appx.)


@dataclasses.dataclass(frozen=True)
class RubbishConfig:
    models: str = opt(
        "softmax_regression=fc10_1e-4,maxout,lenet",
        "Comma list of [shown_name=]zoo_model.",
    )
    zoo_dir: str = opt("", "Cache of trained models (default <workdir>/models).")
    num_images: int = opt(1000, "Noise images (targets cycle through the classes).")
    noise_mean: float = opt(0.5, "Mean of the Gaussian noise (then clipped to [0, 1]).")
    noise_std: float = opt(0.5, "Standard deviation of the Gaussian noise.")
    epsilon: float = opt(0.25, "Size of the targeted gradient-sign step.")
    pgd_steps: int = opt(10, "Targeted PGD steps in the same ball (0: FGSM only).")
    threshold: float = opt(
        0.5, "Target-class probability that counts as fooled (paper: 0.5)."
    )
    batch_size: int = opt(500, "Images per attack call.")
    seed: int = opt(0, "Seed of the noise.")
    data_dir: str | None = opt(None, "MNIST (only to train missing zoo models).")

    def validate(self) -> None:
        config.check_fields(
            self,
            num_images=(1, None),
            noise_std=(0, None),
            noise_mean=(0, 1),
            pgd_steps=(0, None),
            threshold=(0, 1),
            batch_size=(1, None),
        )
        check_epsilon(self.epsilon)


def noise_images(key, num_images: int, mean: float, std: float, shape=(28, 28, 1)):
    """``[N, *shape]`` float32: Gaussian ``N(mean, std^2)`` clipped to [0, 1]."""
    z = jax.random.normal(key, (num_images, *shape), jnp.float32)
    return jnp.clip(mean + std * z, 0.0, 1.0)


def rubbish_scores(probs, targets, threshold: float) -> dict:
    """``probs [N, K]`` softmax, ``targets [N]``: the fraction fooled (target
    probability >= ``threshold``), the fraction whose top class is the target,
    the fraction with any class >= ``threshold``, and mean confidences."""
    probs = np.asarray(probs)
    p_t = probs[np.arange(len(targets)), targets]
    top = probs.max(1)
    return {
        "fooled": float(np.mean(p_t >= threshold)),
        "top1_is_target": float(np.mean(probs.argmax(1) == targets)),
        "confident_any_class": float(np.mean(top >= threshold)),
        "mean_target_confidence": float(p_t.mean()),
        "mean_top_confidence": float(top.mean()),
    }


def run_rubbish(cfg: RubbishConfig, workdir: str, *, overwrite: bool = False) -> dict:
    """Noise, FGSM-toward-a-class and PGD-toward-a-class images for every
    model; writes summary.json, rubbish_grid.png and rubbish_fooled.png."""
    cfg.validate()
    named = parse_model_list(cfg.models)
    for name in named.values():
        if ":" not in name:
            zoo_config(name)  # unknown names: one line before the workdir
    wd = Workdir(
        workdir, {**dataclasses.asdict(cfg), "models": named}, overwrite=overwrite
    )
    zoo_dir = cfg.zoo_dir or wd.file("models")
    t0 = time.time()
    x0 = np.asarray(
        noise_images(
            jax.random.key(cfg.seed), cfg.num_images, cfg.noise_mean, cfg.noise_std
        )
    )
    targets = (np.arange(cfg.num_images) % 10).astype(np.int32)
    results = wd.load_json("partial.json")
    shown_images, shown_titles, row_labels = [], [], []
    pick = np.arange(min(10, cfg.num_images))
    for shown, zoo_name in named.items():
        clf = zoo(zoo_name, zoo_dir, cfg.data_dir)
        kept = wd.load_npz(f"images_{shown}.npz")
        if shown not in results or kept is None:
            methods = {"noise": x0}
            methods["fgsm"] = _batched(
                lambda xb, tb: fgsm(
                    clf.logits_fn,
                    clf.params,
                    xb,
                    tb,
                    epsilon=cfg.epsilon,
                    targeted=True,
                ),
                x0,
                targets,
                batch_size=cfg.batch_size,
            )
            if cfg.pgd_steps:
                methods["pgd"] = _batched(
                    lambda xb, tb: pgd(
                        clf.logits_fn,
                        clf.params,
                        xb,
                        tb,
                        epsilon=cfg.epsilon,
                        num_steps=cfg.pgd_steps,
                        targeted=True,
                    ),
                    x0,
                    targets,
                    batch_size=cfg.batch_size,
                )
            row = {}
            kept = {}
            for m, images in methods.items():
                probs = predict(clf.logits_fn, clf.params, images, cfg.batch_size)
                row[m] = rubbish_scores(probs, targets, cfg.threshold)
                kept[m] = images[pick]
                kept[m + "_probs"] = probs[pick]
            results[shown] = row
            wd.save_npz(f"images_{shown}.npz", **kept)
            wd.save_json("partial.json", results)
            log.info(
                "rubbish %s: fooled noise %.3f fgsm %.3f pgd %s",
                shown,
                row["noise"]["fooled"],
                row["fgsm"]["fooled"],
                f"{row['pgd']['fooled']:.3f}" if "pgd" in row else "-",
            )
        for m in [k for k in kept if not k.endswith("_probs")]:
            probs = kept[m + "_probs"]
            shown_images.append(kept[m])
            if m == "noise":
                shown_titles += [f"{p.argmax()}: {p.max():.2f}" for p in probs]
            else:
                shown_titles += [
                    f"{t}: {p[t]:.2f}"
                    for t, p in zip(targets[pick], probs, strict=True)
                ]
            row_labels.append(
                f"{shown}\n{m}\n" + ("top class: p" if m == "noise" else "target: p")
            )
    save_grid_png(
        wd.file("rubbish_grid.png"),
        np.concatenate(shown_images),
        ncols=len(pick),
        titles=shown_titles,
        row_labels=row_labels,
    )
    methods = list(next(iter(results.values())))
    save_heatmap(
        wd.file("rubbish_fooled.png"),
        [[results[s][m]["fooled"] for m in methods] for s in named],
        rows=list(named),
        cols=methods,
        title=f"fraction of noise images with p(target) >= {cfg.threshold:g}, eps {cfg.epsilon:g}",
    )
    return wd.finish(
        {
            "epsilon": cfg.epsilon,
            "threshold": cfg.threshold,
            "noise": {"mean": cfg.noise_mean, "std": cfg.noise_std, "clipped": [0, 1]},
            "num_images": cfg.num_images,
            "models": results,
            "wall_seconds": time.time() - t0,
        }
    )


# ------------------------------------------------------- linear models (§5)


@dataclasses.dataclass(frozen=True)
class LinearConfig:
    digits: tuple[int, ...] = opt((3, 7), "The two digits: negative, positive class.")
    epochs: int = opt(20, "Training epochs.")
    batch_size: int = opt(128, "Training batch size.")
    learning_rate: float = opt(0.01, "Adam peak learning rate (cosine-decayed).")
    epsilon: float = opt(0.25, "FGSM epsilon, for the attack and adversarial training.")
    adv_alpha: float = opt(0.5, "Weight of the clean loss in adversarial training.")
    l1_lambdas: tuple[float, ...] = opt(
        (0.0025, 0.0001), "L1 weight-decay coefficients, one model each."
    )
    seed: int = opt(0, "Training seed (batch order).")
    data_dir: str | None = opt(None, _DATA_HELP)

    def validate(self) -> None:
        if len(self.digits) != 2 or len(set(self.digits)) != 2:
            raise FooljaxError(
                f"--digits must be two different digits, got {self.digits}"
            )
        for d in self.digits:
            config.check_number("digits", d, lo=0, hi=9)
        config.check_fields(
            self,
            epochs=(1, None),
            batch_size=(1, None),
            learning_rate=dict(lo=0, lo_open=True),
            adv_alpha=(0, 1),
        )
        check_epsilon(self.epsilon)
        for lam in self.l1_lambdas:
            config.check_number("l1_lambdas", lam, lo=0)


def binary_subset(images_u8, labels, digits):
    """The images of the two ``digits``; labels 0 (first digit) and 1."""
    keep = (labels == digits[0]) | (labels == digits[1])
    return images_u8[keep], (labels[keep] == digits[1]).astype(np.int32)


def _kernel(params):
    return params["params"]["out"]["kernel"]


def l1_loss_fn(logits_fn, lam: float):
    """Logistic loss plus ``lam * ||w||_1`` added to the cost."""
    base = make_loss_fn(logits_fn)

    def loss_fn(params, x, y):
        loss, acc = base(params, x, y)
        return loss + lam * jnp.sum(jnp.abs(_kernel(params))), acc

    return loss_fn


def closed_form_adversarial_loss_fn(logits_fn, *, epsilon: float, alpha: float):
    """The paper's closed form for logistic regression (Sec. 5): FGSM moves
    ``z = w^T x + b`` by ``eps ||w||_1`` against the label, so
    ``J~ = a zeta(-s z) + (1 - a) zeta(-s z + eps ||w||_1)`` with ``s = +-1``
    (no [0, 1] clipping: an L1 penalty inside the activation)."""

    def loss_fn(params, x, y):
        z = logits_fn(params, x)[:, 1]
        s = 2.0 * y - 1.0
        l1 = epsilon * jnp.sum(jnp.abs(_kernel(params)))
        loss = alpha * jax.nn.softplus(-s * z) + (1 - alpha) * jax.nn.softplus(
            -s * z + l1
        )
        acc = jnp.mean((z > 0).astype(jnp.int32) == y)
        return loss.mean(), acc

    return loss_fn


def run_linear(cfg: LinearConfig, workdir: str, *, overwrite: bool = False) -> dict:
    """Logistic regression on two digits, plain, adversarial and L1; clean and
    FGSM error per model; writes summary.json and linear_fig2.png."""
    cfg.validate()
    x_train, y_train = binary_subset(*_load_mnist("train", cfg.data_dir), cfg.digits)
    x_test, y_test = binary_subset(*_load_mnist("test", cfg.data_dir), cfg.digits)
    wd = Workdir(workdir, cfg, overwrite=overwrite)
    t0 = time.time()
    clf = models.load_classifier("logistic", "init")
    logits_fn = clf.logits_fn
    variants = {
        "plain": make_loss_fn(logits_fn),
        "adversarial_fgsm": make_loss_fn(
            logits_fn, adv_alpha=cfg.adv_alpha, adv_epsilon=cfg.epsilon
        ),
        "adversarial_closed_form": closed_form_adversarial_loss_fn(
            logits_fn, epsilon=cfg.epsilon, alpha=cfg.adv_alpha
        ),
        **{f"l1_{lam:g}": l1_loss_fn(logits_fn, lam) for lam in cfg.l1_lambdas},
    }
    x = x_test.astype(np.float32) / 255.0
    results = wd.load_json("partial.json")
    trained, adv_images = {}, {}
    for name, loss_fn in variants.items():
        params = _load_params(wd, f"params_{name}.npz")
        if params is None:
            log.info("linear: training %s", name)
            params, _ = train_with_loss(
                loss_fn,
                clf.params,
                x_train,
                y_train,
                epochs=cfg.epochs,
                batch_size=cfg.batch_size,
                learning_rate=cfg.learning_rate,
                seed=cfg.seed,
            )
            _save_params(wd, f"params_{name}.npz", params)
        adv = np.asarray(fgsm(logits_fn, params, x, y_test, epsilon=cfg.epsilon))
        clean_p = predict(logits_fn, params, x)
        adv_p = predict(logits_fn, params, adv)
        w = np.asarray(_kernel(params))[:, 0]
        # FGSM on logistic regression is eps * sign(w) against the label (then
        # clipped): the fraction of pixels where fooljax's FGSM agrees with it
        step = cfg.epsilon * np.sign(w).reshape(x.shape[1:])
        closed = np.clip(x - (2 * y_test - 1)[:, None, None, None] * step, 0, 1)
        wrong = adv_p.argmax(1) != y_test
        results[name] = {
            "clean_error": float((clean_p.argmax(1) != y_test).mean()),
            "fgsm_error": float(wrong.mean()),
            "fgsm_mean_confidence": float(adv_p.max(1)[wrong].mean())
            if wrong.any()
            else float("nan"),
            "l1_norm": float(np.abs(w).sum()),
            "fgsm_matches_closed_form": float(
                np.mean(np.isclose(adv.reshape(len(x), -1), closed.reshape(len(x), -1)))
            ),
        }
        log.info(
            "linear %s: clean error %.4f, FGSM error %.4f, ||w||_1 %.1f",
            name,
            results[name]["clean_error"],
            results[name]["fgsm_error"],
            results[name]["l1_norm"],
        )
        wd.save_json("partial.json", results)
        trained[name], adv_images[name] = params, adv
    _linear_figure(
        wd.file("linear_fig2.png"), cfg, x, y_test, trained, adv_images, results
    )
    return wd.finish(
        {
            "digits": list(cfg.digits),
            "epsilon": cfg.epsilon,
            "adv_alpha": cfg.adv_alpha,
            "num_train": int(len(y_train)),
            "num_test": int(len(y_test)),
            "models": results,
            "paper": {"plain": PAPER_LOGISTIC},
            "wall_seconds": time.time() - t0,
        }
    )


def _linear_figure(path, cfg, x, y, trained, adv_images, results, num_shown=6):
    """The paper's Fig. 2 per model: weights, sign of the input gradient (for
    the negative class), clean and FGSM images with the model's labels."""
    shown = np.concatenate([np.flatnonzero(y == c)[: num_shown // 2] for c in (0, 1)])
    names = list(trained)
    ncols = 2 + num_shown
    fig, axes = pyplot().subplots(
        len(names) + 1, ncols, figsize=(1.35 * ncols, 1.55 * (len(names) + 1))
    )
    for ax in axes.ravel():
        ax.axis("off")
    for j, i in enumerate(shown):
        axes[0, 2 + j].imshow(x[i, ..., 0], cmap="gray", vmin=0, vmax=1)
        axes[0, 2 + j].set_title(f"clean {cfg.digits[y[i]]}", fontsize=7)
    axes[0, 0].text(
        0,
        0.5,
        f"MNIST {cfg.digits[0]}s vs {cfg.digits[1]}s\nrows: models\n"
        f"FGSM eps {cfg.epsilon:g}",
        fontsize=7,
        va="center",
    )
    for r, name in enumerate(names, start=1):
        w = np.asarray(_kernel(trained[name]))[:, 0].reshape(28, 28)
        lim = np.abs(w).max() or 1.0
        axes[r, 0].imshow(w, cmap="RdBu_r", vmin=-lim, vmax=lim)
        axes[r, 0].set_title(f"{name}\nweights", fontsize=6)
        # d loss / dx for the negative class is sigmoid(z) * w: its sign is sign(w)
        axes[r, 1].imshow(np.sign(w), cmap="gray", vmin=-1, vmax=1)
        res = results[name]
        axes[r, 1].set_title(
            f"sign of gradient\nclean {100 * res['clean_error']:.1f}% "
            f"FGSM {100 * res['fgsm_error']:.1f}%",
            fontsize=6,
        )
        probs = predict(
            models.load_classifier("logistic", "init").logits_fn,
            trained[name],
            adv_images[name][shown],
        )
        for j, i in enumerate(shown):
            ax = axes[r, 2 + j]
            ax.imshow(adv_images[name][i, ..., 0], cmap="gray", vmin=0, vmax=1)
            k = int(probs[j].argmax())
            ax.set_title(f"-> {cfg.digits[k]} {probs[j, k]:.2f}", fontsize=7)
    save_figure(fig, path)


# ---------------------------------------------------------------- entry points

FAMILIES = {
    RbfConfig: (
        run_rbf,
        lambda s: {
            k: s[k]
            for k in (
                "clean_error",
                "clean_mean_confidence",
                "fgsm",
                "fgsm_mean_confidence",
            )
        },
    ),
    RubbishConfig: (
        run_rubbish,
        lambda s: {
            m: {k: round(v["fooled"], 4) for k, v in r.items()}
            for m, r in s["models"].items()
        },
    ),
    LinearConfig: (
        run_linear,
        lambda s: {
            m: {k: round(r[k], 4) for k in ("clean_error", "fgsm_error")}
            for m, r in s["models"].items()
        },
    ),
}


def define_flags(cls) -> None:
    """--workdir (required), --overwrite and the fields of ``cls``."""
    config.define_workdir_flags()
    config.define_flags(cls)


def make_main(cls):
    """``main(argv)`` of the entry point for the config class ``cls``."""
    return family_main(FAMILIES, cls)
