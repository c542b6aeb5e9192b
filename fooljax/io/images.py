"""Pictures of results: PNGs, labelled grids, curves (matplotlib, Agg backend)."""

from __future__ import annotations

import math
import os

import numpy as np


def to_uint8(image) -> np.ndarray:
    """``[H, W, C]`` float in [0, 1] -> uint8 ``[H, W, C]``."""
    x = np.asarray(image, np.float32)
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)


def save_png(path: str, image, *, min_size: int = 0) -> None:
    """Writes one image; nearest-neighbour upscaled to at least ``min_size`` px."""
    from PIL import Image

    x = to_uint8(image)
    if x.shape[-1] == 1:
        x = x[..., 0]
    img = Image.fromarray(x)
    if min_size and min(img.size) < min_size:
        f = math.ceil(min_size / min(img.size))
        img = img.resize((img.size[0] * f, img.size[1] * f), Image.NEAREST)
    tmp = path + ".tmp.png"
    img.save(tmp)
    os.replace(tmp, path)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_grid(
    path: str,
    images,
    titles: list[str],
    *,
    ncols: int | None = None,
    suptitle: str | None = None,
    cell_inches: float = 1.6,
) -> None:
    """A labelled grid of ``images [N, H, W, C]`` in [0, 1]."""
    plt = _plt()
    images = np.asarray(images)
    n = len(images)
    ncols = ncols or min(n, 10)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(ncols * cell_inches, nrows * (cell_inches + 0.35)),
        squeeze=False,
    )
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        img = np.clip(images[i], 0, 1)
        if img.shape[-1] == 1:
            ax.imshow(img[..., 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        else:
            ax.imshow(img, interpolation="nearest")
        ax.set_title(titles[i], fontsize=7)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def save_curves(
    path: str, x, series: dict[str, list[float]], *, xlabel: str, ylabel: str, title=""
) -> None:
    """Line plot of several series over ``x``."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, ys in series.items():
        ax.plot(x, ys, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
