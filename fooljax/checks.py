"""Input checks shared by every layer: one-line ``InputError``s, run on the host
before anything is compiled.

A leaf module (imports only jax, numpy and ``fooljax.errors``), so the
algorithm packages, the models and the runs layer can all use it. Every check
is cheap: shapes are static, values are looked at only when they are concrete
(a value traced by a caller's ``jit``/``vmap``/``grad`` is unknown here and is
passed through unchecked), and nothing runs per generation.
"""

from __future__ import annotations

import math
import os

import jax
import numpy as np

from fooljax.errors import ConsumedStateError, InputError, TooLargeError

# rows of a probability output must sum to 1 within this
PROB_SUM_TOL = 1e-3


def is_concrete(x) -> bool:
    """False for values traced by a caller's ``jit``/``vmap``/``grad`` (their
    values are unknown here, so the host-side checks are skipped)."""
    return not any(
        isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(x)
    )


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def check_finite(
    name: str,
    value,
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
    hint: str = "",
):
    """A concrete scalar ``value`` must be finite and in the range ``lo..hi``
    (open ends with ``lo_open``/``hi_open``); returned as a Python float. A
    traced value is returned unchecked."""
    if not is_concrete(value):
        return value
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    bad = not math.isfinite(v)
    if lo is not None:
        bad |= v <= lo if lo_open else v < lo
    if hi is not None:
        bad |= v >= hi if hi_open else v > hi
    if bad:
        lo_s = "-inf" if lo is None else _fmt(lo)
        hi_s = "inf" if hi is None else _fmt(hi)
        rng = f"{'(' if lo_open or lo is None else '['}{lo_s}, {hi_s}"
        rng += ")" if hi_open or hi is None else "]"
        raise InputError(
            f"{name} must be in {rng} and finite, got {value}"
            + (f" ({hint})" if hint else "")
        )
    return v


