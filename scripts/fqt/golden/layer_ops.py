"""One layer through its golden kernel: the twin of modules/fqt/src/runtime/layer_ops.c,
the one place that maps a layer's record (here its IR) to kernel arguments. The golden
interpreter (interpreter.py) and the golden trainer run every layer's forward through it;
the backward walk is backward.py.

Activations carry a leading batch axis N; the model's tensors have batch 1, so a tensor of
shape (1, *s) is held as (N, *s).
"""

from __future__ import annotations

import numpy as np

from ..ir import Layer, LayerParams, Model, OpType, Tensor
from .add import add_forward
from .conv2d import conv2d_forward
from .depthwise_conv2d import depthwise_conv2d_forward
from .fully_connected import fully_connected_forward
from .pooling import average_pool2d_forward, max_pool2d_forward
from .reshape import reshape_forward
from .softmax import softmax_forward


def sample_shape(t: Tensor) -> tuple[int, ...]:
    """A tensor's shape without its batch-1 axis."""
    return t.shape[1:] if t.shape and t.shape[0] == 1 else t.shape


def _zp(t: Tensor) -> int:
    return int(t.quant.zero_point[0])


def forward_layer(
    model: Model, layer: Layer, p: LayerParams, inputs: list[np.ndarray]
) -> np.ndarray:
    """One layer on batched int8 inputs; returns the batched int8 output."""
    ts = model.tensors
    x_t, out_t = ts[layer.inputs[0]], ts[layer.output]
    x = inputs[0]
    n = x.shape[0]
    out_shape = sample_shape(out_t)
    op = layer.op
    if op in (OpType.CONV_2D, OpType.DEPTHWISE_CONV_2D, OpType.FULLY_CONNECTED):
        w = ts[layer.inputs[1]].data
        assert w is not None
        bias = ts[layer.inputs[2]].data if len(layer.inputs) > 2 and layer.inputs[2] >= 0 else None
        zp_x, zp_y = _zp(x_t), _zp(out_t)
        mult = p.output_multiplier.astype(np.int64)
        shift = p.output_shift.astype(np.int64)
        if op == OpType.FULLY_CONNECTED:
            y = fully_connected_forward(
                x, w, bias, input_zero_point=zp_x, output_zero_point=zp_y,
                output_multiplier=mult, output_shift=shift, act_min=p.act_min, act_max=p.act_max,
            )  # fmt: skip
            return y.reshape((n, *out_shape))
        conv = conv2d_forward if op == OpType.CONV_2D else depthwise_conv2d_forward
        return conv(
            x, w, bias, input_zero_point=zp_x, output_zero_point=zp_y,
            output_multiplier=mult, output_shift=shift, act_min=p.act_min, act_max=p.act_max,
            out_hw=(out_t.shape[1], out_t.shape[2]), stride=(layer.stride_h, layer.stride_w),
            pad=(p.pad_h, p.pad_w), dilation=(layer.dilation_h, layer.dilation_w),
        )  # fmt: skip
    if op in (OpType.AVERAGE_POOL_2D, OpType.MAX_POOL_2D):
        pool = average_pool2d_forward if op == OpType.AVERAGE_POOL_2D else max_pool2d_forward
        return pool(
            x, filter_hw=(layer.filter_h, layer.filter_w), act_min=p.act_min, act_max=p.act_max,
            out_hw=(out_t.shape[1], out_t.shape[2]), stride=(layer.stride_h, layer.stride_w),
            pad=(p.pad_h, p.pad_w),
        )  # fmt: skip
    if op == OpType.ADD:
        return add_forward(
            x, inputs[1],
            input1_zero_point=_zp(x_t), input2_zero_point=_zp(ts[layer.inputs[1]]),
            output_zero_point=_zp(out_t), left_shift=p.left_shift,
            input1_multiplier=p.input1_multiplier, input1_shift=p.input1_shift,
            input2_multiplier=p.input2_multiplier, input2_shift=p.input2_shift,
            output_multiplier=int(p.output_multiplier[0]), output_shift=int(p.output_shift[0]),
            act_min=p.act_min, act_max=p.act_max,
        )  # fmt: skip
    if op == OpType.SOFTMAX:
        y = softmax_forward(
            x, input_multiplier=p.input_multiplier, input_left_shift=p.input_left_shift,
            diff_min=p.diff_min,
        )  # fmt: skip
        return y.reshape((n, *out_shape))
    if op == OpType.RESHAPE:
        return reshape_forward(x, out_shape)
    raise NotImplementedError(f"golden model has no kernel for {op.name}")
