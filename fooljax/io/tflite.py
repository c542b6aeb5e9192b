"""Read TensorFlow Lite flatbuffers (``.tflite``) without TensorFlow.

The flatbuffer is decoded with the ``tflite`` package (generated schema
bindings over ``flatbuffers``; ``pip install 'fooljax[import]'``). We keep what
a float re-implementation needs: every tensor (name, shape, type, constant
data, quantization parameters) and the operators in execution order with the
options of the convolution, pooling and add ops.

Quantized constants are dequantized as ``scale * (q - zero_point)``, with
per-tensor or per-channel (``quantized_dimension``) scales. Int32 biases have
zero point 0 and scale ``input_scale * weight_scale`` (TFLite's convention), so
the same formula gives their float value.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from fooljax.errors import WeightsError
from fooljax.io.params import read_head

_NP_TYPES = {
    0: np.float32,
    1: np.float16,
    2: np.int32,
    3: np.uint8,
    4: np.int64,
    7: np.int16,
    9: np.int8,
    10: np.float64,
}
_PADDING = {0: "SAME", 1: "VALID"}
_ACTIVATION = {0: None, 1: "relu", 2: "relu_n1_to_1", 3: "relu6", 4: "tanh"}


@dataclasses.dataclass
class TFLiteTensor:
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    data: np.ndarray | None  # constant content (raw, still quantized), or None
    scale: np.ndarray | None = None
    zero_point: np.ndarray | None = None
    quantized_dimension: int = 0

    @property
    def quantized(self) -> bool:
        return self.scale is not None and self.scale.size > 0

    def dequantize(self) -> np.ndarray:
        """The constant's float32 value: ``scale * (q - zero_point)``."""
        if self.data is None:
            raise WeightsError(f"tensor '{self.name}' holds no constant data")
        q = self.data.astype(np.float64)
        if not self.quantized or self.dtype in (np.float32, np.float16, np.float64):
            return q.astype(np.float32)
        scale = self.scale.astype(np.float64)
        zp = (
            self.zero_point.astype(np.float64)
            if self.zero_point is not None and self.zero_point.size
            else np.zeros_like(scale)
        )
        if scale.size == 1:
            return (scale[0] * (q - zp.reshape(-1)[0])).astype(np.float32)
        axis = self.quantized_dimension
        if q.shape[axis] != scale.size:
            raise WeightsError(
                f"tensor '{self.name}': {scale.size} per-channel scales for "
                f"{q.shape[axis]} channels"
            )
        bshape = [1] * q.ndim
        bshape[axis] = scale.size
        zp = zp if zp.size == scale.size else np.full_like(scale, zp.reshape(-1)[0])
        return (scale.reshape(bshape) * (q - zp.reshape(bshape))).astype(np.float32)


@dataclasses.dataclass
class TFLiteOp:
    type: str  # BuiltinOperator name, e.g. "CONV_2D"
    inputs: list[int]
    outputs: list[int]
    options: dict


@dataclasses.dataclass
class TFLiteGraph:
    tensors: list[TFLiteTensor]
    ops: list[TFLiteOp]
    inputs: list[int]
    outputs: list[int]
    source: str = "tflite"

    def input_tensor(self) -> TFLiteTensor:
        return self.tensors[self.inputs[0]]


def looks_like_tflite(path: str | os.PathLike) -> bool:
    """Content sniff: the flatbuffer file identifier ``TFL3`` at bytes 4..8."""
    return read_head(path, 8)[4:8] == b"TFL3"


def _import_tflite():
    try:
        import tflite  # noqa: F401
    except ImportError:
        raise WeightsError(
            "reading .tflite files needs the 'tflite' package: "
            "pip install 'fooljax[import]' (or pip install tflite)"
        ) from None
    return tflite


def _op_names(tfl) -> dict[int, str]:
    return {
        v: k
        for k, v in vars(tfl.BuiltinOperator).items()
        if not k.startswith("_") and isinstance(v, int)
    }


def _table(cls, table):
    """The options union ``table`` read as the flatbuffer table ``cls``."""
    o = cls()
    o.Init(table.Bytes, table.Pos)
    return o


def _padding_strides(o) -> dict:
    return {
        "padding": _PADDING.get(o.Padding(), o.Padding()),
        "strides": (o.StrideH(), o.StrideW()),
    }


def _activation(o):
    code = o.FusedActivationFunction()
    return _ACTIVATION.get(code, code)


