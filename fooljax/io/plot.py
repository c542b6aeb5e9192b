"""Line charts drawn with PIL: the curves every MAP-Elites run writes
(``confidence.png``, ``confidence_time.png``, ``nines.png``, ``qd.png``).

matplotlib costs a run 0.4 s of import and 0.1 s a chart on this CPU, about 5 %
of the main job; these charts take 25-35 ms each (1000 points a line, up to 10
lines) and need nothing but Pillow >= 10.1 (already there for the image
grids). Drawn at ``SUPERSAMPLE`` times the size and
downsampled, so lines are antialiased. Other pictures (heat maps, image grids
with titles) stay matplotlib's (``runs.pictures``).
"""

from __future__ import annotations

import math
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SUPERSAMPLE = 2
# matplotlib's tab10, so the charts read like the rest of the pictures
COLOURS = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
]


def nice_ticks(lo: float, hi: float, n: int = 6) -> list[float]:
    """About ``n`` round tick values (1, 2, 2.5 or 5 times a power of ten)
    covering ``[lo, hi]``."""
    if not hi > lo:
        return [lo]
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    t = first
    while t <= hi + 1e-9 * step:
        ticks.append(round(t, 12))
        t += step
    return ticks


def _label(v: float) -> str:
    return f"{v:.6g}" if abs(v) < 1e6 else f"{v:.2g}"


def _font(size: int):
    return ImageFont.load_default(size=size * SUPERSAMPLE)


def _text_size(draw, text, font) -> tuple[int, int]:
    box = draw.multiline_textbbox((0, 0), text, font=font)
    return box[2] - box[0], box[3] - box[1]


def _polyline(draw, pts, colour, width, dashed):
    """``pts``: pixel points with ``None`` for gaps (non-finite values)."""
    run = []
    for p in [*pts, None]:
        if p is not None:
            run.append(p)
            continue
        if len(run) == 1:
            x, y = run[0]
            draw.ellipse([x - width, y - width, x + width, y + width], fill=colour)
        elif run and not dashed:
            draw.line(run, fill=colour, width=width, joint="curve")
        elif run:  # dashes of 6, gaps of 4 (in output pixels) along the path
            dash, gap = 6 * SUPERSAMPLE, 4 * SUPERSAMPLE
            on, left = True, dash
            for (x0, y0), (x1, y1) in zip(run, run[1:], strict=False):
                seg = math.hypot(x1 - x0, y1 - y0)
                pos = 0.0
                while pos < seg:
                    step = min(left, seg - pos)
                    if on:
                        a, b = pos / seg, (pos + step) / seg
                        draw.line(
                            [
                                (x0 + a * (x1 - x0), y0 + a * (y1 - y0)),
                                (x0 + b * (x1 - x0), y0 + b * (y1 - y0)),
                            ],
                            fill=colour,
                            width=width,
                        )
                    pos += step
                    left -= step
                    if left <= 0:
                        on = not on
                        left = dash if on else gap
        run = []


