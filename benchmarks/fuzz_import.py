"""The importer fuzz run: seeded mutations of the project's fixture models through the
whole `fqt import` pipeline, the C loader on every accepted blob (tests/python/
import_mutations.py). Prints the counts against issue 13's targets:
0 tracebacks and 0 multi-line errors over >= 10,000 mutated models, and 0 blobs the
importer accepts and the C loader refuses.

    .venv/bin/python benchmarks/fuzz_import.py [--count 10000] [--seed 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "python"))

import import_mutations as mut


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    t0 = time.monotonic()
    c = mut.run(args.count, args.seed)
    dt = time.monotonic() - t0
    print(f"fixtures: {len(mut.SOURCES)} models from tests/fixtures/models, seed {args.seed}")
    print(f"mutated models          {c.mutants:>8,}   ({dt:.0f} s)")
    print(f"accepted (exit 0)       {c.accepted:>8,}")
    print(f"refused, one line, 2    {c.refused:>8,}")
    print(f"C loader on accepted    {c.loader_checked:>8,}")
    rows = [
        ("tracebacks", c.tracebacks),
        ("multi-line errors", c.multiline),
        ("internal errors (exit 1)", c.internal),
        ("other exit codes", c.other_exit),
        ("accepted, loader refuses", c.loader_refused),
    ]
    for name, v in rows:
        print(f"{name:<24}{v:>8,}   target 0  {'ok' if v == 0 else 'MISSED'}")
    enough = c.mutants >= 10000
    print(f"mutants >= 10,000: {'ok' if enough else 'MISSED'}")
    for e in c.examples[:20]:
        print("  " + e)
    print("most common refusals:")
    for reason, n in c.reasons.most_common(8):
        print(f"  {n:>6}  {reason}...")
    return 0 if c.failures == 0 and enough else 1


if __name__ == "__main__":
    sys.exit(main())
