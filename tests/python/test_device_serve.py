"""`fqt device serve` and the README's walkthrough against it: deploy, push, device-eval,
train-device, device-eval, export (checked in TFLM); a cut or failed deploy leaves the old
model running; the device's own errors reach the user; every command's --json and --help.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURE_MODELS
from fqt import cli
from fqt.boards import Board
from fqt.commands.board import import_blob
from fqt.config import load_config, resolve_port
from fqt.demo import digits_split
from fqt.device import XFER_BLOB, Device
from fqt.errors import FqtError
from fqt.prepare import prepare
from fqt.quant import quantize_input
from fqt.resources import DEFAULT_MODEL, host_device_path
from fqt.serve import EmulatedBoard, host_device_command
from fqt.tflite_import import load_tflite

pytestmark = pytest.mark.skipif(
    not host_device_path().is_file(), reason="fqt_host_device not built (bash setup.sh)"
)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("serve")
    model = load_tflite(DEFAULT_MODEL)
    prepare(model)
    x_tr, y_tr, x_te, y_te = digits_split(model)
    np.savez(d / "train.npz", x=x_tr, y=y_tr)
    np.savez(d / "test.npz", x=x_te, y=y_te)
    return d


def _serve(d: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    port_file = d / f"port-{time.monotonic_ns()}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fqt.cli", "device", "serve", "--port-file", str(port_file),
         "--progress-ms", "20", "--json", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not port_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"serve did not come up: {proc.communicate()}")
        time.sleep(0.05)
    return proc, port_file.read_text().strip()


@pytest.fixture(scope="module")
def served(data: Path):
    proc, port = _serve(data)
    assert proc.stdout is not None
    ready = json.loads(proc.stdout.readline())
    assert ready["port"] == port and ready["board"] == "mps2/an385"
    yield port
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0, proc.communicate()
    assert not list(data.glob("port-*")), "serve left its port file behind"


def fqt_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    capsys.readouterr()
    assert cli.main([*argv, "--json"]) == 0
    out = capsys.readouterr().out.strip()
    try:
        return json.loads(out)  # one document (import indents it)
    except json.JSONDecodeError:
        return json.loads(out.splitlines()[-1])  # the summary after a demo's steps


def test_walkthrough_on_device_serve(
    served: str, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = served
    dep = fqt_json(capsys, "deploy", str(DEFAULT_MODEL), "--port", p, "--reinit-head", "1")
    assert dep["loaded"] and dep["trainable"] == [5]
    pushed = fqt_json(capsys, "push", str(data / "test.npz"), "--port", p, "--clear")
    assert pushed["samples"] == 360
    before = fqt_json(capsys, "device-eval", "--port", p)["accuracy"]
    log, png = tmp_path / "log.csv", tmp_path / "log.png"
    tr = fqt_json(
        capsys, "train-device", "--port", p, "--data", str(data / "train.npz"), "--val",
        str(data / "test.npz"), "--epochs", "3", "--trainable", "last:1", "--log", str(log),
        "--plot", str(png),
    )  # fmt: skip
    assert tr["epochs"] == 3 and tr["trainable"] == "5" and tr["log"] == str(log)
    after = fqt_json(capsys, "device-eval", "--port", p, "--data", str(data / "test.npz"))
    assert float(before) < 0.3 and float(after["accuracy"]) > float(before) + 0.5  # type: ignore[arg-type]
    out = tmp_path / "trained.tflite"
    exp = fqt_json(capsys, "export", "--port", p, "-o", str(out), "--source", str(DEFAULT_MODEL),
                   "--check", str(data / "test.npz"))  # fmt: skip
    assert exp["tflm_equal"] is True and exp["checked"] == 20 and out.is_file()
    rows = list(csv.DictReader(log.open()))
    assert [r["kind"] for r in rows][:2] == ["start", "progress"] or rows[0]["kind"] == "start"
    for r in rows:  # clean: integer counts, short floats
        for k in ("epoch", "sample", "epoch_samples", "samples_seen"):
            assert r[k].isdigit(), (k, r[k])
        for k in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert len(r[k].partition(".")[2]) <= 6, (k, r[k])
    epochs = [r for r in rows if r["kind"] == "epoch"]
    assert [int(r["epoch"]) for r in epochs] == [1, 2, 3]
    assert float(epochs[-1]["val_accuracy"]) == pytest.approx(float(after["accuracy"]), abs=1e-4)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(Path(f"{log}.json").read_text())["model"] == "digits_cnn"
    replot = fqt_json(capsys, "plot", str(log), "-o", str(tmp_path / "again.png"))
    assert replot["epochs"] == 3 and (tmp_path / "again.png").is_file()


def test_cut_or_failed_deploy_leaves_the_old_model(
    served: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fqt_json(capsys, "deploy", str(DEFAULT_MODEL), "--port", served, "--reinit-head", "1")
    with Device.open(served) as dev:
        old = dev.info()
        new_blob, _, _ = import_blob(str(DEFAULT_MODEL), None, reinit=7)
        head = __import__("struct").pack("<B3xII", XFER_BLOB, len(new_blob), zlib.crc32(new_blob))
        dev.frame("begin", head)
        for off in range(0, 480, 96):
            dev.frame("data", new_blob[off : off + 96])
    # the connection was cut mid-transfer: the device still runs the old model
    with Device.open(served) as dev:
        assert dev.info()["blob_crc"] == old["blob_crc"]
    # a client that dies mid-transfer (its frames stop): deploy fails, the old model stays
    real = Device.frame
    sent = {"data": 0}

    def cut(self: Device, kind: str, payload: bytes = b"", seq: int | None = None) -> list[str]:
        if kind == "data":
            sent["data"] += 1
            if sent["data"] > 3:
                raise FqtError("the device closed the connection")
        return real(self, kind, payload, seq)

    monkeypatch.setattr(Device, "frame", cut)
    assert cli.main(["deploy", str(DEFAULT_MODEL), "--port", served, "--reinit-head", "7"]) != 0
    assert "still runs digits_cnn (crc " + old["blob_crc"] in capsys.readouterr().err
    monkeypatch.setattr(Device, "frame", real)
    # a corrupt blob: the commit validates it and refuses, the old model stays
    bad = bytearray(new_blob)
    bad[40] ^= 0xFF
    with Device.open(served) as dev:
        with pytest.raises(FqtError):
            dev.transfer(XFER_BLOB, bytes(bad))
        assert dev.info()["blob_crc"] == old["blob_crc"]
        dev.command("data", "push", 1, "00" * 64)  # the old model still serves
        assert dev.predict(0)[1].shape == (10,)


def test_serve_passes_the_device_error_through(data: Path) -> None:
    # three_consumers needs 8,704 B of arena; qemu_cortex_m3's fqt-arena has 8,192 B.
    blob = data / "three.fqtb"
    blob.write_bytes(import_blob(str(FIXTURE_MODELS / "three_consumers.tflite"), None)[0])
    r = subprocess.run(
        [sys.executable, "-m", "fqt.cli", "device", "serve", "--blob", str(blob), "--board",
         "qemu_cortex_m3", "--port-file", str(data / "never")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode != 0 and not (data / "never").exists()
    assert "did not load the model" in r.stderr and "8192" in r.stderr.replace(",", ""), r.stderr
    # sized from the board's pools, not from the model
    cmd = host_device_command("dev", Board("b", 1, 111, 222, 333, 444))
    assert cmd[1:9] == ["--arena", "111", "--params", "222", "--samples", "333",
                        "--model-buffer", "444"]  # fmt: skip


def test_state_survives_between_clients() -> None:
    with EmulatedBoard([str(host_device_path()), "--model", str(_blob())]) as emu:
        for expect in (1, 2):
            with Device.open(emu.port) as dev:
                dev.command("data", "push", 1, "00" * 64)
                assert dev.info()["samples"] == str(expect)


def _blob() -> Path:
    p = Path(os.environ.get("TMPDIR", "/tmp")) / f"fqt-serve-test-{os.getpid()}.fqtb"
    p.write_bytes(import_blob(str(DEFAULT_MODEL), None)[0])
    return p


def test_train_device_accepts_the_train_grammar(served: str) -> None:
    from fqt.commands.train_device import device_trainable

    with Device.open(served) as dev:
        assert device_trainable(dev, ["last"], None) == "last"
        assert device_trainable(dev, ["last:2"], None) == "2,5"
        assert device_trainable(dev, ["0,", "5"], None) == "0,5"
        with pytest.raises(FqtError, match="not a trainable layer"):
            device_trainable(dev, ["1"], None)


# --- consistency ------------------------------------------------------------------------
JSON_KEYS = {
    "import": {"blob", "layers", "training_ram_bytes"},
    "infer": {"engine", "samples", "output_shape"},
    "train": {"engine", "epochs", "val_accuracy_after", "log", "plot"},
    "demo": {"accuracy_before", "accuracy_after", "tflm_equal", "log", "plot"},
    "push": {"pushed", "samples"},
    "train-device": {"epochs", "loss", "accuracy", "log", "plot"},
    "export": {"output", "blob_bytes"},
    "device-eval": {"samples", "correct", "accuracy"},
    "deploy": {"name", "blob_bytes", "blob_crc", "loaded", "previous"},
    "device serve": {"port", "pid", "board", "model"},
    "device ports": {"ports", "config"},
    "plot": {"log", "plot", "rows", "epochs"},
}


def test_every_command_has_json(
    served: str, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = {n for n in cli.COMMANDS if n != "device"} | {"device serve", "device ports"}
    assert names == set(JSON_KEYS)
    m, p, t = str(DEFAULT_MODEL), served, str(tmp_path)
    np.save(tmp_path / "x.npy", np.load(data / "test.npz")["x"][:5])
    runs = {
        "import": ["import", m, "-o", t],
        "infer": ["infer", m, "--inputs", f"{t}/x.npy", "-o", f"{t}/y.npy"],
        "train": ["train", m, "--data", str(data / "test.npz"), "--epochs", "1", "-o",
                  f"{t}/tr.tflite", "--log", f"{t}/h.csv", "--plot", f"{t}/h.png"],
        "demo": ["demo", "-o", f"{t}/demo", "--epochs", "1"],
        "deploy": ["deploy", m, "--port", p],
        "push": ["push", str(data / "test.npz"), "--port", p, "--clear", "--limit", "50"],
        "device-eval": ["device-eval", "--port", p],
        "train-device": ["train-device", "--port", p, "--epochs", "1", "--log", f"{t}/d.csv",
                         "--plot", f"{t}/d.png"],
        "export": ["export", "--port", p, "-o", f"{t}/e.fqtb"],
        "plot": ["plot", f"{t}/h.csv"],
        "device ports": ["device", "ports"],
    }  # fmt: skip
    for name, argv in runs.items():
        try:
            got = fqt_json(capsys, *argv)
        except json.JSONDecodeError as e:
            raise AssertionError(f"fqt {name}: not JSON") from e
        assert JSON_KEYS[name] <= set(got), (name, got)
    # device serve's --json ready line: the served fixture parsed it (see `served`)


def _subparsers(parser):  # type: ignore[no-untyped-def]
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                for inner, subsub in _subparsers(sub):
                    yield f"{name} {inner}", subsub


def test_every_help_shows_defaults() -> None:
    for name, sub in _subparsers(cli.build_parser()):
        text = sub.format_help()
        for a in sub._actions:
            if a.help is None and a.option_strings and a.dest != "help":
                raise AssertionError(f"fqt {name} {a.option_strings[0]}: no help text")
            if a.option_strings and a.default not in (None, False, "==SUPPRESS==") and a.help:
                shown = sub._get_formatter()._get_help_string(a)
                assert "%(default)" in shown, (name, a.dest)
        if name != "device":  # the group: its commands (serve, ports) have it
            assert "--json" in text, f"fqt {name} has no --json"


def test_infer_shape_is_the_same_on_every_engine(data: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.load(data / "test.npz")["x"][:70])
    shapes = []
    for engine in ("golden", "native"):
        out = tmp_path / f"{engine}.npy"
        assert cli.main(["infer", str(DEFAULT_MODEL), "--inputs", str(tmp_path / "x.npy"),
                         "--engine", engine, "-o", str(out)]) == 0  # fmt: skip
        shapes.append(np.load(out))
    assert shapes[0].shape == shapes[1].shape == (70, 10)
    assert np.array_equal(shapes[0], shapes[1])


def test_float_inputs_round_half_away_from_zero() -> None:
    x = np.array([0.5, 1.5, 2.5, -0.5, -2.5, 0.49]) * 0.25
    assert quantize_input(x, 0.25, 0).tolist() == [1, 2, 3, -1, -3, 0]
    assert quantize_input(np.array([1000.0, -1000.0]), 1.0, 0).tolist() == [127, -128]


def test_import_prints_the_plan_when_it_does_not_fit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = FIXTURE_MODELS / "three_consumers.tflite"
    rc = cli.main(["import", str(model), "-o", str(tmp_path), "--board", "qemu_cortex_m3"])
    out, err = capsys.readouterr()
    assert rc != 0 and "peak arena, inference:  8,884 B" in out and "over by 692 bytes" in err


def test_config_lookup_and_port_autodetection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fqt import config

    (tmp_path / "sub").mkdir()
    (tmp_path / "fqt.toml").write_text('[device]\nport = "/dev/ttyX"\nmodel = "m.tflite"\n')
    monkeypatch.delenv("FQT_CONFIG", raising=False)
    cfg = load_config(tmp_path / "sub")
    assert cfg.port == "/dev/ttyX" and cfg.model == str(tmp_path / "m.tflite")
    assert resolve_port("/dev/ttyY", cfg) == "/dev/ttyY" and resolve_port(None, cfg) == "/dev/ttyX"
    monkeypatch.setenv("FQT_CONFIG", "")
    assert load_config(tmp_path).path is None
    one = [config.PortInfo("/dev/ttyACM0", "ST-Link", "USB VID:PID=0483:374B")]
    monkeypatch.setattr(config, "serial_candidates", lambda: one)
    assert resolve_port(None, config.Config()) == "/dev/ttyACM0"
    two = [*one, config.PortInfo("/dev/ttyUSB0", "CP2102", "USB")]
    monkeypatch.setattr(config, "serial_candidates", lambda: two)
    with pytest.raises(FqtError, match=r"several .*ttyACM0.*ttyUSB0"):
        resolve_port(None, config.Config())
    monkeypatch.setattr(config, "serial_candidates", lambda: [])
    with pytest.raises(FqtError, match="no serial port found"):
        resolve_port(None, config.Config())
    (tmp_path / "bad.toml").write_text("port = 3\n")
    monkeypatch.setenv("FQT_CONFIG", str(tmp_path / "bad.toml"))
    with pytest.raises(FqtError, match="must be a string"):
        load_config()


def test_qemu_serve(tmp_path: Path) -> None:
    build = Path(os.environ.get("FQT_QEMU_BUILD", "/nonexistent"))
    if not (build / "zephyr" / "zephyr.elf").is_file():
        pytest.skip("no Zephyr build of app/ for QEMU (set FQT_QEMU_BUILD to a build dir)")
    from fqt.serve import qemu_command

    with EmulatedBoard(qemu_command(build), ready_timeout=60) as emu:
        with Device.open(emu.port, timeout=10) as dev:
            assert dev.info()["version"]
