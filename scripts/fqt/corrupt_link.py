"""A corrupting link for tests and benchmarks: garbles a seeded share of the lines between
the client (fqt.device) and a device process, in both directions.

    inner = ProcessTransport("build/host/fqt_host_device --model m.fqtb")
    link = CorruptingTransport(inner, mode="drop", rate=0.02, seed=1)
    dev = Device(link, timeout=1.0); dev.sync()

It sits in-process between the Device and the process's pipes: every line the client writes
(host -> device) and every line the device answers (device -> host) is garbled with
probability `rate`, by one edit of `mode`:

- `substitute`: one character replaced by another printable one;
- `drop`: one character deleted;
- `insert`: one printable character inserted;
- `truncate`: the line cut short at a random point;
- `words`: a character of the first two words replaced (the `fqt`/`frame` words host ->
  device; `ok`/`err`/`frame`/`pong` and the seq device -> host).

The line end itself is kept, so lines are garbled but never merged or split. The sync at
open goes through clean (`armed` is False until the caller arms the link).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np

from .device import Device, ProcessTransport, _Transport
from .errors import FqtError

MODES = ("substitute", "drop", "insert", "truncate", "words")
_PRINTABLE = [chr(c) for c in range(0x20, 0x7F)]


def corrupt_line(line: str, mode: str, rng: random.Random) -> str:
    """One edit of `mode` to a line (without its line end)."""
    if mode == "insert":
        i = rng.randrange(len(line) + 1)
        return line[:i] + rng.choice(_PRINTABLE) + line[i:]
    if not line:
        return line
    if mode == "words":
        words = line.split(" ")
        span = len(words[0]) + (1 + len(words[1]) if len(words) > 1 else 0)
        i = rng.randrange(span)
        mode = "substitute"
    else:
        i = rng.randrange(len(line))
    if mode == "substitute":
        c = rng.choice([ch for ch in _PRINTABLE if ch != line[i]])
        return line[:i] + c + line[i + 1 :]
    if mode == "drop":
        return line[:i] + line[i + 1 :]
    if mode == "truncate":
        return line[:i]
    raise ValueError(f"unknown corruption mode {mode!r} (one of {', '.join(MODES)})")


@dataclass
class LinkStats:
    lines_out: int = 0  # host -> device lines
    lines_in: int = 0  # device -> host lines
    garbled_out: int = 0
    garbled_in: int = 0
    samples: list[tuple[str, str, str]] = field(default_factory=list)  # (dir, before, after)


class CorruptingTransport(_Transport):
    """Wraps a transport; garbles `rate` of the complete lines in each direction."""

    def __init__(self, inner: _Transport, mode: str, rate: float, seed: int) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"unknown corruption mode {mode!r} (one of {', '.join(MODES)})")
        self.inner, self.mode, self.rate = inner, mode, rate
        self.rng_out = random.Random(seed * 2 + 1)
        self.rng_in = random.Random(seed * 2 + 2)
        self.armed = False
        self.stats = LinkStats()
        self._pending = b""  # device -> host bytes short of a line end

    def _garble(self, line: bytes, rng: random.Random, direction: str) -> bytes:
        if not self.armed or rng.random() >= self.rate:
            return line
        before = line.decode("utf-8", "replace")
        after = corrupt_line(before, self.mode, rng)
        if len(self.stats.samples) < 20:
            self.stats.samples.append((direction, before, after))
        if direction == "out":
            self.stats.garbled_out += 1
        else:
            self.stats.garbled_in += 1
        return after.encode()

    def write(self, data: bytes) -> None:
        lines = data.split(b"\n")
        out = []
        for ln in lines[:-1]:
            self.stats.lines_out += 1
            out.append(self._garble(ln, self.rng_out, "out") + b"\n")
        self.inner.write(b"".join(out) + lines[-1])

    def _read_some(self, timeout: float) -> bytes | None:
        chunk = self.inner._read_some(timeout)
        if chunk is None:
            return None
        self._pending += chunk
        *lines, self._pending = self._pending.split(b"\n")
        out = b""
        for ln in lines:
            self.stats.lines_in += 1
            out += self._garble(ln, self.rng_in, "in") + b"\n"
        return out

    def close(self) -> None:
        self.inner.close()


def push_train_export(
    command: str,
    blob: bytes,
    x: np.ndarray,
    y: np.ndarray,
    train_args: tuple[object, ...],
    mode: str | None = None,
    rate: float = 0.02,
    seed: int = 0,
    timeout: float = 1.0,
) -> tuple[bytes, LinkStats | None]:
    """One run on a fresh device process (`command`): push the blob and load it, push the
    samples, train (`fqt train start <train_args>`) to the end, pull the trained blob. With
    `mode`, every line after the opening sync goes through a CorruptingTransport."""
    inner = ProcessTransport(command)
    link = None if mode is None else CorruptingTransport(inner, mode, rate, seed)
    dev = Device(link or inner, timeout=timeout, retries=8)
    try:
        dev.sync()
        if link is not None:
            link.armed = True
        dev.push_blob(blob)
        if dev.push_samples(x, y) != len(y):
            raise FqtError(f"the device holds another sample count than the {len(y)} pushed")
        dev.command("train", "start", *train_args)
        dev.wait_train(timeout=120)
        return dev.pull_blob(), (link.stats if link is not None else None)
    finally:
        dev.close()
