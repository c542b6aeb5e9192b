"""MobileNets from TFLite: building blocks, dequantization, real-data accuracy."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fooljax import models
from fooljax.errors import FooljaxError, WeightsError
from fooljax.io import tflite as tfl
from fooljax.models import mobilenet

TFLITE_DIR = "imagenet-mobilenet-tflite-coral"
V2_FILES = ["mobilenet_v2_1.0_224_quant.tflite", "tf2_mobilenet_v2_1.0_224_ptq.tflite"]
V1_FILE = "mobilenet_v1_0.25_128_quant.tflite"


def _np_depthwise_tf_same(x, w, stride):
    """Independent NumPy reference: TF 'SAME' depthwise conv (x NHWC, w [kh,kw,C])."""
    b, h, wd, c = x.shape
    kh, kw, _ = w.shape
    oh, ow = -(-h // stride), -(-wd // stride)
    ph = max((oh - 1) * stride + kh - h, 0)
    pw = max((ow - 1) * stride + kw - wd, 0)
    top, left = ph // 2, pw // 2  # TF puts the extra pixel after
    out = np.zeros((b, oh, ow, c))
    for i in range(oh):
        for j in range(ow):
            for di in range(kh):
                for dj in range(kw):
                    y, z = i * stride + di - top, j * stride + dj - left
                    if 0 <= y < h and 0 <= z < wd:
                        out[:, i, j, :] += x[:, y, z, :] * w[di, dj, :]
    return out


@pytest.mark.parametrize("size, stride", [(8, 1), (8, 2), (7, 2), (9, 1)])
def test_depthwise_matches_numpy_tf_same_and_lax(size, stride):
    rng = np.random.default_rng(size * 10 + stride)
    x = rng.normal(size=(2, size, size + 1, 5)).astype(np.float32)
    w = rng.normal(size=(3, 3, 1, 5)).astype(np.float32)
    ours = np.asarray(
        mobilenet.depthwise_conv3x3(jnp.asarray(x), jnp.asarray(w), stride)
    )
    ref = _np_depthwise_tf_same(
        x.astype(np.float64), w[:, :, 0].astype(np.float64), stride
    )
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)
    lax_out = jax.lax.conv_general_dilated(
        x,
        w,
        (stride, stride),
        "SAME",
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=5,
    )
    np.testing.assert_allclose(ours, np.asarray(lax_out), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "shape, out", [((2, 256, 256, 3), (224, 224)), ((1, 341, 512, 3), (224, 224)),
                   ((1, 100, 128, 3), (224, 224)), ((1, 227, 227, 3), (256, 256))],
)  # fmt: skip
def test_fast_resize_equals_jax_image_resize(shape, out):
    x = jnp.asarray(np.random.default_rng(0).random(shape, dtype=np.float32))
    ours = jax.jit(lambda x: mobilenet.resize_bilinear(x, *out))(x)
    ref = jax.image.resize(x, (shape[0], *out, 3), "bilinear", antialias=True)
    np.testing.assert_allclose(np.asarray(ours), np.asarray(ref), atol=1e-5)


def test_dequantize_per_tensor_and_per_channel():
    q = np.array([[0, 128, 255], [10, 20, 30]], np.uint8)
    t = tfl.TFLiteTensor(
        "w",
        q.shape,
        np.dtype(np.uint8),
        q,
        np.array([0.5], np.float32),
        np.array([128]),
    )
    np.testing.assert_allclose(t.dequantize(), 0.5 * (q.astype(float) - 128))
    qi = np.array([[-3, 4, 5], [7, -8, 9]], np.int8)
    t = tfl.TFLiteTensor(
        "w",
        qi.shape,
        np.dtype(np.int8),
        qi,
        np.array([0.1, 2.0, 3.0], np.float32),
        np.array([0, 1, -1]),
        quantized_dimension=1,
    )
    want = np.array([0.1, 2.0, 3.0]) * (qi.astype(float) - np.array([0, 1, -1]))
    np.testing.assert_allclose(t.dequantize(), want, rtol=1e-6)
    t.quantized_dimension = 0
    with pytest.raises(WeightsError, match="per-channel"):
        t.dequantize()


def test_random_init_forward_any_size_and_bad_shapes():
    clf = models.load_classifier("mobilenet_v1_025", "init")
    f = jax.jit(clf.logits_fn)
    out = f(clf.params, jnp.zeros((2, 128, 128, 3)))
    assert out.shape == (2, 1000)
    out2 = f(clf.params, jnp.full((1, 200, 150, 3), 0.5))  # resized inside
    assert out2.shape == (1, 1000) and np.all(np.isfinite(out2))
    with pytest.raises(FooljaxError, match="RGB|3-channel"):
        clf.logits_fn(clf.params, jnp.zeros((1, 128, 128, 1)))
    with pytest.raises(FooljaxError, match="RGB"):
        clf.logits_fn(clf.params, jnp.zeros((128, 128, 3)))
    with pytest.raises(FooljaxError, match="too small"):
        clf.logits_fn(clf.params, jnp.zeros((1, 4, 4, 3)))


def test_bad_weight_files(tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        models.load_classifier("mobilenet_v2", str(tmp_path / "nope.tflite"))
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\x00\x01hello world, not a flatbuffer" * 10)
    with pytest.raises(WeightsError, match="TFL3"):
        models.load_classifier("mobilenet_v2", str(junk))


@pytest.fixture(scope="module")
def tflite_dir(data_root):
    pytest.importorskip("tflite", reason="reading .tflite needs the 'tflite' package")
    return os.path.join(data_root, TFLITE_DIR)


@pytest.mark.parametrize("cut", [12, 2000, 1_500_000])
def test_truncated_tflite_is_one_clear_error(tmp_path, tflite_dir, cut):
    data = open(os.path.join(tflite_dir, V2_FILES[0]), "rb").read()
    p = tmp_path / "cut.tflite"
    p.write_bytes(data[:cut])
    with pytest.raises(WeightsError, match="TFLite|corrupt|holds"):
        models.load_classifier("mobilenet_v2", str(p))


def test_wrong_architecture_files(tflite_dir, tmp_path):
    with pytest.raises(WeightsError, match="another architecture"):
        models.load_classifier("mobilenet_v2", os.path.join(tflite_dir, V1_FILE))
    with pytest.raises(WeightsError, match="another architecture"):
        models.load_classifier(
            "mobilenet_v1_025", os.path.join(tflite_dir, V2_FILES[0])
        )
    # A Caffe model is not a TFLite model.
    from tests import protobuf_writer as pw

    w = pw.lenet_caffe_layers(np.random.default_rng(0))
    p = tmp_path / "lenet.caffemodel"
    p.write_bytes(pw.lenet_caffemodel(w, v2=True))
    with pytest.raises(WeightsError, match="not a TFLite"):
        models.load_classifier("mobilenet_v2", str(p))


@pytest.fixture(scope="module")
def samples(data_root):
    from fooljax.data import load_dataset

    return load_dataset(
        "imagenet_files", data_dir=os.path.join(data_root, "foolbox-samples")
    )


_APPLY = jax.jit(mobilenet.MobileNetV2().apply)


def _interpreter_top1(path, images):
    """TFLite interpreter top-1 sets (ties of the uint8 softmax count as all)."""
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    it = litert.Interpreter(model_path=path, num_threads=1)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    tops = []
    for img in images:
        size = inp["shape"][1]
        x = img if img.shape[0] == size else _resize_uint8(img, size)
        it.set_tensor(inp["index"], x[None])
        it.invoke()
        p = it.get_tensor(out["index"])[0]
        tops.append({int(k) - 1 for k in np.flatnonzero(p == p.max())})
    return tops


def _resize_uint8(img, size):
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR))


@pytest.mark.parametrize("fname", V2_FILES)
def test_mobilenet_v2_top1_on_foolbox_samples(tflite_dir, samples, fname):
    """Acceptance: >= 18/20 top-1, and the same top-1 as the TFLite interpreter."""
    images, labels = samples
    path = os.path.join(tflite_dir, fname)
    params = models.load_params(models.get_spec("mobilenet_v2"), path)
    logits = np.asarray(_APPLY(params, jnp.asarray(images, jnp.float32) / 255.0))
    pred = logits.argmax(-1)
    assert logits.shape == (20, 1000)
    assert int((pred == labels).sum()) >= 18
    tops = _interpreter_top1(path, images)
    agree = [int(p) in t for p, t in zip(pred, tops, strict=True)]
    assert all(agree), f"top-1 differs from the interpreter on {agree.count(False)}"


@pytest.mark.parametrize(
    "photo, name",
    [
        ("grace_hopper.bmp", "military_uniform"),
        ("cat.bmp", "Egyptian_cat"),
        ("parrot.jpg", "macaw"),
    ],
)
def test_mobilenet_v2_photos(data_root, tflite_dir, photo, name):
    from fooljax.data.imagenet import imagenet_class_names, load_image_rgb

    names = imagenet_class_names(data_root)
    params = models.load_params(
        models.get_spec("mobilenet_v2"), os.path.join(tflite_dir, V2_FILES[0])
    )
    img = load_image_rgb(os.path.join(tflite_dir, photo), size=224)
    logits = _APPLY(params, jnp.asarray(img[None], jnp.float32) / 255.0)
    assert names[int(np.argmax(logits))] == name


def test_mobilenet_v1_matches_interpreter(tflite_dir, samples):
    images, labels = samples
    path = os.path.join(tflite_dir, V1_FILE)
    clf = models.load_classifier("mobilenet_v1_025", path)
    small = np.stack([_resize_uint8(im, 128) for im in images])
    pred = np.asarray(
        clf.logits_fn(clf.params, jnp.asarray(small, jnp.float32) / 255)
    ).argmax(-1)
    tops = _interpreter_top1(path, small)
    agree = sum(int(p) in t for p, t in zip(pred, tops, strict=True))
    assert agree >= 18, agree  # a tiny uint8 model: quantization may flip a close call
    assert abs(int((pred == labels).sum()) - 7) <= 1  # the interpreter gets 7/20
