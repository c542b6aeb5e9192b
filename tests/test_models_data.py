import gzip
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fooljax import data, models
from fooljax.errors import DataNotFoundError, FooljaxError, WeightsError
from fooljax.models.lenet import max_pool_2x2


def test_registry_and_unknown_model():
    assert "lenet" in models.model_names()
    with pytest.raises(FooljaxError, match="unknown model 'nope'"):
        models.get_spec("nope")


def test_load_pretrained_needs_no_data(monkeypatch):
    monkeypatch.delenv("FOOLJAX_DATA", raising=False)
    model, params = models.load_pretrained("lenet_mnist")
    logits = model.apply(params, jnp.zeros((2, 28, 28, 1)))
    assert logits.shape == (2, 10) and bool(jnp.all(jnp.isfinite(logits)))
    meta = models.pretrained_metadata("lenet_mnist")
    assert meta["accuracy"] >= 0.99 and meta["config"]["seed"] == 0


def test_max_pool_reshape_equals_flax_max_pool():
    x = jax.random.normal(jax.random.key(0), (3, 8, 6, 4))
    np.testing.assert_array_equal(
        max_pool_2x2(x), nn.max_pool(x, (2, 2), strides=(2, 2))
    )


def test_params_npz_roundtrip_and_shape_check(tmp_path):
    spec = models.get_spec("lenet")
    params = models.init_params(spec, seed=3)
    path = str(tmp_path / "p.npz")
    models.save_params_npz(path, params, {"note": "x"})
    back = models.load_params(spec, path)
    for a, b in zip(
        jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(back), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    flat = models.flatten_params(params)
    flat["params/ip2/kernel"] = np.zeros((500, 7), np.float32)
    np.savez(path, **flat)
    with pytest.raises(WeightsError, match="ip2/kernel"):
        models.load_params(spec, path)


def _write_idx(path, arr, gz=True):
    arr = np.asarray(arr, np.uint8)
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in arr.shape
    )
    opener = gzip.open if gz else open
    with opener(path, "wb") as f:
        f.write(header + arr.tobytes())


def test_idx_loader_synthetic(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (7, 28, 28))
    labels = rng.integers(0, 10, 7)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", imgs)
    _write_idx(tmp_path / "t10k-labels.idx1-ubyte", labels, gz=False)
    x, y = data.load_mnist("test", str(tmp_path))
    assert x.shape == (7, 28, 28, 1) and x.dtype == np.uint8
    np.testing.assert_array_equal(x[..., 0], imgs)
    np.testing.assert_array_equal(y, labels)


def test_idx_truncated_is_clear_error(tmp_path):
    imgs = np.zeros((5, 28, 28), np.uint8)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", imgs, gz=False)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(5), gz=False)
    p = tmp_path / "t10k-images-idx3-ubyte"
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(FooljaxError, match="truncated or corrupt"):
        data.load_mnist("test", str(tmp_path))


def test_missing_data_lists_paths(tmp_path, monkeypatch):
    monkeypatch.delenv("FOOLJAX_DATA", raising=False)
    with pytest.raises(DataNotFoundError, match="FOOLJAX_DATA unset"):
        data.load_mnist("test")
    with pytest.raises(DataNotFoundError, match=str(tmp_path)):
        data.load_mnist("test", str(tmp_path))
    with pytest.raises(FooljaxError, match="unknown dataset"):
        data.load_dataset("imagenet22k")


def test_real_mnist_shapes_and_counts(mnist_test):
    x, y = mnist_test
    assert x.shape == (10000, 28, 28, 1)
    np.testing.assert_array_equal(
        np.bincount(y), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    )


def test_embedded_default_accuracy(mnist_test):
    from fooljax.train import evaluate_classifier

    clf = models.load_classifier("lenet", "default")
    acc = evaluate_classifier(clf.logits_fn, clf.params, *mnist_test)["accuracy"]
    assert acc >= 0.99


def test_fooljax_data_env_is_used(data_root, monkeypatch):
    monkeypatch.setenv("FOOLJAX_DATA", data_root)
    x, _ = data.load_mnist("test")
    assert len(x) == 10000
    assert os.path.isdir(os.path.join(data_root, "mnist"))
