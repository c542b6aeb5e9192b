"""JAX's multi-process runtime for every entry point (TPU pod slices, Slurm GPU
clusters, several CPU processes on one host).

``initialize()`` (called by ``cli.run_main`` before anything touches a device)
starts ``jax.distributed`` when asked to, from flags or the environment:

* ``--coordinator_address=HOST:PORT --num_processes=N --process_id=I`` (or
  ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``);
* ``--distributed`` (or ``FOOLJAX_DISTRIBUTED=1``): let JAX detect the cluster
  (Cloud TPU pod slice, Slurm, Open MPI) and fill in what is unset.

Nothing set: a no-op, one process, nothing changes. Every process runs the
same program; arrays are global over ``jax.devices()`` (all processes'
devices); only process 0 writes the work directory (``is_main``), which must
be on a filesystem every process sees (checkpoints are written by all of them
through orbax). The helpers here are what the runners need to stay in step:
``main_first`` (run a host step on process 0, the others get its result or its
error), ``broadcast_json``, ``fetch`` (host copy of a global array), and
``split_rows`` / ``gather_rows`` (each process takes a contiguous share of a
batch; every process gets all rows back, in order).
"""

from __future__ import annotations

import io
import itertools
import json
import os
from collections.abc import Callable

import jax
import numpy as np
from absl import flags
from jax._src import distributed as jax_distributed
from jax._src import xla_bridge
from jax.experimental import multihost_utils
from jax.extend import backend

from fooljax.errors import FooljaxError

flags.DEFINE_string(
    "coordinator_address",
    None,
    "Multi-process: HOST:PORT of process 0's coordinator (default "
    "$JAX_COORDINATOR_ADDRESS); with --num_processes and --process_id.",
)
flags.DEFINE_integer(
    "num_processes",
    None,
    "Multi-process: number of processes (default $JAX_NUM_PROCESSES).",
)
flags.DEFINE_integer(
    "process_id",
    None,
    "Multi-process: this process's index, 0..num_processes-1 (default "
    "$JAX_PROCESS_ID).",
)
flags.DEFINE_bool(
    "distributed",
    False,
    "Multi-process with the cluster detected by JAX (Cloud TPU pod slice, "
    "Slurm, Open MPI); also $FOOLJAX_DISTRIBUTED=1.",
)

ENV = {
    "coordinator_address": "JAX_COORDINATOR_ADDRESS",
    "num_processes": "JAX_NUM_PROCESSES",
    "process_id": "JAX_PROCESS_ID",
}
_MESSAGE_BYTES = 1024


def _env_int(name: str) -> int | None:
    value = os.environ.get(ENV[name])
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise FooljaxError(f"${ENV[name]} must be an integer, got '{value}'") from None


def settings(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    auto: bool = False,
) -> dict | None:
    """The arguments for ``jax.distributed.initialize`` (the environment fills
    in what is not given), ``None`` when multi-process is not asked for.
    Refuses inconsistent values with one line."""
    coordinator_address = coordinator_address or os.environ.get(
        ENV["coordinator_address"]
    )
    if num_processes is None:
        num_processes = _env_int("num_processes")
    if process_id is None:
        process_id = _env_int("process_id")
    auto = auto or os.environ.get("FOOLJAX_DISTRIBUTED", "") not in ("", "0")
    given = (coordinator_address, num_processes, process_id)
    if not auto and all(v is None for v in given):
        return None
    if num_processes is not None and num_processes < 1:
        raise FooljaxError(f"--num_processes must be >= 1, got {num_processes}")
    if process_id is not None and (
        process_id < 0 or (num_processes is not None and process_id >= num_processes)
    ):
        raise FooljaxError(
            f"--process_id must be in [0, {num_processes}), got {process_id}"
            if num_processes is not None
            else f"--process_id must be >= 0, got {process_id}"
        )
    if not auto and any(v is None for v in given):
        missing = [f"--{k}" for k, v in zip(ENV, given, strict=True) if v is None]
        raise FooljaxError(
            f"multi-process needs --coordinator_address, --num_processes and "
            f"--process_id (missing {', '.join(missing)}), or --distributed to "
            "detect the cluster"
        )
    return dict(
        coordinator_address=coordinator_address,
        num_processes=num_processes,
        process_id=process_id,
    )


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    auto: bool = False,
) -> bool:
    """Starts ``jax.distributed`` when asked (``settings``); True when it did.

    Call before anything touches a device. A second call is a no-op."""
    kw = settings(coordinator_address, num_processes, process_id, auto)
    if kw is None or jax.distributed.is_initialized():
        return False
    if xla_bridge.backends_are_initialized():
        # a module built a constant array at import (evosax does): drop that
        # single-process client; such constants still work (they are copied
        # where they are used), and every computation of the run comes after
        backend.clear_backends()
    try:
        jax.distributed.initialize(**kw)
    except (ValueError, RuntimeError, TypeError) as e:
        raise FooljaxError(
            f"jax.distributed.initialize failed: {' '.join(str(e).split())[:300]}"
        ) from None
    return True


