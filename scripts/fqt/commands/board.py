"""The emulated board and the model deploy: `fqt device serve`, `fqt device ports`,
`fqt deploy`, and `fqt plot` (a training log's PNG)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import zlib
from pathlib import Path
from types import FrameType

from .. import progress
from ..blob import c_identifier, read_blob, write_blob
from ..boards import BOARDS, get_board
from ..config import load_config, serial_candidates
from ..demo import reinit_head
from ..device import XFER_BLOB, DeviceError
from ..errors import FqtError
from ..plan import parse_trainable, plan_memory
from ..prepare import prepare
from ..resources import host_device_path
from ..serve import EmulatedBoard, host_board, qemu_command
from ..tflite_import import load_tflite
from ..trainlog import plot, read_csv
from .common import check_fit, format_table
from .device import _add_port, _open

DEFAULT_SERVE_BOARD = "mps2/an385"


def _emit(args: argparse.Namespace, data: dict[str, object], text: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(data), flush=True)
    else:
        print(text, flush=True)


def import_blob(
    path: str, trainable: list[str] | None, board: str | None = None, reinit: int | None = None
) -> tuple[bytes, str, dict[str, object]]:
    """A .fqtb as it is, or a .tflite imported (prepared, trainable layers marked; with
    `reinit`, its classifier head re-initialized with that seed): (blob, name, summary)."""
    p = Path(path)
    if p.suffix == ".fqtb":
        try:
            blob = p.read_bytes()
        except OSError as e:
            raise FqtError(f"{p}: cannot read: {e.strerror}") from None
        if reinit is not None:
            raise FqtError("--reinit-head needs a .tflite")
        model, _ = read_blob(blob)
        return blob, model.name, {}
    model = load_tflite(p)
    if reinit is not None:
        reinit_head(model, reinit)
    prepare(model)
    try:
        chosen = parse_trainable(model, trainable)
    except ValueError as e:
        raise FqtError(str(e)) from None
    plan = plan_memory(model, chosen)
    if board:
        try:
            check_fit(plan, board)
        except FqtError:
            print(format_table(model, plan), file=sys.stderr)
            raise
    model.name = c_identifier(model.name)
    summary: dict[str, object] = {
        "trainable": sorted(chosen),
        "training_arena_bytes": plan.training_arena,
        "training_params_bytes": plan.training_params,
        "inference_arena_bytes": plan.inference_arena,
    }
    return write_blob(model, chosen), model.name, summary


# --- fqt device serve / ports -----------------------------------------------------------
def add_device_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="device_command", required=True, metavar="{serve,ports}")
    fmt = argparse.ArgumentDefaultsHelpFormatter
    s = sub.add_parser(
        "serve",
        help="an emulated board that stays up behind a pty",
        description="Run the host-device build of the firmware (or, with --qemu, the built "
        "Zephyr app in QEMU) behind a pty sized from the board's devicetree pools; write the "
        "pty's path to --port-file when ready; serve until Ctrl-C or SIGTERM.",
        formatter_class=fmt,
    )
    src = s.add_mutually_exclusive_group()
    src.add_argument("--model", help="a .tflite to import and load at start (the built-in model)")
    src.add_argument("--blob", help="a .fqtb to load at start (the built-in model)")
    s.add_argument(
        "--trainable", nargs="+", metavar="LAYER", help="with --model: 'last', 'last:N', 'all' "
        "or indices (default: last)",
    )  # fmt: skip
    s.add_argument(
        "--reinit-head", type=int, metavar="SEED", help="with --model: re-initialize the "
        "classifier head with this seed (the device then learns it)",
    )  # fmt: skip
    s.add_argument(
        "--board", default=None, help=f"size the device like this board ({', '.join(BOARDS)}); "
        f"default: fqt.toml's board, else {DEFAULT_SERVE_BOARD}",
    )  # fmt: skip
    s.add_argument("--port-file", help="write the port (the pty path) here once ready")
    s.add_argument("--flash", help="file standing in for the flash slots (default: a temp file)")
    s.add_argument("--progress-ms", type=int, default=1000, help="interval of progress lines")
    s.add_argument("--host-device", default=str(host_device_path()), help="fqt_host_device")
    s.add_argument(
        "--qemu", metavar="BUILD_DIR", help="run BUILD_DIR/zephyr/zephyr.elf in qemu-system-arm "
        "instead (a Zephyr build of app/ for qemu_cortex_m3 or mps2/an385)",
    )  # fmt: skip
    s.add_argument("--json", action="store_true", help="print the ready line as JSON")
    s.set_defaults(device_run=run_serve)
    ports = sub.add_parser(
        "ports", help="list the serial ports autodetection considers", formatter_class=fmt
    )
    ports.add_argument("--json", action="store_true", help="print the list as JSON")
    ports.set_defaults(device_run=run_ports)


def run_device(args: argparse.Namespace) -> int:
    return int(args.device_run(args))


def run_ports(args: argparse.Namespace) -> int:
    found = serial_candidates()
    cfg = load_config()
    data: dict[str, object] = {
        "ports": [vars(p) for p in found],
        "config": str(cfg.path) if cfg.path else None,
        "config_port": cfg.port,
    }
    text = "\n".join(f"{p.device}  {p.description}  {p.hwid}" for p in found)
    _emit(args, data, text or "no serial ports found")
    return 0


def _serve_board(args: argparse.Namespace) -> EmulatedBoard:
    def log(line: str) -> None:
        print(f"device: {line}", file=sys.stderr, flush=True)

    if args.qemu:
        if args.model or args.blob:
            raise FqtError("--qemu runs the app's built-in model: deploy another with fqt deploy")
        return EmulatedBoard(qemu_command(Path(args.qemu)), log=log, ready_timeout=60.0)
    board = get_board(args.board or load_config().board or DEFAULT_SERVE_BOARD)
    blob_path = args.blob
    if args.model:
        blob, name, _ = import_blob(args.model, args.trainable, board.name, args.reinit_head)
        blob_path = os.path.join(tempfile.mkdtemp(prefix="fqt-serve-"), f"{name}.fqtb")
        Path(blob_path).write_bytes(blob)
    flash = args.flash or os.path.join(tempfile.mkdtemp(prefix="fqt-serve-"), "flash.bin")
    return host_board(board, blob_path, flash, args.progress_ms, args.host_device, log)


def run_serve(args: argparse.Namespace) -> int:
    emu = _serve_board(args)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    old = signal.signal(signal.SIGTERM, on_signal)
    port = emu.start()
    try:
        if args.port_file:
            tmp = f"{args.port_file}.tmp"
            Path(tmp).write_text(port + "\n")
            os.replace(tmp, args.port_file)  # readers never see half a path
        info = emu.info
        _emit(
            args,
            {"port": port, "pid": os.getpid(), "board": args.board or DEFAULT_SERVE_BOARD,
             "model": info.get("name", "-"), "command": emu.command},
            f"serving on {port} (model {info.get('name', '-')}, arena {info.get('arena_size')} B,"
            f" trainer {info.get('trainer')}); Ctrl-C or SIGTERM stops",
        )  # fmt: skip
        try:
            emu.serve(stop)
        except KeyboardInterrupt:
            pass
        if emu.exit_reason:
            raise FqtError(emu.exit_reason)
    finally:
        signal.signal(signal.SIGTERM, old)
        emu.close()
        if args.port_file:
            Path(args.port_file).unlink(missing_ok=True)
    if not args.json:
        print("stopped")
    return 0


# --- fqt deploy -------------------------------------------------------------------------
def add_deploy_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", help=".tflite (imported first) or .fqtb; "
                   "default: fqt.toml's model")  # fmt: skip
    _add_port(p)
    p.add_argument(
        "--trainable", nargs="+", metavar="LAYER", help="trainable layers of a .tflite: "
        "'last', 'last:N', 'all', 'none' or indices (default: last)",
    )  # fmt: skip
    p.add_argument("--board", help="check the plan fits this board first")
    p.add_argument(
        "--reinit-head", type=int, metavar="SEED", help="re-initialize the classifier head (the "
        "last FULLY_CONNECTED) with small seeded weights, as for new classes",
    )  # fmt: skip
    p.add_argument("--no-load", action="store_true", help="stage and verify only (no load)")
    p.add_argument("--json", action="store_true", help="print a summary as JSON")


def run_deploy(args: argparse.Namespace) -> int:
    path = args.model or load_config().model
    if not path:
        raise FqtError("give the model to deploy (or set model in fqt.toml)")
    blob, name, summary = import_blob(path, args.trainable, args.board, args.reinit_head)
    crc = zlib.crc32(blob[16:])  # the header's CRC field, what `info` reports as blob_crc
    with _open(args) as dev:
        old = dev.info()
        half = int(old.get("model_buffer", "0"))  # `info` reports one half
        if half and len(blob) > half:
            raise FqtError(
                f"{path}: the blob is {len(blob):,} B, the device's spare model half "
                f"{half:,} B: short by {len(blob) - half:,} bytes"
            )
        try:
            with progress.bar(len(blob), "deploy", "B", args.json) as bar:
                staged = dev.transfer(XFER_BLOB, blob, bar.callback())
            if not args.no_load:
                dev.command("load", "pushed")
            new = dev.info()
        except (DeviceError, FqtError) as e:
            still = ""
            try:
                now = dev.info()
                still = f"; the device still runs {now.get('name')} (crc {now.get('blob_crc')})"
            except FqtError:
                pass
            raise FqtError(f"deploy failed: {e}{still}") from None
        if not args.no_load and (
            new.get("blob_crc", "").lower().removeprefix("0x") != f"{crc:08x}"
            or int(new.get("blob_bytes", -1)) != len(blob)
        ):
            raise FqtError(
                f"deploy: the device reports blob {new.get('blob_bytes')} B crc "
                f"{new.get('blob_crc')}, sent {len(blob)} B crc {crc:08x}"
            )
    data = {
        "model": str(path), "name": name, "blob_bytes": len(blob), "blob_crc": f"{crc:08x}",
        "loaded": not args.no_load, "previous": old.get("name", "-"),
        "arena_used": new.get("arena_used"), "staged": staged, **summary,
    }  # fmt: skip
    _emit(
        args,
        data,
        f"deployed {name}: {len(blob):,} B, crc {crc:08x}, verified"
        + ("" if args.no_load else f", running (was {old.get('name', '-')})"),
    )
    return 0


# --- fqt plot ---------------------------------------------------------------------------
def add_plot_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("log", help="a training log CSV (fqt train / fqt train-device --log)")
    p.add_argument("-o", "--output", help="PNG to write (default: the CSV's name with .png)")
    p.add_argument("--json", action="store_true", help="print a summary as JSON")


def run_plot(args: argparse.Namespace) -> int:
    log = read_csv(args.log)
    out = args.output or str(Path(args.log).with_suffix(".png"))
    written = plot(log, out)
    epochs = [r for r in log.rows if r["kind"] == "epoch"]
    _emit(
        args,
        {"log": args.log, "plot": out if written else None, "rows": len(log.rows),
         "epochs": len(epochs)},
        f"{args.log}: {len(log.rows)} rows, {len(epochs)} epochs -> {out}",
    )  # fmt: skip
    return 0
