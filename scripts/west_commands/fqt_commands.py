"""west extension commands: thin wrappers over the fqt package (fqt.cli).

Each command takes its help text from fqt.cli.COMMANDS; scripts/west-commands.yml repeats
those strings for `west help` (which lists commands without importing this file), and
tests/python/test_package.py checks the two agree.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from west.commands import WestCommand

try:
    from fqt import cli
    from fqt.errors import FqtError
except ImportError:  # running from a west workspace without `pip install fqt`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from fqt import cli
    from fqt.errors import FqtError


class _FqtCommand(WestCommand):
    """One `fqt <sub>` command, exposed to west as `fqt-<sub>` (or as name_override)."""

    sub = ""
    name_override = ""

    def __init__(self) -> None:
        help_text = cli.COMMANDS[self.sub][0]
        super().__init__(self.name_override or f"fqt-{self.sub}", help_text, help_text)

    def do_add_parser(self, parser_adder):  # type: ignore[no-untyped-def]
        parser = parser_adder.add_parser(
            self.name,
            help=self.help,
            description=self.description,
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
        cli.COMMANDS[self.sub][1](parser)
        return parser

    def do_run(self, args, unknown_args):  # type: ignore[no-untyped-def]
        try:
            rc = cli.COMMANDS[self.sub][2](args)
        except FqtError as e:
            self.die(str(e))
        if rc:
            sys.exit(rc)


class FqtImport(_FqtCommand):
    sub = "import"


class FqtPush(_FqtCommand):
    sub = "push"


class FqtTrain(_FqtCommand):
    sub = "train-device"
    name_override = "fqt-train"


class FqtExport(_FqtCommand):
    sub = "export"


class FqtDeploy(_FqtCommand):
    sub = "deploy"
