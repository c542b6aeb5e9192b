"""Genome encodings: how an individual becomes an image."""

from fooljax.encodings import cppn, direct
from fooljax.encodings.base import Encoding
from fooljax.encodings.factory import ENCODINGS, make_encoding, mutation_rate

__all__ = ["ENCODINGS", "Encoding", "cppn", "direct", "make_encoding", "mutation_rate"]
