"""Turn each layer's float scales into the integer parameters the kernels use.

This is the only place where floats become integers (docs/integer-semantics.md); it
mirrors TFLM's Prepare functions operation by operation, including which products are
taken in float32 and which in double:

- conv / depthwise / per-channel fc: PopulateConvolutionQuantizationParams,
  M_c = double(s_in) * double(s_w[c]) / double(s_out)
- per-tensor fc: GetQuantizedConvolutionMultipler as the tflite-micro wheel has it,
  M = double(s_in) * double(s_w) / double(s_out) (the product in double, like conv)
- add: CalculateOpDataAdd, softmax: CalculateSoftmaxParams, pools: CalculateOpDataPooling
- activation range: CalculateActivationRangeQuantized (float32 division, roundf)
"""

from __future__ import annotations

import numpy as np

from . import quant
from .ir import Activation, Layer, LayerParams, Model, OpType, Padding, Tensor

SOFTMAX_SCALED_DIFF_INTEGER_BITS = 5  # kScaledDiffIntegerBits
ADD_LEFT_SHIFT = 20  # int8 ADD's data->left_shift


def compute_out_size(
    padding: Padding, image: int, filt: int, stride: int, dilation: int = 1
) -> int:
    """TFLM ComputeOutSize."""
    effective = (filt - 1) * dilation + 1
    if padding == Padding.SAME:
        return (image + stride - 1) // stride
    return (image + stride - effective) // stride


def compute_padding_with_offset(
    stride: int, dilation: int, in_size: int, filt: int, out_size: int
) -> tuple[int, int]:
    """TFLM ComputePaddingWithOffset: (padding before, extra padding after (0 or 1))."""
    effective = (filt - 1) * dilation + 1
    total = max((out_size - 1) * stride + effective - in_size, 0)
    return total // 2, total % 2


def activation_range(activation: Activation, out: Tensor) -> tuple[int, int]:
    """TFLM CalculateActivationRangeQuantized for an int8 output."""
    qmin, qmax = -128, 127
    scale = float(out.quant.scale[0])
    zp = int(out.quant.zero_point[0])
    if activation == Activation.RELU:
        return max(qmin, quant.quantize_float32(0.0, scale, zp)), qmax
    if activation == Activation.RELU6:
        return (
            max(qmin, quant.quantize_float32(0.0, scale, zp)),
            min(qmax, quant.quantize_float32(6.0, scale, zp)),
        )
    return qmin, qmax


def _f64(x: np.floating | float) -> float:
    return float(x)  # float32 -> C double, exact


def _conv_multipliers(
    x: Tensor, w: Tensor, out: Tensor, n_channels: int
) -> tuple[np.ndarray, np.ndarray]:
    """PopulateConvolutionQuantizationParams: per output channel, products in double."""
    s_in = _f64(x.quant.scale[0])
    s_out = _f64(out.quant.scale[0])
    mults, shifts = [], []
    for c in range(n_channels):
        s_w = _f64(w.quant.scale[c] if w.quant.per_channel else w.quant.scale[0])
        m, s = quant.quantize_multiplier_ratio(s_in, s_w, s_out)
        mults.append(m)
        shifts.append(s)
    return np.array(mults, np.int32), np.array(shifts, np.int32)


def _spatial_padding(layer: Layer, x: Tensor, out: Tensor, fh: int, fw: int) -> tuple[int, int]:
    in_h, in_w = x.shape[1], x.shape[2]
    out_h = compute_out_size(layer.padding, in_h, fh, layer.stride_h, layer.dilation_h)
    out_w = compute_out_size(layer.padding, in_w, fw, layer.stride_w, layer.dilation_w)
    if (out_h, out_w) != tuple(out.shape[1:3]):
        raise ValueError(
            f"layer {layer.index} {layer.op.name}: output {out.shape[1:3]} but "
            f"{layer.padding.name} padding gives {(out_h, out_w)}"
        )
    pad_h, _ = compute_padding_with_offset(layer.stride_h, layer.dilation_h, in_h, fh, out_h)
    pad_w, _ = compute_padding_with_offset(layer.stride_w, layer.dilation_w, in_w, fw, out_w)
    return pad_h, pad_w


