"""Evolutionary search: MAP-Elites over classes and the shared experiment runner."""

from fooljax.evolution import map_elites
from fooljax.evolution.map_elites import (
    Archive,
    Encoding,
    MapElitesState,
    log_probs_from,
    make_run_chunk,
)

__all__ = [
    "Archive",
    "Encoding",
    "MapElitesState",
    "log_probs_from",
    "make_run_chunk",
    "map_elites",
]
