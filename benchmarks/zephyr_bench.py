"""Cycles per inference and per training sample on the device, and the app image's RAM
and flash, for qemu_cortex_m3 and mps2/an385 (or the boards given).

Runs the Twister suite tests/zephyr/bench (k_cycle_get_32 around the engine calls) and
builds app/ per board. Under QEMU the suite runs with icount (CONFIG_QEMU_ICOUNT_SHIFT in
its prj.conf): every instruction advances virtual time by 2^shift ns, so
instructions = cycles / (hz * 2^shift * 1e-9). Needs a Zephyr installation (ZEPHYR_BASE).

    python benchmarks/zephyr_bench.py [--boards qemu_cortex_m3 mps2/an385] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH_SUITE = REPO / "tests" / "zephyr" / "bench"
QEMU_BOARDS = {"qemu_cortex_m3", "mps2/an385"}


def icount_shift() -> int:
    m = re.search(r"CONFIG_QEMU_ICOUNT_SHIFT=(\d+)", (BENCH_SUITE / "prj.conf").read_text())
    return int(m.group(1)) if m else 0


def run_suite(west: str, boards: list[str], out: Path) -> dict[str, list[dict[str, str]]]:
    cmd = [west, "twister", "-T", str(BENCH_SUITE), "-O", str(out / "twister"), "-j", "2"]
    for b in boards:
        cmd += ["-p", b]
    subprocess.run(cmd, check=False, capture_output=True, text=True)
    results: dict[str, list[dict[str, str]]] = {}
    for log in (out / "twister").rglob("handler.log"):
        board = next((b for b in boards if b.replace("/", "_") in str(log)), "?")
        rows = []
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("bench "):
                words = line.split()
                # bench inference cycles N hz H ... | bench train NAME cycles N hz H ...
                kind = "inference" if words[1] == "inference" else f"train[{words[2]}]"
                rest = words[2:] if words[1] == "inference" else words[3:]
                row = dict(zip(rest[0::2], rest[1::2], strict=False))
                row["kind"] = kind
                rows.append(row)
        results[board] = rows
    return results


def image_size(west: str, board: str, out: Path) -> dict[str, str]:
    build = out / ("app-" + board.replace("/", "_"))
    r = subprocess.run(
        [west, "build", "-p", "-b", board, "-d", str(build), str(REPO / "app")],
        capture_output=True,
        text=True,
        check=False,
    )
    sizes = {}
    for m in re.finditer(r"^\s*(FLASH|RAM|DTCM):\s+(\d+ \w+)\s+(\d+ \w+)", r.stdout, re.M):
        sizes[m.group(1)] = f"{m.group(2)} of {m.group(3)}"
    return sizes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--boards", nargs="+", default=["qemu_cortex_m3", "mps2/an385"])
    p.add_argument("--out", type=Path, default=Path("/tmp/fqt-zephyr-bench"))
    args = p.parse_args(argv)
    west = shutil.which("west")
    if not os.environ.get("ZEPHYR_BASE") or west is None:
        print("SKIPPED: needs a Zephyr installation (ZEPHYR_BASE) and west on PATH")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    shift = icount_shift()
    results = run_suite(west, args.boards, args.out)
    print(f"{'board':<16} {'what':<14} {'cycles':>10} {'instructions':>13} {'fwd MACs':>9} "
          f"{'bwd MACs':>9} {'arena B':>8} {'params B':>9}")  # fmt: skip
    for board in args.boards:
        rows = results.get(board, [])
        if not rows:
            print(f"{board:<16} no figures: the suite failed or did not run here")
        for row in rows:
            cycles, hz = int(row["cycles"]), int(row["hz"])
            instr = f"{cycles / (hz * (1 << shift) * 1e-9):,.0f}" if board in QEMU_BOARDS else "-"
            fwd = row.get("macs", row.get("fwd_macs", ""))
            print(
                f"{board:<16} {row['kind']:<14} {cycles:>10,} {instr:>13} {fwd:>9} "
                f"{row.get('bwd_macs', ''):>9} {row.get('arena', ''):>8} {row.get('params', ''):>9}"
            )
    print(f"(QEMU icount shift {shift}: 1 instruction = {1 << shift} ns of virtual time)")
    print("\napp image (west build app):")
    for board in args.boards:
        sizes = image_size(west, board, args.out)
        print(f"  {board:<16} " + ", ".join(f"{k} {v}" for k, v in sizes.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
