"""TensorBoard event files: our hand-encoded records read back by
TensorBoard's own loader (skipped where tensorboard is not installed), and a
fooling run leaves one scalar event per generation beside metrics.jsonl."""

import glob
import json
import os

import pytest

from fooljax import models
from fooljax.io import events
from fooljax.runs import fooling
from tests.tiny import tiny_classifier


def test_crc32c_known_value():
    # RFC 3720 test vector: 32 bytes of zeros
    assert events.crc32c(bytes(32)) == 0x8A9136AA
    assert events.crc32c(b"123456789") == 0xE3069283


def _read(path):
    loader = pytest.importorskip(
        "tensorboard.backend.event_processing.event_file_loader"
    )
    return list(loader.LegacyEventFileLoader(path).Load())


def test_events_read_back_by_tensorboard(tmp_path):
    w = events.EventWriter(str(tmp_path))
    w.scalars(3, {"a/b": 0.25, "n": 7, "skip": float("nan"), "s": "text"})
    w.write([(4, {"a/b": 0.5}), (-1, {"a/b": 1.0})])
    ev = _read(w.path)
    assert ev[0].file_version == "brain.Event:2"
    got = [(e.step, {v.tag: v.simple_value for v in e.summary.value}) for e in ev[1:]]
    assert got == [(3, {"a/b": 0.25, "n": 7.0}), (4, {"a/b": 0.5}), (-1, {"a/b": 1.0})]


def test_fooling_run_writes_one_event_per_generation(tmp_path):
    _, params, logits_fn = tiny_classifier(num_classes=4, shape=(8, 8, 1))
    clf = models.Classifier(logits_fn, params, (8, 8, 1), 4, "tiny")
    cfg = fooling.FoolingConfig(
        population=8, eval_batch=8, generations=4, log_every=2, checkpoint_every=10
    )
    wd = str(tmp_path / "w")
    fooling.run(cfg, wd, classifier=clf)
    (path,) = glob.glob(os.path.join(wd, fooling.TENSORBOARD, "events.out.*"))
    ev = _read(path)[1:]
    rows = [json.loads(x) for x in open(os.path.join(wd, fooling.METRICS))]
    assert [e.step for e in ev] == [r["generation"] for r in rows] == [1, 2, 3, 4]
    last = {v.tag: v.simple_value for v in ev[-1].summary.value}
    assert last["qd/score"] == pytest.approx(rows[-1]["qd_score"], rel=1e-6)
    assert last["confidence/min"] == pytest.approx(rows[-1]["min"], rel=1e-6)
    assert "nines/3" in last and "speed/generations_per_second" in last
