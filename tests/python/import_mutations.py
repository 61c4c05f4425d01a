"""Seeded mutations of the project's own fixture models through the whole import pipeline
(`fqt import`: parse, checks, prepare, plan, blob, C source), and the C loader on every blob
the importer accepts. Shared by tests/python/test_import_fuzz.py (a short run) and
benchmarks/fuzz_import.py (the long run).

Every mutant must end in one of two ways: success (exit 0, and the blob loads in the C
loader, fqt.native) or a single `error: ...` line with exit 2. Anything else is counted: a
Python exception escaping `fqt.cli.main` (a traceback), an error of more than one line, an
`internal error` (exit 1: a bug caught by the last safety net), or a blob the importer
wrote that the C loader refuses.
"""

from __future__ import annotations

import contextlib
import io
import random
import struct
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from fqt import cli
from fqt.errors import BlobFormatError
from fqt.native import NativeEngine

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "models"
# Models the importer accepts (the mutation sources); garbage/truncated/unsupported are not.
SOURCES = sorted(
    p
    for p in FIXTURES.glob("*.tflite")
    if p.stem not in ("garbage", "truncated", "unsupported_ops")
)

_WORDS = (
    [
        0,
        1,
        2,
        3,
        0xFF,
        0x7F,
        0x80,
        0xFFFF,
        0x7FFF,
        0x8000,
        0x7FFFFFFF,
        0x80000000,
        0xFFFFFFFF,
        0xFFFFFFFE,
        0x01000000,
        0x10000,
    ]
    + [
        struct.unpack("<I", struct.pack("<f", f))[0]
        for f in (0.0, -0.0, 1.0, -1.0, 1e-30, 1e30, 3e38, 1e-45, 0.5, 256.0, 1 / 256)
    ]
    + [0x7FC00000, 0x7F800000, 0xFF800000]
)  # NaN, +inf, -inf


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One seeded mutation: bit flips, changed bytes, an interesting word (sizes, indices,
    NaN/inf/tiny/huge floats) at a 4-aligned place, a random table, or a truncation."""
    b = bytearray(data)
    kind = rng.randrange(6)
    if kind == 0:
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif kind == 1:
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif kind in (2, 3):
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(b) // 4) * 4
            b[i : i + 4] = struct.pack("<I", rng.choice(_WORDS))
    elif kind == 4:
        n = rng.randint(4, 64)
        i = rng.randrange(max(1, len(b) - n))
        b[i : i + n] = bytes(rng.randrange(256) for _ in range(n))
    else:
        b = b[: rng.randrange(8, len(b))]
    return bytes(b)


@dataclass
class Counts:
    mutants: int = 0
    accepted: int = 0
    refused: int = 0  # one line, exit 2
    tracebacks: int = 0
    multiline: int = 0
    internal: int = 0  # exit 1 "internal error": a bug the last safety net caught
    other_exit: int = 0
    loader_refused: int = 0  # the importer wrote it, the C loader refused it
    loader_checked: int = 0
    examples: list[str] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)

    @property
    def failures(self) -> int:
        return (
            self.tracebacks + self.multiline + self.internal + self.other_exit + self.loader_refused
        )


def run_one(data: bytes, work: Path, counts: Counts, label: str) -> None:
    src = work / "m.tflite"
    src.write_bytes(data)
    out = work / "out"
    err, sout = io.StringIO(), io.StringIO()
    counts.mutants += 1
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(sout):
            code = cli.main(
                ["import", str(src), "-o", str(out), "--name", "m", "--trainable", "all"]
            )
    except BaseException as e:  # escaped main: a traceback for the user
        counts.tracebacks += 1
        counts.examples.append(f"{label}: traceback {type(e).__name__}: {e}")
        return
    text = err.getvalue()
    if code == 0:
        counts.accepted += 1
        blob = (out / "m.fqtb").read_bytes()
        counts.loader_checked += 1
        try:
            NativeEngine(blob)
        except BlobFormatError as e:
            counts.loader_refused += 1
            counts.examples.append(f"{label}: C loader refused an imported blob: {e}")
        return
    lines = text.splitlines()
    if len(lines) != 1 or not lines[0].startswith("error: "):
        counts.multiline += 1
        counts.examples.append(f"{label}: {len(lines)} lines: {text[:300]!r}")
    elif code == 1 and "internal error" in text:
        counts.internal += 1
        counts.examples.append(f"{label}: {lines[0][:300]}")
    elif code != 2:
        counts.other_exit += 1
        counts.examples.append(f"{label}: exit {code}: {lines[0][:300]}")
    else:
        counts.refused += 1
        counts.reasons[lines[0][7:40]] += 1


def run(n: int, seed: int = 1) -> Counts:
    """n seeded mutants, spread round-robin over the fixtures."""
    rng = random.Random(seed)
    counts = Counts()
    sources = [(p.name, p.read_bytes()) for p in SOURCES]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for k in range(n):
            name, data = sources[k % len(sources)]
            run_one(mutate(data, rng), work, counts, f"{name}#{k}")
    return counts
