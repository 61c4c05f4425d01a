"""The device service end to end without a board: fqt.device against fqt_host_device.

The host device (modules/fqt/host/host_device.c) runs the same portable service as the
Zephyr app, on stdin/stdout; it is built with CMake into build/host in a session fixture.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURE_MODELS, REPO
from fqt.blob import write_blob
from fqt.device import Device, DeviceError, DeviceTimeoutError, frame_line
from fqt.errors import FqtError
from fqt.golden.interpreter import infer_batch
from fqt.prepare import prepare
from fqt.tflite_import import load_tflite

BUILD_DIR = REPO / "build" / "host"
DIGITS = FIXTURE_MODELS / "digits_cnn.tflite"


@pytest.fixture(scope="session")
def host_device() -> Path:
    exe = BUILD_DIR / "fqt_host_device"
    cmake = shutil.which("cmake")
    if cmake is None:
        if exe.exists():
            return exe
        pytest.skip("cmake is not installed and build/host/fqt_host_device is absent")
    if not (BUILD_DIR / "CMakeCache.txt").exists():
        gen = ["-G", "Ninja"] if shutil.which("ninja") else []
        subprocess.run([cmake, "-S", str(REPO), "-B", str(BUILD_DIR), *gen], check=True)
    proc = subprocess.run(
        [cmake, "--build", str(BUILD_DIR), "--target", "fqt_host_device"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"building fqt_host_device failed:\n{proc.stdout[-3000:]}{proc.stderr}")
    return exe


@pytest.fixture(scope="session")
def digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    model = load_tflite(DIGITS)
    prepare(model)
    d = load_digits()
    _, x_test, _, y_test = train_test_split(
        d.images / 16.0, d.target, test_size=0.2, random_state=0, stratify=d.target
    )
    t = model.input_tensor
    xq = np.clip(np.round(x_test / t.quant.scale[0]) + t.quant.zero_point[0], -128, 127)
    xq = xq.astype(np.int8).reshape((-1, *t.shape))
    return model, write_blob(model), xq, y_test.astype(np.int64)


@pytest.fixture
def blob_file(tmp_path: Path, digits) -> Path:
    p = tmp_path / "digits.fqtb"
    p.write_bytes(digits[1])
    return p


def _open(exe: Path, *args: object, timeout: float = 5.0) -> Device:
    cmd = " ".join([str(exe), *(str(a) for a in args)])
    return Device.open(f"cmd:{cmd}", timeout=timeout)


def test_info(host_device: Path, blob_file: Path, digits) -> None:
    with _open(host_device, "--model", blob_file, "--arena", 4096) as dev:
        info = dev.info()
    assert info["name"] == "digits_cnn"
    assert info["layers"] == str(len(digits[0].layers))
    assert info["input_bytes"] == "64"
    assert info["classes"] == "10"
    assert info["arena_size"] == "4096"
    assert int(info["arena_used"]) <= 4096
    assert info["version"]
    assert info["trainer"] == "not-built"


def test_push_eval_predict_match_golden(host_device: Path, blob_file: Path, digits) -> None:
    model, _, xq, y = digits
    golden = infer_batch(model, xq).reshape(len(xq), -1)
    with _open(host_device, "--model", blob_file) as dev:
        seen = []
        assert dev.push_samples(xq, y, progress=lambda a, b: seen.append(a)) == len(y)
        assert seen[-1] == len(y) * 66
        n, correct = dev.eval()
        assert n == len(y)
        assert correct == int((golden.argmax(axis=1) == y).sum())
        for i in (0, 1, 17, 359):
            cls, out = dev.predict(i)
            np.testing.assert_array_equal(out, golden[i])
            assert cls == int(golden[i].argmax())
        cls, out = dev.predict_input(xq[3])
        np.testing.assert_array_equal(out, golden[3])


def test_overlong_push_fails_and_store_intact(host_device: Path, blob_file: Path, digits) -> None:
    _, _, xq, y = digits
    with _open(host_device, "--model", blob_file, "--samples", 66 * 50) as dev:
        assert dev.push_samples(xq[:40], y[:40]) == 40
        with pytest.raises(DeviceError, match="sample store full: it holds 40 of 50"):
            dev.push_samples(xq[40:60], y[40:60])
        assert dev.info()["samples"] == "40"
        _, out = dev.predict(39)
        golden = infer_batch(digits[0], xq[39:40]).reshape(-1)
        np.testing.assert_array_equal(out, golden)
        assert dev.push_samples(xq[40:50], y[40:50]) == 50


def test_corrupt_frame_rejected_and_resent(host_device: Path, blob_file: Path, digits) -> None:
    _, _, xq, y = digits
    with _open(host_device, "--model", blob_file) as dev:
        # By hand: a bad CRC and an out-of-order seq are refused with their seq.
        good = frame_line(7, "begin", bytes(12))
        assert "bad crc" in _raw(dev, "fqt " + good[:-1] + ("0" if good[-1] != "0" else "1"))
        assert _raw(dev, "fqt " + frame_line(100, "data", b"\x01")).startswith(
            "err 100 no open transfer"
        )
        dev.corrupt_next = 3
        assert dev.push_samples(xq[:30], y[:30]) == 30
        assert dev.stats.resends == 3
        assert dev.eval()[0] == 30


def _raw(dev: Device, line: str) -> str:
    dev.transport.write(line.encode() + b"\n")
    got = dev.transport.readline(time.monotonic() + 5)
    assert got is not None
    return got


def test_out_of_order_and_uncommitted_transfer(host_device: Path, blob_file: Path, digits) -> None:
    _, _, xq, y = digits
    with _open(host_device, "--model", blob_file) as dev:
        rec = np.concatenate([[y[0], 0], xq[0].reshape(-1).view(np.uint8)]).astype(np.uint8)
        import struct
        import zlib

        head = struct.pack("<B3xII", 1, len(rec), zlib.crc32(rec.tobytes()))
        assert _raw(dev, "fqt " + frame_line(10, "begin", head)) == "ok 10"
        assert _raw(dev, "fqt " + frame_line(12, "data", rec.tobytes())).startswith(
            "err 12 out of order: expected seq 11"
        )
        assert _raw(dev, "fqt " + frame_line(11, "data", rec.tobytes())) == "ok 11"
        # not committed: nothing in the store
        assert dev.info()["samples"] == "0"
        assert _raw(dev, "fqt " + frame_line(12, "abort", b"")) == "ok 12"
        assert dev.info()["samples"] == "0"


@pytest.mark.parametrize(
    "words, message",
    [
        (("train", "start", "0"), "epochs must be an integer in [1, 1000]"),
        (("train", "start", "5", "2.5"), "lr must be a decimal"),
        (("train", "start", "5", "0.01", "0"), "batch must be an integer in [1, 1024]"),
        (("train", "start", "5", "0.01", "8", "1.5"), "lambda_min must be a decimal in [0"),
        (("train", "start", "5", "0.01", "8", "1", "x"), "seed must be an integer"),
        (("train", "start", "5", "0.01", "8", "1", "0", "99"), "trainable must be"),
        (("predict", "400"), "index must be an integer in [0, 9]"),
        (("predict", "-1"), "index must be an integer"),
        (("data", "push", "10", "00" * 64), "label must be an integer in [0, 9]"),
        (("data", "push", "1", "00"), "input must be 64 bytes"),
        (("load", "flash"), "usage: fqt load builtin|pushed"),
        (("eval", "now"), "usage: fqt eval"),
        (("nonsense",), "unknown command"),
    ],
)
def test_out_of_range_args_rejected(
    host_device: Path, blob_file: Path, digits, words, message
) -> None:
    _, _, xq, y = digits
    with _open(host_device, "--model", blob_file) as dev:
        dev.push_samples(xq[:10], y[:10])
        before = dev.info()
        with pytest.raises(DeviceError, match=message.replace("[", r"\[").replace("]", r"\]")):
            dev.command(*words)
        assert dev.info() == before


def test_train_without_engine_says_so(host_device: Path, blob_file: Path, digits) -> None:
    _, _, xq, y = digits
    with _open(host_device, "--model", blob_file) as dev:
        dev.push_samples(xq[:10], y[:10])
        with pytest.raises(DeviceError, match="training engine not built"):
            dev.command("train", "start", "1", "0.01", "8")
        assert dev.command("train", "status")[0].startswith("train idle")


def test_model_too_big_for_arena(host_device: Path, digits) -> None:
    _, blob, _, _ = digits
    need = 1000  # 640 of planned buffers + 360 of the conv patch-matrix scratch
    with _open(host_device, "--arena", need - 40) as dev:
        with pytest.raises(DeviceError, match=f"needs {need} bytes of arena.*short by 40 bytes"):
            dev.push_blob(blob)
        assert dev.info()["name"] == "-"


def test_push_blob_then_load(host_device: Path, digits) -> None:
    model, blob, xq, _y = digits
    with _open(host_device) as dev:
        assert dev.info()["name"] == "-"
        dev.push_blob(blob)
        assert dev.info()["name"] == "digits_cnn"
        assert dev.pull_blob() == blob
        _, out = dev.predict_input(xq[0])
        np.testing.assert_array_equal(out, infer_batch(model, xq[:1]).reshape(-1))


def test_save_reset_restore(host_device: Path, blob_file: Path, digits, tmp_path) -> None:
    _model, blob, xq, _y = digits
    flash = tmp_path / "flash.bin"
    with _open(host_device, "--model", blob_file, "--flash", flash) as dev:
        assert dev.command("save")[0].startswith("saved slot A seq 1")
        _, before = dev.predict_input(xq[5])
        proc = dev.transport.proc  # type: ignore[attr-defined]
        proc.kill()  # a reset: no orderly shutdown
    with _open(host_device, "--flash", flash) as dev:
        assert dev.info()["name"] == "-"
        assert dev.command("restore")[0].startswith("restored slot A seq 1 name digits_cnn")
        _, after = dev.predict_input(xq[5])
        np.testing.assert_array_equal(before, after)
        assert dev.pull_blob() == blob


def test_interrupted_save_keeps_last_good(
    host_device: Path, blob_file: Path, digits, tmp_path
) -> None:
    from fqt.golden.interpreter import infer_batch as golden

    model, _blob, xq, _ = digits
    other_model = load_tflite(FIXTURE_MODELS / "fc_softmax.tflite")
    prepare(other_model)
    other = write_blob(other_model)
    flash = tmp_path / "flash.bin"
    slot = 65536
    with _open(host_device, "--model", blob_file, "--flash", flash, "--slot", slot) as dev:
        assert dev.command("save")[0].startswith("saved slot A seq 1")
        dev.push_blob(other)
        assert dev.command("save")[0].startswith("saved slot B seq 2")
    # Slot B's write was cut short (a reset mid-save): its tail never reached flash.
    os.truncate(flash, slot + 32 + len(other) // 2)
    with _open(host_device, "--flash", flash, "--slot", slot) as dev:
        line = dev.command("restore")[0]
        assert line.startswith("restored slot A seq 1 name digits_cnn"), line
        _, out = dev.predict_input(xq[2])
        np.testing.assert_array_equal(out, golden(model, xq[2:3]).reshape(-1))
        # the next save goes to the broken slot, never over the good one
        assert dev.command("save")[0].startswith("saved slot B seq 2")


def test_unresponsive_device_times_out() -> None:
    t0 = time.monotonic()
    with pytest.raises(DeviceTimeoutError, match="no answer from the device within 1"):
        Device.open("cmd:sleep 100", timeout=1.0)
    assert time.monotonic() - t0 < 5


def test_device_that_exits_is_an_error() -> None:
    with pytest.raises(FqtError, match="closed the connection"):
        Device.open("cmd:true", timeout=2.0)


def test_cli_push_eval_export(host_device: Path, blob_file: Path, digits, tmp_path) -> None:
    from fqt import cli

    _model, _blob, xq, y = digits
    data = tmp_path / "d.npz"
    np.savez(data, x=xq[:50], y=y[:50])
    flash = tmp_path / "flash.bin"
    port = f"cmd:{host_device} --model {blob_file} --flash {flash}"
    assert cli.main(["device-eval", "--port", port, "--data", str(data), "--json"]) == 0
    out = tmp_path / "trained.tflite"
    assert cli.main(["export", "--port", port, "--source", str(DIGITS), "-o", str(out)]) == 0
    assert out.read_bytes() == DIGITS.read_bytes()  # untrained: the same weights
    # the device answers `err`: a runtime failure, exit 1 (README "Exit codes")
    assert cli.main(["train-device", "--port", port, "--data", str(data)]) == 1


def _slot_blob_rewrite(flash: Path, slot_size: int, slot: int, edit) -> None:
    """Edit slot `slot`'s header or blob and recompute the slot's CRCs (a copy that
    passes the storage checks but not what `edit` breaks)."""
    import struct
    import zlib

    data = bytearray(flash.read_bytes())
    base = slot * slot_size
    size = struct.unpack_from("<I", data, base + 8)[0]
    edit(data, base)
    blob = bytes(data[base + 32 : base + 32 + size])
    struct.pack_into("<I", data, base + 12, zlib.crc32(blob))
    struct.pack_into("<I", data, base + 16, zlib.crc32(bytes(data[base : base + 16])))
    flash.write_bytes(bytes(data))


def _two_saved_slots(host_device: Path, blob_file: Path, flash: Path, slot: int) -> None:
    other_model = load_tflite(FIXTURE_MODELS / "fc_softmax.tflite")
    prepare(other_model)
    with _open(host_device, "--model", blob_file, "--flash", flash, "--slot", slot) as dev:
        assert dev.command("save")[0].startswith("saved slot A seq 1")
        dev.push_blob(write_blob(other_model))
        assert dev.command("save")[0].startswith("saved slot B seq 2")


def test_restore_falls_back_to_the_older_slot(
    host_device: Path, blob_file: Path, digits, tmp_path
) -> None:
    """The newest copy passes the slot CRCs but fails the model check: restore skips it
    and loads the older valid one."""
    flash, slot = tmp_path / "flash.bin", 65536
    _two_saved_slots(host_device, blob_file, flash, slot)

    def bad_version(data: bytearray, base: int) -> None:
        data[base + 32 + 4] = 9  # the blob's version_major

    _slot_blob_rewrite(flash, slot, 1, bad_version)
    with _open(host_device, "--flash", flash, "--slot", slot) as dev:
        lines = dev.command("restore")
        assert lines[0].startswith("skipped slot B seq 2: "), lines
        assert lines[1].startswith("restored slot A seq 1 name digits_cnn"), lines
        assert dev.pull_blob() == digits[1]


def test_slot_header_reserved_bytes_are_checked(
    host_device: Path, blob_file: Path, digits, tmp_path
) -> None:
    flash, slot = tmp_path / "flash.bin", 65536
    _two_saved_slots(host_device, blob_file, flash, slot)

    def reserved(data: bytearray, base: int) -> None:
        data[base + 27] = 1  # header bytes 20..31 are reserved, 0

    _slot_blob_rewrite(flash, slot, 1, reserved)
    with _open(host_device, "--flash", flash, "--slot", slot) as dev:
        lines = dev.command("restore")
        assert lines[0].startswith("restored slot A seq 1 name digits_cnn"), lines


@pytest.mark.parametrize(
    "line,reason",
    [
        ("fqt info extra", "usage: fqt info"),
        ("fqt help me", "usage: fqt help"),
        ("fqt save now", "usage: fqt save"),
        ("fqt\tinfo", "bad separator"),
        ("fqt  info", "bad separator"),
        ("fqt info ", "bad separator"),
        ("fqt ping\tx", "bad separator"),
    ],
)
def test_extra_arguments_and_separators_refused(
    host_device: Path, blob_file: Path, line: str, reason: str
) -> None:
    with _open(host_device, "--model", blob_file) as dev:
        answer = _raw(dev, line)
        assert answer.startswith("err ") and reason in answer, answer
        assert dev.info()["name"] == "digits_cnn"  # and the client still works
