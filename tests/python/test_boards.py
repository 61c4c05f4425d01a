"""The board table the import checks plans against equals the app's devicetree pools."""

from __future__ import annotations

import re

import pytest
from conftest import REPO
from fqt.boards import BOARDS


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_board_pools_match_the_overlay(name: str) -> None:
    stem = name.replace("/", "_")
    overlay = (REPO / "app" / "boards" / f"{stem}.overlay").read_text()
    pools = {
        m.group(1): int(m.group(2))
        for m in re.finditer(r'fqt,pool = "(\w+)";\s*size = <(\d+)>;', overlay)
    }
    conf = (REPO / "app" / "boards" / f"{stem}.conf").read_text()
    samples = int(re.search(r"CONFIG_FQT_SAMPLE_STORE_SIZE=(\d+)", conf).group(1))  # type: ignore[union-attr]
    board = BOARDS[name]
    assert pools == {"arena": board.arena_pool, "params": board.params_pool}
    assert samples == board.sample_pool
    kconfig = (REPO / "modules" / "fqt" / "Kconfig").read_text()
    default = re.search(r"config FQT_MODEL_BUFFER_SIZE\n.*?default (\d+)", kconfig, re.S)
    buffer = re.search(r"CONFIG_FQT_MODEL_BUFFER_SIZE=(\d+)", conf)
    assert int((buffer or default).group(1)) == board.model_buffer  # type: ignore[union-attr]
