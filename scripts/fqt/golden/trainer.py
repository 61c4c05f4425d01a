"""Fully quantized training on the golden kernels: the bit-exact reference for the C engine.

docs/training-semantics.md is the specification; this file, the twin of
modules/fqt/src/train/trainer.c, follows its step order: forward (keeping every
activation), loss, backward layer by layer in reverse with per-sample int8 errors and
per-sample int32 gradients accumulated over the mini-batch (backward.py, the twin of
train/backward.c), and the standardized requantizing update at the batch end (update.py).

Samples of a chunk are computed together with numpy, but every value is per sample, and
everything sequential in the C engine (the running loss maximum, gradient accumulation,
the random draws) is done sample by sample in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..ir import Layer, Model, OpType
from ..plan import WEIGHTED_OPS, default_trainable, layer_macs
from ..prepare import SOFTMAX_SCALED_DIFF_INTEGER_BITS, prepare, prepare_layer
from ..quant import calculate_input_radius, preprocess_softmax_scaling
from .backward import Backward
from .interpreter import _as_batch, _run_batched, infer_batch
from .loss import cross_entropy, softmax_cross_entropy_backward
from .partial import keep_fractions, lambda_q15
from .prng import Xorshift32
from .softmax import softmax_forward
from .update import (
    ChannelStats,
    GradientAccumulator,
    rows_to_weight,
    standardized_update,
    weight_rows,
)


@dataclass
class TrainConfig:
    lr: float = 0.01
    batch: int = 32
    lambda_min: float = 1.0  # 1.0: full updates; < 1: dynamic partial updates
    alpha_norm: float = 0.85  # EMA weight of the old gradient mean/std
    stochastic_rounding: bool = True  # of the weight update (else round to nearest)
    error_scaling: str = "dynamic"  # per-sample power-of-two error scales; "fixed": 2^-7
    seed: int = 0
    center: bool = True  # subtract the EMA mean in the standardization (the paper's rule)
    clip_mask: bool = True  # fused RELU: also drop the error where y == act_max (clamped)


@dataclass
class Counters:
    samples: int = 0
    updates: int = 0
    forward_macs: int = 0
    backward_macs: int = 0
    backward_macs_full: int = 0  # what the backward would cost with lambda_min = 1

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


@dataclass
class _LayerState:
    grad: GradientAccumulator
    stats: ChannelStats


@dataclass
class EpochResult:
    epoch: int
    loss: float
    train_accuracy: float
    val_accuracy: float | None = None
    extra: dict[str, float] = field(default_factory=dict)


def _has_bias(layer: Layer) -> bool:
    return len(layer.inputs) > 2 and layer.inputs[2] >= 0


def resolve_trainable(model: Model, trainable: set[int] | None) -> list[int]:
    """Prepare `model` if needed and check the trainable set (default: the last weighted
    layer); shared by the golden and the native trainer."""
    if len(model.params) != len(model.layers):
        prepare(model)
    tr = set(default_trainable(model) if trainable is None else trainable)
    for li in tr:
        if model.layers[li].op not in WEIGHTED_OPS:
            raise ValueError(f"layer {li} {model.layers[li].op.name} has no weights")
    if not tr:
        raise ValueError("no trainable layers")
    return sorted(tr)


class Trainer:
    def __init__(
        self, model: Model, trainable: set[int] | None = None, config: TrainConfig | None = None
    ):
        self.model = model
        self.config = config or TrainConfig()
        self.trainable = resolve_trainable(model, trainable)
        self.state: dict[int, _LayerState] = {}
        for li in self.trainable:
            w = model.tensors[model.layers[li].inputs[1]]
            rows = weight_rows(w.data, model.layers[li].op == OpType.DEPTHWISE_CONV_2D)
            self.state[li] = _LayerState(
                GradientAccumulator.zeros(*rows.shape), ChannelStats.zeros(rows.shape[0])
            )
        last = model.layers[-1]
        self.softmax_at_end = last.op == OpType.SOFTMAX and last.output == model.output
        self.backward = Backward(
            model,
            self.trainable,
            {li: st.grad for li, st in self.state.items()},
            clip_mask=self.config.clip_mask,
            skip_layer=len(model.layers) - 1 if self.softmax_at_end else -1,
        )
        if not self.softmax_at_end:
            s_out = float(model.output_tensor.quant.scale[0])
            m, s = preprocess_softmax_scaling(1.0, s_out, SOFTMAX_SCALED_DIFF_INTEGER_BITS)
            self._sm = (m, s, -calculate_input_radius(SOFTMAX_SCALED_DIFF_INTEGER_BITS, s))
        self.rng = Xorshift32(self.config.seed) if self.config.stochastic_rounding else None
        self.l_max = 0
        self.counters = Counters()
        self._fwd_macs = sum(layer_macs(model, i) for i in range(len(model.layers)))

    # --- one chunk of samples (all inside one mini-batch) -----------------------------
    def _probabilities(self, values: dict[int, np.ndarray]) -> tuple[np.ndarray, int]:
        """(int8 probabilities [N, C], tensor whose error the loss gives)."""
        m = self.model
        if self.softmax_at_end:
            return values[m.output].reshape(len(values[m.output]), -1), m.layers[-1].inputs[0]
        mult, shift, diff_min = self._sm
        out = values[m.output].reshape(len(values[m.output]), -1)
        p = softmax_forward(out, input_multiplier=mult, input_left_shift=shift, diff_min=diff_min)
        return p, m.output

    def _chunk(self, xb: np.ndarray, yb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m, cfg = self.model, self.config
        mode = cfg.error_scaling
        n = len(xb)
        values = _run_batched(m, xb, True)
        self.counters.forward_macs += n * self._fwd_macs
        p, start = self._probabilities(values)
        e, ex, mag = softmax_cross_entropy_backward(p, yb, mode)
        lam = lambda_q15(cfg.lambda_min)
        fracs, self.l_max = keep_fractions(mag, self.l_max, lam)
        macs, macs_full = self.backward.run(
            values, start, (e.reshape(values[start].shape), ex), fracs, lam, mode
        )
        self.counters.backward_macs += macs
        self.counters.backward_macs_full += macs_full
        self.counters.samples += n
        return cross_entropy(p, yb), p.argmax(axis=1)

    # --- the update ---------------------------------------------------------------------
    def update(self) -> None:
        """Apply the accumulated gradients (layers in increasing index) and reset them."""
        m, cfg = self.model, self.config
        if not any(st.grad.count for st in self.state.values()):
            return
        for li in self.trainable:
            st = self.state[li]
            if st.grad.count == 0:
                continue
            layer = m.layers[li]
            dw = layer.op == OpType.DEPTHWISE_CONV_2D
            w_t = m.tensors[layer.inputs[1]]
            b_t = m.tensors[layer.inputs[2]] if _has_bias(layer) else None
            s_in = float(m.tensors[layer.inputs[0]].quant.scale[0])
            res = standardized_update(
                weight_rows(w_t.data, dw), w_t.quant.scale,
                None if b_t is None else b_t.data, s_in, st.grad, st.stats,
                lr=cfg.lr, alpha_norm=cfg.alpha_norm, rng=self.rng, center=cfg.center,
            )  # fmt: skip
            w_t.data = rows_to_weight(res.rows.astype(np.int8), w_t.shape, dw)
            w_t.quant.scale = res.scale
            if b_t is not None and res.bias is not None:
                b_t.data = res.bias.astype(np.int32)
                bs = np.float32(s_in) * res.scale.astype(np.float32)
                b_t.quant.scale = np.resize(bs, len(b_t.quant.scale)).astype(np.float32)
            m.params[li] = prepare_layer(m, layer)
            st.grad.reset()
        self.counters.updates += 1

    # --- public API ---------------------------------------------------------------------
    def train_step(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Samples in order; the update runs each time `batch` samples have accumulated.
        Returns (per-sample reported loss, per-sample predicted class)."""
        xb = _as_batch(self.model, np.asarray(x))
        yb = np.asarray(y, np.int64).reshape(-1)
        losses, preds = [], []
        i = 0
        batch = self.config.batch
        while i < len(xb):
            pending = next(iter(self.state.values())).grad.count
            take = min(batch - pending, len(xb) - i)
            loss, pred = self._chunk(xb[i : i + take], yb[i : i + take])
            losses.append(loss)
            preds.append(pred)
            i += take
            if pending + take >= batch:
                self.update()
        return np.concatenate(losses), np.concatenate(preds)

    def flush(self) -> None:
        """Apply a partial mini-batch (end of epoch)."""
        self.update()

    def evaluate(self, xs: np.ndarray, ys: np.ndarray) -> tuple[float, float]:
        """(accuracy, mean reported loss) of the current int8 model."""
        out = infer_batch(self.model, np.asarray(xs))
        out = out.reshape(len(out), -1)
        ys = np.asarray(ys, np.int64).reshape(-1)
        if self.softmax_at_end:
            p = out
        else:
            mult, shift, dmin = self._sm
            p = softmax_forward(out, input_multiplier=mult, input_left_shift=shift, diff_min=dmin)
        return float(np.mean(p.argmax(axis=1) == ys)), float(np.mean(cross_entropy(p, ys)))

    def run_epochs(
        self,
        xs: np.ndarray,
        ys: np.ndarray,
        epochs: int,
        *,
        val: tuple[np.ndarray, np.ndarray] | None = None,
        shuffle: bool = True,
        callback=None,
    ) -> list[EpochResult]:
        """Epochs over (xs, ys); the order is a host-side permutation from
        numpy.random.default_rng(seed) per epoch (the device just sees the samples)."""
        order_rng = np.random.default_rng(self.config.seed)
        history = []
        for ep in range(1, epochs + 1):
            idx = order_rng.permutation(len(xs)) if shuffle else np.arange(len(xs))
            loss, pred = self.train_step(np.asarray(xs)[idx], np.asarray(ys)[idx])
            self.flush()
            r = EpochResult(ep, float(loss.mean()), float(np.mean(pred == np.asarray(ys)[idx])))
            if val is not None:
                r.val_accuracy = self.evaluate(*val)[0]
            history.append(r)
            if callback is not None:
                callback(r)
        return history


def train(
    model: Model,
    xs: np.ndarray,
    ys: np.ndarray,
    *,
    epochs: int,
    trainable: set[int] | None = None,
    config: TrainConfig | None = None,
    val: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[Trainer, list[EpochResult]]:
    t = Trainer(model, trainable, config)
    return t, t.run_epochs(xs, ys, epochs, val=val)
