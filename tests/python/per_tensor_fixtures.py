"""A per-tensor FULLY_CONNECTED stack made from the per-channel fixture
fc_relu_relu6_none.tflite: each FC's weights requantized to one scale, chosen so that the
float32 and the double scale product give different multipliers (issue 13), biases
requantized to s_in * s_w. Built with the flatbuffer object API of the reference runtime's
schema (ai-edge-litert, the `ref` extra)."""

from __future__ import annotations

import flatbuffers
import numpy as np
from conftest import FIXTURE_MODELS
from fqt import quant


def _differs(s_in: np.float32, s_w: np.float32, s_out: np.float32) -> bool:
    f = quant.quantize_multiplier(float(np.float32(s_in * s_w)) / float(s_out))
    d = quant.quantize_multiplier(float(s_in) * float(s_w) / float(s_out))
    return f != d


def per_tensor_fc_stack() -> bytes:
    from ai_edge_litert import schema_py_generated as schema

    src = (FIXTURE_MODELS / "fc_relu_relu6_none.tflite").read_bytes()
    mt = schema.ModelT.InitFromPackedBuf(bytearray(src), 0)
    sg = mt.subgraphs[0]
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in mt.operatorCodes]
    n_fc = 0
    for op in sg.operators:
        if codes[op.opcodeIndex] != schema.BuiltinOperator.FULLY_CONNECTED:
            continue
        x, w = (sg.tensors[i] for i in op.inputs[:2])
        b = sg.tensors[op.inputs[2]] if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
        y = sg.tensors[op.outputs[0]]
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
    assert n_fc >= 2
    builder = flatbuffers.Builder(len(src) + 1024)
    builder.Finish(mt.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
