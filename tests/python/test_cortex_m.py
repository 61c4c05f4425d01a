"""The core bare metal on QEMU's Cortex-M4 (mps2-an386) and Cortex-M7 (mps2-an500), with the
SIMD kernels and without: the forward output and the trained blob (weights, biases, scales,
multipliers after two updates) equal the host engine's byte for byte.

Uses benchmarks/cortex_m/cortex_m.py (arm-none-eabi-gcc, qemu-system-arm); skips with the
reason when a tool is absent.
"""

from __future__ import annotations

import copy
import zlib

import numpy as np
import pytest
from conftest import FIXTURE_MODELS, load_module
from fqt.golden.trainer import TrainConfig
from fqt.native import NativeEngine, NativeTrainer
from test_native import native_lib  # noqa: F401  (the session fixture building libfqt.so)

bench = load_module("benchmarks/cortex_m/cortex_m.py", "fqt_bench_cortex_m")
pytestmark = pytest.mark.skipif(
    bench.tools_missing() is not None, reason=str(bench.tools_missing())
)

CONFIGS = [("m4", "simd"), ("m4", "generic"), ("m7", "simd")]


@pytest.fixture(scope="module", params=["int32", "int8"])
def host(request):
    """dscnn_tiny (conv, depthwise, pool, FC): 3 samples, batch 2, so two updates (the
    second one with valid EMA state), and what the host engine computes for them; with the
    int32 and the int8 gradient state (docs/training-semantics.md 4.1)."""
    gs = request.param
    w = bench.workload(
        FIXTURE_MODELS / "dscnn_tiny.tflite", samples=3, batch=2, seed=4, grad_state=gs
    )
    out = NativeEngine(w.blob).infer(w.inputs[:1]).astype(np.int8).tobytes().hex()
    cfg = TrainConfig(lr=w.lr, batch=w.batch, seed=w.seed, grad_state=gs)
    tr = NativeTrainer(copy.deepcopy(w.model), set(w.trainable), cfg)
    assert tr.blob == w.blob
    tr.train_step(w.inputs, w.labels)
    tr.flush()
    assert tr.blob != w.blob, "training changed nothing: the comparison would be vacuous"
    return w, out, zlib.crc32(tr.blob)


@pytest.mark.parametrize("core,kernels", CONFIGS, ids=[f"{c}-{k}" for c, k in CONFIGS])
def test_bit_exact_with_host(host, core: str, kernels: str) -> None:
    w, out, crc = host
    cfg = bench.Config(core, kernels, "O2")
    _core_objs, objs = bench.build_objects(cfg)
    res = bench.parse(bench.run_qemu(bench.link(cfg, objs, w), core, timeout=120))
    assert res["output"] == out
    assert res["samples"] == 3 and res["updates"] == 2
    assert res["blob_crc"] == crc
    assert res["calibration"]["ticks_per_instruction"] > 1.0  # every instruction is seen


KWS = bench.MODELS["kws_ref_model"]


@pytest.mark.skipif(not KWS.exists(), reason=f"{KWS} is absent")
def test_kws_forward_bit_exact_m4_simd() -> None:
    """The MLPerf Tiny KWS DS-CNN (../shared/models) on M4 with the SIMD kernels: the
    patch-matrix convolution's odd position count (125), its 1-channel 10 x 4 first layer
    with padding and its pointwise layers, the 3 x 3 depthwise layers; forward output equal
    to the host's."""
    w = bench.workload(KWS, samples=1, batch=1, seed=5)
    out = NativeEngine(w.blob).infer(w.inputs[:1]).astype(np.int8).tobytes().hex()
    cfg = bench.Config("m4", "simd", "O2")
    _core_objs, objs = bench.build_objects(cfg)
    res = bench.parse(bench.run_qemu(bench.link(cfg, objs, w), "m4", timeout=300))
    assert res["output"] == out
