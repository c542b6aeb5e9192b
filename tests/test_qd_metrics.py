"""Per-generation QD metrics of fooling runs (issue 18): one metrics.jsonl row
per generation equal to the compiled chunk's metrics, QD-score = the sum of
the archive's probabilities, chunking and resume leave the rows unchanged,
nines.png / qd.png written."""

import json
import os

import jax
import numpy as np
import pytest

from fooljax import models
from fooljax.evolution import map_elites as me
from fooljax.runs import fooling
from tests.tiny import tiny_classifier

K = 4
TIMINGS = (
    "generations_per_second",
    "evaluations_per_second",
    "wall_seconds",
    "crc32",
)


def _cfg(**kw):
    base = dict(
        model="tiny",
        population=8,
        eval_batch=8,
        generations=10,
        log_every=4,
        checkpoint_every=4,
        num_devices=1,
        seed=3,
    )
    return fooling.FoolingConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def clf():
    _, params, fn = tiny_classifier(num_classes=K, shape=(8, 8, 1))
    return models.Classifier(fn, params, (8, 8, 1), K, "tiny")


def _rows(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(x) for x in f]


def _spy(monkeypatch, name):
    """Records every chunk's metrics returned by ``me.<name>``'s run_chunk."""
    chunks, make = [], getattr(me, name)

    def spying_make(**kw):
        run_chunk = make(**kw)

        def run(state, params, n):
            state, m = run_chunk(state, params, n)
            chunks.append(jax.device_get(m))
            return state, m

        return run

    monkeypatch.setattr(me, name, spying_make)
    return chunks


def _archive_fitness(workdir):
    import orbax.checkpoint as ocp

    mngr = ocp.CheckpointManager(os.path.join(workdir, "checkpoints"))
    step = mngr.latest_step()
    state = mngr.restore(step, args=ocp.args.StandardRestore())
    mngr.close()
    return step, np.asarray(state["archive"]["fitness"])


@pytest.fixture(scope="module")
def reference(clf, tmp_path_factory):
    """An uninterrupted run (chunks of 4, 4, 2) and the chunks' metrics."""
    mp = pytest.MonkeyPatch()
    chunks = _spy(mp, "make_run_chunk")
    w = str(tmp_path_factory.mktemp("ref") / "w")
    try:
        summary = fooling.run(_cfg(), w, classifier=clf)
    finally:
        mp.undo()
    return w, summary, chunks


def test_one_row_per_generation_equal_to_the_chunk_metrics(reference):
    w, summary, chunks = reference
    rows = _rows(w)
    assert [r["generation"] for r in rows] == list(range(1, 11))
    assert [len(c["min"]) for c in chunks] == [4, 4, 2]
    m = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
    for i, r in enumerate(rows):
        for k in ("min", "median", "max", "qd_score", "coverage"):
            assert r[k] == float(m[k][i]), (k, i)
        for k in ("num_at_least_0.99", "num_at_least_0.9999"):
            assert r[k] == int(m[k][i])
        fit = m["fitness"][i].astype(np.float64)
        # QD-score: the sum of the archive's probabilities (empty cells add 0)
        np.testing.assert_allclose(r["qd_score"], np.exp(fit).sum(), rtol=1e-6)
        assert r["coverage"] == np.isfinite(fit).mean()
        nines = -np.log10(-np.expm1(fit))
        np.testing.assert_allclose(r["nines"], nines, atol=1e-4)
        # the chunk's speed on its last row only
        assert ("generations_per_second" in r) == (r["generation"] in (4, 8, 10))
    # the finals: from the saved archive, equal to the last row
    step, fitness = _archive_fitness(w)
    assert step == 10
    np.testing.assert_allclose(summary["qd_score"], np.exp(fitness).sum(), rtol=1e-6)
    np.testing.assert_allclose(summary["qd_score"], rows[-1]["qd_score"], rtol=1e-6)
    assert summary["coverage"] == rows[-1]["coverage"] == 1.0
    for name in ("nines.png", "qd.png", "confidence.png"):
        assert os.path.getsize(os.path.join(w, name)) > 1000, name


def test_interrupted_and_rechunked_run_writes_identical_rows(tmp_path, clf, reference):
    w_ref, summary_ref, _ = reference
    cfg = _cfg(log_every=2)  # other chunks (2 each): rows may not depend on them
    w = str(tmp_path / "w")
    # stops after the chunk ending at 6; resumes from the checkpoint at 4
    assert fooling.run(cfg, w, classifier=clf, stop_after=5) == {"stopped_at": 6}
    assert [r["generation"] for r in _rows(w)] == list(range(1, 7))
    summary = fooling.run(cfg, w, classifier=clf)
    strip = [{k: v for k, v in r.items() if k not in TIMINGS} for r in _rows(w)]
    ref = [{k: v for k, v in r.items() if k not in TIMINGS} for r in _rows(w_ref)]
    assert strip == ref
    assert summary["qd_score"] == summary_ref["qd_score"]
    assert summary["confidence"] == summary_ref["confidence"]


