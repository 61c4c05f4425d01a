"""Issue 5's acceptance: the whole flow against a host device that trains (--params).

push -> train (status while it runs, stop mid-epoch, a full run) -> eval -> export (TFLM
bit-exact with the device) -> save / reset / restore, bad input during training, the
train-device CLI (CSV, PNG, Ctrl-C) over a pty, and the west wrappers. The host device is
built by test_device.py's session fixture.
"""

from __future__ import annotations

import csv
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import time
import tty
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO
from fqt.blob import read_blob, write_blob
from fqt.demo import digits_split, reinit_head
from fqt.device import Device, DeviceError, frame_line
from fqt.export import export_tflite
from fqt.ir import Model
from fqt.plan import WEIGHTED_OPS, plan_memory
from fqt.prepare import prepare
from fqt.tflite_import import load_tflite
from test_device import DIGITS, _raw
from test_device import host_device as _build_host_device

host_device = _build_host_device  # test_device.py's session fixture: builds fqt_host_device

RECORD = 2 + 64  # u16 label + an 8x8 int8 digit
SEED = 1


@dataclass
class Setup:
    model: Model
    head: int
    blob: bytes
    blob_file: Path
    arena: int
    params: int
    x_tr: np.ndarray
    y_tr: np.ndarray
    x_te: np.ndarray
    y_te: np.ndarray


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> Setup:
    """digits_cnn with a re-initialized classifier head (as in fqt.demo), its blob, the
    training memory of the head, and sklearn's digits quantized for it."""
    model = load_tflite(DIGITS)
    head = reinit_head(model, SEED)
    prepare(model)
    plan = plan_memory(model, {head})
    blob = write_blob(model, {head})
    path = tmp_path_factory.mktemp("train") / "head.fqtb"
    path.write_bytes(blob)
    x_tr, y_tr, x_te, y_te = digits_split(model)
    return Setup(
        model, head, blob, path, plan.training_arena, plan.training_params,
        x_tr, y_tr.astype(np.int64), x_te, y_te.astype(np.int64),
    )  # fmt: skip


def _args(s: Setup, *extra: object, model: bool = True, progress_ms: int = 50) -> list[str]:
    args = ["--arena", s.arena, "--params", s.params, "--samples", RECORD * len(s.y_tr)]
    args += ["--progress-ms", progress_ms, *extra]
    if model:
        args = ["--model", s.blob_file, *args]
    return [str(a) for a in args]


def _open(exe: Path, s: Setup, *extra: object, model: bool = True, **kw) -> Device:
    cmd = " ".join([str(exe), *_args(s, *extra, model=model, **kw)])
    return Device.open(f"cmd:{cmd}", timeout=10.0)


def _start(dev: Device, s: Setup, epochs: int, seed: int = SEED) -> list[str]:
    return dev.command("train", "start", epochs, "0.3", 32, "1.0", seed, s.head)


def _run(dev: Device, s: Setup, epochs: int, seed: int = SEED) -> list[str]:
    """A whole train job: its epoch lines and `done train`."""
    _start(dev, s, epochs, seed)
    lines = list(dev.events_until(("done train",), timeout=30))
    assert lines[-1] == f"done train epochs {epochs} samples {epochs * dev_samples(dev)}"
    return [ln for ln in lines if ln.startswith(("epoch ", "done "))]


def dev_samples(dev: Device) -> int:
    return int(dev.command("data", "status")[0].split()[1])


_RUNNING = re.compile(r"train running epoch (\d+)/(\d+) sample (\d+)/(\d+) loss \S+ acc \S+%")


def _status(dev: Device) -> tuple[int, int, int, int]:
    line = dev.command("train", "status")[0]
    m = _RUNNING.fullmatch(line)
    assert m, line
    e, n_e, i, n = (int(g) for g in m.groups())
    return e, n_e, i, n


def _accuracy(dev: Device, s: Setup) -> float:
    dev.command("data", "clear")
    dev.push_samples(s.x_te, s.y_te)
    n, correct = dev.eval()
    assert n == len(s.y_te)
    return correct / n


