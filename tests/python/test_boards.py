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
