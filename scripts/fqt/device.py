"""The host side of the device service (docs/protocol.md): talk to a board over its shell.

    with Device.open("/dev/ttyACM0") as dev:        # or a pty path, or "cmd:<command line>"
        print(dev.info())
        dev.push_samples(x_int8, labels)
        n, correct = dev.eval()

Every wait is bounded: a device that does not answer raises FqtError after `timeout`
seconds (per command, per frame attempt), never hangs. Any line may be garbled on the way,
in either direction (docs/protocol.md, "Resync and resend"): state-changing commands go in
CRC-checked `cmd` frames that run at most once per seq; a garbled or missing answer is
resynced with a `fqt ping <token>` barrier and the frame or query is sent again, up to
`retries` times.
"""

from __future__ import annotations

import os
import random
import re
import select
import shlex
import struct
import subprocess
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from .errors import FqtError, RuntimeFailureError

XFER_SAMPLES = 1
XFER_BLOB = 2
DEFAULT_CHUNK = 96  # bytes a frame: the line (~230 chars) fits Zephyr's default 256
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# A frame the device could not read (garbled on the line): resending it may help.
_RETRYABLE = ("bad crc", "bad payload", "bad seq", "frame needs", "unknown kind", "bad crc field")
# The reply lines a frame may have before its ack; any other line means a garbled line.
_FRAME_REPLIES = {"commit": ("samples ", "staged "), "read": ("frame ",)}
# Commands that change nothing: sent as plain lines, resent when the answer is garbled.
_QUERIES = {("help",), ("ping",), ("info",), ("export",), ("predict",), ("data", "status")}
_QUERIES |= {("train", "status")}
_EXPORT = re.compile(r"export bytes (\d+) crc ([0-9a-f]{8}) name .* max_payload (\d+)")
MAX_CMD_PAYLOAD = 128  # FQT_FRAME_MAX_PAYLOAD: longer state-changing commands go plain


class DeviceError(RuntimeFailureError):
    """The device answered `err <reason>`."""


class DeviceTimeoutError(RuntimeFailureError):
    """The device did not answer in time."""


def frame_line(seq: int, kind: str, payload: bytes) -> str:
    """`frame <seq> <kind> <hex> <crc32>`: the CRC covers "<seq> <kind> <hex>" as sent."""
    body = f"{seq} {kind} {payload.hex() if payload else '-'}"
    return f"frame {body} {zlib.crc32(body.encode()):08x}"


def parse_frame(line: str) -> tuple[int, str, bytes]:
    """Decode a device->host frame line; raises ValueError when garbled."""
    words = line.split(" ")
    if len(words) != 5 or words[0] != "frame" or not words[1].isdigit():
        raise ValueError("not a frame")
    body = " ".join(words[1:4])
    if int(words[4], 16) != zlib.crc32(body.encode()):
        raise ValueError("bad crc")
    payload = b"" if words[3] == "-" else bytes.fromhex(words[3])
    return int(words[1]), words[2], payload


# --- transports -------------------------------------------------------------------------
class _Transport:
    def __init__(self) -> None:
        self._buf = b""

    def _read_some(self, timeout: float) -> bytes | None:
        """Up to a few KiB within timeout: b'' if none arrived, None when closed."""
        raise NotImplementedError

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def readline(self, deadline: float) -> str | None:
        """The next line before `deadline` (time.monotonic()), else None."""
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            chunk = self._read_some(min(left, 0.5))
            if chunk is None:
                if self._buf:
                    break
                raise RuntimeFailureError("the device closed the connection")
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return _ANSI.sub("", line.decode("utf-8", "replace")).strip("\r\x00 ")

    def drain(self) -> None:
        self._buf = b""
        while True:
            chunk = self._read_some(0.0)
            if not chunk:
                return


