"""Every saved file is checked when read back: one flipped byte in a checkpoint,
config.json, partial result, batch, metrics row or summary either refuses the
run with one line naming the file, or is recomputed and the run finishes with
the numbers of an undamaged run."""

import json
import logging
import os

import numpy as np
import pytest

from fooljax import models
from fooljax.errors import FooljaxError, WorkdirError
from fooljax.io import integrity
from fooljax.io.checkpoint import Checkpointer
from fooljax.io.workdir import prepare_workdir
from fooljax.runs import fooling
from fooljax.runs import gradient as grad
from fooljax.runs.common import Workdir
from tests.tiny import tiny_classifier


def _flip(path, at=None):
    """Flips one bit of one byte of ``path`` (the middle one by default)."""
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        i = len(data) // 2 if at is None else at % len(data)
        data[i] ^= 0x01
        f.seek(0)
        f.write(data)


def _listing(root):
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            p = os.path.join(dirpath, name)
            with open(p, "rb") as f:
                out[os.path.relpath(p, root)] = f.read()
    return out


def _one_line(err, name):
    msg = str(err.value)
    assert "\n" not in msg and name in msg, msg


def _same(a, b, drop=("images_per_second", "seconds_per_attack")):
    """Summaries equal except timings."""

    def clean(s):
        if isinstance(s, dict):
            return {
                k: clean(v)
                for k, v in s.items()
                if k not in drop and not k.endswith("_seconds")
            }
        return s

    assert clean(a) == clean(b)


# ---------------------------------------------------------------- io helpers


def test_read_verified_names_the_damaged_file(tmp_path):
    p = str(tmp_path / "x.json")
    integrity.write_json_verified(p, {"a": 1})
    assert json.loads(integrity.read_verified(p)) == {"a": 1}
    assert open(p + ".sha256").read().split()[1] == "x.json"  # sha256sum -c format
    _flip(p)
    with pytest.raises(WorkdirError) as e:
        integrity.read_verified(p)
    _one_line(e, p)
    os.remove(p + ".sha256")  # no sidecar: returned unchecked (caller decides)
    assert integrity.read_verified(p) == open(p, "rb").read()


def test_jsonl_crc_stops_at_the_damaged_row(tmp_path):
    p = str(tmp_path / "m.jsonl")
    rows = [{"generation": g, "max": g / 7} for g in (10, 20, 30)]
    with open(p, "w") as f:
        f.writelines(integrity.jsonl_line(r) for r in rows)
        f.write(json.dumps({"generation": 40}) + "\n")  # no crc32
    got, problem = integrity.read_jsonl_verified(p)
    assert got == rows and "line 4" in problem  # a row without crc32 among checked
    open(p, "w").write(json.dumps({"generation": 40}) + "\n")  # an old file
    assert integrity.read_jsonl_verified(p) == ([{"generation": 40}], None)
    open(p, "w").writelines(integrity.jsonl_line(r) for r in rows)
    assert integrity.read_jsonl_verified(p) == (rows, None)
    lines = open(p).read().splitlines(True)
    lines[1] = lines[1].replace('"generation": 20', '"generation": 21')
    open(p, "w").writelines(lines)
    got, problem = integrity.read_jsonl_verified(p)
    assert got == rows[:1] and "line 2" in problem and p in problem
    lines[1] = lines[1].replace('"crc32"', '"crc22"')  # a flip in the key
    open(p, "w").writelines(lines)
    got, problem = integrity.read_jsonl_verified(p)
    assert got == rows[:1] and "line 2" in problem
    open(p, "w").write(integrity.jsonl_line(rows[0]) + '{"generation": 2')
    assert integrity.read_jsonl_verified(p) == (rows[:1], None)  # torn last line


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: open(p, "w").write("{not json"),
        lambda p: open(p, "w").write("[1, 2]\n"),
        _flip,
        lambda p: os.remove(p),  # gone, its checksum still there
    ],
    ids=["garbage", "not_a_dict", "bit_flip", "missing"],
)
def test_damaged_config_is_refused_and_nothing_changes(tmp_path, damage):
    w = str(tmp_path / "w")
    assert prepare_workdir(w, {"seed": 1, "population": 8}) is False
    os.makedirs(os.path.join(w, "checkpoints", "10"))
    open(os.path.join(w, "checkpoints", "10", "x"), "w").write("state")
    damage(os.path.join(w, "config.json"))
    before = _listing(w)
    with pytest.raises(WorkdirError) as e:
        prepare_workdir(w, {"seed": 1, "population": 8})
    _one_line(e, "config.json")
    assert "damaged" in str(e.value) and "--overwrite" in str(e.value)
    assert _listing(w) == before
    assert prepare_workdir(w, {"seed": 1}, overwrite=True) is False
    assert sorted(os.listdir(w)) == ["config.json", "config.json.sha256"]


