"""TFLite import, the blob, the memory plan and the import commands."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURE_MODELS, REPO, fixture_models, manifest, shared_models
from fqt import cli
from fqt.blob import HEADER_SIZE, read_blob, write_blob
from fqt.boards import get_board
from fqt.errors import BlobFormatError, ModelFormatError, UnsupportedModelError
from fqt.ir import OpType
from fqt.plan import Buffer, greedy_plan, plan_memory
from fqt.prepare import prepare
from fqt.tflite_import import load_tflite

ALL_MODELS = fixture_models() + shared_models()
SKIPPED_OPS = {"QUANTIZE", "DEQUANTIZE", "SHAPE", "STRIDED_SLICE", "PACK"}


@pytest.mark.parametrize("path", fixture_models(), ids=lambda p: p.stem)
def test_fixture_ops_match_manifest(path: Path) -> None:
    model = load_tflite(path)
    expected = [op for op in manifest()[path.name]["ops"] if op not in SKIPPED_OPS]  # type: ignore[attr-defined]
    assert [layer.op.name for layer in model.layers] == expected


def test_edges_and_flatten_chain_are_folded() -> None:
    m = load_tflite(FIXTURE_MODELS / "float_io_quant_dequant.tflite")
    assert m.float_input and m.float_output
    assert m.input_tensor.dtype.name == "INT8" and m.output_tensor.dtype.name == "INT8"
    m = load_tflite(FIXTURE_MODELS / "flatten_dynamic_batch.tflite")
    assert [layer.op for layer in m.layers] == [
        OpType.CONV_2D,
        OpType.RESHAPE,
        OpType.FULLY_CONNECTED,
    ]


def test_person_detect_bias_axis_is_tolerated(shared_dir: Path) -> None:
    m = load_tflite(shared_dir / "models" / "person_detect.tflite")
    biases = [m.tensors[layer.inputs[2]] for layer in m.layers if len(layer.inputs) > 2]
    assert biases and all(b.quant.axis == 0 for b in biases)


def test_unsupported_model_names_every_op_and_index() -> None:
    with pytest.raises(UnsupportedModelError) as e:
        load_tflite(FIXTURE_MODELS / "unsupported_ops.tflite")
    msg = str(e.value)
    for expected in ("operator 1 TANH", "operator 4 LOGISTIC", "operator 6 CONCATENATION"):
        assert expected in msg
    assert "operator 2 QUANTIZE" in msg and "operator 5 QUANTIZE" in msg
    assert "CONV_2D" not in msg


@pytest.mark.parametrize("name", ["truncated.tflite", "garbage.tflite"])
def test_broken_file_is_a_format_error(name: str) -> None:
    with pytest.raises(ModelFormatError):
        load_tflite(FIXTURE_MODELS / name)


def test_every_truncation_is_a_clean_error() -> None:
    data = (FIXTURE_MODELS / "residual_add.tflite").read_bytes()
    from fqt.tflite_import import parse_tflite

    for cut in range(0, len(data), 37):
        try:
            parse_tflite(data[:cut])
        except (ModelFormatError, UnsupportedModelError):
            continue


@pytest.mark.parametrize(
    "name", ["truncated.tflite", "garbage.tflite", "unsupported_ops.tflite", "missing.tflite"]
)
def test_cli_errors_are_one_line(name: str, tmp_path: Path) -> None:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "fqt.cli",
            "import",
            str(FIXTURE_MODELS / name),
            "-o",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1
    assert "Traceback" not in r.stderr
    assert not list(tmp_path.iterdir())  # nothing half-written


@pytest.mark.parametrize("path", ALL_MODELS, ids=lambda p: p.stem)
def test_blob_round_trip(path: Path) -> None:
    model = load_tflite(path)
    prepare(model)
    blob = write_blob(model, {0})
    back, info = read_blob(blob)
    assert info.trainable == {0} and info.total_size == len(blob)
    assert (back.input, back.output, back.float_input) == (
        model.input,
        model.output,
        model.float_input,
    )
    for a, b in zip(model.tensors, back.tensors, strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_array_equal(a.quant.scale, b.quant.scale)
        np.testing.assert_array_equal(a.quant.zero_point, b.quant.zero_point)
        assert (a.data is None) == (b.data is None)
        if a.data is not None:
            np.testing.assert_array_equal(a.data, b.data)
    for pa, pb in zip(model.params, back.params, strict=True):
        np.testing.assert_array_equal(pa.output_multiplier, pb.output_multiplier)
        np.testing.assert_array_equal(pa.output_shift, pb.output_shift)
        assert (pa.act_min, pa.act_max, pa.pad_h, pa.pad_w) == (
            pb.act_min,
            pb.act_max,
            pb.pad_h,
            pb.pad_w,
        )
    assert write_blob(back, {0}) == blob  # the reader loses nothing the writer wrote


def test_blob_rejects_corruption() -> None:
    model = load_tflite(FIXTURE_MODELS / "digits_cnn.tflite")
    prepare(model)
    blob = bytearray(write_blob(model))
    for pos in (0, 8, 20, HEADER_SIZE + 5, len(blob) - 3):
        bad = bytearray(blob)
        bad[pos] ^= 0x5A
        with pytest.raises(BlobFormatError):
            read_blob(bytes(bad))
    with pytest.raises(BlobFormatError):
        read_blob(bytes(blob[: len(blob) // 2]))
    # A wild data offset with a valid CRC gets past the CRC and is still caught.
    bad = bytearray(blob)
    bad[HEADER_SIZE + 24 : HEADER_SIZE + 28] = (10**8).to_bytes(4, "little")
    bad[12:16] = (zlib.crc32(bytes(bad[16:])) & 0xFFFFFFFF).to_bytes(4, "little")
    with pytest.raises(BlobFormatError, match="out of bounds"):
        read_blob(bytes(bad))


def test_greedy_plan_reuses_space_of_dead_buffers() -> None:
    bufs = [Buffer("a", 100, 0, 1), Buffer("b", 60, 1, 2), Buffer("c", 100, 2, 3)]
    peak = greedy_plan(bufs)
    assert [b.offset for b in bufs] == [0, 100, 0]
    assert peak == 160


def test_plan_counts_training_memory() -> None:
    model = load_tflite(FIXTURE_MODELS / "digits_cnn.tflite")
    fc = [layer.index for layer in model.layers if layer.op == OpType.FULLY_CONNECTED]
    conv = [layer.index for layer in model.layers if layer.op == OpType.CONV_2D]
    head = plan_memory(model, set(fc))
    full = plan_memory(model, set(fc + conv))
    assert head.inference_arena <= head.training_arena <= full.training_arena
    w = model.tensors[model.layers[fc[0]].inputs[1]]
    # int8 weights + int32 gradients at least
    assert head.training_params >= 5 * w.num_elements
    assert full.training_params > head.training_params


def test_pools_with_disjoint_windows_plan_no_int32_error_scratch() -> None:
    from fqt.plan import pool_error_direct, training_buffers

    for name, direct in [
        ("maxpool_2x2_valid_stride2", True), ("avgpool_2x2_valid_stride2", True),
        ("maxpool_3x3_same_stride2", False), ("avgpool_3x3_valid_stride2", False),
    ]:  # fmt: skip
        assert pool_error_direct(load_tflite(FIXTURE_MODELS / f"{name}.tflite"), 0) is direct
    model = load_tflite(FIXTURE_MODELS / "digits_cnn.tflite")
    pools = [la for la in model.layers if la.op in (OpType.MAX_POOL_2D, OpType.AVERAGE_POOL_2D)]
    weighted = {la.index for la in model.layers if la.inputs[1:] and la.op not in (
        OpType.MAX_POOL_2D, OpType.AVERAGE_POOL_2D, OpType.ADD)}  # fmt: skip
    names = {b.name for b in training_buffers(model, weighted)}
    assert pools and all(pool_error_direct(model, la.index) for la in pools)
    assert not any(f"acc{la.inputs[0]}" in names for la in pools)


def test_board_fit_says_by_how_many_bytes(shared_dir: Path, tmp_path: Path) -> None:
    model_path = shared_dir / "models" / "kws_ref_model.tflite"
    model = load_tflite(model_path)
    prepare(model)
    plan = plan_memory(model, {layer.index for layer in model.layers if layer.inputs[1:]})
    pool = get_board("qemu_cortex_m3").arena_pool
    need = max(plan.inference_arena, plan.training_arena)
    assert need > pool
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "fqt.cli",
            "import",
            str(model_path),
            "-o",
            str(tmp_path),
            "--board",
            "qemu_cortex_m3",
            "--trainable",
            "all",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert f"over by {need - pool:,} bytes" in r.stderr
    assert not list(tmp_path.iterdir())


def test_import_writes_blob_c_and_table(tmp_path: Path) -> None:
    rc = cli.main(
        [
            "import",
            str(FIXTURE_MODELS / "digits_cnn.tflite"),
            "-o",
            str(tmp_path),
            "--board",
            "qemu_cortex_m3",
            "--trainable",
            "all",
        ]
    )
    assert rc == 0
    blob = (tmp_path / "digits_cnn.fqtb").read_bytes()
    model, info = read_blob(blob)
    weighted = {
        layer.index
        for layer in model.layers
        if layer.op in (OpType.CONV_2D, OpType.FULLY_CONNECTED, OpType.DEPTHWISE_CONV_2D)
    }
    assert info.trainable == weighted
    src = (tmp_path / "digits_cnn_blob.c").read_text()
    # The C array holds exactly the blob's bytes.
    body = src.split("{", 1)[1].split("}", 1)[0]
    assert bytes(int(v, 16) for v in body.replace(",", " ").split()) == blob
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc:
        subprocess.run(
            [
                cc,
                "-std=c99",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-c",
                str(tmp_path / "digits_cnn_blob.c"),
                "-o",
                str(tmp_path / "blob.o"),
            ],
            check=True,
        )


def test_import_json_reports_the_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert (
        cli.main(
            ["import", str(FIXTURE_MODELS / "dscnn_tiny.tflite"), "-o", str(tmp_path), "--json"]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    model = load_tflite(FIXTURE_MODELS / "dscnn_tiny.tflite")
    plan = plan_memory(model, set(out["trainable"]))
    assert out["inference_arena_bytes"] == plan.inference_arena
    assert out["training_ram_bytes"] == plan.training_total
    assert sum(r["macs"] for r in out["layers"]) > 0


@pytest.mark.parametrize("memory", ["default", "lean"])
def test_import_json_breakdown(
    memory: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json per layer: trainable_weights and the training bytes by kind, whose params
    part is the params pool and whose arena part holds every planned buffer once; at the
    top: fp32_training_ram_bytes (plan.fp32_training_memory), the memory plan and every
    buffer with its lifetime."""
    import json

    from fqt.plan import fp32_training_memory

    path = str(FIXTURE_MODELS / "dscnn_tiny.tflite")
    args = ["import", path, "-o", str(tmp_path), "--json", "--trainable", "all"]
    assert cli.main([*args, "--memory", memory]) == 0
    out = json.loads(capsys.readouterr().out)
    model = load_tflite(path)
    tr = set(out["trainable"])
    plan = plan_memory(model, tr, memory)
    assert out["memory"] == memory and len(tr) > 1
    assert out["training_arena_bytes"] == plan.training_arena
    assert out["fp32_training_ram_bytes"] == fp32_training_memory(model, tr).total
    assert out["training_ram_bytes"] < out["fp32_training_ram_bytes"]
    kinds = ("weights", "gradient_state", "kept_activations", "errors", "scratch")
    rows = out["layers"]
    assert all(set(r["training_bytes"]) == set(kinds) for r in rows)
    params = sum(
        r["training_bytes"]["weights"] + r["training_bytes"]["gradient_state"] for r in rows
    )
    assert params == out["training_params_bytes"]
    for r in rows:
        layer = model.layers[r["layer"]]
        n = (
            model.tensors[layer.inputs[1]].num_elements + layer_out(model, layer)
            if r["trainable"]
            else 0
        )
        assert r["trainable_weights"] == n
    bufs = out["training_buffers"]
    assert [b["name"] for b in bufs] == [b.name for b in plan.training_buffers]
    arena_kinds = sum(r["training_bytes"][k] for r in rows for k in kinds[2:])
    kept = sum(
        -(-b["bytes"] // 4) * 4 for b in bufs if b["kind"] != "act" or "bw" in b["last_step"]
    )
    assert arena_kinds == kept > plan.training_arena  # buffers share bytes in the arena
    assert all(b["first"] <= b["last"] and b["offset"] >= 0 for b in bufs)
    if memory == "lean":
        # int8 input errors with chunk scratch (the FC's int32 tensor is smaller: kept)
        assert {b["layer"] for b in bufs if b["kind"] == "ie"} == {1, 2}
        assert [b["layer"] for b in bufs if b["kind"] == "acc"] == [5]
        assert any(b["last_step"].endswith(".wgrad") for b in bufs)
        assert out["training_arena_bytes"] < plan_memory(model, tr).training_arena


def layer_out(model, layer) -> int:
    return model.tensors[layer.output].shape[-1]


def test_west_fqt_import(tmp_path: Path) -> None:
    """`west fqt-import` through a real west workspace whose manifest repository holds
    this checkout's west-commands.yml (copied: west refuses symlinks out of a project)."""
    west = shutil.which("west", path=str(Path(sys.executable).parent))
    if west is None:
        pytest.skip("west is not installed in this environment")
    ws = tmp_path / "ws"
    (ws / ".west").mkdir(parents=True)
    shutil.copytree(REPO / "scripts", ws / "fqt" / "scripts")
    (ws / "fqt" / "west.yml").write_text(
        "manifest:\n  self:\n    west-commands: scripts/west-commands.yml\n"
    )
    (ws / ".west" / "config").write_text("[manifest]\npath = fqt\nfile = west.yml\n")
    out = tmp_path / "out"
    r = subprocess.run(
        [
            west,
            "fqt-import",
            str(FIXTURE_MODELS / "digits_cnn.tflite"),
            "-o",
            str(out),
            "--board",
            "qemu_cortex_m3",
        ],
        cwd=ws,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert "peak arena, inference" in r.stdout
    assert (out / "digits_cnn.fqtb").exists()
    r = subprocess.run(
        [west, "fqt-import", str(FIXTURE_MODELS / "garbage.tflite"), "-o", str(out)],
        cwd=ws,
        capture_output=True,
        text=True,
    )
    assert r.returncode != 0 and "not a TFLite flatbuffer" in r.stderr
    assert "Traceback" not in r.stderr
