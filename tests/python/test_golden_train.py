"""Fully quantized training on the golden model (docs/training-semantics.md).

- every backward kernel against a float numpy reference of the same math;
- training digits_cnn raises accuracy; the weights stay valid TFLite int8 after updates;
- partial updates save backward MACs; same seed -> same weights;
- `fqt train` writes a .tflite that TFLM runs bit for bit like the golden model.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURE_MODELS
from fqt.cli import main
from fqt.commands.common import load_model
from fqt.golden.activation import activation_backward
from fqt.golden.add import add_backward
from fqt.golden.conv2d import conv2d_backward_input, conv2d_backward_weights
from fqt.golden.depthwise_conv2d import (
    depthwise_conv2d_backward_input,
    depthwise_conv2d_backward_weights,
)
from fqt.golden.error_quant import align_errors, combine_errors, quantize_error
from fqt.golden.fully_connected import (
    fully_connected_backward_input,
    fully_connected_backward_weights,
)
from fqt.golden.grad_state import EMPTY, NarrowAccumulator, grad_seed
from fqt.golden.interpreter import infer_batch
from fqt.golden.loss import softmax_cross_entropy_backward
from fqt.golden.partial import keep_count, keep_fractions, lambda_q15, select_channels
from fqt.golden.pooling import average_pool2d_backward, max_pool2d_backward
from fqt.golden.prng import Xorshift32
from fqt.golden.reshape import reshape_backward
from fqt.golden.trainer import TrainConfig, Trainer
from fqt.golden.update import GradientAccumulator
from fqt.ir import OpType
from fqt.prepare import prepare
from fqt.tflite_import import load_tflite
from test_native import native_lib  # noqa: F401  (the session fixture building libfqt.so)

DIGITS = FIXTURE_MODELS / "digits_cnn.tflite"


def _real(e: np.ndarray, exp: np.ndarray) -> np.ndarray:
    return e.astype(np.float64) * np.ldexp(1.0, exp).reshape((-1,) + (1,) * (e.ndim - 1))


def _close_in_steps(got: np.ndarray, exp: np.ndarray, ref: np.ndarray, steps: float = 1.0):
    """|got - ref| <= steps quantization steps of each sample's error scale."""
    step = np.ldexp(1.0, exp).reshape((-1,) + (1,) * (got.ndim - 1))
    err = np.abs(_real(got, exp) - ref) / step
    assert err.max() <= steps, f"off by {err.max():.3f} steps"
    # and the scale is used: the largest value sits in [64, 127] steps (dynamic scaling)
    top = np.abs(got.reshape(len(got), -1)).max(axis=1)
    assert np.all((top >= 63) | (np.abs(ref.reshape(len(ref), -1)).max(axis=1) < 64 * step[:, 0]))


def _rand_case(rng, n, shape, cout_scales):
    e = rng.integers(-127, 128, (n, *shape), dtype=np.int64).astype(np.int8)
    ex = rng.integers(-12, -4, n).astype(np.int64)
    s_w = rng.uniform(0.002, 0.05, cout_scales).astype(np.float32)
    return e, ex, s_w


# --- error propagation -----------------------------------------------------------------


@pytest.mark.parametrize("per_channel", [True, False])
def test_fully_connected_backward(per_channel: bool) -> None:
    rng = np.random.default_rng(1)
    n, cout, cin = 4, 10, 24
    e, ex, s_w = _rand_case(rng, n, (cout,), cout if per_channel else 1)
    w = rng.integers(-127, 128, (cout, cin)).astype(np.int8)
    got, gexp = fully_connected_backward_input(e, ex, w, s_w)
    w_real = w * np.broadcast_to(s_w, (cout,))[:, None].astype(np.float64)
    ref = _real(e, ex) @ w_real
    _close_in_steps(got, gexp, ref)
    x = rng.integers(-128, 128, (n, cin)).astype(np.int8)
    gw, gb = fully_connected_backward_weights(e, x, input_zero_point=-5)
    np.testing.assert_array_equal(gw, np.einsum("no,nk->nok", e.astype(int), x.astype(int) + 5))
    np.testing.assert_array_equal(gb, e)
    # kept channels: only they contribute
    kept = np.zeros((n, cout), bool)
    kept[:, [1, 3]] = True
    got_k, exp_k = fully_connected_backward_input(e, ex, w, s_w, kept=kept)
    ref_k = (_real(e, ex) * kept) @ w_real
    _close_in_steps(got_k, exp_k, ref_k)
    gw_k, _ = fully_connected_backward_weights(e, x, input_zero_point=-5, kept=kept)
    assert not gw_k[:, ~kept[0]].any()


