"""Shared plumbing for the thin absl entry points in ``experiments/``.

The edge where bad input becomes one line: flags and flagfiles that do not
parse, and the library's ``FooljaxError``, ``ValueError`` and ``OSError``, are
printed as ``error: <message>`` with exit status 2; running out of host or
device memory is one line naming the settings to reduce. Any other exception
is a bug and keeps its traceback.

Every entry point also turns on JAX's persistent compilation cache
(``--compilation_cache``), so a second run of a command starts with its
programs already compiled, and joins JAX's multi-process runtime when asked to
(``--coordinator_address/--num_processes/--process_id`` or ``--distributed``:
``runs.distributed``) before anything touches a device.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Callable

import jax
from absl import app, flags
from absl import logging as absl_logging

from fooljax.errors import FooljaxError
from fooljax.models.foreign import callback_error
from fooljax.runs import config, distributed

EXIT_BAD_INPUT = 2

flags.DEFINE_string(
    "compilation_cache",
    None,
    "Directory of JAX's persistent compilation cache (default: "
    "$JAX_COMPILATION_CACHE_DIR, else $XDG_CACHE_HOME/fooljax/jax, else "
    "~/.cache/fooljax/jax); 'off' turns it off.",
)
MEMORY_HINT = (
    "reduce --population, --batch_size or --eval_batch (or the image size), or "
    "use a machine with more memory"
)


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= 500 else text[:497] + "..."


def is_out_of_memory(e: BaseException) -> bool:
    """Host ``MemoryError`` or an XLA ``RESOURCE_EXHAUSTED`` from any device."""
    return isinstance(e, MemoryError) or (
        type(e).__name__ in ("XlaRuntimeError", "JaxRuntimeError")
        and ("RESOURCE_EXHAUSTED" in str(e) or "Out of memory" in str(e))
    )


def guarded(main: Callable[[list[str]], None], argv: list[str]) -> int:
    """Runs ``main(argv)``; bad input -> one line on stderr and exit status 2."""
    try:
        extra_args(argv)
        main(argv)
    except FooljaxError as e:
        message = _one_line(e)
    except (ValueError, OSError) as e:
        message = f"{type(e).__name__}: {_one_line(e)}"
    except Exception as e:
        foreign = callback_error(e)  # a PyTorch/Keras/ONNX model failed mid-run
        if foreign is not None:
            message = _one_line(foreign)
        elif is_out_of_memory(e):
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
            message = f"out of memory ({type(e).__name__}: {first}); {MEMORY_HINT}"
        else:
            raise
    else:
        return 0
    sys.stdout.flush()
    print(f"error: {message}", file=sys.stderr, flush=True)
    return EXIT_BAD_INPUT


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with a bad flag, a missing or unreadable flagfile
    (not UTF-8, a directory) turned into one line and exit status 2."""
    try:
        return flags.FLAGS(argv)
    except UnicodeDecodeError as e:
        files = [a.split("=", 1)[1] for a in argv if a.startswith("--flagfile=")]
        message = (
            f"flagfile {', '.join(files) or '?'} is not UTF-8 text "
            f"({e.reason} at byte {e.start})"
        )
    except (flags.Error, OSError) as e:
        message = _one_line(e)
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(EXIT_BAD_INPUT)


def default_cache_dir() -> str:
    """Where entry points keep compiled programs unless told otherwise."""
    env = os.environ.get("JAX_COMPILATION_CACHE_DIR")
    if env:
        return env
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(base, "fooljax", "jax")


def configure_compilation_cache(path: str | None) -> str | None:
    """Points JAX's persistent compilation cache at ``path`` (``None``: the
    default directory; ``"off"``: no cache) and caches every program, not only
    those over JAX's 1 s default: most of a run's start-up is many small
    compilations. Returns the directory in use, or ``None``. The cache is keyed
    by the program and the jax/XLA versions and device, so a hit is the
    executable a fresh compile would give: results do not change."""
    if path == "off":
        jax.config.update("jax_enable_compilation_cache", False)
        return None
    path = path or default_cache_dir()
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise FooljaxError(
            f"--compilation_cache={path}: cannot create the directory ({e})"
        ) from e
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_compilation_cache_dir", path)
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return path


def run_main(main: Callable[[list[str]], None]) -> None:
    """``absl.app.run(main)`` behind ``parse_flags`` and ``guarded``."""

    def wrapped(argv):
        # orbax logs every checkpoint step at INFO through absl; keep the console
        # for fooljax's own progress lines unless --verbosity asks for more.
        if not flags.FLAGS["verbosity"].present:
            absl_logging.set_verbosity(absl_logging.WARNING)
        setup_logging()
        code = guarded(_with_cache(main), argv)
        if code == 0 and fast_exit_ok():
            fast_exit()
        sys.exit(code)

    app.run(wrapped, flags_parser=parse_flags)


def fast_exit_ok() -> bool:
    """Whether a finished entry point may skip the interpreter's teardown: one
    process (``jax.distributed`` shuts down at exit), no other live non-daemon
    thread (nothing left to write), no profiler or tracer (cProfile, coverage
    write their files at exit), and ``FOOLJAX_FAST_EXIT`` not ``0``."""
    if os.environ.get("FOOLJAX_FAST_EXIT", "1") == "0":
        return False
    if sys.getprofile() is not None or sys.gettrace() is not None:
        return False
    if distributed.is_multiprocess():
        return False
    main_thread = threading.main_thread()
    return not any(
        t is not main_thread and not t.daemon and t.is_alive()
        for t in threading.enumerate()
    )


def fast_exit() -> None:
    """Exit status 0 without the interpreter's teardown (0.25-0.4 s of module
    and XLA client destruction after a run whose files are all written and
    closed): logs and standard streams are flushed first."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _with_cache(main):
    def cached_main(argv):
        distributed.initialize_from_flags()
        path = configure_compilation_cache(flags.FLAGS.compilation_cache)
        logging.getLogger("fooljax").debug("compilation cache: %s", path)
        main(argv)

    return cached_main


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


def family_main(families: dict, cls):
    """``main(argv)`` of the entry point for the config class ``cls`` of a
    runs module whose ``families`` maps each config class to ``(run_fn,
    headline)``: runs ``run_fn(config, --workdir, overwrite=--overwrite)`` and
    prints ``headline(summary)`` as the last, JSON line."""
    run_fn, headline = families[cls]

    def main(argv) -> None:
        del argv
        fv = flags.FLAGS
        summary = run_fn(config.from_flags(cls), fv.workdir, overwrite=fv.overwrite)
        print(f"results in {fv.workdir}")
        print_json_line(headline(summary))

    return main


def extra_args(argv: list[str]) -> None:
    if len(argv) > 1:
        raise FooljaxError(f"unexpected arguments: {' '.join(argv[1:])}")