def line_chart(
    path: str,
    lines: dict,
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    guides: dict[str, float] | None = None,
    size: tuple[int, int] = (600, 380),
) -> None:
    """Writes ``lines: {name: (xs, ys)}`` as a PNG line chart (atomically: a
    temporary name, then ``os.replace``). Past 10 lines, where the colours
    repeat, lines are dashed; non-finite values leave gaps. ``guides: {label:
    y}``: dotted horizontal lines labelled on the right (e.g. p = 0.99). The
    legend sits right of the plot, where it hides no line."""
    s = SUPERSAMPLE
    series = []
    for name, (xs, ys) in lines.items():
        xs, ys = np.asarray(xs, float), np.asarray(ys, float)
        series.append((str(name), xs, ys))
    guides = dict(guides or {})
    finite_x = np.concatenate([x[np.isfinite(x)] for _, x, _ in series] or [[0.0]])
    finite_y = np.concatenate(
        [y[np.isfinite(y)] for _, _, y in series] + [np.asarray(list(guides.values()))]
    )
    if finite_x.size == 0:
        finite_x = np.zeros(1)
    if finite_y.size == 0:
        finite_y = np.zeros(1)
    x0, x1 = float(finite_x.min()), float(finite_x.max())
    y0, y1 = float(finite_y.min()), float(finite_y.max())
    if x1 <= x0:
        x0, x1 = x0 - 0.5, x1 + 0.5
    pad = 0.05 * (y1 - y0) if y1 > y0 else 0.5
    y0, y1 = y0 - pad, y1 + pad

    small, normal = _font(9), _font(11)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    legend_w = max((_text_size(probe, n, small)[0] for n, _, _ in series), default=0)
    legend_w = legend_w + 30 * s if series else 0
    guide_w = max((_text_size(probe, g, small)[0] for g in guides), default=0)
    title_h = _text_size(probe, title, normal)[1] + 14 * s if title else 8 * s
    yticks = nice_ticks(y0, y1)
    ytick_w = max(_text_size(probe, _label(t), small)[0] for t in yticks)
    width, height = size[0] * s + legend_w + guide_w, size[1] * s
    left = ytick_w + 34 * s
    right = width - legend_w - guide_w - (12 * s if guides else 10 * s)
    top, bottom = title_h, height - 44 * s

    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)

    def px(x, y):  # data to pixel coordinates (numbers or arrays)
        return (
            left + (x - x0) / (x1 - x0) * (right - left),
            bottom - (y - y0) / (y1 - y0) * (bottom - top),
        )

    grid = (225, 225, 225)
    for t in nice_ticks(x0, x1):
        x, _ = px(t, y0)
        draw.line([(x, top), (x, bottom)], fill=grid, width=s)
        w, _ = _text_size(draw, _label(t), small)
        draw.text((x - w / 2, bottom + 5 * s), _label(t), fill="black", font=small)
    for t in yticks:
        _, y = px(x0, t)
        draw.line([(left, y), (right, y)], fill=grid, width=s)
        w, h = _text_size(draw, _label(t), small)
        draw.text(
            (left - w - 5 * s, y - h / 2 - 2 * s), _label(t), fill="black", font=small
        )
    for label, gy in guides.items():
        _, y = px(x0, gy)
        for gx in range(int(left), int(right), 6 * s):
            draw.line(
                [(gx, y), (min(gx + 2 * s, right), y)], fill=(110, 110, 110), width=s
            )
        h = _text_size(draw, label, small)[1]
        draw.text(
            (right + 5 * s, y - h / 2 - 2 * s), label, fill=(80, 80, 80), font=small
        )
    for i, (_, xs, ys) in enumerate(series):
        m = min(len(xs), len(ys))
        xs, ys = xs[:m], ys[:m]
        ok = np.isfinite(xs) & np.isfinite(ys)
        pxs, pys = px(xs, ys)
        xy = zip(pxs.tolist(), pys.tolist(), strict=True)
        pts = [p if good else None for p, good in zip(xy, ok.tolist(), strict=True)]
        _polyline(draw, pts, COLOURS[i % 10], int(1.5 * s), dashed=i >= 10)
    draw.rectangle([left, top, right, bottom], outline="black", width=s)

    if title:
        w, _ = _text_size(draw, title, normal)
        draw.multiline_text(
            ((left + right) / 2 - w / 2, 6 * s),
            title,
            fill="black",
            font=normal,
            align="center",
        )
    w, _ = _text_size(draw, xlabel, normal)
    draw.text(
        ((left + right) / 2 - w / 2, bottom + 22 * s), xlabel, fill="black", font=normal
    )
    w, h = _text_size(draw, ylabel, normal)
    label = Image.new("RGB", (w + 4 * s, h + 8 * s), "white")
    ImageDraw.Draw(label).text((2 * s, 0), ylabel, fill="black", font=normal)
    label = label.rotate(90, expand=True)
    img.paste(label, (4 * s, int((top + bottom) / 2 - label.height / 2)))
    lx = width - legend_w + 4 * s
    for i, (name, _, _) in enumerate(series):
        ly = top + 4 * s + i * 15 * s
        _polyline(
            draw,
            [(lx, ly + 7 * s), (lx + 18 * s, ly + 7 * s)],
            COLOURS[i % 10],
            int(1.5 * s),
            dashed=i >= 10,
        )
        draw.text((lx + 22 * s, ly), name, fill="black", font=small)

    out = img.resize((width // s, height // s), Image.LANCZOS)
    tmp = path + ".tmp.png"
    out.save(tmp, compress_level=1)
    os.replace(tmp, path)
