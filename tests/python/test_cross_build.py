"""The portable core cross-compiles warning-free for Cortex-M0+, M3, M4 and M7.

Uses benchmarks/footprint.py (arm-none-eabi-gcc, -Os -std=c11 -Wall -Wextra -Werror); skips
with the reason when the toolchain is absent.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import load_module

footprint = load_module("benchmarks/footprint.py", "fqt_bench_footprint")

pytestmark = pytest.mark.skipif(
    not footprint.toolchain_available(),
    reason="arm-none-eabi-gcc / arm-none-eabi-size not on PATH (apt install gcc-arm-none-eabi)",
)


def test_sources_parsed() -> None:
    sources = footprint.core_sources()
    assert sources, "FQT_CORE_SOURCES is empty"
    for src in sources:
        assert src.is_file(), src
    assert any(s.name == "model_validate.c" for s in sources)
    # Every .c the file names (comments aside) is in the portable list or is the CMSIS-NN
    # swap of its forward wrappers, none twice.
    text = footprint.SOURCES_CMAKE.read_text()
    named = {
        m.group(1)
        for line in text.splitlines()
        if (m := re.search(r"/(src/\S+\.c)", line.split("#", 1)[0]))
    }
    parsed = {s.relative_to(footprint.SOURCES_CMAKE.parent).as_posix() for s in sources}
    swap = {
        s.relative_to(footprint.SOURCES_CMAKE.parent).as_posix()
        for s in footprint.cmake_list("FQT_CMSIS_NN_SOURCES")
    }
    assert swap == {"src/kernels/cmsis_nn/forward_wrapper.c"}
    assert parsed | swap == named
    assert not parsed & swap
    assert len(sources) == len(set(sources))


@pytest.mark.parametrize("core", list(footprint.CORES))
def test_cross_compiles_warning_free(core: str, tmp_path: Path) -> None:
    try:
        objects = footprint.compile_core(core, tmp_path)
    except footprint.BuildError as e:
        pytest.fail(str(e))
    sizes = footprint.object_sizes(objects)
    assert len(sizes) == len(footprint.core_sources())
    total_text = sum(o.text for o in sizes)
    assert total_text > 0
    # No static state in the core: everything lives in the caller's arena and model.
    assert sum(o.data + o.bss for o in sizes) == 0, sizes
