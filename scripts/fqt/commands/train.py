"""`fqt train`: host training of an int8 .tflite on the golden or the native engine,
writing the trained .tflite."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from .. import progress
from ..errors import FqtError
from ..export import write_tflite
from ..golden.trainer import EpochResult, TrainConfig, Trainer
from ..ir import Model
from ..native import NativeTrainer
from ..plan import parse_trainable
from ..quant import quantize_input
from ..trainlog import TrainLog
from .common import ENGINE_HELP, ENGINES, default_engine, load_model


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="int8 .tflite to train")
    p.add_argument("--data", required=True, help=".npz with x (int8 or float) and y (labels)")
    p.add_argument("--engine", choices=ENGINES, default=default_engine(), help=ENGINE_HELP)
    p.add_argument("--epochs", type=int, default=5, help="epochs")
    p.add_argument("--lr", type=float, default=0.003, help="learning rate (real weight units)")
    p.add_argument("--batch", type=int, default=32, help="mini-batch size")
    p.add_argument(
        "--lambda-min", type=float, default=1.0, help="dynamic partial updates: 1.0 = off"
    )
    p.add_argument("--alpha-norm", type=float, default=0.85, help="EMA of the gradient stats")
    p.add_argument("--seed", type=int, default=0, help="sample order, rounding and split seed")
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
    val = p.add_mutually_exclusive_group()
    val.add_argument("--val-split", type=float, help="hold out this fraction of --data")
    val.add_argument("--val", help=".npz validation set (x, y)")
    p.add_argument("-o", "--output", required=True, help="trained .tflite")
    p.add_argument("--log", help="CSV log (default: <output>_log.csv beside -o; '' for none)")
    p.add_argument(
        "--plot", help="PNG of loss and accuracy (default: <output>_log.png; '' for none)"
    )
    p.add_argument("--log-every", type=int, default=100, help="a CSV row every N samples")
    p.add_argument("--board", help="the board's name for the plot's title")
    p.add_argument("--json", action="store_true", help="print a summary as JSON")


def read_dataset(path: str, model: Model) -> tuple[np.ndarray, np.ndarray]:
    """An .npz with x (int8, or float quantized with the input parameters) and y labels."""
    try:
        with np.load(path, allow_pickle=False) as d:
            x, y = d["x"], d["y"]
    except (OSError, ValueError, KeyError) as e:
        raise FqtError(f"{path}: cannot read a dataset with x and y: {e}") from None
    t = model.input_tensor
    if x.size % t.num_elements or x.size // t.num_elements != len(y):
        raise FqtError(f"{path}: x {x.shape} is not {len(y)} inputs of shape {t.shape}")
    if x.dtype.kind == "f":
        x = quantize_input(x, t.quant.scale[0], t.quant.zero_point[0])
    elif x.dtype != np.int8:
        raise FqtError(f"{path}: x dtype {x.dtype}; give int8 samples or float ones")
    if y.dtype.kind not in "iu":
        raise FqtError(f"{path}: y must hold integer labels, not {y.dtype}")
    n_classes = model.output_tensor.num_elements
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise FqtError(f"{path}: labels must lie in [0, {n_classes})")
    return x.reshape((-1, *t.shape)), y.astype(np.int64)


def run_train(args: argparse.Namespace) -> int:
    model = load_model(args.model)
    if Path(args.model).suffix != ".tflite":
        raise FqtError(f"{args.model}: train needs the source .tflite (to export it again)")
    xs, ys = read_dataset(args.data, model)
    val = None
    if args.val:
        val = read_dataset(args.val, model)
    elif args.val_split:
        if not 0.0 < args.val_split < 1.0:
            raise FqtError("--val-split must lie in (0, 1)")
        idx = np.random.default_rng(args.seed).permutation(len(xs))
        n_val = max(1, round(len(xs) * args.val_split))
        val = (xs[idx[:n_val]], ys[idx[:n_val]])
        xs, ys = xs[idx[n_val:]], ys[idx[n_val:]]
    try:
        trainable = parse_trainable(model, args.trainable)
    except ValueError as e:
        raise FqtError(str(e)) from None
    if args.epochs < 0 or args.batch < 1 or args.lr <= 0 or not 0 <= args.lambda_min <= 1:
        raise FqtError("need epochs >= 0, batch >= 1, lr > 0 and 0 <= lambda-min <= 1")
    config = TrainConfig(
        lr=args.lr,
        batch=args.batch,
        lambda_min=args.lambda_min,
        alpha_norm=args.alpha_norm,
        stochastic_rounding=args.rounding == "stochastic",
        error_scaling=args.error_scaling,
        seed=args.seed,
    )
    trainer: Trainer | NativeTrainer
    try:
        if args.engine == "native":
            trainer = NativeTrainer(model, trainable, config)
        else:
            trainer = Trainer(model, trainable, config)
    except ValueError as e:
        raise FqtError(str(e)) from None
    before = trainer.evaluate(*val)[0] if val else None
    if not args.json and before is not None:
        print(f"before: val accuracy {before:.2%}")

    log = TrainLog(
        {"model": Path(args.model).stem, "board": args.board or "host", "engine": args.engine,
         "epochs": args.epochs, "lr": args.lr, "batch": args.batch,
         "lambda_min": args.lambda_min, "trainable": ",".join(map(str, trainer.trainable)),
         "samples": len(xs)}
    )  # fmt: skip
    stem = str(Path(args.output).with_suffix(""))
    if args.log is None:
        args.log = f"{stem}_log.csv"
    if args.plot is None:
        args.plot = f"{stem}_log.png"
    history = _epochs(trainer, xs, ys, val, args, log)
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
        "val_accuracy_before": before,
        "val_accuracy_after": history[-1].val_accuracy if history else before,
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
        print(f"trained model -> {args.output}")
        if written:
            print(f"log -> {', '.join(written)}")
    return 0


def _epochs(
    trainer: Trainer | NativeTrainer,
    xs: np.ndarray,
    ys: np.ndarray,
    val: tuple[np.ndarray, np.ndarray] | None,
    args: argparse.Namespace,
    log: TrainLog,
) -> list[EpochResult]:
    """Trainer.run_epochs (the same sample order, the same updates) in steps of
    --log-every samples, with a progress bar and a log row per step and per epoch."""
    import time

    every = max(1, args.log_every)
    n = len(xs)
    order_rng = np.random.default_rng(trainer.config.seed)
    history: list[EpochResult] = []
    t0 = time.monotonic()
    if val is not None:
        acc, loss = trainer.evaluate(*val)
        log.add("start", epoch=0, sample=0, epoch_samples=n, samples_seen=0,
                val_loss=loss, val_accuracy=acc, time_s=0.0)  # fmt: skip
    with progress.bar(args.epochs * n, f"train ({args.engine})", "samples", args.json) as bar:
        for ep in range(1, args.epochs + 1):
            idx = order_rng.permutation(n)
            xe, ye = xs[idx], ys[idx]
            loss_sum, correct = 0.0, 0
            for i in range(0, n, every):
                step_loss, pred = trainer.train_step(xe[i : i + every], ye[i : i + every])
                loss_sum += float(step_loss.sum())
                correct += int(np.sum(pred == ye[i : i + every]))
                done = min(i + every, n)
                if done < n:
                    log.add("progress", epoch=ep, sample=done, epoch_samples=n,
                            samples_seen=(ep - 1) * n + done, loss=loss_sum / done,
                            accuracy=correct / done, time_s=time.monotonic() - t0)  # fmt: skip
                bar.update_to((ep - 1) * n + done, loss=f"{loss_sum / done:.4f}")
            trainer.flush()
            r = EpochResult(ep, loss_sum / max(n, 1), correct / max(n, 1))
            val_loss = None
            if val is not None:
                r.val_accuracy, val_loss = trainer.evaluate(*val)
            log.add("epoch", epoch=ep, sample=n, epoch_samples=n, samples_seen=ep * n,
                    loss=r.loss, accuracy=r.train_accuracy, val_loss=val_loss,
                    val_accuracy=r.val_accuracy, time_s=time.monotonic() - t0)  # fmt: skip
            history.append(r)
            if not args.json:
                v = f", val accuracy {r.val_accuracy:.2%}" if r.val_accuracy is not None else ""
                tacc = f"train accuracy {r.train_accuracy:.2%}"
                bar.write(f"epoch {ep}: loss {r.loss:.4f}, {tacc}{v}")
    return history
