"""The runs layer: everything that wires a model, data, a work directory and an
algorithm together (see BUILD_NOTES.md, "Layers").

One module per experiment family (``fooling``, ``gradient``, ``one_pixel``,
``train``), each with a frozen config dataclass whose absl flags are generated
from its fields (``config.define_flags``), a ``run(config, workdir)`` that a
notebook calls directly, and a ``main(argv)`` behind the thin entry points in
``experiments/``. Nothing below this package imports it.
"""

import os
import time


def _process_start() -> float:
    """The wall-clock time this process started (Linux: from ``/proc``, to
    10 ms, so the interpreter's own start-up counts too); elsewhere now."""
    try:
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # starttime
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        age = uptime - ticks / os.sysconf("SC_CLK_TCK")
        return time.time() - age if 0.0 <= age < 600.0 else time.time()
    except (OSError, ValueError, IndexError):
        return time.time()


# Taken before jax is imported, so a run's wall time includes start-up.
PROCESS_T0 = _process_start()
