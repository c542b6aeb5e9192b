import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fooljax import models
from fooljax.errors import FooljaxError, WeightsError
from fooljax.evolution import map_elites as me
from fooljax.models.crops import ten_crop_log_probs, ten_crops
from fooljax.runs.fooling import run_map_elites
from tests.tiny import direct_encoding, tiny_classifier


def test_ten_crops_positions_and_mirrors():
    x = jnp.arange(2 * 5 * 6 * 1, dtype=jnp.float32).reshape(2, 5, 6, 1)
    c = ten_crops(x, 3, 4)
    assert c.shape == (10, 2, 3, 4, 1)
    np.testing.assert_array_equal(c[0], x[:, :3, :4])  # top-left
    np.testing.assert_array_equal(c[3], x[:, 2:, 2:])  # bottom-right
    np.testing.assert_array_equal(c[4], x[:, 1:4, 1:5])  # centre
    np.testing.assert_array_equal(c[5], x[:, :3, :4][:, :, ::-1])  # mirrored
    with pytest.raises(FooljaxError, match="larger than"):
        ten_crops(x, 6, 4)


def test_ten_crop_log_probs_is_log_of_mean_softmax():
    _, params, logits_fn = tiny_classifier(shape=(8, 8, 1))
    x = jax.random.uniform(jax.random.key(0), (3, 10, 10, 1))
    lp = ten_crop_log_probs(logits_fn, 8, 8)(params, x)
    ref = np.mean(
        [np.asarray(jax.nn.softmax(logits_fn(params, c))) for c in ten_crops(x, 8, 8)],
        axis=0,
    )
    np.testing.assert_allclose(np.exp(np.asarray(lp)), ref, rtol=1e-5, atol=1e-7)


def test_many_classes_small_population_and_archive_page(tmp_path):
    """More classes than offspring; more classes than the grid shows."""
    _, params, logits_fn = tiny_classifier(num_classes=12)
    summary = run_map_elites(
        workdir=str(tmp_path),
        config={"model": "tiny12"},
        log_probs_fn=me.log_probs_from(logits_fn=logits_fn),
        params=params,
        encoding=direct_encoding(),
        num_classes=12,
        population=4,
        num_generations=6,
        seed=0,
        eval_batch=4,
        log_every=3,
        max_grid=5,
    )
    assert len(summary["confidence"]) == 12
    page = open(tmp_path / "archive.html").read()
    assert page.count("<figure>") == 12
    assert len(os.listdir(tmp_path / "classes")) == 12
    on_disk = json.load(open(tmp_path / "summary.json"))
    assert on_disk["confidence"] == summary["confidence"]
    occupied = [c for c in summary["confidence"] if c > 0]
    assert 1 <= len(occupied) <= 12


def test_weights_with_unset_data_variable(monkeypatch):
    monkeypatch.delenv("FOOLJAX_DATA", raising=False)
    with pytest.raises(WeightsError, match="FOOLJAX_DATA"):
        models.load_classifier("lenet", "$FOOLJAX_DATA/lenet-mnist/lenet_iter_10000")
