"""Named datasets: ``load_dataset(name, split)`` and the loaders behind it.

Dataset families register themselves in their own modules (``mnist``,
``cifar10``, ``imagenet``), which import this module, never the package
``fooljax.data``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from fooljax.errors import DataNotFoundError, FooljaxError

T = TypeVar("T")

_DATASETS: dict[str, Callable] = {}


def register_dataset(name: str, loader) -> None:
    """``loader(split, data_dir=None, source=...) -> (images uint8, labels int32)``."""
    _DATASETS[name] = loader


def load_dataset(name: str, split: str = "test", data_dir=None, source: str = "idx"):
    """Returns ``(images [N, H, W, C] uint8, labels [N] int32)`` for a named set."""
    if name not in _DATASETS:
        raise FooljaxError(
            f"unknown dataset '{name}' (known: {', '.join(sorted(_DATASETS))})"
        )
    return _DATASETS[name](split, data_dir=data_dir, source=source)


def first_found(*loaders: Callable[[], T]) -> T:
    """The result of the first loader that finds its files; when none does, one
    ``DataNotFoundError`` that joins every loader's message (each names the
    places it tried), in order."""
    missing = []
    for load in loaders:
        try:
            return load()
        except DataNotFoundError as e:
            missing.append(str(e))
    raise DataNotFoundError("; and ".join(missing))
