"""`fqt train`: host training of an int8 .tflite on the golden or the native engine,
writing the trained .tflite."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from .. import progress
from ..errors import FqtError
from ..export import check_exportable, write_tflite
from ..golden.grad_state import GRAD_ROUNDINGS, GRAD_STATES
from ..golden.trainer import LOSSES, SCHEDULES, EpochResult, TrainConfig, Trainer
from ..golden.update import DEFAULT_LR, UPDATE_RULES
from ..ir import Model, OpType
from ..native import NativeTrainer
from ..plan import MEMORY_PLANS, parse_trainable
from ..quant import quantize_input
from ..trainlog import TrainLog
from .checks import float_range, input_file, int_range, output_file
from .common import ENGINE_HELP, ENGINES, default_engine, load_model


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="int8 .tflite to train")
    p.add_argument("--data", required=True, help=".npz with x (int8 or float) and y (labels)")
    p.add_argument("--engine", choices=ENGINES, default=default_engine(), help=ENGINE_HELP)
    p.add_argument("--epochs", type=int_range(1, 100000), default=5, help="epochs")
    p.add_argument(
        "--lr",
        type=float_range(0.0, 100.0, lo_open=True),
        default=None,
        help="learning rate (real weight units; default 0.3 for sgd, 0.003 for standardized)",
    )
    p.add_argument("--batch", type=int_range(1, 1 << 20), default=32, help="mini-batch size")
    p.add_argument(
        "--lambda-min",
        type=float_range(0.0, 1.0),
        default=1.0,
        help="partial updates: fraction of channels kept at least (1.0 = off)",
    )
    p.add_argument(
        "--partial-mode",
        choices=("dynamic", "fixed"),
        default="dynamic",
        help="dynamic: the kept fraction follows the loss (the paper); fixed: every sample "
        "keeps --lambda-min of each layer's channels",
    )
    p.add_argument(
        "--cut-classifier",
        action="store_true",
        help="partial updates also cut the last weighted layer (default: it keeps all classes)",
    )
    p.add_argument(
        "--alpha-norm", type=float_range(0.0, 1.0), default=0.85, help="EMA of the gradient stats"
    )
    p.add_argument(
        "--update",
        choices=UPDATE_RULES,
        default="sgd",
        help="weight update: plain SGD on the batch-mean gradient (its lr is an fp32-like lr), "
        "or the paper's per-channel gradient standardization",
    )
    p.add_argument(
        "--grad-state",
        choices=GRAD_STATES,
        default="int32",
        help="mini-batch gradient accumulator per weight: int32, or int16 / int8 rows with "
        "a per-channel exponent (less params RAM; docs/training-semantics.md 4.1)",
    )
    p.add_argument(
        "--grad-rounding",
        choices=GRAD_ROUNDINGS,
        default="stochastic",
        help="rounding of the int16 / int8 gradient state's merges",
    )
    p.add_argument(
        "--learn-ranges",
        action="store_true",
        help="learn the trainable layers' output activation ranges (EMA of min/max; the "
        "export carries the new quantization)",
    )
    p.add_argument("--schedule", choices=SCHEDULES, default="cosine", help="lr per epoch")
    p.add_argument(
        "--warmup", type=int_range(0, 100000), default=0, help="linear lr warm-up epochs"
    )
    p.add_argument(
        "--step-epochs",
        type=int_range(0, 100000),
        default=0,
        help="step schedule: epochs per step",
    )
    p.add_argument(
        "--step-gamma",
        type=float_range(0.0, 1.0, lo_open=True),
        default=0.1,
        help="step schedule: lr factor",
    )
    p.add_argument(
        "--loss",
        choices=("auto", *LOSSES),
        default="auto",
        help="auto: cross_entropy for integer labels, mse when y has the output's shape "
        "(float in real units, or int8 in the output's quantization)",
    )
    p.add_argument(
        "--last",
        action="store_true",
        help="save the last epoch's model (default with validation data: the best epoch)",
    )
    p.add_argument(
        "--patience",
        type=int_range(0, 100000),
        default=0,
        help="early stop after N epochs without a better validation score (0: never)",
    )
    p.add_argument(
        "--seed",
        type=int_range(0, 2**32 - 1),
        default=0,
        help="sample order, rounding and split seed",
    )
    p.add_argument(
        "--rounding",
        choices=("stochastic", "nearest"),
        default="stochastic",
        help="rounding of the weight update",
    )
    p.add_argument(
        "--error-scaling",
        choices=("dynamic", "fixed"),
        default="dynamic",
        help="per-sample power-of-two error scales, or the paper's fixed range",
    )
    p.add_argument(
        "--trainable",
        nargs="+",
        metavar="LAYER",
        help="trainable layers: indices, 'last', 'last:N', 'all' (default: last)",
    )
    p.add_argument(
        "--memory",
        choices=MEMORY_PLANS,
        default="default",
        help="training memory plan (docs/memory-plan.md): default, or lean (less arena, the "
        "same trained model, a slower input error on the native engine)",
    )
    val = p.add_mutually_exclusive_group()
    val.add_argument(
        "--val-split",
        type=float_range(0.0, 1.0, lo_open=True),
        help="hold out this fraction of --data",
    )
    val.add_argument("--val", help=".npz validation set (x, y)")
    p.add_argument("-o", "--output", required=True, help="trained .tflite")
    p.add_argument("--log", help="CSV log (default: <output>_log.csv beside -o; '' for none)")
    p.add_argument(
        "--plot", help="PNG of loss and accuracy (default: <output>_log.png; '' for none)"
    )
    p.add_argument(
        "--log-every", type=int_range(1, 1 << 30), default=100, help="a CSV row every N samples"
    )
    p.add_argument("--board", help="the board's name for the plot's title")
    p.add_argument("--json", action="store_true", help="print a summary as JSON")


def pick_loss(model: Model, y: np.ndarray, n: int, asked: str) -> str:
    """The loss the labels fit: cross_entropy for 1-D integer labels within the classes,
    mse for targets of the output's shape on a model without a final SOFTMAX."""
    out = model.output_tensor
    softmax = model.layers[-1].op == OpType.SOFTMAX
    fits_mse = not softmax and y.size == n * out.num_elements and (y.ndim > 1 or n == 0)
    fits_ce = y.ndim == 1 and y.dtype.kind in "iu"
    loss = asked
    if asked == "auto":
        loss = "mse" if fits_mse else "cross_entropy"
    if loss == "mse" and not fits_mse:
        why = "the model ends in SOFTMAX" if softmax else f"y {y.shape} is not {n} targets"
        raise FqtError(f"mse loss: {why} of the output shape {out.shape}")
    if loss == "cross_entropy" and not fits_ce:
        hint = "" if softmax else "; targets of the output's shape train with the mse loss"
        raise FqtError(
            f"y {y.shape} {y.dtype} fits no loss: cross_entropy needs 1-D integer labels{hint}"
        )
    return loss