def test_old_config_without_checksum_still_resumes(tmp_path):
    w = str(tmp_path / "w")
    os.makedirs(w)
    open(os.path.join(w, "config.json"), "w").write('{"seed": 1}\n')
    assert prepare_workdir(w, {"seed": 1}) is True
    assert os.path.exists(os.path.join(w, "config.json.sha256"))  # upgraded


def test_workdir_partial_results_damaged_are_recomputed(tmp_path, caplog):
    wd = Workdir(str(tmp_path / "w"), {"a": 1})
    wd.save_json("partial.json", {"m": 1})
    wd.save_npz("b.npz", x=np.arange(5))
    wd.save_npy("e.npy", np.ones(3))
    assert wd.load_json("partial.json") == {"m": 1}
    np.testing.assert_array_equal(wd.load_npz("b.npz")["x"], np.arange(5))
    np.testing.assert_array_equal(wd.load_npy("e.npy"), np.ones(3))
    assert wd.load_npz("missing.npz") is None and wd.load_json("none.json") == {}
    with caplog.at_level(logging.WARNING, logger="fooljax"):
        for name in ("partial.json", "b.npz", "e.npy"):
            _flip(wd.file(name))
        assert wd.load_json("partial.json") == {}
        assert wd.load_npz("b.npz") is None and wd.load_npy("e.npy") is None
    for name in ("partial.json", "b.npz", "e.npy"):
        assert any(name in r.getMessage() for r in caplog.records), name


# ---------------------------------------------------------------- checkpoints


def _step_files(ckpt_dir, step):
    root = os.path.join(ckpt_dir, str(step))
    return sorted(
        os.path.join(d, f)
        for d, _, fs in os.walk(root)
        for f in fs
        if os.path.getsize(os.path.join(d, f)) > 0
    )


