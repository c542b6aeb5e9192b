"""Goodfellow et al. 2015, Fig. 4: the logits of all classes along the FGSM
direction as epsilon sweeps from ``-epsilon_max`` to ``+epsilon_max``.

Each image moves along the fixed sign of its loss gradient,
``x(eps) = clip(x + eps * sign(grad_x J), 0, 1)``; the pre-softmax outputs of
every class are recorded at ``num_epsilons`` evenly spaced values of ``eps`` in
one vmapped call per batch (``fooljax.attacks.fgsm_sweep.logit_sweep``). The
paper's point: for a maxout (or ReLU) network they are piecewise linear in
``eps``, and a wrong class wins over a wide range of ``eps``.

``summary.json`` holds, per model, over the first ``num_images`` test images:

- ``linear_r2``: mean R^2 of one least-squares line per logit curve (all
  images and classes) over the whole range; ``two_piece_r2``: the same with
  separate lines for ``eps <= 0`` and ``eps >= 0`` (a kink at 0, where the
  clip of saturated pixels starts: MNIST is mostly exact 0s and 1s);
- ``argmax_matches_linear_extrapolation``: lines fitted on the small steps
  ``0 <= eps <= epsilon_max / 10`` and extrapolated to every ``eps > 0``
  predict the real argmax at this fraction of (image, eps) points;
- ``misclassified_fraction_positive_eps``: the fraction of (image, eps > 0)
  points classified wrongly, and ``error_at_max``/``error_at_min`` at the ends.

Pictures (one per model): ``logit_sweep_<model>.png`` (one panel per image of
``panels``: epsilon vs logit, all classes, the true class drawn thick) and
``logit_sweep_images_<model>.png`` (those images at 11 epsilons with the
predicted class and its probability).
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
from fooljax.attacks import check_differentiable
from fooljax.attacks.fgsm_sweep import fgsm_direction, logit_sweep
from fooljax.errors import FooljaxError
from fooljax.runs import config, pictures
from fooljax.runs.cli import print_json_line
from fooljax.runs.common import Workdir, load_mnist_test, parse_model_list, zoo
from fooljax.runs.one_pixel import interleave_order
from fooljax.train.zoo import zoo_config

log = logging.getLogger("fooljax")
FLAGS = flags.FLAGS
opt = config.opt

_SHAPES = {"mnist": (28, 28, 1), "cifar10": (32, 32, 3)}


@dataclasses.dataclass(frozen=True)
class LogitSweepConfig:
    models: str = opt(
        "maxout,lenet", "Comma list of [shown=]zoo_model or MODEL:WEIGHTS."
    )
    epsilon_max: float = opt(0.25, "The sweep runs over [-epsilon_max, epsilon_max].")
    num_epsilons: int = opt(101, "Evenly spaced epsilons of the sweep.")
    num_images: int = opt(1000, "Test images of the linearity statistics.")
    panels: tuple[int, ...] = opt(
        (0, 1, 2, 3), "Indices (< num_images) of the images plotted, one panel each."
    )
    batch_size: int = opt(50, "Images per sweep call (x num_epsilons forwards).")
    dataset: str = opt("mnist", "Test images.", choices=("mnist", "cifar10"))
    zoo_dir: str = opt("", "Cache of trained zoo models (default <workdir>/models).")
    data_dir: str | None = opt(None, "Data directory (default $FOOLJAX_DATA).")

    def validate(self) -> None:
        config.check_fields(
            self,
            epsilon_max=dict(lo=0, hi=1, lo_open=True),
            num_epsilons=(3, 10001),
            num_images=(1, None),
            batch_size=(1, None),
        )
        if not self.panels:
            raise FooljaxError("--panels names no image")
        for p in self.panels:
            if not 0 <= p < self.num_images:
                raise FooljaxError(
                    f"--panels entry {p} is not an image index in "
                    f"0..{self.num_images - 1} (--num_images={self.num_images})"
                )

    def epsilons(self) -> np.ndarray:
        return np.linspace(-self.epsilon_max, self.epsilon_max, self.num_epsilons)


def _check_models(named: dict, dataset: str) -> None:
    """Unknown zoo or registered models, and models of another image size,
    refused in one line before any data is read."""
    for shown, name in named.items():
        if ":" in name:
            model = name.split(":", 1)[0]
        else:
            cfg = zoo_config(name)
            model = "lenet" if cfg is None else cfg.model
        got = tuple(models.get_spec(model).input_shape)
        if got != _SHAPES[dataset]:
            raise FooljaxError(
                f"model '{shown}' takes {list(got)} images, {dataset} has "
                f"{list(_SHAPES[dataset])}"
            )


def load_images(dataset: str, data_dir, num_images: int):
    """``(images [N, H, W, C] float32 in [0, 1], labels [N])``: MNIST's first
    test images, or CIFAR-10's with the classes interleaved."""
    if dataset == "mnist":
        return load_mnist_test(data_dir, num_images)
    images, labels = data.load_dataset(dataset, "test", data_dir=data_dir)
    if num_images > len(labels):
        raise FooljaxError(f"num_images must be in 1..{len(labels)}, got {num_images}")
    idx = interleave_order(labels)[:num_images]
    return images[idx].astype(np.float32) / 255.0, np.asarray(labels[idx], np.int32)


