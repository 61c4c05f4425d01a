"""The C trainer (src/trainer.c through fqt.native.NativeTrainer) against the golden
model, byte for byte (docs/training-semantics.md): after the same samples, seed and
options, every trainable weight, bias, quantization scale and output multiplier/shift is
identical, the MAC counters are equal, and the memory the C trainer needs is the import's
plan (scripts/fqt/plan.py training_arena / training_params)."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURE_MODELS
from fqt.golden.trainer import TrainConfig, Trainer
from fqt.plan import WEIGHTED_OPS, plan_memory
from fqt.prepare import prepare
from fqt.tflite_import import load_tflite
from test_native import native_lib  # noqa: F401  (the session fixture building libfqt.so)

DIGITS = FIXTURE_MODELS / "digits_cnn.tflite"
MODELS = [
    "digits_cnn",  # conv, max pool, avg pool, reshape, per-channel FC, softmax
    "dscnn_tiny",  # conv, depthwise (multiplier 1), avg pool, FC
    "residual_add",  # ADD, no softmax at the end; the last ADD's first input is the model
    # input, its second the branch that trains (section 5.7); a tensor with two consumers
    "residual_add_swapped",  # the same with the last ADD's inputs swapped
    "three_consumers",  # a tensor with three consumers (conv, ADD second, ADD first input)
    # combined two at a time (section 2.3); a wide conv (input-error fan-out 1152, 5.3)
    "conv_per_tensor",  # per-tensor conv and per-tensor FC
    "dw_dm2_same_relu_stride1",  # depthwise, multiplier 2, RELU
    "dw_dm2_valid_relu6_stride2",  # depthwise, multiplier 2, RELU6, stride 2
    "fc_relu_relu6_none",  # FC chain with fused RELU / RELU6
]
CONFIGS = {
    "sr-dyn-b3": dict(batch=3, seed=5),
    "nearest-dyn-b1": dict(batch=1, stochastic_rounding=False, seed=2),
    "sr-fixed-b4-lam05": dict(batch=4, error_scaling="fixed", lambda_min=0.5, seed=9),
    "nearest-fixed-b1-lam01": dict(
        batch=1, stochastic_rounding=False, error_scaling="fixed", lambda_min=0.1
    ),
    "sr-dyn-b5-lam01": dict(batch=5, lambda_min=0.1, seed=11, lr=0.05),
    "sr-dyn-b2-lam05-nocenter": dict(batch=2, lambda_min=0.5, center=False, seed=3),
    "sr-dyn-b3-noclipmask": dict(batch=3, seed=5, lr=0.05, clip_mask=False),
    # plain SGD on the batch-mean gradient (section 7.1); 13 samples = partial last batch
    "sgd-sr-dyn-b4": dict(batch=4, seed=4, lr=0.5, update_rule="sgd"),
    "sgd-nearest-fixed-b1-lam05": dict(
        batch=1,
        stochastic_rounding=False,
        error_scaling="fixed",
        lambda_min=0.5,
        lr=0.3,
        update_rule="sgd",
    ),
    "sgd-sr-dyn-b5-lam01": dict(batch=5, lambda_min=0.1, seed=8, lr=2.0, update_rule="sgd"),
    # learned activation ranges (section 7.3)
    "ranges-sgd-sr-b3": dict(batch=3, seed=6, lr=0.5, update_rule="sgd", learn_ranges=True),
    "ranges-std-nearest-fixed-b2-lam05": dict(
        batch=2,
        stochastic_rounding=False,
        error_scaling="fixed",
        lambda_min=0.5,
        learn_ranges=True,
    ),
    # partial updates: a fixed budget (section 6), the classifier cut by top-k too
    "sgd-sr-fixedk-b4-lam01": dict(
        batch=4, lambda_min=0.1, seed=12, lr=1.0, update_rule="sgd", partial_mode="fixed"
    ),
    "sr-dyn-b3-lam01-cutclassifier": dict(batch=3, lambda_min=0.1, seed=13, keep_classifier=False),
    # the narrow gradient state (section 4.1): int16 / int8 rows, per-channel exponents,
    # merges rounded stochastically or to nearest; with partial updates and learned ranges
    "int8-sgd-sr-b4": dict(batch=4, seed=14, lr=0.5, update_rule="sgd", grad_state="int8"),
    "int16-sr-dyn-b3": dict(batch=3, seed=15, grad_state="int16"),
    "int8-nearest-std-b5-lam05": dict(
        batch=5, seed=16, lambda_min=0.5, grad_state="int8", grad_rounding="nearest"
    ),
    "int16-nearest-sgd-fixed-b2-lam01": dict(
        batch=2,
        lr=0.5,
        update_rule="sgd",
        error_scaling="fixed",
        lambda_min=0.1,
        grad_state="int16",
        grad_rounding="nearest",
    ),
    "int8-ranges-sgd-sr-b3-fixedk": dict(
        batch=3,
        seed=17,
        lr=0.5,
        update_rule="sgd",
        learn_ranges=True,
        lambda_min=0.1,
        partial_mode="fixed",
        grad_state="int8",
    ),
}
# Models ending without SOFTMAX: trained with the squared error against int8 targets of the
# output's shape (section 3.1).
MSE_MODELS = [n for n in MODELS if n not in ("digits_cnn", "dscnn_tiny")]
MSE_CONFIGS = {
    "mse-sgd-sr-b3": dict(batch=3, seed=6, lr=0.2, update_rule="sgd", loss="mse"),
    "mse-std-nearest-fixed-b2": dict(
        batch=2, stochastic_rounding=False, error_scaling="fixed", loss="mse"
    ),
    "mse-sgd-sr-b4-lam05": dict(batch=4, lambda_min=0.5, lr=0.2, update_rule="sgd", loss="mse"),
    "mse-ranges-sgd-b3": dict(
        batch=3, seed=2, lr=0.2, update_rule="sgd", loss="mse", learn_ranges=True
    ),
}


def _load(name: str):
    swapped = name.endswith("_swapped")
    m = load_tflite(FIXTURE_MODELS / f"{name.removesuffix('_swapped')}.tflite")
    if swapped:
        # Both orders must train both branches (docs/training-semantics.md 5.7).
        last = m.layers[-1]
        last.inputs = [last.inputs[1], last.inputs[0], *last.inputs[2:]]
    prepare(m)
    return m


def _all_weighted(m) -> set[int]:
    return {layer.index for layer in m.layers if layer.op in WEIGHTED_OPS}


def _assert_same(golden: Trainer, native, where: str) -> None:
    gm, nm = golden.model, native.model
    for li in golden.trainable:
        layer = gm.layers[li]
        for ti in layer.inputs[1:3]:
            if ti < 0:
                continue
            a, b = gm.tensors[ti], nm.tensors[ti]
            np.testing.assert_array_equal(b.data, a.data, err_msg=f"{where} layer {li} {a.name}")
            assert np.float32(b.quant.scale).tobytes() == np.float32(a.quant.scale).tobytes(), (
                f"{where} layer {li} {a.name} scales"
            )
        pa, pb = gm.params[li], nm.params[li]
        np.testing.assert_array_equal(pb.output_multiplier, pa.output_multiplier, err_msg=where)
        np.testing.assert_array_equal(pb.output_shift, pa.output_shift, err_msg=where)
    for ti, (a, b) in enumerate(zip(gm.tensors, nm.tensors, strict=True)):
        assert np.float32(b.quant.scale).tobytes() == np.float32(a.quant.scale).tobytes(), (
            f"{where} tensor {ti} {a.name} scales"
        )
        np.testing.assert_array_equal(b.quant.zero_point, a.quant.zero_point, err_msg=where)
        if a.is_const:
            np.testing.assert_array_equal(b.data, a.data, err_msg=f"{where} tensor {ti}")
    for li, (pa, pb) in enumerate(zip(gm.params, nm.params, strict=True)):
        for f in ("act_min", "act_max", "input_multiplier", "input_left_shift", "diff_min"):
            # (every layer: the learned ranges re-prepare frozen pools and the softmax too)
            assert getattr(pa, f) == getattr(pb, f), f"{where} layer {li} {f}"
    assert native.counters.as_dict() == golden.counters.as_dict(), where


# The lean memory plan (docs/memory-plan.md) gives the same bits: a sample of the
# configurations (dynamic and fixed error scaling, partial updates, the cut classifier).
LEAN_CONFIGS = [
    "sr-dyn-b3",
    "nearest-fixed-b1-lam01",
    "sr-dyn-b5-lam01",
    "sr-dyn-b3-lam01-cutclassifier",
    "ranges-sgd-sr-b3",
]
CASES = [(c, "default") for c in CONFIGS] + [(c, "lean") for c in LEAN_CONFIGS]


@pytest.mark.parametrize(("cfg", "memory"), CASES, ids=[f"{c}-{m}" for c, m in CASES])
@pytest.mark.parametrize("name", MODELS)
def test_bit_exact_random_samples(name: str, cfg: str, memory: str, native_lib) -> None:  # noqa: F811
    from fqt.native import NativeTrainer

    m = _load(name)
    trainable = _all_weighted(m)
    config = TrainConfig(**CONFIGS[cfg], memory=memory)
    golden = Trainer(copy.deepcopy(m), trainable, config)
    native = NativeTrainer(copy.deepcopy(m), trainable, config, library=native_lib)
    rng = np.random.default_rng(len(name) * 7 + len(cfg))
    n = 13
    xs = rng.integers(-128, 128, (n, *m.input_tensor.shape[1:]), dtype=np.int8)
    ys = rng.integers(0, m.output_tensor.shape[-1], n)
    # In two calls (a mini-batch spans them), then the end-of-epoch flush.
    for part in (slice(0, 6), slice(6, n)):
        _, gp = golden.train_step(xs[part], ys[part])
        _, npred = native.train_step(xs[part], ys[part])
        np.testing.assert_array_equal(npred, gp)
        _assert_same(golden, native, f"{name} {cfg} after {part.stop} samples")
    golden.flush()
    native.flush()
    _assert_same(golden, native, f"{name} {cfg} after flush")
    assert golden.counters.updates > 0 and golden.counters.backward_macs > 0
    if config.learn_ranges and golden.ranges:  # some activation range did move
        assert any(
            a.quant.scale[0] != b.quant.scale[0]
            for a, b in zip(m.tensors, golden.model.tensors, strict=True) if not a.is_const
        )  # fmt: skip
    # Every weighted layer trained: the errors reached every branch.
    for li in trainable:
        w = m.tensors[m.layers[li].inputs[1]].data
        assert not np.array_equal(golden.model.tensors[m.layers[li].inputs[1]].data, w), li
    if config.lambda_min < 1.0:
        assert native.counters.backward_macs <= native.counters.backward_macs_full
    # The memory plan of the import is what the C trainer asks for.
    plan = plan_memory(m, trainable, memory, config.grad_state)
    assert (native.arena_bytes, native.params_bytes) == (plan.training_arena, plan.training_params)


@pytest.mark.parametrize("cfg", list(MSE_CONFIGS), ids=list(MSE_CONFIGS))
@pytest.mark.parametrize("name", MSE_MODELS)
def test_bit_exact_mse(name: str, cfg: str, native_lib) -> None:  # noqa: F811
    """The squared-error loss: golden and C equal after steps and the flush, and the
    reconstruction error of the trained model is the same on both."""
    from fqt.native import NativeTrainer

    m = _load(name)
    trainable = _all_weighted(m)
    config = TrainConfig(**MSE_CONFIGS[cfg])
    golden = Trainer(copy.deepcopy(m), trainable, config)
    native = NativeTrainer(copy.deepcopy(m), trainable, config, library=native_lib)
    rng = np.random.default_rng(len(name) + 3 * len(cfg))
    n = 11
    xs = rng.integers(-128, 128, (n, *m.input_tensor.shape[1:]), dtype=np.int8)
    ts = rng.integers(-128, 128, (n, m.output_tensor.num_elements), dtype=np.int8)
    for part in (slice(0, 5), slice(5, n)):
        gl, _ = golden.train_step(xs[part], ts[part])
        nl, _ = native.train_step(xs[part], ts[part])
        np.testing.assert_allclose(nl, np.minimum(gl, 4294.967295), rtol=1e-6, atol=2e-6)
        _assert_same(golden, native, f"{name} {cfg} after {part.stop} samples")
    golden.flush()
    native.flush()
    _assert_same(golden, native, f"{name} {cfg} after flush")
    assert golden.counters.updates > 0
    np.testing.assert_array_equal(
        native.reconstruction_error(xs, ts), golden.reconstruction_error(xs, ts)
    )


def test_mse_refused_with_softmax(native_lib) -> None:  # noqa: F811
    from fqt.native import NativeTrainer

    m = _load("digits_cnn")
    for cls in (Trainer, lambda *a: NativeTrainer(*a, library=native_lib)):
        with pytest.raises(ValueError, match="without a final SOFTMAX"):
            cls(copy.deepcopy(m), None, TrainConfig(loss="mse"))


@pytest.mark.parametrize("lr", [float("nan"), float("inf"), 1e9, 0.0, -1.0])
def test_bad_lr_refused(lr: float, native_lib) -> None:  # noqa: F811
    from fqt.native import NativeTrainer

    m = _load("digits_cnn")
    for cls in (Trainer, lambda *a: NativeTrainer(*a, library=native_lib)):
        with pytest.raises(ValueError, match="lr must be"):
            cls(copy.deepcopy(m), None, TrainConfig(lr=lr))


@pytest.mark.parametrize(
    "opts",
    [
        dict(update_rule="sgd", lr=0.3, schedule="cosine", warmup_epochs=1),
        dict(lr=0.01, schedule="step", step_epochs=1, step_gamma=0.5),
    ],
    ids=["sgd-cosine-warmup", "std-step"],
)
def test_schedule_and_best_epoch(opts, native_lib) -> None:  # noqa: F811
    """Per-epoch lr schedules reach both engines alike; keep_best restores the model of the
    best validation epoch on both (the blobs are equal and score that epoch's accuracy)."""
    from fqt.native import NativeTrainer

    m = _load("dscnn_tiny")
    config = TrainConfig(batch=4, seed=3, **opts)
    golden = Trainer(copy.deepcopy(m), None, config)
    native = NativeTrainer(copy.deepcopy(m), None, config, library=native_lib)
    rng = np.random.default_rng(12)
    xs = rng.integers(-128, 128, (24, *m.input_tensor.shape[1:]), dtype=np.int8)
    ys = rng.integers(0, 4, 24)
    val = (xs[:12], ys[:12])
    gh = golden.run_epochs(xs[12:], ys[12:], 4, val=val, keep_best=True)
    nh = native.run_epochs(xs[12:], ys[12:], 4, val=val, keep_best=True)
    assert [r.lr for r in gh] == [r.lr for r in nh]
    assert len({r.lr for r in gh}) > 1  # the schedule changed the lr
    assert [r.val_accuracy for r in gh] == [r.val_accuracy for r in nh]
    _assert_same(golden, native, f"best epoch {opts}")
    best = max(r.val_accuracy for r in gh)
    assert golden.evaluate(*val)[0] == best == native.evaluate(*val)[0]


def test_empty_dataset_refused() -> None:
    m = _load("digits_cnn")
    t = Trainer(m, None, TrainConfig())
    with pytest.raises(ValueError, match="no training samples"):
        t.run_epochs(np.zeros((0, 1, 8, 8, 1), np.int8), np.zeros(0, np.int64), 1)


@pytest.mark.parametrize("memory", ["default", "lean"])
@pytest.mark.parametrize("cfg", ["nearest-dyn-b1", "sr-dyn-b3"])
def test_input_error_past_int32(cfg: str, memory: str, native_lib, monkeypatch) -> None:  # noqa: F811
    """Section 5.3: the input error of the wide conv of three_consumers (fan-out 1152) with
    every weight at 127 and a uniform output error leaves int32; C's exact int64 path (the
    lean plan's without the int32 tensor) and the golden int64 accumulator agree byte for
    byte."""
    from fqt.golden import conv2d as golden_conv
    from fqt.native import NativeTrainer

    m = _load("three_consumers")
    wide, fc = m.layers[4], m.layers[7]
    assert m.tensors[m.layers[4].output].shape[-1] == 128
    w = m.tensors[wide.inputs[1]]
    w.data = np.full(w.shape, 127, np.int8)
    w.quant.scale = np.full(len(w.quant.scale), 0.99 / 128, np.float32)
    f = m.tensors[fc.inputs[1]]
    f.data = np.full(f.shape, -127, np.int8)
    f.data[0] = 127  # uniform error at the flattened input, of the sign of class 0's
    prepare(m)
    peak = []
    real = golden_conv.quantize_error

    def spy(acc, base, mode="dynamic"):
        peak.append(int(np.abs(np.asarray(acc, np.int64)).max(initial=0)))
        return real(acc, base, mode)

    monkeypatch.setattr(golden_conv, "quantize_error", spy)
    trainable = _all_weighted(m)
    config = TrainConfig(**CONFIGS[cfg], memory=memory)
    golden = Trainer(copy.deepcopy(m), trainable, config)
    native = NativeTrainer(copy.deepcopy(m), trainable, config, library=native_lib)
    rng = np.random.default_rng(4)
    xs = rng.integers(-128, 128, (6, *m.input_tensor.shape[1:]), dtype=np.int8)
    ys = rng.integers(1, 5, 6)
    _, gp = golden.train_step(xs, ys)
    _, npred = native.train_step(xs, ys)
    golden.flush()
    native.flush()
    np.testing.assert_array_equal(npred, gp)
    _assert_same(golden, native, f"wide {cfg}")
    assert max(peak) > 2**31  # the case exercised is past int32


@pytest.mark.parametrize("grad_state", ["int32", "int16", "int8"])
@pytest.mark.parametrize("name", MODELS)
def test_memory_plan_each_trainable_set(name: str, grad_state: str, native_lib) -> None:  # noqa: F811
    from fqt.blob import write_blob
    from fqt.native import training_memory

    m = _load(name)
    weighted = sorted(_all_weighted(m))
    sets = [{li} for li in weighted] + [set(weighted), set(weighted[-2:])]
    for tr in sets:
        for memory in ("default", "lean"):
            plan = plan_memory(m, tr, memory, grad_state)
            got = training_memory(write_blob(m, tr), tr, native_lib, memory, grad_state)
            assert got == (plan.training_arena, plan.training_params), (name, sorted(tr), memory)
            if grad_state != "int32":
                # narrower params than the int32 state's, and rows for every trainable layer
                base = plan_memory(m, tr, memory)
                assert plan.training_params < base.training_params
                assert sorted(plan.grad_chunks) == sorted(tr)
                assert all(1 <= c for c in plan.grad_chunks.values())
        # the lean plan never needs more arena than the default one
        lean = plan_memory(m, tr, "lean", grad_state).training_arena
        assert lean <= plan_memory(m, tr, "default", grad_state).training_arena


def test_partial_updates_save_macs(native_lib) -> None:  # noqa: F811
    from fqt.native import NativeTrainer

    m = _load("digits_cnn")
    config = TrainConfig(batch=4, lambda_min=0.1, seed=1)
    native = NativeTrainer(m, _all_weighted(m), config, library=native_lib)
    rng = np.random.default_rng(0)
    xs = rng.integers(-128, 128, (16, 1, 8, 8, 1), dtype=np.int8)
    native.train_step(xs, rng.integers(0, 10, 16))
    c = native.counters
    assert c.backward_macs < c.backward_macs_full


@pytest.fixture(scope="module")
def digits():
    """The digits_cnn.json split, quantized, each sample with its batch axis."""
    pytest.importorskip("sklearn.datasets")
    from fqt.demo import digits_split

    xtr, ytr, xte, yte = digits_split(load_tflite(DIGITS))
    return xtr[:, None], ytr, xte[:, None], yte


@pytest.mark.parametrize(
    "opts",
    [
        dict(batch=16, lr=0.002, lambda_min=0.5, seed=7),
        dict(batch=1, lr=0.001, stochastic_rounding=False, error_scaling="fixed", seed=3),
    ],
    ids=["sr-b16-lam05", "nearest-fixed-b1"],
)
def test_digits_epochs_all_layers(digits, opts, native_lib) -> None:  # noqa: F811
    from fqt.native import NativeTrainer

    xtr, ytr, xte, yte = digits
    m = load_tflite(DIGITS)
    prepare(m)
    trainable = _all_weighted(m)
    config = TrainConfig(**opts)
    golden = Trainer(copy.deepcopy(m), trainable, config)
    native = NativeTrainer(copy.deepcopy(m), trainable, config, library=native_lib)
    n = 600 if opts["batch"] == 1 else len(xtr)
    epochs = 2 if opts["batch"] == 1 else 3
    gh = golden.run_epochs(xtr[:n], ytr[:n], epochs)
    nh = native.run_epochs(xtr[:n], ytr[:n], epochs)
    _assert_same(golden, native, f"digits {opts}")
    assert [r.train_accuracy for r in nh] == [r.train_accuracy for r in gh]
    g_acc, _ = golden.evaluate(xte, yte)
    n_acc, _ = native.evaluate(xte, yte)
    assert n_acc == g_acc
    if opts["batch"] > 1:
        assert n_acc > 0.8


@pytest.mark.parametrize(
    "extra",
    [
        [],
        ["--learn-ranges", "--update", "sgd", "--lr", "0.3"],
        ["--grad-state", "int8", "--update", "sgd", "--lr", "0.3"],  # section 4.1
        ["--grad-state", "int16", "--grad-rounding", "nearest"],
    ],
)
def test_fqt_train_native_tflm(
    digits,
    tmp_path: Path,
    capsys,
    native_lib,  # noqa: F811
    monkeypatch,
    extra: list[str],
) -> None:
    runtime = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")
    from fqt.cli import main
    from fqt.native import NativeEngine

    monkeypatch.setenv("FQT_NATIVE_LIB", str(native_lib))
    xtr, ytr, xte, yte = digits
    data = tmp_path / "d.npz"
    np.savez(data, x=xtr[:256], y=ytr[:256])
    val = tmp_path / "v.npz"
    np.savez(val, x=xte, y=yte)
    outs = {}
    for engine in ("native", "golden"):
        out = tmp_path / f"{engine}.tflite"
        rc = main([
            "train", str(DIGITS), "--data", str(data), "--val", str(val), "--epochs", "1",
            "--batch", "16", "--lr", "0.002", "--trainable", "all", "--lambda-min", "0.5",
            "--seed", "7", "-o", str(out), "--json", "--engine", engine, *extra,
        ])  # fmt: skip
        assert rc == 0
        outs[engine] = (out, json.loads(capsys.readouterr().out))
    out, summary = outs["native"]
    assert out.read_bytes() == outs["golden"][0].read_bytes()
    for k in ("forward_macs", "backward_macs", "backward_macs_full", "updates"):
        assert summary[k] == outs["golden"][1][k]
    assert summary["backward_macs"] < summary["backward_macs_full"]
    # TFLM on the exported file == the native engine on the trained blob.
    from fqt.blob import write_blob

    trained = load_tflite(out)
    prepare(trained)
    if "--learn-ranges" in extra:  # the export carries the learned activation quantization
        src = load_tflite(DIGITS)
        moved = [t.name for t, s in zip(trained.tensors, src.tensors, strict=True)
                 if not t.is_const and t.quant.scale[0] != s.quant.scale[0]]  # fmt: skip
        assert moved
    eng = NativeEngine(write_blob(trained), library=native_lib)
    it = runtime.Interpreter.from_file(str(out))
    for x in xte[:50]:
        it.set_input(x, 0)
        it.invoke()
        np.testing.assert_array_equal(
            np.asarray(it.get_output(0)).reshape(-1), eng.infer(x).reshape(-1)
        )


def test_host_device_trains_and_exports(digits, tmp_path: Path, native_lib) -> None:  # noqa: F811
    """`train start` on fqt_host_device (--params) updates the RAM blob in place: the
    exported blob is valid (CRC refreshed), differs from the pushed one, and the device's
    predictions equal the C engine's on the exported blob."""
    from fqt.blob import read_blob, write_blob
    from fqt.device import Device
    from fqt.native import NativeEngine

    exe = FIXTURE_MODELS.parents[2] / "build" / "host" / "fqt_host_device"
    if not exe.exists():
        pytest.skip("fqt_host_device is not built")
    xtr, ytr, xte, _ = digits
    m = load_tflite(DIGITS)
    prepare(m)
    blob = write_blob(m, _all_weighted(m))
    with Device.open(f"cmd:{exe} --params 65536", timeout=10.0) as dev:
        assert dev.info()["trainer"] == "built"
        dev.push_blob(blob)
        dev.push_samples(xtr[:64], ytr[:64])
        dev.command("train", "start", "2", "0.005", "8", "0.5", "3", "all")
        dev.wait_event("done train", timeout=120.0)
        trained = dev.pull_blob()
        read_blob(trained)  # validates the CRC and every field
        assert trained != blob
        eng = NativeEngine(trained, library=native_lib)
        for i in range(5):
            _, out = dev.predict_input(xte[i])
            np.testing.assert_array_equal(out.reshape(-1), eng.infer(xte[i]).reshape(-1))


def _device_order(seed: int, epoch: int, n: int) -> list[int]:
    """service/jobs.c shuffle_epoch: index = (offset + i * stride) mod n, stride coprime."""
    x = (seed * 2654435761 + epoch * 40503 + 1) & 0xFFFFFFFF
    x ^= x >> 15
    offset = x % n
    stride = 1 + (x >> 7) % (n - 1) if n > 2 else 1
    while n > 1 and math.gcd(stride, n) != 1:
        stride = stride % (n - 1) + 1
    return [(offset + i * stride) % n for i in range(n)]


@pytest.mark.parametrize("words", [(), ("standardized", "constant"), ("sgd", "constant")])
def test_device_job_schedule_equals_host(digits, words, native_lib) -> None:  # noqa: F811
    """One `train start` job of 3 epochs on fqt_host_device, where the device computes each
    epoch's lr itself (train/schedule.c; the default is sgd with a cosine schedule), gives
    the blob the host's C trainer gives when the host hands it golden/schedule.py's lr per
    epoch, with the device's sample order and end-of-epoch flush."""
    from fqt.blob import write_blob
    from fqt.device import Device
    from fqt.golden.trainer import epoch_lr
    from fqt.native import NativeTrainer

    exe = FIXTURE_MODELS.parents[2] / "build" / "host" / "fqt_host_device"
    if not exe.exists():
        pytest.skip("fqt_host_device is not built")
    xtr, ytr, _, _ = digits
    n, epochs, batch, seed = 44, 3, 32, 0  # the device's default batch and seed; 44 = 32 + 12
    m = load_tflite(DIGITS)
    prepare(m)
    trainable = {max(_all_weighted(m))}  # `train start`'s default: the last weighted layer
    blob = write_blob(m, trainable)
    rule = "standardized" if "standardized" in words else "sgd"
    schedule = "constant" if "constant" in words else "cosine"
    lr = 0.003 if rule == "standardized" else 0.3  # the device's default lr per rule
    with Device.open(f"cmd:{exe} --params 65536", timeout=10.0) as dev:
        dev.push_blob(blob)
        dev.push_samples(xtr[:n], ytr[:n])
        started = dev.command("train", "start", epochs, *words)  # lr: the rule's default
        dev.wait_event("done train", timeout=120.0)
        on_device = dev.pull_blob()
    assert started[0].endswith(f"update {rule} schedule {schedule}"), started

    cfg = TrainConfig(lr=lr, batch=batch, seed=seed, update_rule=rule, schedule=schedule)
    host = NativeTrainer(m, trainable, cfg, library=native_lib)
    for e in range(1, epochs + 1):
        host.set_lr(epoch_lr(cfg, e, epochs))
        order = _device_order(seed, e - 1, n)
        host.train_step(xtr[:n][order], ytr[:n][order])
        host.flush()
    assert bytes(host.blob) == on_device


def test_host_device_lean_memory_trains_the_same(digits, native_lib) -> None:  # noqa: F811
    """`train start ... lean` (the lean memory plan) on fqt_host_device trains the same
    blob as the default plan in an arena too small for the default one; the option word
    comes once."""
    from fqt.blob import write_blob
    from fqt.device import Device, DeviceError

    exe = FIXTURE_MODELS.parents[2] / "build" / "host" / "fqt_host_device"
    if not exe.exists():
        pytest.skip("fqt_host_device is not built")
    xtr, ytr, _, _ = digits
    m = load_tflite(DIGITS)
    prepare(m)
    tr = _all_weighted(m)
    blob = write_blob(m, tr)
    default, lean = plan_memory(m, tr), plan_memory(m, tr, "lean")
    assert lean.training_arena < default.training_arena
    args = ["train", "start", "1", "0.005", "8", "0.5", "3", "all"]
    trained = {}
    for memory, arena in (("default", default.training_arena), ("lean", lean.training_arena)):
        with Device.open(f"cmd:{exe} --params 65536 --arena {arena}", timeout=10.0) as dev:
            dev.push_blob(blob)
            dev.push_samples(xtr[:32], ytr[:32])
            if memory == "lean":
                with pytest.raises(DeviceError, match="given twice"):
                    dev.command(*args, "lean", "default")
                with pytest.raises(DeviceError, match="training needs"):
                    dev.command(*args, "default")  # the lean plan's arena is too small
            dev.command(*args, memory)
            dev.wait_event("done train", timeout=120.0)
            trained[memory] = dev.pull_blob()
    assert trained["lean"] == trained["default"] != blob
