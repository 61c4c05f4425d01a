"""Dynamic partial gradient updates (docs/training-semantics.md section 6).

Per sample: l_max = max(l_max, l)   (running, over all samples since training started)
    eps   = l_max ? (l << 15) / l_max : 0                     Q15, C division
    frac  = min(lam + ((eps * (32768 - lam)) >> 15), 32768)    lam = round(lambda_min * 2^15)
    k     = max(1, (frac * N) >> 15)                           N output channels of the layer
partial_mode "fixed": frac = lam for every sample (a fixed per-layer budget).
Per layer and sample: score[c] = sum over positions of |e[c]| (int32); keep the k channels
with the largest score, ties to the lower index. With keep_classifier the last weighted
layer of the model is never cut: it keeps all N channels.
"""

from __future__ import annotations

import numpy as np

from ..quant import tflite_round

Q15 = 1 << 15


def lambda_q15(lambda_min: float) -> int:
    return min(max(tflite_round(float(lambda_min) * Q15), 0), Q15)


def keep_fractions(
    magnitudes: np.ndarray, l_max: int, lam: int, fixed: bool = False
) -> tuple[np.ndarray, int]:
    """Sequential over the samples: Q15 fraction of channels kept per sample, new l_max.
    `fixed` (partial_mode "fixed"): every sample keeps lam, l_max is still tracked."""
    fracs = np.zeros(len(magnitudes), np.int64)
    for i, m in enumerate(int(v) for v in magnitudes):
        l_max = max(l_max, m)
        eps = (m << 15) // l_max if l_max else 0
        fracs[i] = lam if fixed else min(lam + ((eps * (Q15 - lam)) >> 15), Q15)
    return fracs, l_max


def keep_count(frac_q15: np.ndarray, n_channels: int) -> np.ndarray:
    return np.maximum(1, (np.asarray(frac_q15, np.int64) * n_channels) >> 15)


def select_channels(err: np.ndarray, k: np.ndarray) -> np.ndarray:
    """err int8 [N, ..., C], k [N] -> kept mask bool [N, C] (top-k by sum |e|, ties lower)."""
    n, c = err.shape[0], err.shape[-1]
    score = np.abs(err.astype(np.int64)).reshape(n, -1, c).sum(axis=1)
    order = np.argsort(-score, axis=1, kind="stable")
    kept = np.zeros((n, c), bool)
    for i in range(n):
        kept[i, order[i, : int(k[i])]] = True
    return kept
