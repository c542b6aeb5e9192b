"""Orbax checkpoints of explicit state pytrees, in a run's work directory.

Orbax writes each step into a temporary directory and renames it when complete,
so a crash never leaves a half-written checkpoint visible. Typed PRNG keys are
stored as their raw ``key_data`` and re-wrapped on restore.

Integrity: after each ``save(step)`` a manifest ``<step>.sha256.json`` next to
orbax's step directories (orbax ignores files that are not step directories)
records ``{"step": step, "files": {relative path: sha256}}`` for every file of
the step; manifests of steps orbax deleted (``max_to_keep``) are removed.
``restore_latest_good`` checks the manifest before restoring, falls back to the
newest intact step with one warning, and refuses (``WorkdirError``) when none is
intact. Steps without a manifest (runs from before manifests, or a crash between
orbax's commit and the manifest) are accepted unchecked, as before.

Multi-process (``jax.distributed``): every process calls ``save`` and
``restore*`` with the same global state (orbax writes each process's shards and
commits once); process 0 alone writes and cleans the manifests, and the others
wait for it, so all of them then see the same steps.
"""

from __future__ import annotations

import json
import logging
import os

import jax
import numpy as np
from jax.experimental import multihost_utils

from fooljax.errors import WeightsError, WorkdirError
from fooljax.io import integrity
from fooljax.io.params import check_shapes

log = logging.getLogger("fooljax")
MANIFEST = ".sha256.json"


def _ocp():
    """``orbax.checkpoint``, imported on first use: 0.17 s of start-up that a
    run need not wait for before its first checkpoint (``preload``)."""
    import orbax.checkpoint as ocp

    return ocp