def test_checkpointer_falls_back_to_the_newest_good_step(tmp_path, caplog):
    d = str(tmp_path / "c")
    tree = {"a": np.arange(4.0)}
    with Checkpointer(d) as c:
        for s in (0, 10, 20):
            c.save(s, {"a": tree["a"] + s})
    names = sorted(os.listdir(d))
    assert names == ["10", "10.sha256.json", "10.sha256.json.sha256",
                     "20", "20.sha256.json", "20.sha256.json.sha256"]  # fmt: skip
    # every file of a step is covered: flip each in turn, always caught
    with Checkpointer(d) as c:
        for f in _step_files(d, 20):
            _flip(f)
            assert "checksum mismatch" in c.check_step(20) and f in c.check_step(20)
            _flip(f)
        assert c.check_step(20) is None
        bad = _step_files(d, 20)[-1]
        _flip(bad)
        with caplog.at_level(logging.WARNING, logger="fooljax"):
            step, state = c.restore_latest_good(tree)
    assert step == 10 and np.array_equal(state["a"], tree["a"] + 10)
    (msg,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "checkpoint 20" in msg and bad in msg and "resuming from 10" in msg
    assert sorted(os.listdir(d)) == names[:3]  # the damaged step is gone
    with Checkpointer(d) as c:
        _flip(_step_files(d, 10)[0])
        with pytest.raises(WorkdirError) as e:
            c.restore_latest_good(tree)
    _one_line(e, os.path.join(d, "10"))


# ---------------------------------------------------------------- MAP-Elites

CFG = fooling.FoolingConfig(
    model="tiny",
    population=8,
    eval_batch=8,
    generations=30,
    log_every=10,
    checkpoint_every=10,
    num_devices=1,
    seed=2,
)


@pytest.fixture(scope="module")
def tiny_clf():
    _, params, fn = tiny_classifier(num_classes=4, shape=(8, 8, 1))
    return models.Classifier(fn, params, (8, 8, 1), 4, "tiny")


@pytest.fixture(scope="module")
def fooling_reference(tiny_clf, tmp_path_factory):
    w = str(tmp_path_factory.mktemp("ref") / "w")
    return fooling.run(CFG, w, classifier=tiny_clf)


def _interrupted(tmp_path, clf, stop_after=20):
    w = str(tmp_path / "w")
    assert fooling.run(CFG, w, classifier=clf, stop_after=stop_after) == {
        "stopped_at": stop_after
    }
    return w


def test_fooling_damaged_checkpoint_falls_back_identically(
    tmp_path, tiny_clf, fooling_reference, caplog
):
    w = _interrupted(tmp_path, tiny_clf)
    ckpts = os.path.join(w, "checkpoints")
    _flip(_step_files(ckpts, 20)[-1])
    with caplog.at_level(logging.WARNING, logger="fooljax"):
        s = fooling.run(CFG, w, classifier=tiny_clf)
    assert any("checkpoint 20" in r.getMessage() and "resuming from 10"
               in r.getMessage() for r in caplog.records)  # fmt: skip
    _same(s, fooling_reference)
    gens = [json.loads(x)["generation"] for x in open(os.path.join(w, "metrics.jsonl"))]
    assert gens == list(range(1, 31))  # one row per generation


def test_fooling_every_checkpoint_damaged_is_refused(tmp_path, tiny_clf):
    w = _interrupted(tmp_path, tiny_clf)
    ckpts = os.path.join(w, "checkpoints")
    for step in (10, 20):
        _flip(_step_files(ckpts, step)[0])
    before = _listing(w)
    with pytest.raises(WorkdirError) as e:
        fooling.run(CFG, w, classifier=tiny_clf)
    _one_line(e, os.path.join(ckpts, "20"))
    assert _listing(w) == before


def test_fooling_damaged_metrics_row_and_config(
    tmp_path, tiny_clf, fooling_reference, caplog
):
    w = _interrupted(tmp_path, tiny_clf)
    metrics = os.path.join(w, "metrics.jsonl")
    lines = open(metrics).read().splitlines(True)
    assert '"generation": 12,' in lines[11]
    lines[11] = lines[11].replace('"generation": 12,', '"generation": 19,')
    open(metrics, "w").writelines(lines)
    with caplog.at_level(logging.WARNING, logger="fooljax"):
        s = fooling.run(CFG, w, classifier=tiny_clf)
    assert any("metrics.jsonl line 12" in r.getMessage() for r in caplog.records)
    _same(s, fooling_reference)
    # the damaged row and those after it were rewritten from the checkpoint on
    gens = [json.loads(x)["generation"] for x in open(metrics)]
    assert gens == list(range(1, 12)) + list(range(21, 31))
    # a finished run's damaged summary.json: refused, named
    _flip(os.path.join(w, "summary.json"))
    with pytest.raises(WorkdirError) as e:
        fooling.run(CFG, w, classifier=tiny_clf)
    _one_line(e, "summary.json")
    assert "damaged" in str(e.value)
    # an unfinished run's damaged config.json: refused, nothing touched
    w2 = _interrupted(tmp_path / "b", tiny_clf, stop_after=10)
    _flip(os.path.join(w2, "config.json"))
    before = _listing(w2)
    with pytest.raises(WorkdirError) as e:
        fooling.run(CFG, w2, classifier=tiny_clf)
    _one_line(e, "config.json")
    assert _listing(w2) == before


def test_fooling_old_workdir_without_checksums_resumes(
    tmp_path, tiny_clf, fooling_reference
):
    w = _interrupted(tmp_path, tiny_clf)
    for dirpath, _, files in os.walk(w):  # as written before checksums
        for f in files:
            if f.endswith((".sha256", ".sha256.json")):
                os.remove(os.path.join(dirpath, f))
    metrics = os.path.join(w, "metrics.jsonl")
    rows = [json.loads(x) for x in open(metrics)]
    open(metrics, "w").writelines(
        json.dumps({k: v for k, v in r.items() if k != "crc32"}) + "\n" for r in rows
    )
    _same(fooling.run(CFG, w, classifier=tiny_clf), fooling_reference)


# ---------------------------------------------------------------- gradient


@pytest.fixture(scope="module")
def mnist_dir(data_root):
    return os.path.join(data_root, "mnist")


def test_fgsm_damaged_partial_results_are_recomputed(tmp_path, mnist_dir, caplog):
    cfg = grad.FgsmConfig(
        models="a=lenet,b=lenet",
        curve_epsilons=(0.0, 0.1),
        num_images=20,
        batch_size=20,
        data_dir=mnist_dir,
    )
    ref = grad.run_fgsm(cfg, str(tmp_path / "ref"))
    for damaged in ("partial.json", "examples_a.npy"):
        w = str(tmp_path / damaged)
        grad.run_fgsm(cfg, w)
        os.remove(os.path.join(w, "summary.json"))  # as if interrupted at the end
        _flip(os.path.join(w, damaged))
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="fooljax"):
            s = grad.run_fgsm(cfg, w)
        assert any(damaged in r.getMessage() for r in caplog.records), damaged
        _same(s, ref)
        # the recomputed file is intact again
        integrity.read_verified(os.path.join(w, damaged))


