"""The model blob: write, read back and emit as C (layout in docs/blob-format.md)."""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from .errors import BlobFormatError
from .ir import Activation, DType, Layer, LayerParams, Model, OpType, Padding, Quant, Tensor

MAGIC = 0x42545146  # "FQTB"
VERSION_MAJOR = 1
VERSION_MINOR = 0
HEADER_SIZE = 64
TENSOR_RECORD_SIZE = 48
LAYER_RECORD_SIZE = 80
FLAG_FLOAT_INPUT = 1
FLAG_FLOAT_OUTPUT = 2
TENSOR_FLAG_CONST = 1
LAYER_FLAG_TRAINABLE = 1

_HEADER = struct.Struct("<IHHII8H4I16s")
_TENSOR = struct.Struct("<BBBB4iIIIIIiI")
_LAYER = struct.Struct("<BBBB4h4h4h2h2iIII7i")
assert _HEADER.size == HEADER_SIZE
assert _TENSOR.size == TENSOR_RECORD_SIZE
assert _LAYER.size == LAYER_RECORD_SIZE


class _DataSection:
    """Appends 4-byte-aligned arrays and hands back their offsets."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def add(self, arr: np.ndarray) -> int:
        self.buf.extend(b"\0" * (-len(self.buf) % 4))
        off = len(self.buf)
        self.buf.extend(np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes())
        return off


def _extras(layer: Layer, p: LayerParams) -> list[int]:
    if layer.op == OpType.ADD:
        return [
            p.left_shift,
            p.input1_multiplier,
            p.input1_shift,
            p.input2_multiplier,
            p.input2_shift,
            0,
            0,
        ]
    if layer.op == OpType.SOFTMAX:
        return [p.input_multiplier, p.input_left_shift, p.diff_min, 0, 0, 0, 0]
    return [0] * 7


def write_blob(model: Model, trainable: set[int] | None = None) -> bytes:
    """Serialize `model` (with model.params filled by prepare()) to blob bytes."""
    if len(model.params) != len(model.layers):
        raise ValueError("model.params must be filled (fqt.prepare.prepare) before writing")
    trainable = trainable or set()
    data = _DataSection()
    tensor_records = []
    for t in model.tensors:
        shape = list(t.shape) + [1] * (4 - len(t.shape))
        scale_off = data.add(t.quant.scale.astype(np.float32))
        zp_off = data.add(t.quant.zero_point.astype(np.int32))
        data_off, data_size, flags = 0, 0, 0
        if t.data is not None:
            data_off = data.add(t.data.astype(np.int8 if t.dtype == DType.INT8 else np.int32))
            data_size = t.nbytes
            flags |= TENSOR_FLAG_CONST
        tensor_records.append(
            _TENSOR.pack(
                int(t.dtype),
                len(t.shape),
                flags,
                t.quant.axis,
                *shape,
                len(t.quant.scale),
                scale_off,
                zp_off,
                data_off,
                data_size,
                t.tflite_index,
                0,
            )
        )
    layer_records = []
    for layer, p in zip(model.layers, model.params, strict=True):
        ins = [*layer.inputs, -1, -1, -1][:3]
        n_ch = len(p.output_multiplier)
        mult_off = data.add(p.output_multiplier.astype(np.int32)) if n_ch else 0
        shift_off = data.add(p.output_shift.astype(np.int32)) if n_ch else 0
        flags = LAYER_FLAG_TRAINABLE if layer.index in trainable else 0
        layer_records.append(
            _LAYER.pack(
                int(layer.op),
                int(layer.activation),
                int(layer.padding),
                flags,
                *ins,
                layer.output,
                layer.stride_h,
                layer.stride_w,
                layer.filter_h,
                layer.filter_w,
                layer.dilation_h,
                layer.dilation_w,
                layer.depth_multiplier,
                p.pad_h,
                p.pad_w,
                0,
                p.act_min,
                p.act_max,
                n_ch,
                mult_off,
                shift_off,
                *_extras(layer, p),
            )
        )
    tensors_off = HEADER_SIZE
    layers_off = tensors_off + TENSOR_RECORD_SIZE * len(tensor_records)
    data_off = layers_off + LAYER_RECORD_SIZE * len(layer_records)
    data.buf.extend(b"\0" * (-len(data.buf) % 4))
    total = data_off + len(data.buf)
    flags = (FLAG_FLOAT_INPUT if model.float_input else 0) | (
        FLAG_FLOAT_OUTPUT if model.float_output else 0
    )
    body = b"".join(tensor_records) + b"".join(layer_records) + bytes(data.buf)
    name = model.name.encode("ascii", "replace")[:15]
    header_tail = struct.pack(
        "<8H4I16s",
        HEADER_SIZE,
        len(model.tensors),
        len(model.layers),
        TENSOR_RECORD_SIZE,
        LAYER_RECORD_SIZE,
        model.input,
        model.output,
        flags,
        tensors_off,
        layers_off,
        data_off,
        len(data.buf),
        name,
    )
    crc = zlib.crc32(header_tail + body) & 0xFFFFFFFF
    header = struct.pack("<IHHII", MAGIC, VERSION_MAJOR, VERSION_MINOR, total, crc) + header_tail
    blob = header + body
    assert len(blob) == total
    return blob


@dataclass
class BlobInfo:
    version: tuple[int, int]
    total_size: int
    crc32: int
    trainable: set[int]


def read_blob(blob: bytes) -> tuple[Model, BlobInfo]:
    """Parse and validate a blob back into a Model (with params). Raise BlobFormatError."""

    def fail(msg: str) -> BlobFormatError:
        return BlobFormatError(f"bad model blob: {msg}")

    if len(blob) < HEADER_SIZE:
        raise fail(f"{len(blob)} bytes, shorter than the {HEADER_SIZE}-byte header")
    (
        magic,
        vmaj,
        vmin,
        total,
        crc,
        hsize,
        n_t,
        n_l,
        tsize,
        lsize,
        inp,
        out,
        flags,
        t_off,
        l_off,
        d_off,
        d_size,
        raw_name,
    ) = _HEADER.unpack_from(blob, 0)
    if magic != MAGIC:
        raise fail(f"magic 0x{magic:08x}, expected 0x{MAGIC:08x}")
    if vmaj != VERSION_MAJOR:
        raise fail(f"version {vmaj}.{vmin}, this tool reads {VERSION_MAJOR}.x")
    if total > len(blob) or total < HEADER_SIZE:
        raise fail(f"total_size {total} but {len(blob)} bytes present")
    if zlib.crc32(blob[16:total]) & 0xFFFFFFFF != crc:
        raise fail("CRC mismatch")
    if (hsize, tsize, lsize) != (HEADER_SIZE, TENSOR_RECORD_SIZE, LAYER_RECORD_SIZE):
        raise fail("record sizes differ from version 1")
    if t_off + n_t * tsize > total or l_off + n_l * lsize > total or d_off + d_size != total:
        raise fail("tables or data section out of bounds")
    data = blob[d_off:total]

    def array(off: int, count: int, dtype: str) -> np.ndarray:
        size = count * np.dtype(dtype).itemsize
        if off % 4 or off + size > len(data):
            raise fail(f"array at data offset {off} ({size} bytes) out of bounds")
        return np.frombuffer(data, dtype, count, off).copy()

    tensors: list[Tensor] = []
    for i in range(n_t):
        (
            dt,
            rank,
            tflags,
            axis,
            s0,
            s1,
            s2,
            s3,
            qn,
            sc_off,
            zp_off,
            dat_off,
            dat_size,
            tfl_i,
            _r,
        ) = _TENSOR.unpack_from(blob, t_off + i * tsize)
        if dt not in (1, 2) or rank > 4:
            raise fail(f"tensor {i}: dtype {dt} rank {rank}")
        shape = (s0, s1, s2, s3)[:rank]
        if any(s < 1 for s in (s0, s1, s2, s3)):
            raise fail(f"tensor {i}: shape {shape}")
        quant = Quant(array(sc_off, qn, "<f4"), array(zp_off, qn, "<i4"), axis)
        dtype = DType(dt)
        t = Tensor(i, f"t{i}", shape, dtype, quant, None, tfl_i)
        if tflags & TENSOR_FLAG_CONST:
            if dat_size != t.nbytes:
                raise fail(f"tensor {i}: {dat_size} data bytes for shape {shape}")
            npd = "i1" if dtype == DType.INT8 else "<i4"
            t.data = array(dat_off, t.num_elements, npd).reshape(shape)
        tensors.append(t)
    layers: list[Layer] = []
    params: list[LayerParams] = []
    trainable: set[int] = set()
    for i in range(n_l):
        f = _LAYER.unpack_from(blob, l_off + i * lsize)
        op, act, pad, lflags = f[0:4]
        ins, output = [x for x in f[4:7]], f[7]
        try:
            layer = Layer(
                index=i,
                op=OpType(op),
                inputs=[],
                output=output,
                activation=Activation(act),
                padding=Padding(pad),
                stride_h=f[8],
                stride_w=f[9],
                filter_h=f[10],
                filter_w=f[11],
                dilation_h=f[12],
                dilation_w=f[13],
                depth_multiplier=f[14],
            )
        except ValueError as e:
            raise fail(f"layer {i}: {e}") from None
        n_inputs = (
            3
            if layer.op in (OpType.CONV_2D, OpType.DEPTHWISE_CONV_2D, OpType.FULLY_CONNECTED)
            else 2
            if layer.op == OpType.ADD
            else 1
        )
        layer.inputs = ins[:n_inputs]
        required = layer.inputs[:2] if n_inputs == 3 else layer.inputs
        optional_bias = layer.inputs[2:]
        if not all(0 <= ti < n_t for ti in [*required, output]) or not all(
            -1 <= ti < n_t for ti in optional_bias
        ):
            raise fail(f"layer {i}: tensor index out of range")
        n_ch, m_off, s_off = f[20], f[21], f[22]
        ex = f[23:30]
        p = LayerParams(
            act_min=f[18],
            act_max=f[19],
            pad_h=f[15],
            pad_w=f[16],
            output_multiplier=array(m_off, n_ch, "<i4"),
            output_shift=array(s_off, n_ch, "<i4"),
        )
        if layer.op == OpType.ADD:
            (
                p.left_shift,
                p.input1_multiplier,
                p.input1_shift,
                p.input2_multiplier,
                p.input2_shift,
            ) = ex[:5]
        elif layer.op == OpType.SOFTMAX:
            p.input_multiplier, p.input_left_shift, p.diff_min = ex[:3]
        if lflags & LAYER_FLAG_TRAINABLE:
            trainable.add(i)
        layers.append(layer)
        params.append(p)
    if inp >= n_t or out >= n_t:
        raise fail("input/output tensor index out of range")
    name = raw_name.rstrip(b"\0").decode("ascii", "replace")
    model = Model(
        tensors,
        layers,
        inp,
        out,
        bool(flags & FLAG_FLOAT_INPUT),
        bool(flags & FLAG_FLOAT_OUTPUT),
        name,
        params,
    )
    return model, BlobInfo((vmaj, vmin), total, crc, trainable)


def c_identifier(name: str) -> str:
    ident = re.sub(r"\W", "_", name)
    return ident if ident and not ident[0].isdigit() else f"m_{ident}"


def blob_to_c(blob: bytes, name: str) -> tuple[str, str]:
    """Return (source, header) defining `<name>_blob` for linking into flash."""
    ident = c_identifier(name)
    rows = []
    for i in range(0, len(blob), 16):
        rows.append("    " + " ".join(f"0x{b:02x}," for b in blob[i : i + 16]))
    guard = f"FQT_MODEL_{ident.upper()}_H_"
    header = (
        "/* Generated by fqt import; do not edit. */\n"
        f"#ifndef {guard}\n#define {guard}\n\n#include <stddef.h>\n#include <stdint.h>\n\n"
        f"extern const uint8_t {ident}_blob[];\nextern const size_t {ident}_blob_len;\n\n"
        f"#endif /* {guard} */\n"
    )
    source = (
        "/* Generated by fqt import; do not edit. */\n"
        f'#include "{ident}_blob.h"\n\n'
        "/* 16-byte alignment: the engine reads int32 arrays from the blob in place. */\n"
        f"const uint8_t {ident}_blob[] __attribute__((aligned(16))) = {{\n"
        + "\n".join(rows)
        + f"\n}};\nconst size_t {ident}_blob_len = {len(blob)}u;\n"
    )
    return source, header
