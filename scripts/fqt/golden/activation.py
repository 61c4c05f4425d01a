"""The backward of the fused activations: the twin of modules/fqt/src/kernels/activation.c
(docs/training-semantics.md 5.1)."""

from __future__ import annotations

import numpy as np


def activation_backward(
    err: np.ndarray, y: np.ndarray, activation: int, act_min: int, act_max: int
) -> np.ndarray:
    """Fused RELU: pass where y > act_min; RELU6: where act_min < y < act_max; NONE: all."""
    if activation == 1:  # RELU
        return np.where(y > act_min, err, 0).astype(np.int8)
    if activation == 3:  # RELU6
        return np.where((y > act_min) & (y < act_max), err, 0).astype(np.int8)
    return err


def saturation_mask(err: np.ndarray, y: np.ndarray, act_min: int, act_max: int) -> np.ndarray:
    """NONE-activation weighted layers (clip_mask): at act_max drop the errors asking for a
    larger output (e < 0), at act_min those asking for a smaller one (e > 0)."""
    drop = ((y >= act_max) & (err < 0)) | ((y <= act_min) & (err > 0))
    return np.where(drop, 0, err).astype(np.int8)
