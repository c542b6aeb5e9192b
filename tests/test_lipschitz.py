"""Instability bounds (Szegedy et al. 2014 Table 5): power iteration against a
dense SVD, the fixed bounds, the layer tables, the Caffe LeNet's layer names,
and the CLI's bad input."""

import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fooljax.attacks import lipschitz
from fooljax.models.keras_cifar import KerasBatchNorm
from fooljax.models.registry import get_spec
from fooljax.runs import lipschitz as runs_lipschitz
from tests.cli_harness import one_line_problems, run_in_subprocess
from tests.compile_count import count_compiles

CAFFE_LENET_LAYERS = ["conv1", "pool1", "conv2", "pool2", "ip1", "relu1", "ip2"]


def _dense_norm(apply_fn, params, shape):
    """Largest singular value of the layer's dense Jacobian (numpy SVD)."""
    x0 = jnp.zeros(shape)
    jac = np.asarray(jax.jacfwd(lambda x: apply_fn(params, x))(x0))
    jac = jac.reshape(-1, int(np.prod(shape)))
    return float(np.linalg.svd(jac, compute_uv=False)[0])


LAYERS = {
    "conv3x3": (nn.Conv(3, (3, 3), padding="SAME"), (1, 8, 8, 2)),
    "conv3x3_stride2_groups": (
        nn.Conv(4, (3, 3), strides=(2, 2), padding="VALID", feature_group_count=2),
        (1, 8, 8, 2),
    ),
    "dense": (nn.Dense(7), (1, 12)),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_power_iteration_matches_dense_svd(name):
    module, shape = LAYERS[name]
    params = module.init(jax.random.key(1), jnp.zeros(shape))
    # a bias far from zero: the bound must be the LINEAR part's norm
    params = jax.tree_util.tree_map_with_path(
        lambda p, v: v + 3.0 if p[-1].key == "bias" else v, params
    )
    got = lipschitz.affine_operator_norm(
        module.apply, params, shape, jax.random.key(0), num_iters=500
    )
    want = _dense_norm(module.apply, params, shape)  # the bias drops out of J
    assert abs(float(got.norm) - want) <= 1e-3 * want, (float(got.norm), want)
    assert float(got.rel_change) < 1e-3


def test_operator_norm_jit_vmap_and_matrix():
    a = jax.random.normal(jax.random.key(2), (5, 9))
    want = np.linalg.svd(np.asarray(a), compute_uv=False)[0]

    def f(key):
        return lipschitz.operator_norm(lambda v: a @ v, (9,), key, 300)

    keys = jax.random.split(jax.random.key(3), 3)
    np.testing.assert_allclose(jax.jit(f)(keys[0]), want, rtol=1e-4)
    np.testing.assert_allclose(jax.vmap(f)(keys), [want] * 3, rtol=1e-4)


def test_affine_operator_norm_compiles_once_per_layer_and_shape():
    module, shape = LAYERS["conv3x3"]
    params = module.init(jax.random.key(1), jnp.zeros(shape))
    apply_fn = runs_lipschitz.ModuleApply(module)
    lipschitz.affine_operator_norm(apply_fn, params, shape, jax.random.key(0))
    other = jax.tree_util.tree_map(lambda v: v * 2.0, params)
    # an equal layer elsewhere in a network (another name): the same program
    same = runs_lipschitz.ModuleApply(nn.Conv(3, (3, 3), padding="SAME", name="x"))
    with count_compiles() as c:
        r = lipschitz.affine_operator_norm(apply_fn, other, shape, jax.random.key(5))
        lipschitz.affine_operator_norm(same, params, shape, jax.random.key(6))
    assert c.count == 0, c.names
    assert float(r.norm) > 0


def test_fixed_bounds():
    assert lipschitz.max_pool_bound((2, 2), (2, 2)) == 1.0
    assert lipschitz.max_pool_bound((3, 3), (2, 2)) == 2.0
    # the 3x3/2 bound is reached: the centre of a 5x5 input is the maximum of
    # all four windows, so moving it by d moves four outputs by d
    x = jnp.zeros((1, 5, 5, 1)).at[0, 2, 2, 0].set(1.0)
    dx = jnp.zeros_like(x).at[0, 2, 2, 0].set(0.5)

    def pool(v):
        return nn.max_pool(v, (3, 3), strides=(2, 2))

    ratio = jnp.linalg.norm(pool(x + dx) - pool(x)) / jnp.linalg.norm(dx)
    np.testing.assert_allclose(ratio, 2.0, rtol=1e-6)
    assert lipschitz.lrn_bound(1.0, 0.75) == 1.0
    assert lipschitz.residual_bound(1.0, [2.0, 3.0]) == 7.0


def test_batchnorm_is_bounded_by_its_largest_scale():
    bn = KerasBatchNorm()
    c = 4
    params = {
        "params": {
            "gamma": jnp.array([1.0, -3.0, 0.5, 2.0]),
            "beta": jnp.ones(c),
            "moving_mean": jnp.arange(c, dtype=jnp.float32),
            "moving_variance": jnp.array([1.0, 4.0, 0.25, 1.0]),
        }
    }
    got = lipschitz.diagonal_operator_norm(bn.apply, params, (1, 2, 2, c))
    want = np.max(
        np.abs([1.0, -3.0, 0.5, 2.0]) / np.sqrt(np.array([1, 4, 0.25, 1]) + 1e-3)
    )
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_batchnorm_conv_fused_bound_is_the_composites_norm():
    bn, conv = KerasBatchNorm(), nn.Conv(3, (3, 3), padding="SAME")
    shape = (1, 6, 6, 2)
    p_bn = {
        "params": {
            "gamma": jnp.array([2.0, -0.5]),
            "beta": jnp.ones(2),
            "moving_mean": jnp.zeros(2),
            "moving_variance": jnp.array([0.5, 2.0]),
        }
    }
    p_conv = conv.init(jax.random.key(4), jnp.zeros(shape))
    chain = runs_lipschitz.Chain(
        runs_lipschitz.ModuleApply(bn), runs_lipschitz.ModuleApply(conv)
    )
    got = lipschitz.affine_operator_norm(
        chain, (p_bn, p_conv), shape, jax.random.key(0), num_iters=500
    ).norm
    want = _dense_norm(chain, (p_bn, p_conv), shape)
    np.testing.assert_allclose(got, want, rtol=1e-3)
    separate = lipschitz.diagonal_operator_norm(bn.apply, p_bn, shape) * _dense_norm(
        conv.apply, p_conv, shape
    )
    assert want <= separate * (1 + 1e-6)


@pytest.mark.parametrize("name", sorted(runs_lipschitz.LAYER_TABLES))
def test_layer_table_covers_every_parametrised_layer_once(name):
    spec = get_spec(name)
    model = spec.build()
    x = jnp.zeros((1, *spec.input_shape))
    params = jax.eval_shape(lambda: nn.Module.init(model, jax.random.key(0), x))
    found = runs_lipschitz.capture_submodules(model, params, spec.input_shape)
    table, blocks = runs_lipschitz.LAYER_TABLES[name](model)
    modules = [t.module for t in table if t.module is not None]
    with_params = sorted(n for n in params["params"] if n not in ("mean", "input_norm"))
    assert sorted(modules) == with_params
    assert all(m in found for m in modules)
    names = [t.name for t in table]
    assert len(set(names)) == len(names)
    for b in blocks:
        assert any(t.block == b.name for t in table)


def test_caffe_lenet_layer_names_and_order(caffe_lenet_path):
    clf = runs_lipschitz.load_classifier("lenet", caffe_lenet_path, "unit")
    rows, blocks = runs_lipschitz.layer_bounds(
        "lenet", clf.params, clf.input_shape, key=jax.random.key(0), num_iters=30
    )
    assert [r["name"] for r in rows] == CAFFE_LENET_LAYERS
    assert [r["kind"] for r in rows] == [
        "conv",
        "max_pool",
        "conv",
        "max_pool",
        "dense",
        "relu",
        "dense",
    ]
    assert blocks == []
    assert [r["bound"] for r in rows if r["kind"] in ("max_pool", "relu")] == [1.0] * 3
    assert all(r["bound"] > 1.0 for r in rows if r["kind"] in ("conv", "dense"))
    assert rows[2]["input_shape"] == [12, 12, 20]
    prod = runs_lipschitz.network_product(rows, blocks)
    np.testing.assert_allclose(prod, np.prod([r["bound"] for r in rows]))


def test_cli_bad_input_one_line_nothing_written(tmp_path):
    env = dict(os.environ)
    cases = [
        (["--model=nonet", f"--workdir={tmp_path}/w0"], r"unknown model 'nonet'"),
        (
            ["--model=lenet", f"--weights={tmp_path}/none", f"--workdir={tmp_path}/w1"],
            r"does not exist",
        ),
        (["--model=maxout", f"--workdir={tmp_path}/w2"], r"no layer table"),
    ]
    results = run_in_subprocess(
        "experiments.lipschitz_bounds",
        "m.lipschitz.main",
        [c[0] for c in cases],
        tmp_path,
        env,
    )
    problems = one_line_problems(cases, results, tmp_path)
    assert not problems, "\n".join(problems)