def test_max_minutes_finishes_after_the_chunk_that_ends_past_it(tmp_path, clf):
    w = str(tmp_path / "w")
    # resumed after the chunk ending at 4: the wall clock goes on from its row
    assert fooling.run(_cfg(), w, classifier=clf, stop_after=1) == {"stopped_at": 4}
    first = _rows(w)[-1]["wall_seconds"]
    fooling.run(_cfg(), w, classifier=clf)
    assert min(r["wall_seconds"] for r in _rows(w)[4:]) >= first > 0
    cfg = _cfg()
    cfg = fooling.FoolingConfig(**{**cfg.__dict__, "max_minutes": 1e-9})
    w2 = str(tmp_path / "w2")
    summary = fooling.run(cfg, w2, classifier=clf)
    assert summary["generations"] == 4 and summary["stopped_by"] == "max_minutes"
    walls = [r["wall_seconds"] for r in _rows(w2)]
    assert len(walls) == 4 and walls == sorted(walls) and walls[0] > 0
    assert os.path.getsize(os.path.join(w2, "confidence_time.png")) > 1000
    with pytest.raises(Exception, match="finished run"):
        fooling.run(cfg, w2, classifier=clf)


def test_many_runs_pool_and_take_the_median_nines_per_class(tmp_path, clf, monkeypatch):
    chunks = _spy(monkeypatch, "make_run_chunk_many")
    w = str(tmp_path / "w")
    s = fooling.run(_cfg(num_runs=3, generations=3, log_every=3), w, classifier=clf)
    rows = _rows(w)
    (m,) = chunks
    assert m["fitness"].shape == (3, 3, K)
    for i, r in enumerate(rows):
        assert r["min"] == float(m["min"][i].min())
        assert r["qd_score"] == float(m["qd_score"][i].mean())
        nines = fooling.nines(m["fitness"][i])  # [R, K]
        np.testing.assert_allclose(r["nines"], np.median(nines, axis=0), atol=1e-4)
    np.testing.assert_allclose(
        s["qd_score"], np.mean([r["qd_score"] for r in s["runs"]]), rtol=1e-12
    )
    np.testing.assert_allclose(s["qd_score"], rows[-1]["qd_score"], rtol=1e-6)
    assert os.path.exists(os.path.join(w, "nines.png"))


def test_nines_values_and_float32_cap():
    lp = np.log(np.array([0.99, 0.9999, 0.5], np.float64))
    np.testing.assert_allclose(fooling.nines(lp), [2, 4, np.log10(2)], rtol=1e-9)
    out = fooling.nines(np.array([-np.inf, 0.0], np.float32))
    assert out[0] == 0.0 and not np.signbit(out[0])  # empty cell
    assert out[1] == fooling.NINES_CAP  # p == 1.0 in float32
    assert 7.2 < fooling.NINES_CAP < 7.3  # -log10(2**-24)
    # float32 log-probs just below 0 keep their digits (1 - exp would not)
    assert 6.5 < fooling.nines(np.float32(-1e-7)) < fooling.NINES_CAP


@pytest.mark.parametrize("num_classes", [30, 150])
def test_many_classes_plot_quantiles(tmp_path, num_classes):
    rng = np.random.default_rng(0)
    n = 5
    fit = np.log(rng.uniform(0.1, 1.0, (n, num_classes))).astype(np.float32)
    m = {
        "min": np.exp(fit).min(1),
        "median": np.median(np.exp(fit), 1),
        "max": np.exp(fit).max(1),
        "num_at_least_0.99": np.zeros(n, np.int32),
        "num_at_least_0.9999": np.zeros(n, np.int32),
        "qd_score": np.exp(fit).sum(1),
        "coverage": np.ones(n, np.float32),
        "fitness": fit,
    }
    rows = fooling.generation_rows(m, 11, num_classes)
    assert [r["generation"] for r in rows] == list(range(11, 16))
    if num_classes <= fooling.NINES_MAX_CLASSES:
        assert len(rows[0]["nines"]) == num_classes
    else:
        q = rows[0]["nines_quantiles"]
        assert "nines" not in rows[0] and len(q) == 5 and q == sorted(q)
    names = [str(k) for k in range(num_classes)]
    fooling._plot_qd(str(tmp_path), rows, names, 1)
    assert os.path.getsize(tmp_path / "nines.png") > 1000
    assert os.path.getsize(tmp_path / "qd.png") > 1000
