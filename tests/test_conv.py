"""fooljax.models.conv: the row (Toeplitz) convolution equals XLA's."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fooljax.models import conv


def _lax(x, k, padding):
    return jax.lax.conv_general_dilated(
        x, k, (1, 1), padding, dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


@pytest.mark.parametrize(
    "hw, kernel, cin, cout, group, padding",
    [
        ((32, 32), (5, 5), 3, 6, 4, "VALID"),  # cifar_lenet's first layer
        ((28, 28), (5, 5), 1, 20, 4, "VALID"),  # MNIST LeNet's
        ((9, 11), (3, 2), 2, 5, 3, "VALID"),  # groups do not divide the width
        ((8, 7), (3, 3), 3, 4, 4, "SAME"),
        ((6, 6), (4, 4), 3, 2, 1, "SAME"),  # even kernel: XLA puts more after
    ],
)
def test_row_conv_equals_xla_conv(hw, kernel, cin, cout, group, padding):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(3, *hw, cin)).astype(np.float32))
    k = jnp.asarray(rng.normal(size=(*kernel, cin, cout)).astype(np.float32))
    ref = np.asarray(_lax(x, k, padding))
    out = np.asarray(
        jax.jit(conv.row_conv, static_argnums=(2, 3))(x, k, group, padding)
    )
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-4)


def test_conv_module_has_nn_conv_parameters_and_forms_agree():
    x = jax.random.uniform(jax.random.key(0), (2, 12, 12, 3))
    ours = conv.Conv(5, (3, 3), padding="SAME")
    params = ours.init(jax.random.key(1), x)
    ref_params = nn.Conv(5, (3, 3), padding="SAME").init(jax.random.key(1), x)
    shapes = jax.tree_util.tree_map(jnp.shape, params)
    assert shapes == jax.tree_util.tree_map(jnp.shape, ref_params)
    ref = nn.Conv(5, (3, 3), padding="SAME").apply(params, x)
    for impl in ("auto", "lax", "row"):
        y = conv.Conv(5, (3, 3), padding="SAME", impl=impl).apply(params, x)
        np.testing.assert_allclose(np.asarray(y), np.asarray(ref), atol=1e-5)
    with pytest.raises(ValueError, match="impl"):
        conv.Conv(5, (3, 3), impl="fft").init(jax.random.key(1), x)
    with pytest.raises(ValueError, match="padding"):
        conv.row_conv(x, params["params"]["kernel"], 2, "CIRCULAR")


def test_rule_picks_row_form_for_few_channels_on_cpu_only():
    assert conv.use_row_conv(3, "cpu") and conv.use_row_conv(1, "cpu")
    assert not conv.use_row_conv(16, "cpu")
    assert not conv.use_row_conv(3, "gpu") and not conv.use_row_conv(3, "tpu")
