"""The C engine (libfqt.so through fqt.native) against the golden model, bit for bit.

- every valid fixture model and every shared model: >= 100 seeded random int8 inputs (plus
  the constant inputs -128, 0, 127), native output == golden output exactly; every
  activation tensor on one input; the C arena size == plan_memory(model).inference_arena;
  the MAC counter == the sum of plan.layer_macs;
- the loader rejects corrupted blobs (flipped bytes, truncation, bad offsets and bad
  parameters with the CRC recomputed so the deeper checks are reached) with a message,
  and never crashes on thousands of random corruptions;
- a short arena fails with the exact shortfall;
- the C unit tests (ctest) pass.

The library is built with CMake into build/host when missing (or rebuilt when its sources
changed); FQT_NATIVE_LIB points at another build.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURE_MODELS, REPO, SHARED
from fqt.blob import HEADER_SIZE, LAYER_RECORD_SIZE, TENSOR_RECORD_SIZE, write_blob
from fqt.errors import BlobFormatError
from fqt.golden.interpreter import infer_batch, run_all
from fqt.ir import Model
from fqt.plan import layer_macs, plan_memory
from fqt.prepare import prepare
from fqt.tflite_import import load_tflite

N_RANDOM = 100
BUILD_DIR = REPO / "build" / "host"


def _valid_fixture(p: Path) -> bool:
    return not (p.stem in ("truncated", "garbage") or p.stem.startswith("unsupported"))


def _model_params() -> list:
    params = [
        pytest.param(p, id=p.stem)
        for p in sorted(FIXTURE_MODELS.glob("*.tflite"))
        if _valid_fixture(p)
    ]
    shared = sorted((SHARED / "models").glob("*.tflite")) if SHARED.is_dir() else []
    if shared:
        params += [pytest.param(p, id=f"shared-{p.stem}") for p in shared]
    else:
        params.append(
            pytest.param(
                None,
                id="shared-models",
                marks=pytest.mark.skip(reason=f"{SHARED}/models is absent"),
            )
        )
    return params


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


@pytest.fixture(scope="session")
def native_lib() -> Path:
    """Path of libfqt.so: $FQT_NATIVE_LIB, else build/host/libfqt.so built (or brought up
    to date) with CMake."""
    env = os.environ.get("FQT_NATIVE_LIB")
    if env:
        if not Path(env).exists():
            pytest.fail(f"FQT_NATIVE_LIB={env} does not exist")
        return Path(env)
    lib = BUILD_DIR / "libfqt.so"
    cmake = shutil.which("cmake")
    if cmake is None:
        if lib.exists():
            return lib
        pytest.skip("cmake is not installed and build/host/libfqt.so is absent")
    if not (BUILD_DIR / "CMakeCache.txt").exists():
        gen = ["-G", "Ninja"] if shutil.which("ninja") else []
        _run([cmake, "-S", str(REPO), "-B", str(BUILD_DIR), *gen])
    _run([cmake, "--build", str(BUILD_DIR)])
    assert lib.exists()
    return lib


@pytest.fixture(scope="session")
def engine_cls(native_lib: Path):
    from fqt import native

    def make(blob: bytes, **kw):
        return native.NativeEngine(blob, library=native_lib, **kw)

    return make


_prepared: dict[Path, tuple[Model, bytes]] = {}


def _prepared_model(path: Path) -> tuple[Model, bytes]:
    if path not in _prepared:
        model = load_tflite(path)
        prepare(model)
        _prepared[path] = (model, write_blob(model))
    return _prepared[path]


def _inputs(model: Model, seed: int) -> np.ndarray:
    shape = model.input_tensor.shape[1:] if model.input_tensor.shape else ()
    rng = np.random.default_rng(seed)
    xs = rng.integers(-128, 128, size=(N_RANDOM, *shape), dtype=np.int8)
    constants = np.stack([np.full(shape, v, np.int8) for v in (-128, 0, 127)])
    return np.concatenate([xs, constants])


@pytest.mark.parametrize("path", _model_params())
def test_native_matches_golden(path: Path, engine_cls) -> None:
    model, blob = _prepared_model(path)
    engine = engine_cls(blob)
    assert engine.arena_size == plan_memory(model).inference_arena
    assert engine.layer_count == len(model.layers)
    xs = _inputs(model, seed=zlib.crc32(path.name.encode()))
    golden = infer_batch(model, xs)
    native = engine.infer_batch(xs)
    assert native.shape[0] == golden.shape[0] == len(xs)
    native = native.reshape(golden.shape)
    mismatches = int(np.count_nonzero(native != golden))
    assert mismatches == 0, f"{mismatches} of {golden.size} output values differ"
    expected_macs = sum(layer_macs(model, li) for li in range(len(model.layers)))
    assert engine.macs == len(xs) * expected_macs
    for li in range(len(model.layers)):
        assert engine.layer_macs(li) == layer_macs(model, li)


@pytest.mark.parametrize("path", _model_params())
def test_native_every_tensor_matches_golden(path: Path, engine_cls) -> None:
    model, blob = _prepared_model(path)
    engine = engine_cls(blob)
    x = _inputs(model, seed=7)[0]
    engine.infer(x)
    for ti, value in run_all(model, x).items():
        got = engine.tensor(ti)
        assert np.array_equal(got.reshape(value.shape), value), f"tensor {ti} differs"
    for t in model.tensors:
        if t.data is not None:
            assert np.array_equal(engine.tensor(t.index).reshape(t.data.shape), t.data)


# --- the loader against corrupted blobs -------------------------------------------------


def _fix_crc(blob: bytearray) -> bytearray:
    total = struct.unpack_from("<I", blob, 8)[0]
    struct.pack_into("<I", blob, 12, zlib.crc32(bytes(blob[16:total])) & 0xFFFFFFFF)
    return blob


def _tables(blob: bytes) -> tuple[int, int, int, int, int]:
    n_t, n_l = struct.unpack_from("<HH", blob, 18)
    t_off, l_off, d_off = struct.unpack_from("<III", blob, 32)
    return n_t, n_l, t_off, l_off, d_off


@pytest.fixture(scope="module")
def digits() -> tuple[Model, bytes]:
    return _prepared_model(FIXTURE_MODELS / "digits_cnn.tflite")


def _expect_rejected(engine_cls, blob: bytes | bytearray, *needles: str) -> str:
    with pytest.raises(BlobFormatError) as e:
        engine_cls(bytes(blob))
    msg = str(e.value)
    for needle in needles:
        assert needle in msg, msg
    return msg


def test_valid_blob_loads(engine_cls, digits) -> None:
    _, blob = digits
    engine = engine_cls(blob)
    assert engine.name == "digits_cnn"
    assert engine.crc32(blob[16:]) == zlib.crc32(blob[16:])


def test_flipped_bytes_fail_the_crc(engine_cls, digits) -> None:
    _, blob = digits
    for pos in range(16, len(blob), max(1, len(blob) // 97)):
        b = bytearray(blob)
        b[pos] ^= 0x5A
        _expect_rejected(engine_cls, b, "crc32")
    b = bytearray(blob)
    b[0] ^= 1
    _expect_rejected(engine_cls, b, "magic")


def test_truncated_blobs_are_rejected(engine_cls, digits) -> None:
    _, blob = digits
    for n in [0, 1, 63, 64, 65, len(blob) // 2, len(blob) - 4, len(blob) - 1]:
        _expect_rejected(engine_cls, blob[:n], "bad model blob")
    _expect_rejected(engine_cls, blob[:63], "shorter than the 64-byte header")
    _expect_rejected(engine_cls, blob[: len(blob) - 1], "total_size")


def _set(blob: bytes, fmt: str, offset: int, value: int) -> bytearray:
    b = bytearray(blob)
    struct.pack_into(fmt, b, offset, value)
    return _fix_crc(b)


def test_bad_offsets_and_fields_with_crc_recomputed(engine_cls, digits) -> None:
    model, blob = digits
    n_t, n_l, t_off, l_off, d_off = _tables(blob)
    data_size = len(blob) - d_off

    def tensor(i: int, field: int) -> int:
        return t_off + i * TENSOR_RECORD_SIZE + field

    def layer(i: int, field: int) -> int:
        return l_off + i * LAYER_RECORD_SIZE + field

    w = model.layers[0].inputs[1]  # conv weights
    cases = [
        ("<I", 32, t_off + 2, "tensors_offset"),
        ("<I", 32, len(blob), "tensors_offset"),
        ("<I", 36, 0xFFFFFFF0, "layers_offset"),
        ("<I", 40, d_off + 4, "data_offset"),
        ("<I", 44, data_size + 4, "data_size"),
        ("<H", 18, 0, "tensor_count 0"),
        ("<H", 26, w, f"input_tensor {w}"),
        ("<I", tensor(w, 32), data_size, f"tensor {w}: data_offset"),
        ("<I", tensor(w, 32), 2, f"tensor {w}: data_offset 2"),
        ("<I", tensor(w, 36), 3, f"tensor {w}: data_size 3"),
        ("<I", tensor(w, 24), 0x7FFFFFFC, f"tensor {w}: scale_offset"),
        ("<I", tensor(w, 28), data_size - 4, f"tensor {w}: zero_point_offset"),
        ("<i", tensor(3, 8), 0, "tensor 3: shape[1] = 0"),
        ("<i", tensor(3, 8), 1 << 30, "FQT_MAX_TENSOR_BYTES"),
        ("<B", tensor(3, 1), 7, "tensor 3: rank 7"),
        ("<B", layer(0, 0), 42, "layer 0: op code 42"),
        ("<h", layer(0, 4), n_t, f"input tensor {n_t} out of range"),
        ("<h", layer(0, 6), 0, "weights tensor 0"),
        ("<h", layer(1, 10), 3, "already written"),
        ("<h", layer(1, 4), 7, "reads tensor 7 before any layer writes it"),
        ("<h", layer(0, 12), 2, "output 8x8, input, filter, stride and padding give 4x8"),
        ("<h", layer(0, 12), 0, "stride 0x1"),
        ("<h", layer(0, 26), 5, "pad 5x"),
        ("<h", layer(1, 16), 0, "filter 0x"),
        ("<i", layer(0, 32), 300, "not an int8 range"),
        ("<I", layer(0, 40), 3, "channel_count 3"),
        ("<I", layer(0, 44), data_size, "multiplier_offset"),
        ("<I", layer(0, 48), 6, "shift_offset 6"),
        ("<i", layer(n_l - 1, 60), 5, "diff_min 5"),
    ]
    for fmt, offset, value, needle in cases:
        _expect_rejected(engine_cls, _set(blob, fmt, offset, value), needle)
    # A shift outside [-31, 30] in the data section.
    m_off = struct.unpack_from("<I", blob, layer(0, 48))[0]
    _expect_rejected(engine_cls, _set(blob, "<i", d_off + m_off, 64), "shift[0] = 64")
    # Weights must stay symmetric.
    zp_off = struct.unpack_from("<I", blob, tensor(w, 28))[0]
    _expect_rejected(engine_cls, _set(blob, "<i", d_off + zp_off, 3), "zero_point[0] = 3")


def test_random_corruptions_never_crash(engine_cls, digits) -> None:
    """Thousands of blobs with random bytes of the header and tables changed (CRC fixed):
    each loads or is rejected with a message; the accepted ones run."""
    model, blob = digits
    _, _, _, _, d_off = _tables(blob)
    rng = np.random.default_rng(1234)
    accepted = 0
    x = np.zeros(model.input_tensor.num_elements, np.int8)
    for _ in range(3000):
        b = bytearray(blob)
        for _ in range(int(rng.integers(1, 4))):
            pos = int(rng.integers(16, d_off + 64))
            b[pos] = int(rng.integers(0, 256))
        try:
            engine = engine_cls(bytes(_fix_crc(b)))
        except BlobFormatError as e:
            assert str(e).strip()
            continue
        accepted += 1
        engine.infer(x)
    assert accepted < 3000


def test_short_arena_reports_the_shortfall(engine_cls, digits) -> None:
    from fqt.native import NativeEngineError

    model, blob = digits
    need = plan_memory(model).inference_arena
    with pytest.raises(NativeEngineError, match=f"is 10 bytes short \\(the model needs {need}\\)"):
        engine_cls(blob, arena_size=need - 10)
    engine = engine_cls(blob, arena_size=need + 100)
    assert engine.arena_size == need + 100 and engine.required_arena_size == need


def test_misaligned_or_wrong_input_is_refused(engine_cls, digits) -> None:
    model, blob = digits
    engine = engine_cls(blob)
    with pytest.raises(ValueError, match="elements"):
        engine.infer(np.zeros(3, np.int8))
    with pytest.raises(TypeError):
        engine.infer(np.zeros(model.input_tensor.num_elements, np.float32))


def test_header_constants_match_the_writer() -> None:
    assert (HEADER_SIZE, TENSOR_RECORD_SIZE, LAYER_RECORD_SIZE) == (64, 48, 80)


def test_c_unit_tests_pass(native_lib: Path) -> None:
    ctest = shutil.which("ctest")
    if ctest is None or not (BUILD_DIR / "CTestTestfile.cmake").exists():
        pytest.skip("ctest or the build/host tree is absent")
    if os.environ.get("FQT_NATIVE_LIB"):
        pytest.skip("FQT_NATIVE_LIB points at another build")
    proc = subprocess.run(
        [ctest, "--test-dir", str(BUILD_DIR), "--output-on-failure"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
