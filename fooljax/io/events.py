"""TensorBoard event files for live curves, with no TensorFlow or TensorBoard
dependency (``metrics.jsonl`` stays the source of truth).

An event file is a TFRecord stream (per record: little-endian ``uint64``
length, masked CRC-32C of it, the payload, masked CRC-32C of the payload) of
``tensorflow.Event`` protobufs. The few fields a scalar needs are encoded here
by hand: ``Event{wall_time=1 (double), step=2 (int64), file_version=3
(string), summary=5}``, ``Summary{value=1 (repeated)}``, ``Summary.Value{tag=1
(string), simple_value=2 (float)}``. ``tensorboard --logdir DIR`` (and the
notebook's ``%tensorboard``) reads them while a run goes.
"""

from __future__ import annotations

import math
import os
import socket
import struct
import time


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as TFRecord uses."""
    c = 0xFFFFFFFF
    for b in data:
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def _masked(data: bytes) -> bytes:
    c = crc32c(data)
    return struct.pack("<I", (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # int64 as protobuf writes negatives
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(number: int, wire: int, payload: bytes) -> bytes:
    return _varint((number << 3) | wire) + payload


def _bytes_field(number: int, data: bytes) -> bytes:
    return _field(number, 2, _varint(len(data)) + data)


def event_bytes(
    wall_time: float,
    step: int | None = None,
    scalars: dict | None = None,
    file_version: str | None = None,
) -> bytes:
    """One serialized ``Event`` (scalars: tag -> number; non-finite and
    non-numbers are skipped)."""
    out = _field(1, 1, struct.pack("<d", wall_time))
    if step is not None:
        out += _field(2, 0, _varint(int(step)))
    if file_version is not None:
        out += _bytes_field(3, file_version.encode())
    if scalars:
        values = b""
        for tag, v in scalars.items():
            if isinstance(v, bool) or not isinstance(v, int | float):
                continue
            if not math.isfinite(float(v)):
                continue
            value = _bytes_field(1, str(tag).encode()) + _field(
                2, 5, struct.pack("<f", float(v))
            )
            values += _bytes_field(1, value)
        out += _bytes_field(5, values)
    return out


def record(data: bytes) -> bytes:
    """One TFRecord around ``data``."""
    n = struct.pack("<Q", len(data))
    return n + _masked(n) + data + _masked(data)


class EventWriter:
    """Appends scalar events to ``DIR/events.out.tfevents.<time>.<host>.<pid>``
    (a new file per writer, as TensorBoard expects; a resumed run starts a new
    file and TensorBoard shows the latest value of each step)."""

    def __init__(self, logdir: str):
        os.makedirs(logdir, exist_ok=True)
        now = time.time()
        name = f"events.out.tfevents.{int(now)}.{socket.gethostname()}.{os.getpid()}"
        self.path = os.path.join(logdir, name)
        with open(self.path, "ab") as f:
            f.write(record(event_bytes(now, file_version="brain.Event:2")))

    def scalars(self, step: int, values: dict, wall_time: float | None = None):
        """Writes ``values`` (tag -> number) at ``step`` (flushed)."""
        self.write([(step, values)], wall_time)

    def write(self, rows, wall_time: float | None = None) -> None:
        """Writes many ``(step, values)`` at once (one open, flushed)."""
        t = time.time() if wall_time is None else wall_time
        with open(self.path, "ab") as f:
            for step, values in rows:
                f.write(record(event_bytes(t, step, values)))