def preload() -> None:
    """Imports orbax (on a background thread while a run's first chunk
    computes, so its first checkpoint does not wait for the import)."""
    _ocp()


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

    A thin, synchronous wrapper over ``orbax.checkpoint.CheckpointManager``
    plus a sha256 manifest per step (module docstring). Use it as a context
    manager (or call ``close``) so orbax's threads end on every path. Orbax's
    manager (and import) waits for the first call that needs it.
    """

    def __init__(self, directory: str, *, max_to_keep: int = 2):
        self.directory = os.path.abspath(directory)
        self._max_to_keep = max_to_keep
        self._manager = None

    @property
    def _mngr(self):
        if self._manager is None:
            ocp = _ocp()
            self._manager = ocp.CheckpointManager(
                self.directory,
                options=ocp.CheckpointManagerOptions(
                    max_to_keep=self._max_to_keep,
                    create=True,
                    enable_async_checkpointing=False,
                ),
            )
        return self._manager

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def latest_step(self) -> int | None:
        """The newest step on disk, verified or not (see ``newest_good_step``)."""
        return self._mngr.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(int(s) for s in self._mngr.all_steps())

    def _manifest(self, step: int) -> str:
        return os.path.join(self.directory, f"{int(step)}{MANIFEST}")

    def _step_dir(self, step: int) -> str:
        return os.path.join(self.directory, str(int(step)))

    def save(self, step: int, state) -> None:
        step = int(step)
        if jax.process_index() == 0 and os.path.exists(self._manifest(step)):
            os.remove(self._manifest(step))
        self._mngr.save(
            step, args=_ocp().args.StandardSave(_to_storable(state)), force=True
        )
        self._mngr.wait_until_finished()
        if jax.process_index() == 0:
            self._write_manifest(step)
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices(f"fooljax checkpoint {step}")

    def _write_manifest(self, step: int) -> None:
        root = self._step_dir(step)
        files = {}
        for dirpath, _, names in os.walk(root):
            for name in names:
                p = os.path.join(dirpath, name)
                files[os.path.relpath(p, root)] = integrity.sha256_file(p)
        manifest = {"step": step, "files": dict(sorted(files.items()))}
        integrity.write_verified(
            self._manifest(step), (json.dumps(manifest, indent=1) + "\n").encode()
        )
        self._clean_manifests()

    def _clean_manifests(self) -> None:
        if jax.process_index() != 0:
            return
        kept = set(self.all_steps())
        for name in os.listdir(self.directory):
            if name.endswith(MANIFEST) or name.endswith(MANIFEST + integrity.SIDECAR):
                head = name.split(".", 1)[0]
                if head.isdigit() and int(head) not in kept:
                    os.remove(os.path.join(self.directory, name))

    def check_step(self, step: int) -> str | None:
        """``None`` when ``step`` matches its manifest (or has none); otherwise
        why not, naming the file."""
        path = self._manifest(step)
        if not os.path.exists(path):
            return None
        try:
            manifest = json.loads(integrity.read_verified(path))
            files = manifest["files"]
        except (integrity.ChecksumError, ValueError, KeyError, TypeError):
            return f"{path} damaged"
        root = self._step_dir(step)
        for rel, digest in files.items():
            p = os.path.join(root, rel)
            if not os.path.isfile(p):
                return f"{p} missing"
            if integrity.sha256_file(p) != digest:
                return f"{p} checksum mismatch"
        return None

    def newest_good_step(self) -> tuple[int | None, list[tuple[int, str]]]:
        """``(step, damaged)``: the newest step that passes ``check_step``
        (``None``: no such step) and the newer ``(step, why)`` that do not."""
        damaged = []
        for step in reversed(self.all_steps()):
            why = self.check_step(step)
            if why is None:
                return step, damaged
            damaged.append((step, why))
        return None, damaged

    def restore_latest_good(self, template):
        """``(step, state)`` from the newest intact step, ``None`` when there
        are no steps at all.

        A damaged newer step is never resumed silently: one warning names it and
        the step resumed from, and the damaged steps are deleted (the run
        recomputes them identically). ``WorkdirError`` when no step is intact.
        """
        step, damaged = self.newest_good_step()
        if damaged and step is None:
            bad, why = damaged[0]
            raise WorkdirError(
                f"checkpoint {bad} in {self.directory} is damaged ({why}) and no "
                "older checkpoint is intact; start a new --workdir or pass --overwrite"
            )
        if step is None:
            return None
        state = self.restore(step, template)
        if damaged:
            bad, why = damaged[0]
            log.warning(
                "checkpoint %d in %s is damaged (%s); resuming from %d",
                bad,
                self.directory,
                why,
                step,
            )
            for bad, _ in damaged:
                self._mngr.delete(bad)
            self._mngr.reload()
            self._clean_manifests()
        return step, state

    def restore(self, step: int, template):
        abstract = _to_storable(template)
        try:
            restored = self._mngr.restore(
                int(step), args=_ocp().args.StandardRestore(abstract)
            )
        except Exception as e:  # orbax raises many types for corrupt files
            raise WorkdirError(
                f"checkpoint {step} in {self.directory} is corrupt or does not fit "
                f"this run ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
                "delete it or start a new work directory"
            ) from None
        return _from_storable(restored, template)

    def close(self) -> None:
        if self._manager is not None:
            self._manager.close()


def restore_params_dir(path: str, template):
    """Params from a training work directory (``DIR``, ``DIR/checkpoints``) or a
    single orbax checkpoint directory holding ``{"params": ...}`` state.

    Weights are not resumed from an older step: a latest step that does not
    match its manifest is refused (``WeightsError`` naming the file).
    """
    candidates = [os.path.join(path, "checkpoints"), path]
    for c in candidates:
        if not os.path.isdir(c):
            continue
        try:
            ckpt = Checkpointer(c)
            ckpt.all_steps()  # orbax opens the directory (or fails) here
        except Exception:
            continue
        with ckpt:
            step = ckpt.latest_step()
            if step is None:
                continue
            why = ckpt.check_step(step)
            if why is not None:
                raise WeightsError(f"checkpoint {step} in {c} is damaged ({why})")
            try:
                restored = ckpt._mngr.restore(step, args=_ocp().args.StandardRestore())
            except Exception as e:
                msg = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
                raise WeightsError(f"cannot restore checkpoint in {c}: {msg}") from None
        params = restored["params"] if "params" in restored else restored
        if "params" not in params:
            params = {"params": params}
        params = jax.tree_util.tree_map(np.asarray, params)
        check_shapes(params, template, c)
        return params
    raise WeightsError(
        f"no checkpoint found in {path} (looked in {', '.join(candidates)})"
    )
