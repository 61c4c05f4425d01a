"""Partial updates on the golden int8 trainer: backward-MAC savings against accuracy.

Tasks, data, models and the int8 default (plain SGD, cosine schedule) are those of
benchmarks/train_vs_fp32.py (digits from scratch, all layers; kws transfer, last pointwise
conv + fresh FC head). Per task the lr is picked on the first seed's validation accuracy at
full updates (the task's int8 grid, or --lr), then every mode runs at that lr:

    full        lambda_min 1.0
    dynamic_X   the paper's rule (kept fraction follows the loss), classifier exempt
    budget_X    a fixed fraction X of each layer's channels per sample, classifier exempt
    *_cut       the same with the classifier cut by top-k too (keep_classifier False)

Printed per mode: test accuracy (mean of the seeds), its change against full updates,
the backward MACs per sample and the speed-up full/partial (the golden trainer's MAC
counters, docs/training-semantics.md section 6), and the fraction of the full backward
kept. --json FILE writes {"tasks": {TASK: {"lr", "full", MODE: {...}}}}.

    .venv/bin/python benchmarks/partial_updates.py [--quick] [--tasks digits,kws] [--seeds N]

Measured (full sizes, seeds 7 and 8, lr picked 0.3 on both; test %, mean of the seeds):

    task    full   dynamic_0.1        budget_0.1          dynamic_0.1_cut    budget_0.1_cut
    kws     93.0   92.9 (4.59x, 0.22) 91.9 (10.37x, 0.10) 91.8 (1.96x, 0.51)  9.2 (10.67x)
    digits  95.8   93.8 (4.02x, 0.25) 90.0 (10.28x, 0.10) 84.6 (1.58x, 0.63) 10.0 (14.21x)

(speed-up = full / partial backward MACs, then the kept fraction of the full backward.)
kws transfer at a 10 % budget: 10.4x fewer backward MACs for -1.1 point (400 test samples,
one point = 4 samples); with a third seed (9: full 91.5, budget_0.1 90.5, dynamic_0.1
92.25) the 3-seed means are full 92.50, budget_0.1 91.42 (-1.08), dynamic_0.1 92.67
(+0.17). Digits trains from scratch, where a fixed 10 % costs 5.8 points.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import train_vs_fp32 as b

TARGET_SPEEDUP = 8.7  # issue 12: a 10 % budget gives >= 8.7x fewer backward MACs
TARGET_LOSS_POINTS = 1.0  # with <= 1 point lost (kws transfer); dynamic 0.1 within 1 point

MODES: dict[str, dict[str, Any]] = {
    "full": {},
    "dynamic_0.1": {"lambda_min": 0.1},
    "budget_0.1": {"lambda_min": 0.1, "partial_mode": "fixed"},
    "dynamic_0.5": {"lambda_min": 0.5},
    "budget_0.5": {"lambda_min": 0.5, "partial_mode": "fixed"},
    "dynamic_0.1_cut": {"lambda_min": 0.1, "keep_classifier": False},
    "budget_0.1_cut": {"lambda_min": 0.1, "partial_mode": "fixed", "keep_classifier": False},
}
TASKS = {"digits": b.task_digits, "kws": b.task_kws}


def run_mode(task: b.Task, data: b.FqtData, lr: float, seeds: tuple[int, ...], opts: dict):
    tests, bw, full, secs = [], 0.0, 0.0, 0.0
    for seed in seeds:
        r = b.run_fqt(task, data, lr, seed, **opts)
        tests.append(b.fqt_test(r, task, data))
        bw, full, secs = bw + r.bw_macs, full + r.bw_macs_full, secs + r.seconds
    n = len(seeds)
    return {
        "accuracy": sum(tests) / n,
        "seeds": tests,
        "bw_macs": bw / n,
        "bw_macs_full": full / n,
        "speedup": full / bw if bw else float("inf"),
        "kept_fraction": bw / full if full else 1.0,
        "seconds": secs,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the tasks' quick sizes")
    ap.add_argument("--tasks", default="digits,kws")
    ap.add_argument("--seeds", type=int, default=1, help="first N of train_vs_fp32.SEEDS")
    ap.add_argument("--lr", type=float, default=None, help="skip the lr pick")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    seeds = b.SEEDS[: args.seeds]
    modes = args.modes.split(",")
    out: dict[str, Any] = {"seeds": list(seeds), "tasks": {}}
    for name in args.tasks.split(","):
        task = TASKS[name](args.quick)
        data = b.FqtData(task)
        lr = args.lr
        if lr is None:  # the int8 default's grid: fp32-like lrs (train_vs_fp32 run_task)
            grid = [(b.run_fqt(task, data, x, seeds[0]).val_acc, -x) for x in task.fp32_lrs]
            lr = -max(grid)[1]
            print(f"{name}: lr {lr:g} picked on val {[f'{100 * v:.1f}' for v, _ in grid]}")
        res: dict[str, Any] = {"lr": lr}
        for mode in modes:
            t0 = time.time()
            res[mode] = run_mode(task, data, lr, seeds, MODES[mode])
            r = res[mode]
            print(f"{name} {mode:16s} test {100 * r['accuracy']:5.1f} %  bw MACs/sample "
                  f"{r['bw_macs']:10.0f}  speed-up {r['speedup']:5.2f}x  kept "
                  f"{r['kept_fraction']:.3f}  ({time.time() - t0:.0f} s)", flush=True)  # fmt: skip
        out["tasks"][name] = res
    rows = []
    for name, res in out["tasks"].items():
        base = res.get("full", {}).get("accuracy")
        for mode in modes:
            if mode == "full":
                continue
            r = res[mode]
            d = None if base is None else 100 * (r["accuracy"] - base)
            r["delta_points"] = d
            rows.append([
                name, mode, f"{100 * r['accuracy']:.1f}", "-" if d is None else f"{d:+.1f}",
                f"{r['speedup']:.2f}x", f"{r['kept_fraction']:.3f}",
            ])  # fmt: skip
    print(b.table(
        f"Partial updates (int8 golden, seeds {list(seeds)}; targets: budget_0.1 >= "
        f"{TARGET_SPEEDUP}x backward MACs with <= {TARGET_LOSS_POINTS} point lost on kws, "
        f"dynamic_0.1 within {TARGET_LOSS_POINTS} point)",
        ["task", "mode", "test %", "vs full", "bw speed-up", "bw kept"], rows,
    ))  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
