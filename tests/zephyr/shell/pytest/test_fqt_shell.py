"""The fqt app's shell on the target, driven with the same client the west commands use
(fqt.device) through Twister's device adapter. Needs the fqt package (pip install -e
<fqt>) and scikit-learn in Twister's Python."""

from __future__ import annotations

import numpy as np
import pytest

fqt_device = pytest.importorskip("fqt.device", reason="pip install -e <fqt> into Twister's venv")
datasets = pytest.importorskip("sklearn.datasets", reason="scikit-learn is needed for the data")

from fqt.cli import DEFAULT_MODEL, load_model  # noqa: E402
from fqt.golden.interpreter import infer_batch  # noqa: E402
from twister_harness import DeviceAdapter  # noqa: E402
from twister_harness.exceptions import TwisterHarnessTimeoutException  # noqa: E402


class TwisterTransport(fqt_device._Transport):
    """fqt.device's line transport over Twister's DeviceAdapter (QEMU or a board)."""

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


@pytest.fixture(scope="module")
def device(dut: DeviceAdapter) -> fqt_device.Device:
    dev = fqt_device.Device(TwisterTransport(dut), timeout=20.0)
    dev.sync()
    return dev


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    d = datasets.load_digits()
    model = load_model(DEFAULT_MODEL)
    t = model.input_tensor
    x = np.clip(np.round(d.images / 16.0 / t.quant.scale[0]) + t.quant.zero_point[0], -128, 127)
    x = x.astype(np.int8).reshape(-1, 8, 8, 1)
    rng = np.random.default_rng(7)
    order = rng.permutation(len(x))
    # The qemu_cortex_m3 sample store holds ~120 digits: 80 to train on, 40 to check.
    return x[order[:80]], d.target[order[:80]], x[order[80:120]], d.target[order[80:120]]


def test_info(device: fqt_device.Device) -> None:
    device.command("load", "builtin")
    info = device.info()
    assert info["name"] == "digits_cnn" and info["layers"] == "7"
    assert int(info["arena_size"]) >= int(info["arena_used"]) > 0


def test_push_and_predict_match_golden(device: fqt_device.Device, digits) -> None:
    _, _, x_check, y_check = digits
    device.command("data", "clear")
    device.push_samples(x_check, y_check)
    assert device.info()["samples"] == str(len(x_check))
    golden = infer_batch(load_model(DEFAULT_MODEL), x_check[:5])
    for i in range(5):
        _, out = device.predict(i)
        np.testing.assert_array_equal(out.reshape(-1), golden[i].reshape(-1))


def test_corrupt_frame_is_rejected_and_device_keeps_working(
    device: fqt_device.Device, digits
) -> None:
    _, _, x_check, y_check = digits
    samples_before = int(device.info()["samples"])
    resends_before = device.stats.resends
    device.corrupt_next = 2  # garble the first attempt of the next two frames on the wire
    device.push_samples(x_check[:4], y_check[:4])
    assert device.stats.resends >= resends_before + 2  # rejected by CRC, then resent
    assert int(device.info()["samples"]) == samples_before + 4
    _, out = device.predict(samples_before)
    golden = infer_batch(load_model(DEFAULT_MODEL), x_check[:1])
    np.testing.assert_array_equal(out.reshape(-1), golden[0].reshape(-1))


def test_out_of_range_argument(device: fqt_device.Device) -> None:
    with pytest.raises(fqt_device.DeviceError):
        device.command("train", "start", "0")
    assert device.info()["job"] == "idle"


def test_train_raises_accuracy_then_stop_and_export(device: fqt_device.Device, digits) -> None:
    from fqt.blob import read_blob, write_blob
    from fqt.demo import reinit_head
    from fqt.prepare import prepare
    from fqt.tflite_import import load_tflite

    x_train, y_train, x_check, y_check = digits
    if device.info().get("trainer") != "built":
        pytest.fail("the firmware has no training engine")
    # A fresh classifier head, as when the device must learn new classes: pushed as a blob.
    model = load_tflite(DEFAULT_MODEL)
    head = reinit_head(model, seed=1)
    prepare(model)
    device.push_blob(write_blob(model, {head}))
    device.command("data", "clear")
    device.push_samples(x_check, y_check)
    _, correct_before = device.eval(timeout=120)
    device.command("data", "clear")
    device.push_samples(x_train, y_train)
    device.command("train", "start", 5, 0.3, 8, 1.0, 1, head, timeout=30)  # sgd, cosine
    device.wait_event("done train", timeout=900)
    device.command("data", "clear")
    device.push_samples(x_check, y_check)
    _, correct_after = device.eval(timeout=120)
    print(f"eval on {len(y_check)} held-out digits: {correct_before} -> {correct_after} correct")
    assert correct_after >= correct_before + len(y_check) // 4
    # stop mid-run: the job ends within a sample and the device answers at once
    device.command("train", "start", 1000, 0.3, 8, 1.0, 1, head, timeout=30)
    device.wait_event("progress train", timeout=60)  # it is running
    device.command("train", "stop")
    status = " ".join(device.command("train", "status"))
    assert "idle" in status and "stopped" in status
    trained, _ = read_blob(device.pull_blob())
    golden = infer_batch(trained, x_check[:5])
    for i in range(5):
        _, out = device.predict(i)
        np.testing.assert_array_equal(out.reshape(-1), golden[i].reshape(-1))
