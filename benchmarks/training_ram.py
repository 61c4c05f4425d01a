"""Training RAM of fqt against the fp32 analogue, per task, for the default and the lean
memory plan (docs/memory-plan.md) and each gradient state (docs/training-semantics.md 4.1).

The tasks and trainable sets are benchmarks/train_vs_fp32.py's (digits, kws, hapt,
mnist5k), plus kws_ref_model with every layer trainable. fqt: plan_memory(..., memory)
.training_* (arena + params pool); fp32: plan.fp32_training_memory (the same buffers at
4 B per element, weights plus gradients). The params pool is the same for both plans; the
gradient state sets it (int32, or int16 / int8 rows with a per-channel exponent).

    .venv/bin/python benchmarks/training_ram.py [--tasks digits,kws,...]
        [--grad-states int32,int16,int8] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import train_vs_fp32 as b
from fqt import plan


def figures(m, trainable: set[int], grad_state: str = "int32") -> dict[str, int | float]:
    fp32 = plan.fp32_training_memory(m, trainable).total
    out: dict[str, int | float] = {"fp32": fp32}
    for memory in plan.MEMORY_PLANS:
        p = plan.plan_memory(m, trainable, memory, grad_state)
        out[f"{memory}_arena"], out[f"{memory}_params"] = p.training_arena, p.training_params
        out[memory] = p.training_total
        out[f"{memory}_ratio"] = p.training_total / fp32
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="digits,kws,hapt,mnist5k,kws_all")
    ap.add_argument("--grad-states", default="int32,int16,int8")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    res: dict[str, dict[str, dict[str, int | float]]] = {}
    for name in args.tasks.split(","):
        if name == "kws_all":
            m = b.parse_tflite((b.SHARED / "models" / "kws_ref_model.tflite").read_bytes())
            b.prepare(m)
            trainable = b._all_weighted(m)
        else:
            task = b.TASKS[name][0](True)
            m, trainable = task.fresh_model(), task.trainable
        res[name] = {g: figures(m, trainable, g) for g in args.grad_states.split(",")}
    rows = [
        [n, g, f"{r['fp32']:,}", f"{r['default']:,}", f"{100 * r['default_ratio']:.1f}",
         f"{r['lean']:,}", f"{100 * r['lean_ratio']:.1f}",
         f"{r['default_arena']:,} -> {r['lean_arena']:,}", f"{r['lean_params']:,}"]
        for n, per_state in res.items() for g, r in per_state.items()
    ]  # fmt: skip
    print(b.table(
        f"Training RAM, fqt vs the fp32 analogue (target <= {100 * b.TARGET_RAM_RATIO:.0f} %)",
        ["task", "grad state", "fp32 B", "default B", "default %", "lean B", "lean %",
         "arena B", "params B"], rows,
    ))  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