def test_lbfgs_damaged_npz_is_recomputed(tmp_path, mnist_dir, caplog):
    cfg = grad.LbfgsTablesConfig(
        models="lenet",
        table2_columns="lenet",
        num_images=8,  # the example picture shows 8 per row
        batch_size=8,
        num_search_steps=1,
        max_iterations=5,
        noise_stddevs=(0.1,),
        data_dir=mnist_dir,
    )
    ref = grad.run_lbfgs_tables(cfg, str(tmp_path / "ref"))
    w = str(tmp_path / "w")
    grad.run_lbfgs_tables(cfg, w)
    os.remove(os.path.join(w, "summary.json"))
    _flip(os.path.join(w, "lbfgs_lenet.npz"))
    with caplog.at_level(logging.WARNING, logger="fooljax"):
        s = grad.run_lbfgs_tables(cfg, w)
    assert any("lbfgs_lenet.npz" in r.getMessage() for r in caplog.records)
    _same(s, ref, drop=("wall_seconds", "attack_seconds"))


# ---------------------------------------------------------------- one-pixel


def test_one_pixel_damaged_batch_is_recomputed(tmp_path, data_root, caplog):
    from fooljax.runs.one_pixel import OnePixelRunConfig, run

    cfg = OnePixelRunConfig(
        model="cifar_lenet",
        weights=os.path.join(data_root, "cifar10-keras-one-pixel", "lenet.h5"),
        data_dir=os.path.join(data_root, "foolbox-samples"),
        num_images=2,
        population=8,
        max_generations=1,
        batch_size=1,
        compact_every=0,
    )
    ref = run(cfg, str(tmp_path / "ref"))
    w = str(tmp_path / "w")
    run(cfg, w)
    os.remove(os.path.join(w, "summary.json"))
    batch = os.path.join(w, "batches", "batch_00001.npz")
    _flip(batch)
    with caplog.at_level(logging.WARNING, logger="fooljax"):
        s = run(cfg, w)
    assert any("batch_00001.npz" in r.getMessage() for r in caplog.records)
    _same(s, ref)


# ---------------------------------------------------------------- training


def _tiny_mnist(split, data_dir=None, source="idx"):
    rng = np.random.default_rng(0 if split == "train" else 1)
    n = 64 if split == "train" else 32
    y = rng.integers(0, 2, n).astype(np.int32)
    x = rng.integers(0, 60, (n, 28, 28, 1)).astype(np.uint8)
    x[y == 0, :14] += 150
    x[y == 1, 14:] += 150
    return x, y


def test_train_damaged_checkpoint_and_metrics(tmp_path, caplog):
    from fooljax import data
    from fooljax.train import TrainConfig, train_classifier

    data.register_dataset("tiny_integrity", _tiny_mnist)
    cfg = TrainConfig(
        model="lenet",
        dataset="tiny_integrity",
        epochs=3,
        batch_size=32,
        seed=1,
    )
    ref = train_classifier(cfg, str(tmp_path / "ref"))
    w = str(tmp_path / "w")
    train_classifier(cfg, w)
    os.remove(os.path.join(w, "summary.json"))  # as if killed before the end
    _flip(_step_files(os.path.join(w, "checkpoints"), 3)[-1])
    metrics = os.path.join(w, "metrics.jsonl")
    _flip(metrics, at=len(open(metrics).readline()) + 5)  # in the second row
    with caplog.at_level(logging.WARNING, logger="fooljax"):
        s = train_classifier(cfg, w)
    msgs = " ".join(r.getMessage() for r in caplog.records)
    assert "checkpoint 3" in msgs and "resuming from 2" in msgs
    assert "metrics.jsonl line 2" in msgs
    _same(s, ref)
    epochs = [json.loads(x)["epoch"] for x in open(metrics)]
    assert epochs == [1, 3]  # row 2 was damaged: dropped, later rows redone
    # weights from a damaged training directory: refused, not older weights
    from fooljax.io.checkpoint import restore_params_dir

    template = models.init_params(models.get_spec("lenet"), 0)
    _flip(_step_files(os.path.join(w, "checkpoints"), 3)[0])
    with pytest.raises(FooljaxError) as e:
        restore_params_dir(w, template)
    _one_line(e, os.path.join(w, "checkpoints", "3"))
