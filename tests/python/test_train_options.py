"""`fqt train` with the options of the accuracy issue: one-line refusals of a non-finite or
absurd lr, of empty data and of labels that fit no loss; the squared-error loss on a model
without SOFTMAX (float targets), whose error falls and whose export runs equal in TFLM; the
sgd update with a cosine schedule keeping the best validation epoch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURE_MODELS
from fqt import native
from fqt.cli import main
from fqt.golden.schedule import scheduled_lr
from fqt.golden.trainer import TrainConfig, epoch_lr
from fqt.prepare import prepare
from fqt.tflite_import import load_tflite
from test_native import native_lib  # noqa: F401  (the session fixture building libfqt.so)

FC = FIXTURE_MODELS / "fc_relu_relu6_none.tflite"  # FC chain, no SOFTMAX, 32 in, 6 out
DIGITS = FIXTURE_MODELS / "digits_cnn.tflite"


def _regression_data(tmp_path: Path, n: int = 96) -> tuple[Path, Path]:
    """Float inputs and float targets: the targets are a fixed linear map of the inputs,
    inside the output's range (a regression the FC chain can learn)."""
    m = load_tflite(FC)
    rng = np.random.default_rng(0)
    q = m.input_tensor.quant
    x = (rng.integers(-128, 128, (n, 32)) - q.zero_point[0]) * q.scale[0]
    a = np.random.default_rng(1).normal(0, 1, (32, 6)) / np.sqrt(32)
    o = m.output_tensor.quant
    lo, hi = (-128 - o.zero_point[0]) * o.scale[0], (127 - o.zero_point[0]) * o.scale[0]
    y = x @ a
    y = lo + (hi - lo) * (0.25 + 0.5 * (y - y.min()) / (np.ptp(y) + 1e-9))
    paths = []
    for name, sl in (("tr", slice(0, n - 32)), ("va", slice(n - 32, n))):
        p = tmp_path / f"{name}.npz"
        np.savez(p, x=x[sl].reshape(-1, 4, 4, 2).astype(np.float32), y=y[sl].astype(np.float32))
        paths.append(p)
    return paths[0], paths[1]


def _run(args: list[str], capsys) -> tuple[int, str, str]:
    rc = main(args)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


@pytest.mark.parametrize("lr", ["nan", "1e9", "inf", "0"])
def test_bad_lr_one_line(lr: str, tmp_path: Path, capsys) -> None:
    data, _ = _regression_data(tmp_path)
    rc, _, err = _run(
        ["train", str(FC), "--data", str(data), "--lr", lr, "-o", str(tmp_path / "o.tflite")],
        capsys,
    )
    assert rc == 2 and err.count("\n") == 1 and "--lr" in err, err


def test_empty_dataset_one_line(tmp_path: Path, capsys) -> None:
    data = tmp_path / "empty.npz"
    np.savez(data, x=np.zeros((0, 8, 8, 1), np.int8), y=np.zeros(0, np.int64))
    args = ["train", str(DIGITS), "--data", str(data), "-o", str(tmp_path / "o")]
    rc, _, err = _run(args, capsys)
    assert rc == 2 and err.count("\n") == 1 and "empty" in err, err


def test_labels_fitting_no_loss(tmp_path: Path, capsys) -> None:
    data = tmp_path / "f.npz"  # float targets for a SOFTMAX classifier
    np.savez(data, x=np.zeros((4, 8, 8, 1), np.int8), y=np.zeros((4, 10), np.float32))
    args = ["train", str(DIGITS), "--data", str(data), "-o", str(tmp_path / "o")]
    rc, _, err = _run(args, capsys)
    assert rc == 2 and err.count("\n") == 1 and "fits no loss" in err, err
    rc, _, err = _run(
        ["train", str(DIGITS), "--data", str(data), "--loss", "mse", "-o", str(tmp_path / "o")],
        capsys,
    )
    assert rc == 2 and "SOFTMAX" in err, err


