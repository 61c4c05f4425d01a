"""The backward pass of the golden trainer, the twin of modules/fqt/src/train/backward.c.

From the loss error at the network's output down to the first trainable layer
(docs/training-semantics.md sections 1 and 5): the walk over the layers in reverse, each
layer's backward kernels (5.1-5.7) with the partial-update channel selection (6), the
weight and bias gradients of the trainable layers (accumulated, section 4), and the
delivery of input errors to their tensors, combined with error_quant.align_errors when a
tensor has several consumers (2.3). The update itself is update.py's, run by trainer.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..ir import Layer, Model, OpType
from ..plan import WEIGHTED_OPS, layer_macs
from .activation import activation_backward, saturation_mask
from .add import add_backward
from .conv2d import conv2d_backward_input, conv2d_backward_weights
from .depthwise_conv2d import depthwise_conv2d_backward_input, depthwise_conv2d_backward_weights
from .error_quant import align_errors
from .fully_connected import fully_connected_backward_input, fully_connected_backward_weights
from .grad_state import NarrowAccumulator
from .partial import Q15, keep_count, select_channels
from .pooling import average_pool2d_backward, max_pool2d_backward
from .reshape import reshape_backward
from .update import GradientAccumulator

Error = tuple[np.ndarray, np.ndarray]  # int8 errors [N, ...] and their exponents [N]


class Backward:
    """The backward walk over `model` for the trainable layers (sorted indices), adding
    the weight gradients into `grads` (one accumulator per trainable layer). `macs` and
    `macs_full` count the backward MACs of the last run, and what they would be with
    full updates (lambda_min = 1)."""

    def __init__(
        self,
        model: Model,
        trainable: list[int],
        grads: dict[int, GradientAccumulator | NarrowAccumulator],
        *,
        clip_mask: bool = True,
        keep_classifier: bool = True,
        skip_layer: int = -1,
    ) -> None:
        self.model = model
        self.first = min(trainable)
        self.grads = grads
        self.clip_mask = clip_mask
        # The classifier (the last weighted layer) is exempt from top-k (section 6).
        weighted = [la.index for la in model.layers if la.op in WEIGHTED_OPS]
        self.classifier = weighted[-1] if keep_classifier and weighted else -1
        self.skip_layer = skip_layer  # the final SOFTMAX, whose backward the loss includes
        self.producer = {layer.output: layer.index for layer in model.layers}
        self.macs = 0
        self.macs_full = 0

    def run(
        self,
        values: dict[int, np.ndarray],
        start: int,
        err: Error,
        fracs: np.ndarray,
        lam: int,
        mode: str,
    ) -> tuple[int, int]:
        """Backward from the error `err` of tensor `start` (the loss's), given every
        activation of the forward in `values`, the per-sample Q15 keep fractions and
        lambda (partial.py) and the error scaling mode. Returns (MACs, MACs with full
        updates)."""
        self.macs = self.macs_full = 0
        errs: dict[int, list[Error]] = {start: [err]}
        for layer in reversed(self.model.layers):
            if layer.index < self.first:
                break
            if layer.index == self.skip_layer:
                continue
            if layer.output not in errs:
                continue
            e, ex = align_errors(errs.pop(layer.output), mode)
            for t_in, part in self.layer(layer, e, ex, values, fracs, lam, mode):
                errs.setdefault(t_in, []).append(part)
        return self.macs, self.macs_full

    def needs_error(self, t: int) -> bool:
        """Whether tensor t gets an error: its producer lies at or above the first
        trainable layer (the model input and constants never do)."""
        return self.producer.get(t, -1) >= self.first

    def layer(
        self,
        layer: Layer,
        e: np.ndarray,
        ex: np.ndarray,
        values: dict[int, np.ndarray],
        fracs: np.ndarray,
        lam: int,
        mode: str,
    ) -> Iterator[tuple[int, tuple[np.ndarray, np.ndarray]]]:
        """One layer's backward from the error (e, ex) at its output: the activation
        mask, the partial-update channel selection, the weight and bias gradients of a
        trainable layer (accumulated into its GradientAccumulator) and, for every input
        that needs one, the input error, yielded as (tensor, (e, exp))."""
        m = self.model
        ts = m.tensors
        p = m.params[layer.index]
        t_in = layer.inputs[0]
        x_t, out_t = ts[t_in], ts[layer.output]
        y = values[layer.output]
        x = values[t_in]
        e = activation_backward(e, y, int(layer.activation), p.act_min, p.act_max)
        if self.clip_mask and int(layer.activation) == 1:
            # RELU outputs clamped at act_max have zero derivative (section 5.1)
            e = np.where(y < p.act_max, e, 0).astype(np.int8)
        elif self.clip_mask and int(layer.activation) == 0 and layer.op in WEIGHTED_OPS:
            e = saturation_mask(e, y, p.act_min, p.act_max)
        need_in = self.needs_error(t_in)
        op = layer.op
        if op in WEIGHTED_OPS:
            w_t = ts[layer.inputs[1]]
            w = w_t.data
            assert w is not None  # a weighted layer's weights are constant data
            n_ch = out_t.shape[-1]
            kept = None
            if lam < Q15 and layer.index != self.classifier:
                kept = select_channels(e, keep_count(fracs, n_ch))
                e = np.where(kept.reshape((len(e),) + (1,) * (e.ndim - 2) + (n_ch,)), e, 0)
                e = e.astype(np.int8)
            n_kept = n_ch * len(e) if kept is None else int(kept.sum())
            per_ch = layer_macs(m, layer.index) // n_ch
            trainable = layer.index in self.grads
            passes = int(trainable) + int(need_in)
            self.macs += passes * per_ch * n_kept
            self.macs_full += passes * per_ch * n_ch * len(e)
            zp = int(x_t.quant.zero_point[0])
            geo = {}
            if op != OpType.FULLY_CONNECTED:
                geo = dict(
                    stride=(layer.stride_h, layer.stride_w),
                    pad=(p.pad_h, p.pad_w),
                    dilation=(layer.dilation_h, layer.dilation_w),
                )
            if trainable:
                if op == OpType.CONV_2D:
                    gw, gb = conv2d_backward_weights(
                        e, x, input_zero_point=zp, kernel_hw=w.shape[1:3], kept=kept, **geo
                    )
                    gw = gw.reshape(len(e), n_ch, -1)
                elif op == OpType.DEPTHWISE_CONV_2D:
                    gw, gb = depthwise_conv2d_backward_weights(
                        e, x, input_zero_point=zp, kernel_hw=w.shape[1:3], kept=kept, **geo
                    )
                    gw = gw.reshape(len(e), -1, n_ch).transpose(0, 2, 1)
                else:
                    gw, gb = fully_connected_backward_weights(e, x, input_zero_point=zp, kept=kept)
                grad = self.grads[layer.index]
                for i in range(len(e)):
                    grad.add(gw[i], gb[i], int(ex[i]), None if kept is None else kept[i])
            if need_in:
                s_w = w_t.quant.scale
                if op == OpType.CONV_2D:
                    ei, exi = conv2d_backward_input(
                        e, ex, w, s_w, in_hw=x.shape[1:3], kept=kept, mode=mode, **geo
                    )
                elif op == OpType.DEPTHWISE_CONV_2D:
                    ei, exi = depthwise_conv2d_backward_input(
                        e, ex, w, s_w, in_hw=x.shape[1:3], in_channels=x.shape[3],
                        kept=kept, mode=mode, **geo,
                    )  # fmt: skip
                else:
                    ei, exi = fully_connected_backward_input(
                        e.reshape(len(e), -1), ex, w, s_w, kept=kept, mode=mode
                    )
                yield t_in, (ei.reshape(x.shape), exi)
            return
        if op == OpType.ADD:
            # Each input that needs an error gets it, independently of the other
            # (docs/training-semantics.md 5.7); the first may be, e.g., the model input.
            a, b = add_backward(e, ex)
            if need_in:
                yield t_in, a
            if self.needs_error(layer.inputs[1]):
                yield layer.inputs[1], b
            return
        if not need_in:
            return
        if op == OpType.AVERAGE_POOL_2D:
            yield t_in, average_pool2d_backward(
                e, ex, in_hw=x.shape[1:3], filter_hw=(layer.filter_h, layer.filter_w),
                stride=(layer.stride_h, layer.stride_w), pad=(p.pad_h, p.pad_w), mode=mode,
            )  # fmt: skip
        elif op == OpType.MAX_POOL_2D:
            yield t_in, max_pool2d_backward(
                e, ex, x, filter_hw=(layer.filter_h, layer.filter_w),
                stride=(layer.stride_h, layer.stride_w), pad=(p.pad_h, p.pad_w), mode=mode,
            )  # fmt: skip
        elif op == OpType.RESHAPE:
            yield t_in, (reshape_backward(e, x.shape[1:]), ex)
        else:
            raise NotImplementedError(f"no backward for {op.name} inside the network")
