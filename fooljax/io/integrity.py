"""Checksums of everything a run saves, checked when the run reads it back.

On-disk format:

- ``<file>.sha256`` sidecar next to a file: one line ``<hex sha256>  <name>``
  (``sha256sum -c`` reads it from the file's directory). ``write_verified``
  removes the old sidecar, writes the file atomically (temporary name, fsync,
  ``os.replace``), then writes the new sidecar the same way, so a crash leaves
  either a matching sidecar or none, never a stale one.
- JSON-lines rows carry ``"crc32"``: ``zlib.crc32`` of the canonical JSON
  (``sort_keys``, default separators) of the row's other keys.

A file without a sidecar was written before checksums existed or by a run that
crashed between the file and its sidecar; each caller decides what that means
(``has_checksum``): partial results are treated as not saved (recomputed),
an old ``config.json`` is accepted if it parses.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib

from fooljax.errors import WorkdirError

SIDECAR = ".sha256"
CRC_KEY = "crc32"


class ChecksumError(WorkdirError):
    """A saved file (or row) does not match its recorded checksum."""

    def __init__(self, message: str, path: str):
        super().__init__(message)
        self.path = path


def sidecar(path: str) -> str:
    return path + SIDECAR


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Writes ``data`` to a temporary name, fsyncs it and renames it to ``path``."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_verified(path: str, data: bytes) -> None:
    """``data`` to ``path`` atomically, then its sidecar ``path.sha256``."""
    side = sidecar(path)
    if os.path.exists(side):
        os.remove(side)
    atomic_write_bytes(path, data)
    name = os.path.basename(path)
    atomic_write_bytes(side, f"{sha256_bytes(data)}  {name}\n".encode())


def write_json_verified(path: str, obj) -> None:
    write_verified(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def has_checksum(path: str) -> bool:
    return os.path.exists(sidecar(path))


def read_verified(path: str) -> bytes:
    """The bytes of ``path``, checked against its sidecar when it has one.

    Raises ``ChecksumError`` (a ``WorkdirError``, one line naming the file) when
    the sidecar disagrees or cannot be read; ``FileNotFoundError`` when ``path``
    does not exist. Without a sidecar the bytes are returned unchecked: see
    ``has_checksum`` and the module docstring.
    """
    with open(path, "rb") as f:
        data = f.read()
    side = sidecar(path)
    if not os.path.exists(side):
        return data
    with open(side, "rb") as f:
        recorded = f.read().decode("ascii", "replace").split(maxsplit=1)
    actual = sha256_bytes(data)
    if not recorded or recorded[0] != actual:
        raise ChecksumError(
            f"{path} is damaged (checksum mismatch with {os.path.basename(side)})",
            path,
        )
    return data


def _crc(obj: dict) -> int:
    return zlib.crc32(json.dumps(obj, sort_keys=True).encode())


def jsonl_line(obj: dict) -> str:
    """``obj`` as one JSON line with its ``crc32``."""
    body = {k: v for k, v in obj.items() if k != CRC_KEY}
    return json.dumps({**body, CRC_KEY: _crc(body)}, sort_keys=True) + "\n"


def read_jsonl_verified(path: str) -> tuple[list[dict], str | None]:
    """``(rows, problem)``: the rows of ``path`` up to the first damaged one.

    ``problem`` is ``None`` or one line naming the file and line. A file whose
    rows have no ``crc32`` (written before checksums) is accepted; in a file
    with checksums a row without one is damaged (a flip in the key's name). A
    torn last line (a crash mid-append) ends the rows without a problem.
    """
    if not os.path.exists(path):
        return [], None
    with open(path, "rb") as f:
        text = f.read()
    lines = text.split(b"\n")
    checked = f'"{CRC_KEY}": '.encode() in text
    rows = []
    for i, raw in enumerate(lines):
        if not raw.strip():
            continue
        last = all(not rest.strip() for rest in lines[i + 1 :])
        try:
            row = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            if last and not raw.endswith(b"}"):
                return rows, None  # torn by a crash while appending
            return rows, f"{path} line {i + 1} is damaged (not JSON)"
        if not isinstance(row, dict):
            return rows, f"{path} line {i + 1} is damaged (not a JSON object)"
        if CRC_KEY in row:
            crc = row.pop(CRC_KEY)
            if crc != _crc(row):
                return rows, f"{path} line {i + 1} is damaged (crc32 mismatch)"
        elif checked:
            return rows, f"{path} line {i + 1} is damaged (no crc32)"
        rows.append(row)
    return rows, None
