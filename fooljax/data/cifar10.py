"""CIFAR-10 as ``images [N, 32, 32, 3] uint8``, ``labels [N] int32``.

Two registered datasets:

- ``cifar10``: the original python batches (``cifar-10-batches-py/`` with
  ``data_batch_1..5`` / ``test_batch``, or the ``cifar-10-python.tar.gz``
  tarball) when present, else the JPEG re-encoding staged in
  ``data/cifar10/`` (``cifar10_{train,test}_jpg.tar.gz``, members
  ``<split>/<class>/NNNN.jpg``; lossy, see its MANIFEST). The JPEG set is ordered
  class by class (label, then NNNN), not in the original batch order.
  ``source``: ``auto`` (default for ``idx``, the evaluate CLI's default), ``batches``
  or ``jpg``.
- ``cifar10_files``: the exact first 20 test images, ``cifar10_NN_<label>.png``
  in ``data/foolbox-samples/``, in index order.

Search order: ``data_dir`` (and its ``cifar10``, ``cifar-10-batches-py``,
``foolbox-samples`` sub-folders) when given, else ``$FOOLJAX_DATA/<same>``.
"""

from __future__ import annotations

import glob
import io
import os
import pickle
import re
import tarfile

import numpy as np
from PIL import Image

from fooljax.data.registry import first_found, register_dataset
from fooljax.errors import DataNotFoundError, FooljaxError

CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
_BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


def _roots(data_dir: str | None) -> list[str]:
    """An explicit ``data_dir`` is the only root (a wrong one is an error, never
    silently replaced by ``$FOOLJAX_DATA``); else the environment's."""
    if data_dir:
        return [data_dir]
    env = os.environ.get("FOOLJAX_DATA")
    return [env] if env else []


def _dirs(data_dir: str | None, subdirs: tuple[str, ...]) -> list[str]:
    out = []
    for r in _roots(data_dir):
        out.append(r)
        out.extend(os.path.join(r, s) for s in subdirs)
    return out


def _check_split(split: str) -> None:
    if split not in _BATCHES:
        raise FooljaxError(f"unknown CIFAR-10 split '{split}' (train or test)")


def _decode_batch(d: dict, where: str):
    data = d.get("data", d.get(b"data"))
    labels = d.get("labels", d.get(b"labels"))
    if data is None or labels is None:
        raise FooljaxError(f"{where}: not a CIFAR-10 python batch (no data/labels)")
    data = np.asarray(data, np.uint8)
    if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
        raise FooljaxError(f"{where}: CIFAR-10 batch has shape {data.shape}")
    # rows are 1024 R, 1024 G, 1024 B (channel-major) -> NHWC
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, np.asarray(labels, np.int32)


def _load_batch_file(path: str):
    try:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="latin1")
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as e:
        raise FooljaxError(f"{path}: cannot read CIFAR-10 batch ({e})") from None
    return _decode_batch(d, path)


def load_cifar10_batches(split: str, data_dir: str | None = None):
    """The original python batches, from a folder or the python tarball."""
    _check_split(split)
    dirs = _dirs(
        data_dir, ("cifar-10-batches-py", "cifar10", "cifar10/cifar-10-batches-py")
    )
    for d in dirs:
        paths = [os.path.join(d, n) for n in _BATCHES[split]]
        if all(os.path.isfile(p) for p in paths):
            parts = [_load_batch_file(p) for p in paths]
            return (
                np.concatenate([p[0] for p in parts]),
                np.concatenate([p[1] for p in parts]),
            )
        tgz = os.path.join(d, "cifar-10-python.tar.gz")
        if os.path.isfile(tgz):
            parts = []
            try:
                with tarfile.open(tgz, "r:gz") as tar:
                    for n in _BATCHES[split]:
                        member = tar.extractfile(f"cifar-10-batches-py/{n}")
                        d_ = pickle.load(member, encoding="latin1")
                        parts.append(_decode_batch(d_, f"{tgz}:{n}"))
            except (OSError, KeyError, tarfile.TarError, EOFError) as e:
                raise FooljaxError(f"{tgz}: cannot read ({e})") from None
            return (
                np.concatenate([p[0] for p in parts]),
                np.concatenate([p[1] for p in parts]),
            )
    raise DataNotFoundError(
        f"CIFAR-10 python batches ({', '.join(_BATCHES[split])} or "
        f"cifar-10-python.tar.gz) not found; tried: {', '.join(dirs) or '(none)'}"
    )


