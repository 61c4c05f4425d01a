"""Learned activation ranges (docs/training-semantics.md section 7.3), the twin of
modules/fqt/src/train/ranges.c.

The output range of each trainable weighted layer (and of the pool / RESHAPE outputs that
share its quantization) is tracked per sample with an EMA of the int8 output's min/max,
and at every update the tensors' scale and zero point are re-derived, the consumers'
biases re-expressed in the new input scale and every dependent layer re-prepared
(prepare.py). A group is learned only when every consumer at the end of its pool /
RESHAPE chain is a trainable weighted layer, the final SOFTMAX (beta 1) or the model
output (cross-entropy).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..ir import Model, OpType
from ..plan import WEIGHTED_OPS
from ..prepare import SOFTMAX_SCALED_DIFF_INTEGER_BITS
from ..quant import (
    preprocess_softmax_scaling,
    quantize_multiplier_ratio,
    rounding_divide_by_pot,
    tflite_round,
)

RANGE_ALPHA = np.float32(
    0.1
)  # EMA weight of the new sample's min/max (the follow-up's activations)
RANGE_MAX_LAYERS = 16  # FQT_RANGE_MAX_LAYERS: larger groups keep their range
MIN_SCALE = 2.0**-20  # smallest learned scale
_CHAIN_OPS = (OpType.MAX_POOL_2D, OpType.AVERAGE_POOL_2D, OpType.RESHAPE)


@dataclass
class RangeGroup:
    root: int  # the trainable weighted layer producing the range
    tensors: list[int]  # its output, then the pool / RESHAPE outputs sharing the quant
    layers: list[int]  # layers re-prepared when the range changes (increasing index)
    consumers: list[int] = field(default_factory=list)  # weighted layers reading it
    lo: float = 0.0  # float32 EMA of the real min
    hi: float = 0.0  # float32 EMA of the real max


def softmax_beta_one(model: Model, li: int) -> bool:
    """Whether SOFTMAX layer li's parameters are those of beta 1 (the C engine cannot read
    beta from the blob, so both engines decide this way)."""
    p = model.params[li]
    s_in = float(model.tensors[model.layers[li].inputs[0]].quant.scale[0])
    m, s = preprocess_softmax_scaling(1.0, s_in, SOFTMAX_SCALED_DIFF_INTEGER_BITS)
    return (m, s) == (int(p.input_multiplier), int(p.input_left_shift))


def range_groups(model: Model, trainable: list[int], mse: bool) -> list[RangeGroup]:
    """The learned groups, in increasing root index."""
    groups = []
    last = len(model.layers) - 1
    for root in trainable:
        tensors, layers, consumers = [model.layers[root].output], [root], []
        ok, i = True, 0
        while ok and i < len(tensors):
            t = tensors[i]
            i += 1
            if t == model.output and mse:
                ok = False
            for c in model.layers:
                if t not in c.inputs:
                    continue
                if c.op in _CHAIN_OPS and c.inputs[0] == t:
                    tensors.append(c.output)
                    layers.append(c.index)
                elif c.op in WEIGHTED_OPS and c.index in trainable and list(c.inputs).index(t) == 0:
                    consumers.append(c.index)
                    layers.append(c.index)
                elif (
                    c.op == OpType.SOFTMAX and c.index == last and c.output == model.output
                    and softmax_beta_one(model, c.index)
                ):  # fmt: skip
                    layers.append(c.index)
                else:
                    ok = False
        ok = ok and len(layers) <= RANGE_MAX_LAYERS and len(tensors) <= RANGE_MAX_LAYERS
        if ok:
            q = model.tensors[tensors[0]].quant
            s, zp = float(q.scale[0]), int(q.zero_point[0])
            g = RangeGroup(root, tensors, sorted(layers), sorted(consumers))
            g.lo = float(np.float32((-128 - zp) * s))
            g.hi = float(np.float32((127 - zp) * s))
            groups.append(g)
    return groups


def observe(model: Model, g: RangeGroup, y: np.ndarray, act_min: int) -> None:
    """One sample's int8 output y of g.root into the EMA (in sample order). A value at the
    int8 top (or bottom, where the clamp allows it) reads as twice the range's end."""
    f32 = np.float32  # every operation float32, as the C core (no double)
    q = model.tensors[g.tensors[0]].quant
    s, zp = f32(q.scale[0]), int(q.zero_point[0])
    qmin, qmax = int(y.min()), int(y.max())
    hi = f32(qmax - zp) * s * f32(2.0 if qmax == 127 else 1.0)
    lo = f32(qmin - zp) * s * f32(2.0 if qmin == -128 and act_min == -128 else 1.0)
    a = RANGE_ALPHA
    g.lo = float((f32(1.0) - a) * f32(g.lo) + a * lo)
    g.hi = float((f32(1.0) - a) * f32(g.hi) + a * hi)


def derive(g: RangeGroup) -> tuple[float, int] | None:
    """(float32 scale, zero point) of the EMA range widened to hold 0, or None."""
    f32 = np.float32  # float32 op by op, as the C core
    lo, hi = f32(min(g.lo, 0.0)), f32(max(g.hi, 0.0))
    if not hi - lo > 0.0:
        return None
    s = (hi - lo) / f32(255.0)
    if not s >= MIN_SCALE:  # a collapsed range (and SOFTMAX needs s 2^26 > 1)
        return None
    zp = min(max(tflite_round(float(f32(-128.0) - lo / s)), -128), 127)
    return float(s), zp


def rescale_bias(bias: np.ndarray, s_old: float, s_new: float) -> np.ndarray:
    """A consumer's int32 bias in its new input scale, b * s_old / s_new as a multiplier:
    (M, sh) = QuantizeMultiplier(s_old / s_new) (double), sat32(RDBPOT64(b * M, 31 - sh));
    31 - sh < 0 saturates every b != 0."""
    m, sh = quantize_multiplier_ratio(float(s_old), 1.0, float(s_new))
    x = bias.astype(np.int64) * m
    e = 31 - sh
    if e < 0:
        out = np.sign(x) * (2**31)
    elif e > 62:
        out = np.zeros_like(x)
    else:
        out = rounding_divide_by_pot(x, e)
    return np.clip(out, -(2**31), 2**31 - 1).astype(np.int32)
