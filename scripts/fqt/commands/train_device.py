"""`fqt train-device` (west fqt-train): train on the device with a live progress bar, a
clean CSV log and a PNG (fqt.trainlog).

With a validation set (--val, or --val-split of --data) the device trains one epoch per
job and, between jobs, the host pulls the model and evaluates it on the validation set
(the native engine where it is built): the same weights the device has, so the curve is
the device's. The device's trainer restarts each epoch (its seed is --seed + epoch - 1);
with plain SGD and lambda_min 1 that only changes the sample order.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from .. import progress
from ..blob import read_blob
from ..device import Device
from ..errors import FqtError
from ..golden.schedule import scheduled_lr
from ..golden.trainer import TrainConfig
from ..golden.update import DEFAULT_LR, UPDATE_RULES
from ..plan import parse_trainable
from ..trainlog import TrainLog
from .checks import float_range, int_range
from .common import load_model
from .device import _add_port, _device_dataset, _kv, _open, check_files

DEVICE_SCHEDULES = ("cosine", "constant")  # what `train start` takes


def add_train_device_arguments(p: argparse.ArgumentParser) -> None:
    _add_port(p)
    p.add_argument("--data", help=".npz to push first (replacing the device's samples)")
    p.add_argument("--model", help="the model's .tflite/.fqtb (float x; names in the title)")
    # The device's ranges (docs/protocol.md, `fqt train start`).
    p.add_argument("--epochs", type=int_range(1, 1000), default=5, help="epochs")
    p.add_argument(
        "--lr", type=float_range(0.000001, 1.0), default=None,
        help="learning rate (default 0.3 for sgd, 0.003 for standardized)",
    )  # fmt: skip
    p.add_argument(
        "--update", choices=UPDATE_RULES, default="sgd",
        help="weight update: plain SGD on the batch-mean gradient, or the paper's standardization",
    )  # fmt: skip
    p.add_argument("--schedule", choices=DEVICE_SCHEDULES, default="cosine", help="lr per epoch")
    p.add_argument("--batch", type=int_range(1, 1024), default=32, help="mini-batch size")
    p.add_argument(
        "--lambda-min", type=float_range(0.0, 1.0), default=1.0, help="partial updates: 1.0 = off"
    )
    p.add_argument(
        "--seed", type=int_range(0, 2**32 - 1), default=0, help="the device trainer's seed"
    )
    p.add_argument(
        "--trainable", nargs="+", default=["last"], metavar="LAYER",
        help="trainable layers: 'last', 'last:N', 'all' or indices (as fqt train)",
    )  # fmt: skip
    p.add_argument(
        "--memory", choices=("default", "lean"), default="default",
        help="the device trainer's memory plan (docs/memory-plan.md; lean: less arena)",
    )  # fmt: skip
    p.add_argument(
        "--partial-mode", choices=("dynamic", "fixed"), default="dynamic",
        help="partial updates: the kept fraction follows the loss, or a fixed lambda_min",
    )  # fmt: skip
    p.add_argument(
        "--grad-state", choices=("int32", "int16", "int8"), default="int32",
        help="the device's mini-batch gradient accumulator per weight (int16 / int8: less "
        "params RAM, docs/training-semantics.md 4.1)",
    )  # fmt: skip
    val = p.add_mutually_exclusive_group()
    val.add_argument("--val", help=".npz validation set, evaluated on the host after each epoch")
    val.add_argument(
        "--val-split",
        type=float_range(0.0, 1.0, lo_open=True),
        help="hold out this fraction of --data for it",
    )
    p.add_argument("--log", default="train_log.csv", help="CSV of the progress lines")
    p.add_argument("--plot", default="train_log.png", help="PNG of loss and accuracy")
    p.add_argument("--board", help="the board's name for the plot's title")
    p.add_argument(
        "--progress-timeout",
        type=float_range(0.0, 1e6, lo_open=True),
        default=120.0,
        help="seconds without news",
    )
    p.add_argument("--json", action="store_true", help="print a summary as JSON")


def device_trainable(dev: Device, spec: list[str], model_path: str | None) -> str:
    """The device's trainable argument (`last`, `all` or `i,j`) for the one --trainable
    grammar: 'last:N' and the like are resolved against the model (--model, else the
    model pulled from the device)."""
    words = ",".join(spec).split(",")
    if words in (["last"], ["all"]):
        return words[0]
    model = load_model(model_path) if model_path else read_blob(dev.pull_blob())[0]
    try:
        chosen = parse_trainable(model, spec)
    except ValueError as e:
        raise FqtError(str(e)) from None
    if not chosen:
        raise FqtError("--trainable selects no layer: nothing to train")
    return ",".join(str(i) for i in sorted(chosen))


def evaluate_blob(blob: bytes, xs: np.ndarray, ys: np.ndarray) -> tuple[float, float]:
    """(accuracy, mean loss) of a device's model on the host, as the trainers report it."""
    model, _ = read_blob(blob)
    try:
        from ..native import NativeTrainer

        return NativeTrainer(model, None, TrainConfig()).evaluate(xs, ys)
    except FqtError:
        from ..golden.trainer import Trainer

        return Trainer(model, None, TrainConfig()).evaluate(xs, ys)


