"""The `fqt` command line: the parser, the command table and the dispatch.

The commands live in fqt.commands, one module per family; COMMANDS names each one with
its help text (the one source of the west commands' help, scripts/west-commands.yml
repeats it and a test checks they agree) and its add_*_arguments/run_* pair. The west
extension commands call the same pairs. Nothing imports this module back.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable
from typing import NoReturn

import numpy as np

from . import __version__
from .commands import board, demo, device, model, train, train_device
from .commands.common import load_model
from .errors import EXIT_INTERRUPT, EXIT_RUNTIME, EXIT_USAGE, FqtError, printable
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


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: `error: fqt train: <message> (fqt train --help)`,
    exit 2 (the usage block argparse prints by default is more than one line)."""

    def error(self, message: str) -> NoReturn:
        _error_line(f"{self.prog}: {message} (see {self.prog} --help)")
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="fqt", description="fully quantized on-device training")
    parser.add_argument("--version", action="version", version=f"fqt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
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


def _error_line(message: str) -> None:
    """`error: <message>` on stderr, always one line (names from files are escaped)."""
    try:
        sys.stderr.write(f"error: {printable(message, limit=2000)}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _silence_stdout() -> None:
    """After a closed pipe (`fqt ... | head`): point stdout at /dev/null so the
    interpreter's final flush does not print a second error."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 success, 2 bad input or usage, 1 a runtime failure, 130 an interrupt.
    Every error is one line on stderr, never a traceback."""
    try:
        args = build_parser().parse_args(argv)
        # numpy's overflow warnings on hostile scales would be extra lines: the checks
        # (fqt.import_check) turn such values into one error line instead.
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            code = COMMANDS[args.command][2](args)
        sys.stdout.flush()
        return code
    except FqtError as e:
        _error_line(str(e))
        return e.exit_code
    except KeyboardInterrupt:
        _error_line("interrupted")
        return EXIT_INTERRUPT
    except BrokenPipeError:
        _silence_stdout()
        _error_line("output closed (broken pipe)")
        return EXIT_RUNTIME
    except SystemExit as e:  # argparse: --help and --version exit 0, errors 2 (above)
        return int(e.code) if isinstance(e.code, int) else EXIT_USAGE
    except MemoryError:
        _error_line("out of memory")
        return EXIT_RUNTIME
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        _error_line(f"{where}{e.strerror or e}")
        return EXIT_RUNTIME
    except Exception as e:  # a bug: still one line, and a distinct message to report
        _error_line(f"internal error ({type(e).__name__}: {e}); please report it")
        return EXIT_RUNTIME


if __name__ == "__main__":
    sys.exit(main())
