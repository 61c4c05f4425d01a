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

import copy
import math
from dataclasses import dataclass, field

import numpy as np

from ..ir import Layer, Model, OpType
from ..plan import MEMORY_PLANS, WEIGHTED_OPS, default_trainable, layer_macs
from ..prepare import SOFTMAX_SCALED_DIFF_INTEGER_BITS, prepare, prepare_layer
from ..quant import calculate_input_radius, preprocess_softmax_scaling
from .backward import Backward
from .grad_state import GRAD_ROUNDINGS, GRAD_STATES, NarrowAccumulator, grad_seed
from .interpreter import _as_batch, _run_batched, infer_batch
from .loss import (
    cross_entropy,
    mse_backward,
    mse_multiplier,
    softmax_cross_entropy_backward,
    squared_error,
)
from .partial import keep_fractions, lambda_q15
from .prng import Xorshift32
from .ranges import derive, observe, range_groups, rescale_bias
from .schedule import SCHEDULES, scheduled_lr
from .softmax import softmax_forward
from .update import (
    UPDATE_RULES,
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
    lambda_min: float = 1.0  # 1.0: full updates; < 1: partial updates (section 6)
    partial_mode: str = "dynamic"  # kept fraction from the loss; "fixed": lambda_min always
    keep_classifier: bool = True  # the last weighted layer keeps all channels (no top-k)
    alpha_norm: float = 0.85  # EMA weight of the old gradient mean/std
    stochastic_rounding: bool = True  # of the weight update (else round to nearest)
    error_scaling: str = "dynamic"  # per-sample power-of-two error scales; "fixed": 2^-7
    seed: int = 0
    center: bool = True  # subtract the EMA mean in the standardization (the paper's rule)
    clip_mask: bool = True  # fused RELU: also drop the error where y == act_max (clamped)
    update_rule: str = "standardized"  # or "sgd": plain SGD on the batch-mean gradient (7.1)
    loss: str = "cross_entropy"  # or "mse": squared error against int8 targets (3.1)
    schedule: str = "constant"  # lr per epoch: "constant", "cosine", "step" (host side)
    warmup_epochs: int = 0  # linear warm-up epochs before the schedule
    step_epochs: int = 0  # "step": multiply lr by step_gamma every step_epochs epochs
    step_gamma: float = 0.1
    learn_ranges: bool = False  # EMA min/max of trainable layers' outputs (section 7.3)
    # The training memory plan (plan.MEMORY_PLANS, docs/memory-plan.md): "lean" needs less
    # arena for the same bits (a slower input error in C); the golden model's arithmetic
    # is the same for both.
    memory: str = "default"
    grad_state: str = "int32"  # mini-batch accumulator: "int32", or "int16" / "int8" (4.1)
    grad_rounding: str = "stochastic"  # of the narrow state's merges, or "nearest"

    def check(self) -> None:
        """One-line ValueErrors for options no engine can train with."""
        if not math.isfinite(self.lr) or not 0.0 < self.lr <= MAX_LR:
            raise ValueError(f"lr must be a finite number in (0, {MAX_LR:g}], not {self.lr}")
        if self.batch < 1:
            raise ValueError(f"batch must be >= 1, not {self.batch}")
        if not 0.0 <= self.lambda_min <= 1.0:
            raise ValueError(f"lambda_min must lie in [0, 1], not {self.lambda_min}")
        if self.partial_mode not in PARTIAL_MODES:
            raise ValueError(f"partial mode {self.partial_mode!r}: choose from {PARTIAL_MODES}")
        if self.update_rule not in UPDATE_RULES:
            raise ValueError(f"update rule {self.update_rule!r}: choose from {UPDATE_RULES}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss {self.loss!r}: choose from {LOSSES}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule {self.schedule!r}: choose from {SCHEDULES}")
        if self.schedule == "step" and self.step_epochs < 1:
            raise ValueError("the step schedule needs step_epochs >= 1")
        if self.grad_state not in GRAD_STATES:
            raise ValueError(f"grad state {self.grad_state!r}: choose from {GRAD_STATES}")
        if self.grad_rounding not in GRAD_ROUNDINGS:
            raise ValueError(f"grad rounding {self.grad_rounding!r}: choose from {GRAD_ROUNDINGS}")
        if self.warmup_epochs < 0 or not 0.0 < self.step_gamma <= 1.0:
            raise ValueError("need warmup_epochs >= 0 and 0 < step_gamma <= 1")
        if self.memory not in MEMORY_PLANS:
            raise ValueError(f"memory plan {self.memory!r}: choose from {MEMORY_PLANS}")


MAX_LR = 100.0  # larger learning rates are refused as absurd (the sgd rule uses ~0.01-1)
LOSSES = ("cross_entropy", "mse")
PARTIAL_MODES = ("dynamic", "fixed")


def epoch_lr(cfg: TrainConfig, epoch: int, epochs: int) -> float:
    """The lr of epoch `epoch` (1-based) of `epochs` (schedule.scheduled_lr, float32),
    computed on the host and handed to either engine before the epoch."""
    return scheduled_lr(
        cfg.lr, cfg.schedule, epoch, epochs, cfg.warmup_epochs, cfg.step_epochs, cfg.step_gamma
    )


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
    grad: GradientAccumulator | NarrowAccumulator
    stats: ChannelStats


@dataclass
class EpochResult:
    epoch: int
    loss: float
    train_accuracy: float  # nan for the mse loss
    val_accuracy: float | None = None  # nan for the mse loss
    val_loss: float | None = None
    lr: float | None = None
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
        self.config.check()
        self.trainable = resolve_trainable(model, trainable)
        self.state: dict[int, _LayerState] = {}
        cfg = self.config
        for slot, li in enumerate(self.trainable):
            w = model.tensors[model.layers[li].inputs[1]]
            rows = weight_rows(w.data, model.layers[li].op == OpType.DEPTHWISE_CONV_2D)
            grad: GradientAccumulator | NarrowAccumulator
            if cfg.grad_state == "int32":
                grad = GradientAccumulator.zeros(*rows.shape)
            else:  # section 4.1: one generator per trainable layer
                rng = None
                if cfg.grad_rounding == "stochastic":
                    rng = Xorshift32(grad_seed(cfg.seed, slot))
                grad = NarrowAccumulator(*rows.shape, cfg.grad_state, rng)
            self.state[li] = _LayerState(grad, ChannelStats.zeros(rows.shape[0]))
        last = model.layers[-1]
        self.softmax_at_end = last.op == OpType.SOFTMAX and last.output == model.output
        self.backward = Backward(
            model,
            self.trainable,
            {li: st.grad for li, st in self.state.items()},
            clip_mask=self.config.clip_mask,
            keep_classifier=self.config.keep_classifier,
            skip_layer=len(model.layers) - 1 if self.softmax_at_end else -1,
        )
        self.lr = float(self.config.lr)
        self.mse = self.config.loss == "mse"
        if self.mse and self.softmax_at_end:
            raise ValueError("the mse loss needs a model without a final SOFTMAX")
        if not self.softmax_at_end:
            self._set_loss_softmax()
            self._mse = mse_multiplier(float(model.output_tensor.quant.scale[0]))
        self.rng = Xorshift32(self.config.seed) if self.config.stochastic_rounding else None
        self.ranges = (
            range_groups(model, self.trainable, self.mse) if self.config.learn_ranges else []
        )
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
        for i in range(n):  # sample order, as the C engine
            for g in self.ranges:
                observe(m, g, values[g.tensors[0]][i], int(m.params[g.root].act_min))
        if self.mse:
            start = m.output
            out = values[start].reshape(n, -1)
            e, ex, mag = mse_backward(out, yb, *self._mse, mode)
            loss = squared_error(out, yb, float(m.output_tensor.quant.scale[0]))
            pred = np.zeros(n, np.int64)
        else:
            p, start = self._probabilities(values)
            e, ex, mag = softmax_cross_entropy_backward(p, yb, mode)
            loss, pred = cross_entropy(p, yb), p.argmax(axis=1)
        lam = lambda_q15(cfg.lambda_min)
        fracs, self.l_max = keep_fractions(mag, self.l_max, lam, cfg.partial_mode == "fixed")
        macs, macs_full = self.backward.run(
            values, start, (e.reshape(values[start].shape), ex), fracs, lam, mode
        )
        self.counters.backward_macs += macs
        self.counters.backward_macs_full += macs_full
        self.counters.samples += n
        return loss, pred

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
                lr=self.lr, alpha_norm=cfg.alpha_norm, rng=self.rng, center=cfg.center,
                rule=cfg.update_rule,
            )  # fmt: skip
            w_t.data = rows_to_weight(res.rows.astype(np.int8), w_t.shape, dw)
            w_t.quant.scale = res.scale
            if b_t is not None and res.bias is not None:
                b_t.data = res.bias.astype(np.int32)
                bs = np.float32(s_in) * res.scale.astype(np.float32)
                b_t.quant.scale = np.resize(bs, len(b_t.quant.scale)).astype(np.float32)
            m.params[li] = prepare_layer(m, layer)
            st.grad.reset()
        self._update_ranges()
        self.counters.updates += 1

    def _update_ranges(self) -> None:
        """Section 7.3: each learned group's new scale / zero point, the consumers' biases
        in the new input scale, the dependent layers re-prepared (groups in root order)."""
        m = self.model
        for g in self.ranges:
            d = derive(g)
            q = m.tensors[g.tensors[0]].quant
            if d is None or (np.float32(d[0]) == q.scale[0] and d[1] == q.zero_point[0]):
                continue
            s, zp = d
            s_old = float(q.scale[0])
            for t in g.tensors:
                m.tensors[t].quant.scale = np.array([s], np.float32)
                m.tensors[t].quant.zero_point = np.array([zp], np.int32)
            for c in g.consumers:
                layer = m.layers[c]
                if _has_bias(layer):
                    b_t = m.tensors[layer.inputs[2]]
                    b_t.data = rescale_bias(b_t.data, s_old, s)
                    bs = np.float32(s) * m.tensors[layer.inputs[1]].quant.scale.astype(np.float32)
                    b_t.quant.scale = np.resize(bs, len(b_t.quant.scale)).astype(np.float32)
            for li in g.layers:
                m.params[li] = prepare_layer(m, m.layers[li])
            if m.output in g.tensors and not self.softmax_at_end:
                self._set_loss_softmax()

    def _set_loss_softmax(self) -> None:
        s_out = float(self.model.output_tensor.quant.scale[0])
        m, s = preprocess_softmax_scaling(1.0, s_out, SOFTMAX_SCALED_DIFF_INTEGER_BITS)
        self._sm = (m, s, -calculate_input_radius(SOFTMAX_SCALED_DIFF_INTEGER_BITS, s))

    # --- public API ---------------------------------------------------------------------
    def train_step(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Samples in order; the update runs each time `batch` samples have accumulated.
        Returns (per-sample reported loss, per-sample predicted class)."""
        xb = _as_batch(self.model, np.asarray(x))
        yb = self._targets(y, len(xb))
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

    def _targets(self, y: np.ndarray, n: int) -> np.ndarray:
        """Labels int64 [N] (cross-entropy) or int8 targets [N, D] (mse)."""
        if self.mse:
            d = self.model.output_tensor.num_elements
            return np.asarray(y).astype(np.int8).reshape(n, d)
        return np.asarray(y, np.int64).reshape(-1)

    def flush(self) -> None:
        """Apply a partial mini-batch (end of epoch)."""
        self.update()

    def set_lr(self, lr: float) -> None:
        """The learning rate of the next updates (fqt_trainer_set_lr)."""
        if not math.isfinite(lr) or lr <= 0.0:
            raise ValueError(f"lr must be finite and > 0, not {lr}")
        self.lr = float(lr)

    def snapshot(self) -> object:
        """The trained tensors and layer parameters (for keeping the best epoch)."""
        m = self.model
        ids = {t for li in self.trainable for t in m.layers[li].inputs[1:3] if t >= 0}
        ids |= {t for g in self.ranges for t in g.tensors}
        layers = set(self.trainable) | {li for g in self.ranges for li in g.layers}
        return (
            {t: copy.deepcopy(m.tensors[t]) for t in ids},
            {li: copy.deepcopy(m.params[li]) for li in layers},
            getattr(self, "_sm", None),
        )

    def restore(self, snap: object) -> None:
        tensors, params, sm = snap  # type: ignore[misc]
        for t, v in tensors.items():
            self.model.tensors[t] = copy.deepcopy(v)
        for li, v in params.items():
            self.model.params[li] = copy.deepcopy(v)
        if sm is not None:
            self._sm = sm

    def reconstruction_error(self, xs: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """Per-sample 1/2 sum (s_out (y - t))^2: the anomaly score of an autoencoder."""
        out = infer_batch(self.model, np.asarray(xs))
        out = out.reshape(len(out), -1)
        t = np.asarray(ts).astype(np.int8).reshape(len(out), -1)
        return squared_error(out, t, float(self.model.output_tensor.quant.scale[0]))

    def evaluate(self, xs: np.ndarray, ys: np.ndarray) -> tuple[float, float]:
        """(accuracy, mean reported loss) of the current int8 model; for the mse loss
        (nan, mean squared error)."""
        if self.mse:
            return float("nan"), float(np.mean(self.reconstruction_error(xs, ys)))
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
        keep_best: bool = False,
        patience: int = 0,
        every: int = 0,
        on_chunk=None,
    ) -> list[EpochResult]:
        """Epochs over (xs, ys); the order is a host-side permutation from
        numpy.random.default_rng(seed) per epoch (the device just sees the samples), the
        lr of each epoch from epoch_lr. With `val` and keep_best the model of the best
        validation epoch (accuracy; the mse loss: lowest loss; ties: the earlier) is
        restored at the end; patience > 0 stops after that many epochs without one.
        every > 0 feeds an epoch in chunks of that many samples and calls
        on_chunk(epoch, samples_done, loss_sum, correct) after each (the same samples in the
        same order, so the same updates)."""
        return run_epochs(self, xs, ys, epochs, val=val, shuffle=shuffle, callback=callback,
                          keep_best=keep_best, patience=patience, every=every,
                          on_chunk=on_chunk)  # fmt: skip


def _score(r: EpochResult, mse: bool) -> float:
    if mse:
        return -float(r.val_loss if r.val_loss is not None else math.inf)
    return float(r.val_accuracy or 0.0)


def run_epochs(
    t, xs, ys, epochs: int, *, val=None, shuffle=True, callback=None, keep_best=False,
    patience=0, every=0, on_chunk=None,
) -> list[EpochResult]:  # fmt: skip
    """Trainer.run_epochs for either engine (`t`: Trainer or native.NativeTrainer)."""
    if len(xs) == 0:
        raise ValueError("no training samples")
    cfg = t.config
    mse = cfg.loss == "mse"
    order_rng = np.random.default_rng(cfg.seed)
    history: list[EpochResult] = []
    best: tuple[float, object] | None = None
    since_best = 0
    ys_arr = np.asarray(ys)
    for ep in range(1, epochs + 1):
        lr = epoch_lr(cfg, ep, epochs)
        t.set_lr(lr)
        idx = order_rng.permutation(len(xs)) if shuffle else np.arange(len(xs))
        xe, ye = np.asarray(xs)[idx], ys_arr[idx]
        step = every if every > 0 else len(xe)
        losses, preds = [], []
        for i in range(0, len(xe), step):
            loss_i, pred_i = t.train_step(xe[i : i + step], ye[i : i + step])
            losses.append(loss_i)
            preds.append(pred_i)
            if on_chunk is not None:
                done = min(i + step, len(xe))
                correct = 0 if mse else int(np.sum(np.concatenate(preds) == ye[:done]))
                on_chunk(ep, done, float(np.concatenate(losses).sum()), correct)
        loss, pred = np.concatenate(losses), np.concatenate(preds)
        t.flush()
        acc = float("nan") if mse else float(np.mean(pred == ye))
        r = EpochResult(ep, float(loss.mean()), acc, lr=lr)
        if val is not None:
            r.val_accuracy, r.val_loss = t.evaluate(*val)
        history.append(r)
        if callback is not None:
            callback(r)
        if val is not None and keep_best:
            if best is None or _score(r, mse) > best[0]:
                best = (_score(r, mse), t.snapshot())
                since_best = 0
            else:
                since_best += 1
            if patience > 0 and since_best >= patience:
                break
    if best is not None:
        t.restore(best[1])
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
