"""Gradient accumulation over the mini-batch and the standardized, requantizing update
(docs/training-semantics.md sections 4 and 7).

Weights are handled channel-major: rows[c, k] is output channel c's weights in memory
order (conv OHWI: w[c] flattened; depthwise 1HWC: w[0, :, :, c] in (fy, fx) order;
fully connected: w[c]). Per-tensor weight scales are one scale shared by all rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..quant import INT32_MAX, INT32_MIN, quantize_multiplier, rounding_divide_by_pot, tflite_round
from .prng import Xorshift32

if TYPE_CHECKING:
    from .grad_state import NarrowAccumulator

FRAC_BITS = 16  # fixed-point fraction of the updated weights, in units of the old scale
U_LIMIT = 1 << 40  # |u| clamp (weights may move at most 2^24 steps in one update)
V_LIMIT = 1 << 55  # |v| clamp: v * 127 stays inside int64 (a diverging bias step)
STAT_BITS = 15  # gradients are cut to 15 bits before the sums of squares
MAX_UPDATE_MULTIPLIER = np.float32(1 << 30)  # keeps QuantizeMultiplier's shift <= 31
RECIPROCAL_BITS = 55  # R = floor(127 * 2^55 / m), so |u * R| <= 127 * 2^55 < 2^63
f32 = np.float32  # the update's per-channel arithmetic is float32, op by op (no double)
UPDATE_RULES = ("standardized", "sgd")
# The lr a command uses when none is given, per rule (the shell's `train start` has the same,
# service/jobs.c): sgd's is an fp32-like lr (the benchmark's picks were 0.3 on three of four
# tasks), the standardized rule moves each weight by about one lr per update.
DEFAULT_LR = {"sgd": 0.3, "standardized": 0.003}


def weight_rows(w: np.ndarray, depthwise: bool) -> np.ndarray:
    if depthwise:
        return w.reshape(-1, w.shape[-1]).T
    return w.reshape(w.shape[0], -1)


def rows_to_weight(rows: np.ndarray, shape: tuple[int, ...], depthwise: bool) -> np.ndarray:
    if depthwise:
        return rows.T.reshape(shape)
    return rows.reshape(shape)


def sat32(x: np.ndarray) -> np.ndarray:
    return np.clip(x, INT32_MIN, INT32_MAX)


@dataclass
class GradientAccumulator:
    """Block floating point over the mini-batch: int32 acc_w [C, K], acc_b [C] and one
    exponent G; real gradient = acc_w * 2^G * s_x (weights), acc_b * 2^G (bias).

    Per sample with int32 gradient (gw, gb) of exponent E (sample order):
        first sample of the batch: acc = g, G = E
        E > G:  acc = RDBPOT(acc, min(E - G, 31)); G = E; acc = sat32(acc + g)
        E <= G: acc = sat32(acc + RDBPOT(g, min(G - E, 31)))
    """

    acc_w: np.ndarray
    acc_b: np.ndarray
    exp: int = 0
    count: int = 0

    @classmethod
    def zeros(cls, n_channels: int, k: int) -> GradientAccumulator:
        return cls(np.zeros((n_channels, k), np.int64), np.zeros(n_channels, np.int64))

    def channel_exp(self, c: int) -> int:
        """G of channel c: one exponent for the layer (grad_state int32)."""
        return self.exp

    def add(self, gw: np.ndarray, gb: np.ndarray, e: int, kept: np.ndarray | None = None) -> None:
        """kept (the sample's kept channels) is not needed: the other rows of gw, gb are 0
        and take the same shifts."""
        if self.count == 0:
            self.acc_w, self.acc_b, self.exp = sat32(gw), sat32(gb), int(e)
        elif e > self.exp:
            s = min(e - self.exp, 31)
            self.acc_w = sat32(rounding_divide_by_pot(self.acc_w, s) + gw)
            self.acc_b = sat32(rounding_divide_by_pot(self.acc_b, s) + gb)
            self.exp = int(e)
        else:
            s = min(self.exp - e, 31)
            self.acc_w = sat32(self.acc_w + rounding_divide_by_pot(gw, s))
            self.acc_b = sat32(self.acc_b + rounding_divide_by_pot(gb, s))
        self.count += 1

    def reset(self) -> None:
        self.acc_w[:] = 0
        self.acc_b[:] = 0
        self.exp = 0
        self.count = 0


@dataclass
class ChannelStats:
    """EMA of the gradient's per-channel mean and std, float32, real units."""

    mean: np.ndarray
    std: np.ndarray
    valid: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

    @classmethod
    def zeros(cls, n: int) -> ChannelStats:
        return cls(np.zeros(n, np.float32), np.zeros(n, np.float32), np.zeros(n, bool))


def channel_moments(row: np.ndarray) -> tuple[np.float32, np.float32]:
    """Integer sums, then float32: s = max(bit_length(max|a|) - 15, 0), a' = RDBPOT(a, s),
    S1 = sum a', S2 = sum a'^2 (int64); n = f32(K), m = f32(S1) / n,
    mean = ldexp(m, s), std = ldexp(sqrt(max(f32(S2) / n - m * m, 0)), s)."""
    n = f32(row.size)
    mx = int(np.abs(row).max(initial=0))
    s = max(mx.bit_length() - STAT_BITS, 0)
    a = rounding_divide_by_pot(row, s)
    m = f32(int(a.sum())) / n
    var = f32(int((a * a).sum())) / n - m * m
    return np.ldexp(m, s), np.ldexp(np.sqrt(max(var, f32(0.0))), s)


def update_multiplier(d: np.float32) -> tuple[int, int]:
    """QuantizeMultiplier of a float32 factor, d above 2^30 (or NaN) taken as 2^30."""
    return quantize_multiplier(float(d if d < MAX_UPDATE_MULTIPLIER else MAX_UPDATE_MULTIPLIER))


def mul_fixed(x: np.ndarray, d: np.float32) -> np.ndarray:
    """x (int32 values) * d, rounded: (M, sh) = update_multiplier(d);
    RDBPOT(x * M (int64), 31 - sh)."""
    m, sh = update_multiplier(d)
    return rounding_divide_by_pot(np.asarray(x, np.int64) * m, 31 - sh)


def round_clamp_fx(x: np.float32) -> int:
    """Clamped to +-2^40 (infinities too), then half away from zero; NaN gives 0."""
    xf = float(x)
    if math.isnan(xf):
        return 0
    return tflite_round(min(max(xf, -float(U_LIMIT)), float(U_LIMIT)))


def round_div(num: np.ndarray, m: int) -> np.ndarray:
    """Nearest, half away from zero: sign(num) * ((|num| + m / 2) / m)."""
    q = (np.abs(num) + m // 2) // m
    return np.where(num < 0, -q, q)


def requantize(u: np.ndarray, m: int, rng: Xorshift32 | None) -> np.ndarray:
    """w' = 127 u / m in 16 fraction bits through one reciprocal per channel (tensor):
    R = floor(127 * 2^55 / m), t = floor(u * R / 2^39); nearest: floor((t + 2^15) / 2^16);
    stochastic: floor(t / 2^16) + ((r >> 16) < t mod 2^16), one draw r per element in order."""
    recip = (127 << RECIPROCAL_BITS) // m
    t = (u * recip) >> (RECIPROCAL_BITS - FRAC_BITS)
    if rng is None:
        return (t + (1 << (FRAC_BITS - 1))) >> FRAC_BITS
    r = np.array(rng.draws(u.size), np.int64).reshape(u.shape) >> 16
    return (t >> FRAC_BITS) + (r < (t & 0xFFFF))


def new_scale(m: int, s_w: np.float32) -> np.float32:
    """s_w' = f32(f32(m) * s_w / (2^16 * 127))."""
    return f32(m) * f32(s_w) / f32(65536 * 127)


@dataclass
class UpdateResult:
    rows: np.ndarray  # int8 values [C, K]
    scale: np.ndarray  # float32 [C] or [1]
    bias: np.ndarray | None  # int32 values [C]
    updated: np.ndarray  # bool [C]


def standardized_update(
    rows: np.ndarray,
    scale: np.ndarray,
    bias: np.ndarray | None,
    input_scale: float,
    grad: GradientAccumulator | NarrowAccumulator,
    stats: ChannelStats,
    *,
    lr: float,
    alpha_norm: float,
    rng: Xorshift32 | None,
    center: bool = True,
    rule: str = "standardized",
) -> UpdateResult:
    """The update at the end of a mini-batch (docs/training-semantics.md section 7).

    rule "standardized": the paper's per-channel gradient standardization (EMA mean/std);
    rule "sgd": plain SGD on the real-unit gradient averaged over the grad.count samples
    of the batch (section 7.1), no per-channel state."""
    if rule not in UPDATE_RULES:
        raise ValueError(f"unknown update rule {rule!r}; choose from {UPDATE_RULES}")
    n_ch, _ = rows.shape
    per_channel = len(scale) > 1
    s_in = f32(input_scale)
    lr32, alpha = f32(lr), f32(alpha_norm)
    u = rows.astype(np.int64) << FRAC_BITS
    v = None if bias is None else bias.astype(np.int64) << FRAC_BITS
    updated = np.zeros(n_ch, bool)
    for c in range(n_ch):
        acc = grad.acc_w[c]
        if not acc.any() and not grad.acc_b[c]:
            continue  # no gradient reached this channel in the batch: untouched
        s_w = f32(scale[c] if per_channel else scale[0])
        g_exp = grad.channel_exp(c)  # the layer's G, or the channel's (narrow state, 4.1)
        unit = np.ldexp(s_in, g_exp)  # real weight gradient per accumulator unit
        unit_b = np.ldexp(f32(1.0), g_exp)
        b_fx = 0
        if rule == "sgd":
            step = lr32 / f32(max(grad.count, 1))
        else:
            mean, std = channel_moments(acc)
            mean_r, std_r = mean * unit, std * unit
            if not stats.valid[c]:
                stats.mean[c], stats.std[c], stats.valid[c] = mean_r, std_r, True
            else:
                stats.mean[c] = alpha * stats.mean[c] + (f32(1.0) - alpha) * mean_r
                stats.std[c] = alpha * stats.std[c] + (f32(1.0) - alpha) * std_r
            sd = f32(stats.std[c])
            if not sd > 0.0:
                continue
            step = lr32 / sd
            # u = w 2^16 - A acc + B, in units of s_w[c] / 2^16
            mu = f32(stats.mean[c]) if center else f32(0.0)
            b_fx = round_clamp_fx(step * mu / s_w * f32(65536.0))
        u[c] = np.clip(
            u[c] - mul_fixed(acc, step * unit / s_w * f32(65536.0)) + b_fx, -U_LIMIT, U_LIMIT
        )
        if v is not None:
            d_b = step * unit_b / (s_in * s_w) * f32(65536.0)
            v_c = int(v[c]) - int(mul_fixed(np.array([grad.acc_b[c]]), d_b)[0])
            v[c] = min(max(v_c, -V_LIMIT), V_LIMIT)
        updated[c] = True
    new_rows = rows.astype(np.int64).copy()
    new_scale_ = np.array(scale, np.float32).copy()
    new_bias = None if bias is None else bias.astype(np.int64).copy()
    groups = [[c] for c in range(n_ch)] if per_channel else [list(range(n_ch))]
    for group in groups:
        if not updated[group].any():
            continue
        m = int(np.abs(u[group]).max())
        si = group[0] if per_channel else 0
        if m == 0:
            new_rows[group] = 0
            continue
        new_scale_[si] = new_scale(m, scale[si])
        for c in group:
            if not updated[c] and per_channel:
                continue
            new_rows[c] = requantize(u[c], m, rng)
            if new_bias is not None:
                new_bias[c] = sat32(round_div(v[c] * 127, m))
    return UpdateResult(new_rows, new_scale_, new_bias, updated)
