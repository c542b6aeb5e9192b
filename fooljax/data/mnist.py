"""MNIST from the standard IDX files, or through TFDS.

Search order for IDX files: ``data_dir`` if given, else ``$FOOLJAX_DATA/mnist``.
File names may be gzipped or not, with ``-`` or ``.`` before ``idx``.
"""

from __future__ import annotations

import gzip
import os

import numpy as np

from fooljax.data.registry import first_found, register_dataset
from fooljax.errors import DataNotFoundError, FooljaxError

_FILES = {
    "train": ("train-images", "train-labels"),
    "test": ("t10k-images", "t10k-labels"),
}


def read_idx(path: str) -> np.ndarray:
    """Reads one IDX file (optionally gzipped); raises FooljaxError if corrupt."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise FooljaxError(f"{path}: cannot read IDX file ({e})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise FooljaxError(f"{path}: not an IDX file (bad magic number)")
    dtype_code, ndim = data[2], data[3]
    if dtype_code != 0x08:
        raise FooljaxError(f"{path}: IDX type {dtype_code:#x} is not unsigned byte")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise FooljaxError(f"{path}: truncated IDX header")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = int(np.prod(dims))
    if len(data) - header != expected:
        raise FooljaxError(
            f"{path}: truncated or corrupt IDX file: header says {dims} "
            f"({expected} bytes), file holds {len(data) - header}"
        )
    return np.frombuffer(data, np.uint8, offset=header).reshape(dims)


def _find(directory: str, stem: str) -> str | None:
    kind = "idx3" if "images" in stem else "idx1"
    for sep in ("-", "."):
        for ext in (".gz", ""):
            p = os.path.join(directory, f"{stem}{sep}{kind}-ubyte{ext}")
            if os.path.exists(p):
                return p
    return None


def candidate_dirs(data_dir: str | None) -> list[str]:
    if data_dir:
        return [data_dir, os.path.join(data_dir, "mnist")]
    env = os.environ.get("FOOLJAX_DATA")
    return [os.path.join(env, "mnist")] if env else []


def load_mnist_idx(split: str, data_dir: str | None = None):
    if split not in _FILES:
        raise FooljaxError(f"unknown MNIST split '{split}' (train or test)")
    dirs = candidate_dirs(data_dir)
    img_stem, lab_stem = _FILES[split]
    for d in dirs:
        img, lab = _find(d, img_stem), _find(d, lab_stem)
        if img and lab:
            images = read_idx(img)
            labels = read_idx(lab)
            if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
                raise FooljaxError(
                    f"{d}: MNIST images {images.shape} and labels {labels.shape} "
                    "do not match"
                )
            return images[..., None], labels.astype(np.int32)
    tried = ", ".join(dirs) if dirs else "(no --data_dir and FOOLJAX_DATA unset)"
    raise DataNotFoundError(
        f"MNIST {split} IDX files ({img_stem}-idx3-ubyte[.gz]) not found; tried: "
        f"{tried}. Pass --data_dir=DIR (e.g. ../shared/data/mnist) or set "
        "FOOLJAX_DATA to the folder that holds mnist/"
    )


def load_mnist_tfds(split: str, data_dir: str | None = None):
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise DataNotFoundError(
            "--data_source=tfds needs tensorflow-datasets: pip install -e '.[tfds]'"
        ) from None
    try:
        ds = tfds.load(
            "mnist", split=split, batch_size=-1, data_dir=data_dir, download=False
        )
        ds = tfds.as_numpy(ds)
    except Exception as e:
        raise DataNotFoundError(
            f"TFDS could not load mnist/{split} from data_dir={data_dir or 'default'} "
            f"({type(e).__name__}); prepare it with tfds first or use "
            "--data_source=idx"
        ) from None
    return ds["image"].astype(np.uint8), ds["label"].astype(np.int32)


def load_mnist(split: str = "test", data_dir: str | None = None, source: str = "idx"):
    """Returns ``(images [N, 28, 28, 1] uint8, labels [N] int32)``.

    ``source``: ``idx`` (files in ``data_dir`` or ``$FOOLJAX_DATA/mnist``),
    ``tfds``, or ``auto`` (IDX, then TFDS).
    """
    if source == "idx":
        return load_mnist_idx(split, data_dir)
    if source == "tfds":
        return load_mnist_tfds(split, data_dir)
    if source == "auto":
        return first_found(
            lambda: load_mnist_idx(split, data_dir),
            lambda: load_mnist_tfds(split, data_dir),
        )
    raise FooljaxError(f"unknown data source '{source}' (idx, tfds or auto)")


register_dataset("mnist", load_mnist)
