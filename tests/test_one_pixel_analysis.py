"""LSA, k-pixel FGSM and the one-pixel analyses (Su et al. 2019): toy models
with a known answer, a hand-counted heat map, bad input."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fooljax.attacks import local_search as ls
from fooljax.attacks.one_pixel import probs_from_logits
from fooljax.errors import FooljaxError, InputError
from fooljax.runs import one_pixel_analysis as opa
from tests.cli_harness import run_in_subprocess
from tests.compile_count import count_compiles

PIXEL = 19  # row 2, column 3 of an 8 x 8 image


def one_pixel_logits(params, x):
    """Class 1 wins once pixel PIXEL drops below 0.25: only it matters."""
    del params
    x = x.reshape(x.shape[0], -1)
    l1 = -20.0 * x[:, PIXEL] + 5.0
    return jnp.stack([jnp.zeros_like(l1), l1], -1)


def toy_images(b=2):
    img = np.full((b, 8, 8, 1), 0.7, np.float32)
    img[:, 2, 3, 0] = 0.3
    return img


def test_lsa_finds_the_pixel_and_stays_in_the_box():
    cfg = ls.LocalSearchConfig(seed_fraction=1.0, max_rounds=5)
    probs_fn = probs_from_logits(one_pixel_logits)
    x = toy_images()
    res = ls.local_search_batch(
        jax.random.key(0), probs_fn, None, x, np.zeros(2, np.int32), config=cfg
    )
    assert np.asarray(res.success).all()
    assert np.asarray(res.rounds).tolist() == [1, 1]
    adv = np.asarray(res.adversarial_image)
    # CYCLIC: 1.5 * (0.3 - 0.5) + 0.5 = 0.2, the pixel the probes singled out
    np.testing.assert_allclose(adv[:, 2, 3, 0], 0.2, atol=1e-6)
    assert ((adv >= 0) & (adv <= 1)).all()
    # t = 5 pixels changed in the one round; 64 probes + 2 checks
    assert ((np.abs(adv - x) > 1e-6).sum((1, 2, 3)) == 5).all()
    assert np.asarray(res.queries).tolist() == [66, 66]
    # a second call with the same shapes compiles nothing
    with count_compiles() as c:
        ls.local_search_batch(
            jax.random.key(1), probs_fn, None, x, np.zeros(2, np.int32), config=cfg
        )
    assert c.count == 0


def test_lsa_unit_is_vmappable_and_gives_up_after_max_rounds():
    # a model that never changes its mind: every round runs, no success
    def constant(params, x):
        return jnp.tile(jnp.array([[3.0, 0.0]]), (x.shape[0], 1))

    cfg = ls.LocalSearchConfig(max_rounds=3, half_side=1, pixels_per_round=2)
    keys = jax.random.split(jax.random.key(0), 2)
    res = jax.jit(
        jax.vmap(
            lambda k, x, y: ls.local_search(
                k, probs_from_logits(constant), None, x, y, cfg
            )
        )
    )(keys, jnp.asarray(toy_images()), jnp.zeros(2, jnp.int32))
    assert not np.asarray(res.success).any()
    assert np.asarray(res.rounds).tolist() == [3, 3]


def test_cyclic_wraps_into_the_box():
    v = jnp.linspace(-0.5, 0.5, 101)
    out = np.asarray(ls._cyclic(v, 1.5))
    assert (out >= ls.LB - 1e-7).all() and (out <= ls.UB + 1e-7).all()
    np.testing.assert_allclose(out[v < -1 / 3], 1.5 * np.asarray(v)[v < -1 / 3] + 1.0)


def linear_logits(params, x):
    return x.reshape(x.shape[0], -1) @ params


@pytest.mark.parametrize("k", [1, 3, 5])
def test_sparse_fgsm_changes_exactly_k_top_gradient_pixels(k):
    rng = np.random.default_rng(0)
    w = rng.normal(size=(8 * 8 * 3, 4)).astype(np.float32)
    x = rng.uniform(0.3, 0.7, size=(2, 8, 8, 3)).astype(np.float32)
    y = np.array([1, 2], np.int32)
    adv = np.asarray(ls.sparse_fgsm(linear_logits, w, x, y, num_pixels=k, epsilon=0.1))
    changed = (np.abs(adv - x) > 1e-7).any(-1).reshape(2, -1)
    assert (changed.sum(1) == k).all()
    # NumPy reference: dCE/dx = W (softmax - onehot), per pixel |g| summed
    z = x.reshape(2, -1) @ w
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(2), y] -= 1
    g = (p @ w.T).reshape(2, 8, 8, 3)
    top = np.argsort(-np.abs(g).sum(-1).reshape(2, -1), 1)[:, :k]
    for i in range(2):
        assert set(np.nonzero(changed[i])[0]) == set(top[i])
    np.testing.assert_allclose(
        adv, np.where(changed.reshape(2, 8, 8, 1), x + 0.1 * np.sign(g), x), atol=1e-6
    )


def test_sparse_fgsm_step_jit_vmap_over_epsilon():
    rng = np.random.default_rng(1)
    g = jnp.asarray(rng.normal(size=(1, 4, 4, 3)), jnp.float32)
    x = jnp.asarray(rng.uniform(0.2, 0.8, size=(1, 4, 4, 3)), jnp.float32)
    f = jax.jit(
        jax.vmap(
            lambda e: ls.sparse_fgsm_step(
                g, x, num_pixels=2, epsilon=e, selection="gain"
            )
        )
    )
    out = np.asarray(f(jnp.array([0.0, 0.1, 1.0])))
    np.testing.assert_array_equal(out[0], np.asarray(x))
    assert (np.abs(out[1] - np.asarray(x)) > 1e-7).any(-1).sum() == 2
    assert out.min() >= 0 and out.max() <= 1


def test_sparse_fgsm_bad_input():
    x = toy_images(1)
    with pytest.raises(InputError, match="num_pixels"):
        ls.sparse_fgsm(one_pixel_logits, None, x, [0], num_pixels=65)
    with pytest.raises(InputError, match="selection"):
        ls.sparse_fgsm(one_pixel_logits, None, x, [0], num_pixels=1, selection="x")
    with pytest.raises(InputError, match="pixels_per_round"):
        ls.local_search_batch(
            jax.random.key(0),
            probs_from_logits(one_pixel_logits),
            None,
            x,
            [0],
            config=ls.LocalSearchConfig(pixels_per_round=7, seed_fraction=0.1),
        )


def write_run(path, rows, *, targeted=True, model="cifar_lenet"):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "summary.json"), "w") as f:
        json.dump({"model": model, "targeted": targeted, "pixels": 1}, f)
    with open(os.path.join(path, "results.jsonl"), "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)


def targeted_rows():
    """Two class-0 images and one class-3 image, every other class each."""
    succ = {(10, 1), (10, 2), (11, 1), (12, 0), (12, 1), (12, 2), (12, 9)}
    rows = []
    for idx, label in ((10, 0), (11, 0), (12, 3)):
        for t in range(10):
            if t != label:
                rows.append(
                    {
                        "dataset_index": idx,
                        "label": label,
                        "target": t,
                        "success": (idx, t) in succ,
                        "queries": 5,
                    }
                )
    return rows


def test_heatmap_and_histogram_match_a_hand_count(tmp_path):
    write_run(tmp_path / "t", targeted_rows())
    s = opa.analyse(
        opa.OnePixelAnalysisConfig(sources=str(tmp_path / "t")), str(tmp_path / "out")
    )
    r = s["sources"][str(tmp_path / "t")]
    m = r["success_matrix"]
    assert m[0][1] == 1.0 and m[0][2] == 0.5 and m[0][3] == 0.0 and m[0][0] is None
    assert m[3][0] == 1.0 and m[3][9] == 1.0 and m[3][4] == 0.0
    assert m[1] == [None] * 10  # no class-1 images
    assert r["attempts"][0][5] == 2 and r["attempts"][3][0] == 1
    # images 10, 11, 12 reach 2, 1, 4 classes
    assert r["classes_per_image_histogram"] == [0, 1, 1, 0, 1, 0, 0, 0, 0, 0]
    assert r["classes_per_image_mean"] == pytest.approx(7 / 3)
    assert r["class_names"][0] == "airplane"
    for png in ("heatmap.png", "classes_per_image.png"):
        assert os.path.getsize(tmp_path / "out" / png) > 1000


def test_bad_sources_are_one_line_errors(tmp_path):
    write_run(tmp_path / "empty", [])
    rows = [dict(r, target=None) for r in targeted_rows()[:3]]
    write_run(tmp_path / "untargeted", rows, targeted=False)
    cases = {
        "empty": "is empty",
        "untargeted": "non-targeted run",
        "missing": "not a directory",
    }
    for name, msg in cases.items():
        with pytest.raises(FooljaxError, match=msg):
            opa.read_results(str(tmp_path / name), targeted=True)
    with pytest.raises(FooljaxError, match="targeted run"):
        write_run(tmp_path / "tg", targeted_rows())
        opa.read_results(str(tmp_path / "tg"), targeted=False)
    with pytest.raises(FooljaxError, match="fgsm_pixels"):
        opa.OnePixelCompareConfig(sources="x", fgsm_pixels="1,a").validate()
    with pytest.raises(FooljaxError, match="unknown field"):
        opa.OnePixelCompareConfig(sources="x", lsa_overrides="m:foo=1").validate()
    ok = opa.OnePixelCompareConfig(sources="x", lsa_overrides="m:half_side=2")
    assert ok.lsa_config("m").half_side == 2 and ok.lsa_config("n").half_side == 5


def test_cli_bad_sources_exit_with_one_line(tmp_path):
    write_run(tmp_path / "empty", [])
    rows = [dict(r, target=None) for r in targeted_rows()[:3]]
    write_run(tmp_path / "untargeted", rows, targeted=False)
    argvs = [
        [f"--sources={tmp_path}/empty", f"--workdir={tmp_path}/w0"],
        [f"--sources={tmp_path}/untargeted", f"--workdir={tmp_path}/w1"],
    ]
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    res = run_in_subprocess(
        "experiments.one_pixel_analysis",
        "m.one_pixel_analysis.analysis_main",
        argvs,
        tmp_path,
        env,
    )
    for i, (r, want) in enumerate(zip(res, ("is empty", "non-targeted"), strict=True)):
        errors = [ln for ln in r["stderr"].splitlines() if ln.startswith("error")]
        assert r["code"] != 0 and not r["traceback"], r
        assert len(errors) == 1 and want in errors[0], r["stderr"]
        assert not os.path.exists(tmp_path / f"w{i}")


def test_perturbation_stats_by_hand():
    x = np.zeros((2, 4, 4, 3), np.float32)
    adv = x.copy()
    adv[0, 1, 1] = [0.3, 0.4, 0.0]  # one pixel, L2 0.5, L-inf 0.4
    adv[1, 0, 0, 0] = 1.0  # not fooled below: excluded from the means
    probs = np.array([[0.1, 0.9], [0.8, 0.2]])
    s = opa.perturbation_stats(x, adv, np.array([0, 0]), probs)
    assert s["success_rate"] == 0.5 and s["mean_l0"] == 1.0 and s["max_l0"] == 1
    assert s["mean_l2"] == pytest.approx(0.5) and s["mean_linf"] == pytest.approx(0.4)
    assert s["mean_confidence"] == pytest.approx(0.9)
