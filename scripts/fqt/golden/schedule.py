"""The learning rate of each epoch (docs/training-semantics.md 7.2), the twin of
modules/fqt/src/train/schedule.c.

Every operation is one float32 operation (round to nearest even, left to right, no fused
multiply-add), and the cosine is a fixed Taylor polynomial rather than libm's, so the host
(which hands the lr to either engine) and the device's train job (which computes it itself)
get the same bits."""

from __future__ import annotations

import numpy as np

SCHEDULES = ("constant", "cosine", "step")

F32 = np.float32
HALF_PI = F32(np.pi / 2)
# cos(a) = sum_k (-1)^k a^(2k) / (2k)!, k = 0..7: |error| < (pi/2)^16 / 16! < 2e-10 on [0, pi/2].
COS_TAYLOR = tuple(F32((-1) ** k / float(np.prod(np.arange(1, 2 * k + 1)))) for k in range(8))


def cos_half_turn(t: np.float32) -> np.float32:
    """cos(pi/2 * t) for t in [0, 1], in float32 (Horner in a^2 from the highest term)."""
    a = t * HALF_PI
    z = a * a
    c = COS_TAYLOR[-1]
    for coef in reversed(COS_TAYLOR[:-1]):
        c = c * z + coef
    return c


def scheduled_lr(
    lr: float, schedule: str, epoch: int, epochs: int,
    warmup: int = 0, step_epochs: int = 0, step_gamma: float = 0.1,
) -> float:  # fmt: skip
    """The lr of epoch `epoch` (1-based) of `epochs`, as float32:
        warm-up (epoch <= W): lr * f32(epoch) / f32(W + 1)
        constant: lr;  step: lr * (gamma * ... * gamma, floor((epoch - W - 1) / step_epochs) times)
        cosine:   lr * c * c, c = cos(pi/2 * t), t = f32(epoch - W - 1) / f32(max(epochs - W, 1))
    ((1 + cos(pi t)) / 2 = cos^2(pi t / 2))."""
    lr32 = F32(lr)
    if epoch <= warmup:
        return float(lr32 * F32(epoch) / F32(warmup + 1))
    i = epoch - warmup - 1
    if schedule == "step":
        p = F32(1.0)
        for _ in range(i // step_epochs):
            p = p * F32(step_gamma)
        return float(lr32 * p)
    if schedule == "cosine":
        c = cos_half_turn(F32(i) / F32(max(epochs - warmup, 1)))
        return float(lr32 * (c * c))
    return float(lr32)
