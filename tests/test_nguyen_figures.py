"""Nguyen et al. analysis figures: the pure masking code against NumPy, under
jit/vmap without recompiling, and the three figures end to end on synthetic
artifacts in temporary work directories (the embedded LeNet scores them)."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fooljax.errors import FooljaxError
from fooljax.io.workdir import write_summary
from fooljax.runs import nguyen_figures as nf
from fooljax.runs.common import save_artifact
from tests.cli_harness import one_line_problems, run_in_subprocess
from tests.compile_count import count_compiles


def test_tile_scores_match_numpy_any_size():
    rng = np.random.default_rng(0)
    s = rng.random((10, 7)).astype(np.float32)  # 10 and 7 not multiples of 3
    got = np.asarray(nf.tile_scores(jnp.asarray(s), 3))
    rows, cols = np.arange(10) * 3 // 10, np.arange(7) * 3 // 7
    want = np.zeros(9)
    for i in range(10):
        for j in range(7):
            want[rows[i] * 3 + cols[j]] += s[i, j]
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_keep_tiles_mask_keeps_the_top_k_tiles():
    scores = jnp.asarray([0.1, 5.0, 0.3, 2.0])  # grid 2: tiles 1 and 3 best
    m = np.asarray(nf.keep_tiles_mask(scores, (4, 6), 2, 2))[..., 0]
    want = np.zeros((4, 6))
    want[:2, 3:] = 1  # tile 1: top right
    want[2:, 3:] = 1  # tile 3: bottom right
    np.testing.assert_array_equal(m, want)


def test_center_mask_and_ablate():
    m = np.asarray(nf.center_mask((8, 8), 0.5))[..., 0]
    assert m.sum() == 16 and m[2:6, 2:6].all()
    x = jnp.asarray(np.random.default_rng(1).random((8, 8, 3)), jnp.float32)
    mean = np.asarray(x).mean((0, 1))
    out = np.asarray(nf.ablate(x, jnp.asarray(m[..., None]), "mean"))
    np.testing.assert_allclose(out[3, 3], np.asarray(x)[3, 3])
    np.testing.assert_allclose(out[0, 0], mean, rtol=1e-6)
    grey = np.asarray(jax.jit(nf.ablate, static_argnums=2)(x, m[..., None], "grey"))
    np.testing.assert_allclose(grey[0, 0], 0.5)


def test_ablate_batch_is_vmapped_and_does_not_recompile():
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.random((3, 8, 8, 1)), jnp.float32)
    sal = np.zeros((3, 8, 8), np.float32)
    sal[:, 4:, :4] = 1.0  # bottom-left tile of a 2x2 grid is the salient one
    kw = dict(grid=2, keep_tiles=2, center_fraction=0.5, fill="grey")
    out = np.asarray(nf.ablate_batch(x, jnp.asarray(sal), **kw))
    assert out.shape == (3, 3, 8, 8, 1)
    np.testing.assert_array_equal(out[0, :, 4:, :4], np.asarray(x)[:, 4:, :4])
    np.testing.assert_allclose(out[0, :, :4], 0.5)  # keep_top1: the rest is grey
    for i in range(3):  # the vmapped batch equals each image alone
        one = nf.ablate_batch(x[i : i + 1], jnp.asarray(sal[i : i + 1]), **kw)
        np.testing.assert_allclose(out[:, i], np.asarray(one)[:, 0])
    x2, sal2 = x * 0.5, jnp.asarray(sal[::-1])
    with count_compiles() as c:
        nf.ablate_batch(x2, sal2, **kw)
    assert c.count == 0


def _fooling_run(path, images, labels, conf, summary):
    os.makedirs(path)
    save_artifact(
        str(path),
        images,
        labels,
        conf,
        kind="fooling",
        model="lenet",
        weights="default",
    )
    write_summary(str(path), summary)
    return str(path)


@pytest.fixture(scope="module")
def cppn_run(tmp_path_factory):
    """A fake MNIST CPPN run: blocky images for 3 classes, scored by LeNet."""
    from fooljax.runs.common import load_classifier

    rng = np.random.default_rng(3)
    blocks = rng.random((3, 4, 4, 1)).astype(np.float32)
    images = np.repeat(np.repeat(blocks, 7, 1), 7, 2)  # a repeated motif
    labels = np.asarray([1, 3, 7])
    clf = load_classifier("lenet", "default")
    p = np.asarray(jax.nn.softmax(clf.logits_fn(clf.params, images)))
    conf = p[np.arange(3), labels]
    path = tmp_path_factory.mktemp("runs") / "cppn"
    summary = {"confidence": [0.5] * 10, "class_names": [str(i) for i in range(10)]}
    return _fooling_run(path, images, labels, conf, summary), conf


def _summary(workdir):
    with open(os.path.join(workdir, "summary.json")) as f:
        return json.load(f)


def test_ascent_vs_cppn_end_to_end(tmp_path, cppn_run):
    src, conf = cppn_run
    cfg = nf.NguyenFiguresConfig(cppn=src, classes=(3, 7), ascent_steps=5)
    wd = str(tmp_path / "a")
    nf.run(cfg, wd)
    s = _summary(wd)
    assert s["classes"] == [3, 7]
    np.testing.assert_allclose(s["cppn_confidence"], conf[1:], rtol=1e-6)
    assert min(s["ascent_confidence"]) > 0.5  # 5 steps of ascent on LeNet
    assert os.path.getsize(os.path.join(wd, "ascent_vs_cppn.png")) > 0
    # the ascent images it made are an artifact another figure can read
    again = nf.NguyenFiguresConfig(cppn=src, classes=(7,), ascent=wd)
    s2 = nf.run(again, str(tmp_path / "b"))
    assert s2["ascent_confidence"] == pytest.approx(s["ascent_confidence"][1:])
    with pytest.raises(FooljaxError, match="not in the CPPN run"):
        nf.run(nf.NguyenFiguresConfig(cppn=src, classes=(2,)), str(tmp_path / "c"))
    assert not os.path.exists(tmp_path / "c")  # refused before writing


def test_repetition_table(tmp_path, cppn_run):
    src, conf = cppn_run
    cfg = nf.NguyenFiguresConfig(figure="repetition", cppn=src, grid=2, keep_tiles=2)
    s = nf.run(cfg, str(tmp_path / "r"))
    assert [r["class"] for r in s["table"]] == [1, 3, 7]
    np.testing.assert_allclose([r["original"] for r in s["table"]], conf, rtol=1e-5)
    assert s["ablations"] == ["keep_top1", "keep_top2", "center"]
    for r in s["table"]:
        assert all(0 <= r[k] <= 1 for k in s["ablations"])
    assert s["mean_drop"]["keep_top1"] == pytest.approx(
        np.mean([r["original"] - r["keep_top1"] for r in s["table"]])
    )
    for f in ("repetition_bars.png", "repetition_examples.png"):
        assert os.path.getsize(tmp_path / "r" / f) > 0


def test_per_class_categories(tmp_path):
    conf = np.full(1000, 0.9)
    conf[151:286] = 0.1  # dogs and cats
    names = [f"c{i}" for i in range(1000)]
    src = _fooling_run(
        tmp_path / "cppn",
        np.zeros((1, 4, 4, 3)),
        [0],
        [0.9],
        {"confidence": [conf.tolist(), conf.tolist()], "class_names": names},
    )
    s = nf.run(
        nf.NguyenFiguresConfig(figure="per_class", cppn=src), str(tmp_path / "p")
    )
    r = s["runs"]["cppn"]
    assert r["mean_dogs_cats"] == pytest.approx(0.1)
    assert r["mean_other"] == pytest.approx(0.9)
    assert r["median_confidence"] == pytest.approx(0.9)
    assert r["paper_median_confidence"] == 0.8811
    assert r["sorted_confidence"][0] == 0.9 and r["sorted_confidence"][-1] == 0.1
    for f in ("per_class_sorted.png", "per_category.png"):
        assert os.path.getsize(tmp_path / "p" / f) > 0


def test_bad_command_lines_are_one_line(tmp_path, cppn_run):
    src, _ = cppn_run
    cases = [
        (["--figure=repetition"], r"needs --cppn"),
        ([f"--cppn={tmp_path}/none"], r"does not exist"),
        ([f"--cppn={src}", "--classes=9"], r"not in the CPPN run"),
        ([f"--cppn={src}", "--figure=per_class"], r"1000 ImageNet classes"),
        ([f"--cppn={src}", "--keep_tiles=16"], r"keep_tiles"),
    ]
    argvs = [a + [f"--workdir={tmp_path}/w{i}"] for i, (a, _) in enumerate(cases)]
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    results = run_in_subprocess(
        "experiments.nguyen_figures", "m.nguyen_figures.main", argvs, tmp_path, env
    )
    problems = one_line_problems(cases, results, tmp_path)
    assert not problems, "\n".join(problems)


def test_gradient_ascent_run_climbs_only_the_classes_named(tmp_path):
    from fooljax.runs import gradient

    cfg = gradient.GradientAscentConfig(num_steps=3, classes=(7, 2))
    s = gradient.run_gradient_ascent(cfg, str(tmp_path / "ga"))
    assert s["classes"] == [7, 2] and len(s["confidence"]) == 2
    art = nf._fooling_artifact(str(tmp_path / "ga"))
    assert art["labels"].tolist() == [7, 2] and art["images"].shape == (2, 28, 28, 1)
    with pytest.raises(FooljaxError, match="classes must be in 0..9"):
        gradient.run_gradient_ascent(
            gradient.GradientAscentConfig(classes=(10,)), str(tmp_path / "bad")
        )
    assert not os.path.exists(tmp_path / "bad")