def sweep_logits(clf, x, y, epsilons, batch_size: int) -> np.ndarray:
    """``logit_sweep`` over ``x`` in batches: ``[E, N, K]`` (host)."""
    return np.concatenate(
        [
            np.asarray(
                logit_sweep(
                    clf.logits_fn,
                    clf.params,
                    x[i : i + batch_size],
                    y[i : i + batch_size],
                    epsilons,
                )
            )
            for i in range(0, len(x), batch_size)
        ],
        axis=1,
    )


def _line_sse(e: np.ndarray, curves: np.ndarray) -> np.ndarray:
    """Residual sum of squares of a least-squares line per column of
    ``curves [E, M]`` against ``e [E]``: ``[M]``."""
    a = np.stack([e, np.ones_like(e)], 1)
    coef, *_ = np.linalg.lstsq(a, curves, rcond=None)
    return ((curves - a @ coef) ** 2).sum(0)


def linearity(epsilons, logits, labels) -> dict:
    """The linearity measures of the module docstring, from ``logits [E, N,
    K]`` at ``epsilons [E]`` (increasing, symmetric around 0)."""
    e = np.asarray(epsilons, np.float64)
    z = np.asarray(logits, np.float64)
    num_e, n, k = z.shape
    curves = z.reshape(num_e, n * k)
    sst = ((curves - curves.mean(0)) ** 2).sum(0)
    ok = sst > 1e-12 * max(float(sst.max()), 1e-30)
    neg, pos = e <= 1e-12, e >= -1e-12
    sse1 = _line_sse(e, curves)
    sse2 = _line_sse(e[neg], curves[neg]) + _line_sse(e[pos], curves[pos])
    # lines through the small steps 0 <= eps <= eps_max / 10, extrapolated
    small = pos & (e <= e.max() / 10 + 1e-12)
    if small.sum() < 2:
        small = pos & (e <= np.sort(e[pos])[1] + 1e-12)
    a = np.stack([e[small], np.ones(small.sum())], 1)
    coef, *_ = np.linalg.lstsq(a, curves[small], rcond=None)
    after = e > 1e-12
    extrapolated = (np.stack([e[after], np.ones(after.sum())], 1) @ coef).reshape(
        -1, n, k
    )
    pred = z.argmax(-1)
    return {
        "linear_r2": float(np.mean(1 - sse1[ok] / sst[ok])),
        "two_piece_r2": float(np.mean(1 - sse2[ok] / sst[ok])),
        "argmax_matches_linear_extrapolation": float(
            np.mean(extrapolated.argmax(-1) == pred[after])
        ),
        "misclassified_fraction_positive_eps": float(
            np.mean(pred[after] != labels[None])
        ),
        "error_at_max": float(np.mean(pred[-1] != labels)),
        "error_at_min": float(np.mean(pred[0] != labels)),
        "error_at_zero": float(np.mean(pred[np.argmin(np.abs(e))] != labels)),
        "num_curves": int(ok.sum()),
    }


@functools.partial(jax.jit, static_argnums=0)
def _direction(logits_fn, params, images, labels):
    return fgsm_direction(logits_fn, params, images, labels)


