"""What the C loader checks, checked by the importer with the same limits, so a blob that
`fqt import` writes always loads on the device.

Twin of modules/fqt/src/runtime/model_validate.c (header and tensors) and layer_validate.c
(each layer record); the limits are modules/fqt/include/fqt/config.h's defaults.
`tests/python/test_import_fuzz.py` runs the C loader on every blob the importer accepts in a
mutation run, so a check missing here shows up there.

`check_before_prepare` refuses what would make prepare() divide by zero or take a NaN
(scales must be finite and > 0); `check_prepared` checks the integers prepare() produced and
every record field, as the loader does. Both raise UnsupportedModelError (exit 2).
"""

from __future__ import annotations

import math

import numpy as np

from .errors import UnsupportedModelError
from .ir import Activation, DType, Layer, Model, OpType, Padding, Tensor

# modules/fqt/include/fqt/config.h (host and default Kconfig values).
MAX_TENSORS = 1024
MAX_LAYERS = 64
MAX_TENSOR_BYTES = 16 * 1024 * 1024
MAX_ACCUM_DEPTH = 65536
SOFTMAX_MAX_DEPTH = 4095
# layer_validate.c's shift ranges.
WEIGHTED_SHIFT = (-31, 30)
ADD_SHIFT = (-31, 0)
INT16_MAX = 32767
INT32_MAX = (1 << 31) - 1


def _fail(problems: list[str]) -> None:
    if problems:
        raise UnsupportedModelError(
            problems[:8] + ([f"... {len(problems) - 8} more"] if len(problems) > 8 else [])
        )


def _tensor_problems(t: Tensor) -> list[str]:
    where = f"tensor {t.index} '{t.name}'"
    p: list[str] = []
    if len(t.shape) > 4:
        return [f"{where}: rank {len(t.shape)} > 4"]
    if any(d < 1 or d > INT32_MAX for d in t.shape):
        return [f"{where}: shape {t.shape}"]
    size = 4 if t.dtype == DType.INT32 else 1
    for d in t.shape:
        size *= d
        if size > MAX_TENSOR_BYTES:
            return [f"{where}: more than {MAX_TENSOR_BYTES} bytes (the device's limit)"]
    q = t.quant
    n = len(q.scale)
    if n != 1 and (q.axis >= len(t.shape) or q.axis < 0 or n != t.shape[q.axis]):
        p.append(f"{where}: {n} scales do not match axis {q.axis} of {t.shape}")
    if len(q.zero_point) != n:
        p.append(f"{where}: {len(q.zero_point)} zero points for {n} scales")
    elif t.dtype == DType.INT8 and np.any((q.zero_point < -128) | (q.zero_point > 127)):
        p.append(f"{where}: zero point outside int8")
    if t.data is not None and t.data.size != t.num_elements:
        p.append(f"{where}: {t.data.size} values for shape {t.shape}")
    return p


def _scales_ok(t: Tensor) -> bool:
    s = np.asarray(t.quant.scale, np.float64)
    return bool(s.size) and bool(np.all(np.isfinite(s))) and bool(np.all(s > 0))


def check_before_prepare(model: Model) -> None:
    """Counts, tensor records, and scales prepare() can use (finite, > 0)."""
    p: list[str] = []
    if not 1 <= len(model.tensors) <= MAX_TENSORS:
        p.append(f"{len(model.tensors)} tensors (the device takes 1..{MAX_TENSORS})")
    if not 1 <= len(model.layers) <= MAX_LAYERS:
        p.append(f"{len(model.layers)} layers (the device takes 1..{MAX_LAYERS})")
    _fail(p)
    for t in model.tensors:
        p += _tensor_problems(t)
    _fail(p)
    for layer in model.layers:
        where = f"operator {layer.tflite_op_index} {layer.op.name}"
        used = [i for i in (*layer.inputs, layer.output) if i >= 0]
        if layer.op == OpType.FULLY_CONNECTED or layer.op in (
            OpType.CONV_2D,
            OpType.DEPTHWISE_CONV_2D,
        ):
            used = [i for i in used if i != layer.inputs[2]]  # bias scales are not read
        for i in used:
            t = model.tensors[i]
            if not _scales_ok(t):
                p.append(f"{where}: tensor {i} '{t.name}' has a scale that is not finite and > 0")
        if layer.op == OpType.SOFTMAX and not (math.isfinite(layer.beta) and layer.beta > 0):
            p.append(f"{where}: beta {layer.beta} (must be finite and > 0)")
    _fail(p)


def _int16_fields(layer: Layer) -> list[int]:
    return [
        layer.stride_h,
        layer.stride_w,
        layer.filter_h,
        layer.filter_w,
        layer.dilation_h,
        layer.dilation_w,
        layer.depth_multiplier,
    ]


