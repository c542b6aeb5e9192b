"""Keras CIFAR-10 nets: HDF5 import, Keras semantics vs NumPy, real weights."""

import os

import jax
import numpy as np
import pytest

from fooljax import models
from fooljax.errors import WeightsError
from fooljax.models import keras_cifar as kc

h5py = pytest.importorskip("h5py")


def _write_keras_h5(path, params):
    """A whole-model-style Keras HDF5 (model_weights/<layer>/<layer>/<w>:0)."""
    with h5py.File(path, "w") as f:
        g = f.create_group("model_weights")
        layers = list(params["params"])
        g.attrs["layer_names"] = [n.encode() for n in layers + ["flatten_1"]]
        g.create_group("flatten_1").attrs["weight_names"] = []
        for layer, leaves in params["params"].items():
            lg = g.create_group(layer)
            names = []
            for w, v in leaves.items():
                name = f"{layer}/{w}:0"
                lg.create_dataset(name, data=np.asarray(v))
                names.append(name.encode())
            lg.attrs["weight_names"] = names


def _random_params(spec, seed=0):
    """NumPy draws (eager jax.random per leaf would compile per shape)."""
    rng = np.random.RandomState(seed)
    params = jax.eval_shape(lambda: models.init_params(spec, seed))

    def draw(path, x):
        v = 0.2 * rng.standard_normal(x.shape).astype(np.float32)
        return np.abs(v) + 0.5 if "moving_variance" in str(path) else v

    return jax.tree_util.tree_map_with_path(draw, params)


@pytest.mark.parametrize("name", ["cifar_lenet", "cifar_resnet32", "cifar_resnet8"])
def test_h5_round_trip(tmp_path, name):
    spec = models.get_spec(name)
    params = _random_params(spec)
    path = str(tmp_path / "w.h5")
    _write_keras_h5(path, params)
    # keras_h5_to_params only needs the template's shapes; the full
    # load_params path (content sniffing, shape check) is exercised for lenet
    template = jax.eval_shape(lambda: models.init_params(spec))
    if name == "cifar_lenet":
        loaded = models.load_params(spec, path)
    else:
        loaded = kc.keras_h5_to_params(path, template)
    for a, b in zip(
        jax.tree_util.tree_leaves(params),
        jax.tree_util.tree_leaves(loaded),
        strict=True,
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_h5_wrong_model_and_bad_file(tmp_path):
    path = str(tmp_path / "lenet.h5")
    _write_keras_h5(path, _random_params(models.get_spec("cifar_lenet")))
    template = jax.eval_shape(
        lambda: models.init_params(models.get_spec("cifar_resnet8"))
    )
    with pytest.raises(WeightsError, match="do not fit"):
        kc.keras_h5_to_params(path, template)
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not an hdf5 file")
    with pytest.raises(WeightsError, match="not an HDF5"):
        kc.keras_h5_to_params(str(junk), template)


def _np_conv_valid(x, k, b):
    kh, kw = k.shape[:2]
    ho, wo = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    out = np.zeros((x.shape[0], ho, wo, k.shape[3]))
    for i in range(kh):
        for j in range(kw):
            out += np.einsum("nhwc,cd->nhwd", x[:, i : i + ho, j : j + wo], k[i, j])
    return out + b


def _np_lenet(p, images):
    """Independent float64 forward of the Keras LeNet (Hyperparticle)."""
    x = images.astype(np.float64) * 255.0
    x = (x - np.asarray(kc.HYPERPARTICLE_MEAN)) / np.asarray(kc.HYPERPARTICLE_STD)
    for c in ("conv2d_1", "conv2d_2"):
        x = np.maximum(_np_conv_valid(x, p[c]["kernel"], p[c]["bias"]), 0)
        n, h, w, ch = x.shape
        x = x.reshape(n, h // 2, 2, w // 2, 2, ch).max(axis=(2, 4))
    x = x.reshape(len(x), -1)
    for d in ("dense_1", "dense_2"):
        x = np.maximum(x @ p[d]["kernel"] + p[d]["bias"], 0)
    return x @ p["dense_3"]["kernel"] + p["dense_3"]["bias"]


def test_lenet_matches_numpy_reference():
    spec = models.get_spec("cifar_lenet")
    params = _random_params(spec, 3)
    p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params["params"])
    images = np.random.RandomState(0).rand(3, 32, 32, 3).astype(np.float32)
    got = np.asarray(spec.build().apply(params, images))
    np.testing.assert_allclose(got, _np_lenet(p, images), rtol=1e-3, atol=1e-3)


def test_same_padding_stride2_is_tf_rule():
    # TF/Keras 'same', stride 2, even input: all padding after (bottom/right)
    x = np.random.RandomState(1).rand(1, 6, 6, 2).astype(np.float32)
    k = np.random.RandomState(2).rand(3, 3, 2, 1).astype(np.float32)
    conv = kc._conv(1, 3, 2, "c")
    got = np.asarray(conv.apply({"params": {"kernel": k, "bias": np.zeros(1)}}, x))
    padded = np.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))
    ref = _np_conv_valid(padded, k, 0)[:, ::2, ::2]
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_batchnorm_inference_formula():
    bn = kc.KerasBatchNorm()
    v = {
        "gamma": np.asarray([2.0]),
        "beta": np.asarray([1.0]),
        "moving_mean": np.asarray([3.0]),
        "moving_variance": np.asarray([4.0]),
    }
    x = np.asarray([[5.0]])
    got = float(bn.apply({"params": v}, x)[0, 0])
    assert got == pytest.approx(2.0 * (5 - 3) / np.sqrt(4 + 1e-3) + 1.0, rel=1e-6)


# Published / MANIFEST results on the exact first 20 CIFAR-10 test PNGs.
REAL = [
    ("cifar_lenet", "cifar10-keras-one-pixel/lenet.h5", 17),
    ("cifar_resnet32", "cifar10-keras-one-pixel/resnet.h5", 20),
    ("cifar_resnet8", "cifar10-resnet8-mlperf-tiny/pretrainedResnet.h5", 19),
]


@pytest.mark.parametrize("name, rel, correct", REAL)
def test_real_weights_on_exact_pngs(data_root, name, rel, correct):
    from fooljax.data import load_dataset
    from fooljax.train.evaluate import predict_logits

    clf = models.load_classifier(name, os.path.join(data_root, rel))
    x, y = load_dataset(
        "cifar10_files", data_dir=os.path.join(data_root, "foolbox-samples")
    )
    pred = predict_logits(clf.logits_fn, clf.params, x).argmax(-1)
    assert int((pred == y).sum()) == correct
    if name == "cifar_lenet":  # independent NumPy forward straight from the h5
        w = kc.read_keras_h5(os.path.join(data_root, rel))
        ref = _np_lenet(w, x.astype(np.float32) / 255.0)
        got = np.asarray(clf.logits_fn(clf.params, x.astype(np.float32) / 255.0))
        np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-3)
