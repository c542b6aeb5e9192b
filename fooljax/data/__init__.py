"""Datasets as NumPy arrays: ``images [N, H, W, C] uint8``, ``labels [N] int32``."""

from fooljax.data.mnist import load_mnist

__all__ = ["load_mnist", "load_dataset", "register_dataset"]

from fooljax.errors import FooljaxError  # noqa: E402

_DATASETS = {"mnist": load_mnist}


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


# Dataset families register themselves in their own modules (keep this last).
from fooljax.data import cifar10 as _cifar10  # noqa: E402,F401
from fooljax.data import imagenet as _imagenet  # noqa: E402,F401
