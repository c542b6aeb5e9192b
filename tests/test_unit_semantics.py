"""Units versus random directions (Szegedy et al. 2014, Sec. 3): the one-pass
top-k search against a NumPy argsort, the captured layer against a hand-written
forward pass, and the run end to end on a few MNIST test images."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fooljax import models
from fooljax.errors import FooljaxError
from fooljax.models.preprocess import make_preprocess
from fooljax.models.registry import get_spec, init_params
from fooljax.runs import unit_semantics as us
from tests.cli_harness import one_line_problems, run_in_subprocess
from tests.compile_count import count_compiles


def _linear_features(params, images):
    return images.reshape(images.shape[0], -1) @ params


def test_search_equals_numpy_argsort_with_padding_and_compiles_once():
    rng = np.random.default_rng(0)
    x = rng.random((23, 3, 3, 1), np.float32)
    w = jnp.asarray(rng.normal(size=(9, 5)), jnp.float32)
    v = us.random_directions(jax.random.key(1), 5, 3)
    np.testing.assert_allclose(np.linalg.norm(v, axis=0), 1.0, rtol=1e-5)
    got = us.search(_linear_features, w, x, v, k=4, batch_size=10)  # 3 batches
    feats = x.reshape(23, -1) @ np.asarray(w)
    for name, proj in (("unit", feats), ("dir", feats @ np.asarray(v))):
        ref = np.argsort(-proj, axis=0, kind="stable")[:4]
        np.testing.assert_array_equal(got[f"{name}_indices"], ref)
        np.testing.assert_allclose(
            got[f"{name}_values"], np.take_along_axis(proj, ref, 0), rtol=1e-5
        )
    np.testing.assert_allclose(got["std"], feats.std(0), rtol=1e-4, atol=1e-5)
    with count_compiles() as c:
        us.search(_linear_features, w, x[::-1].copy(), v, k=4, batch_size=10)
    assert c.count == 0
    with pytest.raises(FooljaxError, match="top_k"):
        us.search(_linear_features, w, x, v, k=30, batch_size=10)


def test_merge_top_k_under_jit_and_vmap():
    vals = jnp.array([[3.0, 1.0], [2.0, 0.0]])
    idx = jnp.array([[7, 8], [9, 6]])
    new = jnp.array([[2.5, 5.0], [4.0, -1.0], [0.0, 0.5]])
    v, i = jax.jit(us.merge_top_k, static_argnums=4)(
        vals, idx, new, jnp.array([10, 11, 12]), 2
    )
    np.testing.assert_array_equal(v, [[4.0, 5.0], [3.0, 1.0]])
    np.testing.assert_array_equal(i, [[11, 10], [7, 8]])
    batched = jax.vmap(us.merge_top_k, in_axes=(0, 0, 0, None, None))(
        jnp.stack([vals, vals]),
        jnp.stack([idx, idx]),
        jnp.stack([new, -new]),
        jnp.array([10, 11, 12]),
        2,
    )
    np.testing.assert_array_equal(batched[0][0], v)
    np.testing.assert_array_equal(batched[0][1], [[3.0, 1.0], [2.0, 1.0]])


def test_features_are_the_named_layer():
    clf = models.load_classifier("fc100_100_10", "init")
    spec = get_spec("fc100_100_10")
    x = np.random.default_rng(0).random((4, 28, 28, 1), np.float32)
    fn = us.make_features_fn(spec.build(), make_preprocess("identity"), "fc1")
    p = clf.params["params"]["fc1"]
    ref = np.maximum(x.reshape(4, -1) @ p["kernel"] + p["bias"], 0.0)
    np.testing.assert_allclose(jax.jit(fn)(clf.params, x), ref, rtol=1e-4, atol=1e-5)
    lenet = get_spec("lenet")
    shapes = us.layer_shapes(lenet.build(), init_params(lenet), lenet.input_shape)
    assert shapes == {
        "conv1": (24, 24, 20),
        "conv2": (8, 8, 50),
        "ip1": (500,),
        "ip2": (10,),
    }
    pooled = us.make_features_fn(
        lenet.build(), make_preprocess("identity"), "conv2", spatial="mean"
    )
    lp = init_params(lenet)
    assert pooled(lp, x).shape == (4, 50)


def test_run_on_mnist(tmp_path, data_root):
    cfg = us.UnitSemanticsConfig(
        model="lenet",
        weights="default",
        layer="ip1",
        num_units=3,
        num_directions=2,
        top_k=4,
        num_images=300,
        batch_size=128,
        data_dir=os.path.join(data_root, "mnist"),
    )
    s = us.run(cfg, str(tmp_path / "w"))
    assert [r["kind"] for r in s["rows"]] == ["unit"] * 3 + ["random"] * 2
    assert s["dim"] == 500 and s["num_images"] == 300
    for f in (us.UNIT_GRID, us.RANDOM_GRID):
        assert os.path.getsize(tmp_path / "w" / f) > 1000
    # the reported activations are the layer's, recomputed image by image
    x, y = us._load_images(cfg, (28, 28, 1))
    clf = models.load_classifier("lenet", "default")
    fn = us.make_features_fn(get_spec("lenet").build(), lambda a: a, "ip1")
    feats = np.asarray(fn(clf.params, x))
    for r in s["rows"][:3]:
        col = feats[:, r["index"]]
        assert r["top_indices"] == list(np.argsort(-col, kind="stable")[:4])
        np.testing.assert_allclose(r["activations"], col[r["top_indices"]], rtol=1e-4)
        assert r["labels"] == [int(y[i]) for i in r["top_indices"]]
    assert 0 < s["coherence"]["random_images"] < s["coherence"]["unit"] <= 1
    all_ = s["coherence_all"]
    assert all_["num_units"] <= 500 and all_["num_directions"] == 200
    assert s["coherence"]["random_images"] < all_["random"] <= 1
    on_disk = json.load(open(tmp_path / "w" / "summary.json"))
    assert on_disk["coherence"] == s["coherence"]


def test_cli_bad_input_is_one_line(tmp_path):
    cases = [
        (["--model=lenet", "--weights=default", "--layer=fc9"], "no layer 'fc9'.*ip1"),
        (["--model=lenet", "--weights=default", "--top_k=0"], "top_k"),
        (["--model=nope", "--layer=ip1"], "nope"),
    ]
    argvs = [[*a, f"--workdir={tmp_path / f'w{i}'}"] for i, (a, _) in enumerate(cases)]
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    results = run_in_subprocess(
        "experiments.unit_semantics", "m.unit_semantics.main", argvs, tmp_path, env
    )
    problems = one_line_problems(cases, results, tmp_path)
    assert not problems, "\n".join(problems)
