"""Datasets as NumPy arrays: ``images [N, H, W, C] uint8``, ``labels [N] int32``."""

# Importing a family module registers its datasets.
from fooljax.data import cifar10, imagenet, mnist
from fooljax.data.mnist import load_mnist
from fooljax.data.registry import load_dataset, register_dataset

__all__ = [
    "cifar10",
    "imagenet",
    "load_dataset",
    "load_mnist",
    "mnist",
    "register_dataset",
]
