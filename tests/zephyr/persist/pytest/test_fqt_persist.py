"""Save, restart, restore on native_sim: the weights exported after the restart equal the
ones exported before it. Needs the fqt package and scikit-learn in Twister's Python."""

from __future__ import annotations

import numpy as np
import pytest

fqt_device = pytest.importorskip("fqt.device", reason="pip install -e <fqt> into Twister's venv")
datasets = pytest.importorskip("sklearn.datasets", reason="scikit-learn is needed for the data")

from fqt.cli import DEFAULT_MODEL, load_model  # noqa: E402
from twister_harness import DeviceAdapter  # noqa: E402
from twister_harness.exceptions import TwisterHarnessTimeoutException  # noqa: E402


class TwisterTransport(fqt_device._Transport):
    """fqt.device's line transport over Twister's DeviceAdapter (as in the shell suite)."""

    def __init__(self, dut: DeviceAdapter) -> None:
        super().__init__()
        self.dut = dut

    def _read_some(self, timeout: float) -> bytes | None:
        try:
            line = self.dut.readline(timeout=max(timeout, 0.05), print_output=False)
        except TwisterHarnessTimeoutException:
            return b""
        return (line + "\n").encode()

    def write(self, data: bytes) -> None:
        self.dut.write(data)


def connect(dut: DeviceAdapter) -> fqt_device.Device:
    dev = fqt_device.Device(TwisterTransport(dut), timeout=20.0)
    dev.sync()
    return dev


def test_save_restart_restore_keeps_the_weights(dut: DeviceAdapter) -> None:
    d = datasets.load_digits()
    t = load_model(DEFAULT_MODEL).input_tensor
    x = np.clip(np.round(d.images / 16.0 / t.quant.scale[0]) + t.quant.zero_point[0], -128, 127)
    x = x.astype(np.int8).reshape(-1, 8, 8, 1)[:64]
    device = connect(dut)
    device.command("load", "builtin")
    builtin = device.pull_blob()
    device.command("data", "clear")
    device.push_samples(x, d.target[:64])
    device.command("train", "start", 1, 0.01, 8, timeout=30)
    device.wait_event("done train", timeout=300)
    trained = device.pull_blob()
    assert trained != builtin, "training changed no weight"
    saved = " ".join(device.command("save"))
    assert "saved slot" in saved

    dut.launch()  # a new zephyr.exe: RAM is gone, flash.bin stays
    device = connect(dut)
    restored = " ".join(device.command("restore"))
    assert "restored slot" in restored
    assert device.info()["source"] == "restored"
    assert device.pull_blob() == trained