def check_int(name: str, value, lo: int | None = None, hi: int | None = None) -> int:
    """A Python/NumPy integer in ``lo..hi`` (inclusive); returned as ``int``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(f"{name} must be an integer, got {value!r}")
    v = int(value)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        rng = f">= {lo}" if hi is None else f"in {lo}..{hi}"
        raise InputError(f"{name} must be an integer {rng}, got {v}")
    return v


def _dtype(x) -> np.dtype:
    return np.dtype(x.dtype) if hasattr(x, "dtype") else np.asarray(x).dtype


def _shape_str(shape) -> str:
    return "[" + ", ".join(str(int(s)) for s in shape) + "]"


def check_input_shape(
    shape, input_shape, *, model: str = "the model", resizes: bool = False
) -> None:
    """The trailing ``[H, W, C]`` of an image batch must be the model's
    ``input_shape`` (only ``C`` if the model resizes its input). Static."""
    got = tuple(int(s) for s in shape[-3:])
    want = tuple(int(s) for s in input_shape)
    ok = got[-1:] == want[-1:] if resizes else got == want
    if len(shape) < 3 or not ok:
        takes = f"{want[-1]}-channel images" if resizes else _shape_str(want)
        raise InputError(f"images are {_shape_str(shape[-3:])}, {model} takes {takes}")


def check_images(images, input_shape=None, *, name: str = "images") -> None:
    """``images`` must be ``[B, H, W, C]`` floats, finite, in [0, 1]; with
    ``input_shape`` their ``[H, W, C]`` must equal it. Shapes are checked even
    when traced (they are static); values only when concrete."""
    shape = tuple(np.shape(images))
    if len(shape) != 4:
        raise InputError(f"{name} must be [B, H, W, C], got shape {list(shape)}")
    if shape[0] < 1 or min(shape[1:]) < 1:
        raise InputError(f"{name} must be a non-empty [B, H, W, C], got {list(shape)}")
    if input_shape is not None:
        check_input_shape(shape, input_shape)
    dtype = _dtype(images)
    if not np.issubdtype(dtype, np.floating):
        raise InputError(
            f"{name} must be float in [0, 1], got dtype {dtype} (divide uint8 "
            "pixels by 255)"
        )
    if not is_concrete(images):
        return  # inside a caller's jit/vmap: values are not known here
    a = np.asarray(images)
    finite = np.isfinite(a)
    if not finite.all():
        i = int(np.argwhere(~finite)[0][0])
        raise InputError(
            f"{name} must be finite pixels in [0, 1]; image {i} holds NaN/inf"
        )
    lo, hi = float(a.min()), float(a.max())
    if lo < 0.0 or hi > 1.0:
        raise InputError(
            f"{name} must lie in the pixel box [0, 1]; got values in "
            f"[{lo:.4g}, {hi:.4g}]"
        )


def check_labels(
    labels,
    num_classes: int | None,
    what: str = "label",
    batch: int | None = None,
) -> None:
    """``labels`` must be ``[batch]`` integers in ``0..num_classes - 1``.
    Shapes always (static), values only when concrete; ``num_classes`` None:
    only the sign is checked."""
    shape = tuple(np.shape(labels))
    if batch is not None and shape != (batch,):
        raise InputError(
            f"{what}s must be [{batch}] (one per image), got {list(shape)}"
        )
    dtype = _dtype(labels)
    if not np.issubdtype(dtype, np.integer):
        raise InputError(f"{what}s must be integers, got dtype {dtype}")
    if not is_concrete(labels):
        return
    a = np.asarray(labels)
    hi = np.inf if num_classes is None else num_classes
    bad = a[(a < 0) | (a >= hi)]
    if bad.size:
        classes = "classes >= 0" if num_classes is None else f"classes 0..{hi - 1}"
        raise InputError(f"unknown {what} {int(bad.flat[0])}: the model has {classes}")


def check_finite_outputs(outputs, what: str = "the model") -> None:
    """Concrete model outputs must be finite (NaN weights make every input
    "fool" a model)."""
    a = np.asarray(outputs)
    if not np.all(np.isfinite(a)):
        raise InputError(
            f"{what} returns non-finite outputs (NaN/inf) on the first image: "
            "check its weights"
        )


def check_probabilities(
    outputs, name: str = "probs_fn", hint: str = "pass op.probs_from_logits(logits_fn)"
) -> None:
    """Concrete ``[N, K]`` outputs must be probabilities: >= 0, rows summing
    to 1 within ``PROB_SUM_TOL`` (catches logits passed as probabilities)."""
    a = np.asarray(outputs, np.float64)
    sums = a.sum(-1)
    if a.size and (a.min() < 0 or np.max(np.abs(sums - 1.0)) > PROB_SUM_TOL):
        worst = float(sums.flat[int(np.argmax(np.abs(sums - 1.0)))])
        raise InputError(
            f"{name} does not return probabilities (row sums {worst:.4g}, "
            f"min {a.min():.4g}): {hint}"
        )


def check_not_consumed(tree, what: str = "state") -> None:
    """Refuses a pytree with a deleted (donated) buffer, before the call that
    would otherwise fail inside XLA with "Array has been deleted"."""
    for leaf in jax.tree_util.tree_leaves(tree):
        deleted = getattr(leaf, "is_deleted", None)
        if deleted is not None and not isinstance(leaf, jax.core.Tracer) and deleted():
            raise ConsumedStateError(
                f"this {what} was consumed by an earlier run_chunk call (its "
                "buffers are donated); pass the state that call returned"
            )


def memory_limit() -> tuple[int, str]:
    """``(bytes, where)``: the default device's ``bytes_limit`` when it reports
    one (GPU/TPU), else the host's physical memory."""
    try:
        stats = jax.devices()[0].memory_stats() or {}
    except Exception:  # backends without memory statistics
        stats = {}
    if stats.get("bytes_limit"):
        return int(stats["bytes_limit"]), f"{jax.devices()[0].platform} memory"
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 62, "host memory"
    return int(ram), "host memory"


def _gib(n: float) -> str:
    return f"{n / 2**30:.3g} GiB"


def check_memory(nbytes: float, what: str) -> None:
    """Refuses ``what`` if its estimated ``nbytes`` exceed the memory limit."""
    limit, where = memory_limit()
    if nbytes > limit:
        raise TooLargeError(
            f"{what} needs about {_gib(nbytes)}, more than the {_gib(limit)} of "
            f"{where}: use fewer images or a smaller population/eval_batch"
        )
