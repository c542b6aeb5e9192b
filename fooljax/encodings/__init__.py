"""Genome encodings: how an individual becomes an image."""

from fooljax.encodings import direct

__all__ = ["direct"]
