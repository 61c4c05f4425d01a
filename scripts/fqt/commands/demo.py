"""`fqt demo`: the README's main job, on the embedded default that needs no board: the host
device (fqt_host_device, the same portable service a board runs) behind the same client the
west commands use.

import a model the project makes -> push sklearn's digits -> eval -> train on the device
-> eval -> export the .tflite -> check it in TFLM.

The default model is package data and the host device is found as fqt.resources says
($FQT_HOST_DEVICE, else fqt/_native/), so the demo runs from an installed wheel.
"""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

import numpy as np

from ..blob import read_blob, write_blob
from ..demo import digits_split, reinit_head
from ..device import Device
from ..errors import FqtError
from ..export import export_tflite
from ..golden.interpreter import infer_batch
from ..plan import plan_memory
from ..prepare import prepare
from ..resources import DEFAULT_MODEL, host_device_path, missing_binary
from ..tflite_import import load_tflite
from .checks import float_range, input_file, int_range, output_dir
from .common import check_fit, format_table


def add_demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=str(DEFAULT_MODEL), help="int8 .tflite (digits 8x8)")
    p.add_argument("--board", default="qemu_cortex_m3", help="check the plan fits this board")
    p.add_argument("-o", "--output-dir", default="build/demo")
    p.add_argument("--epochs", type=int_range(1, 1000), default=10)
    p.add_argument("--lr", type=float_range(0.000001, 1.0), default=0.003)
    p.add_argument("--batch", type=int_range(1, 1024), default=32)
    p.add_argument("--lambda-min", type=float_range(0.0, 1.0), default=1.0)
    p.add_argument("--seed", type=int_range(0, 2**32 - 1), default=1)
    p.add_argument("--host-device", default=str(host_device_path()), help="fqt_host_device binary")


def run_demo(args: argparse.Namespace) -> int:
    input_file(args.model, "tflite")
    out = output_dir(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    source = Path(args.model).read_bytes()
    model = load_tflite(args.model)
    head = reinit_head(model, args.seed)
    prepare(model)
    trainable = {head}
    plan = plan_memory(model, trainable)
    print(
        f"== import {args.model} (classifier head, layer {head}, re-initialized, seed {args.seed})"
    )
    print(format_table(model, plan))
    check_fit(plan, args.board)
    print(f"fits {args.board}'s devicetree pools")
    blob = write_blob(model, trainable)
    (out / "model.fqtb").write_bytes(blob)

    if not Path(args.host_device).is_file():
        raise missing_binary(args.host_device, "the host device")
    x_tr, y_tr, x_te, y_te = digits_split(model)
    record = 2 + x_tr[0].size
    command = shlex.join(
        [args.host_device, "--model", str(out / "model.fqtb"),
         "--arena", str(plan.training_arena), "--params", str(plan.training_params),
         "--samples", str(record * len(x_tr)), "--flash", str(out / "flash.bin"),
         "--progress-ms", "2000"]
    )  # fmt: skip
    print(f"== host device: {command}")
    with Device.open(f"cmd:{command}", timeout=30) as dev:
        info = dev.info()
        print(
            f"device: model {info['name']}, arena {info['arena_used']}/{info['arena_size']} B, "
            f"trainer {info['trainer']}"
        )
        dev.command("data", "clear")
        dev.push_samples(x_te, y_te)
        n, correct = dev.eval()
        before = correct / n
        print(f"accuracy before training: {before:.2%} ({correct}/{n} held-out digits)")

        dev.command("data", "clear")
        dev.push_samples(x_tr, y_tr)
        t0 = time.perf_counter()
        dev.command(
            "train", "start", args.epochs, args.lr, args.batch, args.lambda_min, args.seed,
            ",".join(str(i) for i in sorted(trainable)),
        )  # fmt: skip
        for line in dev.events_until(("done train",), timeout=3600):
            if line.startswith(("epoch ", "done ")):
                print(f"device: {line}")
        seconds = time.perf_counter() - t0
        per_sample_ms = 1000 * seconds / (args.epochs * len(x_tr))

        dev.command("data", "clear")
        dev.push_samples(x_te, y_te)
        n, correct = dev.eval()
        after = correct / n
        print(f"accuracy after training:  {after:.2%} ({correct}/{n} held-out digits)")
        trained_blob = dev.pull_blob()
        device_outputs = np.stack([dev.predict(i)[1] for i in range(20)])

    trained, _ = read_blob(trained_blob)
    tflite_bytes = export_tflite(trained, source)
    (out / "trained.tflite").write_bytes(tflite_bytes)
    from tflite_micro.python.tflite_micro import runtime

    tflm = runtime.Interpreter.from_bytes(tflite_bytes)
    tflm_outputs = []
    for x in x_te[:20]:
        tflm.set_input(x.reshape(model.input_tensor.shape), 0)
        tflm.invoke()
        tflm_outputs.append(tflm.get_output(0).reshape(-1))
    same = np.array_equal(np.stack(tflm_outputs), device_outputs.reshape(20, -1))
    golden_same = np.array_equal(
        infer_batch(trained, x_te[:20]).reshape(20, -1), device_outputs.reshape(20, -1)
    )
    print(f"exported {out / 'trained.tflite'}: TFLM outputs equal the device's: {same}")
    print(
        f"summary: accuracy {before:.2%} -> {after:.2%}; peak training RAM "
        f"{plan.training_total:,} B (arena {plan.training_arena:,} + params "
        f"{plan.training_params:,}); {per_sample_ms:.3f} ms per training sample on the host device"
    )
    if not (same and golden_same):
        raise FqtError("the exported model's outputs differ from the device's")
    return 0
