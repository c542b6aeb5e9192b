"""Work directories: one per run; resume, refuse to clobber, atomic writes.

``config.json`` and ``summary.json`` are written with a ``.sha256`` sidecar
(``io.integrity``). A ``config.json`` that cannot be read (not JSON, not an
object, checksum mismatch) is refused, never restarted over: the steps and
partial results next to it belong to some run, and only ``--overwrite`` may
discard them. A ``config.json`` without a sidecar (a work directory from before
checksums) is accepted if it parses, and gets its sidecar on this start.
"""

from __future__ import annotations

import json
import os
import shutil

from fooljax.errors import WorkdirError
from fooljax.io import integrity

SUMMARY = "summary.json"
CONFIG = "config.json"


def atomic_write_text(path: str, text: str) -> None:
    integrity.atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def prepare_workdir(workdir: str, config: dict, *, overwrite: bool = False) -> bool:
    """Creates or reopens ``workdir`` for a run with ``config``.

    Returns True when a previous, unfinished run with the same config is there to
    resume. A finished run (``summary.json`` present) is refused unless
    ``overwrite``, which deletes the old run's contents. A run with other
    settings is refused: resuming it would not be the run asked for.
    """
    if not workdir:
        raise WorkdirError("--workdir is empty")
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise WorkdirError(f"workdir {workdir} exists and is not a directory")
    summary = os.path.join(workdir, SUMMARY)
    cfg_path = os.path.join(workdir, CONFIG)
    if os.path.isdir(workdir) and overwrite:
        for name in os.listdir(workdir):
            p = os.path.join(workdir, name)
            shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
    elif os.path.exists(summary):
        _check_summary(workdir, summary)
        raise WorkdirError(
            f"{workdir} holds a finished run ({SUMMARY} exists); pass --overwrite "
            "to replace it or choose another --workdir"
        )
    os.makedirs(workdir, exist_ok=True)
    normalized = json.loads(json.dumps(config, sort_keys=True))
    old = _read_config(workdir, cfg_path)
    if old is not None and old != normalized:
        diff = sorted(
            k for k in set(old) | set(normalized) if old.get(k) != normalized.get(k)
        )
        raise WorkdirError(
            f"{workdir} holds an unfinished run with other settings "
            f"(differs in: {', '.join(diff)}); use the same flags to resume, "
            "or --overwrite"
        )
    integrity.write_json_verified(cfg_path, normalized)
    return old is not None


def _damaged(workdir: str, what: str, why: str) -> WorkdirError:
    return WorkdirError(
        f"{what} in {workdir} is damaged ({why}): start a new --workdir or pass "
        "--overwrite"
    )


def _check_summary(workdir: str, summary: str) -> None:
    try:
        integrity.read_verified(summary)
    except integrity.ChecksumError:
        raise WorkdirError(
            f"{workdir} holds a finished run whose {SUMMARY} is damaged (checksum "
            "mismatch); pass --overwrite to replace it or choose another --workdir"
        ) from None


def _read_config(workdir: str, cfg_path: str) -> dict | None:
    """The config of the run in ``workdir``, ``None`` when there is none."""
    if not os.path.exists(cfg_path):
        if integrity.has_checksum(cfg_path):
            raise _damaged(workdir, CONFIG, "missing, its checksum is there")
        return None
    try:
        data = integrity.read_verified(cfg_path)
    except integrity.ChecksumError:
        raise _damaged(workdir, CONFIG, "checksum mismatch") from None
    except OSError as e:
        raise _damaged(workdir, CONFIG, f"unreadable: {e.strerror}") from None
    try:
        old = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _damaged(workdir, CONFIG, "not valid JSON") from None
    if not isinstance(old, dict):
        raise _damaged(workdir, CONFIG, "not a JSON object")
    return old


def append_jsonl(path: str, obj) -> None:
    """Appends ``obj`` as one JSON line with its ``crc32`` (``io.integrity``)."""
    with open(path, "a") as f:
        f.write(integrity.jsonl_line(obj))


def rewrite_jsonl(path: str, rows: list[dict]) -> None:
    """Replaces ``path`` (atomically) by ``rows``, each with its ``crc32``."""
    atomic_write_text(path, "".join(integrity.jsonl_line(r) for r in rows))


def write_summary(workdir: str, summary: dict) -> dict:
    """``summary.json`` (with its checksum), written last: the run is finished."""
    integrity.write_json_verified(os.path.join(workdir, SUMMARY), summary)
    return summary
