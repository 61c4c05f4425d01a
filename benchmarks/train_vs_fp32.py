"""fqt int8 training (C trainer or golden model) against fp32 PyTorch training of one network.

For each task the SAME network (the int8 .tflite, imported with fqt), the SAME data (the
int8 model inputs; PyTorch gets them dequantized, x = s_in * (q - zp_in)), the SAME
trainable layers, batch size, epochs and per-epoch sample order are trained by each method:

- int8: the C trainer through scripts/fqt/native.py (--engine native, the default) or
  scripts/fqt/golden/trainer.py (--engine golden), bit-exact with each other
  (tests/python/test_native_train.py, tests/python/test_train_vs_fp32.py): int8 weights,
  activations and errors, int32 gradient accumulators (docs/training-semantics.md); plain
  SGD on the batch-mean gradient and a per-epoch cosine schedule (update_rule "sgd",
  section 7.1); the paper's standardized rule at a constant lr is the "int8_standardized"
  row, with its own lr grid;
- fp32_sgd: PyTorch, plain SGD at a constant lr (no optimizer state, so the RAM formula
  below holds), started from the dequantized int8 weights of the same file;
- fp32_tuned: SGD with momentum 0.9 or Adam, each with a per-epoch cosine schedule; the
  optimizer and lr picked on validation; its optimizer state is shown beside the RAM.

Every method keeps the model of its best validation epoch. Each method's lr is picked from
its grid by the first seed's validation accuracy (a grid whose pick sits at an end is
extended 1-3-10 past that end, up to MAX_GRID_EXTENSIONS times; per optimizer for the
tuned fp32); every seed (SEEDS, --seeds N) then runs at
that lr; test accuracy is reported as mean ± standard error over the seeds, and the gaps
fp32 - int8 are paired per seed. The test split is only evaluated on the picked runs.

Tasks (tasks 2-4 need ../shared, i.e. Path(repo)/../shared, and are skipped without it):
1. digits: sklearn digits 8x8, a small CNN made here with Keras (untrained, Glorot-initialized
   weights) and converted to int8 .tflite (cached in build/benchmarks/models/), all layers
   trained from scratch. The converter calibrates activation ranges on the untrained
   network (logits within +-0.2), and fqt keeps activation ranges fixed, so the from-scratch
   models get a fixed range prior instead (widen_ranges, RANGE_PRIOR); fp32 is unaffected.
2. mnist5k: the same idea on ../shared/datasets/mnist5k.npz (28x28).
3. kws: ../shared/models/kws_ref_model.tflite with its classifier (FULLY_CONNECTED) re-
   initialized, the last pointwise conv and the classifier trained; half of
   kws01_mfcc_int8.npz trains, the other half tests (stratified, seeded).
4. hapt: activity recognition on ../shared/datasets/hapt.npz: 128-sample windows of the six
   sensor channels (50 % overlap, majority label, windows with an unlabeled majority
   dropped), users 1-18 train, 19-21 validation, 22-30 test; a 1-D conv net written as a 2-D
   conv over [1, 128, 6]. Channels standardized with the training users' mean/std. Train
   and validation windows are subsampled (stratified, seeded) to bound the run time.

Reported per task: test accuracy (each method, gaps with SE), peak training RAM (fqt:
plan_memory(...).training_total; fp32: fp32_training_memory below, the fp32 analogue of
the same plan), MACs per sample (forward; backward from the golden trainer's counters,
fp32 backward = the same full backward count), partial updates (PARTIAL_MODES: a fixed
budget and the dynamic rule at 0.1 / 0.5, classifier exempt, every seed at the int8 lr;
--no-partial skips them) and, on digits and kws, an ablation of the trainer's options
(first seed). Full mode, 3 seeds, native engine: about 5 minutes for all four tasks on two
busy cores (digits 63 s, kws 92 s, hapt 68 s, mnist5k 79 s); the golden engine is slower.
--json FILE writes {"meta": {"commit", "engine", ...}, "tasks": {TASK: {"int8": {"mean",
"se", "seeds", "lr", ...}, "fp32_sgd", "fp32_tuned", "ram_ratio", "ram", "partial":
{MODE: {"speedup", "accuracy", "kept_fraction", ...}}, ...}}}; benchmarks/results/ holds a
full run.

    .venv/bin/pip install torch==2.13.0
    .venv/bin/python benchmarks/train_vs_fp32.py [--quick] [--tasks digits,kws,...]
        [--engine native|golden] [--seeds N] [--no-partial] [--json FILE]

Needs numpy, scikit-learn, tensorflow-cpu (only to make the from-scratch models once),
matplotlib (plots; skipped if absent), torch (the fp32 side; skipped with a message if
absent) and fqt itself (scripts/, installed editable or found next to this file).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import io
import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
OUT_DIR = REPO / "build" / "benchmarks"
MODEL_CACHE = OUT_DIR / "models"

sys.path.insert(0, str(REPO / "scripts"))

from fqt.golden.interpreter import _run_batched  # noqa: E402
from fqt.golden.trainer import MAX_LR, TrainConfig, Trainer  # noqa: E402
from fqt.ir import Activation, Layer, Model, OpType  # noqa: E402
from fqt.native import NativeTrainer  # noqa: E402
from fqt.plan import (  # noqa: E402
    WEIGHTED_OPS,
    layer_macs,
    out_channels,
    plan_memory,
)
from fqt.plan import fp32_training_memory as plan_fp32_training_memory  # noqa: E402
from fqt.prepare import prepare  # noqa: E402
from fqt.tflite_import import parse_tflite  # noqa: E402

# Seeds (all fixed; printed at start).
SPLIT_SEED = 0  # data splits and subsampling
MODEL_SEED = 1234  # Keras initialization of the from-scratch models, the kws head re-init
TRAIN_SEED = 7  # fqt TrainConfig.seed (sample order + stochastic rounding) and torch seed
SEEDS = (7, 8, 9)  # --seeds N takes the first N; the lr is picked on the first seed's val
# The int8 default: plain SGD on the batch-mean gradient with a cosine schedule; the
# paper's standardized rule is the "int8_standardized" row (constant lr, its own grid).
INT8_DEFAULT: dict[str, Any] = {"update_rule": "sgd", "schedule": "cosine"}
INT8_STANDARDIZED: dict[str, Any] = {"update_rule": "standardized", "schedule": "constant"}
# The default plus learned activation ranges (EMA min/max, docs/training-semantics.md 7.3).
INT8_RANGES: dict[str, Any] = {**INT8_DEFAULT, "learn_ranges": True}

# Targets (printed beside the figures).
TARGET_GAP_POINTS = 0.5  # int8 within 0.5 point of plain-SGD fp32 (mean of the seeds)
TARGET_TUNED_GAP_POINTS = 1.0  # and within 1.0 point of the tuned fp32 baseline
TARGET_RAM_RATIO = 0.35  # fqt training RAM <= 35 % of fp32's
TARGET_BW_SPEEDUP = 8.7  # backward MACs at lambda_min 0.1 <= 1/8.7 of full

# Partial updates (issue 12): the paper's dynamic rule (kept fraction follows the loss)
# and a fixed per-layer budget, the classifier exempt from top-k (keep_classifier); every
# seed at the int8 default's picked lr; accuracy = mean of the seeds.
PARTIAL_MODES: dict[str, dict[str, Any]] = {
    "budget_0.1": {"lambda_min": 0.1, "partial_mode": "fixed"},
    "budget_0.5": {"lambda_min": 0.5, "partial_mode": "fixed"},
    "dynamic_0.1": {"lambda_min": 0.1},
    "dynamic_0.5": {"lambda_min": 0.5},
}
TARGET_PARTIAL_LOSS_POINTS = 1.0  # budget_0.1 on kws and dynamic_0.1 everywhere
MAX_GRID_EXTENSIONS = 2  # lr grids grow past an end while the pick sits on it
# Activation-range prior of the from-scratch models (see widen_ranges): RELU outputs
# [0, 8], logits [-32, 32]. Picked between (4, 16) and (8, 32) on digits' validation split.
RANGE_PRIOR = (8.0, 32.0)

Array = np.ndarray

# The int8 engine: "native" (the C trainer, scripts/fqt/native.py, bit-exact with the
# golden trainer: tests/python/test_native_train.py) or "golden" (the Python reference).
ENGINES = ("native", "golden")
ENGINE = "native"  # main() sets it from --engine
# The int8 trainer's gradient state (docs/training-semantics.md 4.1): every int8 run and the
# RAM figures use it; main() sets it from --grad-state.
GRAD_STATE = "int32"
# The training memory plan (plan.MEMORY_PLANS; the same bits, so only the RAM figures
# change); main() sets it from --memory.
MEMORY = "default"


# ---------------------------------------------------------------------------------------
# Tasks
# ---------------------------------------------------------------------------------------


@dataclass
class Split:
    x: Array  # int8 model inputs [N, *input shape without batch]
    y: Array  # int64 labels


@dataclass
class Task:
    name: str
    description: str
    model_bytes: bytes
    model_note: str
    trainable: set[int]  # layer indices of the full model
    train: Split
    val: Split
    test: Split
    epochs: int
    batch: int
    fqt_lrs: tuple[float, ...]
    fp32_lrs: tuple[float, ...]
    ablate: bool
    reinit: tuple[int, ...] = ()  # weighted layers to re-initialize (Glorot, seeded)
    range_prior: tuple[float, float] | None = None  # (relu_max, logit_max): widen_ranges

    def fresh_model(self) -> Model:
        """The int8 model as training starts (the head re-initialized where asked)."""
        m = parse_tflite(self.model_bytes, name=self.name)
        for li in self.reinit:
            reinit_weighted(m, li, MODEL_SEED)
        if self.range_prior is not None:
            widen_ranges(m, *self.range_prior)
        prepare(m)
        return m


def reinit_weighted(m: Model, li: int, seed: int) -> None:
    """Glorot-uniform float weights, zero bias, quantized like the imported tensor
    (symmetric int8, per-channel or per-tensor as imported, largest |w| at 127)."""
    layer = m.layers[li]
    if layer.op not in WEIGHTED_OPS:
        raise ValueError(f"layer {li} is {layer.op.name}: no weights")
    w_t = m.tensors[layer.inputs[1]]
    shape = w_t.shape
    if layer.op == OpType.FULLY_CONNECTED:
        fan_in, fan_out = shape[1], shape[0]
    elif layer.op == OpType.CONV_2D:  # OHWI
        fan_in, fan_out = shape[1] * shape[2] * shape[3], shape[0] * shape[1] * shape[2]
    else:  # depthwise 1HWC
        fan_in = fan_out = shape[1] * shape[2]
    rng = np.random.default_rng(seed + li)
    lim = float(np.sqrt(6.0 / (fan_in + fan_out)))
    w = rng.uniform(-lim, lim, shape)
    ch_axis = 3 if layer.op == OpType.DEPTHWISE_CONV_2D else 0
    if w_t.quant.per_channel:
        red = tuple(a for a in range(w.ndim) if a != ch_axis)
        scale = np.abs(w).max(axis=red) / 127.0
        bshape = [1] * w.ndim
        bshape[ch_axis] = -1
        w_t.data = np.round(w / scale.reshape(bshape)).astype(np.int8)
    else:
        scale = np.array([np.abs(w).max() / 127.0])
        w_t.data = np.round(w / scale[0]).astype(np.int8)
    w_t.quant.scale = scale.astype(np.float32)
    if len(layer.inputs) > 2 and layer.inputs[2] >= 0:
        b_t = m.tensors[layer.inputs[2]]
        s_in = np.float32(m.tensors[layer.inputs[0]].quant.scale[0])
        b_t.data = np.zeros(b_t.shape, np.int32)
        bs = s_in * w_t.quant.scale.astype(np.float32)
        b_t.quant.scale = np.resize(bs, len(b_t.quant.scale)).astype(np.float32)


def widen_ranges(m: Model, relu_max: float, logit_max: float) -> None:
    """Replace the converter's activation ranges of an UNTRAINED model (calibrated on
    random weights, far too narrow once the network learns; fqt keeps activation ranges
    fixed) by a fixed prior that uses no trained information: outputs of RELU layers
    [0, relu_max], other weighted-layer outputs (the logits) [-logit_max, logit_max];
    pools and reshapes inherit their input's range (TFLite requires it). Biases are
    re-expressed in the new input scale."""
    old_in_scale = {
        layer.index: float(m.tensors[layer.inputs[0]].quant.scale[0]) for layer in m.layers
    }
    for layer in m.layers:
        out = m.tensors[layer.output]
        if layer.op in WEIGHTED_OPS:
            if layer.activation == Activation.RELU:
                out.quant.scale = np.array([relu_max / 255.0], np.float32)
                out.quant.zero_point = np.array([-128], np.int32)
            else:
                out.quant.scale = np.array([2 * logit_max / 255.0], np.float32)
                out.quant.zero_point = np.array([0], np.int32)
        elif layer.op in (OpType.AVERAGE_POOL_2D, OpType.MAX_POOL_2D, OpType.RESHAPE):
            src = m.tensors[layer.inputs[0]].quant
            out.quant.scale = src.scale.copy()
            out.quant.zero_point = src.zero_point.copy()
    for layer in m.layers:
        if layer.op in WEIGHTED_OPS and len(layer.inputs) > 2 and layer.inputs[2] >= 0:
            b_t = m.tensors[layer.inputs[2]]
            s_w = m.tensors[layer.inputs[1]].quant.scale.astype(np.float32)
            s_in = np.float32(m.tensors[layer.inputs[0]].quant.scale[0])
            ratio = old_in_scale[layer.index] / float(s_in)
            b_t.data = np.round(b_t.data.astype(np.float64) * ratio).astype(np.int32)
            b_t.quant.scale = np.resize(s_in * s_w, len(b_t.quant.scale)).astype(np.float32)


def quantize_input(x: Array, m: Model) -> Array:
    q = m.input_tensor.quant
    s, zp = float(q.scale[0]), int(q.zero_point[0])
    return np.clip(np.round(x / s) + zp, -128, 127).astype(np.int8)


def stratified_split(
    y: Array, fraction: float, seed: int
) -> tuple[Array, Array]:  # (rest indices, taken indices)
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    rest, taken = train_test_split(idx, test_size=fraction, random_state=seed, stratify=y)
    return np.sort(rest), np.sort(taken)


def subsample(y: Array, n: int | None, seed: int) -> Array:
    if n is None or n >= len(y):
        return np.arange(len(y))
    return stratified_split(y, n / len(y), seed)[1]


# --- Keras models (made once, cached) --------------------------------------------------


def keras_int8_model(
    name: str,
    build: Callable[[Any], Any],
    rep_x: Array,
) -> tuple[bytes, str]:
    """An untrained Keras model (Glorot init, seed MODEL_SEED) converted to full-int8
    .tflite with `rep_x` (float training inputs) as representative data. Cached."""
    MODEL_CACHE.mkdir(parents=True, exist_ok=True)
    path = MODEL_CACHE / f"{name}_untrained_s{MODEL_SEED}.tflite"
    note = f"Keras, untrained (Glorot, seed {MODEL_SEED}), int8 via TFLiteConverter; {path}"
    if path.exists():
        return path.read_bytes(), note + " (cached)"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
    import tensorflow as tf

    tf.keras.utils.set_random_seed(MODEL_SEED)
    model = build(tf.keras)

    def rep() -> Any:
        for i in range(min(200, len(rep_x))):
            yield [rep_x[i : i + 1].astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = bytes(conv.convert())
    path.write_bytes(data)
    return data, note


def _digits_net(keras: Any) -> Any:
    L = keras.layers
    x = keras.Input(shape=(8, 8, 1), batch_size=1)
    h = L.Conv2D(8, 3, padding="same", activation="relu")(x)
    h = L.MaxPooling2D(2)(h)  # 4x4x8
    h = L.Conv2D(16, 3, padding="same", activation="relu")(h)
    h = L.AveragePooling2D(2)(h)  # 2x2x16
    h = L.Flatten()(h)
    h = L.Dense(10)(h)
    return keras.Model(x, L.Softmax()(h), name="digits_cnn_scratch")


def _mnist_net(keras: Any) -> Any:
    L = keras.layers
    x = keras.Input(shape=(28, 28, 1), batch_size=1)
    h = L.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)  # 14x14x8
    h = L.Conv2D(16, 3, strides=2, padding="same", activation="relu")(h)  # 7x7x16
    h = L.Conv2D(32, 3, strides=2, padding="same", activation="relu")(h)  # 4x4x32
    h = L.AveragePooling2D(4)(h)
    h = L.Flatten()(h)
    h = L.Dense(10)(h)
    return keras.Model(x, L.Softmax()(h), name="mnist_cnn_scratch")


def _hapt_net(keras: Any) -> Any:
    L = keras.layers
    x = keras.Input(shape=(1, 128, 6), batch_size=1)
    h = L.Conv2D(16, (1, 5), strides=(1, 2), padding="same", activation="relu")(x)  # 64
    h = L.Conv2D(24, (1, 5), strides=(1, 2), padding="same", activation="relu")(h)  # 32
    h = L.Conv2D(32, (1, 5), strides=(1, 2), padding="same", activation="relu")(h)  # 16
    h = L.AveragePooling2D((1, 16))(h)
    h = L.Flatten()(h)
    h = L.Dense(12)(h)
    return keras.Model(x, L.Softmax()(h), name="hapt_cnn_scratch")


def _all_weighted(m: Model) -> set[int]:
    return {layer.index for layer in m.layers if layer.op in WEIGHTED_OPS}


def _from_scratch_task(
    name: str,
    description: str,
    build: Callable[[Any], Any],
    x_tr: Array,
    y_tr: Array,
    x_va: Array,
    y_va: Array,
    x_te: Array,
    y_te: Array,
    **kw: Any,
) -> Task:
    data, note = keras_int8_model(name, build, x_tr)
    m = parse_tflite(data, name=name)
    return Task(
        name=name,
        description=description,
        model_bytes=data,
        model_note=note,
        trainable=_all_weighted(m),
        range_prior=RANGE_PRIOR,
        train=Split(quantize_input(x_tr, m), y_tr),
        val=Split(quantize_input(x_va, m), y_va),
        test=Split(quantize_input(x_te, m), y_te),
        **kw,
    )


def task_digits(quick: bool) -> Task:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[..., None]
    y = d.target.astype(np.int64)
    rest, te = stratified_split(y, 0.2, SPLIT_SEED)  # the fixture's test split
    tr_i, va_i = stratified_split(y[rest], 0.2, SPLIT_SEED + 1)
    tr, va = rest[tr_i], rest[va_i]
    if quick:
        tr = tr[subsample(y[tr], 600, SPLIT_SEED)]
    return _from_scratch_task(
        "digits", "sklearn digits 8x8, small CNN from scratch, all layers",
        _digits_net, x[tr], y[tr], x[va], y[va], x[te], y[te],
        epochs=6 if quick else 20, batch=16,
        fqt_lrs=(0.003, 0.01) if quick else (0.001, 0.003, 0.01),
        fp32_lrs=(0.1, 0.3) if quick else (0.03, 0.1, 0.3, 1.0),
        ablate=True,
    )  # fmt: skip


def task_mnist(quick: bool) -> Task:
    d = np.load(SHARED / "datasets" / "mnist5k.npz")
    x = (d["x"].astype(np.float32) / 255.0)[..., None]
    y = d["y"].astype(np.int64)
    rest, te = stratified_split(y, 0.2, SPLIT_SEED)  # 1000 test
    tr_i, va_i = stratified_split(y[rest], 0.125, SPLIT_SEED + 1)  # 500 val, 3500 train
    tr, va = rest[tr_i], rest[va_i]
    tr = tr[subsample(y[tr], 600 if quick else 1500, SPLIT_SEED)]
    return _from_scratch_task(
        "mnist5k", "MNIST 28x28 (5k subset), small CNN from scratch, all layers",
        _mnist_net, x[tr], y[tr], x[va], y[va], x[te], y[te],
        epochs=4 if quick else 10, batch=16,
        fqt_lrs=(0.003, 0.01) if quick else (0.001, 0.003, 0.01),
        fp32_lrs=(0.1, 0.3) if quick else (0.03, 0.1, 0.3, 1.0),
        ablate=False,  # ablations on digits and kws only (time budget)
    )  # fmt: skip


def task_kws(quick: bool) -> Task:
    path = SHARED / "models" / "kws_ref_model.tflite"
    data = path.read_bytes()
    m = parse_tflite(data, name="kws")
    d = np.load(SHARED / "datasets" / "kws01_mfcc_int8.npz")
    x = d["x"].astype(np.int8).reshape(-1, 49, 10, 1)
    y = d["y"].astype(np.int64)
    tr_all, te = stratified_split(y, 0.4, SPLIT_SEED)  # 400 test
    tr_i, va_i = stratified_split(y[tr_all], 1 / 3, SPLIT_SEED + 1)  # 400 train, 200 val
    tr, va = tr_all[tr_i], tr_all[va_i]
    weighted = sorted(_all_weighted(m))
    fc = weighted[-1]
    return Task(
        name="kws",
        description="DS-CNN keyword spotting, fresh FC head, last pointwise conv + FC trained",
        model_bytes=data,
        model_note=f"{path} (its FULLY_CONNECTED layer {fc} re-initialized: Glorot-uniform, "
        f"seed {MODEL_SEED}, bias 0)",
        trainable={weighted[-2], fc},
        train=Split(x[tr], y[tr]),
        val=Split(x[va], y[va]),
        test=Split(x[te], y[te]),
        epochs=5 if quick else 20,
        batch=16,
        fqt_lrs=(0.003, 0.01) if quick else (0.001, 0.003, 0.01),
        fp32_lrs=(0.03, 0.1) if quick else (0.03, 0.1, 0.3, 1.0),
        ablate=True,
        reinit=(fc,),
    )


HAPT_WINDOW = 128
HAPT_STEP = 64
HAPT_CHANNELS = ("acc-x", "acc-y", "acc-z", "gyro-x", "gyro-y", "gyro-z")


def hapt_windows() -> tuple[Array, Array, Array]:
    """(x float [N, 128, 6], y 0..11, user) over every session."""
    d = np.load(SHARED / "datasets" / "hapt.npz")
    sessions = sorted({k.rsplit("_", 1)[0] for k in d.files})
    xs, ys, us = [], [], []
    for s in sessions:
        sig = np.stack([d[f"{s}_{c}"] for c in HAPT_CHANNELS], axis=1).astype(np.float32)
        lab = d[f"{s}_label"].astype(np.int64)
        user = int(s.split("_")[0][1:])
        for a in range(0, len(lab) - HAPT_WINDOW + 1, HAPT_STEP):
            w = lab[a : a + HAPT_WINDOW]
            vals, counts = np.unique(w, return_counts=True)
            maj = int(vals[np.argmax(counts)])  # ties: the smaller label
            if maj < 1:
                continue
            xs.append(sig[a : a + HAPT_WINDOW])
            ys.append(maj - 1)
            us.append(user)
    return np.stack(xs), np.array(ys, np.int64), np.array(us)


def task_hapt(quick: bool) -> Task:
    x, y, u = hapt_windows()
    tr = np.flatnonzero(u <= 18)
    va = np.flatnonzero((u >= 19) & (u <= 21))
    te = np.flatnonzero(u >= 22)
    mean = x[tr].reshape(-1, 6).mean(axis=0)
    std = x[tr].reshape(-1, 6).std(axis=0) + 1e-6
    xn = ((x - mean) / std)[:, None, :, :]  # [N, 1, 128, 6]
    tr = tr[subsample(y[tr], 800 if quick else 1500, SPLIT_SEED)]
    va = va[subsample(y[va], 300 if quick else 600, SPLIT_SEED)]
    return _from_scratch_task(
        "hapt", "UCI HAPT activity, 128x6 windows, 1-D CNN from scratch, all layers; "
        "users 1-18 train (subsampled), 19-21 val, 22-30 test",
        _hapt_net, xn[tr], y[tr], xn[va], y[va], xn[te], y[te],
        epochs=4 if quick else 10, batch=16,
        fqt_lrs=(0.003, 0.01) if quick else (0.001, 0.003, 0.01),
        fp32_lrs=(0.03, 0.1) if quick else (0.03, 0.1, 0.3, 1.0),
        ablate=False,  # ablations on digits and kws only (time budget)
    )  # fmt: skip


TASKS: dict[str, tuple[Callable[[bool], Task], bool]] = {
    # name: (maker, needs ../shared)
    "digits": (task_digits, False),
    "kws": (task_kws, True),
    "hapt": (task_hapt, True),
    "mnist5k": (task_mnist, True),
}


# ---------------------------------------------------------------------------------------
# fqt side
# ---------------------------------------------------------------------------------------


def suffix_model(m: Model, start: int) -> Model:
    """Layers start.. of `m` as a model whose input is layer `start`'s input. Used when
    the first trainable layer is not the first layer: the frozen prefix is then run once
    (int8 golden interpreter, bit-identical to what the trainer would compute) instead of
    every epoch. The trainer's backward counters are unchanged: the backward never
    reaches the prefix."""
    if start == 0:
        return m
    layers = [dataclasses.replace(layer, index=i) for i, layer in enumerate(m.layers[start:])]
    sub = Model(
        tensors=m.tensors, layers=layers, input=m.layers[start].inputs[0], output=m.output,
        name=m.name + "_suffix",
    )  # fmt: skip
    prepare(sub)
    return sub


@dataclass
class FqtRun:
    lr: float
    config: dict[str, Any]
    val_curve: list[float]
    val_acc: float
    test_acc: float | None
    fwd_macs: float  # per sample, the whole model
    bw_macs: float  # per sample
    bw_macs_full: float  # per sample
    seconds: float
    trainer: Trainer | NativeTrainer | None = None
    engine: str = "native"
    error: str = ""  # a run that raised (counted as diverged: val and test 0)


class FqtData:
    """Inputs in the trained suffix's input space (computed once per task)."""

    def __init__(self, task: Task) -> None:
        m = task.fresh_model()
        self.start = min(task.trainable)
        self.fwd_macs = sum(layer_macs(m, i) for i in range(len(m.layers)))
        if self.start == 0:
            self.train, self.val, self.test = task.train.x, task.val.x, task.test.x
        else:
            t_in = m.layers[self.start].inputs[0]
            self.train, self.val, self.test = (
                self._prefix(m, x, t_in) for x in (task.train.x, task.val.x, task.test.x)
            )

    def _prefix(self, m: Model, x: Array, t_in: int) -> Array:
        pre = Model(
            tensors=m.tensors, layers=m.layers[: self.start], input=m.input, output=t_in,
            params=m.params[: self.start], name="prefix",
        )  # fmt: skip
        outs = [_run_batched(pre, x[i : i + 64], False)[t_in] for i in range(0, len(x), 64)]
        return np.concatenate(outs)


