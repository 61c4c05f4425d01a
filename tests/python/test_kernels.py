"""One unit test per public kernel of modules/fqt/include/fqt/kernels.h, forward and
backward, against the golden model (scripts/fqt/golden/), bit for bit (issue 9).

In the manner of TFLM's kernels/conv_test.cc and CMSIS-NN's
Tests/UnitTest/TestCases/test_arm_convolve_s8: small named cases (stride 2, dilation,
SAME/VALID padding with even kernels, depth multiplier 2+, per-channel vs per-tensor
requantization, kept-channel subsets, the FIRST/UP/DOWN modes of fqt_grad_sink, one input
channel, odd channel counts for the SIMD tails) plus seeded random cases. Each C kernel is
called through ctypes (tests/python/kernel_abi.py) on libfqt.so, with the arguments the C
trainer (modules/fqt/src/trainer.c) builds; the golden function gets the arguments the
golden trainer (scripts/fqt/golden/trainer.py) gives it.

Levels of comparison, where the golden function does more than the C kernel:
- *_backward_input and the pool backwards: the golden function returns the int8 error after
  quantize_error; the C kernel returns the int32 accumulator (real = acc * 2^(E - 8 + P),
  pools 2^(E - 16) and 2^E) that the trainer then quantizes. The tests catch the golden
  accumulator and base exponent on their way into quantize_error (a spy on the golden
  module's quantize_error) and compare them with the C accumulator and E - 8 + *fold_exp;
  then golden quantize_error of the C accumulator == the golden int8 error.
- *_backward_weights: the golden function returns the per-sample gradient; the C kernel
  adds it into the mini-batch accumulator through the sink. The tests compare the C
  accumulator with golden/update.py's GradientAccumulator.add of the golden gradient, for
  the kept channels. The kernel leaves the other channels untouched (the trainer's
  grad_skipped puts their zero gradient), which is what GradientAccumulator gives them in
  DOWN mode only; the tests check "untouched" for them in every mode.
- activation_backward: C's kernel is the RELU/RELU6 mask; the clip_mask extras of section
  5.1 (RELU at act_max, the saturation mask of NONE) are kernels of their own, tested
  against golden/activation.py's saturation_mask and the RELU rule.

Contracts kept by the cases: the int32 input-error kernels are only used by trainer.c while
the fan-out bound of docs/training-semantics.md 5.3 holds (past it, trainer.c's int64 path
runs; tests/python/test_native_train.py covers that); each case asserts it is inside.
The host build has no SIMD (FQT_SIMD_DSP is Cortex-M only), so there the odd channel
counts run the scalar loop; they are the tail cases for a DSP build of the same kernels.
fqt_reshape_backward is not tested (dead code, to be removed).
"""

from __future__ import annotations

import ctypes
import zlib
from dataclasses import dataclass

import kernel_abi as abi
import numpy as np
import pytest
from fqt import native
from fqt.golden import add as g_add
from fqt.golden import conv2d as g_conv
from fqt.golden import depthwise_conv2d as g_dw
from fqt.golden import fully_connected as g_fc
from fqt.golden import pooling as g_pool
from fqt.golden import reshape as g_reshape
from fqt.golden import softmax as g_softmax
from fqt.golden.activation import activation_backward, saturation_mask
from fqt.golden.error_quant import quantize_error
from fqt.golden.update import GradientAccumulator
from fqt.ir import Padding
from fqt.prepare import ADD_LEFT_SHIFT, compute_out_size, compute_padding_with_offset
from fqt.quant import (
    calculate_input_radius,
    preprocess_softmax_scaling,
    quantize_float32,
    quantize_multiplier,
    quantize_multiplier_smaller_than_one_exp,
)
from test_native import native_lib  # noqa: F401  (the session fixture building libfqt.so)

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
FOLD_BITS = 8  # FQT_ERROR_FOLD_BITS / golden ERROR_FOLD_BITS
AVG_BITS = 16  # FQT_AVG_RECIPROCAL_BITS / golden AVG_RECIPROCAL_BITS
ERR_EXP = -11  # exponent E of the error at the layer output (any int works)
SENTINEL = 0x5A5A5A5  # pre-fill of the C int32 outputs: the kernel must overwrite it
byref = ctypes.byref


@pytest.fixture(scope="module")
def lib(native_lib):  # noqa: F811
    return abi.declare(native.load_library(native_lib))


