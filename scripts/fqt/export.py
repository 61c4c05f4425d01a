"""Write a trained model back to .tflite: the source flatbuffer with its weight, bias and
scale bytes patched in place (same sizes), so the graph, names and every other byte stay
as they were. model.tensors[i].tflite_index names each tensor's place in the source.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tflite

from .errors import FqtError
from .ir import DType, Model

_QUANT_SCALE_SLOT = 8  # QuantizationParameters.scale: vtable offset (field 2)
_BUFFER_DATA_SLOT = 4  # Buffer.data: vtable offset (field 0)


def _vector_span(table, slot: int) -> tuple[int, int]:
    o = table._tab.Offset(slot)
    if not o:
        return -1, 0
    return table._tab.Vector(o), table._tab.VectorLen(o)


def _patch(out: bytearray, start: int, payload: bytes, what: str) -> None:
    if start < 0 or start + len(payload) > len(out):
        raise FqtError(f"export: {what} lies outside the source .tflite")
    out[start : start + len(payload)] = payload


def export_tflite(model: Model, source: bytes | str | Path) -> bytes:
    """The source .tflite bytes with the trained constants and scales of `model`."""
    src = Path(source).read_bytes() if isinstance(source, str | Path) else bytes(source)
    out = bytearray(src)
    m = tflite.Model.GetRootAsModel(src, 0)
    sg = m.Subgraphs(0)
    buffer_users: dict[int, int] = {}
    for i in range(sg.TensorsLength()):
        b = sg.Tensors(i).Buffer()
        buffer_users[b] = buffer_users.get(b, 0) + 1
    for t in model.tensors:
        if not t.is_const or t.tflite_index < 0:
            continue
        ft = sg.Tensors(t.tflite_index)
        data = np.ascontiguousarray(
            t.data, np.int8 if t.dtype == DType.INT8 else np.dtype("<i4")
        ).tobytes()
        b = ft.Buffer()
        buf = m.Buffers(b)
        if buffer_users.get(b, 0) > 1:
            raise FqtError(f"export: tensor '{t.name}' shares buffer {b} with another tensor")
        if buf.Offset() > 1:
            start, size = int(buf.Offset()), int(buf.Size())
        else:
            start, size = _vector_span(buf, _BUFFER_DATA_SLOT)
        if size != len(data):
            raise FqtError(f"export: tensor '{t.name}' has {size} bytes, trained {len(data)}")
        _patch(out, start, data, f"tensor '{t.name}' data")
        q = ft.Quantization()
        if q is None:
            continue
        start, n = _vector_span(q, _QUANT_SCALE_SLOT)
        if n == 0:
            continue
        scale = np.asarray(t.quant.scale, "<f4")
        if n != len(scale):
            raise FqtError(f"export: tensor '{t.name}' has {n} scales, trained {len(scale)}")
        _patch(out, start, scale.tobytes(), f"tensor '{t.name}' scales")
    return bytes(out)


def write_tflite(model: Model, source: bytes | str | Path, path: str | Path) -> None:
    Path(path).write_bytes(export_tflite(model, source))
