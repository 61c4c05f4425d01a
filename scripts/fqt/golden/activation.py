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