def _rng(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def _ids(cases) -> list[str]:
    return [c.name for c in cases]


def _ok(status: int) -> None:
    assert status == abi.FQT_OK, f"fqt_status {status}"


def _nontrivial(a: np.ndarray) -> None:
    """A comparison of an all-constant result proves little: the case must move values."""
    assert a.size < 4 or len(np.unique(a)) > 1, "degenerate case"


def _act_range(act: int, s_out: float, zp_out: int) -> tuple[int, int]:
    """CalculateActivationRangeQuantized (docs/integer-semantics.md 3)."""
    if act == abi.ACT_RELU:
        return max(-128, quantize_float32(0.0, s_out, zp_out)), 127
    if act == abi.ACT_RELU6:
        return (
            max(-128, quantize_float32(0.0, s_out, zp_out)),
            min(127, quantize_float32(6.0, s_out, zp_out)),
        )
    return -128, 127


def _geometry(in_hw, k_hw, stride, dilation, padding: str):
    """(out_hw, pad) as prepare.py computes them (TFLM ComputeOutSize / ComputePadding)."""
    pd = Padding[padding]
    out = tuple(
        compute_out_size(pd, i, k, s, d)
        for i, k, s, d in zip(in_hw, k_hw, stride, dilation, strict=True)
    )
    pad = tuple(
        compute_padding_with_offset(s, d, i, k, o)[0]
        for i, k, s, d, o in zip(in_hw, k_hw, stride, dilation, out, strict=True)
    )
    assert min(out) >= 1, "bad case geometry"
    return out, pad


def _errors(rng, shape, zero_fraction: float = 0.3) -> np.ndarray:
    """int8 errors in [-127, 127] with some exact zeros (the input kernels skip e == 0)."""
    e = rng.integers(-127, 128, shape).astype(np.int8)
    e[rng.random(shape) < zero_fraction] = 0
    flat = e.reshape(-1, shape[-1])
    for c in np.flatnonzero(~flat.any(axis=0)):  # every channel gets a nonzero error
        flat[rng.integers(len(flat)), c] = rng.choice([-127, -1, 1, 127])
    return e


def _kept(n: int, kept: tuple[int, ...] | None):
    """(uint16 kept list for C, bool mask [1, n] for the golden functions)."""
    ks = np.arange(n) if kept is None else np.array(sorted(kept))
    assert len(ks) == 0 or (ks.min() >= 0 and ks.max() < n)
    mask = np.zeros((1, n), bool)
    mask[0, ks] = True
    return ks.astype(np.uint16), mask


def _spy_quantize_error(monkeypatch, module) -> list:
    """Record the (acc, base_exp) each golden call of `module`.quantize_error receives."""
    seen = []
    real = module.quantize_error

    def spy(acc, base_exp, mode="dynamic"):
        seen.append((np.asarray(acc, np.int64).copy(), np.asarray(base_exp, np.int64).copy()))
        return real(acc, base_exp, mode)

    monkeypatch.setattr(module, "quantize_error", spy)
    return seen


def _check_input_error(acc_c, fold_exp, seen, golden_out, base_offset: int) -> None:
    """C int32 accumulator == golden int64 accumulator (and base exponents), then golden
    quantize_error of the C accumulator == the golden function's int8 error."""
    assert len(seen) == 1
    g_acc, g_base = seen[0]
    np.testing.assert_array_equal(acc_c, g_acc.reshape(acc_c.shape))
    base = ERR_EXP + base_offset + fold_exp
    assert int(g_base[0]) == base
    q, qe = quantize_error(acc_c[None].astype(np.int64), base)
    np.testing.assert_array_equal(q.reshape(golden_out[0].shape), golden_out[0])
    np.testing.assert_array_equal(qe, golden_out[1])
    _nontrivial(acc_c)


# --- gradient sink (docs/training-semantics.md 4; trainer.c grad_sink) -------------------
# name: (accumulator count before the sample, E - G)
SINKS = {
    "first": (0, 0),
    "up": (1, 3),
    "up_capped": (1, 40),  # shift min(E - G, 31) = 31
    "down": (1, -2),
    "down_equal": (1, 0),  # E == G: DOWN with shift 0
    "down_capped": (1, -45),
}


def _sink_mode(count: int, e: int, g: int) -> tuple[int, int]:
    """trainer.c grad_sink: FIRST for a new batch, UP when E > G, else DOWN."""
    if count == 0:
        return abi.FQT_GRAD_FIRST, 0
    if e > g:
        return abi.FQT_GRAD_UP, min(e - g, 31)
    return abi.FQT_GRAD_DOWN, min(g - e, 31)


def _prior_acc(rng, shape) -> np.ndarray:
    """Earlier samples' accumulator: mostly moderate, a few near the int32 ends (so that
    the saturation of the sum is reached)."""
    a = rng.integers(-(1 << 20), 1 << 20, shape).astype(np.int64)
    ends = rng.random(shape) < 0.1
    a[ends] = rng.choice([INT32_MIN, INT32_MIN + 5, INT32_MAX - 5, INT32_MAX], int(ends.sum()))
    return a


def _check_grad_sink(sink_name, rng, gw_rows, gb, kept, call) -> None:
    """Run call(sink) on a prior accumulator and compare with GradientAccumulator.add.

    gw_rows [C, row], gb [C]: the golden per-sample gradient (0 outside kept)."""
    count, de = SINKS[sink_name]
    g_exp = ERR_EXP - de
    prev_w = _prior_acc(rng, gw_rows.shape)
    prev_b = _prior_acc(rng, gb.shape)
    golden = GradientAccumulator(prev_w.copy(), prev_b.copy(), exp=g_exp, count=count)
    golden.add(gw_rows, gb, ERR_EXP)
    mode, shift = _sink_mode(count, ERR_EXP, g_exp)
    acc_w = prev_w.astype(np.int32)
    acc_b = prev_b.astype(np.int32)
    _ok(call(abi.grad_sink(acc_w, acc_b, mode, shift)))
    k = kept.astype(np.intp)
    skipped = np.setdiff1d(np.arange(len(gb)), k)
    np.testing.assert_array_equal(acc_w[k], golden.acc_w[k])
    np.testing.assert_array_equal(acc_b[k], golden.acc_b[k])
    # Channels outside kept: not touched by the kernel (trainer.c grad_skipped's job).
    np.testing.assert_array_equal(acc_w[skipped], prev_w[skipped])
    np.testing.assert_array_equal(acc_b[skipped], prev_b[skipped])
    if mode == abi.FQT_GRAD_DOWN:  # there a zero gradient leaves the accumulator as it was
        np.testing.assert_array_equal(acc_w, golden.acc_w)
        np.testing.assert_array_equal(acc_b, golden.acc_b)
    _nontrivial(gw_rows[k])


# --- CONV_2D and DEPTHWISE_CONV_2D ---------------------------------------------------------


@dataclass(frozen=True)
class ConvCase:
    name: str
    in_hw: tuple[int, int]
    cin: int
    out_or_dm: int  # conv: output channels; depthwise: depth multiplier (out = cin * dm)
    k_hw: tuple[int, int] = (3, 3)
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    padding: str = "VALID"
    per_channel: bool = True
    bias: bool = True
    act: int = abi.ACT_NONE
    zp_in: int | None = None  # None: random
    zp_out: int | None = None
    batch: int = 1  # forward only; the backward kernels are per sample
    kept: tuple[int, ...] | None = None  # None: all channels
    scale_spread: float = 2.0  # max / min weight scale across channels


CONV_CASES = [
    ConvCase("basic_3x3_valid", (5, 5), 2, 3),
    ConvCase("stride2_same", (7, 6), 3, 4, stride=(2, 2), padding="SAME"),
    ConvCase("stride2x1_valid", (7, 5), 2, 3, stride=(2, 1)),
    ConvCase("stride3_same_1x1_output", (3, 3), 2, 2, stride=(3, 3), padding="SAME"),
    ConvCase("dilation2_valid", (7, 7), 2, 3, dilation=(2, 2)),
    ConvCase("dilation2x3_same", (6, 8), 3, 2, dilation=(2, 3), padding="SAME"),
    ConvCase(
        "dilation2_stride2_same", (9, 9), 2, 3, stride=(2, 2), dilation=(2, 2), padding="SAME"
    ),
    ConvCase("same_even_kernel_2x2", (4, 5), 3, 3, k_hw=(2, 2), padding="SAME"),
    ConvCase("same_even_kernel_4x4", (6, 6), 2, 2, k_hw=(4, 4), padding="SAME"),
    ConvCase("nonsquare_kernel_1x3", (4, 6), 2, 3, k_hw=(1, 3), padding="SAME"),
    ConvCase("pointwise_1x1", (3, 4), 8, 5, k_hw=(1, 1)),
    ConvCase("one_input_channel", (6, 6), 1, 4, padding="SAME"),
    ConvCase("odd_channels_simd_tail", (5, 5), 7, 5, padding="SAME"),
    ConvCase("odd_channels_13_in", (4, 4), 13, 3, k_hw=(2, 2)),
    ConvCase("per_tensor_weights", (5, 5), 3, 4, per_channel=False, padding="SAME"),
    ConvCase("no_bias", (5, 4), 2, 3, bias=False),
    ConvCase("relu", (5, 5), 3, 4, act=abi.ACT_RELU, padding="SAME"),
    ConvCase("relu6", (5, 5), 3, 4, act=abi.ACT_RELU6, padding="SAME"),
    ConvCase("zero_points_extreme", (5, 5), 3, 3, zp_in=-128, zp_out=127),
    ConvCase("zero_points_extreme_high", (5, 5), 3, 3, zp_in=127, zp_out=-128),
    ConvCase("batch2", (5, 5), 2, 3, padding="SAME", batch=2),
    ConvCase("kept_subset", (5, 5), 3, 7, padding="SAME", kept=(1, 4, 6)),
    ConvCase("kept_one", (4, 4), 2, 5, stride=(2, 2), padding="SAME", kept=(3,)),
    ConvCase("weight_scales_spread_2e20", (5, 5), 2, 4, scale_spread=2.0**20),
]


def _random_conv_cases(depthwise: bool, n: int) -> list[ConvCase]:
    rng = _rng("random-conv", depthwise)
    cases = []
    for i in range(n):
        k_hw = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        dilation = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        in_hw = tuple(
            int(rng.integers((k - 1) * d + 1, (k - 1) * d + 6))
            for k, d in zip(k_hw, dilation, strict=True)
        )
        cin = int(rng.integers(1, 6 if depthwise else 10))
        cout = int(rng.integers(1, 4)) if depthwise else int(rng.integers(1, 9))
        n_out = cin * cout if depthwise else cout
        kept = None
        if n_out > 1 and rng.random() < 0.5:
            k = int(rng.integers(1, n_out))
            kept = tuple(int(v) for v in rng.choice(n_out, k, replace=False))
        cases.append(
            ConvCase(
                f"random_{i}",
                in_hw,
                cin,
                cout,
                k_hw=k_hw,
                stride=stride,
                dilation=dilation,
                padding=str(rng.choice(["SAME", "VALID"])),
                per_channel=bool(rng.random() < 0.7),
                bias=bool(rng.random() < 0.8),
                act=int(rng.choice([0, 1, 3])),
                kept=kept,
            )
        )
    return cases


CONV_CASES += _random_conv_cases(False, 8)

DW_CASES = [
    ConvCase("dm1_3x3_valid", (5, 5), 3, 1),
    ConvCase("dm2_stride2_same", (7, 6), 3, 2, stride=(2, 2), padding="SAME"),
    ConvCase("dm3_dilation2_valid", (7, 7), 2, 3, dilation=(2, 2)),
    ConvCase("dm2_dilation2_same", (6, 7), 2, 2, dilation=(2, 2), padding="SAME"),
    ConvCase("one_input_channel_dm4", (5, 5), 1, 4, padding="SAME"),
    ConvCase("odd_channels_simd_tail", (5, 4), 7, 1, padding="SAME"),
    ConvCase("odd_channels_dm2", (4, 4), 5, 2, k_hw=(2, 2)),
    ConvCase("same_even_kernel_2x2", (4, 5), 3, 1, k_hw=(2, 2), padding="SAME"),
    ConvCase("stride2x1_nonsquare_kernel", (6, 5), 2, 1, k_hw=(3, 1), stride=(2, 1)),
    ConvCase("per_tensor_weights", (5, 5), 4, 1, per_channel=False, padding="SAME"),
    ConvCase("no_bias_relu6", (5, 5), 3, 2, bias=False, act=abi.ACT_RELU6, padding="SAME"),
    ConvCase("relu", (5, 5), 3, 1, act=abi.ACT_RELU),
    ConvCase("zero_points_extreme", (5, 5), 3, 1, zp_in=-128, zp_out=127),
    ConvCase("batch2", (5, 5), 2, 2, padding="SAME", batch=2),
    ConvCase("kept_subset_dm2", (5, 5), 3, 2, padding="SAME", kept=(0, 3, 5)),
    ConvCase("kept_one", (4, 4), 4, 1, stride=(2, 2), padding="SAME", kept=(2,)),
    ConvCase("weight_scales_spread_2e20", (5, 5), 2, 2, scale_spread=2.0**20),
    # dm 1 input error in stack chunks of 32 channels: three chunks, the middle one unkept
    ConvCase("dm1_70ch_kept_chunks", (4, 4), 70, 1, padding="SAME", kept=(1, 5, 31, 64, 69)),
    # dm 1, 3x3, stride 1: the channel-planar input error (pairs of rows per SMLAD)
    ConvCase("planar_kws_25x5x64_same", (25, 5), 64, 1, padding="SAME"),
    ConvCase("planar_even_h_kept_mixed", (6, 3), 9, 1, padding="SAME", kept=(0, 2, 3, 8)),
    ConvCase("planar_odd_h2_valid", (7, 4), 5, 1),
    ConvCase("planar_min_h", (2, 2), 3, 1, padding="SAME"),
    ConvCase(
        "dm1_40ch_stride2_dilation2", (7, 6), 40, 1, stride=(2, 2), dilation=(2, 2), padding="SAME"
    ),
    # dm 1 weight gradient, four channels' padded images at once (KWS-like: the planned
    # scratch holds four), alone and mixed with single channels of a kept subset
    ConvCase("dm1_four_lanes_kws_like", (25, 5), 8, 1, padding="SAME"),
    ConvCase(
        "dm1_four_lanes_kept_mix",
        (25, 5),
        12,
        1,
        padding="SAME",
        kept=(0, 1, 2, 3, 5, 8, 9, 10, 11),
    ),
    *_random_conv_cases(True, 8),
]


@dataclass
class ConvLayer:
    x: np.ndarray  # int8 [N, H, W, Cin]
    w: np.ndarray  # conv [Cout, KH, KW, Cin]; depthwise [1, KH, KW, Cout]
    bias: np.ndarray | None
    s_w: np.ndarray  # float32 weight scales, [Cout] or [1]
    mult: np.ndarray  # int32 [Cout]
    shift: np.ndarray  # int32 [Cout]
    zp_in: int
    zp_out: int
    act_min: int
    act_max: int
    out_hw: tuple[int, int]
    pad: tuple[int, int]
    n_out: int
    params: abi.ConvParams


def _conv_layer(case: ConvCase, depthwise: bool, what: str) -> ConvLayer:
    rng = _rng(what, case)
    out_hw, pad = _geometry(case.in_hw, case.k_hw, case.stride, case.dilation, case.padding)
    n_out = case.cin * case.out_or_dm if depthwise else case.out_or_dm
    kh, kw = case.k_hw
    x = rng.integers(-128, 128, (case.batch, *case.in_hw, case.cin)).astype(np.int8)
    wshape = (1, kh, kw, n_out) if depthwise else (n_out, kh, kw, case.cin)
    w = rng.integers(-127, 128, wshape).astype(np.int8)
    zp_in = int(rng.integers(-128, 128)) if case.zp_in is None else case.zp_in
    zp_out = int(rng.integers(-128, 128)) if case.zp_out is None else case.zp_out
    s_in = float(np.float32(rng.uniform(0.01, 0.1)))
    base = rng.uniform(0.002, 0.02)
    n_sw = n_out if case.per_channel else 1
    spread = np.exp(rng.uniform(0.0, np.log(case.scale_spread), n_sw))
    s_w = (base / spread).astype(np.float32)
    taps = kh * kw * (1 if depthwise else case.cin)
    s_out = float(np.float32(s_in * float(s_w.max()) * np.sqrt(taps) * rng.uniform(60, 200)))
    # prepare.py _conv_multipliers: per channel, double products (per-tensor broadcast)
    ms = [quantize_multiplier(s_in * float(s_w[c % n_sw]) / s_out) for c in range(n_out)]
    mult = np.array([m for m, _ in ms], np.int32)
    shift = np.array([s for _, s in ms], np.int32)
    bias = rng.integers(-(1 << 13), 1 << 13, n_out).astype(np.int32) if case.bias else None
    act_min, act_max = _act_range(case.act, s_out, zp_out)
    params = abi.ConvParams(
        -zp_in,
        zp_out,
        *case.stride,
        *case.dilation,
        *pad,
        case.out_or_dm if depthwise else 1,
        act_min,
        act_max,
    )
    return ConvLayer(
        x, w, bias, s_w, mult, shift, zp_in, zp_out, act_min, act_max, out_hw, pad, n_out, params
    )


def _golden_conv_kwargs(case: ConvCase, layer: ConvLayer) -> dict:
    return dict(stride=case.stride, pad=layer.pad, dilation=case.dilation)


def _conv_forward(lib, case: ConvCase, depthwise: bool) -> None:
    L = _conv_layer(case, depthwise, "forward")
    golden_fn = g_dw.depthwise_conv2d_forward if depthwise else g_conv.conv2d_forward
    want = golden_fn(
        L.x,
        L.w,
        L.bias,
        input_zero_point=L.zp_in,
        output_zero_point=L.zp_out,
        output_multiplier=L.mult,
        output_shift=L.shift,
        act_min=L.act_min,
        act_max=L.act_max,
        out_hw=L.out_hw,
        **_golden_conv_kwargs(case, L),
    )
    out = np.full(want.shape, 0x55, np.int8)
    fn = lib.fqt_depthwise_conv2d_forward if depthwise else lib.fqt_conv2d_forward
    rq = abi.requant(L.mult, L.shift)
    xd, wd, od = abi.dims(L.x.shape), abi.dims(L.w.shape), abi.dims(out.shape)
    args = (
        byref(L.params), byref(rq), byref(xd), abi.p8(L.x), byref(wd), abi.p8(L.w),
        abi.p32(L.bias), byref(od),
    )  # fmt: skip
    _ok(fn(*args, abi.p8(out)))
    np.testing.assert_array_equal(out, want)
    _nontrivial(want)
    if depthwise:
        return
    # The int16 patch matrix (a scratch of the planned size, poisoned) and its fallback to
    # the direct kernel (one byte short, none) must give the same outputs.
    need = lib.fqt_conv2d_forward_im2col_scratch_size(byref(xd), byref(wd))
    kh, kw = case.k_hw
    assert need == 20 * ((kh * kw * case.cin + 3) // 4)
    for size in (need, need - 1, 0):
        scratch = np.full(max(size, 1) + 4, 0xA5, np.uint8)
        base = scratch.ctypes.data + (-scratch.ctypes.data % 4)
        out = np.full(want.shape, 0x55, np.int8)
        fn = lib.fqt_conv2d_forward_im2col
        _ok(fn(*args, abi.p8(out), base if size else None, size))
        np.testing.assert_array_equal(out, want)


def _conv_backward_weights(
    lib, case: ConvCase, sink: str, depthwise: bool, saturating: bool = False
) -> None:
    L = _conv_layer(case, depthwise, "backward")
    rng = _rng("weights", case, sink)
    x = L.x[:1]
    err = _errors(rng, (1, *L.out_hw, L.n_out))  # not masked: the kernel must skip others
    if saturating:  # |x - zp| = 255 and |e| = 127 everywhere in channels 0 and 1
        assert L.zp_in == -128 and case.k_hw == (1, 1)
        x = x.copy()
        x[..., 0] = 127
        err[..., 0] = 127
        err[..., 1] = -127
    kept, mask = _kept(L.n_out, case.kept)
    golden_fn = (
        g_dw.depthwise_conv2d_backward_weights if depthwise else g_conv.conv2d_backward_weights
    )
    gw, gb = golden_fn(
        err,
        x,
        input_zero_point=L.zp_in,
        kernel_hw=case.k_hw,
        kept=mask,
        **_golden_conv_kwargs(case, L),
    )
    # golden trainer: channel-major rows (depthwise: 1HWC -> [C, KH*KW])
    rows = gw[0].reshape(-1, L.n_out).T if depthwise else gw[0].reshape(L.n_out, -1)
    fn = lib.fqt_depthwise_conv2d_backward_weights if depthwise else lib.fqt_conv2d_backward_weights
    xd, wd, ed = abi.dims(x.shape), abi.dims(L.w.shape), abi.dims(err.shape)
    sizes = []
    if depthwise:
        need = lib.fqt_depthwise_conv2d_backward_weights_scratch_size(byref(wd), byref(ed))
    else:
        need = lib.fqt_conv2d_backward_weights_scratch_size(byref(xd), byref(wd), byref(ed))
        # the lean plan's: the transposed error 16 channels at a time (== need below 17)
        blocked = lib.fqt_conv2d_backward_weights_blocked_scratch_size(
            byref(xd), byref(wd), byref(ed)
        )
        assert (blocked < need) == (L.n_out > 16)
        sizes = [blocked, blocked - 1]
    # The int16 matrix-product path (a scratch of the planned size) and the exact int64
    # path (none, or one byte short) must both give the golden gradients.
    for size in (need, need - 1, 0, *sizes):
        scratch = np.zeros(max(size, 1) + 4, np.uint8)
        base = scratch.ctypes.data + (-scratch.ctypes.data % 4)

        def call(s, size=size, base=base):
            return fn(
                byref(L.params), byref(xd), abi.p8(x), byref(wd), byref(ed), abi.p8(err),
                abi.pu16(kept), len(kept), byref(s), base if size else None, size,
            )  # fmt: skip

        _check_grad_sink(sink, rng, np.ascontiguousarray(rows), gb[0], kept, call)


def _fan_out_ok(fan_out: int) -> None:
    """The int32 kernels are exact while fan_out * 127 * (127 * 256) fits int32
    (docs/training-semantics.md 5.3; else trainer.c takes its int64 path)."""
    assert fan_out * 127 * 127 * 256 <= INT32_MAX, "case outside the int32 kernels' contract"


def _conv_backward_input(lib, monkeypatch, case: ConvCase, depthwise: bool) -> None:
    L = _conv_layer(case, depthwise, "backward")
    rng = _rng("input", case)
    err = _errors(rng, (1, *L.out_hw, L.n_out))
    kept, mask = _kept(L.n_out, case.kept)
    kh, kw = case.k_hw
    _fan_out_ok(kh * kw * (case.out_or_dm if depthwise else len(kept)))
    module = g_dw if depthwise else g_conv
    seen = _spy_quantize_error(monkeypatch, module)
    extra = dict(in_channels=case.cin) if depthwise else {}
    fn_g = g_dw.depthwise_conv2d_backward_input if depthwise else g_conv.conv2d_backward_input
    golden_out = fn_g(
        err,
        np.array([ERR_EXP]),
        L.w,
        L.s_w,
        in_hw=case.in_hw,
        kept=mask,
        mode="dynamic",
        **extra,
        **_golden_conv_kwargs(case, L),
    )
    xd, wd, ed = abi.dims(L.x[:1].shape), abi.dims(L.w.shape), abi.dims(err.shape)
    args = lambda acc, fold: (  # noqa: E731
        byref(L.params), byref(xd), byref(wd), abi.p8(L.w), abi.pf32(L.s_w), len(L.s_w),
        byref(ed), abi.p8(err), abi.pu16(kept), len(kept), abi.p32(acc), byref(fold),
    )  # fmt: skip
    if not depthwise:
        acc = np.full((*case.in_hw, case.cin), SENTINEL, np.int32)
        fold = ctypes.c_int32(-999)
        _ok(lib.fqt_conv2d_backward_input(*args(acc, fold)))
        _check_input_error(acc, fold.value, seen, golden_out, -FOLD_BITS)
        return
    # The gather (a scratch of the planned size; 0 where it does not apply) and the scatter
    # (none, or one byte short) must both give the golden errors.
    need = lib.fqt_depthwise_conv2d_backward_input_scratch_size(
        byref(L.params), byref(xd), byref(wd), byref(ed)
    )
    gathers = case.out_or_dm == 1 and case.stride == (1, 1) and case.dilation == (1, 1)
    assert (need > 0) == gathers
    for size in sorted({need, max(need - 1, 0), 0}, reverse=True):
        scratch = np.full(max(size, 1) + 4, 0xA5, np.uint8)
        base = scratch.ctypes.data + (-scratch.ctypes.data % 4)
        acc = np.full((*case.in_hw, case.cin), SENTINEL, np.int32)
        fold = ctypes.c_int32(-999)
        fn = lib.fqt_depthwise_conv2d_backward_input
        _ok(fn(*args(acc, fold), base if size else None, size))
        _check_input_error(acc, fold.value, seen, golden_out, -FOLD_BITS)


@pytest.mark.parametrize("case", CONV_CASES, ids=_ids(CONV_CASES))
def test_conv2d_forward(lib, case: ConvCase) -> None:
    _conv_forward(lib, case, False)


# The blocked weight gradient of the lean plan (more than 16 output channels, kept subsets).
WG_CASES = [
    *CONV_CASES,
    ConvCase("wg_blocked_40_channels", (4, 5), 3, 40, padding="SAME"),
    ConvCase("wg_blocked_kept", (3, 4), 5, 37, k_hw=(1, 1), kept=(0, 3, 4, 17, 18, 19, 36)),
]


@pytest.mark.parametrize("sink", list(SINKS))
@pytest.mark.parametrize("case", WG_CASES, ids=_ids(WG_CASES))
def test_conv2d_backward_weights(lib, case: ConvCase, sink: str) -> None:
    _conv_backward_weights(lib, case, sink, False)


# Per-sample gradients past int32 (|sum| = 127 * 255 * 260^2 > 2^31): both sides saturate
# the sample's gradient to int32 before accumulating, and the capped shifts of the sink
# (31, not more) become visible on such large values.
SATURATING_CONV = ConvCase("saturating_gradient", (260, 260), 2, 3, k_hw=(1, 1), zp_in=-128)
SATURATING_DW = ConvCase("saturating_gradient", (260, 260), 1, 2, k_hw=(1, 1), zp_in=-128)


@pytest.mark.parametrize("sink", list(SINKS))
@pytest.mark.parametrize("depthwise", [False, True], ids=["conv2d", "depthwise"])
def test_conv_backward_weights_saturating(lib, depthwise: bool, sink: str) -> None:
    case = SATURATING_DW if depthwise else SATURATING_CONV
    _conv_backward_weights(lib, case, sink, depthwise, saturating=True)


@pytest.mark.parametrize("case", CONV_CASES, ids=_ids(CONV_CASES))
def test_conv2d_backward_input(lib, monkeypatch, case: ConvCase) -> None:
    _conv_backward_input(lib, monkeypatch, case, False)


@pytest.mark.parametrize("case", DW_CASES, ids=_ids(DW_CASES))
def test_depthwise_conv2d_forward(lib, case: ConvCase) -> None:
    _conv_forward(lib, case, True)


@pytest.mark.parametrize("sink", list(SINKS))
@pytest.mark.parametrize("case", DW_CASES, ids=_ids(DW_CASES))
def test_depthwise_conv2d_backward_weights(lib, case: ConvCase, sink: str) -> None:
    _conv_backward_weights(lib, case, sink, True)


@pytest.mark.parametrize("case", DW_CASES, ids=_ids(DW_CASES))
def test_depthwise_conv2d_backward_input(lib, monkeypatch, case: ConvCase) -> None:
    _conv_backward_input(lib, monkeypatch, case, True)


# --- FULLY_CONNECTED -------------------------------------------------------------------------


@dataclass(frozen=True)
class FcCase:
    name: str
    accum: int
    out: int
    per_channel: bool = True  # per-channel weight scales and requant (else one of each)
    bias: bool = True
    act: int = abi.ACT_NONE
    zp_in: int | None = None
    zp_out: int | None = None
    batch: int = 1
    kept: tuple[int, ...] | None = None
    scale_spread: float = 2.0


FC_CASES = [
    FcCase("basic", 10, 4),
    FcCase("per_tensor_requant", 12, 5, per_channel=False),
    FcCase("per_channel_requant", 12, 5, per_channel=True),
    FcCase("odd_accum_simd_tail", 37, 7),
    FcCase("accum_1", 1, 6),
    FcCase("out_1", 9, 1),
    FcCase("no_bias", 8, 3, bias=False),
    FcCase("relu", 16, 6, act=abi.ACT_RELU),
    FcCase("relu6_per_tensor", 16, 6, act=abi.ACT_RELU6, per_channel=False),
    FcCase("zero_points_extreme", 11, 4, zp_in=-128, zp_out=127),
    FcCase("batch3", 13, 5, batch=3),
    FcCase("kept_subset", 15, 9, kept=(0, 2, 3, 8)),
    FcCase("kept_one_per_tensor", 6, 4, per_channel=False, kept=(1,)),
    FcCase("weight_scales_spread_2e20", 10, 5, scale_spread=2.0**20),
]


def _random_fc_cases(n: int) -> list[FcCase]:
    rng = _rng("random-fc")
    cases = []
    for i in range(n):
        out = int(rng.integers(1, 17))
        kept = None
        if out > 1 and rng.random() < 0.5:
            kept = tuple(int(v) for v in rng.choice(out, int(rng.integers(1, out)), replace=False))
        cases.append(
            FcCase(
                f"random_{i}",
                int(rng.integers(1, 70)),
                out,
                per_channel=bool(rng.random() < 0.5),
                bias=bool(rng.random() < 0.8),
                act=int(rng.choice([0, 1, 3])),
                kept=kept,
                batch=int(rng.integers(1, 3)),
            )
        )
    return cases


FC_CASES += _random_fc_cases(8)


def _fc_layer(case: FcCase, what: str) -> dict:
    rng = _rng(what, case)
    x = rng.integers(-128, 128, (case.batch, case.accum)).astype(np.int8)
    w = rng.integers(-127, 128, (case.out, case.accum)).astype(np.int8)
    zp_in = int(rng.integers(-128, 128)) if case.zp_in is None else case.zp_in
    zp_out = int(rng.integers(-128, 128)) if case.zp_out is None else case.zp_out
    s_in = np.float32(rng.uniform(0.01, 0.1))
    n_sw = case.out if case.per_channel else 1
    spread = np.exp(rng.uniform(0.0, np.log(case.scale_spread), n_sw))
    s_w = (rng.uniform(0.002, 0.02) / spread).astype(np.float32)
    s_out = float(
        np.float32(float(s_in) * float(s_w.max()) * np.sqrt(case.accum) * rng.uniform(60, 200))
    )
    if case.per_channel:  # prepare.py: double products per channel
        ms = [quantize_multiplier(float(s_in) * float(s) / s_out) for s in s_w]
    else:  # GetQuantizedConvolutionMultipler (the wheel's): the product in double
        ms = [quantize_multiplier(float(s_in) * float(s_w[0]) / s_out)]
    mult = np.array([m for m, _ in ms], np.int32)
    shift = np.array([s for _, s in ms], np.int32)
    bias = rng.integers(-(1 << 13), 1 << 13, case.out).astype(np.int32) if case.bias else None
    act_min, act_max = _act_range(case.act, s_out, zp_out)
    return dict(
        x=x,
        w=w,
        zp_in=zp_in,
        zp_out=zp_out,
        s_w=s_w,
        mult=mult,
        shift=shift,
        bias=bias,
        act_min=act_min,
        act_max=act_max,
    )


@pytest.mark.parametrize("case", FC_CASES, ids=_ids(FC_CASES))
def test_fully_connected_forward(lib, case: FcCase) -> None:
    L = _fc_layer(case, "forward")
    want = g_fc.fully_connected_forward(
        L["x"],
        L["w"],
        L["bias"],
        input_zero_point=L["zp_in"],
        output_zero_point=L["zp_out"],
        output_multiplier=L["mult"],
        output_shift=L["shift"],
        act_min=L["act_min"],
        act_max=L["act_max"],
    )
    out = np.full(want.shape, 0x55, np.int8)
    params = abi.FullyConnectedParams(-L["zp_in"], L["zp_out"], L["act_min"], L["act_max"])
    rq = abi.requant(L["mult"], L["shift"])
    _ok(
        lib.fqt_fully_connected_forward(
            byref(params),
            byref(rq),
            case.batch,
            case.accum,
            case.out,
            abi.p8(L["x"]),
            abi.p8(L["w"]),
            abi.p32(L["bias"]),
            abi.p8(out),
        )
    )
    np.testing.assert_array_equal(out, want)
    _nontrivial(want)


@pytest.mark.parametrize("sink", list(SINKS))
@pytest.mark.parametrize("case", FC_CASES, ids=_ids(FC_CASES))
def test_fully_connected_backward_weights(lib, case: FcCase, sink: str) -> None:
    L = _fc_layer(case, "backward")
    rng = _rng("weights", case, sink)
    x = L["x"][:1]
    err = _errors(rng, (1, case.out), 0.2)
    kept, mask = _kept(case.out, case.kept)
    gw, gb = g_fc.fully_connected_backward_weights(err, x, input_zero_point=L["zp_in"], kept=mask)

    def call(s):
        return lib.fqt_fully_connected_backward_weights(
            abi.p8(err), abi.p8(x), -L["zp_in"], case.accum, abi.pu16(kept), len(kept), byref(s)
        )

    _check_grad_sink(sink, rng, np.ascontiguousarray(gw[0]), gb[0], kept, call)


@pytest.mark.parametrize("case", FC_CASES, ids=_ids(FC_CASES))
def test_fully_connected_backward_input(lib, monkeypatch, case: FcCase) -> None:
    L = _fc_layer(case, "backward")
    rng = _rng("input", case)
    err = _errors(rng, (1, case.out), 0.2)
    kept, mask = _kept(case.out, case.kept)
    _fan_out_ok(len(kept))
    seen = _spy_quantize_error(monkeypatch, g_fc)
    golden_out = g_fc.fully_connected_backward_input(
        err, np.array([ERR_EXP]), L["w"], L["s_w"], kept=mask, mode="dynamic"
    )
    acc = np.full(case.accum, SENTINEL, np.int32)
    fold = ctypes.c_int32(-999)
    _ok(
        lib.fqt_fully_connected_backward_input(
            abi.p8(err),
            case.out,
            case.accum,
            abi.p8(L["w"]),
            abi.pf32(L["s_w"]),
            len(L["s_w"]),
            abi.pu16(kept),
            len(kept),
            abi.p32(acc),
            byref(fold),
        )
    )
    _check_input_error(acc, fold.value, seen, golden_out, -FOLD_BITS)


# --- the lean plan's int8 input errors (kernels/input_error_s8.c) ----------------------------
# The int8 error and exponent straight from the kernel, equal to the golden function's
# (quantize_error of the same exact sums), dynamic and fixed; the cases below add chunking
# (FQT_IE_CHUNK = 256 int32: several chunks per row, one position per chunk, several FC
# chunks). A scratch one byte short is refused.
LEAN_CONV_CASES = [
    *CONV_CASES,
    ConvCase("lean_3_chunks_per_row", (3, 9), 64, 3, padding="SAME"),
    ConvCase("lean_1_position_per_chunk", (2, 3), 300, 2, k_hw=(1, 1)),
    ConvCase("lean_stride2_chunks", (5, 11), 40, 3, stride=(2, 2), padding="SAME"),
]
LEAN_DW_CASES = [
    *CONV_CASES,
    ConvCase("lean_dw_planar_chunks", (4, 9), 64, 1, padding="SAME"),
    ConvCase("lean_dw_gather_chunks", (4, 9), 64, 1, k_hw=(2, 2), padding="SAME"),
    ConvCase("lean_dw_dm2_chunks", (3, 7), 48, 2, padding="SAME"),
]
LEAN_FC_CASES = [*FC_CASES, FcCase("lean_3_chunks", 600, 5), FcCase("lean_chunk_edge", 256, 3)]


def _lean_call(fn, size_fn, call, mode: str):
    """Run a lean kernel with its planned scratch (int8 out, exponent), and check that one
    byte less is refused."""
    need = size_fn()
    out_e = ctypes.c_int32(-999)
    for size in (need - 1, need):
        scratch = np.full(size + 4, 0xA5, np.uint8)
        base = scratch.ctypes.data + (-scratch.ctypes.data % 4)
        status = call(int(mode == "fixed"), byref(out_e), base, size)
        if size < need:
            assert status != abi.FQT_OK
    _ok(status)
    return out_e.value


LEAN_CASES = [(c, False) for c in LEAN_CONV_CASES] + [(c, True) for c in LEAN_DW_CASES]


@pytest.mark.parametrize("mode", ["dynamic", "fixed"])
@pytest.mark.parametrize(
    ("case", "depthwise"), LEAN_CASES,
    ids=[f"{'dw' if d else 'conv'}-{c.name}" for c, d in LEAN_CASES],
)  # fmt: skip
def test_conv_backward_input_s8(lib, case: ConvCase, depthwise: bool, mode: str) -> None:
    L = _conv_layer(case, depthwise, "backward")
    rng = _rng("input_s8", case)
    err = _errors(rng, (1, *L.out_hw, L.n_out))
    kept, mask = _kept(L.n_out, case.kept)
    kh, kw = case.k_hw
    _fan_out_ok(kh * kw * (case.out_or_dm if depthwise else len(kept)))
    extra = dict(in_channels=case.cin) if depthwise else {}
    fn_g = g_dw.depthwise_conv2d_backward_input if depthwise else g_conv.conv2d_backward_input
    g_e, g_exp = fn_g(
        err, np.array([ERR_EXP]), L.w, L.s_w, in_hw=case.in_hw, kept=mask, mode=mode,
        **extra, **_golden_conv_kwargs(case, L),
    )  # fmt: skip
    xd, wd, ed = abi.dims(L.x[:1].shape), abi.dims(L.w.shape), abi.dims(err.shape)
    out = np.full((*case.in_hw, case.cin), 0x55, np.int8)
    if depthwise:
        fn = lib.fqt_depthwise_conv2d_backward_input_s8
        size_fn = lambda: lib.fqt_depthwise_conv2d_backward_input_s8_scratch_size(  # noqa: E731
            byref(L.params), byref(xd), byref(wd), byref(ed)
        )
    else:
        fn = lib.fqt_conv2d_backward_input_s8
        size_fn = lambda: lib.fqt_conv2d_backward_input_s8_scratch_size(byref(xd), byref(ed))  # noqa: E731
    exp = _lean_call(
        fn, size_fn,
        lambda fixed, e_out, base, size: fn(
            byref(L.params), byref(xd), byref(wd), abi.p8(L.w), abi.pf32(L.s_w), len(L.s_w),
            byref(ed), abi.p8(err), ERR_EXP, abi.pu16(kept), len(kept), fixed, abi.p8(out),
            e_out, base, size,
        ),
        mode,
    )  # fmt: skip
    np.testing.assert_array_equal(out, np.asarray(g_e).reshape(out.shape))
    assert exp == int(np.asarray(g_exp).reshape(-1)[0])
    if mode == "dynamic":
        _nontrivial(out)


@pytest.mark.parametrize("mode", ["dynamic", "fixed"])
@pytest.mark.parametrize("case", LEAN_FC_CASES, ids=_ids(LEAN_FC_CASES))
def test_fully_connected_backward_input_s8(lib, case: FcCase, mode: str) -> None:
    L = _fc_layer(case, "backward")
    rng = _rng("input_s8", case)
    err = _errors(rng, (1, case.out), 0.2)
    kept, mask = _kept(case.out, case.kept)
    _fan_out_ok(len(kept))
    g_e, g_exp = g_fc.fully_connected_backward_input(
        err, np.array([ERR_EXP]), L["w"], L["s_w"], kept=mask, mode=mode
    )
    out = np.full(case.accum, 0x55, np.int8)
    fn = lib.fqt_fully_connected_backward_input_s8
    exp = _lean_call(
        fn,
        lambda: lib.fqt_fully_connected_backward_input_s8_scratch_size(case.out, case.accum),
        lambda fixed, e_out, base, size: fn(
            abi.p8(err), case.out, case.accum, abi.p8(L["w"]), abi.pf32(L["s_w"]),
            len(L["s_w"]), ERR_EXP, abi.pu16(kept), len(kept), fixed, abi.p8(out), e_out,
            base, size,
        ),
        mode,
    )  # fmt: skip
    np.testing.assert_array_equal(out, np.asarray(g_e).reshape(out.shape))
    assert exp == int(np.asarray(g_exp).reshape(-1)[0])


# --- AVERAGE_POOL_2D and MAX_POOL_2D ---------------------------------------------------------


@dataclass(frozen=True)
class PoolCase:
    name: str
    in_hw: tuple[int, int]
    c: int
    filter_hw: tuple[int, int] = (2, 2)
    stride: tuple[int, int] = (2, 2)
    padding: str = "VALID"
    act_range: tuple[int, int] = (-128, 127)
    values: tuple[int, int] = (-128, 128)  # input range [lo, hi)
    batch: int = 1


POOL_CASES = [
    PoolCase("2x2_stride2_valid", (6, 6), 3),
    PoolCase("3x3_stride1_same_clipped", (5, 5), 2, (3, 3), (1, 1), "SAME"),
    PoolCase("3x3_stride2_same", (7, 6), 3, (3, 3), (2, 2), "SAME"),
    PoolCase("2x2_stride2_same_odd_input", (5, 7), 2, (2, 2), (2, 2), "SAME"),
    PoolCase("filter_larger_than_input_same", (2, 3), 2, (3, 3), (1, 1), "SAME"),
    PoolCase("global_valid", (4, 5), 5, (4, 5), (1, 1)),
    PoolCase("nonsquare_2x3_stride1x2", (5, 7), 2, (2, 3), (1, 2), "SAME"),
    PoolCase("1x1_filter", (3, 3), 4, (1, 1), (1, 1)),
    PoolCase("one_channel", (6, 6), 1, (3, 3), (2, 2), "SAME"),
    PoolCase("odd_channels_simd_tail", (4, 4), 7, (2, 2), (1, 1)),
    PoolCase("ties", (6, 6), 3, (3, 3), (1, 1), "SAME", values=(-1, 2)),
    PoolCase("constant_input", (4, 4), 2, (2, 2), (1, 1), "SAME", values=(5, 6)),
    PoolCase("relu_range_clamps", (6, 6), 3, (2, 2), (1, 1), act_range=(-20, 127)),
    PoolCase("relu6_range_clamps", (6, 6), 3, (3, 3), (2, 2), "SAME", act_range=(-10, 40)),
    PoolCase("batch2", (5, 5), 2, (2, 2), (2, 2), "SAME", batch=2),
]


def _random_pool_cases(n: int) -> list[PoolCase]:
    rng = _rng("random-pool")
    cases = []
    for i in range(n):
        f = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        s = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        hw = (int(rng.integers(f[0], f[0] + 5)), int(rng.integers(f[1], f[1] + 5)))
        lo = int(rng.integers(-128, 0))
        cases.append(
            PoolCase(
                f"random_{i}",
                hw,
                int(rng.integers(1, 9)),
                f,
                s,
                str(rng.choice(["SAME", "VALID"])),
                act_range=(lo, int(rng.integers(lo + 1, 128))),
                values=(-128, 128) if rng.random() < 0.6 else (-3, 3),
            )
        )
    return cases


POOL_CASES += _random_pool_cases(8)


def _pool(case: PoolCase, what: str):
    rng = _rng(what, case)
    out_hw, pad = _geometry(case.in_hw, case.filter_hw, case.stride, (1, 1), case.padding)
    x = rng.integers(*case.values, (case.batch, *case.in_hw, case.c)).astype(np.int8)
    params = abi.PoolParams(*case.stride, *case.filter_hw, *pad, *case.act_range)
    kw = dict(filter_hw=case.filter_hw, stride=case.stride, pad=pad)
    return rng, x, out_hw, params, kw


@pytest.mark.parametrize("op", ["average", "max"])
@pytest.mark.parametrize("case", POOL_CASES, ids=_ids(POOL_CASES))
def test_pool2d_forward(lib, case: PoolCase, op: str) -> None:
    _, x, out_hw, params, kw = _pool(case, "forward")
    golden_fn = g_pool.average_pool2d_forward if op == "average" else g_pool.max_pool2d_forward
    want = golden_fn(x, act_min=case.act_range[0], act_max=case.act_range[1], out_hw=out_hw, **kw)
    out = np.full(want.shape, 0x55, np.int8)
    fn = lib.fqt_average_pool2d_forward if op == "average" else lib.fqt_max_pool2d_forward
    _ok(
        fn(
            byref(params),
            byref(abi.dims(x.shape)),
            abi.p8(x),
            byref(abi.dims(out.shape)),
            abi.p8(out),
        )
    )
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("case", POOL_CASES, ids=_ids(POOL_CASES))
def test_average_pool2d_backward(lib, monkeypatch, case: PoolCase) -> None:
    rng, x, out_hw, params, kw = _pool(case, "backward")
    err = _errors(rng, (1, *out_hw, case.c))
    seen = _spy_quantize_error(monkeypatch, g_pool)
    golden_out = g_pool.average_pool2d_backward(
        err, np.array([ERR_EXP]), in_hw=case.in_hw, mode="dynamic", **kw
    )
    acc = np.full((*case.in_hw, case.c), SENTINEL, np.int32)
    _ok(
        lib.fqt_average_pool2d_backward(
            byref(params),
            byref(abi.dims(x[:1].shape)),
            byref(abi.dims(err.shape)),
            abi.p8(err),
            abi.p32(acc),
        )
    )
    _check_input_error(acc, 0, seen, golden_out, -AVG_BITS)


@pytest.mark.parametrize("case", POOL_CASES, ids=_ids(POOL_CASES))
def test_max_pool2d_backward(lib, monkeypatch, case: PoolCase) -> None:
    rng, x, out_hw, params, kw = _pool(case, "backward")
    x = x[:1]
    err = _errors(rng, (1, *out_hw, case.c), 0.1)
    seen = _spy_quantize_error(monkeypatch, g_pool)
    golden_out = g_pool.max_pool2d_backward(err, np.array([ERR_EXP]), x, mode="dynamic", **kw)
    acc = np.full((*case.in_hw, case.c), SENTINEL, np.int32)
    _ok(
        lib.fqt_max_pool2d_backward(
            byref(params),
            byref(abi.dims(x.shape)),
            abi.p8(x),
            byref(abi.dims(err.shape)),
            abi.p8(err),
            abi.p32(acc),
        )
    )
    _check_input_error(acc, 0, seen, golden_out, 0)


# --- ADD ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AddCase:
    name: str
    size: int
    scales: tuple[float, float, float] | None = None  # (s_a, s_b, s_out); None: random
    zps: tuple[int, int, int] | None = None
    act: int = abi.ACT_NONE
    same_input: bool = False  # a and b are one buffer (x + x)


ADD_CASES = [
    AddCase("equal_scales", 33, (0.05, 0.05, 0.1), (0, 0, 0)),
    AddCase("different_scales", 40, (0.02, 0.07, 0.08)),
    AddCase("scale_ratio_1e3", 17, (0.001, 1.0, 1.2)),
    AddCase("zero_points_extreme", 29, (0.03, 0.04, 0.05), (-128, 127, -128)),
    AddCase("relu", 50, act=abi.ACT_RELU),
    AddCase("relu6", 50, (0.04, 0.05, 0.05), act=abi.ACT_RELU6),
    AddCase("same_input_buffer", 21, same_input=True),
    AddCase("size_1", 1),
    AddCase("odd_size_simd_tail", 7),
] + [AddCase(f"random_{i}", int(_rng("add-size", i).integers(1, 200))) for i in range(6)]


@pytest.mark.parametrize("case", ADD_CASES, ids=_ids(ADD_CASES))
def test_add_forward(lib, case: AddCase) -> None:
    rng = _rng("add", case)
    s_a, s_b, s_out = case.scales or tuple(float(v) for v in rng.uniform(0.005, 0.1, 3))
    s_a, s_b, s_out = (float(np.float32(v)) for v in (s_a, s_b, s_out))
    zps = case.zps or tuple(int(v) for v in rng.integers(-128, 128, 3))
    a = rng.integers(-128, 128, case.size).astype(np.int8)
    b = a if case.same_input else rng.integers(-128, 128, case.size).astype(np.int8)
    zp_b = zps[0] if case.same_input else zps[1]
    s_b = s_a if case.same_input else s_b
    # prepare.py (CalculateOpDataAdd)
    twice = 2 * max(s_a, s_b)
    m1, sh1 = quantize_multiplier_smaller_than_one_exp(s_a / twice)
    m2, sh2 = quantize_multiplier_smaller_than_one_exp(s_b / twice)
    mo, sho = quantize_multiplier_smaller_than_one_exp(twice / ((1 << ADD_LEFT_SHIFT) * s_out))
    act_min, act_max = _act_range(case.act, s_out, zps[2])
    want = g_add.add_forward(
        a,
        b,
        input1_zero_point=zps[0],
        input2_zero_point=zp_b,
        output_zero_point=zps[2],
        left_shift=ADD_LEFT_SHIFT,
        input1_multiplier=m1,
        input1_shift=sh1,
        input2_multiplier=m2,
        input2_shift=sh2,
        output_multiplier=mo,
        output_shift=sho,
        act_min=act_min,
        act_max=act_max,
    )
    params = abi.AddParams(
        -zps[0], -zp_b, zps[2], ADD_LEFT_SHIFT, m1, sh1, m2, sh2, mo, sho, act_min, act_max
    )
    out = np.full(case.size, 0x55, np.int8)
    _ok(lib.fqt_add_forward(byref(params), case.size, abi.p8(a), abi.p8(b), abi.p8(out)))
    np.testing.assert_array_equal(out, want)
    _nontrivial(want)


# --- SOFTMAX -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SoftmaxCase:
    name: str
    rows: int
    depth: int
    s_in: float = 0.1
    beta: float = 1.0
    values: tuple[int, int] = (-128, 128)


SOFTMAX_CASES = [
    SoftmaxCase("depth10", 1, 10),
    SoftmaxCase("rows3_depth10", 3, 10),
    SoftmaxCase("depth1", 2, 1),
    SoftmaxCase("depth2", 4, 2, 0.05),
    SoftmaxCase("ties", 2, 8, values=(3, 4)),
    SoftmaxCase("small_scale_flat", 2, 12, 0.001),
    SoftmaxCase("large_scale_below_diff_min", 3, 16, 2.0),  # most d < diff_min: -128
    SoftmaxCase("beta_0.5", 2, 10, 0.1, beta=0.5),
    SoftmaxCase("odd_depth_simd_tail", 3, 37, 0.0625),
    SoftmaxCase("max_depth_4095", 1, 4095, 0.05),
] + [
    SoftmaxCase(
        f"random_{i}",
        int(r.integers(1, 5)),
        int(r.integers(1, 300)),
        float(np.float32(np.exp(r.uniform(np.log(0.02), np.log(1.0))))),
    )
    for i, r in ((i, _rng("softmax-case", i)) for i in range(6))
]


@pytest.mark.parametrize("case", SOFTMAX_CASES, ids=_ids(SOFTMAX_CASES))
def test_softmax_forward(lib, case: SoftmaxCase) -> None:
    rng = _rng("softmax", case)
    x = rng.integers(*case.values, (case.rows, case.depth)).astype(np.int8)
    # prepare.py (CalculateSoftmaxParams), beta a float as in SoftmaxOptions
    beta = float(np.float32(case.beta))
    mult, left = preprocess_softmax_scaling(beta, float(np.float32(case.s_in)), 5)
    diff_min = -calculate_input_radius(5, left)
    want = g_softmax.softmax_forward(
        x, input_multiplier=mult, input_left_shift=left, diff_min=diff_min
    )
    out = np.full(x.shape, 0x55, np.int8)
    params = abi.SoftmaxParams(mult, left, diff_min)
    _ok(lib.fqt_softmax_forward(byref(params), case.rows, case.depth, abi.p8(x), abi.p8(out)))
    np.testing.assert_array_equal(out, want)
    if case.depth > 1 and case.values[1] - case.values[0] > 1:
        _nontrivial(want)


# --- RESHAPE -----------------------------------------------------------------------------------

RESHAPE_CASES = {  # name: (size, output offset from the input in one buffer, or None)
    "odd_size": (37, None),
    "one_byte": (1, None),
    "empty": (0, None),
    "in_place": (24, 0),
    "overlap_output_after_input": (30, 7),
    "overlap_output_before_input": (30, -5),
}


@pytest.mark.parametrize("name", list(RESHAPE_CASES))
def test_reshape_forward(lib, name: str) -> None:
    size, offset = RESHAPE_CASES[name]
    rng = _rng("reshape", name)
    x = rng.integers(-128, 128, (1, size)).astype(np.int8)
    want = g_reshape.reshape_forward(x, (size,)).reshape(-1)  # the bytes, unchanged
    if offset is None:
        out = np.full(size, 0x55, np.int8)
        _ok(lib.fqt_reshape_forward(abi.p8(x.reshape(-1)), size, abi.p8(out)))
    else:  # one buffer holding the input at `lo`, the output at `lo + offset` (memmove)
        lo = max(-offset, 0)
        buf = np.full(size + abs(offset), 0x55, np.int8)
        buf[lo : lo + size] = x.reshape(-1)
        base = buf.ctypes.data
        src = ctypes.cast(base + lo, ctypes.POINTER(ctypes.c_int8))
        dst = ctypes.cast(base + lo + offset, ctypes.POINTER(ctypes.c_int8))
        _ok(lib.fqt_reshape_forward(src, size, dst))
        out = buf[lo + offset : lo + offset + size]
    np.testing.assert_array_equal(out, want)


# --- fused activation backward ----------------------------------------------------------------

ACT_CASES = {  # name: (activation, act_min, act_max, size)
    "none": (abi.ACT_NONE, -128, 127, 40),
    "relu_zp_minus5": (abi.ACT_RELU, -5, 127, 64),
    "relu_at_int8_min": (abi.ACT_RELU, -128, 127, 33),
    "relu6": (abi.ACT_RELU6, -20, 60, 64),
    "relu6_narrow": (abi.ACT_RELU6, 0, 3, 31),
    "relu6_full_range": (abi.ACT_RELU6, -128, 127, 50),
    "size_1": (abi.ACT_RELU, 0, 127, 1),
}


@pytest.mark.parametrize("name", list(ACT_CASES))
def test_activation_backward(lib, name: str) -> None:
    act, act_min, act_max, size = ACT_CASES[name]
    rng = _rng("act", name)
    y = rng.integers(act_min, act_max + 1, size).astype(np.int8)  # a kept output in range
    y[rng.random(size) < 0.2] = act_min  # the clamp ends, often
    y[rng.random(size) < 0.2] = act_max
    err = _errors(rng, (size,), 0.1)
    want = activation_backward(err, y, act, act_min, act_max)
    got = err.copy()  # in place in C
    _ok(lib.fqt_activation_backward(abi.p8(got), abi.p8(y), size, act, act_min, act_max))
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", ["none", "relu_zp_minus5", "relu6_narrow", "size_1"])
def test_clip_masks(lib, name: str) -> None:
    """Section 5.1's clip_mask: RELU drops errors at act_max; a NONE output at its int8 ends
    drops only the errors pushing it further out (the other signs pass)."""
    _act, act_min, act_max, size = ACT_CASES[name]
    rng = _rng("clip", name)
    y = rng.integers(act_min, act_max + 1, size).astype(np.int8)
    y[rng.random(size) < 0.3] = act_min
    y[rng.random(size) < 0.3] = act_max
    err = _errors(rng, (size,), 0.1)
    got = err.copy()
    lib.fqt_saturation_mask(abi.p8(got), abi.p8(y), size, act_min, act_max)
    want = saturation_mask(err, y, act_min, act_max)
    np.testing.assert_array_equal(got, want)
    at_end = (y == act_max) | (y == act_min)
    np.testing.assert_array_equal(want[~at_end], err[~at_end])  # inside: every error passes
    pushing_out = ((y == act_max) & (err < 0)) | ((y == act_min) & (err > 0))
    assert not want[pushing_out].any()
    back_in = at_end & ~pushing_out
    np.testing.assert_array_equal(want[back_in], err[back_in])
    got = err.copy()
    lib.fqt_relu_clip_mask(abi.p8(got), abi.p8(y), size, act_max)
    np.testing.assert_array_equal(got, np.where(y < act_max, err, 0))


# --- the cases themselves --------------------------------------------------------------------


def test_cases_cover_the_named_situations() -> None:
    """The named situations of the brief are present (a guard against edits of the tables)."""
    conv_like = CONV_CASES + DW_CASES
    assert any(c.stride != (1, 1) for c in conv_like)
    assert any(c.dilation != (1, 1) for c in conv_like)
    assert {c.padding for c in conv_like} == {"SAME", "VALID"}
    assert any(c.out_or_dm >= 2 for c in DW_CASES)  # depth multiplier
    assert any(not c.per_channel for c in CONV_CASES) and any(not c.per_channel for c in FC_CASES)
    assert any(c.kept is not None and len(c.kept) < c.out for c in FC_CASES)
    assert any(c.kept is not None and len(c.kept) < c.out_or_dm for c in CONV_CASES)
    assert any(c.cin == 1 for c in CONV_CASES) and any(c.cin == 1 for c in DW_CASES)
    assert any(c.cin % 4 for c in CONV_CASES if c.cin > 4)
    modes = {_sink_mode(n, ERR_EXP, ERR_EXP - d)[0] for n, d in SINKS.values()}
    assert modes == {abi.FQT_GRAD_FIRST, abi.FQT_GRAD_UP, abi.FQT_GRAD_DOWN}


# --- error quantization (kernels/error_quant.c: the int32 fast paths) ------------------------


def _quantize_error_c(lib, acc: np.ndarray, base: int, fixed: bool) -> tuple[np.ndarray, int]:
    fn = lib.fqt_quantize_error_s32
    fn.restype = None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int32, ctypes.c_int,
                   ctypes.c_void_p, ctypes.POINTER(ctypes.c_int32)]  # fmt: skip
    acc = np.ascontiguousarray(acc, np.int32)
    out = np.full(acc.size, 99, np.int8)
    ex = ctypes.c_int32(-999)
    fn(acc.ctypes.data, acc.size, base, int(fixed), out.ctypes.data, byref(ex))
    return out, ex.value


def _error_ranges() -> list[np.ndarray]:
    rng = _rng("error_quant")
    cases = [np.zeros(5, np.int32), np.array([127, -127, 3], np.int32)]
    for bits in (7, 8, 9, 12, 17, 24, 29, 30, 31):
        hi = (1 << bits) - 1
        a = rng.integers(-hi, hi + 1, 37, dtype=np.int64)
        r = max(bits - 7, 1)
        # exact halves of 2^r, both signs, and the extremes of the range
        halves = np.array([(1 << (r - 1)), -(1 << (r - 1)), 3 << (r - 1), -(3 << (r - 1))])
        a = np.concatenate([a, halves, [hi, -hi]]).clip(-hi, hi)
        cases.append(a.astype(np.int32))
    cases.append(np.array([-(2**31), 2**31 - 1, 5, -5], np.int32))
    return cases


@pytest.mark.parametrize("fixed", [False, True], ids=["dynamic", "fixed"])
@pytest.mark.parametrize("base", [-20, -9, -7, 0])
def test_quantize_error_s32(lib, fixed: bool, base: int) -> None:
    for acc in _error_ranges():
        out, ex = _quantize_error_c(lib, acc, base, fixed)
        q, qe = quantize_error(acc[None].astype(np.int64), base, "fixed" if fixed else "dynamic")
        np.testing.assert_array_equal(out, q.reshape(-1))
        assert ex == int(qe[0])


# --- the weight-scale fold (kernels/error_quant.c: from the float's bits) --------------------


def _fold_scales() -> np.ndarray:
    rng = _rng("fold")
    bits = [0x00000000, 0x80000000, 0x00000001, 0x80000001, 0x007FFFFF, 0x00400000,
            0x00800000, 0x3F800000, 0x3F7FFFFF, 0xBF800000, 0x7F7FFFFF, 0xFF7FFFFF,
            0x3A83126F, 0x0C000000]  # fmt: skip
    rand = rng.integers(0, 1 << 32, 200, dtype=np.uint64).astype(np.uint32)
    rand = rand[(rand & 0x7F800000) != 0x7F800000]  # finite only
    return np.concatenate([np.array(bits, np.uint32), rand]).view(np.float32)


def test_fold_from_float_bits(lib) -> None:
    import math

    lib.fqt_fold_exponent.restype = ctypes.c_int
    lib.fqt_fold_exponent.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.fqt_fold_multiplier.restype = None
    lib.fqt_fold_multiplier.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int32,
                                        ctypes.c_int, ctypes.POINTER(ctypes.c_int32),
                                        ctypes.POINTER(ctypes.c_int)]  # fmt: skip
    s = np.ascontiguousarray(_fold_scales())
    for n in (1, 3, len(s)):
        sub = np.ascontiguousarray(s[-n:])
        want_p = math.frexp(float(sub.max()))[1]
        assert lib.fqt_fold_exponent(sub.ctypes.data, n) == want_p
    m, sh = ctypes.c_int32(), ctypes.c_int()
    for p in (-160, -149, -126, -30, -7, 0, 1, 5, 64, 128, 129):
        for c, v in enumerate(s):
            lib.fqt_fold_multiplier(s.ctypes.data, len(s), c, p, byref(m), byref(sh))
            assert (m.value, sh.value) == quantize_multiplier(math.ldexp(float(v), -p)), (v, p)
