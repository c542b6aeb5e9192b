"""Read Caffe ``.caffemodel`` (V1 ``layers`` and V2 ``layer``) and ``.binaryproto``.

No Caffe and no compiled protobuf schema: a small protobuf wire-format reader
decodes just the fields we need from ``caffe.proto``:

- ``NetParameter``: name=1, layers=2 (V1LayerParameter), layer=100 (LayerParameter).
- ``V1LayerParameter``: name=4, type=5 (enum), blobs=6; V0 nested layer=1
  (V0LayerParameter: name=1, type=2, blobs=50).
- ``LayerParameter``: name=1, type=2 (string), blobs=7.
- ``BlobProto``: num=1, channels=2, height=3, width=4, data=5 (packed float),
  shape=7 (``BlobShape``: dim=1, packed int64), double_data=8.

Weights are mapped onto Flax parameter trees by layer name: convolutions from
Caffe's (O, I/groups, kh, kw) to Flax's (kh, kw, I/groups, O), fully connected
layers from (out, in) to (in, out). For the first fully connected layer after a
convolution, Caffe flattens in C,H,W order while our NHWC modules flatten in
H,W,C order, so those rows are permuted at import time (``flatten_chw``).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from fooljax.errors import WeightsError
from fooljax.io.params import read_head

_WIRE_VARINT, _WIRE_64, _WIRE_LEN, _WIRE_32 = 0, 1, 2, 5


class _Truncated(Exception):
    pass


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    n = len(buf)
    while True:
        if pos >= n:
            raise _Truncated("varint runs past the end of the data")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 70:
            raise _Truncated("varint longer than 10 bytes")


def _fields(buf: memoryview):
    """Yields ``(field_number, wire_type, value)``; LEN values are memoryviews."""
    pos, n = 0, len(buf)
    while pos < n:
        tag, pos = _varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        if field == 0:
            raise _Truncated("field number 0")
        if wire == _WIRE_VARINT:
            value, pos = _varint(buf, pos)
        elif wire == _WIRE_64:
            if pos + 8 > n:
                raise _Truncated("fixed64 runs past the end")
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == _WIRE_LEN:
            length, pos = _varint(buf, pos)
            if pos + length > n:
                raise _Truncated(
                    f"field {field} claims {length} bytes, only {n - pos} remain"
                )
            value, pos = buf[pos : pos + length], pos + length
        elif wire == _WIRE_32:
            if pos + 4 > n:
                raise _Truncated("fixed32 runs past the end")
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise _Truncated(f"unsupported wire type {wire} (field {field})")
        yield field, wire, value


@dataclasses.dataclass
class CaffeLayer:
    name: str
    type: str
    blobs: list[np.ndarray]


# V1LayerParameter.LayerType enum values that carry weights (caffe.proto).
_V1_TYPES = {
    4: "Convolution",
    14: "InnerProduct",
    15: "LRN",
    17: "Pooling",
    18: "ReLU",
    20: "Softmax",
    5: "Data",
    6: "Dropout",
    21: "SoftmaxWithLoss",
    1: "Accuracy",
    3: "Concat",
    19: "Sigmoid",
    23: "TanH",
    29: "MemoryData",
}


def _parse_blob(buf: memoryview) -> np.ndarray:
    legacy = {1: 0, 2: 0, 3: 0, 4: 0}
    shape: list[int] | None = None
    chunks: list[np.ndarray] = []
    doubles: list[np.ndarray] = []
    for field, wire, value in _fields(buf):
        if field in legacy and wire == _WIRE_VARINT:
            legacy[field] = value
        elif field in (5, 8) and isinstance(value, int):
            # bytes(int) would allocate that many zeros: garbage, not data
            raise _Truncated(f"blob data field {field} has wire type {wire}")
        elif field == 5:  # data: packed floats, or one fixed32 per element
            dtype = np.dtype("<f4")
            raw = bytes(value)
            if wire == _WIRE_LEN and len(raw) % 4:
                raise _Truncated("float data length is not a multiple of 4")
            chunks.append(np.frombuffer(raw, dtype))
        elif field == 8:
            raw = bytes(value)
            doubles.append(np.frombuffer(raw, np.dtype("<f8")))
        elif field == 7 and wire == _WIRE_LEN:
            shape = []
            for f2, w2, v2 in _fields(value):
                if f2 != 1:
                    continue
                if w2 == _WIRE_LEN:  # packed int64
                    p = 0
                    while p < len(v2):
                        d, p = _varint(v2, p)
                        shape.append(d)
                else:
                    shape.append(v2)
    data = np.concatenate(chunks) if chunks else np.zeros((0,), np.float32)
    if doubles and not chunks:
        data = np.concatenate(doubles).astype(np.float32)
    if shape is None:
        dims = [legacy[1], legacy[2], legacy[3], legacy[4]]
        shape = dims if any(dims) else [data.size]
    if int(np.prod(shape)) != data.size:
        raise _Truncated(
            f"blob of shape {tuple(shape)} holds {data.size} values, "
            f"expected {int(np.prod(shape))}"
        )
    return data.reshape(shape).astype(np.float32)


def _text(value: memoryview) -> str:
    return bytes(value).decode("utf-8", "replace")


def _parse_layer(
    buf: memoryview, name_field: int, type_field: int, blob_field: int
) -> CaffeLayer:
    """One layer message: V2 ``LayerParameter`` (name 1, type 2, blobs 7), V1
    ``V1LayerParameter`` (name 4, type 5 as an enum, blobs 6, and an old
    ``V0LayerParameter`` in field 1 whose name, type and blobs are used where
    the V1 fields give none) or V0 (name 1, type 2, blobs 50)."""
    name, type_, blobs = "", "", []
    v1 = name_field == 4
    for field, wire, value in _fields(buf):
        if field == name_field and wire == _WIRE_LEN:
            name = _text(value)
        elif field == type_field and wire == _WIRE_LEN:
            type_ = _text(value)
        elif field == type_field and wire == _WIRE_VARINT and v1:
            type_ = _V1_TYPES.get(value, f"V1Type{value}")
        elif field == blob_field and wire == _WIRE_LEN:
            blobs.append(_parse_blob(value))
        elif field == 1 and wire == _WIRE_LEN and v1:
            v0 = _parse_layer(value, 1, 2, 50)
            name, type_ = name or v0.name, type_ or v0.type
            blobs.extend(v0.blobs)
    return CaffeLayer(name, type_, blobs)


def _read(path: str | os.PathLike) -> memoryview:
    try:
        with open(path, "rb") as f:
            return memoryview(f.read())
    except OSError as e:
        raise WeightsError(f"cannot read Caffe file {path}: {e.strerror}") from None


def parse_caffemodel_bytes(data: bytes | memoryview) -> list[CaffeLayer]:
    """Parses a binary ``NetParameter``; returns its layers in file order."""
    buf = memoryview(data)
    layers: list[CaffeLayer] = []
    for field, wire, value in _fields(buf):
        if field == 2 and wire == _WIRE_LEN:
            layers.append(_parse_layer(value, 4, 5, 6))
        elif field == 100 and wire == _WIRE_LEN:
            layers.append(_parse_layer(value, 1, 2, 7))
    return layers


def load_caffemodel(path: str | os.PathLike) -> dict[str, CaffeLayer]:
    """Reads a ``.caffemodel`` into ``{layer name: CaffeLayer}`` (layers with blobs).

    Raises ``WeightsError`` for a missing, truncated or non-Caffe file.
    """
    buf = _read(path)
    try:
        layers = parse_caffemodel_bytes(buf)
    except (_Truncated, ValueError, IndexError, OverflowError, UnicodeDecodeError) as e:
        # garbage can parse as protobuf fields and fail later, in NumPy
        raise WeightsError(
            f"{path} is not a valid caffemodel (corrupt: {type(e).__name__}: {e})"
        ) from None
    out = {layer.name: layer for layer in layers if layer.blobs}
    if not out:
        raise WeightsError(f"{path} is not a caffemodel: no layers with weights found")
    return out


def looks_like_caffemodel(path: str | os.PathLike) -> bool:
    """Cheap content sniff: does the file start like a NetParameter?"""
    head = read_head(path, 64)
    if not head:
        return False
    # NetParameter starts with name (field 1, LEN: 0x0a) or layers (0x12) or
    # layer (field 100, LEN: 0xa2 0x06).
    return head[0] in (0x0A, 0x12) or head[:2] == b"\xa2\x06"


def load_binaryproto(path: str | os.PathLike) -> np.ndarray:
    """Reads a mean ``BlobProto``; returns it as ``[H, W, C]`` float32.

    Caffe stores the mean as (1, C, H, W) (or (C, H, W)).
    """
    buf = _read(path)
    try:
        blob = _parse_blob(buf)
    except (_Truncated, ValueError, IndexError, OverflowError, UnicodeDecodeError) as e:
        # garbage can parse as protobuf fields and fail later, in NumPy
        raise WeightsError(
            f"{path} is not a valid binaryproto blob ({type(e).__name__}: {e})"
        ) from None
    if blob.ndim == 4 and blob.shape[0] == 1:
        blob = blob[0]
    if blob.ndim != 3 or blob.size == 0:
        raise WeightsError(
            f"{path}: expected a (1, C, H, W) mean blob, got {blob.shape}"
        )
    return np.ascontiguousarray(blob.transpose(1, 2, 0))


def caffe_to_flax(
    layers: dict[str, CaffeLayer],
    template: dict,
    *,
    flatten_chw: dict[str, tuple[int, int, int]] | None = None,
    source: str = "caffemodel",
) -> dict:
    """Maps Caffe layers onto a Flax ``{"params": {...}}`` tree shaped like ``template``.

    ``template``: parameters from ``model.init`` (only shapes are used).
    ``flatten_chw``: for a dense layer fed by a flattened conv map, its Caffe
    (C, H, W) input layout, so its rows are permuted to NHWC flatten order.
    Raises ``WeightsError`` naming the first missing layer or misfitting shape.
    """
    flatten_chw = flatten_chw or {}
    params = template["params"]
    out = {}
    for name, leaves in params.items():
        if name not in layers:
            raise WeightsError(
                f"{source} has no layer '{name}' (it has: {', '.join(layers)}); "
                "is it a weights file for another architecture?"
            )
        blobs = layers[name].blobs
        kernel_t = np.asarray(leaves["kernel"].shape)
        w = blobs[0]
        if len(kernel_t) == 4:  # conv: (O, I, kh, kw) -> (kh, kw, I, O)
            w = w.reshape(w.shape[-4:]) if w.ndim > 4 else w
            if w.ndim != 4:
                raise WeightsError(f"{source}: layer '{name}' is not a convolution")
            w = w.transpose(2, 3, 1, 0)
        else:  # fc: (out, in) -> (in, out); V1 blobs are (1, 1, out, in)
            w = w.reshape(w.shape[-2:])
            if name in flatten_chw:
                c, h, wd = flatten_chw[name]
                if w.shape[1] != c * h * wd:
                    raise WeightsError(
                        f"{source}: layer '{name}' has {w.shape[1]} inputs, "
                        f"the model expects {c * h * wd}"
                    )
                w = w.reshape(w.shape[0], c, h, wd).transpose(0, 2, 3, 1)
                w = w.reshape(w.shape[0], -1)
            w = w.T
        if tuple(w.shape) != tuple(kernel_t):
            raise WeightsError(
                f"{source}: layer '{name}' weights have shape {tuple(w.shape)}, "
                f"the model expects {tuple(kernel_t)}"
            )
        entry = {"kernel": np.ascontiguousarray(w, np.float32)}
        if "bias" in leaves:
            if len(blobs) < 2:
                raise WeightsError(f"{source}: layer '{name}' has no bias blob")
            b = blobs[1].reshape(-1)
            if b.shape != tuple(leaves["bias"].shape):
                raise WeightsError(
                    f"{source}: layer '{name}' bias has {b.shape[0]} values, "
                    f"the model expects {leaves['bias'].shape[0]}"
                )
            entry["bias"] = b.astype(np.float32)
        out[name] = entry
    return {"params": out}
