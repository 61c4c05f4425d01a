"""Export of a model whose converter let several layers share one bias buffer (issue 13):
a tensor training changed gets a buffer of its own, the other users keep the shared one
untouched, and exportability is checked before training starts."""

from __future__ import annotations

import flatbuffers
import numpy as np
import pytest
import tflite
from conftest import FIXTURE_MODELS
from fqt.commands.common import load_model
from fqt.export import check_exportable, export_tflite
from fqt.golden.interpreter import infer_batch
from fqt.golden.trainer import TrainConfig, Trainer

schema = pytest.importorskip("ai_edge_litert.schema_py_generated")


def shared_bias_model() -> tuple[bytes, list[int]]:
    """dscnn_tiny with the three 8-channel biases (conv, depthwise, conv) on one buffer."""
    src = (FIXTURE_MODELS / "dscnn_tiny.tflite").read_bytes()
    mt = schema.ModelT.InitFromPackedBuf(bytearray(src), 0)
    sg = mt.subgraphs[0]
    biases = []
    for op in sg.operators:
        ins = list(op.inputs)
        if len(ins) > 2 and ins[2] >= 0 and len(sg.tensors[ins[2]].shape) == 1:
            biases.append(int(ins[2]))
    assert len(biases) == 3
    for ti in biases[1:]:
        sg.tensors[ti].buffer = sg.tensors[biases[0]].buffer
    b = flatbuffers.Builder(len(src) + 1024)
    b.Finish(mt.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output()), biases


def buffers_of(data: bytes, tensors: list[int]) -> list[int]:
    sg = tflite.Model.GetRootAsModel(data, 0).Subgraphs(0)
    return [sg.Tensors(t).Buffer() for t in tensors]


def buffer_bytes(data: bytes, tensor: int) -> bytes:
    m = tflite.Model.GetRootAsModel(data, 0)
    return m.Buffers(m.Subgraphs(0).Tensors(tensor).Buffer()).DataAsNumpy().tobytes()


def test_changed_tensor_gets_its_own_buffer_unchanged_shared_left_alone(tmp_path) -> None:
    data, biases = shared_bias_model()
    path = tmp_path / "shared.tflite"
    path.write_bytes(data)
    shared = buffers_of(data, biases)
    assert len(set(shared)) == 1  # the fixture really shares
    model = load_model(path)
    check_exportable(model, path)  # before training: fine
    dw = next(i for i, layer in enumerate(model.layers) if layer.op.name == "DEPTHWISE_CONV_2D")
    trainer = Trainer(model, {dw}, TrainConfig(lr=0.05, batch=4, seed=1))
    rng = np.random.default_rng(0)
    xs = rng.integers(-128, 128, (16, *model.input_tensor.shape), dtype=np.int8)
    ys = rng.integers(0, model.output_tensor.num_elements, 16)
    trainer.run_epochs(xs, ys, 2)
    dw_bias = model.tensors[model.layers[dw].inputs[2]]
    original = buffer_bytes(data, dw_bias.tflite_index)
    assert dw_bias.data.tobytes() != original, "training did not change the shared bias"

    out = export_tflite(trainer.model, data)
    after = buffers_of(out, biases)
    k = biases.index(dw_bias.tflite_index)
    others = [b for i, b in enumerate(after) if i != k]
    assert after[k] not in others  # its own buffer now
    assert others == [shared[0]] * 2  # the untouched users keep the shared buffer
    for i, t in enumerate(biases):
        if i != k:
            assert buffer_bytes(out, t) == original
    assert buffer_bytes(out, dw_bias.tflite_index) == dw_bias.data.tobytes()
    # The exported .tflite runs in the reference and matches the trained golden model.
    from tflite_micro.python.tflite_micro import runtime

    tflm = runtime.Interpreter.from_bytes(out)
    golden = infer_batch(trainer.model, xs[:4])
    for x, g in zip(xs[:4], golden, strict=True):
        tflm.set_input(x.reshape(model.input_tensor.shape), 0)
        tflm.invoke()
        assert np.array_equal(tflm.get_output(0).reshape(-1), g.reshape(-1))


def test_unchanged_shared_buffer_is_exported_byte_for_byte(tmp_path) -> None:
    data, _ = shared_bias_model()
    path = tmp_path / "shared.tflite"
    path.write_bytes(data)
    assert export_tflite(load_model(path), data) == data


def test_exportability_is_checked_before_training(tmp_path) -> None:
    """`fqt train` refuses at once (exit 2, one line) a source whose constants do not fit."""
    import subprocess
    import sys

    model_path = FIXTURE_MODELS / "fc_softmax.tflite"
    model = load_model(model_path)
    other = FIXTURE_MODELS / "digits_cnn.tflite"
    with pytest.raises(Exception, match="export"):
        check_exportable(model, other)
    np.savez(tmp_path / "d.npz", x=np.zeros((2, model.input_tensor.num_elements), np.int8),
             y=np.zeros(2, np.int64))  # fmt: skip
    r = subprocess.run(
        [sys.executable, "-m", "fqt.cli", "train", str(model_path), "--data",
         str(tmp_path / "d.npz"), "-o", str(tmp_path / "missing" / "t.tflite")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr
    assert "does not exist" in r.stderr
