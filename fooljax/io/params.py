"""Parameter pytrees as flat ``.npz`` files, and shape checks against a model.

Keys are the ``/``-joined pytree path (``params/conv1/kernel``); optional JSON
metadata rides along as the ``__metadata__`` byte array. Files are written to a
temporary name and renamed, so a crash never leaves a half-written file.
"""

from __future__ import annotations

import json
import os

import jax
import numpy as np

from fooljax.errors import WeightsError


def read_head(path: str | os.PathLike, size: int) -> bytes:
    """The first ``size`` bytes of a file, ``b""`` if it cannot be read: weights
    formats are detected from content, never from the file name."""
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except OSError:
        return b""


def looks_like_npz(path: str | os.PathLike) -> bool:
    """A zip archive (``np.savez``): the local-file-header magic ``PK\\x03\\x04``."""
    return read_head(path, 4) == b"PK\x03\x04"


def flatten_params(params) -> dict[str, np.ndarray]:
    """``{"params": {"conv1": {"kernel": ...}}}`` -> ``{"params/conv1/kernel": ...}``."""
    flat = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        key = "/".join(str(getattr(p, "key", p)) for p in path)
        flat[key] = np.asarray(leaf)
    return flat


def unflatten_params(flat: dict[str, np.ndarray]) -> dict:
    """The inverse of ``flatten_params`` (leaves become ``jax.Array``)."""
    tree: dict = {}
    for key, value in flat.items():
        node = tree
        parts = key.split("/")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        # device_put, not jnp.asarray: that stages one small XLA program per
        # leaf (a compile each in a fresh process); same values and dtypes
        node[parts[-1]] = jax.device_put(value)
    return tree


def save_params_npz(path: str, params, metadata: dict | None = None) -> None:
    """Writes params (and optional JSON metadata) to ``path`` atomically."""
    flat = flatten_params(params)
    if metadata is not None:
        flat["__metadata__"] = np.frombuffer(
            json.dumps(metadata).encode(), dtype=np.uint8
        )
    tmp = path + ".tmp.npz"
    np.savez(tmp, **flat)
    os.replace(tmp, path)


def load_params_npz(path: str, template=None):
    """Reads params saved by ``save_params_npz``; checks shapes against ``template``."""
    try:
        with np.load(path) as z:
            flat = {k: z[k] for k in z.files if k != "__metadata__"}
    except Exception as e:  # truncated or garbage archives raise many types
        raise WeightsError(
            f"cannot read params file {path} (truncated or not an .npz: "
            f"{type(e).__name__})"
        ) from None
    params = unflatten_params(flat)
    if template is not None:
        check_shapes(params, template, path)
    return params


def check_shapes(params, template, source: str) -> None:
    """Raises ``WeightsError`` naming ``source`` unless ``params`` has exactly the
    leaves of ``template`` with the same shapes, all finite."""
    want = {  # shapes only: the template may hold jax.ShapeDtypeStruct leaves
        "/".join(str(getattr(p, "key", p)) for p in path): leaf
        for path, leaf in jax.tree_util.tree_leaves_with_path(template)
    }
    got = flatten_params(params)
    if set(want) != set(got):
        missing = sorted(set(want) - set(got))
        extra = sorted(set(got) - set(want))
        raise WeightsError(
            f"{source}: parameters do not fit the model (missing {missing[:3]}, "
            f"unexpected {extra[:3]})"
        )
    for name, w in want.items():
        if w.shape != got[name].shape:
            raise WeightsError(
                f"{source}: '{name}' has shape {got[name].shape}, "
                f"the model expects {w.shape}"
            )
        if not np.all(np.isfinite(got[name])):
            raise WeightsError(
                f"{source}: '{name}' holds NaN or infinite values (every input "
                "would then 'fool' the model); the weights are damaged"
            )
