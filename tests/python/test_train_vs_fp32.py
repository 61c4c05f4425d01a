"""benchmarks/train_vs_fp32.py helpers: the int8 side on the native C trainer gives the
golden engine's run (val curve, test accuracy, MAC counters) for the same seed and
options, on a fixture model and random data (no TensorFlow, no torch, no ../shared);
and the lr-grid extension past an end of the grid."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import FIXTURE_MODELS, load_module
from test_native import native_lib  # noqa: F401  (the session fixture building libfqt.so)

bench = load_module("benchmarks/train_vs_fp32.py", "fqt_bench_train_vs_fp32")


def _task(n: int = 24) -> object:
    data = (FIXTURE_MODELS / "digits_cnn.tflite").read_bytes()
    m = bench.parse_tflite(data, name="digits_cnn")
    shape = tuple(m.input_tensor.shape[1:])
    rng = np.random.default_rng(3)

    def split(k: int) -> object:
        x = rng.integers(-128, 128, (k, *shape)).astype(np.int8)
        return bench.Split(x, rng.integers(0, 10, k).astype(np.int64))

    return bench.Task(
        name="digits_cnn", description="fixture", model_bytes=data, model_note="fixture",
        trainable=bench._all_weighted(m), train=split(n), val=split(12), test=split(12),
        epochs=2, batch=4, fqt_lrs=(0.01,), fp32_lrs=(0.1,), ablate=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    "opts",
    [{}, {"lambda_min": 0.1, "partial_mode": "fixed"}, {"lambda_min": 0.5}],
    ids=["default", "budget_0.1", "dynamic_0.5"],
)
def test_native_engine_equals_golden(opts: dict, native_lib, monkeypatch) -> None:  # noqa: F811
    monkeypatch.setenv("FQT_NATIVE_LIB", str(native_lib))
    task = _task()
    data = bench.FqtData(task)
    runs, weights = {}, {}
    for engine in ("native", "golden"):
        r = bench.run_fqt(task, data, 0.3, 7, engine=engine, **opts)
        assert r.engine == engine
        weights[engine] = [
            r.trainer.model.tensors[r.trainer.model.layers[li].inputs[1]].data.copy()
            for li in sorted(task.trainable)
        ]
        bench.fqt_test(r, task, data)
        runs[engine] = r
    nat, gold = runs["native"], runs["golden"]
    for a, b in zip(weights["native"], weights["golden"], strict=True):
        np.testing.assert_array_equal(a, b)  # the kept (best-epoch) weights, bit for bit
    m0 = task.fresh_model()
    start = [m0.tensors[m0.layers[li].inputs[1]].data for li in sorted(task.trainable)]
    assert any(not np.array_equal(a, b) for a, b in zip(start, weights["golden"], strict=True))
    assert nat.val_curve == gold.val_curve
    assert nat.test_acc == gold.test_acc
    assert (nat.bw_macs, nat.bw_macs_full) == (gold.bw_macs, gold.bw_macs_full)
    if opts:
        assert nat.bw_macs < nat.bw_macs_full


def test_unknown_engine() -> None:
    task = _task()
    with pytest.raises(ValueError, match="engine"):
        bench.run_fqt(task, bench.FqtData(task), 0.3, engine="tflm")


def test_grid_extension() -> None:
    assert bench._next_lr(1.0, True) == 3.0
    assert bench._next_lr(0.3, True) == 1.0
    assert bench._next_lr(0.03, False) == 0.01
    assert bench._next_lr(0.01, False) == 0.003
    grid = [0.03, 0.1, 0.3, 1.0]
    assert bench._grid_extension(grid, 1.0, 0) == 3.0
    assert bench._grid_extension(grid, 0.03, 0) == 0.01
    assert bench._grid_extension(grid, 0.3, 0) is None
    assert bench._grid_extension(grid, 1.0, bench.MAX_GRID_EXTENSIONS) is None
    assert bench._grid_extension([30.0, 100.0], 100.0, 0) is None  # past MAX_LR