def _window(
    where: str, layer: Layer, x: Tensor, out: Tensor, fh: int, fw: int, dh: int, dw: int
) -> list[str]:
    if layer.stride_h < 1 or layer.stride_w < 1:
        return [f"{where}: stride {layer.stride_h}x{layer.stride_w}"]
    if dh < 1 or dw < 1:
        return [f"{where}: dilation {dh}x{dw}"]
    if fh < 1 or fw < 1:
        return [f"{where}: filter {fh}x{fw}"]
    return []


def _requant(where: str, n: int, allowed: tuple[int, ...], mult, shift, lo: int, hi: int):
    if n not in allowed:
        return [f"{where}: {n} output multipliers, expected {' or '.join(map(str, allowed))}"]
    m, s = np.asarray(mult, np.int64), np.asarray(shift, np.int64)
    if np.any(m < 0) or np.any(m > INT32_MAX):
        return [f"{where}: output multiplier outside [0, 2^31)"]
    if np.any(s < lo) or np.any(s > hi):
        return [
            f"{where}: output shift {int(s.min())}..{int(s.max())} outside [{lo}, {hi}] "
            "(scales too far apart for the device)"
        ]
    return []


def _layer_problems(model: Model, layer: Layer, produced: set[int]) -> list[str]:
    ts = model.tensors
    prm = model.params[layer.index]
    where = f"operator {layer.tflite_op_index} {layer.op.name}"
    p: list[str] = []
    if layer.activation not in (Activation.NONE, Activation.RELU, Activation.RELU6):
        p.append(f"{where}: activation {layer.activation}")
    if layer.padding not in (Padding.SAME, Padding.VALID):
        p.append(f"{where}: padding {layer.padding}")
    if any(not -32768 <= v <= INT16_MAX for v in [*_int16_fields(layer), prm.pad_h, prm.pad_w]):
        p.append(f"{where}: stride, filter, dilation or padding outside int16")
    if not -128 <= prm.act_min <= prm.act_max <= 127:
        p.append(f"{where}: activation range {prm.act_min}..{prm.act_max}")
    out = ts[layer.output]
    if out.dtype != DType.INT8 or out.is_const or out.quant.per_channel:
        p.append(f"{where}: output must be a non-constant per-tensor int8 tensor")
    if layer.output == model.input or layer.output in produced:
        p.append(f"{where}: output tensor {layer.output} is written twice")
    x = ts[layer.inputs[0]]
    if x.dtype != DType.INT8 or x.is_const or x.quant.per_channel:
        p.append(f"{where}: input must be a non-constant per-tensor int8 tensor")
    for i in layer.inputs[: 2 if layer.op == OpType.ADD else 1]:
        if i != model.input and i not in produced:
            p.append(f"{where}: reads tensor {i} before any layer writes it")
    if p:
        return p
    op = layer.op
    n_mult = len(prm.output_multiplier)
    if op in (OpType.CONV_2D, OpType.DEPTHWISE_CONV_2D, OpType.FULLY_CONNECTED):
        w = ts[layer.inputs[1]]
        if w.dtype != DType.INT8 or not w.is_const or np.any(w.quant.zero_point != 0):
            return [f"{where}: weights must be constant symmetric int8"]
        if op == OpType.FULLY_CONNECTED:
            if len(w.shape) != 2 or len(out.shape) < 1:
                return [f"{where}: weights must be 2-D (rank {len(w.shape)}), output rank >= 1"]
            oc, depth = w.shape[0], w.shape[1]
            if out.shape[-1] != oc:
                return [f"{where}: output depth {out.shape[-1]}, weights have {oc} rows"]
            if x.num_elements != (out.num_elements // oc) * depth:
                return [f"{where}: input of {x.num_elements} values does not match the weights"]
            allowed: tuple[int, ...] = (1, oc)
        else:
            if len(x.shape) != 4 or len(w.shape) != 4 or len(out.shape) != 4:
                return [f"{where}: input, weights and output must be 4-D"]
            if x.shape[0] != out.shape[0]:
                return [f"{where}: batch {x.shape[0]} in, {out.shape[0]} out"]
            oc = out.shape[3]
            if op == OpType.CONV_2D:
                if w.shape[0] != oc or w.shape[3] != x.shape[3]:
                    return [f"{where}: weights {w.shape} do not map {x.shape[3]} to {oc} channels"]
                depth = w.shape[1] * w.shape[2] * w.shape[3]
            else:
                if w.shape[0] != 1 or w.shape[3] != oc or oc % x.shape[3]:
                    return [f"{where}: weights {w.shape} do not map {x.shape[3]} to {oc} channels"]
                dm = oc // x.shape[3]
                if layer.depth_multiplier not in (dm, 1):
                    return [f"{where}: depth multiplier {layer.depth_multiplier}, shapes give {dm}"]
                depth = w.shape[1] * w.shape[2]
            p += _window(
                where, layer, x, out, w.shape[1], w.shape[2], layer.dilation_h, layer.dilation_w
            )
            allowed = (oc,)
        p += _requant(
            where, n_mult, allowed, prm.output_multiplier, prm.output_shift, *WEIGHTED_SHIFT
        )
        if depth > MAX_ACCUM_DEPTH:
            p.append(f"{where}: {depth} products per output exceed {MAX_ACCUM_DEPTH}")
        if layer.inputs[2] >= 0:
            b = ts[layer.inputs[2]]
            if b.dtype != DType.INT32 or not b.is_const or b.num_elements != oc:
                p.append(f"{where}: bias must be constant int32 with {oc} values")
    elif op in (OpType.AVERAGE_POOL_2D, OpType.MAX_POOL_2D):
        if (
            len(x.shape) != 4
            or len(out.shape) != 4
            or x.shape[0] != out.shape[0]
            or x.shape[3] != out.shape[3]
        ):
            return [f"{where}: needs 4-D input and output with the same batch and channels"]
        p += _window(where, layer, x, out, layer.filter_h, layer.filter_w, 1, 1)
        if layer.filter_h * layer.filter_w > MAX_ACCUM_DEPTH:
            p.append(f"{where}: filter {layer.filter_h}x{layer.filter_w} too large")
    elif op == OpType.RESHAPE:
        if x.num_elements != out.num_elements:
            p.append(f"{where}: {x.num_elements} elements in, {out.num_elements} out")
    elif op == OpType.ADD:
        b = ts[layer.inputs[1]]
        if b.dtype != DType.INT8 or b.is_const or b.quant.per_channel:
            return [f"{where}: input 2 must be a non-constant per-tensor int8 tensor"]
        if not (x.shape == b.shape == out.shape):
            return [f"{where}: inputs and output must have the same shape"]
        p += _requant(where, n_mult, (1,), prm.output_multiplier, prm.output_shift, *ADD_SHIFT)
        if not 0 <= prm.left_shift <= 30:
            p.append(f"{where}: left shift {prm.left_shift}")
        for m, s in (
            (prm.input1_multiplier, prm.input1_shift),
            (prm.input2_multiplier, prm.input2_shift),
        ):
            if m < 0 or not ADD_SHIFT[0] <= s <= ADD_SHIFT[1]:
                p.append(f"{where}: input multiplier {m} / shift {s} out of range")
    elif op == OpType.SOFTMAX:
        depth = x.shape[-1] if x.shape else 1
        if (
            x.num_elements != out.num_elements
            or len(x.shape) != len(out.shape)
            or (x.shape and out.shape[-1] != depth)
        ):
            return [f"{where}: input and output shapes differ"]
        if depth > SOFTMAX_MAX_DEPTH:
            p.append(f"{where}: depth {depth} exceeds {SOFTMAX_MAX_DEPTH}")
        if (
            not 0 <= prm.input_multiplier <= INT32_MAX
            or not 0 <= prm.input_left_shift <= 31
            or prm.diff_min > 0
            or prm.diff_min < -(1 << 31)
        ):
            p.append(f"{where}: softmax parameters out of range (input scale or beta too large)")
    if op not in (OpType.CONV_2D, OpType.DEPTHWISE_CONV_2D, OpType.FULLY_CONNECTED, OpType.ADD):
        if n_mult:
            p.append(f"{where}: unexpected output multipliers")
    return p


def check_prepared(model: Model) -> None:
    """Every layer record as layer_validate.c checks it, then the model's edges as
    model_validate.c does."""
    p: list[str] = []
    for io, what in ((model.input, "input"), (model.output, "output")):
        t = model.tensors[io]
        if t.dtype != DType.INT8 or t.is_const or t.quant.per_channel:
            p.append(f"model {what} must be a non-constant per-tensor int8 tensor")
    _fail(p)
    produced: set[int] = set()
    for layer in model.layers:
        p += _layer_problems(model, layer, produced)
        produced.add(layer.output)
        if p:
            break
    _fail(p)
    if model.output not in produced:
        p.append("the model's output is not written by any layer")
    reads = {layer.inputs[0] for layer in model.layers} | {
        layer.inputs[1] for layer in model.layers if layer.op == OpType.ADD
    }
    if model.input not in reads:
        p.append("the model's input is not read by any layer")
    if len(model.tensors) > INT16_MAX:
        p.append("too many tensors for the layer records' int16 indices")
    _fail(p)
