"""Result pictures of the attack runs: labelled image grids and curves
(matplotlib, Agg backend, written atomically). The MAP-Elites archives use the
PIL grids of ``fooljax.io.images`` (fast for 1000 classes)."""

from __future__ import annotations

import os
import sys

import numpy as np


def pyplot():
    """pyplot, imported on first use (Agg, except in a notebook, which keeps its
    inline backend): matplotlib is 0.4 s of start-up that a run without
    pictures need not pay."""
    import matplotlib

    if "ipykernel" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.figure
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str, dpi: int = 100, margins: dict | None = None) -> None:
    """Lays out (``tight_layout``, or fixed ``margins`` for ``subplots_adjust``:
    one drawing fewer) and writes a matplotlib figure atomically (a temporary
    name, then ``os.replace``), and closes it."""
    if margins:
        fig.subplots_adjust(**margins)
    else:
        fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=dpi, pil_kwargs={"compress_level": 1})  # see save_curves
    pyplot().close(fig)
    os.replace(tmp, path)


def save_grid_png(path: str, images, *, ncols: int, titles=None, row_labels=None):
    """Writes ``images [N, H, W, C]`` in [0, 1] as a grid, ``ncols`` per row;
    ``titles`` one per image, ``row_labels`` one per row (left margin)."""
    images = np.asarray(images)
    n = len(images)
    nrows = (n + ncols - 1) // ncols
    fig, axes = pyplot().subplots(nrows, ncols, figsize=(1.3 * ncols, 1.5 * nrows))
    axes = np.atleast_1d(axes).ravel()
    for i, ax in enumerate(axes):
        ax.axis("off")
        if i >= n:
            continue
        img = images[i]
        grey = img.shape[-1] == 1
        ax.imshow(
            img[..., 0] if grey else img, cmap="gray" if grey else None, vmin=0, vmax=1
        )
        if titles is not None:
            ax.set_title(titles[i], fontsize=7)
    for r, label in enumerate(row_labels or ()):
        ax = axes[r * ncols]
        ax.text(
            -0.1,
            0.5,
            label,
            transform=ax.transAxes,
            ha="right",
            va="center",
            fontsize=7,
        )
    save_figure(fig, path)


def plot_lines(
    path: str,
    lines: dict,
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    references: dict | None = None,
    marker: str | None = "o",
    margins: dict | None = None,
):
    """``lines: {name: (xs, ys)}`` as one line plot (``marker=None`` for long
    curves; past 10 lines, where the colours repeat, the lines are dashed);
    ``references: {label: (x, y)}`` (the paper's values) as starred points
    with a dotted horizontal guide, or, with ``x=None``, the guide alone,
    labelled on the right axis."""
    fig, ax = pyplot().subplots(figsize=(5.5, 3.8))
    for i, (name, (xs, ys)) in enumerate(lines.items()):
        ax.plot(xs, ys, marker=marker, ls="-" if i < 10 else "--", label=name)
    guides = {}
    for label, (x, y) in (references or {}).items():
        ax.axhline(y, color="grey", ls=":", lw=1)
        if x is None:
            guides[label] = y
        else:
            ax.plot([x], [y], marker="*", ms=12, ls="none", label=label)
    if guides:  # tick labels on a twin axis: no text over the lines
        right = ax.twinx()
        right.set_ylim(ax.get_ylim())
        right.set_yticks(list(guides.values()), list(guides), fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=1 if len(lines) <= 10 else 2)
    save_figure(fig, path, margins=margins)


def save_heatmap(path: str, values, *, rows, cols, title: str = "", fmt="{:.2f}"):
    """``values [len(rows), len(cols)]`` in [0, 1] as an annotated heat map."""
    values = np.asarray(values, float)
    fig, ax = pyplot().subplots(
        figsize=(1.6 + 1.3 * len(cols), 1.2 + 0.5 * len(rows)), squeeze=True
    )
    im = ax.imshow(values, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(cols)), [c[:28] for c in cols], rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), [r[-40:] for r in rows], fontsize=7)
    for (i, j), v in np.ndenumerate(values):
        ax.text(
            j,
            i,
            fmt.format(v),
            ha="center",
            va="center",
            fontsize=7,
            color="white" if v < 0.5 else "black",
        )
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax)
    save_figure(fig, path)