# --- 1. train: status while running, stop mid-epoch, a full run ---------------------------
def test_train_status_stop_then_full_run(host_device: Path, setup: Setup) -> None:
    s = setup
    with _open(host_device, s) as dev:
        assert dev.info()["trainer"] == "built"
        before = _accuracy(dev, s)
        dev.command("data", "clear")
        assert dev.push_samples(s.x_tr, s.y_tr) == len(s.y_tr)
        n = len(s.y_tr)
        started = _start(dev, s, 1000)
        assert started == [
            f"train started epochs 1000 lr 0.300000 batch 32 lambda_min 1.000000 samples {n} "
            "update sgd schedule cosine"
        ]
        # `train status` answers while the job runs, and its position advances.
        positions = []
        for _ in range(6):
            e, epochs, i, total = _status(dev)
            assert (epochs, total) == (1000, n)
            positions.append((e - 1) * n + i)
            time.sleep(0.02)
        assert positions == sorted(positions) and positions[-1] > positions[0], positions
        # Stop mid-epoch: status and stop sent in one write are served back to back, so
        # the stop lands within one sample of the position status reported.
        dev.transport.write(b"fqt train status\nfqt train stop\n")
        deadline = time.monotonic() + 5
        status = dev.command_tail("train status", deadline)[0]
        stopped = dev.command_tail("train stop", deadline)[0]
        m = _RUNNING.fullmatch(status)
        assert m, status
        e, i = int(m[1]), int(m[3])
        m2 = re.fullmatch(r"stopped train epoch (\d+) sample (\d+)", stopped)
        assert m2, stopped
        assert int(m2[1]) == e and 0 <= int(m2[2]) - i <= 1, (status, stopped)
        assert int(m2[2]) < n  # mid-epoch
        assert dev.command("train", "status") == ["train idle last stopped job idle"]
        # nothing more from the job, and the device still answers
        assert dev.transport.readline(time.monotonic() + 0.3) is None
        dev.events.clear()
        info = dev.info()
        assert info["job"] == "idle" and info["samples"] == str(n)
        assert dev.command("train", "stop") == ["train idle: nothing to stop"]
        # A full run to `done train`.
        lines = _run(dev, s, 3)
        assert [ln.split()[:2] for ln in lines[:3]] == [
            ["epoch", "1"],
            ["epoch", "2"],
            ["epoch", "3"],
        ]
        assert dev.command("train", "status") == ["train idle last done job idle"]
        after = _accuracy(dev, s)
    assert after > before + 0.3, (before, after)


def test_train_int8_grad_state_in_its_smaller_params_pool(host_device: Path, setup: Setup) -> None:
    """`train start ... int8`: the narrow gradient state (docs/training-semantics.md 4.1)
    trains in a params pool sized for it, too small for the int32 state (refused with the
    bytes it is short by)."""
    s = setup
    narrow = plan_memory(s.model, {s.head}, grad_state="int8")
    assert narrow.training_params < s.params
    arena = max(s.arena, narrow.training_arena)
    cmd = (
        f"{host_device} --model {s.blob_file} --arena {arena} --params "
        f"{narrow.training_params} --samples {RECORD * len(s.y_tr)} --progress-ms 50"
    )
    with Device.open(f"cmd:{cmd}", timeout=10.0) as dev:
        before = _accuracy(dev, s)
        dev.command("data", "clear")
        dev.push_samples(s.x_tr, s.y_tr)
        short = s.params - narrow.training_params
        with pytest.raises(DeviceError, match=rf"params.*short by {short} bytes"):
            dev.command("train", "start", 3, "0.3", 32, "1.0", SEED, s.head)
        with pytest.raises(DeviceError, match=rf"params.*short by {short} bytes"):
            dev.command("train", "start", 3, "0.3", 32, "1.0", SEED, s.head, "int32")
        started = dev.command("train", "start", 3, "0.3", 32, "1.0", SEED, s.head, "int8")
        assert started[0].startswith("train started epochs 3 lr 0.300000"), started
        lines = list(dev.events_until(("done train",), timeout=30))
        assert lines[-1] == f"done train epochs 3 samples {3 * len(s.y_tr)}"
        after = _accuracy(dev, s)
    assert after > before + 0.3, (before, after)


