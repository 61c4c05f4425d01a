"""Boards fqt knows, with the RAM its devicetree pools get on each.

The pool sizes are those of app/boards/<board>.overlay (tests/python/test_boards.py
keeps the two in step). An import with --board checks its memory plan against them.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import FqtError


@dataclass(frozen=True)
class Board:
    name: str
    ram_bytes: int  # all of the SoC's RAM, for the record
    arena_pool: int  # activations, kept activations, errors (devicetree fqt-arena)
    params_pool: int  # trainable weights, gradients, per-channel state (fqt-params)
    sample_pool: int  # the on-device sample store (fqt-samples)
    # CONFIG_FQT_MODEL_BUFFER_SIZE (app/boards/<board>.conf, else the Kconfig default):
    # two halves, the active model and the one a deploy stages.
    model_buffer: int = 16 * 1024


BOARDS = {
    b.name: b
    for b in (
        # 64 KB SRAM shared with the kernel, the shell and the stacks.
        Board("qemu_cortex_m3", 64 * 1024, 8 * 1024, 12 * 1024, 8 * 1024, 9216),
        Board("mps2/an385", 4 * 1024 * 1024, 512 * 1024, 256 * 1024, 512 * 1024),
        # The arena lives in the 128 KB DTCM; params and samples in SRAM1.
        Board("nucleo_f767zi", 512 * 1024, 112 * 1024, 128 * 1024, 128 * 1024),
        Board("native_sim", 64 * 1024 * 1024, 1024 * 1024, 1024 * 1024, 1024 * 1024),
        # The paper's Cortex-M4F board. (rpi_pico is left out: with the hal_rpi_pico
        # snapshot that could be had, its boot_stage2 does not link.)
        Board("nrf52840dk/nrf52840", 256 * 1024, 64 * 1024, 64 * 1024, 32 * 1024, 32768),
    )
}


def get_board(name: str) -> Board:
    try:
        return BOARDS[name]
    except KeyError:
        raise FqtError(f"unknown board '{name}'; known boards: {', '.join(BOARDS)}") from None