def run_fqt(
    task: Task, data: FqtData, lr: float, seed: int = TRAIN_SEED, *, engine: str | None = None,
    **opts: Any,
) -> FqtRun:  # fmt: skip
    """One int8 run on `engine` (default ENGINE: "native" C trainer or "golden" Python);
    the model of the best validation epoch is kept (keep_best)."""
    engine = engine or ENGINE
    if engine not in ENGINES:
        raise ValueError(f"engine {engine!r}: choose from {ENGINES}")
    m = suffix_model(task.fresh_model(), data.start)
    trainable = {li - data.start for li in task.trainable}
    merged = {"grad_state": GRAD_STATE, "memory": MEMORY, **INT8_DEFAULT, **opts}
    cfg = TrainConfig(lr=lr, batch=task.batch, seed=seed, **merged)
    t0 = time.time()
    tr: Trainer | NativeTrainer = (
        NativeTrainer(m, trainable, cfg) if engine == "native" else Trainer(m, trainable, cfg)
    )
    error = ""
    try:
        hist = tr.run_epochs(
            data.train, task.train.y, task.epochs, val=(data.val, task.val.y), keep_best=True
        )
    except OverflowError as e:  # a diverged run whose scales left float32 (golden engine)
        error = f"{type(e).__name__}: {e}"
        print(f"  ({engine} lr={lr:g} seed {seed} {opts}: training failed, {error}; "
              "counted as diverged, 0 %)", flush=True)  # fmt: skip
        hist = []
    c = tr.counters
    n = max(c.samples, 1)
    return FqtRun(
        lr=lr,
        config={k: v for k, v in vars(cfg).items() if k in opts},
        val_curve=[float(h.val_accuracy or 0.0) for h in hist],
        val_acc=max((float(h.val_accuracy or 0.0) for h in hist), default=0.0),
        test_acc=None,
        fwd_macs=data.fwd_macs,
        bw_macs=c.backward_macs / n,
        bw_macs_full=c.backward_macs_full / n,
        seconds=time.time() - t0,
        trainer=None if error else tr,
        engine=engine,
        error=error,
    )


