import jax.numpy as jnp
import numpy as np
import pytest

from fooljax import models
from fooljax.errors import WeightsError
from fooljax.io import caffe
from tests import numpy_lenet
from tests import protobuf_writer as pw


def _write(tmp_path, name, data: bytes):
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


@pytest.mark.parametrize("v2", [False, True])
def test_synthetic_caffemodel_matches_numpy_forward(tmp_path, v2):
    rng = np.random.default_rng(0)
    w = pw.lenet_caffe_layers(rng)
    path = _write(tmp_path, "net.caffemodel", pw.lenet_caffemodel(w, v2=v2))
    clf = models.load_classifier("lenet", path, preprocess="identity")
    x = rng.random((3, 28, 28, 1)).astype(np.float32)
    ours = np.asarray(clf.logits_fn(clf.params, jnp.asarray(x)))
    ref = numpy_lenet.lenet_forward(x.transpose(0, 3, 1, 2).astype(np.float64), w)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-3)


def test_unpacked_float_data_is_read(tmp_path):
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    path = _write(tmp_path, "m.binaryproto", pw.blob(arr[None], packed=False))
    mean = caffe.load_binaryproto(path)
    assert mean.shape == (2, 3, 1)  # (C=1, H=2, W=3) -> H, W, C
    np.testing.assert_array_equal(mean[..., 0], arr)


@pytest.mark.parametrize("cut", [10, 1000, 60000])
def test_truncated_caffemodel_is_one_clear_error(tmp_path, cut):
    w = pw.lenet_caffe_layers(np.random.default_rng(1))
    data = pw.lenet_caffemodel(w, v2=False)
    path = _write(tmp_path, "cut.caffemodel", data[:cut])
    with pytest.raises(WeightsError, match="caffemodel"):
        models.load_classifier("lenet", path)


def test_garbage_and_wrong_architecture(tmp_path):
    path = _write(tmp_path, "junk.bin", b"\x00\x01hello world" * 10)
    with pytest.raises(WeightsError):
        models.load_classifier("lenet", path)
    rng = np.random.default_rng(2)
    w = pw.lenet_caffe_layers(rng)
    w["ip1"] = (rng.normal(size=(300, 800)), rng.normal(size=300))
    path = _write(tmp_path, "other.caffemodel", pw.lenet_caffemodel(w, v2=True))
    with pytest.raises(WeightsError, match="ip1"):
        models.load_classifier("lenet", path)
    w = {k: v for k, v in pw.lenet_caffe_layers(rng).items() if k != "conv2"}
    path = _write(tmp_path, "missing.caffemodel", pw.lenet_caffemodel(w, v2=True))
    with pytest.raises(WeightsError, match="conv2"):
        models.load_classifier("lenet", path)


def test_missing_file(tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        models.load_classifier("lenet", str(tmp_path / "nope.caffemodel"))


def _caffe_layout_weights(path):
    layers = caffe.load_caffemodel(path)
    return {
        name: (
            layers[name]
            .blobs[0]
            .reshape(
                layers[name].blobs[0].shape[-4:]
                if name.startswith("conv")
                else layers[name].blobs[0].shape[-2:]
            )
            .astype(np.float64),
            layers[name].blobs[1].reshape(-1).astype(np.float64),
        )
        for name in ("conv1", "conv2", "ip1", "ip2")
    }


def test_paper_lenet_matches_independent_numpy_forward(mnist_test, caffe_lenet_path):
    """Acceptance: Flax LeNet + Caffe weights == NumPy forward, |d logits| <= 1e-4."""
    images, _ = mnist_test
    x = images[:64].astype(np.float32) / 255.0
    clf = models.load_classifier("lenet", caffe_lenet_path, preprocess="unit")
    ours = np.asarray(clf.logits_fn(clf.params, jnp.asarray(x)), np.float64)
    w = _caffe_layout_weights(caffe_lenet_path)
    net_in = images[:64].astype(np.float64).transpose(0, 3, 1, 2) / 256.0
    ref = numpy_lenet.lenet_forward(net_in, w)
    assert np.max(np.abs(ours - ref)) <= 1e-4


@pytest.mark.parametrize(
    "preprocess, expected", [("unit", 0.9918), ("caffe_deploy", 0.9739)]
)
def test_paper_lenet_published_accuracy(
    mnist_test, caffe_lenet_path, caffe_mean_path, preprocess, expected
):
    from fooljax.train import evaluate_classifier

    images, labels = mnist_test
    mean = caffe.load_binaryproto(caffe_mean_path)
    assert mean.shape == (28, 28, 1) and abs(float(mean.mean()) - 33.3) < 0.05
    clf = models.load_classifier(
        "lenet", caffe_lenet_path, preprocess=preprocess, mean=mean
    )
    acc = evaluate_classifier(clf.logits_fn, clf.params, images, labels)["accuracy"]
    assert abs(acc - expected) <= 0.0005


def test_random_garbage_is_one_weights_error_naming_the_file(tmp_path):
    """Fuzz: garbage that parses as protobuf fields must still fail as a
    WeightsError naming the file (never a NumPy error or a huge allocation)."""
    path = tmp_path / "garbage.binaryproto"
    rng = np.random.default_rng(1)
    for _ in range(500):
        path.write_bytes(rng.bytes(int(rng.integers(1, 300))))
        for load in (caffe.load_binaryproto, caffe.load_caffemodel):
            with pytest.raises(WeightsError, match="garbage.binaryproto"):
                load(str(path))
