"""RESHAPE: the bytes are unchanged (input and output share scale and zero point)."""

from __future__ import annotations

import numpy as np


def reshape_forward(x: np.ndarray, out_shape: tuple[int, ...]) -> np.ndarray:
    """x [N, ...] -> [N, *out_shape] with the same row-major bytes per sample."""
    return x.reshape((x.shape[0], *out_shape))


def reshape_backward(err: np.ndarray, in_shape: tuple[int, ...]) -> np.ndarray:
    """The error bytes and exponent pass unchanged."""
    return err.reshape((err.shape[0], *in_shape))
