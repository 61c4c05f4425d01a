"""The narrow gradient state (docs/training-semantics.md 4.1), the twin of
modules/fqt/src/train/grad_state.c.

`grad_state` int16 / int8: per trainable layer an int16 or int8 row per output channel, the
channel's int32 bias sum and its own exponent G[c]; real grad_w[c] = a[c] * 2^G[c] * s_in,
real grad_b[c] = b[c] * 2^G[c]. Each sample's exact int32 gradient row (exponent E, the
sample's output error exponent) of a kept channel is merged into the stored row:

    empty channel (no sample yet in this batch): B = E, S = g, T = h
    else: B = max(min(G, E), max(G, E) - 31)
          S = align(a, G) + align(g, E);  T = align(b, G) + align(h, E)       (int64)
          align(x, X) = x << (X - B) if X >= B else RDBPOT64(x, min(B - X, 62))
    r  = max(0, bl(max_k |S_k|) - W, bl(|T|) - 31)     W = 7 (int8) or 15 (int16)
    a' = clamp(round_r(S), -Q, Q) (Q = 2^W - 1);  b' = sat32(RDBPOT64(T, r));  G' = B + r

round_r: r == 0 exact; nearest: RDBPOT64(S, r); stochastic: floor(S / 2^r) + (d < f), with
f the 16 fraction bits below the cut and d = next() >> 16 of the layer's own xorshift32
(one draw per element of the row, in order, only when r > 0). Only one of a and g is shifted
left, by at most 31, so |S|, |T| < 2^63.
"""

from __future__ import annotations

import numpy as np

from ..quant import rounding_divide_by_pot
from .prng import MASK32, SEED_MIX, Xorshift32

GRAD_STATES = ("int32", "int16", "int8")
GRAD_ROUNDINGS = ("stochastic", "nearest")
STATE_BYTES = {"int32": 4, "int16": 2, "int8": 1}
VALUE_BITS = {"int16": 15, "int8": 7}  # W: |a| <= 2^W - 1
EMPTY = -(1 << 31)  # G[c] of a channel no sample reached in this batch
MAX_ALIGN = 31  # the larger exponent's term is shifted left by at most this


def grad_seed(seed: int, slot: int) -> int:
    """The seed of trainable layer `slot`'s generator (slots in increasing layer index):
    seed + (slot + 1) * 0x9E3779B9 mod 2^32."""
    return (int(seed) + (slot + 1) * SEED_MIX) & MASK32


def _align(x: np.ndarray, x_exp: int, b: int) -> np.ndarray:
    if x_exp >= b:
        return x << (x_exp - b)
    return rounding_divide_by_pot(x, min(b - x_exp, 62))


def _bit_length(v: int) -> int:
    return int(v).bit_length()


class NarrowAccumulator:
    """int16 / int8 accumulator rows with a per-channel exponent (module docstring).

    acc_w [C, K] and acc_b [C] hold the values (int64 arrays), exp [C] the exponents
    (EMPTY before a channel's first sample of the batch), count the samples merged."""

    def __init__(self, n_channels: int, k: int, state: str, rng: Xorshift32 | None) -> None:
        if state not in VALUE_BITS:
            raise ValueError(f"grad state {state!r}: choose from {GRAD_STATES}")
        self.state = state
        self.bits = VALUE_BITS[state]
        self.limit = (1 << self.bits) - 1
        self.rng = rng  # None: round to nearest
        self.acc_w = np.zeros((n_channels, k), np.int64)
        self.acc_b = np.zeros(n_channels, np.int64)
        self.exp = np.full(n_channels, EMPTY, np.int64)
        self.count = 0

    def channel_exp(self, c: int) -> int:
        return int(self.exp[c])

    def add(self, gw: np.ndarray, gb: np.ndarray, e: int, kept: np.ndarray | None = None) -> None:
        """One sample's int32 gradients gw [C, K], gb [C] of exponent e; kept [C] bool
        (None: all channels) are the channels merged, in increasing order."""
        gw = np.clip(np.asarray(gw, np.int64), -(1 << 31), (1 << 31) - 1)
        gb = np.clip(np.asarray(gb, np.int64), -(1 << 31), (1 << 31) - 1)
        channels = range(len(gb)) if kept is None else np.flatnonzero(kept)
        for c in channels:
            self.merge(int(c), gw[c], int(gb[c]), int(e))
        self.count += 1

    def merge(self, c: int, g: np.ndarray, h: int, e: int) -> None:
        if self.exp[c] == EMPTY:
            b, s, t = e, g.copy(), h
        else:
            G = int(self.exp[c])
            b = max(min(G, e), max(G, e) - MAX_ALIGN)
            s = _align(self.acc_w[c], G, b) + _align(g, e, b)
            t = int(_align(np.array([self.acc_b[c]]), G, b)[0] + _align(np.array([h]), e, b)[0])
        mx = int(np.abs(s).max(initial=0))
        r = max(0, _bit_length(mx) - self.bits, _bit_length(abs(t)) - 31)
        self.acc_w[c] = np.clip(self._round(s, r), -self.limit, self.limit)
        self.acc_b[c] = min(max(int(rounding_divide_by_pot(np.array([t]), r)[0]), -(1 << 31)),
                            (1 << 31) - 1)  # fmt: skip
        self.exp[c] = b + r

    def _round(self, s: np.ndarray, r: int) -> np.ndarray:
        if r == 0:
            return s
        if self.rng is None:
            return rounding_divide_by_pot(s, r)
        frac = (s >> (r - 16)) if r >= 16 else (s << (16 - r))
        d = np.array(self.rng.draws(s.size), np.int64) >> 16
        return (s >> r) + (d < (frac & 0xFFFF))

    def reset(self) -> None:
        self.acc_w[:] = 0
        self.acc_b[:] = 0
        self.exp[:] = EMPTY
        self.count = 0


def state_params_bytes(n_weights: int, n_out: int, state: str) -> int:
    """Params bytes of a layer's gradient state: the rows (4-byte aligned), the int32 bias
    sums, and per narrow channel its int32 exponent."""
    if state not in STATE_BYTES:
        raise ValueError(f"grad state {state!r}: choose from {GRAD_STATES}")
    rows = (STATE_BYTES[state] * n_weights + 3) // 4 * 4
    return rows + 4 * n_out + (4 * n_out if state != "int32" else 0)