def _options(tfl, op, op_type: str) -> dict:
    table = op.BuiltinOptions()
    if table is None:
        return {}
    if op_type in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        cls = tfl.Conv2DOptions if op_type == "CONV_2D" else tfl.DepthwiseConv2DOptions
        o = _table(cls, table)
        out = {
            **_padding_strides(o),
            "dilation": (o.DilationHFactor(), o.DilationWFactor()),
            "activation": _activation(o),
        }
        if op_type == "DEPTHWISE_CONV_2D":
            out["depth_multiplier"] = o.DepthMultiplier()
        return out
    if op_type in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        o = _table(tfl.Pool2DOptions, table)
        return {
            **_padding_strides(o),
            "window": (o.FilterHeight(), o.FilterWidth()),
            "activation": _activation(o),
        }
    if op_type == "ADD":
        return {"activation": _activation(_table(tfl.AddOptions, table))}
    return {}


def parse_tflite_bytes(buf: bytes, source: str = "tflite") -> TFLiteGraph:
    """Decodes a TFLite flatbuffer (first subgraph). Raises ``WeightsError``."""
    tfl = _import_tflite()
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise WeightsError(f"{source} is not a TFLite model (no 'TFL3' identifier)")
    names = _op_names(tfl)
    try:
        model = tfl.Model.GetRootAsModel(buf, 0)
        if model.SubgraphsLength() < 1:
            raise WeightsError(f"{source}: TFLite model has no subgraph")
        g = model.Subgraphs(0)
        tensors = []
        for i in range(g.TensorsLength()):
            t = g.Tensors(i)
            dtype = _NP_TYPES.get(t.Type())
            shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
            data = None
            b = (
                model.Buffers(t.Buffer())
                if t.Buffer() < model.BuffersLength()
                else None
            )
            if b is not None and b.DataLength() and dtype is not None:
                raw = b.DataAsNumpy().tobytes()
                n = int(np.prod(shape)) if shape else 1
                arr = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"))
                if arr.size != n:
                    raise WeightsError(
                        f"{source}: tensor '{t.Name().decode()}' holds {arr.size} "
                        f"values, its shape {shape} needs {n} (corrupt file?)"
                    )
                data = arr.reshape(shape).astype(dtype)
            q = t.Quantization()
            scale = zp = None
            qdim = 0
            if q is not None and q.ScaleLength():
                scale = q.ScaleAsNumpy().astype(np.float32)
                zp = (
                    q.ZeroPointAsNumpy().astype(np.int64)
                    if q.ZeroPointLength()
                    else None
                )
                qdim = q.QuantizedDimension()
            tensors.append(
                TFLiteTensor(
                    name=t.Name().decode("utf-8", "replace"),
                    shape=shape,
                    dtype=np.dtype(dtype) if dtype is not None else None,
                    data=data,
                    scale=scale,
                    zero_point=zp,
                    quantized_dimension=qdim,
                )
            )
        ops = []
        for k in range(g.OperatorsLength()):
            op = g.Operators(k)
            code = model.OperatorCodes(op.OpcodeIndex())
            num = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            op_type = names.get(num, f"OP{num}")
            ops.append(
                TFLiteOp(
                    type=op_type,
                    inputs=[int(i) for i in op.InputsAsNumpy()],
                    outputs=[int(i) for i in op.OutputsAsNumpy()],
                    options=_options(tfl, op, op_type),
                )
            )
        inputs = [int(i) for i in g.InputsAsNumpy()]
        outputs = [int(i) for i in g.OutputsAsNumpy()]
    except WeightsError:
        raise
    except Exception as e:  # flatbuffers reads past the end of a cut/corrupt file
        raise WeightsError(
            f"{source} is not a valid TFLite model (corrupt: {type(e).__name__}: {e})"
        ) from None
    if not ops or not inputs:
        raise WeightsError(f"{source}: TFLite model has no operators")
    return TFLiteGraph(tensors, ops, inputs, outputs, source)


def load_tflite(path: str | os.PathLike) -> TFLiteGraph:
    """Reads a ``.tflite`` file; ``WeightsError`` when missing, corrupt or not TFLite."""
    try:
        with open(path, "rb") as f:
            buf = f.read()
    except OSError as e:
        raise WeightsError(f"cannot read TFLite file {path}: {e.strerror}") from None
    return parse_tflite_bytes(buf, source=str(path))