class _FdTransport(_Transport):
    def __init__(self, rfd: int, wfd: int) -> None:
        super().__init__()
        self.rfd, self.wfd = rfd, wfd

    def _read_some(self, timeout: float) -> bytes | None:
        r, _, _ = select.select([self.rfd], [], [], max(0.0, timeout))
        if not r:
            return b""
        try:
            data = os.read(self.rfd, 4096)
        except OSError:
            return None
        return data if data else None

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        deadline = time.monotonic() + 5.0
        while view:
            _, w, _ = select.select([], [self.wfd], [], max(0.0, deadline - time.monotonic()))
            if not w:
                raise DeviceTimeoutError("the device does not take input (write timed out)")
            try:
                n = os.write(self.wfd, view)
            except OSError as e:
                raise RuntimeFailureError(
                    f"the device closed the connection: {e.strerror}"
                ) from None
            view = view[n:]


class ProcessTransport(_FdTransport):
    """`cmd:<command line>`: a process (the host device, `west build -t run`, ...)."""

    def __init__(self, command: str) -> None:
        try:
            self.proc = subprocess.Popen(
                shlex.split(command),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                bufsize=0,
            )
        except OSError as e:
            raise RuntimeFailureError(f"cannot start `{command}`: {e.strerror}") from None
        assert self.proc.stdin is not None and self.proc.stdout is not None
        super().__init__(self.proc.stdout.fileno(), self.proc.stdin.fileno())

    def close(self) -> None:
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                if f is not None:
                    f.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class PtyTransport(_FdTransport):
    """A pty or tty path (e.g. QEMU's serial on /dev/pts/N), in raw mode."""

    def __init__(self, path: str) -> None:
        import termios
        import tty

        try:
            fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError as e:
            raise RuntimeFailureError(f"{path}: cannot open: {e.strerror}") from None
        try:
            tty.setraw(fd)
        except termios.error:
            pass
        super().__init__(fd, fd)

    def close(self) -> None:
        os.close(self.rfd)


class SerialTransport(_Transport):
    """A serial port through pyserial (any URL pyserial takes)."""

    def __init__(self, port: str, baud: int) -> None:
        super().__init__()
        try:
            import serial
        except ImportError:
            raise FqtError("serial ports need pyserial: pip install pyserial") from None
        try:
            self.ser = serial.serial_for_url(port, baudrate=baud, timeout=0, write_timeout=5)
        except (serial.SerialException, ValueError) as e:
            raise RuntimeFailureError(f"{port}: cannot open: {e}") from None

    def _read_some(self, timeout: float) -> bytes | None:
        deadline = time.monotonic() + timeout
        while True:
            data = self.ser.read(self.ser.in_waiting or 1)
            if data or time.monotonic() >= deadline:
                return data
            time.sleep(0.005)

    def write(self, data: bytes) -> None:
        try:
            self.ser.write(data)
        except Exception as e:  # serial.SerialTimeoutException and friends
            raise DeviceTimeoutError(f"serial write failed: {e}") from None

    def close(self) -> None:
        self.ser.close()


def open_transport(port: str, baud: int = 115200) -> _Transport:
    if port.startswith("cmd:"):
        return ProcessTransport(port[4:])
    if port.startswith("/dev/pts/") or (os.path.exists(port) and not port.startswith("/dev/tty")):
        return PtyTransport(port)
    return SerialTransport(port, baud)


# --- the client -----------------------------------------------------------------------
@dataclass
class Stats:
    frames: int = 0
    resends: int = 0
    timeouts: int = 0