def fqt_test(run: FqtRun, task: Task, data: FqtData) -> float:
    if run.error:
        run.test_acc = 0.0
        return 0.0
    assert run.trainer is not None
    acc = run.trainer.evaluate(data.test, task.test.y)[0]
    run.test_acc = acc
    run.trainer = None  # free it
    return acc


# ---------------------------------------------------------------------------------------
# fp32 side (PyTorch)
# ---------------------------------------------------------------------------------------


def dequantized_params(m: Model, layer: Layer) -> tuple[Array, Array]:
    """(float weights in TFLite layout, float bias) = scale * (q - 0)."""
    w_t = m.tensors[layer.inputs[1]]
    s = w_t.quant.scale.astype(np.float64)
    w = w_t.data.astype(np.float64)
    if layer.op == OpType.DEPTHWISE_CONV_2D:
        w = w * np.broadcast_to(s, (w.shape[-1],))
    else:
        w = w * np.broadcast_to(s, (w.shape[0],)).reshape((-1,) + (1,) * (w.ndim - 1))
    n_out = out_channels(m, layer.index)
    if len(layer.inputs) > 2 and layer.inputs[2] >= 0:
        b_t = m.tensors[layer.inputs[2]]
        b = b_t.data.astype(np.float64) * np.broadcast_to(
            b_t.quant.scale.astype(np.float64), (n_out,)
        )
    else:
        b = np.zeros(n_out)
    return w, b


