"""A per-tensor FULLY_CONNECTED stack made from the per-channel fixture
fc_relu_relu6_none.tflite: each FC's weights requantized to one scale, chosen so that the
float32 and the double scale product give different multipliers (issue 13), biases
requantized to s_in * s_w. Built with the flatbuffer object API of the reference runtime's
schema (ai-edge-litert, the `ref` extra)."""

from __future__ import annotations

import numpy as np
from conftest import FIXTURE_MODELS
from fqt import quant


def _differs(s_in: np.float32, s_w: np.float32, s_out: np.float32) -> bool:
    f = quant.quantize_multiplier(float(np.float32(s_in * s_w)) / float(s_out))
    d = quant.quantize_multiplier(float(s_in) * float(s_w) / float(s_out))
    return f != d


def per_tensor_fc_stack() -> bytes:
    return _pack(_stack_model()[0])


def _pack(mt: object) -> bytes:
    import flatbuffers as fb

    builder = fb.Builder(4096)
    builder.Finish(mt.Pack(builder), file_identifier=b"TFL3")  # type: ignore[attr-defined]
    return bytes(builder.Output())


def per_tensor_fc_flip() -> bytes:
    """per_tensor_fc_stack with the first FC's biases moved (by a few hundred LSB of the
    accumulator at most) so that, on the constant inputs 0, 127 and -128 that
    test_golden_tflm's _inputs appends, some accumulators land where the float32 and the
    double scale product give different int8 outputs: a golden model forming the multiplier
    from the float32 product disagrees with TFLM on this fixture."""
    from fqt import quant as q

    mt, first = _stack_model()
    sg = mt.subgraphs[0]
    x, w, b, y = (sg.tensors[i] for i in first)
    s_in = np.float32(x.quantization.scale[0])
    # A flip needs out * dM/M (dM/M <= ~2^-24) to cross a rounding boundary: over the int8
    # range that takes ~ 2^-24 * 255^2 / 2 / (s_in s_w / s_out) accumulators. A 256 times
    # coarser output scale gives ~100 of them (the later layers take the scale with it).
    s_out = np.float32(float(y.quantization.scale[0]) * 256.0)
    y.quantization.scale = [float(s_out)]

    def mults(s_w: np.float32) -> tuple[tuple[int, int], tuple[int, int]]:
        f32 = q.quantize_multiplier(float(np.float32(s_in * s_w)) / float(s_out))
        return f32, q.quantize_multiplier(float(s_in) * float(s_w) / float(s_out))

    # the weight scale (within 0.2 % of its own) whose two multipliers differ the most
    s0 = float(w.quantization.scale[0])
    cands = [np.float32(s0 * (1 + 1e-6 * k)) for k in range(2000)]
    s_w = max(
        cands,
        key=lambda c: abs(mults(c)[0][0] - mults(c)[1][0]) * (mults(c)[0][1] == mults(c)[1][1]),
    )
    w.quantization.scale = [float(s_w)]
    b.quantization.scale = [float(np.float32(s_in * s_w))]
    b.quantization.zeroPoint = [0]
    (m32, sh32), (m64, sh64) = mults(s_w)
    zp_in, zp_out = int(x.quantization.zeroPoint[0]), int(y.quantization.zeroPoint[0])
    wq = np.frombuffer(bytes(mt.buffers[w.buffer].data), np.int8).reshape(w.shape).astype(np.int64)
    bq = np.frombuffer(bytes(mt.buffers[b.buffer].data), "<i4").astype(np.int64).copy()
    # accumulators whose outputs differ between the two multipliers, inside (zp_out, 127]
    real = float(s_in) * float(s_w) / float(s_out)
    hi = int((127 - zp_out) / real) + 2
    acc = np.arange(1, hi, dtype=np.int64)
    o32 = q.multiply_by_quantized_multiplier(acc, m32, sh32) + zp_out
    o64 = q.multiply_by_quantized_multiplier(acc, m64, sh64) + zp_out
    flips = acc[(o32 != o64) & (o64 > zp_out) & (o64 < 127) & (o32 < 127)]
    assert len(flips) >= 3, "no accumulator tells the two multipliers apart"
    for k, v in enumerate((0, 127, -128)):
        base = int(((v - zp_in) * wq[k]).sum())
        want = int(flips[np.argmin(np.abs(flips - (base + bq[k])))])
        bq[k] = want - base
    mt.buffers[b.buffer].data = np.frombuffer(bq.astype("<i4").tobytes(), np.uint8)
    return _pack(mt)


def _stack_model() -> tuple[object, tuple[int, int, int, int]]:
    """The per-tensor FC stack as a flatbuffer object, and the first FC's tensor indices
    (input, weights, bias, output)."""
    from ai_edge_litert import schema_py_generated as schema

    src = (FIXTURE_MODELS / "fc_relu_relu6_none.tflite").read_bytes()
    mt = schema.ModelT.InitFromPackedBuf(bytearray(src), 0)
    sg = mt.subgraphs[0]
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in mt.operatorCodes]
    n_fc = 0
    first: tuple[int, int, int, int] | None = None
    for op in sg.operators:
        if codes[op.opcodeIndex] != schema.BuiltinOperator.FULLY_CONNECTED:
            continue
        x, w = (sg.tensors[i] for i in op.inputs[:2])
        b = sg.tensors[op.inputs[2]] if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
        y = sg.tensors[op.outputs[0]]
        if first is None:
            if b is None:  # give it a zero bias of its own (the fixture has none)
                b = schema.TensorT()
                b.shape = np.array([w.shape[0]], np.int32)
                b.type = schema.TensorType.INT32
                b.name = b"first_fc_bias"
                mt.buffers.append(schema.BufferT())
                mt.buffers[-1].data = np.zeros(4 * w.shape[0], np.uint8)
                b.buffer = len(mt.buffers) - 1
                b.quantization = schema.QuantizationParametersT()
                sg.tensors.append(b)
                op.inputs = np.array([op.inputs[0], op.inputs[1], len(sg.tensors) - 1], np.int32)
            first = (op.inputs[0], op.inputs[1], op.inputs[2], op.outputs[0])
        s_in = np.float32(x.quantization.scale[0])
        s_out = np.float32(y.quantization.scale[0])
        s_c = np.asarray(w.quantization.scale, np.float32)
        wq = np.frombuffer(bytes(mt.buffers[w.buffer].data), np.int8).reshape(w.shape)
        s = np.float32(s_c.max())
        k = 0
        while not _differs(s_in, s, s_out):
            k += 1
            s = np.float32(float(s_c.max()) * (1 + 1e-4 * k))
        w_new = np.clip(np.round(wq * (s_c[: len(wq)].reshape(-1, 1) / s)), -127, 127)
        mt.buffers[w.buffer].data = np.frombuffer(w_new.astype(np.int8).tobytes(), np.uint8)
        w.quantization.scale = [float(s)]
        w.quantization.zeroPoint = [0]
        w.quantization.quantizedDimension = 0
        n_fc += 1
        if b is None or mt.buffers[b.buffer].data is None:
            continue
        bq = np.frombuffer(bytes(mt.buffers[b.buffer].data), "<i4")
        b_new = np.round(bq * (s_c / s)).astype("<i4")
        mt.buffers[b.buffer].data = np.frombuffer(b_new.tobytes(), np.uint8)
        b.quantization.scale = [float(np.float32(s_in) * s)]
        b.quantization.zeroPoint = [0]
    assert n_fc >= 2 and first is not None
    return mt, first
