"""Szegedy et al. Tables 3-4 (cross-training-set) and the adversarial-pool
training on tiny settings: end to end, resume, bad input through the CLI."""

import os

import jax
import numpy as np
import pytest

from fooljax.errors import FooljaxError
from fooljax.runs import cross_training as ct
from fooljax.runs.common import Workdir, list_artifacts, load_artifact
from tests.cli_harness import one_line_problems, run_in_subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TINY = dict(
    epochs=1,
    batch_size=64,
    num_test=10,
    attack_batch_size=10,
    num_search_steps=2,
    max_iterations=8,
)


@pytest.fixture(scope="module")
def mnist_dir(data_root):
    return os.path.join(data_root, "mnist")


def test_magnify_rescales_each_distortion_to_the_stddev():
    rng = np.random.default_rng(0)
    x = rng.uniform(0.3, 0.7, size=(3, 4, 4, 1)).astype(np.float32)
    r = rng.normal(scale=0.01, size=x.shape).astype(np.float32)
    r[2] = 0.0  # a failed attack: left as it is
    out = ct.magnify(x, x + r, 0.1)
    got = (out - x).reshape(3, -1)
    np.testing.assert_allclose(got[:2].std(1), 0.1, rtol=1e-4)
    # the direction of each distortion is kept
    np.testing.assert_allclose(
        got[0] / np.linalg.norm(got[0]),
        r[0].ravel() / np.linalg.norm(r[0]),
        atol=1e-5,
    )
    np.testing.assert_array_equal(out[2], x[2])
    assert ct.magnify(np.zeros_like(x), np.ones_like(x), 0.1).max() <= 1.0


def test_halves_are_disjoint_and_fixed_by_the_seed():
    p1, p2 = ct.split_halves(jax.random.key(0), 100, 50)
    assert len(p1) == len(p2) == 50 and not set(p1) & set(p2)
    q1, _ = ct.split_halves(jax.random.key(0), 100, 20)
    np.testing.assert_array_equal(q1, p1[:20])


def test_interrupted_training_resumes_bit_identically(tmp_path):
    """A crash after epoch 1 (here inside the pool function of epoch 2), then
    a rerun: the same params as an uninterrupted training."""
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(96, 28, 28, 1)).astype(np.float32)
    y = rng.integers(0, 10, 96)
    cfg = ct.CrossTrainingConfig(epochs=3, batch_size=32)
    fn = ct.mlp_logits_fn((8,))

    def pool(epoch, params, crash=None):
        if epoch == crash:
            raise KeyboardInterrupt
        return x[:16] * 0.5, y[:16]

    def train(d, extra_fn):
        wd = Workdir(str(tmp_path / d), {"k": 1})
        init = ct.mlp_init((8,), 0)
        return ct.train_resumable(
            wd, "m", fn, init, x, y, cfg, seed=0, extra_fn=extra_fn, num_extra=16
        )[0]

    whole = train("a", pool)
    with pytest.raises(KeyboardInterrupt):
        train("b", lambda e, p: pool(e, p, crash=1))
    with np.load(tmp_path / "b" / "train_m.npz") as z:
        assert int(z["epoch"]) == 1
    resumed = train("b", pool)
    jax.tree_util.tree_map(np.testing.assert_array_equal, whole, resumed)


@pytest.mark.slow
def test_cross_training_end_to_end_with_resume(tmp_path, mnist_dir):
    cfg = ct.CrossTrainingConfig(
        num_train_per_half=256, data_dir=mnist_dir, noise_stddevs=(0.1,), **TINY
    )
    wd = str(tmp_path / "ct")
    assert ct.run(cfg, wd, stop_after_models=1) == {}
    assert not os.path.exists(os.path.join(wd, "summary.json"))
    first = os.path.join(wd, "train_fc100_100_10.npz")
    stamp = os.stat(first).st_mtime_ns
    s = ct.run(cfg, wd)
    assert os.stat(first).st_mtime_ns == stamp  # not retrained
    names = list(ct.CROSS_MODELS)
    for key in ("error_on_distorted", "error_on_magnified"):
        assert list(s[key]) == names
        assert all(list(row) == names for row in s[key].values())
    assert list(s["error_on_noise"]) == ["gaussian_noise_0.1"]
    for name, row in s["models"].items():
        assert row["num_train"] == 256
        assert {"test_error", "train_error", "mean_distortion", "success_rate"} <= set(
            row
        )
        # successful targeted examples are errors of their own model
        assert s["error_on_distorted"][name][name] >= row["success_rate"] - 1e-9
    assert s["models"]["fc123_456_10"]["hidden"] == [123, 456]
    assert s["models"]["fc100_100_10_p2"]["train_half"] == "P2"
    assert s["paper"]["error_on_distorted"]["fc100_100_10"]["fc100_100_10_p2"] == 0.059
    assert sorted(list_artifacts(wd)) == sorted(names)
    art = load_artifact(f"{wd}:fc100_100_10_p2")
    assert art["images"].shape == (10, 28, 28, 1) and art["kind"] == "adversarial"
    for png in ("cross_training.png", "cross_training_examples.png"):
        assert os.path.getsize(os.path.join(wd, png)) > 0
    # an uninterrupted run gives the same numbers
    whole = ct.run(cfg, str(tmp_path / "whole"))
    for key in ("error_on_distorted", "error_on_magnified", "error_on_noise"):
        assert whole[key] == s[key]


