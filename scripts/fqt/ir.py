"""The fqt model IR: what the importer produces and every engine consumes.

Only int8 activations/weights and int32 biases exist here. Layouts are TFLite's:
activations NHWC with N == 1, conv weights OHWI, depthwise weights 1HW(I*M),
fully-connected weights [out, in].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np


class DType(IntEnum):
    INT8 = 1
    INT32 = 2


class OpType(IntEnum):
    """Operator codes; the same numbers are used in the blob and the C engine."""

    CONV_2D = 1
    DEPTHWISE_CONV_2D = 2
    FULLY_CONNECTED = 3
    AVERAGE_POOL_2D = 4
    MAX_POOL_2D = 5
    RESHAPE = 6
    ADD = 7
    SOFTMAX = 8


class Activation(IntEnum):
    NONE = 0
    RELU = 1
    RELU6 = 3  # TFLite's own numbering


class Padding(IntEnum):
    SAME = 0
    VALID = 1


@dataclass
class Quant:
    """Affine quantization: real = scale * (q - zero_point).

    Per-tensor when len(scale) == 1, otherwise per-channel along `axis`.
    """

    scale: np.ndarray  # float32 [n]
    zero_point: np.ndarray  # int32 [n]
    axis: int = 0

    @property
    def per_channel(self) -> bool:
        return len(self.scale) > 1


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: DType
    quant: Quant
    data: np.ndarray | None = None  # constant tensors only (weights, biases)
    tflite_index: int = -1  # tensor index in the source .tflite subgraph

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def num_elements(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        return self.num_elements * (1 if self.dtype == DType.INT8 else 4)


@dataclass
class Layer:
    """One operator. inputs: [input, weights, bias] for conv/dw/fc (bias may be -1),
    [a, b] for ADD, [input] otherwise."""

    index: int
    op: OpType
    inputs: list[int]
    output: int
    activation: Activation = Activation.NONE
    padding: Padding = Padding.VALID
    stride_h: int = 1
    stride_w: int = 1
    filter_h: int = 1  # pools only; conv/dw read it from the weight shape
    filter_w: int = 1
    dilation_h: int = 1
    dilation_w: int = 1
    depth_multiplier: int = 1
    beta: float = 1.0  # softmax
    tflite_op_index: int = -1


@dataclass
class LayerParams:
    """Integer parameters derived from the float scales once, at import time, exactly
    as TFLM's Prepare does (docs/integer-semantics.md). The C engine reads these
    from the blob and never touches a float for inference."""

    act_min: int = -128
    act_max: int = 127
    pad_h: int = 0  # top/left padding in TFLM's sense
    pad_w: int = 0
    # conv/dw/fc: one (multiplier, shift) per output channel (len 1 for per-tensor fc)
    output_multiplier: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    output_shift: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    # ADD: TFLM's ArithmeticParams
    left_shift: int = 0
    input1_multiplier: int = 0
    input1_shift: int = 0
    input2_multiplier: int = 0
    input2_shift: int = 0
    # softmax
    input_multiplier: int = 0
    input_left_shift: int = 0
    diff_min: int = 0


@dataclass
class Model:
    tensors: list[Tensor]
    layers: list[Layer]
    input: int  # tensor index of the int8 model input
    output: int  # tensor index of the int8 model output
    # The source model took float input / gave float output through QUANTIZE /
    # DEQUANTIZE at its edges; fqt strips them and works on int8 directly.
    float_input: bool = False
    float_output: bool = False
    name: str = "model"
    params: list[LayerParams] = field(default_factory=list)  # one per layer

    @property
    def input_tensor(self) -> Tensor:
        return self.tensors[self.input]

    @property
    def output_tensor(self) -> Tensor:
        return self.tensors[self.output]