def prepare_layer(model: Model, layer: Layer) -> LayerParams:
    ts = model.tensors
    x, out = ts[layer.inputs[0]], ts[layer.output]
    p = LayerParams()
    op = layer.op
    if op in (OpType.CONV_2D, OpType.DEPTHWISE_CONV_2D):
        w = ts[layer.inputs[1]]
        fh, fw = w.shape[1], w.shape[2]
        p.pad_h, p.pad_w = _spatial_padding(layer, x, out, fh, fw)
        n_ch = w.shape[0] if op == OpType.CONV_2D else w.shape[3]
        p.output_multiplier, p.output_shift = _conv_multipliers(x, w, out, n_ch)
        p.act_min, p.act_max = activation_range(layer.activation, out)
    elif op == OpType.FULLY_CONNECTED:
        w = ts[layer.inputs[1]]
        # Per channel: one multiplier a row; per tensor: GetQuantizedConvolutionMultipler,
        # whose scale product the tflite-micro wheel takes in double, the same formula.
        n_ch = w.shape[0] if w.quant.per_channel else 1
        p.output_multiplier, p.output_shift = _conv_multipliers(x, w, out, n_ch)
        p.act_min, p.act_max = activation_range(layer.activation, out)
    elif op in (OpType.AVERAGE_POOL_2D, OpType.MAX_POOL_2D):
        p.pad_h, p.pad_w = _spatial_padding(layer, x, out, layer.filter_h, layer.filter_w)
        p.act_min, p.act_max = activation_range(layer.activation, out)
    elif op == OpType.ADD:
        s1 = x.quant.scale[0]
        s2 = ts[layer.inputs[1]].quant.scale[0]
        p.left_shift = ADD_LEFT_SHIFT
        twice_max_input_scale = 2 * _f64(max(s1, s2))
        real_input1_multiplier = _f64(s1) / twice_max_input_scale
        real_input2_multiplier = _f64(s2) / twice_max_input_scale
        real_output_multiplier = twice_max_input_scale / (
            (1 << ADD_LEFT_SHIFT) * _f64(out.quant.scale[0])
        )
        p.input1_multiplier, p.input1_shift = quant.quantize_multiplier_smaller_than_one_exp(
            real_input1_multiplier
        )
        p.input2_multiplier, p.input2_shift = quant.quantize_multiplier_smaller_than_one_exp(
            real_input2_multiplier
        )
        m, s = quant.quantize_multiplier_smaller_than_one_exp(real_output_multiplier)
        p.output_multiplier = np.array([m], np.int32)
        p.output_shift = np.array([s], np.int32)
        p.act_min, p.act_max = activation_range(layer.activation, out)
    elif op == OpType.SOFTMAX:
        if int(out.quant.zero_point[0]) != -128 or np.float32(out.quant.scale[0]) != np.float32(
            1.0 / 256
        ):
            raise ValueError(
                f"layer {layer.index} SOFTMAX: int8 output must have scale 1/256, zero point -128"
            )
        beta = _f64(np.float32(layer.beta))  # TfLiteSoftmaxParams.beta is a float
        p.input_multiplier, p.input_left_shift = quant.preprocess_softmax_scaling(
            beta, _f64(x.quant.scale[0]), SOFTMAX_SCALED_DIFF_INTEGER_BITS
        )
        p.diff_min = -quant.calculate_input_radius(
            SOFTMAX_SCALED_DIFF_INTEGER_BITS, p.input_left_shift
        )
    # RESHAPE: no parameters (input and output share scale and zero point).
    return p


def prepare(model: Model) -> list[LayerParams]:
    """Compute every layer's LayerParams as TFLM's Prepare does; store them in model.params."""
    model.params = [prepare_layer(model, layer) for layer in model.layers]
    return model.params
