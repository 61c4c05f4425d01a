"""The device commands of `fqt` (push, train-device, export, device-eval): the board, or
the host device, over its shell (fqt.device's client)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from .. import progress
from ..blob import read_blob
from ..config import resolve_port
from ..device import Device
from ..errors import FqtError
from ..export import write_tflite
from ..quant import quantize_input
from .checks import float_range, input_file, int_range, output_file
from .common import load_model


def _add_port(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--port",
        default=None,
        help="serial device (pyserial), a pty path (`fqt device serve` writes one), or "
        "cmd:<command line> (e.g. cmd:'build/host/fqt_host_device --model m.fqtb'); "
        "default: fqt.toml's port, else the one serial port autodetected",
    )
    p.add_argument("--baud", type=int_range(1), default=115200, help="serial baud rate")
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
    port = resolve_port(args.port)
    return Device.open(port, timeout=args.timeout, baud=args.baud, chunk=args.chunk)


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
        x = quantize_input(x, t.quant.scale[0], t.quant.zero_point[0])
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
    p.add_argument("--json", action="store_true", help="print a summary as JSON")


def check_files(args: argparse.Namespace) -> None:
    """The files a device command reads or writes, before the device is opened."""
    if getattr(args, "data", None):
        input_file(args.data, "npz")
    if getattr(args, "model", None):
        input_file(args.model, "model")
    for opt in ("log", "plot"):
        if getattr(args, opt, None):
            output_file(getattr(args, opt), f"--{opt}")


def run_push(args: argparse.Namespace) -> int:
    check_files(args)
    with _open(args) as dev:
        x, y = _device_dataset(args.data, dev.info(), args.model)
        if args.limit is not None:
            x, y = x[: args.limit], y[: args.limit]
        if args.clear:
            dev.command("data", "clear")
        with progress.bar(len(y) * (2 + x.shape[1]), "push", "B", args.json) as bar:
            count = dev.push_samples(x, y, progress=bar.callback())
    if args.json:
        print(json.dumps({"pushed": len(y), "samples": count}))
    else:
        print(f"pushed {len(y)} samples: the device holds {count}")
    return 0


# --- device-eval ------------------------------------------------------------------------
def add_device_eval_arguments(p: argparse.ArgumentParser) -> None:
    _add_port(p)
    p.add_argument("--data", help=".npz to push first (replacing the device's samples)")
    p.add_argument("--model", help="the model's .tflite/.fqtb (to quantize float x)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def run_device_eval(args: argparse.Namespace) -> int:
    check_files(args)
    with _open(args) as dev:
        if args.data:
            x, y = _device_dataset(args.data, dev.info(), args.model)
            dev.command("data", "clear")
            with progress.bar(len(y) * (2 + x.shape[1]), "push", "B", args.json) as bar:
                dev.push_samples(x, y, progress=bar.callback())
        n, correct = dev.eval()
    acc = correct / n if n else 0.0
    if args.json:
        print(json.dumps({"samples": n, "correct": correct, "accuracy": acc}))
    else:
        print(f"device eval: {correct}/{n} correct, accuracy {acc:.2%}")
    return 0


# --- train-device: fqt.commands.train_device -----------------------------------------
def _kv(line: str) -> dict[str, str]:
    w = line.split()
    return {w[i]: w[i + 1] for i in range(len(w) - 1)}


# --- export -----------------------------------------------------------------------------
def add_export_arguments(p: argparse.ArgumentParser) -> None:
    _add_port(p)
    p.add_argument("-o", "--output", required=True, help=".tflite (needs --source) or .fqtb")
    p.add_argument("--source", help="the original .tflite the device's model came from")
    p.add_argument(
        "--check", metavar="NPZ", help="run the first --check-count inputs of this .npz on "
        "the device and through the exported .tflite in TFLM, and compare the outputs",
    )  # fmt: skip
    p.add_argument("--check-count", type=int, default=20, help="inputs --check compares")
    p.add_argument("--json", action="store_true", help="print a summary as JSON")


def run_export(args: argparse.Namespace) -> int:
    out = output_file(args.output)
    if out.suffix == ".tflite":
        if not args.source:
            raise FqtError("a .tflite output needs --source (the original .tflite)")
        input_file(args.source, "tflite")
    if args.check and out.suffix != ".tflite":
        raise FqtError("--check needs a .tflite output")
    with _open(args) as dev:
        with progress.bar(0, "export", "B", args.json) as bar:
            blob = dev.pull_blob(progress=bar.callback())
        xs: np.ndarray = np.zeros((0, 0), np.int8)
        device_out = []
        if args.check:
            xs = _device_dataset(args.check, dev.info(), args.source)[0][: args.check_count]
            device_out = [dev.predict_input(x)[1] for x in xs]
    summary: dict[str, object] = {"output": str(out), "blob_bytes": len(blob)}
    if out.suffix == ".tflite":
        model, _ = read_blob(blob)
        write_tflite(model, args.source, out)
        text = f"pulled {len(blob):,} B blob -> {out} (weights patched into {args.source})"
    else:
        out.write_bytes(blob)
        text = f"pulled {len(blob):,} B blob -> {out}"
    if args.check:
        same = tflm_equals(out, xs, device_out)
        summary.update(checked=len(xs), tflm_equal=same)
        text += f"; TFLM's outputs equal the device's on {len(xs)} inputs: {same}"
        if not same:
            raise FqtError(f"{text}: the exported model differs from the device")
    print(json.dumps(summary) if args.json else text)
    return 0


def tflm_equals(tflite: Path, xs: np.ndarray, device_out: list[np.ndarray]) -> bool:
    """Whether TFLM's int8 outputs for xs equal the device's."""
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError:
        raise FqtError("--check needs TFLM: pip install tflite-micro") from None
    interp = runtime.Interpreter.from_bytes(tflite.read_bytes())
    shape = interp.get_input_details(0)["shape"]
    for x, want in zip(xs, device_out, strict=True):
        interp.set_input(x.reshape(shape), 0)
        interp.invoke()
        if not np.array_equal(interp.get_output(0).reshape(-1), want.reshape(-1)):
            return False
    return True