def _conv_ref_input(e_real, w_real, in_hw, stride, pad):
    n, oh, ow, _cout = e_real.shape
    _, kh, kw, cin = w_real.shape
    out = np.zeros((n, in_hw[0], in_hw[1], cin))
    for oy in range(oh):
        for ox in range(ow):
            for fy in range(kh):
                for fx in range(kw):
                    iy, ix = oy * stride[0] + fy - pad[0], ox * stride[1] + fx - pad[1]
                    if 0 <= iy < in_hw[0] and 0 <= ix < in_hw[1]:
                        out[:, iy, ix, :] += e_real[:, oy, ox, :] @ w_real[:, fy, fx, :]
    return out


def _conv_ref_weights(e, x, zp, kshape, stride, pad):
    n, oh, ow, cout = e.shape
    kh, kw = kshape
    h, w_, cin = x.shape[1:]
    gw = np.zeros((n, cout, kh, kw, cin), np.int64)
    for oy in range(oh):
        for ox in range(ow):
            for fy in range(kh):
                for fx in range(kw):
                    iy, ix = oy * stride[0] + fy - pad[0], ox * stride[1] + fx - pad[1]
                    if 0 <= iy < h and 0 <= ix < w_:
                        xv = x[:, iy, ix, :].astype(np.int64) - zp
                        gw[:, :, fy, fx, :] += np.einsum(
                            "no,ni->noi", e[:, oy, ox, :].astype(np.int64), xv
                        )
    return gw


@pytest.mark.parametrize(
    "in_hw,k,stride,pad,out_hw", [((6, 6), 3, 1, 1, (6, 6)), ((7, 5), 3, 2, 0, (3, 2))]
)
def test_conv2d_backward(in_hw, k, stride, pad, out_hw) -> None:
    rng = np.random.default_rng(2)
    n, cout, cin = 3, 5, 4
    e, ex, s_w = _rand_case(rng, n, (*out_hw, cout), cout)
    w = rng.integers(-127, 128, (cout, k, k, cin)).astype(np.int8)
    geo = dict(stride=(stride, stride), pad=(pad, pad))
    got, gexp = conv2d_backward_input(e, ex, w, s_w, in_hw=in_hw, **geo)
    ref = _conv_ref_input(
        _real(e, ex), w * s_w[:, None, None, None], in_hw, geo["stride"], geo["pad"]
    )
    _close_in_steps(got, gexp, ref)
    x = rng.integers(-128, 128, (n, *in_hw, cin)).astype(np.int8)
    gw, gb = conv2d_backward_weights(e, x, input_zero_point=3, kernel_hw=(k, k), **geo)
    np.testing.assert_array_equal(gw, _conv_ref_weights(e, x, 3, (k, k), geo["stride"], geo["pad"]))
    np.testing.assert_array_equal(gb, e.astype(np.int64).sum(axis=(1, 2)))


