"""Shared plumbing for the thin absl entry points in ``experiments/``."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable

from absl import app, flags
from absl import logging as absl_logging

from fooljax.errors import FooljaxError


def run_main(main: Callable[[list[str]], None]) -> None:
    """``absl.app.run(main)``, turning ``FooljaxError`` into one line + exit 2."""

    def wrapped(argv):
        # orbax logs every checkpoint step at INFO through absl; keep the console
        # for fooljax's own progress lines unless --verbosity asks for more.
        if not flags.FLAGS["verbosity"].present:
            absl_logging.set_verbosity(absl_logging.WARNING)
        setup_logging()
        try:
            extra_args(argv)
            main(argv)
        except FooljaxError as e:
            print(f"error: {e}", file=sys.stderr, flush=True)
            sys.exit(2)

    app.run(wrapped)


def setup_logging(level=logging.INFO) -> None:
    """Progress lines of fooljax's logger on stderr, with a timestamp."""
    logger = logging.getLogger("fooljax")
    logger.setLevel(level)
    if not any(getattr(h, "_fooljax", False) for h in logger.handlers):
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(
            logging.Formatter("%(asctime)s fooljax: %(message)s", "%H:%M:%S")
        )
        h._fooljax = True
        logger.addHandler(h)
    logger.propagate = False


def print_json_line(obj: dict) -> None:
    """Prints ``obj`` as the last output line (scripts parse it)."""
    sys.stdout.flush()
    print(json.dumps(obj, sort_keys=True), flush=True)


def extra_args(argv: list[str]) -> None:
    if len(argv) > 1:
        raise FooljaxError(f"unexpected arguments: {' '.join(argv[1:])}")