def initialize_from_flags() -> bool:
    fv = flags.FLAGS
    return initialize(
        fv.coordinator_address, fv.num_processes, fv.process_id, fv.distributed
    )


def is_multiprocess() -> bool:
    return jax.process_count() > 1


def is_main() -> bool:
    """True on the process that writes the work directory (process 0)."""
    return jax.process_index() == 0


def _client():
    """JAX's distributed-runtime client (``None`` when ``jax.distributed`` was
    not started, e.g. a TPU pod run without it)."""
    return jax_distributed.global_state.client


_TIMEOUT_MS = 30 * 60 * 1000  # a peer may still be compiling or attacking
_exchanges = itertools.count()


def exchange(data: bytes) -> list[bytes]:
    """Every process's ``data``, in process order, on every process (all of
    them must call this, in the same order). Host bytes through the
    coordinator's key-value store: no device program to compile per size.
    Falls back to device collectives when there is no client."""
    n, me, count = next(_exchanges), jax.process_index(), jax.process_count()
    client = _client()
    if client is None:
        return _exchange_collective(data)
    client.key_value_set_bytes(f"fooljax/x{n}/{me}", data)
    got = [
        client.blocking_key_value_get_bytes(f"fooljax/x{n}/{i}", _TIMEOUT_MS)
        for i in range(count)
    ]
    if n:  # every process finished exchange n - 1 before it wrote this one
        client.key_value_delete(f"fooljax/x{n - 1}/{me}")
    return got


def _exchange_collective(data: bytes) -> list[bytes]:
    sizes = multihost_utils.process_allgather(np.asarray(len(data), np.int32))
    cap = 1 << max(int(np.max(sizes)) - 1, 0).bit_length()  # few shapes
    buf = np.zeros(cap, np.uint8)
    buf[: len(data)] = np.frombuffer(data, np.uint8)
    bufs = multihost_utils.process_allgather(buf)
    return [bytes(np.asarray(b[:k])) for b, k in zip(bufs, sizes, strict=True)]


def broadcast_json(obj):
    """Process 0's JSON-able ``obj`` on every process (one process: ``obj``)."""
    if not is_multiprocess():
        return obj
    data = json.dumps(obj).encode() if is_main() else b""
    return json.loads(exchange(data)[0])


def main_first(fn: Callable, *args, **kwargs):
    """``fn(*args, **kwargs)`` on process 0 only (a host step that reads or
    writes the work directory); every process returns its JSON-able result.
    When it raises ``FooljaxError`` there, every process raises one with the
    same line, so all of them stop together."""
    if not is_multiprocess():
        return fn(*args, **kwargs)
    out, error = {"ok": None, "error": None}, None
    if is_main():
        try:
            out["ok"] = fn(*args, **kwargs)
        except FooljaxError as e:
            error = e
            out["error"] = str(e)[:_MESSAGE_BYTES]
    out = broadcast_json(out)
    if error is not None:
        raise error
    if out["error"] is not None:
        raise FooljaxError(f"process 0: {out['error']}")
    return out["ok"]


def fetch(tree):
    """Host NumPy copy of a pytree of (global) arrays on every process.

    Arrays whose data is all here (one process, or fully replicated) are read
    locally; others are gathered from every process (a collective: every
    process must call this with the same tree). Typed PRNG keys stay as they
    are (they have no NumPy form)."""

    def one(x):
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(
            x.dtype, jax.dtypes.prng_key
        ):
            return x
        if not isinstance(x, jax.Array) or x.is_fully_addressable:
            return np.asarray(jax.device_get(x))
        if x.is_fully_replicated:
            return np.asarray(x.addressable_data(0))
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))

    return jax.tree_util.tree_map(one, tree)


def split_rows(n: int) -> slice:
    """This process's contiguous share of ``n`` rows (the first ``n % P``
    processes take one more; a share may be empty)."""
    p, i = jax.process_count(), jax.process_index()
    size, extra = divmod(n, p)
    lo = i * size + min(i, extra)
    return slice(lo, lo + size + (i < extra))


def gather_rows(part: dict, n: int) -> dict:
    """Every process's ``split_rows(n)`` share of ``part`` (dict of arrays,
    rows first) -> the ``n`` rows on every process, in order (exact bytes)."""
    if not is_multiprocess():
        return {k: np.asarray(v) for k, v in part.items()}
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in part.items()})
    parts = []
    for data in exchange(buf.getvalue()):
        with np.load(io.BytesIO(data)) as z:
            parts.append({k: z[k] for k in z.files})
    out = {k: np.concatenate([p[k] for p in parts]) for k in part}
    if any(len(v) != n for v in out.values()):
        raise FooljaxError(f"gathered {len(next(iter(out.values())))} rows, not {n}")
    return out
