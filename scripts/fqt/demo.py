"""The README's main job, on the embedded default that needs no board: the host device
(fqt_host_device, the same portable service a board runs) behind the same client the
west commands use.

import a model the project makes -> push sklearn's digits -> eval -> train on the device
-> eval -> export the .tflite -> check it in TFLM.
"""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

import numpy as np

from .blob import write_blob
from .cli import DEFAULT_MODEL, REPO_ROOT, check_fit, format_table
from .device import Device
from .errors import FqtError
from .export import export_tflite
from .ir import Model, OpType
from .plan import plan_memory
from .prepare import prepare
from .tflite_import import load_tflite

HOST_DEVICE = REPO_ROOT / "build" / "host" / "fqt_host_device"


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
        v = np.round(x / t.quant.scale[0]) + t.quant.zero_point[0]
        return np.clip(v, -128, 127).astype(np.int8).reshape((-1, *t.shape[1:]))

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


def add_demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=str(DEFAULT_MODEL), help="int8 .tflite (digits 8x8)")
    p.add_argument("--board", default="qemu_cortex_m3", help="check the plan fits this board")
    p.add_argument("-o", "--output-dir", default="build/demo")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lr", type=float, default=0.003)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lambda-min", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--host-device", default=str(HOST_DEVICE), help="fqt_host_device binary")


def run_demo(args: argparse.Namespace) -> int:
    from .golden.interpreter import infer_batch

    out = Path(args.output_dir)
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
        raise FqtError(f"{args.host_device} is missing: build it with `bash setup.sh`")
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

    from .blob import read_blob

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
