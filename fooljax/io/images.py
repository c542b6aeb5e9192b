"""Pictures of results: PNGs, labelled grids (PIL), curves (matplotlib Agg)."""

from __future__ import annotations

import math
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from fooljax.io.plot import line_chart


def to_uint8(image) -> np.ndarray:
    """``[H, W, C]`` float in [0, 1] -> uint8 ``[H, W, C]``."""
    x = np.asarray(image, np.float32)
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)


def save_png(path: str, image, *, min_size: int = 0) -> None:
    """Writes one image; nearest-neighbour upscaled to at least ``min_size`` px."""
    x = to_uint8(image)
    if x.shape[-1] == 1:
        x = x[..., 0]
    img = Image.fromarray(x)
    if min_size and min(img.size) < min_size:
        f = math.ceil(min_size / min(img.size))
        img = img.resize((img.size[0] * f, img.size[1] * f), Image.NEAREST)
    tmp = path + ".tmp.png"
    img.save(tmp, compress_level=1)  # noise-like images: fast beats small
    os.replace(tmp, path)


def save_grid(
    path: str,
    images,
    titles: list[str],
    *,
    ncols: int | None = None,
    suptitle: str | None = None,
    cell_px: int = 112,
) -> None:
    """A labelled grid of ``images [N, H, W, C]`` in [0, 1] (PIL; fast for 100s).

    Images are scaled to ``cell_px`` (nearest-neighbour when enlarging, so
    pixels stay visible); each title (may hold newlines) is written below.
    """
    images = np.asarray(images)
    n = len(images)
    ncols = ncols or min(n, 10)
    nrows = math.ceil(n / ncols)
    try:
        font = ImageFont.load_default(size=11)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    lines = max((t.count("\n") + 1 for t in titles), default=1)
    text_h = 13 * lines + 4
    head = 20 if suptitle else 0
    pad = 6
    width = ncols * (cell_px + pad) + pad
    height = head + nrows * (cell_px + text_h + pad) + pad
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    if suptitle:
        draw.text((pad, 4), suptitle, fill="black", font=font)
    for i in range(n):
        r, c = divmod(i, ncols)
        x0 = pad + c * (cell_px + pad)
        y0 = head + pad + r * (cell_px + text_h + pad)
        arr = to_uint8(images[i])
        img = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr).convert("RGB")
        resample = Image.NEAREST if img.size[0] < cell_px else Image.BILINEAR
        canvas.paste(img.resize((cell_px, cell_px), resample), (x0, y0))
        draw.multiline_text(
            (x0, y0 + cell_px + 2), titles[i], fill="black", font=font, spacing=2
        )
    tmp = path + ".tmp.png"
    canvas.save(tmp, compress_level=1)
    os.replace(tmp, path)


def save_curves(
    path: str, x, series: dict[str, list[float]], *, xlabel: str, ylabel: str, title=""
) -> None:
    """Line plot of several series over ``x`` (``plot.line_chart``: PIL, no
    matplotlib)."""
    line_chart(
        path,
        {name: (x, ys) for name, ys in series.items()},
        xlabel=xlabel,
        ylabel=ylabel,
        title=title,
    )