# --- 2. export: TFLM equals the device bit for bit -------------------------------------------
def test_export_trained_matches_tflm(host_device: Path, setup: Setup) -> None:
    from tflite_micro.python.tflite_micro import runtime

    s = setup
    k = 30
    with _open(host_device, s) as dev:
        dev.push_samples(s.x_tr, s.y_tr)
        _run(dev, s, 2)
        dev.command("data", "clear")
        dev.push_samples(s.x_te[:k], s.y_te[:k])
        device_out = np.stack([dev.predict(i)[1] for i in range(k)])
        trained_blob = dev.pull_blob()
    assert trained_blob != s.blob
    trained, _ = read_blob(trained_blob)
    tflite = export_tflite(trained, DIGITS.read_bytes())
    tflm = runtime.Interpreter.from_bytes(tflite)
    outs = []
    for x in s.x_te[:k]:
        tflm.set_input(x.reshape(s.model.input_tensor.shape), 0)
        tflm.invoke()
        outs.append(tflm.get_output(0).reshape(-1).copy())
    tflm_out = np.stack(outs)
    assert tflm_out.dtype == np.int8
    np.testing.assert_array_equal(tflm_out, device_out.reshape(k, -1))
    # the untrained head gives other outputs: the export carries the trained weights
    assert not np.array_equal(
        tflm_out, _tflm(export_tflite(read_blob(s.blob)[0], DIGITS.read_bytes()), s, k)
    )


def _tflm(tflite: bytes, s: Setup, k: int) -> np.ndarray:
    from tflite_micro.python.tflite_micro import runtime

    tflm = runtime.Interpreter.from_bytes(tflite)
    outs = []
    for x in s.x_te[:k]:
        tflm.set_input(x.reshape(s.model.input_tensor.shape), 0)
        tflm.invoke()
        outs.append(tflm.get_output(0).reshape(-1).copy())
    return np.stack(outs)


# --- 3. save / reset / restore of trained weights -------------------------------------------
def _predictions(dev: Device, s: Setup, k: int = 20) -> np.ndarray:
    return np.stack([dev.predict_input(x)[1] for x in s.x_te[:k]])


