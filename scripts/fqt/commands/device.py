"""The device commands of `fqt` (push, train-device, export, device-eval): the board, or
the host device, over its shell (fqt.device's client)."""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time

import numpy as np

from ..blob import read_blob
from ..device import Device
from ..errors import FqtError
from ..export import write_tflite
from .checks import float_range, input_file, int_range, output_file
from .common import load_model


def _add_port(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--port",
        required=True,
        help="serial device (pyserial), a pty path, or cmd:<command line> "
        "(e.g. cmd:'build/host/fqt_host_device --model m.fqtb', cmd:'west build -t run')",
    )
    p.add_argument("--baud", type=int_range(1), default=115200)
    p.add_argument(
        "--timeout",
        type=float_range(0.0, 1e6, lo_open=True),
        default=5.0,
        help="seconds to wait for an answer",
    )
    p.add_argument(
        "--chunk", type=int_range(1, 128), default=96, help="payload bytes a frame (<= 128)"
    )


def _open(args: argparse.Namespace) -> Device:
    if not 1 <= args.chunk <= 128:
        raise FqtError("--chunk must lie in [1, 128]")
    return Device.open(args.port, timeout=args.timeout, baud=args.baud, chunk=args.chunk)


def _progress_bar(label: str):
    def show(done: int, total: int) -> None:
        if not sys.stderr.isatty():
            return
        n = 30 * done // max(total, 1)
        sys.stderr.write(f"\r{label} [{'#' * n}{'.' * (30 - n)}] {done:,}/{total:,} B")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def _device_dataset(path: str, info: dict[str, str], model_path: str | None):
    """x (int8, n x input_bytes) and y from an .npz, checked against the device's model."""
    try:
        with np.load(path, allow_pickle=False) as d:
            x, y = d["x"], d["y"]
    except (OSError, ValueError, KeyError) as e:
        raise FqtError(f"{path}: cannot read a dataset with x and y: {e}") from None
    if info.get("name", "-") == "-":
        raise FqtError("the device has no model loaded: push a blob or `fqt load builtin`")
    in_bytes, classes = int(info["input_bytes"]), int(info["classes"])
    if x.size != len(y) * in_bytes:
        raise FqtError(
            f"{path}: x {x.shape} is not {len(y)} inputs of {in_bytes} values "
            f"(the device model '{info['name']}')"
        )
    if x.dtype.kind == "f":
        if model_path is None:
            raise FqtError(f"{path}: float x needs --model (its input quantization)")
        t = load_model(model_path).input_tensor
        if t.num_elements != in_bytes:
            raise FqtError(f"--model {model_path} does not match the device's model")
        x = np.clip(np.round(x / t.quant.scale[0]) + t.quant.zero_point[0], -128, 127)
        x = x.astype(np.int8)
    elif x.dtype != np.int8:
        raise FqtError(f"{path}: x dtype {x.dtype}; give int8 samples or float ones")
    if y.dtype.kind not in "iu":
        raise FqtError(f"{path}: y must hold integer labels, not {y.dtype}")
    if len(y) and (y.min() < 0 or y.max() >= classes):
        raise FqtError(f"{path}: labels must lie in [0, {classes})")
    return x.reshape(len(y), in_bytes), y.astype(np.int64)


# --- push -------------------------------------------------------------------------------
def add_push_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help=".npz with x (int8, or float with --model) and y (labels)")
    _add_port(p)
    p.add_argument("--model", help="the .tflite/.fqtb on the device (to quantize float x)")
    p.add_argument("--clear", action="store_true", help="empty the device's store first")
    p.add_argument("--limit", type=int_range(1), help="push only the first N samples")


def _check_files(args: argparse.Namespace) -> None:
    """The files a device command reads or writes, before the device is opened."""
    if getattr(args, "data", None):
        input_file(args.data, "npz")
    if getattr(args, "model", None):
        input_file(args.model, "model")
    for opt in ("log", "plot"):
        if getattr(args, opt, None):
            output_file(getattr(args, opt), f"--{opt}")


def run_push(args: argparse.Namespace) -> int:
    _check_files(args)
    with _open(args) as dev:
        x, y = _device_dataset(args.data, dev.info(), args.model)
        if args.limit is not None:
            x, y = x[: args.limit], y[: args.limit]
        if args.clear:
            dev.command("data", "clear")
        count = dev.push_samples(x, y, progress=_progress_bar("push"))
        print(f"pushed {len(y)} samples: the device holds {count}")
    return 0


# --- device-eval ------------------------------------------------------------------------
def add_device_eval_arguments(p: argparse.ArgumentParser) -> None:
    _add_port(p)
    p.add_argument("--data", help=".npz to push first (replacing the device's samples)")
    p.add_argument("--model", help="the model's .tflite/.fqtb (to quantize float x)")
    p.add_argument("--json", action="store_true")


