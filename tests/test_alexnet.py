"""AlexNet/CaffeNet port: parity with an independent PyTorch CaffeNet.

The PyTorch side is written from the deploy prototxt alone (torch's own
grouped ``Conv2d``, ``max_pool2d(ceil_mode=True)``, ``local_response_norm``,
C,H,W flatten, and NumPy preprocessing), gets random weights, and is exported
in Caffe's blob layout to a synthetic ``.caffemodel`` that the Flax model loads
through the real importer (``fooljax.io.caffe``).
"""

import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fooljax import models
from fooljax.errors import FooljaxError, WeightsError
from fooljax.io import caffe
from fooljax.models import alexnet
from tests import protobuf_writer as pw

LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")


def _torch():
    return pytest.importorskip("torch")


def _torch_caffenet(seed: int = 0):
    """Random-weight PyTorch CaffeNet; ``net.lrn_before_pool`` picks BVLC AlexNet's order."""
    torch = _torch()
    nn, F = torch.nn, torch.nn.functional

    class TorchCaffeNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.lrn_before_pool = False
            self.conv1 = nn.Conv2d(3, 96, 11, stride=4)
            self.conv2 = nn.Conv2d(96, 256, 5, padding=2, groups=2)
            self.conv3 = nn.Conv2d(256, 384, 3, padding=1)
            self.conv4 = nn.Conv2d(384, 384, 3, padding=1, groups=2)
            self.conv5 = nn.Conv2d(384, 256, 3, padding=1, groups=2)
            self.fc6 = nn.Linear(256 * 6 * 6, 4096)
            self.fc7 = nn.Linear(4096, 4096)
            self.fc8 = nn.Linear(4096, 1000)

        def _pool_norm(self, x):
            def pool(t):
                return F.max_pool2d(t, 3, 2, ceil_mode=True)

            def norm(t):
                return F.local_response_norm(t, 5, alpha=1e-4, beta=0.75, k=1.0)

            return pool(norm(x)) if self.lrn_before_pool else norm(pool(x))

        def forward(self, x):  # NCHW, BGR, mean-subtracted, 227x227
            x = self._pool_norm(F.relu(self.conv1(x)))
            x = self._pool_norm(F.relu(self.conv2(x)))
            x = F.relu(self.conv3(x))
            x = F.relu(self.conv4(x))
            x = F.max_pool2d(F.relu(self.conv5(x)), 3, 2, ceil_mode=True)
            x = torch.flatten(x, 1)  # Caffe's C, H, W order
            x = F.relu(self.fc6(x))
            x = F.relu(self.fc7(x))
            return self.fc8(x)

    torch.manual_seed(seed)
    net = TorchCaffeNet().double().eval()
    with torch.no_grad():  # He-scaled weights, so activations look like a real net's
        for name in LAYERS:
            layer = getattr(net, name)
            fan_in = layer.weight[0].numel()
            layer.weight.normal_(0.0, (2.0 / fan_in) ** 0.5)
            layer.bias.normal_(0.0, 0.1)
        net.fc8.weight.mul_(0.05)  # logits of a few units, not hundreds
        for name in LAYERS:  # round to float32: the caffemodel stores float32
            layer = getattr(net, name)
            layer.weight.copy_(layer.weight.float().double())
            layer.bias.copy_(layer.bias.float().double())
    return net


def _write_caffemodel(path, net, *, v2: bool):
    out = pw.field_len(1, b"CaffeNet")
    for name in LAYERS:
        layer = getattr(net, name)
        w = layer.weight.detach().numpy().astype(np.float32)  # Caffe layout already
        b = layer.bias.detach().numpy().astype(np.float32)
        if v2:
            t = "Convolution" if w.ndim == 4 else "InnerProduct"
            out += pw.layer_v2(name, t, [w, b])
        else:
            out += pw.layer_v1(name, 4 if w.ndim == 4 else 14, [w, b])
    with open(path, "wb") as f:
        f.write(out)


def _softmax64(z):
    z = np.asarray(z, np.float64)
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def _rel_err(p, ref):
    return float(np.max(np.abs(p - ref) / ref))


@pytest.fixture(scope="module")
def torch_net_file(tmp_path_factory):
    """One random PyTorch CaffeNet, its V1 .caffemodel and a per-pixel mean beside it."""
    net = _torch_caffenet()
    d = tmp_path_factory.mktemp("caffenet")
    path = str(d / "net.caffemodel")
    _write_caffemodel(path, net, v2=False)
    rng = np.random.default_rng(1)
    mean = np.stack([np.full((256, 256), m) for m in alexnet.CAFFE_BGR_MEAN])
    mean = mean + rng.normal(0, 8, mean.shape)  # a mean image that varies per pixel
    np.save(d / "ilsvrc_2012_mean.npy", mean)  # found next to the weights
    return net, path, mean


