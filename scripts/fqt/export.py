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
_QUANT_ZERO_POINT_SLOT = 10  # QuantizationParameters.zero_point (field 3), int64
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


def _buffer_span(m, b: int) -> tuple[int, int]:
    buf = m.Buffers(b)
    if buf.Offset() > 1:
        return int(buf.Offset()), int(buf.Size())
    return _vector_span(buf, _BUFFER_DATA_SLOT)


def _tensor_bytes(t) -> bytes:
    return np.ascontiguousarray(
        t.data, np.int8 if t.dtype == DType.INT8 else np.dtype("<i4")
    ).tobytes()


def _schema():
    """A flatbuffer object API for the TFLite schema (to add buffers): the reference
    runtimes' generated schema, whichever is installed (the `ref` extra)."""
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        try:
            from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema
        except ImportError:
            return None
    return schema


def _source_bytes(source: bytes | str | Path) -> bytes:
    if isinstance(source, str | Path):
        try:
            return Path(source).read_bytes()
        except OSError as e:
            raise FqtError(f"{source}: cannot read: {e.strerror}") from None
    return bytes(source)


def _shared_buffers(sg) -> dict[int, int]:
    users: dict[int, int] = {}
    for i in range(sg.TensorsLength()):
        b = sg.Tensors(i).Buffer()
        users[b] = users.get(b, 0) + 1
    return users


def check_exportable(model: Model, source: bytes | str | Path) -> None:
    """Raise FqtError now, before any training, if export_tflite could not write `model`'s
    constants back into `source`: a tensor the source does not have, a buffer or a scale
    vector of another size, or a shared buffer with no schema library to split it."""
    src = _source_bytes(source)
    try:
        m = tflite.Model.GetRootAsModel(src, 0)
        sg = m.Subgraphs(0)
        users = _shared_buffers(sg)
        for t in model.tensors:
            if not t.is_const or t.tflite_index < 0:
                continue
            if t.tflite_index >= sg.TensorsLength():
                raise FqtError(f"export: tensor '{t.name}' is not in the source .tflite")
            ft = sg.Tensors(t.tflite_index)
            b = ft.Buffer()
            if not 0 < b < m.BuffersLength():
                raise FqtError(f"export: tensor '{t.name}' has no buffer in the source")
            start, size = _buffer_span(m, b)
            if size != t.nbytes or start < 0 or start + size > len(src):
                raise FqtError(
                    f"export: tensor '{t.name}' has {size} bytes in the source, the model "
                    f"{t.nbytes}"
                )
            if users.get(b, 0) > 1 and _schema() is None:
                raise FqtError(
                    f"export: tensor '{t.name}' shares buffer {b}; splitting it needs "
                    "ai-edge-litert or tflite-micro (pip install fqt[ref])"
                )
    except FqtError:
        raise
    except Exception as e:  # a corrupt flatbuffer
        raise FqtError(f"export: cannot read the source .tflite ({type(e).__name__})") from None


def _split_buffers(src: bytes, tensor_indices: list[int]) -> bytes:
    """The source with each listed tensor moved to a new buffer of its own (a copy of its
    shared buffer's bytes); everything else as it was."""
    schema = _schema()
    if schema is None:
        raise FqtError("export: splitting a shared buffer needs ai-edge-litert or tflite-micro")
    import flatbuffers

    mt = schema.ModelT.InitFromPackedBuf(bytearray(src), 0)
    sg = mt.subgraphs[0]
    for ti in tensor_indices:
        old = mt.buffers[sg.tensors[ti].buffer]
        nb = schema.BufferT()
        nb.data = None if old.data is None else np.array(old.data, np.uint8).copy()
        mt.buffers.append(nb)
        sg.tensors[ti].buffer = len(mt.buffers) - 1
    builder = flatbuffers.Builder(len(src) + 1024)
    builder.Finish(mt.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def export_tflite(model: Model, source: bytes | str | Path) -> bytes:
    """The source .tflite bytes with the trained constants and scales of `model`.

    A constant whose buffer other tensors share (converters share one zero-bias buffer
    among layers) is left alone while training did not change it; one that training
    changed first gets a buffer of its own, so the other users keep their bytes."""
    src = _source_bytes(source)
    check_exportable(model, src)
    m = tflite.Model.GetRootAsModel(src, 0)
    sg = m.Subgraphs(0)
    users = _shared_buffers(sg)
    split = []
    for t in model.tensors:
        if not t.is_const or t.tflite_index < 0:
            continue
        b = sg.Tensors(t.tflite_index).Buffer()
        start, size = _buffer_span(m, b)
        if users.get(b, 0) > 1 and src[start : start + size] != _tensor_bytes(t):
            split.append(t.tflite_index)
    if split:
        src = _split_buffers(src, split)
        m = tflite.Model.GetRootAsModel(src, 0)
        sg = m.Subgraphs(0)
        users = _shared_buffers(sg)
    out = bytearray(src)
    for t in model.tensors:
        if not t.is_const or t.tflite_index < 0:
            continue
        ft = sg.Tensors(t.tflite_index)
        data = _tensor_bytes(t)
        b = ft.Buffer()
        start, size = _buffer_span(m, b)
        if size != len(data):
            raise FqtError(f"export: tensor '{t.name}' has {size} bytes, trained {len(data)}")
        if users.get(b, 0) == 1:
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
    _patch_activations(model, sg, out)
    return bytes(out)


def _patch_activations(model: Model, sg, out: bytearray) -> None:
    """Activation tensors (learned ranges, docs/training-semantics.md 7.3): their one
    scale (float32) and zero point (int64) in place, where the source has both."""
    for t in model.tensors:
        if t.is_const or t.tflite_index < 0 or len(t.quant.scale) != 1:
            continue
        q = sg.Tensors(t.tflite_index).Quantization()
        if q is None:
            continue
        s_start, n_s = _vector_span(q, _QUANT_SCALE_SLOT)
        z_start, n_z = _vector_span(q, _QUANT_ZERO_POINT_SLOT)
        if n_s != 1 or n_z != 1:
            continue
        _patch(out, s_start, np.asarray(t.quant.scale, "<f4").tobytes(), f"'{t.name}' scale")
        zp = np.asarray(t.quant.zero_point, "<i8")
        _patch(out, z_start, zp.tobytes(), f"'{t.name}' zero point")


def write_tflite(model: Model, source: bytes | str | Path, path: str | Path) -> None:
    Path(path).write_bytes(export_tflite(model, source))