def run_device_eval(args: argparse.Namespace) -> int:
    _check_files(args)
    with _open(args) as dev:
        if args.data:
            x, y = _device_dataset(args.data, dev.info(), args.model)
            dev.command("data", "clear")
            dev.push_samples(x, y, progress=_progress_bar("push"))
        n, correct = dev.eval()
    acc = correct / n if n else 0.0
    if args.json:
        print(json.dumps({"samples": n, "correct": correct, "accuracy": acc}))
    else:
        print(f"device eval: {correct}/{n} correct, accuracy {acc:.2%}")
    return 0


# --- train-device -----------------------------------------------------------------------
def add_train_device_arguments(p: argparse.ArgumentParser) -> None:
    _add_port(p)
    p.add_argument("--data", help=".npz to push first (replacing the device's samples)")
    p.add_argument("--model", help="the model's .tflite/.fqtb (to quantize float x)")
    # The device's ranges (docs/protocol.md, `fqt train start`).
    p.add_argument("--epochs", type=int_range(1, 1000), default=5)
    p.add_argument("--lr", type=float_range(0.000001, 1.0), default=0.003)
    p.add_argument("--batch", type=int_range(1, 1024), default=32)
    p.add_argument("--lambda-min", type=float_range(0.0, 1.0), default=1.0)
    p.add_argument("--seed", type=int_range(0, 2**32 - 1), default=0)
    p.add_argument("--trainable", default="last", help="'last', 'all' or indices i,j,...")
    p.add_argument("--log", default="train_log.csv", help="CSV of the progress lines")
    p.add_argument("--plot", default="train_log.png", help="PNG of loss and accuracy")
    p.add_argument("--progress-timeout", type=float_range(0.0, 1e6, lo_open=True), default=120.0)


def _kv(line: str) -> dict[str, str]:
    w = line.split()
    return {w[i]: w[i + 1] for i in range(len(w) - 1)}


def run_train_device(args: argparse.Namespace) -> int:
    _check_files(args)
    rows: list[dict[str, float]] = []
    interrupted = False
    with _open(args) as dev:
        started = False
        try:
            if args.data:
                x, y = _device_dataset(args.data, dev.info(), args.model)
                dev.command("data", "clear")
                dev.push_samples(x, y, progress=_progress_bar("push"))
            started = True  # from here on a Ctrl-C may find the job running
            dev.command(
                "train",
                "start",
                args.epochs,
                f"{args.lr:.6f}",
                args.batch,
                f"{args.lambda_min:.6f}",
                args.seed,
                args.trainable,
            )
            t0 = time.monotonic()
            for line in dev.events_until(("done train",), args.progress_timeout):
                kv = _kv(line)
                if line.startswith(("progress train", "epoch ")):
                    ep = kv.get("epoch", "0").split("/")[0]
                    try:
                        row = {
                            "time_s": round(time.monotonic() - t0, 3),
                            "epoch": float(ep),
                            "loss": float(kv.get("loss", "nan")),
                            "accuracy": float(kv.get("acc", "nan%").rstrip("%")) / 100,
                            "end_of_epoch": float(line.startswith("epoch ")),
                        }
                    except ValueError:  # a line garbled on the way: not logged
                        row = None
                    if row is not None:
                        rows.append(row)
                print(line)
                if line.startswith("done train failed"):
                    raise FqtError(line)
        except KeyboardInterrupt:
            interrupted = True
            if not started:
                print("interrupted before training started: the push was not committed")
                return 130
            try:
                dev.command("train", "stop")
                print("stopped: `fqt train stop` sent")
            except FqtError as e:  # e.g. a cmd: device in the terminal's group got it too
                print(f"interrupted: `fqt train stop` got no answer ({e})")
    if rows:
        with open(args.log, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        _plot(rows, args.plot)
        print(f"log -> {args.log}, plot -> {args.plot}")
    return 130 if interrupted else 0


def _plot(rows: list[dict[str, float]], path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot")
        return
    t = [r["time_s"] for r in rows]
    fig, ax = plt.subplots(2, 1, sharex=True, figsize=(6, 5))
    ax[0].plot(t, [r["loss"] for r in rows])
    ax[0].set_ylabel("loss")
    ax[1].plot(t, [r["accuracy"] for r in rows])
    ax[1].set_ylabel("train accuracy")
    ax[1].set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# --- export -----------------------------------------------------------------------------
def add_export_arguments(p: argparse.ArgumentParser) -> None:
    _add_port(p)
    p.add_argument("-o", "--output", required=True, help=".tflite (needs --source) or .fqtb")
    p.add_argument("--source", help="the original .tflite the device's model came from")


def run_export(args: argparse.Namespace) -> int:
    out = output_file(args.output)
    if out.suffix == ".tflite":
        if not args.source:
            raise FqtError("a .tflite output needs --source (the original .tflite)")
        input_file(args.source, "tflite")
    with _open(args) as dev:
        blob = dev.pull_blob()
    if out.suffix == ".tflite":
        model, _ = read_blob(blob)
        write_tflite(model, args.source, out)
        print(f"pulled {len(blob):,} B blob -> {out} (weights patched into {args.source})")
    else:
        out.write_bytes(blob)
        print(f"pulled {len(blob):,} B blob -> {out}")
    return 0