def make_fp32_net(m: Model, trainable: set[int]) -> Any:
    """A torch.nn.Module computing the same graph in fp32 (NHWC values between layers,
    TFLite padding rules), returning the logits (the final SOFTMAX's input x beta)."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.ParameterDict()
            self.b = torch.nn.ParameterDict()
            for layer in m.layers:
                if layer.op not in WEIGHTED_OPS:
                    continue
                w, b = dequantized_params(m, layer)
                if layer.op == OpType.CONV_2D:
                    w = w.transpose(0, 3, 1, 2)  # OHWI -> OIHW
                elif layer.op == OpType.DEPTHWISE_CONV_2D:
                    w = w[0].transpose(2, 0, 1)[:, None]  # 1HWC -> C1HW
                req = layer.index in trainable
                key = str(layer.index)
                self.w[key] = torch.nn.Parameter(torch.tensor(w, dtype=torch.float32), req)
                self.b[key] = torch.nn.Parameter(torch.tensor(b, dtype=torch.float32), req)

        @staticmethod
        def _pad(layer: Layer, x: Any, kh: int, kw: int, value: float = 0.0) -> Any:
            p = m.params[layer.index]
            ih, iw = x.shape[2], x.shape[3]
            oh, ow = m.tensors[layer.output].shape[1:3]
            th = max((oh - 1) * layer.stride_h + (kh - 1) * layer.dilation_h + 1 - ih, 0)
            tw = max((ow - 1) * layer.stride_w + (kw - 1) * layer.dilation_w + 1 - iw, 0)
            if th == 0 and tw == 0:
                return x
            return F.pad(x, (p.pad_w, tw - p.pad_w, p.pad_h, th - p.pad_h), value=value)

        def forward(self, x: Any) -> Any:
            vals = {m.input: x}
            last = m.layers[-1]
            for layer in m.layers:
                a = vals[layer.inputs[0]]
                op = layer.op
                if op == OpType.SOFTMAX and layer is last:
                    return a.reshape(len(a), -1) * layer.beta
                if op in (OpType.CONV_2D, OpType.DEPTHWISE_CONV_2D):
                    key = str(layer.index)
                    w = self.w[key]
                    xc = self._pad(layer, a.permute(0, 3, 1, 2), w.shape[2], w.shape[3])
                    groups = xc.shape[1] if op == OpType.DEPTHWISE_CONV_2D else 1
                    y = F.conv2d(
                        xc, w, self.b[key], stride=(layer.stride_h, layer.stride_w),
                        dilation=(layer.dilation_h, layer.dilation_w), groups=groups,
                    ).permute(0, 2, 3, 1)  # fmt: skip
                elif op == OpType.FULLY_CONNECTED:
                    key = str(layer.index)
                    y = F.linear(a.reshape(len(a), -1), self.w[key], self.b[key])
                elif op in (OpType.AVERAGE_POOL_2D, OpType.MAX_POOL_2D):
                    k = (layer.filter_h, layer.filter_w)
                    s = (layer.stride_h, layer.stride_w)
                    xc = a.permute(0, 3, 1, 2)
                    if op == OpType.MAX_POOL_2D:
                        xp = self._pad(layer, xc, *k, value=float("-inf"))
                        y = F.max_pool2d(xp, k, s)
                    else:
                        xp = self._pad(layer, xc, *k)
                        ones = self._pad(layer, torch.ones_like(xc[:1, :1]), *k)
                        y = F.avg_pool2d(xp, k, s, divisor_override=1)
                        y = y / F.avg_pool2d(ones, k, s, divisor_override=1)
                    y = y.permute(0, 2, 3, 1)
                elif op == OpType.RESHAPE:
                    y = a.reshape((len(a), *m.tensors[layer.output].shape[1:]))
                elif op == OpType.ADD:
                    y = a + vals[layer.inputs[1]]
                elif op == OpType.SOFTMAX:
                    y = torch.softmax(a * layer.beta, dim=-1)
                else:
                    raise NotImplementedError(op.name)
                if layer.activation == Activation.RELU:
                    y = torch.relu(y)
                elif layer.activation == Activation.RELU6:
                    y = torch.clamp(y, 0.0, 6.0)
                vals[layer.output] = y
            return vals[m.output].reshape(len(x), -1)

    return Net()


@dataclass
class Fp32Run:
    lr: float
    val_curve: list[float]
    val_acc: float
    test_acc: float | None
    seconds: float
    net: Any = None
    optimizer: str = "sgd"


def _dequant_input(m: Model, x: Array) -> Any:
    import torch

    q = m.input_tensor.quant
    s, zp = float(q.scale[0]), int(q.zero_point[0])
    return torch.tensor((x.astype(np.float32) - zp) * s, dtype=torch.float32)


def _fp32_acc(net: Any, x: Any, y: Array) -> float:
    import torch

    with torch.no_grad():
        pred = torch.cat([net(x[i : i + 256]) for i in range(0, len(x), 256)]).argmax(1)
    return float(np.mean(pred.numpy() == y))


FP32_OPTIMIZERS = ("sgd", "momentum", "adam")


def fp32_state_bytes(m: Model, trainable: set[int], optimizer: str) -> int:
    """Optimizer state of the trainable weights and biases: momentum one fp32 buffer, Adam
    two (exp_avg, exp_avg_sq), plain SGD none."""
    n = sum(
        m.tensors[m.layers[li].inputs[1]].num_elements + out_channels(m, li) for li in trainable
    )
    return 4 * n * {"sgd": 0, "momentum": 1, "adam": 2}[optimizer]


def run_fp32(task: Task, lr: float, seed: int = TRAIN_SEED, optimizer: str = "sgd") -> Fp32Run:
    """Same batch, epochs and per-epoch permutation as the fqt trainer. optimizer "sgd":
    plain SGD at a constant lr (the paper's setting); "momentum" (SGD, momentum 0.9) and
    "adam" with a per-epoch cosine schedule (the tuned baseline). The weights of the best
    validation epoch are kept, as for fqt."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    torch.manual_seed(seed)
    m = task.fresh_model()
    net = make_fp32_net(m, task.trainable)
    xtr, xva = _dequant_input(m, task.train.x), _dequant_input(m, task.val.x)
    ytr = torch.tensor(task.train.y)
    params = [p for p in net.parameters() if p.requires_grad]
    if optimizer == "adam":
        opt: Any = torch.optim.Adam(params, lr=lr)
    else:
        opt = torch.optim.SGD(params, lr=lr, momentum=0.9 if optimizer == "momentum" else 0.0)
    cosine = optimizer != "sgd"
    order_rng = np.random.default_rng(seed)
    curve: list[float] = []
    best_state = None
    t0 = time.time()
    for ep in range(task.epochs):
        if cosine:
            for g in opt.param_groups:
                g["lr"] = lr * (1.0 + np.cos(np.pi * ep / task.epochs)) / 2.0
        idx = torch.tensor(order_rng.permutation(len(ytr)))
        net.train()
        for i in range(0, len(idx), task.batch):
            b = idx[i : i + task.batch]
            opt.zero_grad()
            loss = F.cross_entropy(net(xtr[b]), ytr[b])
            loss.backward()
            opt.step()
        net.eval()
        ok = all(np.isfinite(p.detach().numpy()).all() for p in params)
        curve.append(_fp32_acc(net, xva, task.val.y) if ok else 0.0)
        if curve[-1] > max(curve[:-1], default=-1.0):
            best_state = copy.deepcopy(net.state_dict())
    if best_state is not None:
        net.load_state_dict(best_state)
    return Fp32Run(lr, curve, max(curve), None, time.time() - t0, net, optimizer)


def fp32_test(run: Fp32Run, task: Task) -> float:
    m = task.fresh_model()
    run.test_acc = _fp32_acc(run.net, _dequant_input(m, task.test.x), task.test.y)
    run.net = None
    return run.test_acc


# ---------------------------------------------------------------------------------------
# Memory: fqt plan and its fp32 analogue
# ---------------------------------------------------------------------------------------


@dataclass
class Memory:
    arena: int
    params: int

    @property
    def total(self) -> int:
        return self.arena + self.params


def fqt_training_memory(m: Model, trainable: set[int]) -> Memory:
    p = plan_memory(m, trainable, MEMORY, GRAD_STATE)
    return Memory(p.training_arena, p.training_params)


def native_training_memory(m: Model, trainable: set[int]) -> Memory:
    """The C trainer's own figure (fqt_trainer_memory on the whole model's blob)."""
    from fqt.blob import write_blob
    from fqt.native import training_memory

    arena, params = training_memory(
        write_blob(m, set(trainable)), set(trainable), memory=MEMORY, grad_state=GRAD_STATE
    )
    return Memory(arena, params)


def fp32_training_memory(m: Model, trainable: set[int]) -> Memory:
    """The fp32 analogue of plan.plan_memory (plan.fp32_training_memory, the one formula:
    the same buffers at 4 B per element, fp32 weights plus gradients)."""
    f = plan_fp32_training_memory(m, set(trainable))
    return Memory(f.arena, f.params)


# ---------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------


def table(title: str, header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = "  ".join("-" * w for w in widths)
    out = [title, "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)), line]
    out += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def kb(n: int) -> str:
    return f"{n / 1024:.1f}"


def mark(ok: bool) -> str:
    return "meets" if ok else "MISSES"


@dataclass
class Method:
    """One training method on one task: the lr grid (first seed, validation), then every
    seed at the picked lr; test accuracies per seed."""

    name: str
    lr: float
    grid: list[tuple[str, float]]  # (label, best val accuracy) on the first seed
    test: list[float]  # per seed
    val: list[float]  # per seed (best epoch)
    optimizer: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def mean(self) -> float:
        return float(np.mean(self.test))

    @property
    def se(self) -> float:
        n = len(self.test)
        return float(np.std(self.test, ddof=1) / np.sqrt(n)) if n > 1 else float("nan")

    def summary(self) -> dict[str, Any]:
        return {"mean": self.mean, "se": self.se, "seeds": self.test, "lr": self.lr,
                "optimizer": self.optimizer, "val": self.val}  # fmt: skip


@dataclass
class TaskResult:
    task: Task
    seeds: tuple[int, ...]
    methods: dict[str, Method]
    mem_fqt: Memory
    mem_fp32: Memory
    fwd_macs: float
    bw_macs_full: float
    partial: dict[str, dict[str, Any]] = field(default_factory=dict)
    mem_native: Memory | None = None  # the C trainer's fqt_trainer_memory, cross-check
    ablation: dict[str, FqtRun] = field(default_factory=dict)


ABLATIONS: dict[str, dict[str, Any]] = {
    "stochastic rounding off (nearest)": {"stochastic_rounding": False},
    "error scaling fixed 2^-7 (paper)": {"error_scaling": "fixed"},
    "RELU clip mask off (errors pass y == act_max)": {"clip_mask": False},
    "constant lr (no cosine)": {"schedule": "constant"},
}
STD_ABLATIONS: dict[str, dict[str, Any]] = {  # at the standardized rule's lr
    "standardized, gradient centering off": {**INT8_STANDARDIZED, "center": False},
}


def _next_lr(lr: float, up: bool) -> float:
    """The next lr of a 1-3-10 grid above (up) or below `lr`."""
    mant = lr / 10 ** np.floor(np.log10(lr))
    if up:
        x = lr * (3.0 if mant < 2 else 10.0 / 3.0)
    else:
        x = lr / (10.0 / 3.0 if mant < 2 else 3.0)
    return float(f"{x:.3g}")


def _grid_extension(lrs: list[float], picked: float, n_ext: int) -> float | None:
    """The lr to add when `picked` sits at an end of the grid (None: inside, or the
    extensions are used up, or past MAX_LR)."""
    if n_ext >= MAX_GRID_EXTENSIONS or len(lrs) < 2:
        return None
    if picked == max(lrs):
        x = _next_lr(picked, True)
        return x if x <= MAX_LR else None
    if picked == min(lrs):
        return _next_lr(picked, False)
    return None


def _fqt_method(
    name: str, task: Task, data: FqtData, lrs: tuple[float, ...], seeds: tuple[int, ...],
    log: Callable[[str], None], **opts: Any,
) -> tuple[Method, FqtRun]:  # fmt: skip
    grid: list[FqtRun] = []
    todo, n_ext = list(lrs), 0
    while todo:
        for lr in todo:
            r = run_fqt(task, data, lr, seeds[0], **opts)
            log(f"  {name} lr={lr:<7g} seed {seeds[0]} val {pct(r.val_acc)} %  "
                f"({r.seconds:.0f} s)")  # fmt: skip
            grid.append(r)
        grid.sort(key=lambda r: r.lr)
        best = max(grid, key=lambda r: r.val_acc)  # ties: the first (smaller) lr
        x = _grid_extension([r.lr for r in grid], best.lr, n_ext)
        todo, n_ext = ([x], n_ext + 1) if x is not None else ([], n_ext)
        if x is not None:
            log(f"  {name}: picked lr {best.lr:g} at the grid's end, adding {x:g}")
    for r in grid:
        if r is not best:
            r.trainer = None
    tests, vals = [fqt_test(best, task, data)], [best.val_acc]
    for seed in seeds[1:]:
        r = run_fqt(task, data, best.lr, seed, **opts)
        tests.append(fqt_test(r, task, data))
        vals.append(r.val_acc)
        log(f"  {name} lr={best.lr:<7g} seed {seed} test {pct(tests[-1])} %  ({r.seconds:.0f} s)")
    grid_labels = [(f"{r.lr:g}", r.val_acc) for r in grid]
    return Method(name, best.lr, grid_labels, tests, vals), best


def _fp32_method(
    name: str, task: Task, grids: dict[str, tuple[float, ...]], seeds: tuple[int, ...],
    log: Callable[[str], None],
) -> Method:  # fmt: skip
    runs = []
    for optimizer, lrs in grids.items():
        mine: list[Fp32Run] = []
        todo, n_ext = list(lrs), 0
        while todo:
            for lr in todo:
                r = run_fp32(task, lr, seeds[0], optimizer)
                mine.append(r)
                log(f"  {name} {optimizer} lr={lr:<7g} val {pct(r.val_acc)} %  "
                    f"({r.seconds:.0f} s)")  # fmt: skip
            mine.sort(key=lambda r: r.lr)
            top = max(mine, key=lambda r: r.val_acc)
            x = _grid_extension([r.lr for r in mine], top.lr, n_ext)
            todo, n_ext = ([x], n_ext + 1) if x is not None else ([], n_ext)
            if x is not None:
                log(f"  {name} {optimizer}: picked lr {top.lr:g} at the grid's end, adding {x:g}")
        runs += mine
    best = max(runs, key=lambda r: r.val_acc)
    tests, vals = [fp32_test(best, task)], [best.val_acc]
    for r in runs:
        r.net = None
    for seed in seeds[1:]:
        r = run_fp32(task, best.lr, seed, best.optimizer)
        tests.append(fp32_test(r, task))
        vals.append(r.val_acc)
    label = [(f"{r.optimizer}:{r.lr:g}", r.val_acc) for r in runs]
    return Method(name, best.lr, label, tests, vals, best.optimizer)


def run_task(
    task: Task, log: Callable[[str], None], seeds: tuple[int, ...], partial: bool
) -> TaskResult:
    data = FqtData(task)
    methods: dict[str, Method] = {}
    methods["int8"], best = _fqt_method("int8", task, data, task.fp32_lrs, seeds, log)
    methods["int8_standardized"], best_std = _fqt_method(
        "int8_standardized", task, data, task.fqt_lrs, seeds, log, **INT8_STANDARDIZED
    )
    methods["int8_ranges"], _ = _fqt_method(
        "int8_ranges", task, data, task.fp32_lrs, seeds, log, **INT8_RANGES
    )
    methods["fp32_sgd"] = _fp32_method("fp32_sgd", task, {"sgd": task.fp32_lrs}, seeds, log)
    tuned = {
        "momentum": tuple(lr / 10 for lr in task.fp32_lrs),
        "adam": (0.001, 0.003, 0.01),
    }
    methods["fp32_tuned"] = _fp32_method("fp32_tuned", task, tuned, seeds, log)
    m = task.fresh_model()
    mem32 = fp32_training_memory(m, task.trainable)
    for meth in methods.values():
        if meth.optimizer:
            meth.extra["state_bytes"] = fp32_state_bytes(m, task.trainable, meth.optimizer)
    res = TaskResult(
        task, seeds, methods, fqt_training_memory(m, task.trainable), mem32,
        best.fwd_macs, best.bw_macs_full,
    )  # fmt: skip
    res.mem_native = native_training_memory(m, task.trainable)
    if partial:
        full = methods["int8"]
        for mode, popts in PARTIAL_MODES.items():
            tests, bw, bw_full = [], 0.0, 0.0
            for seed in seeds:
                r = run_fqt(task, data, full.lr, seed, **popts)
                tests.append(fqt_test(r, task, data))
                bw, bw_full = bw + r.bw_macs, bw_full + r.bw_macs_full
                log(f"  int8 {mode} lr={full.lr:g} seed {seed} test {pct(tests[-1])} %  "
                    f"speed-up {r.bw_macs_full / r.bw_macs:.2f}x  ({r.seconds:.0f} s)")  # fmt: skip
            d = 100 * (np.array(tests) - np.array(full.test))
            res.partial[mode] = {
                "speedup": bw_full / bw if bw else float("inf"),
                "accuracy": float(np.mean(tests)),
                "kept_fraction": bw / bw_full if bw_full else 1.0,
                "se": float(np.std(tests, ddof=1) / np.sqrt(len(tests))) if len(tests) > 1
                else float("nan"),
                "seeds": tests,
                "delta_points": float(d.mean()),
                "delta_se": float(np.std(d, ddof=1) / np.sqrt(len(d))) if len(d) > 1
                else float("nan"),
                "bw_macs": bw / len(seeds),
                "bw_macs_full": bw_full / len(seeds),
                "lr": full.lr,
            }  # fmt: skip
    if task.ablate:
        res.ablation["default (sgd, cosine, SR, dynamic errors, clip mask)"] = best
        res.ablation["standardized update (paper), constant lr"] = best_std
        for name, opts in [*ABLATIONS.items(), *STD_ABLATIONS.items()]:
            lr = best_std.lr if name in STD_ABLATIONS else best.lr
            r = run_fqt(task, data, lr, seeds[0], **opts)
            fqt_test(r, task, data)
            log(f"  int8 {name}: test {pct(r.test_acc)} %  ({r.seconds:.0f} s)")
            res.ablation[name] = r
    return res


def _pm(mean: float, se: float) -> str:
    return f"{100 * mean:.1f} ± {100 * se:.1f}" if np.isfinite(se) else f"{100 * mean:.1f}"


def paired_gap(a: Method, b: Method) -> tuple[float, float]:
    """(mean, se) over seeds of b - a in points (a and b ran the same seeds)."""
    d = 100 * (np.array(b.test) - np.array(a.test))
    se = float(np.std(d, ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
    return float(d.mean()), se


def report(results: list[TaskResult], skipped: list[str]) -> str:
    out = []
    rows = []
    for r in results:
        me = r.methods
        g_sgd, se_sgd = paired_gap(me["int8"], me["fp32_sgd"])
        g_tun, se_tun = paired_gap(me["int8"], me["fp32_tuned"])
        g_rng, se_rng = paired_gap(me["int8_ranges"], me["fp32_sgd"])
        g_rt, se_rt = paired_gap(me["int8_ranges"], me["fp32_tuned"])
        rows.append([
            r.task.name, str(len(r.seeds)), _pm(me["int8"].mean, me["int8"].se),
            _pm(me["int8_standardized"].mean, me["int8_standardized"].se),
            _pm(me["int8_ranges"].mean, me["int8_ranges"].se),
            _pm(me["fp32_sgd"].mean, me["fp32_sgd"].se),
            _pm(me["fp32_tuned"].mean, me["fp32_tuned"].se),
            f"{g_sgd:+.1f} ± {se_sgd:.1f}", mark(g_sgd <= TARGET_GAP_POINTS),
            f"{g_tun:+.1f} ± {se_tun:.1f}", mark(g_tun <= TARGET_TUNED_GAP_POINTS),
            f"{g_rng:+.1f} ± {se_rng:.1f}", f"{g_rt:+.1f} ± {se_rt:.1f}",
        ])  # fmt: skip
    out.append(table(
        "Test accuracy %, mean ± standard error over seeds (lr picked on the first seed's "
        f"validation); gap = fp32 - int8 (paired per seed); targets: <= {TARGET_GAP_POINTS} "
        f"vs fp32 SGD, <= {TARGET_TUNED_GAP_POINTS} vs tuned fp32",
        ["task", "seeds", "int8 (sgd+cos)", "int8 standardized", "int8 +ranges", "fp32 SGD",
         "fp32 tuned", "gap SGD", "", "gap tuned", "", "ranges: gap SGD", "gap tuned"], rows,
    ))  # fmt: skip
    rows = []
    for r in results:
        n_test = len(r.task.test.y)
        for name, meth in r.methods.items():
            p = meth.mean
            rows.append([
                r.task.name, name, meth.optimizer or "-", f"{meth.lr:g}",
                " ".join(f"{100 * t:.1f}" for t in meth.test),
                f"{100 * np.sqrt(p * (1 - p) / n_test):.1f}",
                " ".join(f"{k}:{pct(v)}" for k, v in meth.grid),
            ])  # fmt: skip
    out.append(table(
        "Per method: picked lr, test % per seed, the test split's binomial SE, and the lr "
        "grid (lr:best val %, first seed)",
        ["task", "method", "optimizer", "lr", "test per seed", "test SE", "grid"], rows,
    ))  # fmt: skip
    rows = []
    for r in results:
        t = r.task
        rows.append([t.name, str(t.epochs), str(t.batch), str(len(t.train.y)),
                     str(len(t.val.y)), str(len(t.test.y))])  # fmt: skip
    out.append(table("Splits", ["task", "epochs", "batch", "n train", "n val", "n test"], rows))
    rows = []
    for r in results:
        ratio = r.mem_fqt.total / r.mem_fp32.total
        tuned = r.methods["fp32_tuned"]
        st = int(tuned.extra.get("state_bytes", 0))
        rows.append([
            r.task.name, ",".join(map(str, sorted(r.task.trainable))),
            kb(r.mem_fqt.arena), kb(r.mem_fqt.params), kb(r.mem_fqt.total),
            kb(r.mem_fp32.arena), kb(r.mem_fp32.params), kb(r.mem_fp32.total),
            f"{100 * ratio:.1f}", f"<= {100 * TARGET_RAM_RATIO:.0f}",
            mark(ratio <= TARGET_RAM_RATIO), f"{tuned.optimizer} +{kb(st)}",
            kb(r.mem_native.total) if r.mem_native else "-",
        ])  # fmt: skip
    out.append(table(
        "Peak training RAM (KiB): fqt plan_memory vs its fp32 analogue (plain SGD); the tuned "
        "fp32 optimizer adds its state",
        ["task", "trainable", "fqt arena", "fqt params", "fqt total", "fp32 arena",
         "fp32 params", "fp32 total", "fqt/fp32 %", "target %", "", "tuned state",
         "C trainer total"], rows,
    ))  # fmt: skip
    rows = []
    for r in results:
        rows.append([r.task.name, f"{r.fwd_macs:,.0f}", f"{r.bw_macs_full:,.0f}"])
    out.append(table("MACs per sample (fp32: the same counts)",
                     ["task", "forward", "backward (full)"], rows))  # fmt: skip
    rows = []
    for r in results:
        full = r.methods["int8"]
        if r.partial:
            rows.append([r.task.name, "full", _pm(full.mean, full.se), "", "",
                         f"{r.bw_macs_full:,.0f}", "1.00", "1.000", "", ""])  # fmt: skip
        for mode, p in r.partial.items():
            tgt, ok = "", ""
            if mode == "dynamic_0.1":
                tgt = f"loss <= {TARGET_PARTIAL_LOSS_POINTS}"
                ok = mark(-p["delta_points"] <= TARGET_PARTIAL_LOSS_POINTS)
            elif mode == "budget_0.1" and r.task.name == "kws":
                tgt = f">= {TARGET_BW_SPEEDUP}x, loss <= {TARGET_PARTIAL_LOSS_POINTS}"
                ok = mark(p["speedup"] >= TARGET_BW_SPEEDUP
                          and -p["delta_points"] <= TARGET_PARTIAL_LOSS_POINTS)  # fmt: skip
            rows.append([
                r.task.name, mode, _pm(p["accuracy"], p["se"]),
                f"{p['delta_points']:+.1f} ± {p['delta_se']:.1f}", f"{p['lr']:g}",
                f"{p['bw_macs']:,.0f}", f"{p['speedup']:.2f}", f"{p['kept_fraction']:.3f}",
                tgt, ok,
            ])  # fmt: skip
    if rows:
        out.append(table(
            "Partial updates (int8, every seed at the int8 default's lr; classifier exempt "
            "from top-k; speed-up = backward MACs full / partial, the trainer's counters)",
            ["task", "mode", "test %", "vs full pts", "lr", "backward MACs/sample",
             "speed-up", "kept", "target", ""], rows,
        ))  # fmt: skip
    rows = []
    for r in results:
        base = r.methods["int8"].test[0]
        for name, a in r.ablation.items():
            d = 100 * ((a.test_acc or 0.0) - base)
            rows.append([r.task.name, name, f"{a.lr:g}", pct(a.test_acc), pct(a.val_acc),
                         f"{d:+.1f}"])  # fmt: skip
    if rows:
        out.append(table(
            "Ablation (int8, first seed, one option switched at a time)",
            ["task", "variant", "lr", "test %", "val %", "vs default pts"], rows,
        ))  # fmt: skip
    for s in skipped:
        out.append(f"skipped: {s}")
    return "\n\n".join(out)


def git_commit() -> str:
    """HEAD of the tree the benchmark runs from ("+dirty" with uncommitted changes)."""
    import subprocess

    def git(*a: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *a], capture_output=True, text=True,
                              check=False).stdout.strip()  # fmt: skip

    head = git("rev-parse", "HEAD") or "unknown"
    return head + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def json_summary(
    results: list[TaskResult], meta: dict[str, Any] | None = None
) -> dict[str, Any]:  # fmt: skip
    tasks: dict[str, Any] = {}
    for r in results:
        d: dict[str, Any] = {k: m.summary() for k, m in r.methods.items()}
        d["ram_ratio"] = r.mem_fqt.total / r.mem_fp32.total
        d["ram"] = {
            "fqt": r.mem_fqt.total,
            "fp32_sgd": r.mem_fp32.total,
            "fp32_tuned_state": r.methods["fp32_tuned"].extra.get("state_bytes", 0),
        }
        if r.mem_native is not None:
            d["ram"]["fqt_native"] = r.mem_native.total
        d["partial"] = r.partial
        d["ablation"] = {k: {"test": v.test_acc, "lr": v.lr} for k, v in r.ablation.items()}
        d["gap_fp32_sgd"] = paired_gap(r.methods["int8"], r.methods["fp32_sgd"])
        d["gap_fp32_tuned"] = paired_gap(r.methods["int8"], r.methods["fp32_tuned"])
        d["ranges_gap_fp32_sgd"] = paired_gap(r.methods["int8_ranges"], r.methods["fp32_sgd"])
        d["ranges_gap_fp32_tuned"] = paired_gap(r.methods["int8_ranges"], r.methods["fp32_tuned"])
        tasks[r.task.name] = d
    return {"meta": meta or {}, "tasks": tasks}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller data, epochs and grids")
    ap.add_argument(
        "--tasks", default=",".join(TASKS), help=f"comma-separated subset of {list(TASKS)}"
    )
    ap.add_argument("--seeds", type=int, default=len(SEEDS), help=f"first N of {SEEDS}")
    ap.add_argument(
        "--partial",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=f"partial-update runs ({', '.join(PARTIAL_MODES)}), every seed",
    )
    ap.add_argument(
        "--engine",
        choices=ENGINES,
        default=ENGINES[0],
        help="int8 trainer: the C engine (native) or the Python golden model",
    )
    ap.add_argument(
        "--grad-state",
        choices=("int32", "int16", "int8"),
        default="int32",
        help="the int8 trainer's gradient accumulator (docs/training-semantics.md 4.1)",
    )
    ap.add_argument(
        "--memory",
        choices=("default", "lean"),
        default="default",
        help="the training memory plan (docs/memory-plan.md: lean, less arena, same bits)",
    )
    ap.add_argument("--json", metavar="FILE", help="write the results as JSON")
    args = ap.parse_args(argv)
    try:
        import torch
    except ImportError:
        print(
            "SKIP: PyTorch is not installed (the fp32 side needs it); "
            "install it with: .venv/bin/pip install torch==2.13.0"
        )
        return 0
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    seeds = SEEDS[: max(1, args.seeds)]
    global ENGINE, GRAD_STATE, MEMORY
    ENGINE = args.engine
    GRAD_STATE = args.grad_state
    MEMORY = args.memory
    mode = "quick" if args.quick else "full"
    print(f"fqt train_vs_fp32 ({mode} mode); seeds: split {SPLIT_SEED}, model {MODEL_SEED}, "
          f"train {seeds}; torch {torch.__version__}; int8 engine {ENGINE}, gradient "
          f"state {GRAD_STATE}, memory plan {MEMORY}")  # fmt: skip
    print(f"targets: int8 within {TARGET_GAP_POINTS} point of plain-SGD fp32 and "
          f"{TARGET_TUNED_GAP_POINTS} of tuned fp32 (mean of the seeds); training RAM <= "
          f"{100 * TARGET_RAM_RATIO:.0f} % of fp32; backward MACs at lambda_min 0.1 <= "
          f"1/{TARGET_BW_SPEEDUP} of full")  # fmt: skip
    t_start = time.time()
    meta = {
        "commit": git_commit(), "engine": ENGINE, "mode": mode, "seeds": list(seeds),
        "torch": torch.__version__, "partial": args.partial, "grad_state": GRAD_STATE,
        "memory": MEMORY,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }  # fmt: skip
    print(f"commit {meta['commit']}")
    results: list[TaskResult] = []
    skipped: list[str] = []
    for name in [s.strip() for s in args.tasks.split(",") if s.strip()]:
        if name not in TASKS:
            ap.error(f"unknown task {name}; choose from {list(TASKS)}")
        maker, needs_shared = TASKS[name]
        if needs_shared and not SHARED.is_dir():
            msg = f"{name}: {SHARED} is absent (its model/data live there)"
            print(f"SKIP {msg}")
            skipped.append(msg)
            continue
        t0 = time.time()
        task = maker(args.quick)
        print(f"\n[{task.name}] {task.description}\n  model: {task.model_note}\n  "
              f"train/val/test {len(task.train.y)}/{len(task.val.y)}/{len(task.test.y)}, "
              f"epochs {task.epochs}, batch {task.batch}, "
              f"trainable layers {sorted(task.trainable)}")  # fmt: skip
        results.append(run_task(task, lambda s: print(s, flush=True), seeds, args.partial))
        print(f"  [{task.name}] {time.time() - t0:.0f} s", flush=True)
        text = report(results, skipped)  # after every task, so a long run leaves figures
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        stem = f"train_vs_fp32_{mode}" + ("" if GRAD_STATE == "int32" else f"_{GRAD_STATE}")
        stem += "" if MEMORY == "default" else f"_{MEMORY}"
        (OUT_DIR / f"{stem}.txt").write_text(text + "\n")
        meta["seconds"] = round(time.time() - t_start)
        summary = json.dumps(json_summary(results, meta), indent=1) + "\n"
        (OUT_DIR / f"{stem}.json").write_text(summary)
        if args.json:
            Path(args.json).write_text(summary)
    if not results:
        print("no task ran")
        return 0
    print("\n" + report(results, skipped))
    print(f"total {time.time() - t_start:.0f} s ({mode} mode)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
