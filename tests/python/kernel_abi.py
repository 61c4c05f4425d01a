"""ctypes mirrors of modules/fqt/include/fqt/kernels.h: the parameter structs and the
prototypes of the public kernels, for tests/python/test_kernels.py.

`declare(lib)` sets restype/argtypes on a libfqt.so opened by fqt.native.load_library();
the pointer helpers check dtype and contiguity so a wrong numpy array cannot be passed.
"""

from __future__ import annotations

import ctypes
from ctypes import POINTER, c_int, c_int8, c_int32, c_size_t, c_uint16, c_uint32, c_void_p

import numpy as np

FQT_OK = 0  # fqt_status
FQT_GRAD_FIRST, FQT_GRAD_UP, FQT_GRAD_DOWN = 0, 1, 2  # fqt_grad_sink.mode
ACT_NONE, ACT_RELU, ACT_RELU6 = 0, 1, 3  # fqt_activation (fqt/model.h)


class Dims(ctypes.Structure):
    """fqt_dims: an NHWC shape."""

    _fields_ = [("n", c_int32), ("h", c_int32), ("w", c_int32), ("c", c_int32)]


class Requant(ctypes.Structure):
    """fqt_requant (the arrays must outlive the call: keep a reference)."""

    _fields_ = [
        ("multiplier", POINTER(c_int32)),
        ("shift", POINTER(c_int32)),
        ("count", c_uint32),
    ]


class ConvParams(ctypes.Structure):
    """fqt_conv_params."""

    _fields_ = [
        ("input_offset", c_int32),
        ("output_offset", c_int32),
        ("stride_h", c_int32),
        ("stride_w", c_int32),
        ("dilation_h", c_int32),
        ("dilation_w", c_int32),
        ("pad_h", c_int32),
        ("pad_w", c_int32),
        ("depth_multiplier", c_int32),
        ("act_min", c_int32),
        ("act_max", c_int32),
    ]


class FullyConnectedParams(ctypes.Structure):
    """fqt_fully_connected_params."""

    _fields_ = [
        ("input_offset", c_int32),
        ("output_offset", c_int32),
        ("act_min", c_int32),
        ("act_max", c_int32),
    ]


class PoolParams(ctypes.Structure):
    """fqt_pool_params."""

    _fields_ = [
        ("stride_h", c_int32),
        ("stride_w", c_int32),
        ("filter_h", c_int32),
        ("filter_w", c_int32),
        ("pad_h", c_int32),
        ("pad_w", c_int32),
        ("act_min", c_int32),
        ("act_max", c_int32),
    ]


class AddParams(ctypes.Structure):
    """fqt_add_params (TFLM's ArithmeticParams for int8 ADD)."""

    _fields_ = [
        ("input1_offset", c_int32),
        ("input2_offset", c_int32),
        ("output_offset", c_int32),
        ("left_shift", c_int32),
        ("input1_multiplier", c_int32),
        ("input1_shift", c_int32),
        ("input2_multiplier", c_int32),
        ("input2_shift", c_int32),
        ("output_multiplier", c_int32),
        ("output_shift", c_int32),
        ("act_min", c_int32),
        ("act_max", c_int32),
    ]


class SoftmaxParams(ctypes.Structure):
    """fqt_softmax_params."""

    _fields_ = [
        ("input_multiplier", c_int32),
        ("input_left_shift", c_int32),
        ("diff_min", c_int32),
    ]


class GradSink(ctypes.Structure):
    """fqt_grad_sink: acc_w channel-major [c - base][row], acc_b [c - base]."""

    _fields_ = [
        ("acc_w", POINTER(c_int32)),
        ("acc_b", POINTER(c_int32)),
        ("row", c_int32),
        ("mode", c_int32),
        ("shift", c_int32),
        ("base", c_int32),
    ]


_P8 = POINTER(c_int8)
_P32 = POINTER(c_int32)
_PU16 = POINTER(c_uint16)
_PD = POINTER(Dims)
_PCONV = POINTER(ConvParams)
_PRQ = POINTER(Requant)
_PFC = POINTER(FullyConnectedParams)
_PPOOL = POINTER(PoolParams)
_PSINK = POINTER(GradSink)

