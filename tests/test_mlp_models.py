"""The table models: registered names, shapes, NumPy reference forward passes,
zoo configs (adversarial variants), and that zoo models train and load."""

import dataclasses
import os

import jax.numpy as jnp
import numpy as np
import pytest

from fooljax import models
from fooljax.errors import FooljaxError
from fooljax.train import zoo

NAMES = ["fc10", "fc100_100_10", "fc200_200_10", "ae400_10", "maxout"]


def _numpy_forward(name, params, x):
    p = params["params"]
    h = x.reshape(len(x), -1).astype(np.float64)

    def dense(layer, h):
        return h @ np.asarray(p[layer]["kernel"]) + np.asarray(p[layer]["bias"])

    hidden = sorted(k for k in p if k.startswith("fc"))
    for layer in hidden:
        z = dense(layer, h)
        if name == "maxout":
            h = z.reshape(len(x), -1, 5).max(-1)
        elif name == "ae400_10":
            h = 1 / (1 + np.exp(-z))
        else:
            h = np.maximum(z, 0)
    return dense("out", h)


@pytest.mark.parametrize("name", NAMES)
def test_registered_and_matches_numpy(name):
    assert name in models.model_names()
    clf = models.load_classifier(name, "init")
    x = np.random.default_rng(0).uniform(0, 1, (3, 28, 28, 1)).astype(np.float32)
    logits = np.asarray(clf.logits_fn(clf.params, jnp.asarray(x)))
    assert logits.shape == (3, 10)
    np.testing.assert_allclose(
        logits, _numpy_forward(name, clf.params, x), rtol=1e-4, atol=1e-4
    )


def test_zoo_configs():
    cfg = zoo.zoo_config("fc10_1e-2")
    assert cfg.model == "fc10" and cfg.weight_decay == 1e-2 and cfg.adv_alpha == 1.0
    assert zoo.zoo_config("lenet") is None
    adv = zoo.zoo_config("lenet_adv")
    base = dataclasses.asdict(zoo.LENET_CONFIG)
    got = dataclasses.asdict(adv)
    assert got.pop("adv_alpha") == 0.5 and got.pop("adv_epsilon") == 0.25
    base.pop("adv_alpha"), base.pop("adv_epsilon")
    assert got == base  # only the adversarial term differs from "before"
    assert zoo.zoo_config("maxout_adv").model == "maxout"
    with pytest.raises(FooljaxError, match="unknown zoo model"):
        zoo.zoo_config("fc10_3")


def test_zoo_trains_once_then_loads(tmp_path, data_root, monkeypatch):
    monkeypatch.setitem(
        zoo.ZOO,
        "tiny_fc10",
        zoo.TrainConfig(model="fc10", epochs=1, batch_size=2000, learning_rate=1e-2),
    )
    d = str(tmp_path)
    clf = zoo.zoo_classifier("tiny_fc10", d, data_dir=os.path.join(data_root, "mnist"))
    assert clf.name == "tiny_fc10"
    assert os.path.exists(os.path.join(d, "tiny_fc10", "summary.json"))
    mtime = os.path.getmtime(os.path.join(d, "tiny_fc10", "params.npz"))
    again = zoo.zoo_classifier("tiny_fc10", d)  # loads, does not retrain
    assert os.path.getmtime(os.path.join(d, "tiny_fc10", "params.npz")) == mtime
    x = jnp.zeros((1, 28, 28, 1))
    np.testing.assert_allclose(
        clf.logits_fn(clf.params, x), again.logits_fn(again.params, x)
    )
