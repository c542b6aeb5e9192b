"""ImageNet helpers: the 1000 class names and labelled image folders.

- ``imagenet_class_names(data_root)``: the standard ILSVRC-2012 class index
  (``imagenet-class-index/imagenet_class_index.json``: ``"k": [wnid, name]``),
  as a tuple of 1000 short names in class order (``"tench"``, ...,
  ``"toilet_tissue"``).
- dataset ``imagenet_files``: every ``imagenet_<i>_<label>.<jpg|jpeg|png|bmp>``
  in ``data_dir`` (default ``$FOOLJAX_DATA/foolbox-samples``), label from the
  file name, RGB, resized straight (no crop) to 224x224 with PIL's bilinear
  filter, sorted by ``i``. Models that need another size (AlexNet's 227) resize
  again inside their ``logits_fn``.
"""

from __future__ import annotations

import json
import os
import re

import numpy as np
from PIL import Image, UnidentifiedImageError

from fooljax.data.registry import register_dataset
from fooljax.errors import DataNotFoundError, FooljaxError

IMAGE_SIZE = 224
_INDEX_DIR = "imagenet-class-index"
_INDEX_FILE = "imagenet_class_index.json"
_FILE_RE = re.compile(r"^imagenet_(\d+)_(\d+)\.(jpe?g|png|bmp)$", re.IGNORECASE)


def _index_candidates(data_root: str | None) -> list[str]:
    roots = [data_root] if data_root else []
    if os.environ.get("FOOLJAX_DATA"):
        roots.append(os.environ["FOOLJAX_DATA"])
    out = []
    for r in roots:
        if r.endswith(".json"):
            out.append(r)
        else:
            out += [
                os.path.join(r, _INDEX_DIR, _INDEX_FILE),
                os.path.join(r, _INDEX_FILE),
            ]
    return out


def _read_index(data_root: str | None) -> list[tuple[str, str]]:
    tried = _index_candidates(data_root)
    for path in tried:
        if os.path.isfile(path):
            try:
                with open(path, encoding="utf-8") as f:
                    raw = json.load(f)
                entries = [tuple(raw[str(k)]) for k in range(1000)]
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise FooljaxError(
                    f"{path} is not a valid ImageNet class index "
                    f"(expected keys '0'..'999' -> [wnid, name]): {e}"
                ) from None
            if len(entries) != 1000 or any(len(e) != 2 for e in entries):
                raise FooljaxError(f"{path}: expected 1000 [wnid, name] entries")
            return entries
    raise DataNotFoundError(
        "ImageNet class index not found; tried: "
        + (
            ", ".join(tried)
            if tried
            else "(nothing: pass data_root or set FOOLJAX_DATA)"
        )
    )


def imagenet_class_names(data_root: str | None = None) -> tuple[str, ...]:
    """The 1000 ImageNet class names, index k = class k.

    ``data_root``: the shared data folder (holding ``imagenet-class-index/``),
    that folder itself, or the JSON file; default ``$FOOLJAX_DATA``. Raises
    ``DataNotFoundError`` naming the paths tried.
    """
    return tuple(name for _, name in _read_index(data_root))


def imagenet_wnids(data_root: str | None = None) -> tuple[str, ...]:
    """The 1000 WordNet ids (``n01440764``, ...) in class order."""
    return tuple(wnid for wnid, _ in _read_index(data_root))


def try_imagenet_class_names() -> tuple[str, ...] | None:
    """Class names from ``$FOOLJAX_DATA`` if present, else ``None`` (no error)."""
    try:
        return imagenet_class_names()
    except FooljaxError:
        return None


def list_imagenet_files(data_dir: str) -> list[tuple[str, int]]:
    """``[(path, label)]`` of ``imagenet_<i>_<label>.*`` in ``data_dir``, by ``i``."""
    if not os.path.isdir(data_dir):
        raise DataNotFoundError(f"image folder {data_dir} does not exist")
    found = []
    for name in os.listdir(data_dir):
        m = _FILE_RE.match(name)
        if m:
            found.append((int(m.group(1)), name, int(m.group(2))))
    if not found:
        raise DataNotFoundError(
            f"no imagenet_<i>_<label>.jpg files in {data_dir} "
            "(expected e.g. imagenet_00_243.jpg)"
        )
    found.sort()
    out = []
    for _, name, label in found:
        if not 0 <= label < 1000:
            raise FooljaxError(f"{name}: label {label} is not an ImageNet class 0..999")
        out.append((os.path.join(data_dir, name), label))
    return out


def load_image_rgb(path: str, size: int | None = IMAGE_SIZE) -> np.ndarray:
    """An image file as ``uint8 [size, size, 3]`` RGB (bilinear resize, no crop)."""
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if size is not None and im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR)
            return np.asarray(im, np.uint8)
    except (OSError, UnidentifiedImageError) as e:
        raise FooljaxError(f"cannot read image {path}: {e}") from None


def load_imagenet_files(split: str = "test", data_dir=None, source: str = "files"):
    """Dataset ``imagenet_files``: ``(images uint8 [N, 224, 224, 3], labels int32 [N])``.

    The folder is one labelled set; ``split`` must be ``test`` (or ``all``).
    ``source`` is ignored (there is one source: image files).
    """
    if split not in ("test", "all", "val", "validation"):
        raise FooljaxError(
            f"dataset imagenet_files has one split ('test'), not '{split}'"
        )
    if data_dir is None:
        root = os.environ.get("FOOLJAX_DATA")
        if not root:
            raise DataNotFoundError(
                "imagenet_files needs --data_dir (a folder of imagenet_<i>_<label>.jpg) "
                "or FOOLJAX_DATA (uses $FOOLJAX_DATA/foolbox-samples)"
            )
        data_dir = os.path.join(root, "foolbox-samples")
    items = list_imagenet_files(data_dir)
    images = np.stack([load_image_rgb(p) for p, _ in items])
    labels = np.asarray([lab for _, lab in items], np.int32)
    return images, labels


register_dataset("imagenet_files", load_imagenet_files)
