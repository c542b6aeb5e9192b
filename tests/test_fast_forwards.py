"""scripts/bench_forward.py: plain vs fast forms agree, the table and --json."""

import importlib.util
import json
import os

import numpy as np
import pytest

from fooljax.errors import FooljaxError

_PATH = os.path.join(os.path.dirname(__file__), "..", "scripts", "bench_forward.py")


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_forward", _PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_rows_json_and_table(bench, tmp_path, capsys):
    out = tmp_path / "forward.json"
    bench.main(
        [
            "--model=fc10,cifar_lenet",
            "--batch=3",
            "--rounds=1",
            "--min_seconds=0",
            "--tf=false",
            "--weights=init",
            f"--json={out}",
        ]
    )
    got = json.loads(out.read_text())
    assert got["device"] == "cpu"
    fc10, lenet = got["rows"]
    assert (fc10["model"], fc10["batch"], fc10["input"]) == ("fc10", 3, [28, 28, 1])
    # fc10 has no conv_impl field: one form only, and it is the best by itself
    assert "fast_images_per_s" not in fc10 and fc10["ratio_vs_best"] == 1.0
    assert fc10["tf_twin"].startswith("skipped")
    # cifar_lenet's fast form (row_conv on CPU) equals XLA's convolution
    assert lenet["fast_max_abs_diff"] < 1e-5
    assert lenet["fast_images_per_s"] > 0 and lenet["plain_images_per_s"] > 0
    table = capsys.readouterr().out
    assert "| fc10 | 3 |" in table and "| cifar_lenet | 3 |" in table
    assert got["markdown"] in table


def test_bad_flags(bench):
    with pytest.raises(FooljaxError, match="unknown model"):
        bench.main(["--model=nope"])
    with pytest.raises(SystemExit, match="batch"):
        bench.main(["--model=fc10", "--batch=0"])
    with pytest.raises(SystemExit, match="one --model"):
        bench.main(["--model=fc10,lenet", "--weights=some.npz"])


def test_caffe_lenet_tf_twin_agrees(bench, data_root):
    pytest.importorskip("tensorflow")
    spec, model, params, pre, path = bench.build("lenet", "data")
    assert path and path.endswith("lenet_iter_10000")
    from fooljax.io.caffe import load_binaryproto

    mean = load_binaryproto(os.path.join(data_root, bench.DATA_WEIGHTS["lenet"][2]))
    twin, kind = bench.tf_twin("lenet", params, path, mean)
    assert kind.startswith("Keras twin")
    x = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
    ours = np.asarray(bench.fooljax_forms(model, pre)["plain"](params, x))
    np.testing.assert_allclose(twin(x), ours, atol=1e-4)


def test_split_column_in_a_fresh_process(tmp_path):
    """``--split_devices=2`` splits the host into 2 devices before JAX starts
    and adds the split form, equal to the plain one (3 rows pad to 4)."""
    import subprocess
    import sys

    out = tmp_path / "forward.json"
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    subprocess.run(
        [
            sys.executable,
            _PATH,
            "--model=cifar_lenet",
            "--batch=3",
            "--rounds=1",
            "--min_seconds=0",
            "--tf=false",
            "--weights=init",
            "--split_devices=2",
            f"--json={out}",
        ],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    )
    got = json.loads(out.read_text())
    assert got["local_devices"] == 2
    (row,) = got["rows"]
    assert row["split_devices"] == 2 and row["split_images_per_s"] > 0
    assert row["split_max_abs_diff"] < 1e-5
    assert "split img/s" in got["markdown"]


def test_split_devices_must_be_an_integer(bench):
    with pytest.raises(SystemExit, match="integer"):
        bench._force_host_devices(["--split_devices=two"])
