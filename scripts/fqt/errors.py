"""Errors that reach the user as one clear line, never a traceback.

Exit codes of the `fqt` CLI (README "Exit codes"): 2 bad input or usage (FqtError and its
subclasses by default), 1 a runtime failure (RuntimeFailureError: the device, the engine, the
file system), 130 an interrupt (Ctrl-C).
"""

from __future__ import annotations

EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_INTERRUPT = 130


def printable(text: object, limit: int = 200) -> str:
    """`text` as one printable line: control and non-ASCII-printable characters escaped
    (\\n, \\x07, \\u200b ...), cut to `limit` characters. For names read from a file."""
    s = str(text)
    out = []
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ch.isprintable() and ch not in "\u2028\u2029":
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    r = "".join(out)
    return r if len(r) <= limit else r[: limit - 3] + "..."


class FqtError(Exception):
    """Base class: the CLI prints `error: <message>` and exits `exit_code` (2: bad input)."""

    exit_code = EXIT_USAGE


class RuntimeFailureError(FqtError):
    """The input was fine but running failed (device, engine, file system): exit 1."""

    exit_code = EXIT_RUNTIME


class ModelFormatError(FqtError):
    """The file is not a readable .tflite (truncated, corrupt, wrong schema)."""


class UnsupportedModelError(FqtError):
    """The model is readable but uses operators or options fqt does not support."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(
            f"model uses {len(problems)} unsupported construct(s): " + "; ".join(problems)
        )


class PlanDoesNotFitError(FqtError):
    """The memory plan exceeds the board's RAM or the configured pool."""


class BlobFormatError(FqtError):
    """A model blob failed validation."""
