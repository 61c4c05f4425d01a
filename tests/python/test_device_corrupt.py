"""Issue 13, item 4: the client recovers from corrupted lines in both directions.

push+train+export runs go through fqt.corrupt_link's CorruptingTransport (2 % of the lines
garbled in each direction, one run per corruption mode, seeded) and must end with the very
blob of an uncorrupted run. The `cmd` frames that carry state-changing commands run at
most once per seq, and a garbled one runs not at all.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
import pytest
from fqt.blob import write_blob
from fqt.corrupt_link import MODES, corrupt_line, push_train_export
from fqt.demo import digits_split, reinit_head
from fqt.device import Device, DeviceError, frame_line
from fqt.plan import plan_memory
from fqt.prepare import prepare
from fqt.tflite_import import load_tflite
from test_device import DIGITS
from test_device import host_device as _build_host_device

host_device = _build_host_device

N_SAMPLES = 200


@pytest.fixture(scope="module")
def flow(tmp_path_factory, host_device: Path) -> tuple[str, bytes, np.ndarray, np.ndarray, tuple]:
    model = load_tflite(DIGITS)
    head = reinit_head(model, 1)
    prepare(model)
    plan = plan_memory(model, {head})
    blob = write_blob(model, {head})
    path = tmp_path_factory.mktemp("corrupt") / "head.fqtb"
    path.write_bytes(blob)
    x_tr, y_tr, _, _ = digits_split(model)
    x, y = x_tr[:N_SAMPLES], y_tr[:N_SAMPLES].astype(np.int64)
    command = (
        f"{host_device} --model {path} --arena {plan.training_arena} "
        f"--params {plan.training_params} --samples {(2 + x[0].size) * len(y)} --progress-ms 20"
    )
    return command, blob, x, y, (1, "0.003", 32, "1.0", 1, head)


def test_corrupt_line_modes() -> None:
    rng = random.Random(0)
    line = "fqt frame 12 data 00ff 1234abcd"
    for _ in range(200):
        sub = corrupt_line(line, "substitute", rng)
        assert len(sub) == len(line) and sum(a != b for a, b in zip(sub, line, strict=True)) == 1
        assert len(corrupt_line(line, "drop", rng)) == len(line) - 1
        assert len(corrupt_line(line, "insert", rng)) == len(line) + 1
        cut = corrupt_line(line, "truncate", rng)
        assert len(cut) < len(line) and line.startswith(cut)
        w = corrupt_line(line, "words", rng)
        assert w[10:] == line[10:] and w != line  # only `fqt frame` was hit
        assert "\n" not in sub + w


@pytest.mark.parametrize("mode", MODES)
def test_push_train_export_through_a_corrupting_link(flow, mode: str) -> None:
    command, blob, x, y, train_args = flow
    clean, _ = push_train_export(command, blob, x, y, train_args)
    assert clean != blob  # training changed the weights: the comparison means something
    got, stats = push_train_export(command, blob, x, y, train_args, mode, 0.02, seed=7)
    assert stats is not None
    # both directions were hit, at about 2 % of the lines
    assert stats.garbled_out > 0 and stats.garbled_in > 0, stats
    total = stats.lines_out + stats.lines_in
    assert 0.005 < (stats.garbled_out + stats.garbled_in) / total < 0.05
    assert got == clean


def _ack(dev: Device, line: str) -> list[str]:
    """Send a raw line; the lines up to its ack (`ok <seq>`/`err <seq> ...`), job lines
    skipped."""
    dev.transport.write(line.encode() + b"\n")
    got = []
    while True:
        reply = dev.transport.readline(time.monotonic() + 5)
        assert reply is not None, got
        if reply.startswith(("progress ", "epoch ")):
            continue
        got.append(reply)
        if reply.startswith(("ok ", "err ")):
            return got


def test_cmd_frames_run_once(host_device: Path, flow) -> None:
    command, _, x, y, train_args = flow
    dev = Device.open(f"cmd:{command}", timeout=5.0)
    with dev:
        dev.push_samples(x, y)
        start = ("train start " + " ".join(str(a) for a in (1000, *train_args[1:]))).encode()
        line = "fqt " + frame_line(500, "cmd", start)
        started, ack = _ack(dev, line)
        assert started.startswith("train started epochs 1000 lr 0.003000 batch 32")
        assert ack == "ok 500"
        assert _ack(dev, line) == ["ok 500"]  # a resend: acked again, not run again
        assert dev.query_match(("train", "status"), r"train running .*")
        # a new seq runs it: busy now
        assert _ack(dev, "fqt " + frame_line(501, "cmd", start))[-1].startswith("err 501 busy")
        # a resend of a refused cmd frame gives its refusal again
        assert _ack(dev, "fqt " + frame_line(501, "cmd", start))[-1].startswith("err 501 busy")
        assert dev.command("train", "stop")[0].startswith("stopped train")
        # garbled: refused, and nothing runs
        bad = "fqt " + frame_line(502, "cmd", b"data clear")
        assert _ack(dev, bad[:-1] + ("0" if bad[-1] != "0" else "1")) == ["err 502 bad crc"]
        assert dev.query_match(("data", "status"), r"samples (\d+)")[1] == str(N_SAMPLES)
        refused = _ack(dev, "fqt " + frame_line(503, "cmd", b"frame 1 abort - 0"))
        assert refused[-1].startswith("err 503 cmd payload")
        # the client's commands go in cmd frames: a device error keeps its message
        with pytest.raises(DeviceError, match=r"`fqt load x`: usage: fqt load builtin\|pushed"):
            dev.command("load", "x")
