"""An emulated board that stays up: `fqt device serve`.

The host-device build of the firmware (fqt_host_device, the same portable service a board
runs) or QEMU running a built Zephyr app is started once and put behind a pty, so that
every client command (`fqt deploy`, `fqt push`, `fqt device-eval`, ...) talks to the same
device with the same state, as it would to a board's UART:

    with EmulatedBoard(blob=Path("m.fqtb"), board=get_board("mps2/an385")) as emu:
        with Device.open(emu.port) as dev:   # a /dev/pts/N path
            ...

The host device is sized from the board's devicetree pools (fqt.boards: fqt-arena,
fqt-params, the sample store, CONFIG_FQT_MODEL_BUFFER_SIZE), never from the model.
Serving is a relay between the pty's master side and the device's stdin/stdout; the
relay keeps the pty's other side open, so clients come and go and the device stays up.
Lines the device writes to its stderr (e.g. why its built-in model did not load) are
passed through: the start fails with them when the model did not load, and later ones
are printed by `log`.
"""

from __future__ import annotations

import errno
import os
import random
import select
import shlex
import subprocess
import termios
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from .boards import Board
from .errors import FqtError
from .resources import host_device_path, missing_binary

# QEMU machines of the boards fqt builds for (Zephyr's boards/*/board.cmake).
QEMU_MACHINES = {
    "qemu_cortex_m3": ["-cpu", "cortex-m3", "-machine", "lm3s6965evb"],
    "mps2/an385": ["-cpu", "cortex-m3", "-machine", "mps2-an385"],
}


def host_device_command(
    host_device: str | Path,
    board: Board,
    blob: str | Path | None = None,
    flash: str | Path | None = None,
    progress_ms: int = 1000,
) -> list[str]:
    """fqt_host_device's command line sized from the board's pools."""
    cmd = [
        str(host_device),
        "--arena", str(board.arena_pool),
        "--params", str(board.params_pool),
        "--samples", str(board.sample_pool),
        "--model-buffer", str(board.model_buffer),
        "--progress-ms", str(progress_ms),
    ]  # fmt: skip
    if flash is not None:
        cmd += ["--flash", str(flash)]
    if blob is not None:
        cmd += ["--model", str(blob)]
    return cmd


def zephyr_board(build_dir: Path) -> str:
    """The board a Zephyr build dir was configured for (its CMakeCache's BOARD)."""
    cache = build_dir / "CMakeCache.txt"
    try:
        text = cache.read_text()
    except OSError:
        raise FqtError(f"{build_dir}: not a Zephyr build directory (no CMakeCache.txt)") from None
    for line in text.splitlines():
        if line.startswith(("BOARD:", "CACHED_BOARD:")):
            return line.split("=", 1)[1].strip()
    raise FqtError(f"{cache}: names no BOARD")


def qemu_command(build_dir: Path, qemu: str = "qemu-system-arm") -> list[str]:
    """qemu-system-arm running the build's zephyr.elf with its UART on stdin/stdout."""
    elf = build_dir / "zephyr" / "zephyr.elf"
    if not elf.is_file():
        raise FqtError(f"{elf} is missing: build the app first (west build -b <board> app)")
    board = zephyr_board(build_dir)
    machine = QEMU_MACHINES.get(board.split("/")[0] if board.startswith("qemu") else board)
    if machine is None:
        raise FqtError(f"no QEMU machine for board '{board}' (known: {', '.join(QEMU_MACHINES)})")
    return [qemu, *machine, "-nographic", "-vga", "none", "-net", "none", "-monitor", "none",
            "-serial", "stdio", "-kernel", str(elf)]  # fmt: skip


def _ends(token: str) -> Callable[[str], bool]:
    """A line that answers `fqt ping token` (after any prompt)."""
    return lambda line: line.endswith(f"pong {token}")


