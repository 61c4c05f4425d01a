"""Argument and file checks every command runs before any work starts, so a bad option or
a file problem is one line and exit 2 (fqt.errors), never a traceback after the work."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from pathlib import Path

from ..errors import FqtError

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"
_TFLITE_ID = b"TFL3"
_BLOB_MAGIC = b"FQTB"


def int_range(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in [lo, hi]."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if v < lo or (hi is not None and v > hi):
            span = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
            raise argparse.ArgumentTypeError(f"{v} is outside {span}")
        return v

    return parse


def float_range(lo: float, hi: float, *, lo_open: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite float in [lo, hi] (or (lo, hi] with lo_open)."""

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(v) or v < lo or v > hi or (lo_open and v == lo):
            left = "(" if lo_open else "["
            raise argparse.ArgumentTypeError(f"{text} is outside {left}{lo:g}, {hi:g}]")
        return v

    return parse


def _head(path: Path, n: int = 8) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(n)
    except OSError as e:
        raise FqtError(f"{path}: cannot read: {e.strerror}") from None


def input_file(path: str | os.PathLike[str], kind: str) -> Path:
    """`path` must be a readable file of `kind`: 'npy', 'npz', 'tflite', 'model'
    (.tflite or .fqtb), 'any'. The content is sniffed, so an .npz given for an .npy (or a
    directory, or a missing file) is refused here with one line."""
    p = Path(path)
    if not p.exists():
        raise FqtError(f"{p}: no such file")
    if p.is_dir():
        raise FqtError(f"{p}: is a directory, expected a file")
    head = _head(p)
    wants = {
        "npy": ((_NPY_MAGIC,), "an .npy array (np.save)"),
        "npz": ((_ZIP_MAGIC,), "an .npz archive (np.savez) with x and y"),
        "tflite": ((), "a .tflite model"),
        "model": ((), "a .tflite model or an .fqtb blob"),
    }
    if kind == "any":
        return p
    magics, what = wants[kind]
    if kind in ("tflite", "model"):
        ok = head[4:8] == _TFLITE_ID or (kind == "model" and head[:4] == _BLOB_MAGIC)
        if p.suffix == ".fqtb" and kind == "model":
            ok = True  # the blob loader says what is wrong with it
        if p.suffix == ".tflite" or kind == "tflite":
            ok = True  # the importer says what is wrong with it, in one line
        if not ok:
            raise FqtError(f"{p}: not {what} (give a .tflite or .fqtb)")
        return p
    if not any(head.startswith(m) for m in magics):
        found = (
            "an .npz archive"
            if head.startswith(_ZIP_MAGIC)
            else ("an .npy array" if head.startswith(_NPY_MAGIC) else "something else")
        )
        raise FqtError(f"{p}: is {found}, expected {what}")
    return p


def output_file(path: str | os.PathLike[str], what: str = "output") -> Path:
    """`path` must be writable: its folder exists and takes files, and it is no folder."""
    p = Path(path)
    if p.is_dir():
        raise FqtError(f"{what} {p}: is a directory, expected a file name")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.exists():
        raise FqtError(f"{what} {p}: folder {parent} does not exist")
    if not parent.is_dir():
        raise FqtError(f"{what} {p}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise FqtError(f"{what} {p}: not writable")
    return p


def output_dir(path: str | os.PathLike[str], what: str = "output folder") -> Path:
    """`path` is a folder, or can be made one (its nearest existing ancestor is a
    writable folder)."""
    p = Path(path)
    if p.exists():
        if not p.is_dir():
            raise FqtError(f"{what} {p}: exists and is not a folder")
        if not os.access(p, os.W_OK | os.X_OK):
            raise FqtError(f"{what} {p}: not writable")
        return p
    a = p.absolute().parent
    while not a.exists():
        a = a.parent
    if not a.is_dir():
        raise FqtError(f"{what} {p}: {a} is not a folder")
    if not os.access(a, os.W_OK | os.X_OK):
        raise FqtError(f"{what} {p}: cannot create it in {a} (not writable)")
    return p