@dataclass
class Device:
    transport: _Transport
    timeout: float = 5.0
    retries: int = 5
    chunk: int = DEFAULT_CHUNK
    stats: Stats = field(default_factory=Stats)
    events: list[str] = field(default_factory=list)  # progress/epoch/done lines seen
    corrupt_next: int = 0  # test hook: garble the first attempt of the next N frames

    def __post_init__(self) -> None:
        self.seq = random.randrange(1, 1 << 30)

    @classmethod
    def open(cls, port: str, timeout: float = 5.0, baud: int = 115200, **kw) -> Device:
        dev = cls(open_transport(port, baud), timeout=timeout, **kw)
        try:
            dev.sync()
        except BaseException:
            dev.close()
            raise
        return dev

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- lines --
    def _send(self, line: str) -> None:
        self.transport.write(line.encode() + b"\n")

    def _note(self, line: str) -> None:
        if line.startswith(("progress ", "epoch ", "done ", "note ")):
            self.events.append(line)

    def sync(self) -> None:
        """Wait until the device answers a command (it may still be booting)."""
        deadline = time.monotonic() + self.timeout
        while True:
            self.transport.drain()
            token = f"{random.randrange(1 << 32):08x}"
            self._send(f"fqt ping {token}")
            step = time.monotonic() + min(1.0, max(0.05, deadline - time.monotonic()))
            while (line := self.transport.readline(step)) is not None:
                if _strip_prompt(line) == f"pong {token}":
                    self.command_tail("ping", step)
                    return
            if time.monotonic() >= deadline:
                raise DeviceTimeoutError(
                    f"no answer from the device within {self.timeout:g} s "
                    "(is it running the fqt app, and is this its shell port?)"
                )

    def command(self, *words: object, timeout: float | None = None) -> list[str]:
        """Run `fqt <words>`: its reply lines before the final `ok`; `err` -> DeviceError.

        Queries (which change nothing) go as plain lines and are resent when their answer
        is garbled or missing. Commands that change the device's state go in a `cmd` frame
        (CRC-checked, run at most once per seq; docs/protocol.md), so a garbled line can
        neither run a different command nor run one twice. Every exchange ends with a
        `ping` barrier: once its `pong` arrives, the whole answer has arrived."""
        text = " ".join(str(w) for w in words)
        cmd = "fqt " + text
        wait = self.timeout if timeout is None else timeout
        if not _is_query(words) and len(text) <= MAX_CMD_PAYLOAD:
            try:
                return self.frame("cmd", text.encode(), timeout=wait)
            except DeviceError as e:
                reason = str(e).split(": ", 1)[-1]
                raise DeviceError(f"`{cmd}`: {reason}") from None
        query = _is_query(words)
        last_err = ""
        for _ in range(self.retries + 1):
            self._send(cmd)
            got = self._barrier(wait)
            if got is None:
                if not query:
                    break
                continue
            lines, final = _split_final(got)
            if final == "ok":
                return lines
            if final is not None and final.startswith("err "):
                reason = final[4:]
                if not query or reason == last_err:
                    raise DeviceError(f"`{cmd}`: {reason}")
                last_err = reason  # maybe garbled on the way: ask once more
                continue
            if not query:
                break
            self.stats.resends += 1
        if last_err:
            raise DeviceError(f"`{cmd}`: {last_err}")
        raise DeviceTimeoutError(f"`{cmd}`: no readable answer after {self.retries + 1} tries")

    def _barrier(self, wait: float) -> list[str] | None:
        """Send `fqt ping <token>`; the lines that come before `pong <token>` (events noted),
        or None when the pong did not come within `wait` (then the stream is resynced with
        further pings, up to `retries`)."""
        first = True
        for _ in range(self.retries + 1):
            token = f"{random.randrange(1 << 32):08x}"
            self._send(f"fqt ping {token}")
            deadline = time.monotonic() + wait
            lines: list[str] = []
            while (line := self.transport.readline(deadline)) is not None:
                line = _strip_prompt(line)
                if line == f"pong {token}":
                    # the ping's own final line (maybe garbled): exactly one line follows
                    self.transport.readline(time.monotonic() + min(wait, 1.0))
                    return lines if first else None
                if line.startswith(("progress ", "epoch ", "done ", "note ")):
                    self._note(line)
                elif not line.startswith("fqt "):  # a shell echoes the command
                    lines.append(line)
            self.stats.timeouts += 1
            first = False  # the answer may be lost with the pong: report it as missing
        raise DeviceTimeoutError(
            f"the device does not answer `fqt ping` (no resync after {self.retries + 1} tries)"
        )

    def command_tail(self, cmd: str, deadline: float) -> list[str]:
        lines: list[str] = []
        while True:
            line = self.transport.readline(deadline)
            if line is None:
                raise DeviceTimeoutError(f"`{cmd}`: no answer within {self.timeout:g} s")
            line = _strip_prompt(line)
            if line == "ok":
                return lines
            if line.startswith("err "):
                raise DeviceError(f"`{cmd}`: {line[4:]}")
            if line.startswith(("progress ", "epoch ", "done ")) or line.startswith("fqt "):
                self._note(line)
                continue
            lines.append(line)

    def wait_event(self, prefix: str, timeout: float) -> str:
        """The next unsolicited line starting with prefix (e.g. 'done eval')."""
        for i, ev in enumerate(self.events):
            if ev.startswith(prefix):
                del self.events[: i + 1]
                return ev
        deadline = time.monotonic() + timeout
        while True:
            line = self.transport.readline(deadline)
            if line is None:
                raise DeviceTimeoutError(f"no `{prefix}` from the device within {timeout:g} s")
            line = _strip_prompt(line)
            if line.startswith(prefix):
                return line
            self._note(line)

    def events_until(self, prefixes: tuple[str, ...], timeout: float) -> Iterator[str]:
        """Yield unsolicited lines as they come; stop after one starting with a prefix."""
        deadline = time.monotonic() + timeout
        pending, self.events = self.events, []
        for line in pending:
            yield line
            if line.startswith(prefixes):
                return
        while True:
            line = self.transport.readline(deadline)
            if line is None:
                raise DeviceTimeoutError(f"no progress from the device within {timeout:g} s")
            line = _strip_prompt(line)
            if line.startswith(("progress ", "epoch ", "done ", "note ")):
                deadline = time.monotonic() + timeout
                yield line
                if line.startswith(prefixes):
                    return

    def query_match(self, words: tuple[object, ...], pattern: str) -> re.Match[str]:
        """Ask a query until one of its reply lines fully matches `pattern` (a reply line
        garbled on the way is asked again, up to `retries`)."""
        for _ in range(self.retries + 1):
            for line in self.command(*words):
                if m := re.fullmatch(pattern, line):
                    return m
            self.stats.resends += 1
        raise DeviceTimeoutError(f"`fqt {' '.join(map(str, words))}`: no readable answer")

    def wait_train(self, timeout: float, idle: float = 2.0) -> str:
        """Wait for the train job's end: its `done train ...` line, or, when that line was
        lost (garbled on the line), what `train status` says after `idle` s of silence
        (`done train (line lost)`). A stopped or failed job raises DeviceError."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                for line in self.events_until(("done train",), min(idle, timeout)):
                    if line.startswith("done train"):
                        if "failed" in line.split():
                            raise DeviceError(line)
                        return line
            except DeviceTimeoutError:
                pass
            m = self.query_match(
                ("train", "status"), r"train (?:idle last (\S+) job idle|running .*)"
            )
            if m[1] == "done":
                return "done train (line lost)"
            if m[1] in ("stopped", "failed"):
                raise DeviceError(f"train job {m[1]}")
            if time.monotonic() >= deadline:
                raise DeviceTimeoutError(f"the train job did not end within {timeout:g} s")

    # -- frames --
    def _next_seq(self) -> int:
        self.seq = (self.seq + 1) & 0xFFFFFFFF
        return self.seq

    def frame(
        self,
        kind: str,
        payload: bytes = b"",
        seq: int | None = None,
        timeout: float | None = None,
    ) -> list[str]:
        """Send one frame until acked: reply lines before `ok <seq>`.

        A frame the device rejected as garbled is resent. A garbled or missing ack (an
        unreadable line, an `err` without our seq, an `err unknown command` because `fqt`
        or `frame` was hit) resyncs with a `ping` barrier and resends the same seq: the
        device acks a resend of what it already applied without applying it twice. A `cmd`
        frame is always followed by a barrier (its reply lines are free-form)."""
        seq = self._next_seq() if seq is None else seq
        line = "fqt " + frame_line(seq, kind, payload)
        wait = self.timeout if timeout is None else timeout
        ok, err = f"ok {seq}", f"err {seq} "
        last = ""
        last_reason = ""
        for attempt in range(self.retries + 1):
            send = line
            if self.corrupt_next > 0 and attempt == 0:
                self.corrupt_next -= 1
                send = line[:-1] + ("0" if line[-1] != "0" else "1")
            if attempt:
                self.stats.resends += 1
            self.stats.frames += 1
            self._send(send)
            if kind == "cmd":
                got = self._barrier(wait)
                lines = [] if got is None else got
                result = self._find_ack(lines, ok, err)
            else:
                lines, result = self._read_ack(ok, err, kind, wait)
                if result is None:  # garbled: let the answer arrive whole, then look again
                    got = self._barrier(wait)
                    if got is not None:
                        lines += got
                        result = self._find_ack(lines, ok, err)
            if result is None:
                last = "no readable ack"
                continue
            lines = [ln for ln in lines if ln not in (ok,) and not ln.startswith(err)]
            if result == "ok":
                return lines
            reason = result
            last = reason
            if reason.startswith(_RETRYABLE):
                continue
            if last_reason:  # refused twice: the first refusal was real (the resend may
                raise DeviceError(f"frame {seq} ({kind}): {last_reason}")  # meet new state)
            # `err <our seq>`: refused, so not applied; but a garbled reason may hide a
            # retryable one (`bad crx`): resend once to be sure.
            last_reason = reason
        tries = self.retries + 1
        if last_reason:
            raise DeviceError(f"frame {seq} ({kind}): {last_reason}")
        raise DeviceTimeoutError(f"frame {seq} ({kind}) failed after {tries} tries: {last}")

    @staticmethod
    def _find_ack(lines: list[str], ok: str, err: str) -> str | None:
        """ "ok", an error reason, or None when the lines hold no ack of ours."""
        for ln in lines:
            if ln == ok:
                return "ok"
            if ln.startswith(err):
                return ln[len(err) :] or "error"
        return None

    def _read_ack(self, ok: str, err: str, kind: str, wait: float) -> tuple[list[str], str | None]:
        """Lines until our ack ("ok" or the err reason); None on an unexpected line."""
        expected = _FRAME_REPLIES.get(kind, ())
        deadline = time.monotonic() + wait
        lines: list[str] = []
        while True:
            reply = self.transport.readline(deadline)
            if reply is None:
                self.stats.timeouts += 1
                return lines, None
            reply = _strip_prompt(reply)
            if reply == ok:
                return lines, "ok"
            if reply.startswith(err):
                return lines, reply[len(err) :] or "error"
            if reply.startswith(("progress ", "epoch ", "done ", "note ")):
                self._note(reply)
            elif reply.startswith("fqt "):
                continue  # a shell's echo
            elif expected and reply.startswith(expected):
                lines.append(reply)
            else:
                lines.append(reply)
                return lines, None

    def transfer(
        self,
        type_: int,
        data: bytes,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[str]:
        """Stage `data` with begin/data frames and commit it; reply lines of the commit."""
        head = struct.pack("<B3xII", type_, len(data), zlib.crc32(data))
        try:
            self.frame("begin", head)
            for off in range(0, len(data), self.chunk):
                self.frame("data", data[off : off + self.chunk])
                if progress:
                    progress(min(off + self.chunk, len(data)), len(data))
            return self.frame("commit")
        except DeviceError:
            raise
        except FqtError:
            try:  # leave nothing staged behind
                self.frame("abort")
            except FqtError:
                pass
            raise

    # -- commands --
    def info(self) -> dict[str, str]:
        out = {}
        for line in self.command("info"):
            k, _, v = line.partition(" ")
            out[k] = v
        return out

    def push_samples(
        self,
        x: np.ndarray,
        y: np.ndarray,
        progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """Append int8 samples with labels (one atomic transfer); the store's new count."""
        x = np.ascontiguousarray(x, np.int8).reshape(len(y), -1)
        y = np.asarray(y)
        if len(y) and (y.min() < 0 or y.max() > 0xFFFF):
            raise FqtError("labels must lie in [0, 65535]")
        rec = np.empty((len(y), 2 + x.shape[1]), np.uint8)
        rec[:, 0] = y & 0xFF
        rec[:, 1] = (y >> 8) & 0xFF
        rec[:, 2:] = x.view(np.uint8)
        lines = self.transfer(XFER_SAMPLES, rec.tobytes(), progress)
        counts = [m[1] for ln in lines if (m := re.fullmatch(r"samples (\d+)", ln))]
        # Reply lines carry no CRC: a garbled `samples 300` may read `samples 30`, or the line
        # is lost with a garbled ack. The count is believed once two readings agree.
        seen = counts[-1:]
        for _ in range(self.retries + 1):
            n = self.query_match(("data", "status"), r"samples (\d+)")[1]
            if n in seen:
                return int(n)
            seen.append(n)
        raise DeviceTimeoutError("the device's sample count does not read the same twice")

    def push_blob(self, blob: bytes, load: bool = True) -> None:
        self.transfer(XFER_BLOB, blob)
        if load:
            self.command("load", "pushed")

    def pull_blob(self, progress: Callable[[int, int], None] | None = None) -> bytes:
        """The active model blob (after training: the trained weights). A garbled `export`
        answer or chunk is read again; the whole blob must match the CRC `export` gave."""
        why = ""
        for _ in range(self.retries + 1):
            meta = self._export_meta()
            if meta is None:
                why = "the `export` answer is unreadable"
                continue
            size, crc, step = meta
            out = bytearray()
            while len(out) < size:
                out += self._read_chunk(len(out), min(step, size - len(out)))
                if progress:
                    progress(len(out), size)
            if zlib.crc32(out) == crc:
                return bytes(out)
            why = "the pulled blob does not match the device's crc"
            self.stats.resends += 1
        raise RuntimeFailureError(f"export: {why}")

    def _export_meta(self) -> tuple[int, int, int] | None:
        for line in self.command("export"):
            m = _EXPORT.fullmatch(line)
            if m:
                step = min(self.chunk, int(m[3])) if int(m[3]) > 0 else self.chunk
                return int(m[1]), int(m[2], 16), step
        return None

    def _read_chunk(self, offset: int, n: int) -> bytes:
        for _ in range(self.retries + 1):
            seq = self.seq + 1
            lines = self.frame("read", struct.pack("<II", offset, n))
            chunks = []
            for ln in lines:
                try:
                    chunks.append(parse_frame(ln))
                except ValueError:
                    pass
            if len(chunks) == 1 and chunks[0][:2] == (seq & 0xFFFFFFFF, "chunk"):
                if len(chunks[0][2]) == n:
                    return chunks[0][2]
            self.stats.resends += 1
        raise RuntimeFailureError(f"export: reading bytes {offset}.. kept failing")

    def eval(self, timeout: float = 600.0) -> tuple[int, int]:
        """Run the eval job: (samples, correct)."""
        self.command("eval")
        words = self.wait_event("done eval", timeout).split()
        if "failed" in words:
            raise DeviceError(" ".join(words))
        return int(words[words.index("samples") + 1]), int(words[words.index("correct") + 1])

    def predict(self, index: int) -> tuple[int, np.ndarray]:
        words = self.command("predict", index)[0].split()
        cls = int(words[words.index("class") + 1])
        return cls, np.frombuffer(bytes.fromhex(words[words.index("output") + 1]), np.int8)

    def predict_input(self, x: np.ndarray) -> tuple[int, np.ndarray]:
        hx = np.ascontiguousarray(x, np.int8).tobytes().hex()
        words = self.command("predict", "hex", hx)[0].split()
        cls = int(words[words.index("class") + 1])
        return cls, np.frombuffer(bytes.fromhex(words[words.index("output") + 1]), np.int8)


def _is_query(words: tuple[object, ...]) -> bool:
    w = tuple(str(x) for x in words[:2])
    return w[:1] in _QUERIES or w in _QUERIES


def _split_final(lines: list[str]) -> tuple[list[str], str | None]:
    """A plain command's reply lines and its final `ok`/`err ...` (None when unreadable)."""
    for i in range(len(lines) - 1, -1, -1):
        if lines[i] == "ok" or lines[i].startswith("err "):
            return lines[:i], lines[i]
    return lines, None


def _strip_prompt(line: str) -> str:
    """Drop a shell prompt glued before the reply ("uart:~$ ok")."""
    if "$ " in line and not line.startswith(("ok", "err", "frame ")):
        head, _, rest = line.rpartition("$ ")
        if len(head) < 40 and ":" in head:
            return rest
    return line