@pytest.mark.parametrize("dm", [1, 2, 3])
def test_depthwise_conv2d_backward(dm: int) -> None:
    rng = np.random.default_rng(3)
    n, cin, in_hw, k = 2, 3, (5, 5), 3
    cout = cin * dm
    e, ex, s_w = _rand_case(rng, n, (5, 5, cout), cout)
    w = rng.integers(-127, 128, (1, k, k, cout)).astype(np.int8)
    geo = dict(stride=(1, 1), pad=(1, 1))
    got, gexp = depthwise_conv2d_backward_input(e, ex, w, s_w, in_hw=in_hw, in_channels=cin, **geo)
    # reference: a dense conv whose weights are zero off the depthwise pattern
    dense = np.zeros((cout, k, k, cin))
    for o in range(cout):
        dense[o, :, :, o // dm] = w[0, :, :, o] * float(s_w[o])
    ref = _conv_ref_input(_real(e, ex), dense, in_hw, geo["stride"], geo["pad"])
    _close_in_steps(got, gexp, ref)
    x = rng.integers(-128, 128, (n, *in_hw, cin)).astype(np.int8)
    gw, gb = depthwise_conv2d_backward_weights(e, x, input_zero_point=-128, kernel_hw=(k, k), **geo)
    xr = np.repeat(x, dm, axis=3)  # channel o reads input o // dm
    full = _conv_ref_weights(e, xr, -128, (k, k), geo["stride"], geo["pad"])
    np.testing.assert_array_equal(gw[:, 0], np.einsum("noyxo->nyxo", full))
    np.testing.assert_array_equal(gb, e.astype(np.int64).sum(axis=(1, 2)))


def test_average_pool_backward() -> None:
    rng = np.random.default_rng(4)
    e, ex, _ = _rand_case(rng, 3, (3, 3, 2), 1)
    got, gexp = average_pool2d_backward(
        e, ex, in_hw=(5, 5), filter_hw=(3, 3), stride=(2, 2), pad=(1, 1)
    )
    ref = np.zeros((3, 5, 5, 2))
    er = _real(e, ex)
    for oy in range(3):
        for ox in range(3):
            taps = [
                (oy * 2 + fy - 1, ox * 2 + fx - 1)
                for fy in range(3)
                for fx in range(3)
                if 0 <= oy * 2 + fy - 1 < 5 and 0 <= ox * 2 + fx - 1 < 5
            ]
            for iy, ix in taps:
                ref[:, iy, ix] += er[:, oy, ox] / len(taps)
    _close_in_steps(got, gexp, ref)


def test_max_pool_backward_ties_first() -> None:
    x = np.full((1, 4, 4, 1), 5, np.int8)
    x[0, 3, 3, 0] = 9
    e = np.array([1, 2, 3, 4], np.int8).reshape(1, 2, 2, 1)
    got, gexp = max_pool2d_backward(e, np.array([-3]), x, filter_hw=(2, 2), stride=(2, 2))
    want = np.zeros((4, 4), np.int8)
    want[0, 0], want[0, 2], want[2, 0], want[3, 3] = 1, 2, 3, 4  # ties: first tap
    np.testing.assert_array_equal(got[0, :, :, 0], want)
    assert gexp[0] == -3  # exact: the exponent is kept while |acc| <= 127
    # overlapping windows (stride 1) sum at a shared argmax
    x = np.zeros((1, 3, 3, 1), np.int8)
    x[0, 1, 1, 0] = 100
    e = np.full((1, 2, 2, 1), 50, np.int8)
    got, gexp = max_pool2d_backward(e, np.array([0]), x, filter_hw=(2, 2), stride=(1, 1))
    assert _real(got, gexp)[0, 1, 1, 0] == 200 and gexp[0] == 1


def test_reshape_add_relu_and_alignment() -> None:
    e = np.arange(-8, 8, dtype=np.int8).reshape(1, 2, 2, 4)
    np.testing.assert_array_equal(reshape_backward(e.reshape(1, 16), (2, 2, 4)), e)
    (ea, xa), (eb, xb) = add_backward(e, np.array([-4]))
    np.testing.assert_array_equal(ea, e)
    np.testing.assert_array_equal(eb, e)
    assert xa[0] == xb[0] == -4
    y = np.array([[-128, -127, 0, 100, 127]], np.int8)
    err = np.ones((1, 5), np.int8)
    np.testing.assert_array_equal(activation_backward(err, y, 1, -128, 127), [[0, 1, 1, 1, 1]])
    np.testing.assert_array_equal(activation_backward(err, y, 3, -128, 100), [[0, 1, 1, 0, 0]])
    np.testing.assert_array_equal(activation_backward(err, y, 0, -128, 127), err)
    # two consumers: aligned to the finer exponent, summed, requantized
    s, sx = align_errors([(np.array([[100]], np.int8), np.array([0])),
                          (np.array([[100]], np.int8), np.array([-2]))])  # fmt: skip
    assert _real(s, sx)[0, 0] == 125


def test_several_consumers_fold_two_at_a_time() -> None:
    """Section 2.3: errors are combined two at a time in delivery order (what the C engine
    does with its one int8 buffer per tensor), not summed all at once."""
    parts = [
        (np.array([[127]], np.int8), np.array([0])),
        (np.array([[2]], np.int8), np.array([0])),
        (np.array([[-2]], np.int8), np.array([0])),
    ]
    s, sx = align_errors(parts)
    # 127 + 2 = 129 -> r = 1: 65 (64.5 away from zero) at 2^1; then 130 - 2 = 128 -> 64 at 2^1
    assert (int(s[0, 0]), int(sx[0])) == (64, 1)
    # (all at once would give 127 at 2^0)
    s2, sx2 = combine_errors(combine_errors(parts[0], parts[1], "dynamic"), parts[2], "dynamic")
    assert (s2.tolist(), sx2.tolist()) == (s.tolist(), sx.tolist())
    # exponents differ per sample; the shift is capped at 24
    e = np.array([[100], [-100]], np.int8)
    s, sx = align_errors([(e, np.array([0, 30])), (e, np.array([-2, 0])), (e, np.array([1, 0]))])
    # sample 0: (100<<2 + 100) at -2 = 500 -> 125 at 0; then 125 + 200 = 325 -> 81 at 2
    # sample 1: (-100<<24 - 100) at 0 -> RDBPOT by 24 -> -100 at 24; then -100<<24 - 100 again
    assert s[:, 0].tolist() == [81, -100] and sx.tolist() == [2, 24]


def test_quantize_error_rules() -> None:
    acc = np.array([[1000, -1000, 3], [5, -7, 0], [0, 0, 0]], np.int64)
    q, ex = quantize_error(acc, np.array([-10, -10, -10]))
    # 1000 has 10 bits -> r = 3: 1000 / 8 = 125
    np.testing.assert_array_equal(q[0], [125, -125, 0])
    np.testing.assert_array_equal(q[1], [5, -7, 0])  # fits: exact
    np.testing.assert_array_equal(ex, [-7, -10, -10])
    q, ex = quantize_error(np.array([[255, -256]]), np.array([-8]))
    assert list(q[0]) == [64, -64] and ex[0] == -6  # 9 bits -> r = 2
    q, ex = quantize_error(np.array([[3, 200]]), np.array([-9]), mode="fixed")
    assert list(q[0]) == [1, 50] and ex[0] == -7


def test_loss_gradient() -> None:
    p = np.full((1, 10), -128, np.int8)
    p[0, 3] = 127  # p = 255/256 on class 3
    e, ex, mag = softmax_cross_entropy_backward(p, np.array([3]))
    assert _real(e, ex)[0, 3] == -1 / 256 and mag[0] == 1
    e, ex, mag = softmax_cross_entropy_backward(p, np.array([4]))
    r = _real(e, ex)[0]
    assert r[4] == -1.0 and abs(r[3] - 255 / 256) <= math.ldexp(1.0, int(ex[0])) and mag[0] == 511


def test_partial_selection() -> None:
    lam = lambda_q15(0.1)
    assert lam == 3277
    fr, lmax = keep_fractions(np.array([100, 50, 0, 400]), 0, lam)
    assert lmax == 400
    assert fr[0] == 32768 and fr[2] == lam  # the first sample is its own maximum
    assert list(keep_count(fr, 10)) == [10, 5, 1, 10]
    e = np.array([[[3, -5, 5, 0]], [[0, 0, 0, 0]]], np.int8)
    kept = select_channels(e, np.array([2, 3]))
    np.testing.assert_array_equal(kept, [[False, True, True, False], [True, True, True, False]])


def test_xorshift32_and_accumulator() -> None:
    r = Xorshift32(0)
    assert r.state == 0x9E3779B9
    x = 0x9E3779B9
    x ^= (x << 13) & 0xFFFFFFFF
    x ^= x >> 17
    x ^= (x << 5) & 0xFFFFFFFF
    assert r.next() == x
    g = GradientAccumulator.zeros(1, 2)
    g.add(np.array([[10, -3]]), np.array([1]), -5)
    g.add(np.array([[8, 8]]), np.array([2]), -3)  # coarser: acc / 4, rounded
    np.testing.assert_array_equal(g.acc_w, [[3 + 8, -1 + 8]])
    g.add(np.array([[6, 2]]), np.array([0]), -4)  # finer: g / 2
    np.testing.assert_array_equal(g.acc_w, [[14, 8]])
    assert g.exp == -3 and g.count == 3


def test_narrow_grad_state_hand_values() -> None:
    """docs/training-semantics.md 4.1 on the rows tests/c/test_train.c works by hand."""
    g = NarrowAccumulator(2, 3, "int8", None)
    kept1 = np.array([False, True])
    zero = np.zeros(3, np.int64)
    g.add(np.array([zero, [300, -5, 0]]), np.array([0, 1000]), -3, kept1)
    np.testing.assert_array_equal(g.acc_w, [[0, 0, 0], [75, -1, 0]])
    assert (g.acc_b[1], g.exp[1], g.exp[0]) == (250, -1, EMPTY)
    g.add(np.array([zero, [-300, 8, 4]]), np.array([0, -1000]), -1, kept1)
    np.testing.assert_array_equal(g.acc_w[1], [-113, 4, 2])
    assert (g.acc_b[1], g.exp[1], g.count) == (-375, 0, 2)
    g.acc_w[1], g.acc_b[1], g.exp[1] = [100, -100, 1], 7, -40  # a gap past 31
    g.add(np.array([zero, [1, 2, 3]]), np.array([0, 0]), 0, kept1)
    np.testing.assert_array_equal(g.acc_w[1], [32, 64, 96])
    assert (g.acc_b[1], g.exp[1]) == (0, -5)
    s = NarrowAccumulator(1, 3, "int8", Xorshift32(0))
    s.add(np.array([[101, 1000, 0]]), np.array([0]), 2)
    np.testing.assert_array_equal(s.acc_w, [[13, 125, 0]])
    assert s.exp[0] == 5 and s.rng is not None and s.rng.state == 0x7BB98F3A
    assert (
        grad_seed(0, 0) == 0x9E3779B9 and grad_seed(0xFFFFFFFF, 1) == (2 * 0x9E3779B9 - 1) % 2**32
    )


@pytest.mark.parametrize("state", ["int16", "int8"])
def test_narrow_grad_state_tracks_the_exact_sum(state: str) -> None:
    """Merged samples of spread exponents: a[c] * 2^G[c] stays within the rounding of
    each merge (nearest: half a step of the new exponent per merge) of the exact sum, and
    each channel's largest value uses the narrow type's top bit."""
    rng = np.random.default_rng(1)
    w = 15 if state == "int16" else 7
    g = NarrowAccumulator(4, 50, state, None)
    exact = np.zeros((4, 50), object)
    bound = np.zeros(4)
    for _ in range(20):
        e = int(rng.integers(-12, 4))
        scale = rng.choice([1, 1 << 8, 1 << 20], 4)[:, None]
        gw = rng.integers(-1000, 1001, (4, 50)) * scale
        g.add(gw, np.zeros(4, np.int64), e)
        exact += np.vectorize(lambda v, e=e: v * 2.0**e)(gw.astype(object))
        bound += 0.5 * 2.0 ** g.exp.astype(float)
    got = g.acc_w * 2.0 ** g.exp[:, None].astype(float)
    err = np.abs(got - exact.astype(float)).max(axis=1)
    assert np.all(err <= bound), (err, bound)
    top = np.abs(g.acc_w).max(axis=1)
    assert np.all(top >= 1 << (w - 1)) and np.all(top <= (1 << w) - 1)


def test_narrow_stochastic_rounding_is_unbiased() -> None:
    """The same small gradient merged after a large one: to nearest it is lost (below half
    a step), stochastically its mean over many generators survives."""
    means = {}
    for rounding in ("nearest", "stochastic"):
        vals = []
        for seed in range(400):
            rng = Xorshift32(seed) if rounding == "stochastic" else None
            g = NarrowAccumulator(1, 2, "int8", rng)
            g.add(np.array([[127 * 64, 0]]), np.array([0]), 0)  # step 64 from now on
            for _ in range(8):
                g.add(np.array([[0, 16]]), np.array([0]), 0)  # a quarter step each
            vals.append(g.acc_w[0, 1] * 2.0 ** g.exp[0])
        means[rounding] = float(np.mean(vals))
    assert means["nearest"] == 0.0
    assert abs(means["stochastic"] - 8 * 16) < 0.15 * 8 * 16, means


@pytest.mark.parametrize("state", ["int16", "int8"])
def test_narrow_grad_state_trains_the_head(digits, state: str) -> None:
    """The head of digits_cnn re-initialized trains with a narrow state as with int32
    (SGD: the batch-mean gradient, section 7.1)."""
    xtr, ytr, xte, yte = digits
    accs = {}
    for gs in ("int32", state):
        m = _perturbed_digits()
        cfg = TrainConfig(lr=0.3, batch=16, seed=1, update_rule="sgd", grad_state=gs)
        t = Trainer(m, {5}, cfg)
        t.run_epochs(xtr[:640], ytr[:640], 2)
        accs[gs] = t.evaluate(xte, yte)[0]
        _check_valid_int8(m, [5])
    print(f"\nhead, 2 epochs on 640 samples: {accs}")
    assert accs[state] > 0.8 and accs[state] > accs["int32"] - 0.05, accs


def test_grad_state_options_checked() -> None:
    with pytest.raises(ValueError, match="grad state 'int4'"):
        TrainConfig(grad_state="int4").check()
    with pytest.raises(ValueError, match="grad rounding 'up'"):
        TrainConfig(grad_rounding="up").check()


# --- training digits_cnn -----------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    """The digits_cnn.json split, quantized, each sample with its batch axis."""
    pytest.importorskip("sklearn.datasets")
    from fqt.demo import digits_split

    xtr, ytr, xte, yte = digits_split(load_tflite(DIGITS))
    return xtr[:, None], ytr, xte[:, None], yte


def _perturbed_digits(seed: int = 0):
    """digits_cnn with its classifier head re-initialized: uniform int8 weights with a
    Glorot-sized scale (|w| <= sqrt(6 / (64 + 10)) = 0.28), zero bias."""
    m = load_model(DIGITS)
    fc = m.layers[5]
    w = m.tensors[fc.inputs[1]]
    w.data = np.random.default_rng(seed).integers(-127, 128, w.shape).astype(np.int8)
    w.quant.scale = np.full(w.shape[0], 0.28 / 127, np.float32)
    b = m.tensors[fc.inputs[2]]
    b.data = np.zeros(w.shape[0], np.int32)
    b.quant.scale = np.float32(m.tensors[fc.inputs[0]].quant.scale[0]) * w.quant.scale
    prepare(m)
    return m


def _check_valid_int8(m, layers) -> None:
    for li in layers:
        layer = m.layers[li]
        w = m.tensors[layer.inputs[1]]
        assert w.data.dtype == np.int8 and np.abs(w.data.astype(int)).max() <= 127
        assert np.all(w.quant.zero_point == 0) and np.all(w.quant.scale > 0)
        if layer.inputs[2] >= 0:
            b = m.tensors[layer.inputs[2]]
            assert b.data.dtype == np.int32 and np.all(b.quant.zero_point == 0)
            s_in = np.float32(m.tensors[layer.inputs[0]].quant.scale[0])
            np.testing.assert_array_equal(
                b.quant.scale, np.resize(s_in * w.quant.scale, len(b.quant.scale))
            )
    fresh = [p for p in m.params]
    prepare(m)  # the multipliers the trainer left equal a fresh prepare()
    for a, b in zip(fresh, m.params, strict=True):
        np.testing.assert_array_equal(a.output_multiplier, b.output_multiplier)
        np.testing.assert_array_equal(a.output_shift, b.output_shift)


def test_training_head_raises_accuracy(digits) -> None:
    xtr, ytr, xte, yte = digits
    m = _perturbed_digits()
    t = Trainer(m, {5}, TrainConfig(lr=0.003, batch=32, seed=1))
    acc0, loss0 = t.evaluate(xte, yte)
    hist = t.run_epochs(xtr, ytr, 3, val=(xte, yte))
    acc1, loss1 = t.evaluate(xte, yte)
    print(
        f"\nhead re-initialized: accuracy {acc0:.3f} -> {acc1:.3f}, loss {loss0:.3f} -> {loss1:.3f}"
    )
    assert loss1 < loss0 and acc1 > acc0 + 0.4
    assert hist[-1].loss < hist[0].loss
    _check_valid_int8(m, [5])


def test_training_all_layers_valid_and_partial_saves_macs(digits) -> None:
    xtr, ytr, xte, yte = digits
    macs = {}
    for lam in (1.0, 0.1):
        m = load_model(DIGITS)
        t = Trainer(m, {0, 2, 5}, TrainConfig(lr=0.001, batch=16, lambda_min=lam, seed=3))
        t.run_epochs(xtr[:320], ytr[:320], 1)
        _check_valid_int8(m, [0, 2, 5])
        macs[lam] = t.counters
        assert t.evaluate(xte, yte)[0] > 0.8  # fine-tuning a trained model keeps it working
    assert macs[0.1].backward_macs < 0.6 * macs[1.0].backward_macs
    assert macs[0.1].forward_macs == macs[1.0].forward_macs
    assert macs[1.0].backward_macs == macs[1.0].backward_macs_full


def test_same_seed_same_weights(digits) -> None:
    xtr, ytr, _, _ = digits
    ws = []
    for seed in (5, 5, 6):
        m = load_model(DIGITS)
        t = Trainer(m, {2, 5}, TrainConfig(lr=0.003, batch=8, lambda_min=0.5, seed=seed))
        t.run_epochs(xtr[:96], ytr[:96], 1)
        ws.append([m.tensors[m.layers[li].inputs[k]].data.copy() for li in (2, 5) for k in (1, 2)])
    for a, b in zip(ws[0], ws[1], strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(ws[0], ws[2], strict=True))


# --- the command and the export ------------------------------------------------------------


def test_fqt_train_roundtrip_tflm(digits, tmp_path: Path, capsys) -> None:
    runtime = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")
    xtr, ytr, xte, yte = digits
    data = tmp_path / "d.npz"
    np.savez(data, x=xtr[:256], y=ytr[:256])
    val = tmp_path / "v.npz"
    np.savez(val, x=xte, y=yte)
    out = tmp_path / "trained.tflite"
    rc = main([
        "train", str(DIGITS), "--data", str(data), "--val", str(val), "--epochs", "1",
        "--batch", "16", "--lr", "0.002", "--trainable", "all", "--lambda-min", "0.5",
        "--seed", "7", "-o", str(out), "--json",
    ])  # fmt: skip
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["backward_macs"] < summary["backward_macs_full"]
    assert out.read_bytes() != DIGITS.read_bytes()
    assert len(out.read_bytes()) == len(DIGITS.read_bytes())
    trained = load_tflite(out)
    prepare(trained)
    golden = infer_batch(trained, xte[:100])
    it = runtime.Interpreter.from_file(str(out))
    got = []
    for x in xte[:100]:
        it.set_input(x, 0)
        it.invoke()
        got.append(np.asarray(it.get_output(0)))
    np.testing.assert_array_equal(np.stack(got).reshape(golden.shape), golden)
    acc = float(np.mean(golden.reshape(100, -1).argmax(axis=1) == yte[:100]))
    assert acc > 0.8
    assert summary["val_accuracy_after"] > 0.8 and summary["forward_macs"] > 0


def test_fqt_train_native_engine_runs(tmp_path: Path, native_lib, monkeypatch) -> None:  # noqa: F811
    # The C engine is checked byte for byte in test_native_train.py; here: it is wired.
    monkeypatch.setenv("FQT_NATIVE_LIB", str(native_lib))  # this checkout's build/host
    data = tmp_path / "d.npz"
    np.savez(data, x=np.zeros((2, 1, 8, 8, 1), np.int8), y=np.array([0, 1]))
    rc = main(["train", str(DIGITS), "--data", str(data), "--engine", "native",
               "-o", str(tmp_path / "o.tflite")])  # fmt: skip
    assert rc == 0
    assert (tmp_path / "o.tflite").exists()


def test_trainer_rejects_unweighted_layer() -> None:
    m = load_model(DIGITS)
    assert m.layers[1].op == OpType.MAX_POOL_2D
    with pytest.raises(ValueError):
        Trainer(m, {1})


def _weights(m) -> dict[int, bytes]:
    from fqt.plan import WEIGHTED_OPS

    return {
        layer.index: m.tensors[layer.inputs[1]].data.tobytes()
        for layer in m.layers
        if layer.op in WEIGHTED_OPS
    }


@pytest.mark.parametrize("name", ["residual_add", "three_consumers"])
def test_errors_reach_every_branch(name: str) -> None:
    """residual_add's last ADD has the model input first: the error still reaches its
    second input (section 5.7), so every weighted layer trains; three_consumers has a tensor
    with three consumers (a conv and two ADDs) before a wide conv."""
    m = load_tflite(FIXTURE_MODELS / f"{name}.tflite")
    prepare(m)
    before = _weights(m)
    t = Trainer(m, set(before), TrainConfig(batch=2, seed=1))
    rng = np.random.default_rng(3)
    xs = rng.integers(-128, 128, (4, *m.input_tensor.shape[1:]), dtype=np.int8)
    t.train_step(xs, rng.integers(0, m.output_tensor.shape[-1], 4))
    after = _weights(m)
    assert t.counters.updates == 2
    assert all(after[li] != before[li] for li in before), name
