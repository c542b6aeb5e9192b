"""Work directories: one per run; resume, refuse to clobber, atomic writes."""

from __future__ import annotations

import json
import os
import shutil

from fooljax.errors import WorkdirError

SUMMARY = "summary.json"
CONFIG = "config.json"


def atomic_write_text(path: str, text: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


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
        raise WorkdirError(
            f"{workdir} holds a finished run ({SUMMARY} exists); pass --overwrite "
            "to replace it or choose another --workdir"
        )
    os.makedirs(workdir, exist_ok=True)
    normalized = json.loads(json.dumps(config, sort_keys=True))
    if os.path.exists(cfg_path):
        with open(cfg_path) as f:
            try:
                old = json.load(f)
            except json.JSONDecodeError:
                old = None
        if old is not None and old != normalized:
            diff = sorted(
                k for k in set(old) | set(normalized) if old.get(k) != normalized.get(k)
            )
            raise WorkdirError(
                f"{workdir} holds an unfinished run with other settings "
                f"(differs in: {', '.join(diff)}); use the same flags to resume, "
                "or --overwrite"
            )
        resume = old is not None
    else:
        resume = False
    atomic_write_json(cfg_path, normalized)
    return resume


def append_jsonl(path: str, obj) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(obj, sort_keys=True) + "\n")
