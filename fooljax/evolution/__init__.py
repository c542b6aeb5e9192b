"""Evolutionary search: MAP-Elites over classes and differential evolution."""

from fooljax.encodings import Encoding
from fooljax.evolution import map_elites
from fooljax.evolution.map_elites import (
    Archive,
    MapElitesState,
    log_probs_from,
    make_init_many,
    make_run_chunk,
    make_run_chunk_many,
)

__all__ = [
    "Archive",
    "Encoding",
    "MapElitesState",
    "log_probs_from",
    "make_init_many",
    "make_run_chunk",
    "make_run_chunk_many",
    "map_elites",
]
