"""A short libFuzzer run of the model loader (tests/fuzz/fuzz_model_loader.c).

Builds build/fuzz with clang (-DFQT_FUZZ=ON: ASan + UBSan + libFuzzer), then fuzzes for a
bounded time from the committed seed corpus, writing new inputs to a temporary directory
(the committed corpus is only read). Passes when the fuzzer exits 0 and leaves no crash,
leak, timeout or OOM artifact. Skips with the reason when clang or its libFuzzer runtime
is absent. FQT_FUZZ_SECONDS overrides the run time (default 20).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from conftest import REPO

BUILD_DIR = REPO / "build" / "fuzz"
CORPUS = REPO / "tests" / "fuzz" / "corpus" / "model_loader"
FUZZ_SECONDS = int(os.environ.get("FQT_FUZZ_SECONDS", "20"))
MAX_RUNS = 2_000_000


def _libfuzzer_available(clang: str) -> str | None:
    """None when clang can link a libFuzzer program, else why not."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "probe.c"
        src.write_text(
            "#include <stddef.h>\n#include <stdint.h>\n"
            "int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);\n"
            "int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)"
            " { (void)d; (void)n; return 0; }\n"
        )
        proc = subprocess.run(
            [clang, "-fsanitize=fuzzer,address,undefined", str(src), "-o", str(Path(tmp) / "p")],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            tail = proc.stderr[-300:]
            return f"clang cannot link -fsanitize=fuzzer (libclang-rt-dev missing?): {tail}"
    return None


@pytest.fixture(scope="module")
def fuzzer() -> Path:
    clang = shutil.which("clang")
    if clang is None:
        pytest.skip("clang is not on PATH (libFuzzer needs clang)")
    if shutil.which("cmake") is None:
        pytest.skip("cmake is not on PATH")
    why = _libfuzzer_available(clang)
    if why is not None:
        pytest.skip(why)
    configure = ["cmake", "-S", str(REPO), "-B", str(BUILD_DIR), f"-DCMAKE_C_COMPILER={clang}"]
    configure.append("-DFQT_FUZZ=ON")
    # A generator only for a fresh build dir (an existing one keeps its own).
    if not (BUILD_DIR / "CMakeCache.txt").exists() and shutil.which("ninja") is not None:
        configure += ["-G", "Ninja"]
    for cmd in (configure, ["cmake", "--build", str(BUILD_DIR), "--target", "fuzz_model_loader"]):
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return BUILD_DIR / "fuzz_model_loader"


def test_seed_corpus_committed() -> None:
    seeds = sorted(CORPUS.glob("*"))
    assert len(seeds) >= 10, f"{CORPUS}: run tests/fuzz/make_corpus.py"
    assert sum(p.stat().st_size for p in seeds) < 300 * 1024


def test_seed_corpus_runs_clean(fuzzer: Path, tmp_path: Path) -> None:
    """Every seed (and every committed regression) once, no mutation."""
    proc = subprocess.run(
        [str(fuzzer), f"-artifact_prefix={tmp_path}/", *map(str, sorted(CORPUS.glob("*")))],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]


def test_short_fuzz_run(fuzzer: Path, tmp_path: Path) -> None:
    work = tmp_path / "corpus"
    work.mkdir()
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    cmd = [
        str(fuzzer),
        f"-max_total_time={FUZZ_SECONDS}",
        f"-runs={MAX_RUNS}",
        "-timeout=10",
        "-rss_limit_mb=2048",
        "-print_final_stats=1",
        f"-artifact_prefix={artifacts}/",
        str(work),
        str(CORPUS),
    ]
    proc = subprocess.run(
        cmd, cwd=tmp_path, capture_output=True, text=True, check=False, timeout=FUZZ_SECONDS + 240
    )
    found = sorted(p.name for p in artifacts.iterdir())
    assert proc.returncode == 0 and not found, (
        f"fuzzer exit {proc.returncode}, artifacts {found}:\n{proc.stderr[-4000:]}"
    )
    assert "stat::number_of_executed_units" in proc.stderr
