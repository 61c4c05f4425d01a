"""A short libFuzzer run of the device service's line protocol (tests/fuzz/fuzz_frame.c).

Builds build/fuzz with clang (-DFQT_FUZZ=ON), writes a seed corpus of valid sessions (a blob
pushed in frames and loaded, samples pushed, eval, predict, save, restore, export reads) to
a temporary directory and fuzzes from it for a bounded time. Passes when the fuzzer exits 0
with no crash, leak, timeout or OOM artifact; skips when clang or libFuzzer is absent.
FQT_FUZZ_SECONDS overrides the run time (default 15).
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
from conftest import FIXTURE_MODELS, REPO
from fqt.blob import write_blob
from fqt.device import frame_line
from fqt.prepare import prepare
from fqt.tflite_import import load_tflite

BUILD_DIR = REPO / "build" / "fuzz"
FUZZ_SECONDS = int(os.environ.get("FQT_FUZZ_SECONDS", "15"))


@pytest.fixture(scope="module")
def fuzz_frame() -> Path:
    from test_fuzz import _libfuzzer_available

    clang = shutil.which("clang")
    if clang is None or shutil.which("cmake") is None:
        pytest.skip("clang and cmake are needed for the libFuzzer build")
    why = _libfuzzer_available(clang)
    if why is not None:
        pytest.skip(why)
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    for cmd in (
        [
            "cmake",
            "-S",
            str(REPO),
            "-B",
            str(BUILD_DIR),
            f"-DCMAKE_C_COMPILER={clang}",
            "-DFQT_FUZZ=ON",
            *gen,
        ],
        ["cmake", "--build", str(BUILD_DIR), "--target", "fuzz_frame"],
    ):
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            pytest.fail(f"{' '.join(cmd)}:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
    return BUILD_DIR / "fuzz_frame"


def _session(blob: bytes, input_bytes: int, seq: int = 1) -> str:
    lines = []

    def frame(kind: str, payload: bytes = b"") -> None:
        nonlocal seq
        lines.append("fqt " + frame_line(seq, kind, payload))
        seq += 1

    frame("begin", struct.pack("<B3xII", 2, len(blob), zlib.crc32(blob)))
    for off in range(0, len(blob), 96):
        frame("data", blob[off : off + 96])
    frame("commit")
    lines.append("fqt load pushed")
    rng = np.random.default_rng(0)
    rec = b"".join(
        bytes([i % 2, 0]) + rng.integers(-128, 128, input_bytes, np.int8).tobytes()
        for i in range(4)
    )
    frame("begin", struct.pack("<B3xII", 1, len(rec), zlib.crc32(rec)))
    frame("data", rec[:50])
    frame("data", rec[50:])
    frame("commit")
    lines += ["fqt data status", "fqt predict 1", "fqt eval", "fqt info", "fqt save"]
    lines += [
        "fqt restore",
        "fqt export",
        "fqt " + frame_line(seq, "read", struct.pack("<II", 0, 64)),
    ]
    lines += ["fqt train start 2 0.01 2 1 0 last", "fqt train status", "fqt train stop"]
    return "\n".join(lines) + "\n"


def test_fuzz_frame_short_run(fuzz_frame: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    model = load_tflite(FIXTURE_MODELS / "fc_softmax.tflite")
    prepare(model)
    blob = write_blob(model)
    assert len(blob) <= 4096, "the seed model must fit the fuzzer's model buffer half"
    (corpus / "session").write_text(_session(blob, model.input_tensor.num_elements))
    (corpus / "frames").write_text("fqt " + frame_line(1, "begin", bytes(12)) + "\n")
    proc = subprocess.run(
        [
            str(fuzz_frame),
            f"-max_total_time={FUZZ_SECONDS}",
            "-max_len=16384",
            f"-artifact_prefix={tmp_path}/",
            str(corpus),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=FUZZ_SECONDS + 120,
    )
    artifacts = [
        p.name for p in tmp_path.iterdir() if p.name.startswith(("crash", "leak", "oom", "timeout"))
    ]
    assert proc.returncode == 0 and not artifacts, proc.stderr[-4000:]