def run_train_device(args: argparse.Namespace) -> int:
    check_files(args)
    if args.lr is None:
        args.lr = DEFAULT_LR[args.update]
    if getattr(args, "val", None):
        check_files(argparse.Namespace(data=args.val))
    log = TrainLog()
    started = stopped = False
    val: tuple[np.ndarray, np.ndarray] | None = None
    with _open(args) as dev:
        try:
            info = dev.info()
            if args.data:
                x, y = _device_dataset(args.data, info, args.model)
                if args.val_split:
                    if not 0.0 < args.val_split < 1.0:
                        raise FqtError("--val-split must lie in (0, 1)")
                    idx = np.random.default_rng(args.seed).permutation(len(y))
                    n_val = max(1, round(len(y) * args.val_split))
                    val = (x[idx[:n_val]], y[idx[:n_val]])
                    x, y = x[idx[n_val:]], y[idx[n_val:]]
                dev.command("data", "clear")
                with progress.bar(len(y) * (2 + x.shape[1]), "push", "B", args.json) as bar:
                    dev.push_samples(x, y, progress=bar.callback())
            elif args.val_split:
                raise FqtError("--val-split needs --data")
            if args.val:
                val = _device_dataset(args.val, info, args.model)
            info = dev.info()
            n = int(info.get("samples", "0"))
            if n == 0:
                raise FqtError("the device's sample store is empty: give --data or fqt push")
            trainable = device_trainable(dev, args.trainable, args.model)
            log.meta = {
                "model": info.get("name"), "board": args.board or "device", "engine": "device",
                "epochs": args.epochs, "lr": args.lr, "update": args.update,
                "schedule": args.schedule, "batch": args.batch,
                "lambda_min": args.lambda_min, "trainable": trainable, "samples": n,
                "grad_state": args.grad_state,
            }  # fmt: skip
            t0 = time.monotonic()
            pending: dict[str, object] = {}
            if val is not None:
                acc, loss = evaluate_blob(dev.pull_blob(), *val)
                log.add("start", epoch=0, sample=0, epoch_samples=n, samples_seen=0,
                        val_loss=loss, val_accuracy=acc, time_s=0.0)  # fmt: skip
            per_epoch = [(e, 1) for e in range(1, args.epochs + 1)]
            jobs = [(1, args.epochs)] if val is None else per_epoch
            started = True  # from here on a Ctrl-C may find the job running
            # Without a bar (not a terminal) the device's own lines are the live log.
            echo = not args.json and not progress.enabled()
            with progress.bar(args.epochs * n, "train", "samples", args.json) as bar:
                for first, count in jobs:
                    # One job: the device runs the schedule itself. A job per epoch (for the
                    # host's validation): the host's lr of that epoch, held constant.
                    lr, schedule = args.lr, args.schedule
                    if count < args.epochs:
                        lr = scheduled_lr(args.lr, schedule, first, args.epochs)
                        schedule = "constant"
                    dev.command(
                        "train", "start", count, f"{max(lr, 1e-6):.6f}", args.batch,
                        f"{args.lambda_min:.6f}", args.seed + first - 1, trainable,
                        args.update, schedule, args.partial_mode, args.grad_state,
                        *(("lean",) if args.memory == "lean" else ()),
                    )  # fmt: skip
                    for line in dev.events_until(("done train",), args.progress_timeout):
                        kv = _kv(line)
                        if line.startswith("done train failed"):
                            raise FqtError(f"the device: {line}")
                        if not line.startswith(("progress train", "epoch ")):
                            if echo:
                                print(line, flush=True)
                            continue
                        end = line.startswith("epoch ")
                        try:
                            ep = first - 1 + int(kv.get("epoch", "1").split("/")[0])
                            s = n if end else int(kv.get("sample", "0").split("/")[0])
                            loss = float(kv.get("loss", "nan"))
                            acc = float(kv.get("acc", "nan%").rstrip("%")) / 100
                        except ValueError:  # a line garbled on the way: not logged
                            continue
                        row: dict[str, object] = {
                            "epoch": ep, "sample": s, "epoch_samples": n,
                            "samples_seen": (ep - 1) * n + s, "loss": loss, "accuracy": acc,
                            "time_s": time.monotonic() - t0,
                        }  # fmt: skip
                        if end and val is None:
                            log.add("epoch", **row)
                        elif not end:
                            log.add("progress", **row)
                        else:
                            pending = row
                        if echo:  # after the row is logged: a Ctrl-C now still finds it
                            print(line, flush=True)
                        bar.update_to((ep - 1) * n + s, loss=f"{row['loss']:.4f}")
                        if end and not args.json and not echo:
                            bar.write(
                                f"epoch {ep}: loss {row['loss']:.4f}, train accuracy "
                                f"{float(row['accuracy']):.2%}"  # type: ignore[arg-type]
                            )
                    if val is not None:
                        acc, loss = evaluate_blob(dev.pull_blob(), *val)
                        log.add("epoch", **pending, val_loss=loss, val_accuracy=acc)
                        if not args.json:
                            bar.write(f"epoch {first}: val loss {loss:.4f}, val accuracy {acc:.2%}")
        except KeyboardInterrupt:
            if not started:
                print("interrupted before training started: the push was not committed")
                return 130
            stopped = True
            try:
                dev.command("train", "stop")
                print("stopped: `fqt train stop` sent")
            except FqtError as e:  # e.g. a cmd: device in the terminal's group got it too
                print(f"interrupted: `fqt train stop` got no answer ({e})")
    written = log.write(args.log, args.plot) if log.rows else []
    epochs = [r for r in log.rows if r["kind"] == "epoch"]
    last = epochs[-1] if epochs else {}
    summary = {
        "epochs": len(epochs), "samples": log.meta.get("samples"), "trainable": log.meta.get(
            "trainable"), "loss": last.get("loss"), "accuracy": last.get("accuracy"),
        "val_accuracy": last.get("val_accuracy") if val is not None else None,
        "log": args.log if args.log in written else None,
        "plot": args.plot if args.plot in written else None, "stopped": stopped,
    }  # fmt: skip
    if args.json:
        print(json.dumps(summary))
    elif written:
        print(f"log -> {', '.join(written)}")
    return 130 if stopped else 0  # an interrupt, after `train stop` was sent
