"""The n + 1-class retraining loop (Nguyen et al. 2015 §3.6) on tiny settings,
the fooling family's many runs at once, and the pieces they stand on."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fooljax import models
from fooljax.encodings import make_encoding
from fooljax.errors import FooljaxError, InputError
from fooljax.evolution import map_elites as me
from fooljax.runs import fooling, retrain

needs_data = pytest.mark.skipif(
    not os.environ.get("FOOLJAX_DATA"), reason="needs MNIST (set FOOLJAX_DATA)"
)

TINY = retrain.RetrainConfig(
    iterations=2,
    num_train_examples=512,
    first_images=20,
    images_per_iteration=10,
    population=4,
    generations=3,
    measure_runs=2,
    measure_population=6,
    measure_generations=4,
    eval_batch=24,
    log_every=2,
    batch_size=64,
    augment_shift=1,  # the loop's training with random shifts, resumed exactly too
)


def test_random_shift_moves_each_image_by_its_own_offset_within_the_bound():
    from fooljax.train.classifier import random_shift

    img = jnp.zeros((64, 9, 9, 1)).at[:, 4, 4, 0].set(1.0)  # one lit centre pixel
    out = np.asarray(random_shift(img, jax.random.key(0), 2))
    assert out.shape == img.shape and np.all(out.sum(axis=(1, 2, 3)) == 1.0)
    ys, xs = np.nonzero(out[..., 0])[1:]
    assert set(ys) | set(xs) <= {2, 3, 4, 5, 6}
    assert len({(y, x) for y, x in zip(ys, xs, strict=True)}) > 10  # not one shift
    np.testing.assert_array_equal(random_shift(img, jax.random.key(0), 0), img)


def test_add_class_params_keeps_the_network_and_adds_one_output():
    small = models.load_classifier("lenet", "default")
    wide = models.classifier_with_classes("lenet", 11, seed=3)
    merged = retrain.add_class_params(small.params, wide.params)
    x = jax.random.uniform(jax.random.key(0), (5, 28, 28, 1))
    a = small.logits_fn(small.params, x)
    b = wide.logits_fn(merged, x)
    assert b.shape == (5, 11)
    np.testing.assert_allclose(b[:, :10], a, rtol=1e-5, atol=1e-5)
    with pytest.raises(FooljaxError, match="cannot add a class"):
        retrain.add_class_params(wide.params, small.params)


def test_first_classes_is_accepted_and_a_plain_slice_is_refused():
    wide = models.classifier_with_classes("lenet", 11, seed=0)
    enc, _ = make_encoding("direct", (28, 28, 1))
    full = me.log_probs_from(logits_fn=wide.logits_fn)
    kw = dict(encoding=enc, num_classes=10, population=8)
    state = me.make_init(log_probs_fn=me.FirstClasses(full, 10), **kw)(
        jax.random.key(0), wide.params
    )
    assert state.archive.fitness.shape == (10,)
    assert bool(jnp.all(state.archive.fitness <= 0))

    def sliced(p, x):  # not hashable-wrapped: rows sum to < 1, refused
        return full(p, x)[:, :10]

    with pytest.raises(InputError, match="does not return log-probabilities"):
        me.make_init(log_probs_fn=sliced, **kw)(jax.random.key(0), wide.params)


def test_evolution_stats():
    conf = np.array([[0.5, 0.99995, 1.0], [0.2, 0.995, 0.3]])
    first = np.array([[-1, -1], [7, -1]])
    s = retrain.evolution_stats(conf, first)
    assert s["num_classes_at_least"] == {"0.99": 2, "0.9999": 2}
    assert s["min_confidence"] == 0.2 and s["median_confidence"] == pytest.approx(
        0.7475
    )
    # one of two runs reached 0.99: the median run did not
    assert s["median_first_generation_all_at_least"] == {"0.99": None, "0.9999": None}


@needs_data
def test_tiny_loop_end_to_end_and_resumes_bit_identically(tmp_path):
    whole = retrain.run(TINY, str(tmp_path / "whole"))
    rows = whole["iterations"]
    assert [r["iteration"] for r in rows] == [1, 2]
    assert rows[0]["fooling_class_recall"] is None
    assert rows[0]["num_classes"] == 10 and rows[1]["num_classes"] == 11
    assert rows[1]["num_heldout_images"] == 2 * 10
    assert 0.0 <= rows[1]["fooling_class_recall"] <= 1.0
    for r in rows:
        for key in ("clean_accuracy", "median_confidence", "min_confidence"):
            assert 0.0 <= r[key] <= 1.0
        assert set(r["num_classes_at_least"]) == {"0.99", "0.9999"}
    assert rows[0]["num_images_added"] == 20 and rows[1]["num_images_added"] == 10
    assert rows[0]["num_fooling_images_in_training"] == 20
    for f in ("retrain.png", "iterations.png", "artifact.npz", "dnn02.npz"):
        assert os.path.exists(tmp_path / "whole" / f), f

    part = str(tmp_path / "part")
    assert retrain.run(TINY, part, stop_after=1) == {"stopped_after": 1}
    assert not os.path.exists(os.path.join(part, "summary.json"))
    resumed = retrain.run(TINY, part)
    for i in (1, 2):
        a = np.load(tmp_path / "whole" / f"images{i:02d}.npz")
        b = np.load(os.path.join(part, f"images{i:02d}.npz"))
        for k in ("images", "confidence", "m_images", "m_confidence"):
            np.testing.assert_array_equal(a[k], b[k])
    strip = ("evolution_seconds", "training_seconds")
    for a, b in zip(whole["iterations"], resumed["iterations"], strict=True):
        assert {k: v for k, v in a.items() if k not in strip} == {
            k: v for k, v in b.items() if k not in strip
        }


@needs_data
def test_bad_input_is_refused_before_anything_is_written(tmp_path):
    wd = str(tmp_path / "w")
    with pytest.raises(FooljaxError, match="takes"):
        retrain.run(retrain.RetrainConfig(dataset="cifar10", iterations=1), wd)
    assert not os.path.exists(wd)
    with pytest.raises(FooljaxError, match="num_classes field"):
        retrain.run(retrain.RetrainConfig(model="mobilenet_v1_025", weights="init"), wd)
    with pytest.raises(FooljaxError):
        retrain.run(retrain.RetrainConfig(iterations=0), wd)
    retrain.run(TINY, wd, stop_after=1)
    before = sorted(os.listdir(wd))
    other = retrain.RetrainConfig(**{**TINY.__dict__, "seed": 1})
    with pytest.raises(FooljaxError, match="other settings .differs in: seed"):
        retrain.run(other, wd)
    assert sorted(os.listdir(wd)) == before


def test_fooling_num_runs_equals_the_seeds_run_alone(tmp_path):
    """Run r of --num_runs is the single run with --seed=seed+r when the model
    sees the same micro-batches (eval_batch divides the population)."""
    cfg = fooling.FoolingConfig(
        population=10, generations=4, log_every=2, checkpoint_every=2, eval_batch=10
    )
    many = fooling.run(
        fooling.FoolingConfig(**{**cfg.__dict__, "num_runs": 3, "seed": 5}),
        str(tmp_path / "many"),
    )
    assert many["num_runs"] == 3 and len(many["runs"]) == 3
    assert os.path.exists(tmp_path / "many" / "runs.png")
    for r in range(3):
        one = fooling.run(
            fooling.FoolingConfig(**{**cfg.__dict__, "seed": 5 + r}),
            str(tmp_path / f"one{r}"),
        )
        assert many["runs"][r]["confidence"] == one["confidence"]
        assert (
            many["runs"][r]["first_generation_all_at_least"]
            == (one["first_generation_all_at_least"])
        )
    art = np.load(tmp_path / "many" / "artifact.npz")
    assert art["images"].shape[0] == 3 * 10
    s = json.load(open(tmp_path / "many" / "summary.json"))
    assert np.asarray(s["confidence"]).shape == (3, 10)
