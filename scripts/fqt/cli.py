"""The `fqt` command line: the parser, the command table and the dispatch.

The commands live in fqt.commands, one module per family; COMMANDS names each one with
its help text (the one source of the west commands' help, scripts/west-commands.yml
repeats it and a test checks they agree) and its add_*_arguments/run_* pair. The west
extension commands call the same pairs. Nothing imports this module back.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from . import __version__
from .commands import board, demo, device, model, train, train_device
from .commands.common import load_model
from .errors import FqtError
from .resources import DEFAULT_MODEL

# Re-exported for callers of the former fqt.cli helpers (tests/zephyr/shell imports them).
__all__ = ["COMMANDS", "DEFAULT_MODEL", "build_parser", "load_model", "main"]

Command = tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]

COMMANDS: dict[str, Command] = {
    # model commands (fqt.commands.model)
    "import": (
        "import an int8 .tflite: blob, C source, memory plan",
        model.add_import_arguments,
        model.run_import,
    ),
    "infer": ("run int8 inputs through an engine", model.add_infer_arguments, model.run_infer),
    # host training (fqt.commands.train)
    "train": (
        "train an int8 .tflite on a dataset and write the trained .tflite",
        train.add_train_arguments,
        train.run_train,
    ),
    # the README's main job (fqt.commands.demo)
    "demo": (
        "the main job on the embedded default (no board needed)",
        demo.add_demo_arguments,
        demo.run_demo,
    ),
    # device commands (fqt.commands.device): the board, or the host device, over its shell
    "push": (
        "push an .npz of samples to the device's store",
        device.add_push_arguments,
        device.run_push,
    ),
    "train-device": (
        "train on the device: live progress, CSV log and plot",
        train_device.add_train_device_arguments,
        train_device.run_train_device,
    ),
    "export": (
        "pull the device's model and rebuild the .tflite",
        device.add_export_arguments,
        device.run_export,
    ),
    "device-eval": (
        "accuracy of the device's model on its stored samples",
        device.add_device_eval_arguments,
        device.run_device_eval,
    ),
    # the emulated board and the model deploy (fqt.commands.board)
    "deploy": (
        "send a model to the device's spare half, verify it and switch to it",
        board.add_deploy_arguments,
        board.run_deploy,
    ),
    "device": (
        "the emulated board (device serve) and the serial ports (device ports)",
        board.add_device_arguments,
        board.run_device,
    ),
    "plot": ("draw a training log CSV as a PNG", board.add_plot_arguments, board.run_plot),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fqt", description="fully quantized on-device training")
    parser.add_argument("--version", action="version", version=f"fqt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, add_args, _) in COMMANDS.items():
        add_args(
            sub.add_parser(
                name,
                help=help_text,
                description=help_text,
                formatter_class=argparse.ArgumentDefaultsHelpFormatter,
            )
        )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command][2](args)
    except FqtError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