@pytest.mark.parametrize("name", ["alexnet", "bvlc_alexnet"])
def test_parity_with_independent_torch_caffenet(torch_net_file, name):
    """Acceptance: same probabilities as PyTorch, relative error <= 1e-4."""
    torch = _torch()
    net, path, mean = torch_net_file
    net.lrn_before_pool = name == "bvlc_alexnet"
    clf = models.load_classifier(name, path)
    assert np.allclose(clf.params["params"]["mean"], mean.transpose(1, 2, 0), atol=1e-4)
    rng = np.random.default_rng(2)

    # Smooth random images with noise, RGB in [0, 1], 256x256 (the paper's input).
    base = rng.random((2, 8, 8, 3))
    img = (
        np.kron(base, np.ones((1, 32, 32, 1))) * 0.7
        + rng.random((2, 256, 256, 3)) * 0.3
    )
    img = img.astype(np.float32)
    # Torch side: independent NumPy preprocessing (BGR, x255, mean, centre crop).
    bgr = img[..., ::-1].astype(np.float64) * 255.0 - mean.transpose(1, 2, 0)
    crop = bgr[:, 14:241, 14:241].transpose(0, 3, 1, 2)
    with torch.no_grad():
        ref_logits = net(torch.from_numpy(np.ascontiguousarray(crop))).numpy()
    ref = _softmax64(ref_logits)
    assert ref.max() > 0.01 and ref_logits.std() > 1.0  # not a degenerate test

    f = jax.jit(clf.logits_fn)
    p256 = _softmax64(f(clf.params, jnp.asarray(img)))
    p227 = _softmax64(f(clf.params, jnp.asarray(img[:, 14:241, 14:241])))
    print(f"{name}: max relative error of probabilities {_rel_err(p256, ref):.2e} (256 in)"
          f", {_rel_err(p227, ref):.2e} (227 in); max p {ref.max():.3f}")  # fmt: skip
    assert _rel_err(p256, ref) <= 1e-4, _rel_err(p256, ref)
    assert _rel_err(p227, ref) <= 1e-4, _rel_err(p227, ref)
    np.testing.assert_array_equal(p256.argmax(-1), ref.argmax(-1))


@pytest.mark.parametrize("channels", [96, 7, 3])
def test_lrn_parity_with_torch(channels):
    torch = _torch()
    rng = np.random.default_rng(channels)
    x = rng.normal(0, 120, (2, channels, 9, 11))  # Caffe-scale activations
    ref = torch.nn.functional.local_response_norm(
        torch.from_numpy(x), 5, alpha=1e-4, beta=0.75, k=1.0
    ).numpy()
    ours = alexnet.lrn_across_channels(
        jnp.asarray(x.transpose(0, 2, 3, 1), jnp.float32)
    )
    ours = np.asarray(ours, np.float64).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(ours, ref, rtol=2e-6, atol=1e-4)
    assert np.median(np.abs(ref / x)) < 0.9  # the normalisation really acts


def test_lrn_matches_caffe_formula_by_hand():
    x = np.arange(1.0, 8.0)[None, None, None, :] * 50  # 7 channels
    ours = np.asarray(alexnet.lrn_across_channels(jnp.asarray(x, jnp.float32)))[0, 0, 0]
    for c in range(7):
        s = sum(x[0, 0, 0, j] ** 2 for j in range(max(0, c - 2), min(7, c + 3)))
        want = x[0, 0, 0, c] / (1 + 1e-4 / 5 * s) ** 0.75
        assert abs(ours[c] - want) <= 1e-5 * abs(want)


def test_grouped_conv_parity_with_torch_through_importer():
    torch = _torch()
    rng = np.random.default_rng(3)
    w = rng.normal(size=(8, 3, 3, 3)).astype(np.float32)  # Caffe (O, I/g, kh, kw), g=2
    b = rng.normal(size=8).astype(np.float32)
    conv = nn.Conv(8, (3, 3), padding=[(1, 1), (1, 1)], feature_group_count=2)
    template = {
        "params": {"c": conv.init(jax.random.key(0), jnp.zeros((1, 5, 5, 6)))["params"]}
    }
    layers = {"c": caffe.CaffeLayer("c", "Convolution", [w, b])}
    params = caffe.caffe_to_flax(layers, template)["params"]["c"]
    x = rng.normal(size=(2, 6, 7, 9))
    ours = conv.apply(
        {"params": params}, jnp.asarray(x.transpose(0, 2, 3, 1), jnp.float32)
    )
    ref = torch.nn.functional.conv2d(
        torch.from_numpy(x), torch.from_numpy(w.astype(np.float64)),
        torch.from_numpy(b.astype(np.float64)), padding=1, groups=2,
    ).numpy()  # fmt: skip
    np.testing.assert_allclose(
        np.asarray(ours).transpose(0, 3, 1, 2), ref, rtol=1e-5, atol=1e-5
    )
    # Groups really are separate: output group 0 ignores input channels 3..5.
    x2 = x.copy()
    x2[:, 3:] = 0
    ours2 = conv.apply(
        {"params": params}, jnp.asarray(x2.transpose(0, 2, 3, 1), jnp.float32)
    )
    np.testing.assert_allclose(
        np.asarray(ours2)[..., :4], np.asarray(ours)[..., :4], atol=1e-5
    )


