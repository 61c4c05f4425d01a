"""`fqt demo`: the README's main job, on the embedded default that needs no board: the host
device (fqt_host_device, the same portable service a board runs) behind the same client the
west commands use.

import a model the project makes -> `fqt device serve` (the host device sized from the
board's pools, behind a pty) -> `fqt deploy` -> `fqt push` sklearn's held-out digits ->
`fqt device-eval` -> `fqt train-device` (CSV + PNG) -> `fqt device-eval` -> `fqt export`
checked in TFLM: the README's walkthrough, command for command, in one process.

The default model is package data and the host device is found as fqt.resources says
($FQT_HOST_DEVICE, else fqt/_native/), so the demo runs from an installed wheel.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shlex
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..blob import write_blob
from ..boards import get_board
from ..demo import digits_split, reinit_head
from ..errors import FqtError
from ..plan import plan_memory
from ..prepare import prepare
from ..resources import DEFAULT_MODEL, host_device_path
from ..serve import host_board
from ..tflite_import import load_tflite
from . import board as board_cmds
from . import device, train_device
from .checks import float_range, input_file, int_range, output_dir
from .common import check_fit, format_table


def add_demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=str(DEFAULT_MODEL), help="int8 .tflite (digits 8x8)")
    p.add_argument(
        "--board", default="mps2/an385", help="the emulated board: the plan must fit its pools, "
        "and `fqt device serve` sizes the host device from them",
    )  # fmt: skip
    p.add_argument("-o", "--output-dir", default="build/demo", help="blob, log, plot, .tflite")
    p.add_argument("--epochs", type=int_range(1, 1000), default=10, help="epochs on the device")
    p.add_argument(
        "--lr", type=float_range(0.000001, 1.0), default=0.3,
        help="learning rate (plain SGD, cosine schedule: fqt train-device's defaults)",
    )  # fmt: skip
    p.add_argument("--batch", type=int_range(1, 1024), default=32, help="mini-batch size")
    p.add_argument(
        "--lambda-min", type=float_range(0.0, 1.0), default=1.0, help="partial updates: 1.0 = off"
    )
    p.add_argument(
        "--seed", type=int_range(0, 2**32 - 1), default=1, help="seed of the head and the trainer"
    )
    p.add_argument("--host-device", default=str(host_device_path()), help="fqt_host_device binary")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def _step(
    add: Callable[[argparse.ArgumentParser], None],
    run: Callable[[argparse.Namespace], int],
    argv: list[str],
) -> dict[str, object]:
    """One `fqt` command of the walkthrough, with --json: its parsed JSON output."""
    parser = argparse.ArgumentParser()
    add(parser)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = run(parser.parse_args([*argv, "--json"]))
    if rc:
        raise FqtError(f"`fqt {' '.join(argv)}` exited with status {rc}")
    return json.loads(buf.getvalue().strip().splitlines()[-1])


def run_demo(args: argparse.Namespace) -> int:
    input_file(args.model, "tflite")
    out = output_dir(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)

    def say(line: str) -> None:
        if not args.json:
            print(line, flush=True)

    model = load_tflite(args.model)
    head = reinit_head(model, args.seed)
    prepare(model)
    trainable = {head}
    plan = plan_memory(model, trainable)
    say(f"== import {args.model} (classifier head, layer {head}, re-initialized, seed {args.seed})")
    say(format_table(model, plan))
    check_fit(plan, args.board)
    say(f"fits {args.board}'s devicetree pools")
    blob_path = out / "model.fqtb"
    blob_path.write_bytes(write_blob(model, trainable))
    source = out / "model.tflite"  # export rebuilds the .tflite from this graph
    source.write_bytes(Path(args.model).read_bytes())

    x_tr, y_tr, x_te, y_te = digits_split(model)
    np.savez(out / "train.npz", x=x_tr, y=y_tr)
    np.savez(out / "test.npz", x=x_te, y=y_te)
    board = get_board(args.board)
    emu = host_board(board, None, out / "flash.bin", 200, args.host_device)
    with emu:
        port = emu.port
        say(f"== fqt device serve --board {board.name}: serving on {port}")
        say(f"   host device: {shlex.join(emu.command)}")
        dep = _step(board_cmds.add_deploy_arguments, board_cmds.run_deploy,
                    [str(blob_path), "--port", port])  # fmt: skip
        say(f"== fqt deploy {blob_path}: {dep['blob_bytes']:,} B, crc {dep['blob_crc']}, running")
        pushed = _step(device.add_push_arguments, device.run_push,
                       [str(out / "test.npz"), "--port", port, "--clear"])  # fmt: skip
        say(f"== fqt push test.npz: the device holds {pushed['samples']} held-out digits")
        ev = _step(device.add_device_eval_arguments, device.run_device_eval, ["--port", port])
        before = float(ev["accuracy"])  # type: ignore[arg-type]
        say(f"== fqt device-eval: accuracy before training {before:.2%}")
        say(f"== fqt train-device --data train.npz --val test.npz --epochs {args.epochs}")
        t0 = time.perf_counter()
        tr = _step(
            train_device.add_train_device_arguments, train_device.run_train_device,
            ["--port", port, "--data", str(out / "train.npz"), "--val", str(out / "test.npz"),
             "--epochs", str(args.epochs), "--lr", str(args.lr), "--batch", str(args.batch),
             "--lambda-min", str(args.lambda_min), "--seed", str(args.seed),
             "--trainable", *[str(i) for i in sorted(trainable)], "--board", board.name,
             "--log", str(out / "train_log.csv"), "--plot", str(out / "train_log.png")],
        )  # fmt: skip
        seconds = time.perf_counter() - t0
        say(f"   log {tr['log']}, plot {tr['plot']}")
        ev = _step(device.add_device_eval_arguments, device.run_device_eval,
                   ["--port", port, "--data", str(out / "test.npz")])  # fmt: skip
        after = float(ev["accuracy"])  # type: ignore[arg-type]
        say(f"== fqt device-eval --data test.npz: accuracy after training {after:.2%}")
        exp = _step(device.add_export_arguments, device.run_export,
                    ["--port", port, "-o", str(out / "trained.tflite"), "--source", str(source),
                     "--check", str(out / "test.npz")])  # fmt: skip
        say(f"== fqt export: {exp['output']}: TFLM outputs equal the device's: "
            f"{exp['tflm_equal']} ({exp['checked']} held-out inputs)")  # fmt: skip
    per_sample_ms = 1000 * seconds / max(1, args.epochs * len(x_tr))
    summary = {
        "board": board.name, "port": port, "accuracy_before": before, "accuracy_after": after,
        "training_ram_bytes": plan.training_total, "training_arena_bytes": plan.training_arena,
        "training_params_bytes": plan.training_params, "ms_per_training_sample": per_sample_ms,
        "log": tr["log"], "plot": tr["plot"], "export": exp["output"],
        "tflm_equal": exp["tflm_equal"],
    }  # fmt: skip
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"summary: accuracy {before:.2%} -> {after:.2%}; peak training RAM "
            f"{plan.training_total:,} B (arena {plan.training_arena:,} + params "
            f"{plan.training_params:,}); {per_sample_ms:.3f} ms per training sample on the "
            "host device (wall time, with the validation pulls)"
        )
    return 0
