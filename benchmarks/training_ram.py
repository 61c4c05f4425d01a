"""Training RAM of fqt against the fp32 analogue, per task, with and without the pools'
int32 input-error scratch (plan.pool_error_direct).

The tasks and trainable sets are benchmarks/train_vs_fp32.py's (digits, kws, hapt,
mnist5k), plus kws_ref_model with every layer trainable. fqt: plan_memory(...).training_*
(arena + params pool); fp32: train_vs_fp32.fp32_training_memory (the same buffers at 4 B
per element, weights plus gradients). "before" plans every pool with its int32 scratch
(pool_error_direct forced False), "now" is the plan the C trainer uses; both with the
gradient state --grad-state (int32, or int16 / int8: docs/training-semantics.md 4.1).

    .venv/bin/python benchmarks/training_ram.py [--tasks digits,kws,...] [--grad-state int8]
        [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent))

import train_vs_fp32 as b
from fqt import plan


def figures(m, trainable: set[int], grad_state: str = "int32") -> dict[str, int | float]:
    fp32 = b.fp32_training_memory(m, trainable).total
    out: dict[str, int | float] = {"fp32": fp32}
    with mock.patch.object(plan, "pool_error_direct", lambda *a, **k: False):
        before = plan.plan_memory(m, trainable, grad_state)
    now = plan.plan_memory(m, trainable, grad_state)
    for key, p in (("before", before), ("now", now)):
        out[f"{key}_arena"], out[f"{key}_params"] = p.training_arena, p.training_params
        out[key] = p.training_arena + p.training_params
        out[f"{key}_ratio"] = out[key] / fp32
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="digits,kws,hapt,mnist5k,kws_all")
    ap.add_argument("--grad-state", choices=("int32", "int16", "int8"), default="int32")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    res = {}
    for name in args.tasks.split(","):
        if name == "kws_all":
            m = b.parse_tflite((b.SHARED / "models" / "kws_ref_model.tflite").read_bytes())
            b.prepare(m)
            res[name] = figures(m, b._all_weighted(m), args.grad_state)
            continue
        task = b.TASKS[name][0](True)
        res[name] = figures(task.fresh_model(), task.trainable, args.grad_state)
    rows = [
        [n, f"{r['fp32']:,}", f"{r['before']:,}", f"{100 * r['before_ratio']:.1f}",
         f"{r['now']:,}", f"{100 * r['now_ratio']:.1f}",
         f"{r['before_arena']:,} -> {r['now_arena']:,}", f"{r['now_params']:,}"]
        for n, r in res.items()
    ]  # fmt: skip
    print(b.table(
        f"Training RAM, fqt ({args.grad_state} gradient state) vs the fp32 analogue "
        f"(target <= {100 * b.TARGET_RAM_RATIO:.0f} %)",
        ["task", "fp32 B", "fqt before B", "before %", "fqt now B", "now %", "arena B",
         "params B"], rows,
    ))  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