@pytest.mark.parametrize("engine", ["golden", "native"])
def test_mse_regression_trains_and_exports(
    engine: str,
    tmp_path: Path,
    capsys,
    native_lib,  # noqa: F811
    monkeypatch,
) -> None:
    runtime = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")
    monkeypatch.setenv("FQT_NATIVE_LIB", str(native_lib))
    data, val = _regression_data(tmp_path)
    out = tmp_path / "reg.tflite"
    rc, text, _ = _run([
        "train", str(FC), "--data", str(data), "--val", str(val), "--epochs", "6",
        "--batch", "8", "--lr", "0.05", "--update", "sgd", "--schedule", "constant",
        "--trainable", "all",
        "--engine", engine, "-o", str(out),
    ], capsys)  # fmt: skip
    assert rc == 0, text
    assert "loss: mse" in text
    rc, js, _ = _run([
        "train", str(FC), "--data", str(data), "--val", str(val), "--epochs", "6",
        "--batch", "8", "--lr", "0.05", "--update", "sgd", "--schedule", "constant",
        "--trainable", "all",
        "--engine", engine, "-o", str(out), "--json",
    ], capsys)  # fmt: skip
    s = json.loads(js)
    assert s["loss"] == "mse"
    losses = [e["val_loss"] for e in s["epochs"]]
    assert s["val_loss_after"] == min(losses) < 0.6 * s["val_loss_before"], losses
    # TFLM on the export == the golden engine on the trained model.
    from fqt.golden.interpreter import infer_batch

    m = load_tflite(out)
    prepare(m)
    x = np.load(val)["x"]
    q = m.input_tensor.quant
    xq = np.clip(np.round(x / q.scale[0]) + q.zero_point[0], -128, 127).astype(np.int8)
    want = infer_batch(m, xq[:, None])
    it = runtime.Interpreter.from_file(str(out))
    for i in range(len(xq)):
        it.set_input(xq[i : i + 1], 0)
        it.invoke()
        np.testing.assert_array_equal(np.asarray(it.get_output(0)).reshape(-1), want[i].reshape(-1))


def test_sgd_cosine_keeps_best_epoch(tmp_path: Path, capsys) -> None:
    pytest.importorskip("sklearn.datasets")
    from fqt.demo import digits_split

    xtr, ytr, xte, yte = digits_split(load_tflite(DIGITS))
    data, val = tmp_path / "d.npz", tmp_path / "v.npz"
    np.savez(data, x=xtr[:200], y=ytr[:200])
    np.savez(val, x=xte[:100], y=yte[:100])
    rc, js, _ = _run([
        "train", str(DIGITS), "--data", str(data), "--val", str(val), "--epochs", "3",
        "--batch", "16", "--lr", "0.1", "--update", "sgd", "--schedule", "cosine",
        "--trainable", "all", "-o", str(tmp_path / "o.tflite"), "--json",
    ], capsys)  # fmt: skip
    assert rc == 0
    s = json.loads(js)
    accs = [e["val_accuracy"] for e in s["epochs"]]
    assert s["val_accuracy_after"] == max(accs)
    assert accs[s["saved_epoch"] - 1] == max(accs)
    assert [e["lr"] for e in s["epochs"]] == [
        epoch_lr(TrainConfig(lr=0.1, schedule="cosine"), e, 3) for e in (1, 2, 3)
    ]


def test_schedules() -> None:
    c = TrainConfig(lr=1.0, schedule="cosine")
    cos = [epoch_lr(c, e, 4) for e in range(1, 5)]
    assert cos[0] == 1.0
    # (1 + cos(pi t)) / 2 for t = 1/4, 2/4, 3/4, to float32 rounding of the polynomial
    assert cos[1:] == pytest.approx([0.8535534, 0.5, 0.1464466], rel=1e-5)
    s = TrainConfig(lr=1.0, schedule="step", step_epochs=2, step_gamma=0.5, warmup_epochs=1)
    assert [epoch_lr(s, e, 6) for e in range(1, 7)] == [0.5, 1.0, 1.0, 0.5, 0.5, 0.25]


def test_schedule_twin_of_c(native_lib) -> None:  # noqa: F811
    """The device computes its epoch lr itself (train/schedule.c): the same float32 bits as
    the host's golden/schedule.py, over every epoch of many runs and each schedule."""
    cases = [
        (lr, kind, epochs, warmup, step_epochs, gamma)
        for lr in (0.3, 0.003, 1e-6, 1.0, 0.1234567)
        for kind in ("constant", "cosine", "step")
        for epochs in (1, 2, 3, 7, 50, 1000)
        for warmup in (0, 1, 3)
        for step_epochs, gamma in ((1, 0.5), (3, 0.1))
    ]
    checked = 0
    for lr, kind, epochs, warmup, step_epochs, gamma in cases:
        for e in sorted({1, 2, epochs // 2 + 1, epochs - 1, epochs} - {0}):
            args = (lr, kind, e, epochs, warmup, step_epochs, gamma)
            assert native.scheduled_lr(*args) == scheduled_lr(*args), args
            checked += 1
    assert checked > 1900
    # the last epoch of a long cosine run still trains (lr > 0)
    assert 0.0 < scheduled_lr(0.3, "cosine", 1000, 1000) < 1e-5
