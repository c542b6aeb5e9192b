"""The runs layer: everything that wires a model, data, a work directory and an
algorithm together (see BUILD_NOTES.md, "Layers").

One module per experiment family (``fooling``, ``gradient``, ``one_pixel``,
``train``), each with a frozen config dataclass whose absl flags are generated
from its fields (``config.define_flags``), a ``run(config, workdir)`` that a
notebook calls directly, and a ``main(argv)`` behind the thin entry points in
``experiments/``. Nothing below this package imports it.
"""

import time

# Taken before jax is imported, so a run's wall time includes start-up.
PROCESS_T0 = time.time()
