"""CIFAR-10 loaders: python batches, JPEG tarballs, exact PNGs."""

import io
import os
import pickle
import tarfile

import numpy as np
import pytest
from PIL import Image

from fooljax.data import cifar10 as c10
from fooljax.data import load_dataset
from fooljax.errors import DataNotFoundError, FooljaxError


def _batch(n, seed):
    rng = np.random.RandomState(seed)
    imgs = rng.randint(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    labels = rng.randint(0, 10, n)
    flat = imgs.transpose(0, 3, 1, 2).reshape(n, -1)  # channel-major rows
    return imgs, labels, {"data": flat, "labels": labels.tolist()}


def test_python_batches(tmp_path):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    imgs, labels, batch = _batch(4, 0)
    with open(d / "test_batch", "wb") as f:
        pickle.dump(batch, f)
    x, y = load_dataset("cifar10", "test", data_dir=str(tmp_path), source="batches")
    np.testing.assert_array_equal(x, imgs)
    np.testing.assert_array_equal(y, labels)
    assert x.dtype == np.uint8 and y.dtype == np.int32
    # auto prefers the exact batches
    x2, _ = load_dataset("cifar10", "test", data_dir=str(tmp_path), source="auto")
    np.testing.assert_array_equal(x2, imgs)


def test_jpeg_tarball_order_and_labels(tmp_path):
    buf = {}
    tgz = tmp_path / "cifar10_test_jpg.tar.gz"
    with tarfile.open(tgz, "w:gz") as tar:
        for cls, idx in [("truck", 1), ("airplane", 1), ("airplane", 0), ("cat", 0)]:
            arr = np.full((32, 32, 3), 10 * idx + c10.CLASSES.index(cls), np.uint8)
            b = io.BytesIO()
            Image.fromarray(arr).save(b, format="JPEG", quality=100)
            data = b.getvalue()
            info = tarfile.TarInfo(f"test/{cls}/{idx:04d}.jpg")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
            buf[(cls, idx)] = arr
    x, y = load_dataset("cifar10", "test", data_dir=str(tmp_path), source="jpg")
    np.testing.assert_array_equal(y, [0, 0, 3, 9])
    assert x.shape == (4, 32, 32, 3)
    assert abs(int(x[1].mean()) - 10) <= 2  # airplane 0001 after 0000


def test_missing_data_lists_paths(tmp_path, monkeypatch):
    monkeypatch.delenv("FOOLJAX_DATA", raising=False)
    with pytest.raises(DataNotFoundError, match=str(tmp_path)):
        load_dataset("cifar10", "test", data_dir=str(tmp_path))
    with pytest.raises(DataNotFoundError, match="cifar10_NN_<label>.png"):
        load_dataset("cifar10_files", "test", data_dir=str(tmp_path))
    with pytest.raises(FooljaxError, match="split"):
        load_dataset("cifar10", "valid", data_dir=str(tmp_path))


def test_png_files(tmp_path):
    for i, lab in [(1, 8), (0, 3)]:
        Image.fromarray(np.full((32, 32, 3), i, np.uint8)).save(
            tmp_path / f"cifar10_{i:02d}_{lab}.png"
        )
    x, y = load_dataset("cifar10_files", data_dir=str(tmp_path))
    np.testing.assert_array_equal(y, [3, 8])
    assert x[1].max() == 1


MANIFEST_LABELS = [3, 8, 8, 0, 6, 6, 1, 6, 3, 1, 0, 9, 5, 7, 9, 8, 5, 7, 8, 6]


def test_real_pngs_and_jpegs_align(data_root):
    png, y = load_dataset(
        "cifar10_files", data_dir=os.path.join(data_root, "foolbox-samples")
    )
    assert png.shape == (20, 32, 32, 3)
    np.testing.assert_array_equal(y, MANIFEST_LABELS)
    jpg, yj = load_dataset(
        "cifar10", "test", data_dir=os.path.join(data_root, "cifar10")
    )
    assert jpg.shape == (10000, 32, 32, 3)
    np.testing.assert_array_equal(np.bincount(yj), [1000] * 10)
    # PNG i is the r-th test image of its class -> JPEG test/<class>/r
    rank = {}
    for i, lab in enumerate(y):
        r = rank.get(lab, 0)
        rank[lab] = r + 1
        mae = np.abs(png[i].astype(int) - jpg[1000 * lab + r].astype(int)).mean()
        assert mae < 12, (i, mae)  # MANIFEST: aligned 4.5-8.1, misaligned 40-133