def test_trained_save_reset_restore_and_interrupted_save(
    host_device: Path, setup: Setup, tmp_path: Path
) -> None:
    s = setup
    flash = tmp_path / "flash.bin"
    slot = 65536
    with _open(host_device, s, "--flash", flash, "--slot", slot) as dev:
        dev.push_samples(s.x_tr, s.y_tr)
        _run(dev, s, 2)
        saved = dev.command("save")[0]
        assert saved.startswith("saved slot A seq 1"), saved
        first = dev.pull_blob()
        first_out = _predictions(dev, s)
        dev.transport.proc.kill()  # type: ignore[attr-defined]  # a reset
    assert first != s.blob
    with _open(host_device, s, "--flash", flash, "--slot", slot, model=False) as dev:
        assert dev.info()["name"] == "-"
        line = dev.command("restore")[0]
        assert line.startswith("restored slot A seq 1 name digits_cnn"), line
        np.testing.assert_array_equal(_predictions(dev, s), first_out)
        assert dev.pull_blob() == first
        # the restored model trains on; its save goes to slot B
        dev.push_samples(s.x_tr, s.y_tr)
        _run(dev, s, 1, seed=7)
        second = dev.pull_blob()
        assert second != first
        assert dev.command("save")[0].startswith("saved slot B seq 2")
        dev.transport.proc.kill()  # type: ignore[attr-defined]
    # The second save was cut short by a reset: its tail never reached flash.
    os.truncate(flash, slot + 32 + len(second) // 2)
    with _open(host_device, s, "--flash", flash, "--slot", slot, model=False) as dev:
        line = dev.command("restore")[0]
        assert line.startswith("restored slot A seq 1 name digits_cnn"), line
        np.testing.assert_array_equal(_predictions(dev, s), first_out)
        assert dev.pull_blob() == first


# --- 4. bad input during training ------------------------------------------------------------
def _state(dev: Device) -> tuple[dict[str, str], list[str]]:
    return dev.info(), dev.command("train", "status")


@pytest.mark.parametrize(
    "args, message",
    [
        (("0",), "epochs must be an integer in [1, 1000]"),
        (("1001",), "epochs must be an integer in [1, 1000]"),
        (("2", "0"), "lr must be a decimal in [0.000001, 1"),
        (("2", "1.5"), "lr must be a decimal in [0.000001, 1"),
        (("2", "0.003", "0"), "batch must be an integer in [1, 1024]"),
        (("2", "0.003", "1025"), "batch must be an integer in [1, 1024]"),
        (("2", "0.003", "32", "-0.1"), "lambda_min must be a decimal in [0"),
        (("2", "0.003", "32", "1.01"), "lambda_min must be a decimal in [0"),
        (("2", "0.003", "32", "1", "1", "99"), "trainable must be"),
        (("2", "0.003", "32", "1", "1", "1"), "trainable must be"),  # a pooling layer
        (("2", "0.003", "32", "1", "1", "5,"), "trainable"),
        (("2", "0.003", "32", "0.1", "1", "last", "topk"), "argument 'topk': not an option"),
        (("2", "sgd", "standardized"), "option 'standardized': that kind of option is given"),
        (("2", "cosine", "0.1", "constant"), "option 'constant': that kind of option is given"),
        (("2", "fixed", "dynamic"), "option 'dynamic': that kind of option is given twice"),
        (("2", "int8", "int16"), "option 'int16': that kind of option is given twice"),
        (("2", "0.3", "32", "1", "1", "last", "int4"), "argument 'int4': not an option"),
    ],
)
def test_bad_train_args_change_nothing(
    host_device: Path, setup: Setup, args: tuple[str, ...], message: str
) -> None:
    s = setup
    with _open(host_device, s) as dev:
        dev.push_samples(s.x_tr[:100], s.y_tr[:100])
        before = _state(dev)
        with pytest.raises(DeviceError, match=re.escape(message)):
            dev.command("train", "start", *args)
        assert _state(dev) == before
        assert before[1] == ["train idle last none job idle"]


@pytest.mark.parametrize(
    "args, started",
    [
        ((), "lr 0.300000 batch 32 lambda_min 1.000000 samples 100 update sgd schedule cosine"),
        (("standardized",), "lr 0.003000 batch 32 lambda_min 1.000000 samples 100 update "
         "standardized schedule cosine"),
        (("constant", "4", "standardized", "0.01", "8"), "lr 0.010000 batch 8 lambda_min "
         "1.000000 samples 100 update standardized schedule constant"),
    ],
)  # fmt: skip
def test_train_start_option_words(
    host_device: Path, setup: Setup, args: tuple[str, ...], started: str
) -> None:
    """The option words go anywhere after `start`; without an lr each rule takes its own
    default (0.3 for sgd, an fp32-like lr; 0.003 for the standardized rule)."""
    s = setup
    with _open(host_device, s) as dev:
        dev.push_samples(s.x_tr[:100], s.y_tr[:100])
        lines = dev.command("train", "start", *args)
        assert lines[0].startswith("train started epochs ")
        assert lines[0].split(" ", 4)[4] == started, lines
        dev.command("train", "stop")


def test_commands_busy_while_training(host_device: Path, setup: Setup, tmp_path: Path) -> None:
    import struct
    import zlib

    s = setup
    with _open(host_device, s, "--flash", tmp_path / "f.bin") as dev:
        dev.push_samples(s.x_tr[:200], s.y_tr[:200])
        # a transfer begun before the job and committed while it runs
        rec = bytes([int(s.y_tr[0]), 0]) + s.x_tr[0].tobytes()
        head = struct.pack("<B3xII", 1, len(rec), zlib.crc32(rec))
        assert _raw(dev, "fqt " + frame_line(10, "begin", head)) == "ok 10"
        assert _raw(dev, "fqt " + frame_line(11, "data", rec)) == "ok 11"
        _start(dev, s, 1000)
        hx = s.x_te[0].tobytes().hex()
        refused = [
            ("data", "push", "1", hx),
            ("data", "clear"),
            ("load", "builtin"),
            ("load", "pushed"),
            ("save",),
            ("restore",),
            ("export",),
            ("predict", "0"),
            ("predict", "hex", hx),
            ("eval",),
            ("train", "start", "2", "0.003", "32", "1", "1", str(s.head)),
            ("train", "start", "0"),  # bad args too: busy first, nothing changes
        ]
        for words in refused:
            with pytest.raises(DeviceError, match="busy"):
                dev.command(*words)
            assert _status(dev)[1] == 1000, words
        with pytest.raises(DeviceError, match="busy"):
            dev.push_samples(s.x_te[:5], s.y_te[:5])
        with pytest.raises(DeviceError, match="busy"):
            dev.push_blob(s.blob)
        line = _raw(dev, "fqt " + frame_line(12, "commit", b""))
        while line.startswith(("progress ", "epoch ")):
            line = dev.transport.readline(time.monotonic() + 5)
        assert line.startswith("err 12 busy"), line
        info = dev.info()
        assert info["samples"] == "200" and info["job"] == "train"
        dev.command("train", "stop")
        # after the job the held-back commit goes through
        assert _raw(dev, "fqt " + frame_line(12, "commit", b"")) == "samples 201"
        assert dev.info()["samples"] == "201"


def test_corrupt_frames_and_overlong_push_lose_nothing(host_device: Path, setup: Setup) -> None:
    """Training on a store filled through garbled frames and a refused over-long push gives
    the very same weights as training on a clean push of the same samples."""
    s = setup
    k = 800
    with _open(host_device, s, "--samples", RECORD * 1000) as dev:
        dev.push_samples(s.x_tr[:k], s.y_tr[:k])
        _run(dev, s, 1)
        clean = dev.pull_blob()
    with _open(host_device, s, "--samples", RECORD * 1000) as dev:
        dev.corrupt_next = 4
        assert dev.push_samples(s.x_tr[:k], s.y_tr[:k]) == k
        assert dev.stats.resends == 4
        with pytest.raises(
            DeviceError, match=f"sample store full: it holds {k} of 1000 samples, the transfer adds"
        ):
            dev.push_samples(s.x_tr[k:], s.y_tr[k:])
        assert dev.info()["samples"] == str(k)
        _run(dev, s, 1)
        assert dev.pull_blob() == clean


def test_model_too_big_for_arena_with_trainer(host_device: Path, setup: Setup) -> None:
    s = setup
    cmd = f"{host_device} --arena 960 --params {s.params}"
    with Device.open(f"cmd:{cmd}", timeout=10.0) as dev:
        assert dev.info()["trainer"] == "built"
        with pytest.raises(DeviceError, match=r"needs 1000 bytes of arena.*short by 40 bytes"):
            dev.push_blob(s.blob)
        assert dev.info()["name"] == "-"
    # Inference fits but training every layer does not: refused, nothing changes.
    with _open(host_device, s) as dev:
        dev.push_samples(s.x_tr[:50], s.y_tr[:50])
        before = _state(dev)
        weighted = {layer.index for layer in s.model.layers if layer.op in WEIGHTED_OPS}
        need = plan_memory(s.model, weighted)
        assert need.training_arena > s.arena  # the pool the device was given is the head's
        short = need.training_arena - s.arena
        with pytest.raises(
            DeviceError,
            match=rf"training needs {need.training_arena} B of arena, the pool has {s.arena} B: "
            rf"short by {short} bytes",
        ):
            dev.command("train", "start", 1, "0.003", 8, "1", 1, "all")
        assert _state(dev) == before


# --- 5. the train-device CLI over a pty ------------------------------------------------------
@contextmanager
def _pty_device(exe: Path, args: list[str]) -> Iterator[str]:
    """fqt_host_device on a pty (its master as stdin/stdout): the slave's path takes several
    CLI invocations in turn, like a board's serial port."""
    master, slave = pty.openpty()
    tty.setraw(slave)  # no echo, no CR/LF translation
    proc = subprocess.Popen(
        [str(exe), *args], stdin=master, stdout=master, stderr=subprocess.DEVNULL
    )
    os.close(master)
    try:
        yield os.ttyname(slave)  # the slave stays open here: no hangup between clients
    finally:
        proc.kill()
        proc.wait()
        os.close(slave)


def test_cli_train_device_log_plot_and_ctrl_c(
    host_device: Path, setup: Setup, tmp_path: Path, capsys
) -> None:
    from fqt import cli

    s = setup
    data = tmp_path / "train.npz"
    np.savez(data, x=s.x_tr, y=s.y_tr)
    log, plot = tmp_path / "log.csv", tmp_path / "log.png"
    with _pty_device(host_device, _args(s, progress_ms=10)) as port:
        assert cli.main(["push", str(data), "--port", port, "--clear"]) == 0
        assert f"the device holds {len(s.y_tr)}" in capsys.readouterr().out
        argv = ["train-device", "--port", port, "--epochs", "2", "--lr", "0.003"]
        argv += ["--batch", "32", "--seed", "1", "--trainable", str(s.head)]
        assert cli.main([*argv, "--log", str(log), "--plot", str(plot)]) == 0
        out = capsys.readouterr().out.splitlines()
        assert f"done train epochs 2 samples {2 * len(s.y_tr)}" in out
        logged = [ln for ln in out if ln.startswith(("progress train", "epoch "))]
        with open(log, newline="") as f:
            rows = list(csv.DictReader(f))
        assert len(rows) == len(logged) and len(rows) > 2
        assert [int(r["epoch"]) for r in rows if r["kind"] == "epoch"] == [1, 2]
        for r, ln in zip(rows, logged, strict=True):
            kv = ln.split()
            assert float(r["loss"]) == float(kv[kv.index("loss") + 1])
            assert float(r["accuracy"]) == pytest.approx(
                float(kv[kv.index("acc") + 1].rstrip("%")) / 100
            )
        png = plot.read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" in png[-12:]

        # Ctrl-C while it trains: the CLI sends `train stop` and says so.
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fqt.cli",
                *argv[:3],
                "--epochs",
                "1000",
                *argv[5:],
                "--log",
                str(tmp_path / "l2.csv"),
                "--plot",
                str(tmp_path / "l2.png"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            seen = _read_until(proc, "progress train", 20)
            proc.send_signal(signal.SIGINT)
            rest, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert "Traceback" not in err, err
        assert proc.returncode == 130, err  # interrupted: exit 130 (README "Exit codes")
        assert "stopped: `fqt train stop` sent" in seen + rest
        with Device.open(port, timeout=10.0) as dev:
            assert dev.command("train", "status") == ["train idle last stopped job idle"]
            assert dev.info()["job"] == "idle"
        assert (tmp_path / "l2.csv").exists()

    # The same with a cmd: port: one invocation pushes (--data) and trains.
    port = "cmd:" + " ".join([str(host_device), *_args(s, progress_ms=10)])
    cmd = [sys.executable, "-m", "fqt.cli", "train-device", "--port", port]
    cmd += ["--data", str(data), "--epochs", "1000", "--trainable", str(s.head)]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path
    )
    try:
        seen = _read_until(proc, "progress train", 20)
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Traceback" not in err and proc.returncode == 130, (
        err
    )  # interrupted: README "Exit codes"
    assert "stopped: `fqt train stop` sent" in seen + rest
    assert (tmp_path / "train_log.csv").exists() and (tmp_path / "train_log.png").exists()


