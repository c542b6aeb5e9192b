"""Orbax checkpoints of explicit state pytrees, in a run's work directory.

Orbax writes each step into a temporary directory and renames it when complete,
so a crash never leaves a half-written checkpoint visible. Typed PRNG keys are
stored as their raw ``key_data`` and re-wrapped on restore.
"""

from __future__ import annotations

import os

import jax
import numpy as np
import orbax.checkpoint as ocp

from fooljax.errors import WeightsError, WorkdirError
from fooljax.io.params import check_shapes


def _is_key(x) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _to_storable(tree):
    return jax.tree_util.tree_map(
        lambda x: (
            jax.random.key_data(x)
            if _is_key(x)
            else np.asarray(x)
            if not isinstance(x, jax.Array)
            else x
        ),
        tree,
    )


def _from_storable(tree, template):
    return jax.tree_util.tree_map(
        lambda x, t: (
            jax.random.wrap_key_data(x, impl=jax.random.key_impl(t))
            if _is_key(t)
            else x
        ),
        tree,
        template,
    )


class Checkpointer:
    """Saves/restores one state pytree per step under ``directory``.

    A thin, synchronous wrapper over ``orbax.checkpoint.CheckpointManager``.
    """

    def __init__(self, directory: str, *, max_to_keep: int = 2):
        self.directory = os.path.abspath(directory)
        self._mngr = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False
            ),
        )

    def latest_step(self) -> int | None:
        return self._mngr.latest_step()

    def save(self, step: int, state) -> None:
        self._mngr.save(
            int(step), args=ocp.args.StandardSave(_to_storable(state)), force=True
        )
        self._mngr.wait_until_finished()

    def restore(self, step: int, template):
        abstract = _to_storable(template)
        try:
            restored = self._mngr.restore(
                int(step), args=ocp.args.StandardRestore(abstract)
            )
        except Exception as e:  # orbax raises many types for corrupt files
            raise WorkdirError(
                f"checkpoint {step} in {self.directory} is corrupt or does not fit "
                f"this run ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
                "delete it or start a new work directory"
            ) from None
        return _from_storable(restored, template)

    def close(self) -> None:
        self._mngr.close()


def restore_params_dir(path: str, template):
    """Params from a training work directory (``DIR``, ``DIR/checkpoints``) or a
    single orbax checkpoint directory holding ``{"params": ...}`` state."""
    candidates = [os.path.join(path, "checkpoints"), path]
    for c in candidates:
        if not os.path.isdir(c):
            continue
        try:
            ckpt = Checkpointer(c)
        except Exception:
            continue
        step = ckpt.latest_step()
        if step is None:
            continue
        try:
            restored = ckpt._mngr.restore(step, args=ocp.args.StandardRestore())
        except Exception as e:
            raise WeightsError(f"cannot restore checkpoint in {c}: {e}") from None
        params = restored["params"] if "params" in restored else restored
        if "params" not in params:
            params = {"params": params}
        params = jax.tree_util.tree_map(np.asarray, params)
        check_shapes(params, template, c)
        return params
    raise WeightsError(
        f"no checkpoint found in {path} (looked in {', '.join(candidates)})"
    )