def read_dataset(path: str, model: Model, loss: str = "auto") -> tuple[np.ndarray, np.ndarray, str]:
    """An .npz with x (int8, or float quantized with the input parameters) and y: integer
    labels, or regression targets of the output's shape (float: quantized with the output
    parameters; int8: taken as they are). Returns (x, y, loss)."""
    try:
        with np.load(path, allow_pickle=False) as d:
            x, y = d["x"], d["y"]
    except (OSError, ValueError, KeyError) as e:
        raise FqtError(f"{path}: cannot read a dataset with x and y: {e}") from None
    t = model.input_tensor
    if x.size % t.num_elements or x.size // t.num_elements != len(y):
        raise FqtError(f"{path}: x {x.shape} is not {len(y)} inputs of shape {t.shape}")
    n = x.size // t.num_elements
    if n == 0:
        raise FqtError(f"{path}: the dataset is empty")
    if x.dtype.kind == "f":
        x = quantize_input(x, t.quant.scale[0], t.quant.zero_point[0])
    elif x.dtype != np.int8:
        raise FqtError(f"{path}: x dtype {x.dtype}; give int8 samples or float ones")
    try:
        loss = pick_loss(model, y, n, loss)
    except FqtError as e:
        raise FqtError(f"{path}: {e}") from None
    xs = x.reshape((-1, *t.shape))
    if loss == "mse":
        o = model.output_tensor
        if y.dtype.kind == "f":
            q = np.round(y / o.quant.scale[0]) + o.quant.zero_point[0]
            y = np.clip(q, -128, 127)
        elif y.dtype != np.int8:
            raise FqtError(f"{path}: mse targets must be float or int8, not {y.dtype}")
        return xs, y.astype(np.int8).reshape(n, -1), loss
    n_classes = model.output_tensor.num_elements
    if y.min() < 0 or y.max() >= n_classes:
        raise FqtError(f"{path}: labels must lie in [0, {n_classes})")
    return xs, y.astype(np.int64), loss


