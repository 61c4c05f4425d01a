"""The data of the README's main job (`fqt demo`, fqt.commands.demo): sklearn's digits
split as the fixture model records it, and a fresh classifier head. The tests use them too.
"""

from __future__ import annotations

import numpy as np

from .ir import Model, OpType
from .quant import quantize_input


def digits_split(model: Model) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """sklearn's digits, split as tests/fixtures/models/digits_cnn.json records, quantized
    with the model's input parameters."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x_tr, x_te, y_tr, y_te = train_test_split(
        d.images / 16.0, d.target, test_size=0.2, random_state=0, stratify=d.target
    )
    t = model.input_tensor

    def q(x: np.ndarray) -> np.ndarray:
        return quantize_input(x, t.quant.scale[0], t.quant.zero_point[0]).reshape(
            (-1, *t.shape[1:])
        )

    return q(x_tr), y_tr, q(x_te), y_te


def reinit_head(model: Model, seed: int) -> int:
    """A fresh classifier head (the last FULLY_CONNECTED), as when the device must learn
    new classes: small seeded int8 weights, zero bias. Returns the layer index."""
    head = [layer for layer in model.layers if layer.op == OpType.FULLY_CONNECTED][-1]
    w = model.tensors[head.inputs[1]]
    rng = np.random.default_rng(seed)
    assert w.data is not None
    w.data = rng.integers(-40, 41, size=w.shape).astype(np.int8)
    if head.inputs[2] >= 0:
        b = model.tensors[head.inputs[2]]
        b.data = np.zeros(b.shape, np.int32)
    return head.index
