"""Short libFuzzer runs of the device service's line protocol: tests/fuzz/fuzz_frame.c (no
model at start) and tests/fuzz/fuzz_dispatch.c (a model loaded, samples stored, the trainer
bound).

Builds build/fuzz with clang (-DFQT_FUZZ=ON) and fuzzes for a bounded time from a copy of
the committed seed corpora (tests/fuzz/corpus/frame, .../dispatch, written by
tests/fuzz/make_corpus.py; a test checks they are what the script writes) plus a session
made here. Passes when the fuzzer exits 0 with no crash, leak, timeout or OOM artifact and
the seeds reach the coverage they reached when committed; skips when clang or libFuzzer is
absent. FQT_FUZZ_SECONDS overrides the frame run's time (default 15), FQT_FUZZ_DISPATCH_SECONDS
the dispatcher's (default 6).
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
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
CORPUS = REPO / "tests" / "fuzz" / "corpus"
FUZZ_SECONDS = int(os.environ.get("FQT_FUZZ_SECONDS", "15"))
DISPATCH_SECONDS = int(os.environ.get("FQT_FUZZ_DISPATCH_SECONDS", "6"))


@pytest.fixture(scope="module")
def fuzz_frame() -> Path:
    return _build("fuzz_frame")


@pytest.fixture(scope="module")
def fuzz_dispatch() -> Path:
    return _build("fuzz_dispatch")


def _build(target: str) -> Path:
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
        ["cmake", "--build", str(BUILD_DIR), "--target", target],
    ):
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            pytest.fail(f"{' '.join(cmd)}:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
    return BUILD_DIR / target


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
    for seed in (CORPUS / "frame").iterdir():
        shutil.copy(seed, corpus / f"seed_{seed.name}")
    _fuzz(fuzz_frame, corpus, tmp_path, FUZZ_SECONDS, min_cov=450)


def test_fuzz_dispatch_short_run(fuzz_dispatch: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS / "dispatch", corpus)
    # the committed seeds reach 818 edges (clang 14; fc_softmax loaded; the kernels and the
    # CRC are not instrumented for coverage, CMakeLists.txt says why): train, eval, predict,
    # save and restore all run on the loaded model
    _fuzz(fuzz_dispatch, corpus, tmp_path, DISPATCH_SECONDS, min_cov=780)


def _fuzz(exe: Path, corpus: Path, tmp_path: Path, seconds: int, min_cov: int) -> None:
    proc = subprocess.run(
        [
            str(exe),
            f"-max_total_time={seconds}",
            "-max_len=16384",
            "-timeout=20",
            f"-artifact_prefix={tmp_path}/",
            str(corpus),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=seconds + 120,
    )
    artifacts = [
        p.name for p in tmp_path.iterdir() if p.name.startswith(("crash", "leak", "oom", "timeout"))
    ]
    assert proc.returncode == 0 and not artifacts, proc.stderr[-4000:]
    inited = re.search(r"INITED cov: (\d+)", proc.stderr)
    assert inited, proc.stderr[-2000:]
    assert int(inited[1]) >= min_cov, f"the seeds reach only {inited[1]} edges"


def test_committed_corpora_are_what_make_corpus_writes(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "tests" / "fuzz" / "make_corpus.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    for sub in ("model_loader", "frame", "dispatch"):
        made = {p.name: p.read_bytes() for p in (tmp_path / sub).iterdir()}
        committed = {
            p.name: p.read_bytes()
            for p in (CORPUS / sub).iterdir()
            if not p.name.startswith("regress-")
        }
        assert made == committed, f"{sub}: run tests/fuzz/make_corpus.py and commit"
        assert sum(len(b) for b in made.values()) < 300 * 1024