class EmulatedBoard:
    """A device process behind a pty; `port` is the path clients open."""

    def __init__(
        self,
        command: list[str],
        *,
        log: Callable[[str], None] | None = None,
        ready_timeout: float = 30.0,
        expect_model: bool = False,
    ) -> None:
        self.command = command
        self.log = log or (lambda line: None)
        self.ready_timeout = ready_timeout
        self.expect_model = expect_model
        self.port = ""
        self.stderr_lines: list[str] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._master = self._slave = -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.exit_reason = ""
        self.info: dict[str, str] = {}
        self._pending = ""

    # -- life cycle --
    def start(self) -> str:
        exe = Path(self.command[0])
        if exe.is_absolute() and not exe.is_file():
            raise missing_binary(exe, "the device program")
        try:
            self._proc = subprocess.Popen(
                self.command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                bufsize=0,
                start_new_session=True,  # a Ctrl-C in the terminal reaches the server only
            )
        except OSError as e:
            raise FqtError(f"cannot start `{shlex.join(self.command)}`: {e.strerror}") from None
        try:
            self._wait_ready()
        except BaseException:
            self._kill()
            raise
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.port = os.ttyname(self._slave)
        return self.port

    def _pipe_lines(self, deadline: float) -> tuple[list[str], bool]:
        """Lines of the device's stdout until deadline; stderr lines are kept aside."""
        assert self._proc is not None and self._proc.stdout and self._proc.stderr
        out, err = self._proc.stdout.fileno(), self._proc.stderr.fileno()
        lines: list[str] = []
        r, _, _ = select.select([out, err], [], [], max(0.0, deadline - time.monotonic()))
        for fd in r:
            data = os.read(fd, 4096)
            if not data:
                return lines, False
            text = data.decode("utf-8", "replace")
            if fd == err:
                for ln in text.splitlines():
                    if ln.strip():
                        self.stderr_lines.append(ln.strip())
                        self.log(ln.strip())
            else:
                self._pending += text
                *full, self._pending = self._pending.split("\n")
                lines += [ln.strip("\r\x00 ") for ln in full]
        return lines, True

    def _ask(self, line: str, until: Callable[[str], bool], timeout: float) -> list[str]:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(line.encode() + b"\n")
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while time.monotonic() < deadline:
            lines, alive = self._pipe_lines(deadline)
            for ln in lines:
                seen.append(ln)
                if until(ln):
                    return seen
            if not alive:
                why = "; ".join(self.stderr_lines[-3:]) or f"exit status {self._proc.wait()}"
                raise FqtError(f"the device exited while starting: {why}")
        raise FqtError(
            f"the device did not answer `{line}` within {timeout:g} s "
            f"(`{shlex.join(self.command)}`)"
        )

    def _wait_ready(self) -> None:
        self._pending = ""
        deadline = time.monotonic() + self.ready_timeout
        while True:  # ping until the device answers (a Zephyr app may still be booting)
            token = f"{random.randrange(1 << 32):08x}"
            try:
                self._ask(f"fqt ping {token}", _ends(token), 1.0)
                break
            except FqtError:
                if time.monotonic() >= deadline or self._proc is None or self._proc.poll():
                    raise
        info = self._ask("fqt info", lambda ln: ln.endswith(("ok",)) or " err " in ln, 5.0)
        for ln in info:
            k, _, v = ln.rpartition("$ ")[2].partition(" ")
            self.info[k] = v
        time.sleep(0.05)
        self._pipe_lines(time.monotonic() + 0.05)  # the tail of the answer, stderr included
        self._pending = ""
        if self.expect_model and self.info.get("name", "-") == "-":
            why = "; ".join(self.stderr_lines) or "it gave no reason"
            raise FqtError(f"the device did not load the model: {why}")

    def serve(self, stop: threading.Event | None = None) -> None:
        """Relay between the pty and the device until stop is set or the device exits."""
        stop = stop or self._stop
        assert self._proc is not None and self._proc.stdin and self._proc.stdout
        assert self._proc.stderr is not None
        dev_in = self._proc.stdin.fileno()
        dev_out, dev_err = self._proc.stdout.fileno(), self._proc.stderr.fileno()
        to_client = b""
        while not stop.is_set():
            r, _, _ = select.select([self._master, dev_out, dev_err], [], [], 0.1)
            if self._master in r:
                try:
                    data = os.read(self._master, 4096)
                except OSError as e:
                    if e.errno not in (errno.EAGAIN, errno.EIO):
                        raise
                    data = b""
                if data:
                    try:
                        os.write(dev_in, data)
                    except BrokenPipeError:
                        self.exit_reason = "the device closed its input"
                        return
            if dev_err in r:
                data = os.read(dev_err, 4096)
                for ln in data.decode("utf-8", "replace").splitlines():
                    if ln.strip():
                        self.stderr_lines.append(ln.strip())
                        self.log(ln.strip())
            if dev_out in r:
                data = os.read(dev_out, 4096)
                if not data:
                    code = self._proc.wait()
                    why = "; ".join(self.stderr_lines[-3:])
                    self.exit_reason = f"the device exited (status {code})" + (
                        f": {why}" if why else ""
                    )
                    return
                to_client += data
            while to_client:
                try:
                    n = os.write(self._master, to_client)
                    to_client = to_client[n:]
                except BlockingIOError:
                    # Nobody reads the pty: drop what waits there unread, as a UART
                    # with no listener would, so the device never blocks.
                    termios.tcflush(self._slave, termios.TCIFLUSH)
                except OSError:
                    to_client = b""

    def start_background(self) -> str:
        """start() and relay in a daemon thread (for `fqt demo` and tests)."""
        port = self.start()
        self._thread = threading.Thread(target=self.serve, name="fqt-serve", daemon=True)
        self._thread.start()
        return port

    def _kill(self) -> None:
        proc = self._proc
        if proc is None:
            return
        for f in (proc.stdin,):
            try:
                if f is not None:
                    f.close()
            except OSError:
                pass
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for f in (proc.stdout, proc.stderr):
            if f is not None:
                f.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._kill()
        for fd in (self._master, self._slave):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._master = self._slave = -1

    def __enter__(self) -> EmulatedBoard:
        if not self.port:
            self.start_background()
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def host_board(
    board: Board,
    blob: str | Path | None = None,
    flash: str | Path | None = None,
    progress_ms: int = 1000,
    host_device: str | Path | None = None,
    log: Callable[[str], None] | None = None,
) -> EmulatedBoard:
    """The host device sized for `board`, behind a pty (not started yet)."""
    exe = Path(host_device) if host_device else host_device_path()
    if not exe.is_file():
        raise missing_binary(exe, "the host device")
    cmd = host_device_command(exe.resolve(), board, blob, flash, progress_ms)
    return EmulatedBoard(cmd, log=log, expect_model=blob is not None)