_CONV_FORWARD = [_PCONV, _PRQ, _PD, _P8, _PD, _P8, _P32, _PD, _P8]

# name: argtypes (every kernel returns fqt_status, an int)
# The lean plan's int8 input errors of CONV_2D and DEPTHWISE_CONV_2D take the same arguments:
# params, input/filter dims, filter, scales and their count, output dims, err and its
# exponent, kept and its count, fixed, out and its exponent, scratch and its size.
_INPUT_ERROR_S8_ARGS = [
    _PCONV, _PD, _PD, _P8, c_void_p, c_uint32, _PD, _P8, c_int32, _PU16, c_int32, c_int, _P8,
    _P32, c_void_p, c_size_t,
]  # fmt: skip

PROTOTYPES: dict[str, list] = {
    # forward
    "fqt_conv2d_forward": [_PCONV, _PRQ, _PD, _P8, _PD, _P8, _P32, _PD, _P8],
    "fqt_conv2d_forward_im2col": [*_CONV_FORWARD, c_void_p, c_size_t],
    "fqt_depthwise_conv2d_forward": [_PCONV, _PRQ, _PD, _P8, _PD, _P8, _P32, _PD, _P8],
    "fqt_fully_connected_forward": [_PFC, _PRQ, c_int32, c_int32, c_int32, _P8, _P8, _P32, _P8],
    "fqt_average_pool2d_forward": [_PPOOL, _PD, _P8, _PD, _P8],
    "fqt_max_pool2d_forward": [_PPOOL, _PD, _P8, _PD, _P8],
    "fqt_add_forward": [POINTER(AddParams), c_size_t, _P8, _P8, _P8],
    "fqt_softmax_forward": [POINTER(SoftmaxParams), c_size_t, c_int32, _P8, _P8],
    "fqt_reshape_forward": [_P8, c_size_t, _P8],
    # backward
    "fqt_conv2d_backward_weights": [
        _PCONV,
        _PD,
        _P8,
        _PD,
        _PD,
        _P8,
        _PU16,
        c_int32,
        _PSINK,
        c_void_p,
        c_size_t,
    ],
    "fqt_conv2d_backward_input": [
        _PCONV,
        _PD,
        _PD,
        _P8,
        c_void_p,
        c_uint32,
        _PD,
        _P8,
        _PU16,
        c_int32,
        _P32,
        _P32,
    ],
    "fqt_depthwise_conv2d_backward_weights": [
        _PCONV,
        _PD,
        _P8,
        _PD,
        _PD,
        _P8,
        _PU16,
        c_int32,
        _PSINK,
        c_void_p,
        c_size_t,
    ],
    "fqt_depthwise_conv2d_backward_input": [
        _PCONV,
        _PD,
        _PD,
        _P8,
        c_void_p,
        c_uint32,
        _PD,
        _P8,
        _PU16,
        c_int32,
        _P32,
        _P32,
        c_void_p,
        c_size_t,
    ],
    "fqt_fully_connected_backward_weights": [_P8, _P8, c_int32, c_int32, _PU16, c_int32, _PSINK],
    "fqt_fully_connected_backward_input": [
        _P8,
        c_int32,
        c_int32,
        _P8,
        c_void_p,
        c_uint32,
        _PU16,
        c_int32,
        _P32,
        _P32,
    ],
    # the lean plan's int8 input errors (kernels/input_error_s8.h; not public API)
    "fqt_conv2d_backward_input_s8": _INPUT_ERROR_S8_ARGS,
    "fqt_depthwise_conv2d_backward_input_s8": _INPUT_ERROR_S8_ARGS,
    "fqt_fully_connected_backward_input_s8": [
        _P8,
        c_int32,
        c_int32,
        _P8,
        c_void_p,
        c_uint32,
        c_int32,
        _PU16,
        c_int32,
        c_int,
        _P8,
        _P32,
        c_void_p,
        c_size_t,
    ],
    "fqt_average_pool2d_backward": [_PPOOL, _PD, _PD, _P8, _P32],
    "fqt_max_pool2d_backward": [_PPOOL, _PD, _P8, _PD, _P8, _P32],
    "fqt_activation_backward": [_P8, _P8, c_size_t, c_int32, c_int32, c_int32],
    "fqt_relu_clip_mask": [_P8, _P8, c_size_t, c_int32],
    "fqt_saturation_mask": [_P8, _P8, c_size_t, c_int32, c_int32],
}


def declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    """Set the prototypes of every public kernel on lib (idempotent)."""
    # size_t fqt_*_backward_weights_scratch_size(dims...)
    lib.fqt_conv2d_forward_im2col_scratch_size.restype = c_size_t
    lib.fqt_conv2d_forward_im2col_scratch_size.argtypes = [_PD, _PD]
    lib.fqt_conv2d_backward_weights_scratch_size.restype = c_size_t
    lib.fqt_conv2d_backward_weights_scratch_size.argtypes = [_PD, _PD, _PD]
    lib.fqt_conv2d_backward_weights_blocked_scratch_size.restype = c_size_t
    lib.fqt_conv2d_backward_weights_blocked_scratch_size.argtypes = [_PD, _PD, _PD]
    lib.fqt_depthwise_conv2d_backward_weights_scratch_size.restype = c_size_t
    lib.fqt_depthwise_conv2d_backward_weights_scratch_size.argtypes = [_PD, _PD]
    lib.fqt_depthwise_conv2d_backward_input_scratch_size.restype = c_size_t
    lib.fqt_depthwise_conv2d_backward_input_scratch_size.argtypes = [_PCONV, _PD, _PD, _PD]
    lib.fqt_conv2d_backward_input_s8_scratch_size.restype = c_size_t
    lib.fqt_conv2d_backward_input_s8_scratch_size.argtypes = [_PD, _PD]
    lib.fqt_depthwise_conv2d_backward_input_s8_scratch_size.restype = c_size_t
    lib.fqt_depthwise_conv2d_backward_input_s8_scratch_size.argtypes = [_PCONV, _PD, _PD, _PD]
    lib.fqt_fully_connected_backward_input_s8_scratch_size.restype = c_size_t
    lib.fqt_fully_connected_backward_input_s8_scratch_size.argtypes = [c_int32, c_int32]
    for name, argtypes in PROTOTYPES.items():
        fn = getattr(lib, name)
        fn.restype = ctypes.c_int
        fn.argtypes = argtypes
    return lib


def _check(a: np.ndarray, dtype) -> np.ndarray:
    if a.dtype != dtype or not a.flags.c_contiguous:
        raise TypeError(f"need a C-contiguous {np.dtype(dtype).name} array, got {a.dtype}")
    return a


def p8(a: np.ndarray | None):
    return None if a is None else _check(a, np.int8).ctypes.data_as(_P8)


def p32(a: np.ndarray | None):
    return None if a is None else _check(a, np.int32).ctypes.data_as(_P32)


def pu16(a: np.ndarray):
    return _check(a, np.uint16).ctypes.data_as(_PU16)


def pf32(a: np.ndarray) -> int:
    """const void *scales: float32 little-endian, read with memcpy by the C core."""
    return _check(a, np.float32).ctypes.data


def dims(shape) -> Dims:
    """An NHWC fqt_dims from a shape of up to four axes (missing leading axes are 1)."""
    s = (1,) * (4 - len(shape)) + tuple(int(v) for v in shape)
    return Dims(*s)


def requant(multiplier: np.ndarray, shift: np.ndarray) -> Requant:
    """Requant over int32 arrays; the caller keeps the arrays alive during the call."""
    return Requant(p32(multiplier), p32(shift), len(multiplier))


def grad_sink(
    acc_w: np.ndarray, acc_b: np.ndarray, mode: int, shift: int, base: int = 0
) -> GradSink:
    """Sink into acc_w int32 [C, row] and acc_b int32 [C] holding channels base .. base +
    C - 1 (kept alive by the caller)."""
    assert acc_w.ndim == 2 and acc_b.shape == (acc_w.shape[0],)
    return GradSink(p32(acc_w), p32(acc_b), acc_w.shape[1], mode, shift, base)