_JPG_NAME = re.compile(r"(?:^|/)(train|test)/([a-z]+)/(\d+)\.jpe?g$")


def load_cifar10_jpg(split: str, data_dir: str | None = None):
    """The JPEG re-encoding: ``cifar10_<split>_jpg.tar.gz``, class by class."""
    _check_split(split)
    dirs = _dirs(data_dir, ("cifar10",))
    for d in dirs:
        tgz = os.path.join(d, f"cifar10_{split}_jpg.tar.gz")
        if not os.path.isfile(tgz):
            continue
        entries = []
        try:
            with tarfile.open(tgz, "r:gz") as tar:
                for m in tar:
                    match = _JPG_NAME.search(m.name)
                    if not m.isfile() or match is None:
                        continue
                    cls = match.group(2)
                    if cls not in CLASSES:
                        raise FooljaxError(f"{tgz}: unknown class folder '{cls}'")
                    img = Image.open(io.BytesIO(tar.extractfile(m).read()))
                    arr = np.asarray(img.convert("RGB"), np.uint8)
                    if arr.shape != (32, 32, 3):
                        raise FooljaxError(
                            f"{tgz}:{m.name} is {arr.shape}, not 32x32x3"
                        )
                    entries.append((CLASSES.index(cls), int(match.group(3)), arr))
        except (OSError, tarfile.TarError, EOFError) as e:
            raise FooljaxError(f"{tgz}: cannot read ({e})") from None
        if not entries:
            raise FooljaxError(f"{tgz}: holds no <split>/<class>/NNNN.jpg images")
        entries.sort(key=lambda e: (e[0], e[1]))
        images = np.stack([e[2] for e in entries])
        labels = np.asarray([e[0] for e in entries], np.int32)
        return images, labels
    raise DataNotFoundError(
        f"CIFAR-10 JPEG tarball cifar10_{split}_jpg.tar.gz not found; tried: "
        f"{', '.join(dirs) or '(no --data_dir and FOOLJAX_DATA unset)'}. Pass "
        "--data_dir=DIR (e.g. ../shared/data/cifar10) or set FOOLJAX_DATA to the "
        "folder that holds cifar10/"
    )


def load_cifar10(
    split: str = "test", data_dir: str | None = None, source: str = "auto"
):
    """``source``: ``auto``/``idx`` (batches if present, else JPEG), ``batches``,
    ``jpg``."""
    if source == "batches":
        return load_cifar10_batches(split, data_dir)
    if source == "jpg":
        return load_cifar10_jpg(split, data_dir)
    if source in ("auto", "idx"):
        return first_found(
            lambda: load_cifar10_batches(split, data_dir),
            lambda: load_cifar10_jpg(split, data_dir),
        )
    raise FooljaxError(f"unknown CIFAR-10 source '{source}' (auto, batches or jpg)")


_PNG_NAME = re.compile(r"cifar10_(\d+)_(\d)\.png$")


def load_cifar10_files(split: str = "test", data_dir: str | None = None, source="idx"):
    """The exact first test images ``cifar10_NN_<label>.png`` (foolbox samples)."""
    if split != "test":
        raise FooljaxError("cifar10_files has only the 'test' split")
    dirs = _dirs(data_dir, ("foolbox-samples",))
    for d in dirs:
        files = sorted(glob.glob(os.path.join(d, "cifar10_*_*.png")))
        found = [
            (int(m.group(1)), int(m.group(2)), f)
            for f in files
            if (m := _PNG_NAME.search(os.path.basename(f)))
        ]
        if not found:
            continue
        found.sort()
        images = []
        for _, _, f in found:
            try:
                arr = np.asarray(Image.open(f).convert("RGB"), np.uint8)
            except OSError as e:
                raise FooljaxError(f"{f}: cannot read PNG ({e})") from None
            if arr.shape != (32, 32, 3):
                raise FooljaxError(f"{f} is {arr.shape}, not 32x32x3")
            images.append(arr)
        return np.stack(images), np.asarray([lab for _, lab, _ in found], np.int32)
    raise DataNotFoundError(
        "CIFAR-10 sample PNGs (cifar10_NN_<label>.png) not found; tried: "
        f"{', '.join(dirs) or '(no --data_dir and FOOLJAX_DATA unset)'}. Pass "
        "--data_dir=DIR (e.g. ../shared/data/foolbox-samples) or set FOOLJAX_DATA"
    )


register_dataset("cifar10", load_cifar10)
register_dataset("cifar10_files", load_cifar10_files)
