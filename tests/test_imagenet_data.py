"""ImageNet class names and the ``imagenet_files`` labelled-folder dataset."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from fooljax.data import imagenet, load_dataset
from fooljax.errors import DataNotFoundError, FooljaxError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FOOLBOX_LABELS = [243, 559, 438, 990, 949, 853, 609, 609, 915, 455,
                  541, 630, 741, 471, 129, 99, 251, 22, 317, 305]  # fmt: skip


def test_class_names_real(data_root):
    names = imagenet.imagenet_class_names(data_root)
    assert len(names) == 1000 and len(set(names)) >= 998
    assert (names[0], names[8], names[999]) == ("tench", "hen", "toilet_tissue")
    assert imagenet.imagenet_wnids(data_root)[0] == "n01440764"
    # The folder itself and the JSON path work too.
    d = os.path.join(data_root, "imagenet-class-index")
    assert imagenet.imagenet_class_names(d) == names
    assert (
        imagenet.imagenet_class_names(os.path.join(d, "imagenet_class_index.json"))
        == names
    )


def test_registered_imagenet_models_carry_class_names(data_root):
    from fooljax import models

    names = imagenet.imagenet_class_names(data_root)
    for name in ("mobilenet_v2", "mobilenet_v1_025", "alexnet", "bvlc_alexnet"):
        spec = models.get_spec(name)
        assert spec.num_classes == 1000 and spec.class_names == names


def test_class_names_missing_and_corrupt(tmp_path, monkeypatch):
    monkeypatch.delenv("FOOLJAX_DATA", raising=False)
    with pytest.raises(DataNotFoundError, match="class index not found"):
        imagenet.imagenet_class_names(str(tmp_path))
    bad = tmp_path / "imagenet_class_index.json"
    bad.write_text(json.dumps({"0": ["n0", "a"]}))
    with pytest.raises(FooljaxError, match="not a valid ImageNet class index"):
        imagenet.imagenet_class_names(str(tmp_path))


def _write_folder(path, specs, size=(40, 30)):
    os.makedirs(path, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in specs:
        arr = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(arr).save(os.path.join(path, name))


def test_imagenet_files_synthetic(tmp_path):
    d = str(tmp_path / "imgs")
    _write_folder(
        d, ["imagenet_10_5.png", "imagenet_02_999.jpg", "imagenet_1_0.bmp",
            "cifar10_00_3.png", "notes.png"],
    )  # fmt: skip
    x, y = load_dataset("imagenet_files", data_dir=d)
    assert x.dtype == np.uint8 and x.shape == (3, 224, 224, 3)
    assert y.dtype == np.int32 and y.tolist() == [0, 999, 5]  # sorted by index


def test_imagenet_files_errors(tmp_path, monkeypatch):
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_dataset("imagenet_files", data_dir=str(tmp_path / "nope"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataNotFoundError, match="no imagenet_"):
        load_dataset("imagenet_files", data_dir=str(empty))
    d = str(tmp_path / "badlabel")
    _write_folder(d, ["imagenet_00_1000.png"])
    with pytest.raises(FooljaxError, match="not an ImageNet class"):
        load_dataset("imagenet_files", data_dir=d)
    d = tmp_path / "corrupt"
    d.mkdir()
    (d / "imagenet_00_3.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(FooljaxError, match="cannot read image"):
        load_dataset("imagenet_files", data_dir=str(d))
    with pytest.raises(FooljaxError, match="one split"):
        load_dataset("imagenet_files", "train", data_dir=str(d))
    monkeypatch.delenv("FOOLJAX_DATA", raising=False)
    with pytest.raises(DataNotFoundError, match="--data_dir"):
        load_dataset("imagenet_files")


def test_imagenet_files_real(data_root):
    x, y = load_dataset(
        "imagenet_files", data_dir=os.path.join(data_root, "foolbox-samples")
    )
    assert x.shape == (20, 224, 224, 3)
    assert y.tolist() == FOOLBOX_LABELS


def _cli(*args):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run(
        [sys.executable, "-m", "experiments.evaluate", *args],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip


def test_evaluate_cli_mobilenet_v2(data_root):
    """Acceptance: the issue's evaluate command ends with the JSON line."""
    pytest.importorskip("tflite", reason="reading .tflite needs the 'tflite' package")
    weights = os.path.join(
        data_root,
        "imagenet-mobilenet-tflite-coral",
        "mobilenet_v2_1.0_224_quant.tflite",
    )
    r = _cli(
        "--model=mobilenet_v2", f"--weights={weights}", "--dataset=imagenet_files",
        f"--data_dir={os.path.join(data_root, 'foolbox-samples')}",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["num_examples"] == 20 and out["accuracy"] >= 0.9
    # A model that does not resize refuses ImageNet-sized images: one line, exit 2.
    r = _cli("--model=lenet", "--dataset=imagenet_files",
             f"--data_dir={os.path.join(data_root, 'foolbox-samples')}")  # fmt: skip
    assert r.returncode == 2 and r.stderr.strip().startswith("error:")
    assert "takes" in r.stderr and len(r.stderr.strip().splitlines()) == 1
