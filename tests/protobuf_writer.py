"""A tiny protobuf wire-format *writer* to build test caffemodels/binaryprotos."""

import struct

import numpy as np


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_len(num: int, payload: bytes) -> bytes:
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def field_varint(num: int, value: int) -> bytes:
    return varint(num << 3) + varint(value)


def blob(arr: np.ndarray, *, legacy: bool = False, packed: bool = True) -> bytes:
    arr = np.asarray(arr, np.float32)
    out = b""
    if legacy:
        dims = (1,) * (4 - arr.ndim) + arr.shape
        for i, d in enumerate(dims):
            out += field_varint(i + 1, d)
    else:
        out += field_len(7, field_len(1, b"".join(varint(d) for d in arr.shape)))
    flat = arr.reshape(-1)
    if packed:
        out += field_len(5, flat.astype("<f4").tobytes())
    else:
        out += b"".join(varint(5 << 3 | 5) + struct.pack("<f", v) for v in flat)
    return out


def layer_v1(name: str, type_enum: int, blobs: list[np.ndarray]) -> bytes:
    body = field_len(4, name.encode()) + field_varint(5, type_enum)
    for b in blobs:
        body += field_len(6, blob(b, legacy=True))
    return field_len(2, body)


def layer_v2(name: str, type_: str, blobs: list[np.ndarray]) -> bytes:
    body = field_len(1, name.encode()) + field_len(2, type_.encode())
    for b in blobs:
        body += field_len(7, blob(b))
    return field_len(100, body)


def lenet_caffe_layers(rng: np.random.Generator):
    """Random Caffe-shaped LeNet weights: {name: (W, b)}."""
    return {
        "conv1": (rng.normal(size=(20, 1, 5, 5)), rng.normal(size=20)),
        "conv2": (rng.normal(size=(50, 20, 5, 5)) * 0.1, rng.normal(size=50)),
        "ip1": (rng.normal(size=(500, 800)) * 0.05, rng.normal(size=500)),
        "ip2": (rng.normal(size=(10, 500)) * 0.05, rng.normal(size=10)),
    }


def lenet_caffemodel(weights, *, v2: bool) -> bytes:
    out = field_len(1, b"LeNet")
    for name, (w, b) in weights.items():
        if v2:
            t = "Convolution" if w.ndim == 4 else "InnerProduct"
            out += layer_v2(name, t, [w, b])
        else:
            t = 4 if w.ndim == 4 else 14
            out += layer_v1(name, t, [w, b])
    return out
