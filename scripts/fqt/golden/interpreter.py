"""Run a Model through the golden kernels: the bit-exact reference for TFLM and the C engine
(the twin of modules/fqt/src/runtime/session.c; each layer goes through layer_ops.py).

Activations are held with a leading batch axis N; the model's tensors have batch 1, so a
tensor of shape (1, *s) is held as (N, *s). Every sample is computed independently.
"""

from __future__ import annotations

import numpy as np

from ..ir import Model, OpType
from ..prepare import prepare
from .layer_ops import forward_layer, sample_shape

_CHUNK_BYTES = 32 << 20  # activation bytes per chunk in infer_batch (bounds peak memory)


def _ensure_prepared(model: Model) -> None:
    if len(model.params) != len(model.layers):
        prepare(model)


def _run_batched(model: Model, xb: np.ndarray, keep_all: bool) -> dict[int, np.ndarray]:
    _ensure_prepared(model)
    values: dict[int, np.ndarray] = {model.input: xb}
    for layer, p in zip(model.layers, model.params, strict=True):
        n_act = 2 if layer.op == OpType.ADD else 1
        ins = [values[ti] for ti in layer.inputs[:n_act]]
        values[layer.output] = forward_layer(model, layer, p, ins)
    if not keep_all:
        return {model.output: values[model.output]}
    return values


def _as_batch(model: Model, xs: np.ndarray) -> np.ndarray:
    xs = np.asarray(xs)
    if xs.dtype != np.int8:
        raise TypeError(f"golden model input must be int8, got {xs.dtype}")
    shape = sample_shape(model.input_tensor)
    return xs.reshape((xs.shape[0], *shape))


def run(model: Model, x: np.ndarray) -> np.ndarray:
    """One int8 input shaped like the model input -> the int8 output, shaped like the
    model output."""
    xb = _as_batch(model, np.asarray(x).reshape((1, -1)))
    return _run_batched(model, xb, False)[model.output].reshape(model.output_tensor.shape)


def run_all(model: Model, x: np.ndarray) -> dict[int, np.ndarray]:
    """One input -> {tensor index: int8 value} for the input and every layer output,
    each shaped like its tensor."""
    xb = _as_batch(model, np.asarray(x).reshape((1, -1)))
    values = _run_batched(model, xb, True)
    return {ti: v.reshape(model.tensors[ti].shape) for ti, v in values.items()}


def infer_batch(model: Model, xs: np.ndarray) -> np.ndarray:
    """Many inputs stacked on the first axis -> outputs stacked on the first axis,
    shape (B, *output shape without its batch 1)."""
    xs = np.asarray(xs)
    xb = _as_batch(model, xs)
    largest = max(model.tensors[layer.output].num_elements for layer in model.layers)
    largest = max(largest, model.input_tensor.num_elements)
    chunk = max(1, _CHUNK_BYTES // (8 * 8 * largest))  # int64 temporaries, a few alive
    outs = [
        _run_batched(model, xb[i : i + chunk], False)[model.output]
        for i in range(0, len(xb), chunk)
    ]
    out_shape = sample_shape(model.output_tensor)
    if not outs:
        return np.zeros((0, *out_shape), np.int8)
    return np.concatenate(outs).reshape((len(xb), *out_shape))
