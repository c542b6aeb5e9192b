"""PyTorch/Keras/ONNX classifiers behind fooljax's ``logits_fn``
(``fooljax.models.foreign``): parity with their Flax twins through logits,
FGSM, MAP-Elites and one-pixel; bad models refused with one line; one
compilation per shape. Each framework's tests skip when it is not installed."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fooljax.attacks import fgsm
from fooljax.attacks import one_pixel as op
from fooljax.evolution import map_elites as me
from fooljax.models import foreign
from fooljax.models.loading import load_classifier
from tests.compile_count import count_compiles

ATOL = 1e-4


def _torch():
    return pytest.importorskip("torch", reason="torch is not installed ([torch] extra)")


def torch_lenet(flax_params):
    _torch()
    return foreign.torch_lenet(flax_params)


@pytest.fixture(scope="module")
def flax_lenet():
    return load_classifier("lenet", "default")


@pytest.fixture(scope="module")
def torch_net(flax_lenet):
    return torch_lenet(flax_lenet.params)


@pytest.fixture(scope="module")
def torch_clf(torch_net):
    return foreign.from_torch(torch_net, (28, 28, 1), 10)


def _images(n, seed=0, shape=(28, 28, 1)):
    # continuous values: no ties inside a max-pool window, where XLA and the
    # other framework may route the gradient to different pixels
    return np.random.default_rng(seed).random((n, *shape), np.float32)


def _logits(clf, x):
    return np.asarray(jax.jit(clf.logits_fn)(clf.params, jnp.asarray(x)))


def test_torch_logits_match_flax_twin_and_compile_once(flax_lenet, torch_clf):
    x = _images(6)
    np.testing.assert_allclose(_logits(torch_clf, x), _logits(flax_lenet, x), atol=ATOL)
    assert torch_clf.input_shape == (28, 28, 1) and torch_clf.num_classes == 10
    f = jax.jit(torch_clf.logits_fn)
    f(torch_clf.params, x).block_until_ready()
    fgsm(torch_clf.logits_fn, {}, x[:2], np.zeros(2, np.int32), epsilon=0.1)
    with count_compiles() as c:  # second calls with the same shapes
        out = f(torch_clf.params, _images(6, seed=1))
        fgsm(torch_clf.logits_fn, {}, x[2:4], np.ones(2, np.int32), epsilon=0.1)
    assert c.count == 0, c.names
    np.testing.assert_allclose(
        np.asarray(out), _logits(flax_lenet, _images(6, seed=1)), atol=ATOL
    )
    # vmapped callers: one callback on the folded batch, same values
    v = jax.vmap(torch_clf.logits_fn, in_axes=(None, 0))({}, x.reshape(3, 2, 28, 28, 1))
    np.testing.assert_allclose(
        np.asarray(v).reshape(6, 10), _logits(flax_lenet, x), atol=ATOL
    )


def test_torch_fgsm_matches_flax_twin(flax_lenet, torch_clf):
    x = _images(4, seed=2)
    y = np.asarray([3, 1, 4, 1], np.int32)
    a = fgsm(flax_lenet.logits_fn, flax_lenet.params, x, y, epsilon=0.1)
    b = fgsm(torch_clf.logits_fn, torch_clf.params, x, y, epsilon=0.1)
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), atol=ATOL)
    assert np.abs(np.asarray(b) - x).max() > 0.09  # it moved
    # the input gradient itself (custom_vjp -> torch.autograd)
    loss = lambda clf: (
        lambda z: jax.nn.log_softmax(clf.logits_fn(clf.params, z))[:, 0].sum()
    )  # noqa: E731
    ga = jax.grad(loss(flax_lenet))(jnp.asarray(x))
    gb = jax.jit(jax.grad(loss(torch_clf)))(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(gb), np.asarray(ga), atol=ATOL)


def torch_conv_dense(params, act: str, scale: float = 1.0, padding: int = 0):
    """PyTorch twin of a Flax ``Conv 3x3 VALID -> act -> flatten (NHWC) ->
    Dense (* scale)`` (tests/tiny.py's TinyNet, test_one_pixel's Tiny)."""
    torch = _torch()
    conv_p, dense_p = (params["params"][k] for k in sorted(params["params"]))
    k = np.asarray(conv_p["kernel"])
    conv = torch.nn.Conv2d(k.shape[2], k.shape[3], k.shape[0], padding=padding)
    dense = torch.nn.Linear(*np.asarray(dense_p["kernel"]).shape)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(k.transpose(3, 2, 0, 1).copy()))
        conv.bias.copy_(torch.from_numpy(np.array(conv_p["bias"])))
        dense.weight.copy_(torch.from_numpy(np.array(dense_p["kernel"]).T.copy()))
        dense.bias.copy_(torch.from_numpy(np.array(dense_p["bias"])))

    class Twin(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.dense = conv, dense

        def forward(self, x):
            h = getattr(torch, act)(self.conv(x)).permute(0, 2, 3, 1).flatten(1)
            return self.dense(h) * scale

    return Twin().eval()


def test_torch_map_elites_archive_matches_flax_twin():
    from tests.tiny import direct_encoding, tiny_classifier

    _, params, logits_fn = tiny_classifier()  # 8x8x1, 4 classes
    twin = foreign.from_torch(torch_conv_dense(params, "tanh", 3.0), (8, 8, 1), 4)
    enc = direct_encoding()
    layout = me.make_layout(8, None, 8)
    archives = []
    for fn, p in ((logits_fn, params), (twin.logits_fn, twin.params)):
        lp = me.log_probs_from(logits_fn=fn)
        init = me.make_init(
            log_probs_fn=lp, encoding=enc, num_classes=4, population=8, layout=layout
        )
        run = me.make_run_chunk(
            log_probs_fn=lp, encoding=enc, population=8, layout=layout
        )
        state, _ = run(init(jax.random.key(0), p), p, 6)
        archives.append(state.archive)
    a, b = archives
    np.testing.assert_allclose(np.asarray(b.fitness), np.asarray(a.fitness), atol=ATOL)
    np.testing.assert_array_equal(np.asarray(b.genomes), np.asarray(a.genomes))
    np.testing.assert_array_equal(np.asarray(b.found_at), np.asarray(a.found_at))
    assert (np.asarray(a.found_at) > 0).any()  # elites replaced after generation 0


def test_torch_one_pixel_matches_flax_twin():
    import flax.linen as nn

    class Tiny(nn.Module):  # test_one_pixel.py's model, 8x8x3, 3 classes, SAME
        @nn.compact
        def __call__(self, x):
            x = nn.relu(nn.Conv(4, (3, 3), name="c")(x))
            return nn.Dense(3, name="d")(x.reshape(x.shape[0], -1))

    model = Tiny()
    params = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))
    twin = foreign.from_torch(torch_conv_dense(params, "relu", padding=1), (8, 8, 3), 3)
    images = np.random.RandomState(0).randint(0, 256, (5, 8, 8, 3)).astype(np.float32)
    images /= 255
    labels = np.asarray(model.apply(params, images)).argmax(-1)
    # one compiled chunk, no compaction: few programs to compile
    cfg = op.OnePixelConfig(population_size=8, max_generations=3, early_stop="none")
    a, b = (
        op.attack(
            jax.random.key(0),
            op.probs_from_logits(fn),
            p,
            images,
            labels,
            config=cfg,
            execution=op.Execution(compact_every=0),
        )
        for fn, p in ((model.apply, params), (twin.logits_fn, twin.params))
    )
    np.testing.assert_array_equal(b.candidates, a.candidates)
    np.testing.assert_array_equal(b.success, a.success)
    np.testing.assert_array_equal(b.queries, a.queries)
    np.testing.assert_allclose(b.probabilities, a.probabilities, atol=ATOL)
    clean = np.asarray(jax.nn.softmax(model.apply(params, images)))
    rows = np.arange(5)
    assert (a.probabilities[rows, labels] < clean[rows, labels]).all()  # it searched


def test_torchscript_file_through_load_classifier(tmp_path, flax_lenet, torch_net):
    torch = _torch()
    path = str(tmp_path / "lenet.pt")
    torch.jit.script(torch_net).save(path)
    x = _images(3, seed=4)
    want = _logits(flax_lenet, x)
    a = load_classifier(f"torch:{path}?shape=28x28x1&classes=10")
    b = load_classifier("lenet", f"torch:{path}")  # shape/classes from the registry
    c = load_classifier("torch", f"{path}?shape=28x28x1&classes=10")  # NAME:WEIGHTS
    for clf in (a, b, c):
        np.testing.assert_allclose(_logits(clf, x), want, atol=ATOL)
    assert b.class_names == flax_lenet.class_names
    with pytest.raises(foreign.FooljaxError, match="shape=HxWxC&classes=K"):
        load_classifier(f"torch:{path}")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(foreign.FooljaxError, match="not a TorchScript file"):
        load_classifier("lenet", f"torch:{junk}")


def test_preprocess_and_nhwc_layout(torch_net):
    torch = _torch()

    class Scaled(torch.nn.Module):  # takes NHWC pixels (x - 128) / 64
        def forward(self, x):
            return torch_net(((x * 64 + 128) / 255).permute(0, 3, 1, 2))

    x = _images(3, seed=5)
    ref = foreign.from_torch(torch_net, (28, 28, 1), 10)
    clf = foreign.from_torch(
        Scaled(),
        (28, 28, 1),
        10,
        layout="NHWC",
        preprocess={"scale": 255, "mean": [128], "std": [64]},
    )
    np.testing.assert_allclose(_logits(clf, x), _logits(ref, x), atol=ATOL)
    g = jax.grad(lambda z: clf.logits_fn({}, z)[:, 2].sum())(jnp.asarray(x))
    g0 = jax.grad(lambda z: ref.logits_fn({}, z)[:, 2].sum())(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(g), np.asarray(g0), atol=ATOL)


def test_bad_torch_models_one_line(torch_net):
    torch = _torch()

    class Raises(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("traceback of the framework\nboom")

    class NaNs(torch.nn.Module):
        def forward(self, x):
            return torch.full((x.shape[0], 10), float("nan"))

    class Wide(torch.nn.Module):
        def forward(self, x):
            return torch.zeros((x.shape[0], 12))

    class Ints(torch.nn.Module):
        def forward(self, x):
            return torch.zeros((x.shape[0], 10), dtype=torch.int64)

    cases = [
        (Raises(), "raised RuntimeError on input \\[2, 1, 28, 28\\]: boom$"),
        (NaNs(), "returned NaN or inf logits for 2 of 2 images"),
        (Wide(), "returned shape \\[2, 12\\] .* expected \\[2, 10\\]"),
        (Ints(), "returned dtype int64"),
    ]
    for net, message in cases:
        with pytest.raises(foreign.ForeignModelError, match=message) as e:
            foreign.from_torch(net, (28, 28, 1), 10, name="bad")
        assert "\n" not in str(e.value) and str(e.value).startswith("model 'bad' ")
    # a wrong layout is caught on the probe batch too
    with pytest.raises(
        foreign.ForeignModelError, match="model 'torch:TorchLeNet' raised"
    ):
        foreign.from_torch(torch_net, (28, 28, 1), 10, layout="NHWC")
    with pytest.raises(foreign.FooljaxError, match="input_shape must be"):
        foreign.from_torch(torch_net, (28, 28), 10)


def test_nan_inside_compiled_code_is_recovered_as_one_line(torch_net):
    torch = _torch()

    class NaNOnBright(torch.nn.Module):  # fine on the probe, NaN on white images
        def forward(self, x):
            out = torch_net(x)
            bright = x.mean(dim=(1, 2, 3)) > 0.9
            return torch.where(bright[:, None], torch.nan, out)

    clf = foreign.from_torch(NaNOnBright(), (28, 28, 1), 10, name="nanny")
    f = jax.jit(clf.logits_fn)
    with pytest.raises(Exception) as e:
        f({}, jnp.ones((3, 28, 28, 1))).block_until_ready()
    err = foreign.callback_error(e.value)
    assert isinstance(err, foreign.ForeignModelError)
    assert str(err) == "model 'nanny' returned NaN or inf logits for 3 of 3 images"
    assert foreign.callback_error(ValueError("other")) is None


def test_onnx_export_same_logits_and_no_gradient(tmp_path, flax_lenet, torch_net):
    torch = _torch()
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed ([onnx])")
    pytest.importorskip("onnx", reason="onnx is not installed ([onnx])")
    path = str(tmp_path / "lenet.onnx")

    class WithSoftmax(torch.nn.Module):  # the exported graph ends in Softmax
        def __init__(self):
            super().__init__()
            self.net = torch_net

        def forward(self, x):
            return torch.softmax(self.net(x), -1)

    torch.onnx.export(
        WithSoftmax(),
        torch.zeros(1, 1, 28, 28),
        path,
        input_names=["x"],
        dynamic_axes={"x": {0: "b"}},
        dynamo=False,
    )
    x = _images(5, seed=6)
    want = _logits(flax_lenet, x)
    clf = foreign.from_onnx(path)  # layout NCHW and [28, 28, 1] read from the graph
    assert clf.input_shape == (28, 28, 1) and clf.num_classes == 10
    np.testing.assert_allclose(_logits(clf, x), want, atol=ATOL)  # cut softmax
    probs = foreign.from_onnx(path, outputs="probs")  # log softmax: same up to a shift
    lp = jax.nn.log_softmax(jnp.asarray(want))
    np.testing.assert_allclose(_logits(probs, x), np.asarray(lp), atol=ATOL)
    via_cli = load_classifier(f"onnx:{path}")
    np.testing.assert_allclose(_logits(via_cli, x), want, atol=ATOL)
    with pytest.raises(
        foreign.ForeignModelError, match="ONNX models are black-box only"
    ):
        jax.jit(jax.grad(lambda z: clf.logits_fn({}, z).sum())).lower(jnp.asarray(x))
    with pytest.raises(foreign.FooljaxError, match="does not load as an ONNX model"):
        foreign.from_onnx(os.path.join(os.path.dirname(__file__), "tiny.py"))


def _keras():
    pytest.importorskip("tensorflow", reason="tensorflow is not installed ([tf])")
    return pytest.importorskip("keras", reason="keras is not installed ([tf])")


def test_keras_twin_same_logits_and_fgsm(tmp_path, flax_lenet):
    keras = _keras()
    L = keras.layers
    net = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            L.Conv2D(20, 5, name="conv1"),
            L.MaxPooling2D(2),
            L.Conv2D(50, 5, name="conv2"),
            L.MaxPooling2D(2),
            L.Flatten(),
            L.Dense(500, activation="relu", name="ip1"),
            L.Dense(10, activation="softmax", name="ip2"),
        ]
    )
    p = flax_lenet.params["params"]
    for layer in ("conv1", "conv2", "ip1", "ip2"):
        net.get_layer(layer).set_weights(
            [np.asarray(p[layer]["kernel"]), np.asarray(p[layer]["bias"])]
        )
    path = str(tmp_path / "lenet.keras")
    net.save(path)
    x = _images(4, seed=7)
    y = np.asarray([0, 2, 7, 9], np.int32)
    want = _logits(flax_lenet, x)
    clf = foreign.from_keras(net)  # the final softmax is cut off: logits
    np.testing.assert_allclose(_logits(clf, x), want, atol=ATOL)
    a = fgsm(flax_lenet.logits_fn, flax_lenet.params, x, y, epsilon=0.1)
    b = fgsm(clf.logits_fn, clf.params, x, y, epsilon=0.1)  # tf.GradientTape
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), atol=ATOL)
    saved = load_classifier(f"keras:{path}")
    np.testing.assert_allclose(_logits(saved, x), want, atol=ATOL)


def test_keras_one_pixel_lenet_h5_matches_flax_port(data_root):
    _keras()
    from fooljax.models.keras_cifar import HYPERPARTICLE_MEAN, HYPERPARTICLE_STD

    path = os.path.join(data_root, "cifar10-keras-one-pixel", "lenet.h5")
    ref = load_classifier("cifar_lenet", path)
    opts = "scale=255&mean={}&std={}".format(
        "/".join(map(str, HYPERPARTICLE_MEAN)), "/".join(map(str, HYPERPARTICLE_STD))
    )
    clf = load_classifier(f"keras:{path}?{opts}")
    direct_ = foreign.from_keras(
        path,
        preprocess={"scale": 255, "mean": HYPERPARTICLE_MEAN, "std": HYPERPARTICLE_STD},
    )
    x = np.random.default_rng(8).random((4, 32, 32, 3), np.float32)
    for c in (clf, direct_):
        np.testing.assert_allclose(_logits(c, x), _logits(ref, x), atol=ATOL)


def test_command_line_bad_foreign_models_one_line(tmp_path):
    # none of these needs a framework: the subprocess stays cheap
    from tests.cli_harness import one_line_problems, run_in_subprocess

    (tmp_path / "junk.pt").write_bytes(b"not torch")
    opt = "?shape=32x32x3&classes=10"
    cases = [
        ([f"--model=torch:{tmp_path}/missing.pt{opt}"], r"file .*missing.pt does not"),
        (["--model=keras:$FOOLJAX_UNSET_VARIABLE/m.h5"], r"unset environment variable"),
        ([f"--model=torch:{tmp_path}/junk.pt?bogus=1"], r"unknown option 'bogus=1'"),
        (
            [f"--model=torch:{tmp_path}/junk.pt{opt}", "--weights=w.npz"],
            r"drop --weights",
        ),
        ([f"--model=torch:{tmp_path}/junk.pt"], r"needs its image shape"),
    ]
    argvs = [[*a, f"--workdir={tmp_path}/w{i}"] for i, (a, _) in enumerate(cases)]
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("FOOLJAX_UNSET_VARIABLE", None)
    results = run_in_subprocess(
        "experiments.one_pixel", "one_pixel.main", argvs, tmp_path, env
    )
    problems = one_line_problems(cases, results, tmp_path)
    assert not problems, "\n".join(problems)