def run_train(args: argparse.Namespace) -> int:
    input_file(args.model, "model")
    if Path(args.model).suffix != ".tflite":
        raise FqtError(f"{args.model}: train needs the source .tflite (to export it again)")
    input_file(args.data, "npz")
    if args.val:
        input_file(args.val, "npz")
    output_file(args.output)
    model = load_model(args.model)
    check_exportable(model, args.model)
    xs, ys, loss = read_dataset(args.data, model, args.loss)
    val = None
    if args.val:
        vx, vy, _ = read_dataset(args.val, model, loss)
        val = (vx, vy)
    elif args.val_split:
        if args.val_split >= 1.0:
            raise FqtError("--val-split must lie in (0, 1)")
        idx = np.random.default_rng(args.seed).permutation(len(xs))
        n_val = max(1, round(len(xs) * args.val_split))
        if n_val >= len(xs):
            raise FqtError("--val-split leaves no training samples")
        val = (xs[idx[:n_val]], ys[idx[:n_val]])
        xs, ys = xs[idx[n_val:]], ys[idx[n_val:]]
    try:
        trainable = parse_trainable(model, args.trainable)
    except ValueError as e:
        raise FqtError(str(e)) from None
    if args.epochs < 0 or args.patience < 0:
        raise FqtError("need epochs >= 0 and patience >= 0")
    if args.lr is None:
        args.lr = DEFAULT_LR[args.update]
    config = TrainConfig(
        lr=args.lr,
        batch=args.batch,
        lambda_min=args.lambda_min,
        partial_mode=args.partial_mode,
        keep_classifier=not args.cut_classifier,
        alpha_norm=args.alpha_norm,
        stochastic_rounding=args.rounding == "stochastic",
        error_scaling=args.error_scaling,
        seed=args.seed,
        update_rule=args.update,
        loss=loss,
        schedule=args.schedule,
        warmup_epochs=args.warmup,
        step_epochs=args.step_epochs,
        step_gamma=args.step_gamma,
        learn_ranges=args.learn_ranges,
        memory=args.memory,
        grad_state=args.grad_state,
        grad_rounding=args.grad_rounding,
    )
    try:
        config.check()
    except ValueError as e:
        raise FqtError(str(e)) from None
    trainer: Trainer | NativeTrainer
    try:
        if args.engine == "native":
            trainer = NativeTrainer(model, trainable, config)
        else:
            trainer = Trainer(model, trainable, config)
    except ValueError as e:
        raise FqtError(str(e)) from None
    mse = loss == "mse"
    score = 1 if mse else 0  # evaluate(): (accuracy, loss)
    before = trainer.evaluate(*val)[score] if val else None
    if not args.json:
        print(f"loss: {loss}, update: {args.update}, schedule: {args.schedule}, "
              f"activation ranges: {'learned' if args.learn_ranges else 'fixed'}")  # fmt: skip
        if before is not None:
            print(f"before: val {'loss' if mse else 'accuracy'} {_fmt(before, mse)}")

    log = TrainLog(
        {"model": Path(args.model).stem, "board": args.board or "host", "engine": args.engine,
         "epochs": args.epochs, "lr": args.lr, "batch": args.batch, "update": args.update,
         "lambda_min": args.lambda_min, "trainable": ",".join(map(str, trainer.trainable)),
         "samples": len(xs), "grad_state": args.grad_state}
    )  # fmt: skip
    stem = str(Path(args.output).with_suffix(""))
    if args.log is None:
        args.log = f"{stem}_log.csv"
    if args.plot is None:
        args.plot = f"{stem}_log.png"
    n = len(xs)
    t0 = time.monotonic()
    if val is not None:
        acc0, loss0 = trainer.evaluate(*val)
        log.add("start", epoch=0, sample=0, epoch_samples=n, samples_seen=0,
                val_loss=loss0, val_accuracy=None if mse else acc0, time_s=0.0)  # fmt: skip
    with progress.bar(args.epochs * n, f"train ({args.engine})", "samples", args.json) as bar:

        def on_chunk(ep: int, done: int, loss_sum: float, correct: int) -> None:
            if done < n:
                log.add("progress", epoch=ep, sample=done, epoch_samples=n,
                        samples_seen=(ep - 1) * n + done, loss=loss_sum / done,
                        accuracy=None if mse else correct / done,
                        time_s=time.monotonic() - t0)  # fmt: skip
            bar.update_to((ep - 1) * n + done, loss=f"{loss_sum / done:.4f}")

        def report(r: EpochResult) -> None:
            log.add("epoch", epoch=r.epoch, sample=n, epoch_samples=n, samples_seen=r.epoch * n,
                    loss=r.loss, accuracy=None if mse else r.train_accuracy,
                    val_loss=r.val_loss, val_accuracy=None if mse else r.val_accuracy,
                    time_s=time.monotonic() - t0)  # fmt: skip
            if not args.json:
                v = ""
                if r.val_accuracy is not None:
                    val_score = r.val_loss if mse else r.val_accuracy
                    v = f", val {'loss' if mse else 'accuracy'} {_fmt(val_score, mse)}"
                acc = "" if mse else f", train accuracy {r.train_accuracy:.2%}"
                bar.write(f"epoch {r.epoch} (lr {r.lr:.4g}): loss {r.loss:.4f}{acc}{v}")

        keep_best = val is not None and not args.last
        history = trainer.run_epochs(
            xs, ys, args.epochs, val=val, callback=report, keep_best=keep_best,
            patience=args.patience, every=max(1, args.log_every), on_chunk=on_chunk,
        )  # fmt: skip
    after = trainer.evaluate(*val)[score] if val else None
    best_epoch = None
    if history and val is not None:
        key = [(r.val_loss if mse else -(r.val_accuracy or 0.0)) for r in history]
        best_epoch = history[int(np.argmin(key))].epoch if keep_best else history[-1].epoch
    written = log.write(args.log or None, args.plot or None)
    write_tflite(trainer.model, args.model, args.output)
    c = trainer.counters
    summary = {
        "engine": args.engine,
        "model": str(args.model),
        "output": str(args.output),
        "trainable": trainer.trainable,
        "samples": len(xs),
        "val_samples": 0 if val is None else len(val[1]),
        "val_accuracy_before": None if mse else before,
        "val_loss_before": before if mse else None,
        "val_accuracy_after": None if mse else after,
        "val_loss_after": after if mse else None,
        "saved_epoch": best_epoch,
        "loss": loss,
        "epochs": [vars(r) for r in history],
        "forward_macs": c.forward_macs,
        "backward_macs": c.backward_macs,
        "backward_macs_full": c.backward_macs_full,
        "updates": c.updates,
        "config": vars(config),
        "log": args.log if args.log and args.log in written else None,
        "plot": args.plot if args.plot and args.plot in written else None,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"{c.samples} samples, {c.updates} updates; MACs forward {c.forward_macs:,}, "
            f"backward {c.backward_macs:,} (full updates: {c.backward_macs_full:,})"
        )
        if best_epoch is not None:
            which = "best" if keep_best else "last"
            print(f"saved the {which} epoch {best_epoch}: val {_fmt(after, mse)}")
        print(f"trained model -> {args.output}")
        if written:
            print(f"log -> {', '.join(written)}")
    return 0


def _fmt(v: float | None, mse: bool) -> str:
    if v is None:
        return "-"
    return f"{v:.5g}" if mse else f"{v:.2%}"
