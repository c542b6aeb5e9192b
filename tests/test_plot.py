"""io.plot.line_chart: PIL line charts of the MAP-Elites curves."""

import os

import numpy as np
import pytest
from PIL import Image

from fooljax.io import plot


def _pixels(path):
    return np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3)


def _has_colour(px, rgb, tol=40):
    return bool(np.any(np.abs(px.astype(int) - rgb).max(-1) < tol))


def test_nice_ticks():
    assert plot.nice_ticks(0, 1) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert plot.nice_ticks(1, 1000) == [200, 400, 600, 800, 1000]
    t = plot.nice_ticks(-0.35, 7.6)
    assert t[0] >= -0.35 and t[-1] <= 7.6 and 4 <= len(t) <= 9
    assert plot.nice_ticks(3, 3) == [3]


def test_chart_draws_each_series_in_its_colour_and_the_guides(tmp_path):
    path = str(tmp_path / "nines.png")
    g = np.arange(1, 201)
    plot.line_chart(
        path,
        {"a": (g, np.log1p(g)), "b": (g, np.sqrt(g) / 3)},
        xlabel="generation",
        ylabel="nines",
        title="two\nlines",
        guides={"p = 0.99": 2.0},
    )
    assert os.listdir(tmp_path) == ["nines.png"]  # no temporary left
    img = Image.open(path)
    assert img.width > 600 and img.height == 380  # plot + legend + guide label
    px = _pixels(path)
    assert _has_colour(px, plot.COLOURS[0]) and _has_colour(px, plot.COLOURS[1])
    assert not _has_colour(px, plot.COLOURS[2], tol=12)  # only two series


def test_gaps_constant_series_and_many_dashed_lines(tmp_path):
    g = np.arange(10.0)
    y = np.where(g == 4, np.nan, 0.5)  # a gap; y constant otherwise
    plot.line_chart(str(tmp_path / "a.png"), {"c": (g, y)}, xlabel="x", ylabel="y")
    plot.line_chart(
        str(tmp_path / "b.png"), {"c": ([1.0], [np.inf])}, xlabel="x", ylabel="y"
    )  # nothing finite: an empty frame, no error
    lines = {f"k{k}": (g, g * k) for k in range(12)}
    plot.line_chart(str(tmp_path / "c.png"), lines, xlabel="x", ylabel="y")
    full = _pixels(tmp_path / "c.png")
    assert _has_colour(full, plot.COLOURS[1])


def test_save_curves_needs_no_matplotlib(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys; from fooljax.io import images; "
        f"images.save_curves({str(tmp_path / 'c.png')!r}, [1, 2, 3], "
        "{'min': [0.1, 0.5, 0.9]}, xlabel='g', ylabel='p'); "
        "assert 'matplotlib' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert (tmp_path / "c.png").stat().st_size > 0


@pytest.mark.parametrize("bad", [{}, {"a": ([], [])}])
def test_empty_input_still_writes_a_frame(tmp_path, bad):
    plot.line_chart(str(tmp_path / "e.png"), bad, xlabel="x", ylabel="y")
    assert Image.open(tmp_path / "e.png").width > 0