@pytest.mark.parametrize("size, pad", [(13, 0), (14, 0), (55, 0), (8, 1), (9, 1)])
def test_ceil_mode_pool_parity_with_torch(size, pad):
    torch = _torch()
    x = np.random.default_rng(size).normal(size=(1, 4, size, size + 1))
    ref = torch.nn.functional.max_pool2d(
        torch.from_numpy(x), 3, 2, padding=pad, ceil_mode=True
    ).numpy()
    ours = alexnet.caffe_max_pool(jnp.asarray(x.transpose(0, 2, 3, 1)), 3, 2, pad)
    np.testing.assert_allclose(np.asarray(ours).transpose(0, 3, 1, 2), ref, rtol=1e-6)
    assert alexnet.caffe_pool_out(size, 3, 2, pad) == ref.shape[2]


def test_caffe_pool_sizes_of_caffenet():
    assert alexnet.caffe_pool_out(55, 3, 2) == 27
    assert alexnet.caffe_pool_out(27, 3, 2) == 13
    assert alexnet.caffe_pool_out(13, 3, 2) == 6
    assert alexnet.caffe_pool_out(14, 3, 2) == 7  # ceil (floor would give 6)


@pytest.fixture(scope="module")
def init_clf():
    return models.load_classifier("alexnet", "init")


def test_bad_inputs(tmp_path, init_clf):
    with pytest.raises(WeightsError, match="does not exist"):
        models.load_classifier("alexnet", str(tmp_path / "nope.caffemodel"))
    junk = tmp_path / "junk.caffemodel"
    junk.write_bytes(b"\x00\x01hello world" * 10)
    with pytest.raises(WeightsError):
        models.load_classifier("alexnet", str(junk))
    # A LeNet caffemodel is a weights file for another architecture.
    lenet = tmp_path / "lenet.caffemodel"
    lenet.write_bytes(
        pw.lenet_caffemodel(pw.lenet_caffe_layers(np.random.default_rng(0)), v2=True)
    )
    with pytest.raises(WeightsError, match="conv1"):
        models.load_classifier("alexnet", str(lenet))
    clf = init_clf
    with pytest.raises(FooljaxError, match="RGB|3-channel"):
        clf.logits_fn(clf.params, jnp.zeros((1, 227, 227, 1)))


def test_truncated_caffemodel_and_bad_mean(tmp_path, torch_net_file):
    data = open(torch_net_file[1], "rb").read()
    template = jax.eval_shape(
        lambda r: nn.Module.init(alexnet.AlexNet(), r, jnp.zeros((1, 227, 227, 3))),
        jax.random.key(0),
    )
    for frac in (0.02, 0.6):
        cut = tmp_path / f"cut{frac}" / "net.caffemodel"
        cut.parent.mkdir()
        cut.write_bytes(data[: int(len(data) * frac)])
        with pytest.raises(WeightsError, match="caffemodel"):
            if frac == 0.6:  # the user's path once; the loader itself for the rest
                models.load_classifier("alexnet", str(cut))
            else:
                alexnet.alexnet_load_file(str(cut), template)
    d = tmp_path / "badmean"
    d.mkdir()
    os.symlink(torch_net_file[1], d / "net.caffemodel")
    np.save(d / "ilsvrc_2012_mean.npy", np.zeros((3, 28, 28)))
    with pytest.raises(WeightsError, match="mean image"):
        models.load_classifier("alexnet", str(d / "net.caffemodel"))


def test_real_mean_file_and_hen_image(data_root, init_clf):
    """The shared ILSVRC mean loads as BGR; hen_256.png runs end to end (random net)."""
    from PIL import Image

    d = os.path.join(data_root, "caffenet-imagenet-fooling")
    mean = alexnet.load_mean_file(os.path.join(d, "ilsvrc_2012_mean.npy"))
    assert mean.shape == (256, 256, 3)
    np.testing.assert_allclose(
        mean.mean(axis=(0, 1)), alexnet.CAFFE_BGR_MEAN, atol=0.01
    )
    img = np.asarray(Image.open(os.path.join(d, "hen_256.png")).convert("RGB"))
    clf = init_clf
    out = clf.logits_fn(clf.params, jnp.asarray(img[None], jnp.float32) / 255.0)
    assert out.shape == (1, 1000) and np.all(np.isfinite(out))
