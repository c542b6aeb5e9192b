"""Counts XLA compilations: ``with count_compiles() as c: ...; c.count``.

JAX records the ``/jax/core/compile/backend_compile_duration`` event (via
``jax.monitoring``) around every backend compilation, a persistent-cache hit
included, and never for a call served by an in-memory jit cache. So a second
call that compiles nothing reused everything: no retracing, no new jit.
"""

from __future__ import annotations

import contextlib
import dataclasses

import jax

BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


@dataclasses.dataclass
class Compiles:
    names: list[str] = dataclasses.field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.names)


@contextlib.contextmanager
def count_compiles():
    compiles = Compiles()

    def listener(event, duration_secs, **kwargs):
        if event == BACKEND_COMPILE_EVENT:
            compiles.names.append(str(kwargs.get("fun_name", "?")))

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield compiles
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