@pytest.mark.slow
@pytest.mark.parametrize("attack", ["fgsm", "lbfgs"])
def test_adversarial_pool_tiny(tmp_path, mnist_dir, attack):
    cfg = ct.AdversarialPoolConfig(
        num_train=256, pool_size=64, pool_attack=attack, data_dir=mnist_dir, **TINY
    )
    s = ct.run_pool(cfg, str(tmp_path / "pool"))
    rows = s["models"]
    assert set(rows) == {"clean_pool", "adversarial_pool"}
    for r in rows.values():
        assert 0 <= r["test_error"] <= 1 and 0 <= r["fgsm_error"] <= 1
    assert "error_on_lbfgs_examples_of_clean_pool" in rows["adversarial_pool"]
    assert s["test_error_change_points"] == pytest.approx(
        100
        * (rows["adversarial_pool"]["test_error"] - rows["clean_pool"]["test_error"])
    )
    assert s["paper"]["weight_decay_only_test_error"] == 0.016
    assert s["test_error_change_stderr_points"] > 0
    # the pool is made against the current network: it differs from the clean
    # subset, and the control's pool is the subset itself
    x = np.random.default_rng(0).uniform(size=(256, 28, 28, 1)).astype(np.float32)
    y = np.arange(256) % 10
    params = ct.mlp_init((100, 100), 0)
    fn = ct.mlp_logits_fn((100, 100))
    adv, ya = ct._pool_fn(cfg, fn, x, y, attacked=True)(0, params)
    clean, yc = ct._pool_fn(cfg, fn, x, y, attacked=False)(0, params)
    np.testing.assert_array_equal(ya, yc)
    assert adv.shape == clean.shape == (64, 28, 28, 1)
    assert np.abs(adv - clean).max() > 0 and adv.min() >= 0 and adv.max() <= 1


def test_bad_settings_are_refused_before_the_workdir(tmp_path):
    out = tmp_path / "w"
    with pytest.raises(FooljaxError, match="--num_train_per_half"):
        ct.run(ct.CrossTrainingConfig(num_train_per_half=0), str(out))
    with pytest.raises(FooljaxError, match="exceeds --num_train"):
        ct.run_pool(ct.AdversarialPoolConfig(num_train=100, pool_size=200), str(out))
    assert not out.exists()


# module, main expression, argv, pattern of the one error line
CLI_CASES = [
    ("experiments.cross_training", "m.cross_training.main",
     ["--num_train_per_half=0"], r"--num_train_per_half must be"),
    ("experiments.cross_training", "m.cross_training.main",
     ["--magnify_stddev=nan"], r"--magnify_stddev"),
    ("experiments.cross_training", "m.cross_training.main",
     ["--noise_stddevs=a,b"], r"--noise_stddevs must be a comma list"),
    ("experiments.cross_training", "m.cross_training.main",
     ["--bogus_flag=1"], r"bogus_flag"),
    ("experiments.adversarial_pool", "m.cross_training.main_pool",
     ["--pool_attack=pgd"], r"pool_attack"),
    ("experiments.adversarial_pool", "m.cross_training.main_pool",
     ["--pool_epsilon=2"], r"pool_epsilon"),
    ("experiments.transfer", "transfer.main",
     ["--sources={dir}/missing"], r"missing does not exist"),
    ("experiments.transfer", "transfer.main",
     ["--sources={src}:zz"], r"no artifact named zz \(it has: a, b\)"),
    ("experiments.transfer", "transfer.main",
     ["--sources={src}"], r"several artifacts \(a, b\); name one"),
]  # fmt: skip


def test_bad_command_lines_are_one_line(tmp_path):
    from fooljax.runs.common import save_artifact

    src = tmp_path / "src"
    src.mkdir()
    (src / "summary.json").write_text("{}")
    for name in ("a", "b"):
        save_artifact(
            str(src),
            np.zeros((1, 28, 28, 1)),
            [0],
            [1.0],
            kind="adversarial",
            model="lenet",
            weights="default",
            name=name,
        )
    by_module = {}
    for i, (module, main, args, pattern) in enumerate(CLI_CASES):
        argv = [a.format(dir=tmp_path, src=src) for a in args]
        argv.append(f"--workdir={tmp_path}/w{i}")
        by_module.setdefault((module, main), []).append((argv, pattern, i))
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    problems = []
    for (module, main), cases in by_module.items():
        results = run_in_subprocess(module, main, [c[0] for c in cases], tmp_path, env)
        problems += one_line_problems(
            [c[:2] for c in cases],
            results,
            tmp_path,
            workdirs=[tmp_path / f"w{c[2]}" for c in cases],
        )
    assert not problems, "\n".join(problems)