def run(cfg: LogitSweepConfig, workdir: str, *, overwrite: bool = False) -> dict:
    """The sweep for every model of ``cfg.models``; returns the summary."""
    cfg.validate()
    named = parse_model_list(cfg.models)
    _check_models(named, cfg.dataset)
    x, y = load_images(cfg.dataset, cfg.data_dir, cfg.num_images)
    wd = Workdir(workdir, cfg, overwrite=overwrite)
    zoo_dir = cfg.zoo_dir or wd.file("models")
    eps = cfg.epsilons()
    t0 = time.time()
    results = wd.load_json("partial.json")
    for shown, name in named.items():
        clf = zoo(name, zoo_dir, cfg.data_dir if cfg.dataset == "mnist" else None)
        saved = wd.load_npz(f"sweep_{shown}.npz")
        if shown in results and saved is not None:
            log.info("logit sweep: %s already done (resumed)", shown)
            z = saved["logits"]
        else:
            check_differentiable(clf.logits_fn, clf.params, x[:4], y[:4])
            ts = time.time()
            z = sweep_logits(clf, x, y, eps, cfg.batch_size)
            row = linearity(eps, z, y)
            row.update(model=name, seconds=time.time() - ts)
            results[shown] = row
            wd.save_npz(f"sweep_{shown}.npz", logits=z[:, list(cfg.panels)])
            wd.save_json("partial.json", results)
            log.info(
                "logit sweep %s: R2 line %.4f, two pieces %.4f, argmax as the "
                "linear extrapolation %.3f, wrong at eps>0 %.3f (%.0f s)",
                shown,
                row["linear_r2"],
                row["two_piece_r2"],
                row["argmax_matches_linear_extrapolation"],
                row["misclassified_fraction_positive_eps"],
                row["seconds"],
            )
            z = z[:, list(cfg.panels)]
        _pictures(wd, cfg, shown, clf, eps, z, x, y)
    return wd.finish(
        {
            "epsilons": {
                "min": float(eps[0]),
                "max": float(eps[-1]),
                "num": int(len(eps)),
            },
            "dataset": cfg.dataset,
            "num_images": int(len(x)),
            "panels": list(cfg.panels),
            "models": results,
            "wall_seconds": time.time() - t0,
        }
    )


def _pictures(wd, cfg, shown, clf, eps, z, x, y) -> None:
    """``z [E, P, K]``: the logits of the panel images."""
    names = clf.class_names or tuple(str(i) for i in range(clf.num_classes))
    panels = list(cfg.panels)
    plt = pictures.pyplot()
    fig, axes = plt.subplots(
        1, len(panels), figsize=(3.4 * len(panels) + 1.6, 3.4), squeeze=False
    )
    colors = plt.get_cmap("tab10")
    for j, (ax, i) in enumerate(zip(axes[0], panels, strict=True)):
        for c in range(z.shape[-1]):
            true = c == y[i]
            ax.plot(
                eps,
                z[:, j, c],
                color="black" if true else colors(c % 10),
                lw=3 if true else 1.2,
                zorder=3 if true else 2,
            )
        ax.axvline(0, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("epsilon (along sign of the gradient)")
        ax.set_title(f"{shown}: test image {i}, true {names[y[i]]}", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("logit (pre-softmax)")
    # one legend for all panels: a colour per class, the true class in black
    handles = [
        plt.Line2D([], [], color=colors(c % 10), lw=1.2, label=names[c])
        for c in range(z.shape[-1])
    ]
    handles.append(plt.Line2D([], [], color="black", lw=3, label="true class"))
    axes[0][-1].legend(
        handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5)
    )
    pictures.save_figure(fig, wd.file(f"logit_sweep_{shown}.png"))
    # the inputs along the sweep (the paper's right-hand panel)
    cols = np.unique(np.round(np.linspace(0, len(eps) - 1, 11)).astype(int))
    d = np.asarray(
        _direction(clf.logits_fn, clf.params, jnp.asarray(x[panels]), y[panels])
    )
    imgs, titles = [], []
    for j, i in enumerate(panels):
        for t in cols:
            imgs.append(np.clip(x[i] + eps[t] * d[j], 0, 1))
            p = np.exp(z[t, j] - z[t, j].max())
            p /= p.sum()
            k = int(p.argmax())
            mark = "" if k == y[i] else "*"
            titles.append(f"{eps[t]:+.3f}\n{names[k]}{mark} {p[k]:.2f}")
    pictures.save_grid_png(
        wd.file(f"logit_sweep_images_{shown}.png"),
        np.stack(imgs),
        ncols=len(cols),
        titles=titles,
        row_labels=[f"{shown}\nimage {i}\n(true {names[y[i]]})" for i in panels],
    )


def define_flags() -> None:
    config.define_workdir_flags()
    config.define_flags(LogitSweepConfig)


def main(argv) -> None:
    del argv
    summary = run(
        config.from_flags(LogitSweepConfig), FLAGS.workdir, overwrite=FLAGS.overwrite
    )
    print(f"results in {FLAGS.workdir} (summary.json, logit_sweep_<model>.png)")
    print_json_line(
        {
            s: {
                k: round(r[k], 4)
                for k in (
                    "linear_r2",
                    "two_piece_r2",
                    "argmax_matches_linear_extrapolation",
                )
            }
            for s, r in summary["models"].items()
        }
    )
