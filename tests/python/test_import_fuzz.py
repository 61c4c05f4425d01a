"""The importer under seeded mutations of the project's fixtures (tests/python/
import_mutations.py): one line and exit 2, or success with a blob the C loader accepts.
benchmarks/fuzz_import.py is the long run."""

from __future__ import annotations

import subprocess
import sys

import import_mutations as mut
import numpy as np
import pytest
from fqt.commands.common import prepare_checked
from fqt.errors import UnsupportedModelError
from fqt.tflite_import import load_tflite


def test_mutated_fixtures_one_line_or_a_loadable_blob() -> None:
    c = mut.run(2500, seed=13)
    assert c.mutants == 2500
    assert c.tracebacks == 0 and c.multiline == 0 and c.internal == 0 and c.other_exit == 0, (
        c.examples[:5]
    )
    assert c.loader_refused == 0, c.examples[:5]
    # Both outcomes are exercised, and every accepted blob went through the C loader.
    assert c.accepted > 100 and c.refused > 100
    assert c.loader_checked == c.accepted


def test_importer_refuses_a_shift_the_loader_refuses() -> None:
    """A scale that makes the FC's shift leave [-31, 30]: the C loader would refuse the
    blob, so the importer refuses the model (one line, exit 2)."""
    model = load_tflite(mut.FIXTURES / "fc_softmax.tflite")
    out = model.tensors[model.layers[0].output]
    out.quant.scale = np.array([1e-30], np.float32)
    with pytest.raises(UnsupportedModelError, match=r"outside \[-31, 30\]"):
        prepare_checked(model)


@pytest.mark.parametrize("scale", [float("nan"), float("inf"), 0.0, -1.0])
def test_importer_refuses_unusable_scales(scale: float) -> None:
    model = load_tflite(mut.FIXTURES / "conv_per_tensor.tflite")
    model.tensors[model.layers[0].inputs[0]].quant.scale = np.array([scale], np.float32)
    with pytest.raises(UnsupportedModelError, match="finite and > 0"):
        prepare_checked(model)


def test_mutants_through_the_real_entry_point(tmp_path) -> None:
    """A few mutants through `python -m fqt.cli` in a process of its own: stderr is one
    line, the exit code 0 or 2."""
    import random

    rng = random.Random(3)
    src = (mut.FIXTURES / "digits_cnn.tflite").read_bytes()
    codes = set()
    for k in range(6):
        path = tmp_path / f"m{k}.tflite"
        path.write_bytes(mut.mutate(src, rng) if k else src[: len(src) // 2])
        r = subprocess.run(
            [sys.executable, "-m", "fqt.cli", "import", str(path), "-o", str(tmp_path / "o")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        codes.add(r.returncode)
        assert r.returncode in (0, 2), r.stderr
        if r.returncode:
            assert len(r.stderr.splitlines()) == 1 and r.stderr.startswith("error: ")
    assert 2 in codes