def _read_until(proc: subprocess.Popen, prefix: str, timeout: float) -> str:
    assert proc.stdout is not None
    got = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([proc.stdout], [], [], 0.2)
        if r:
            line = proc.stdout.readline()
            if not line:
                break
            got += line
            if line.startswith(prefix):
                return got
    raise AssertionError(f"no `{prefix}` line from the CLI: {got!r}")


# --- 6. west wrappers --------------------------------------------------------------------------
def test_west_device_commands_help(tmp_path: Path) -> None:
    west = shutil.which("west", path=str(Path(sys.executable).parent))
    if west is None:
        pytest.skip("west is not installed in this environment")
    ws = tmp_path / "ws"
    (ws / ".west").mkdir(parents=True)
    shutil.copytree(REPO / "scripts", ws / "fqt" / "scripts")
    (ws / "fqt" / "west.yml").write_text(
        "manifest:\n  self:\n    west-commands: scripts/west-commands.yml\n"
    )
    (ws / ".west" / "config").write_text("[manifest]\npath = fqt\nfile = west.yml\n")
    for name, flag in (
        ("fqt-push", "--clear"),
        ("fqt-train", "--epochs"),
        ("fqt-export", "--source"),
    ):
        r = subprocess.run([west, name, "--help"], cwd=ws, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert "--port" in r.stdout and flag in r.stdout, r.stdout
