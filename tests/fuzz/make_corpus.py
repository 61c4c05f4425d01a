"""Write the fuzzer's seed corpus: one blob per valid fixture model.

    .venv/bin/python tests/fuzz/make_corpus.py [--out tests/fuzz/corpus/model_loader]

Each project fixture (tests/fixtures/models/*.tflite, the broken ones skipped) goes through
load_tflite -> prepare -> write_blob into <stem>.fqtb. Only the project's own models are
used, so the corpus can be committed. Files other than the generated ones (regressions:
crashers found by fuzzing, kept as `regress-*`) are left alone.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "models"
DEFAULT_OUT = REPO / "tests" / "fuzz" / "corpus" / "model_loader"
BROKEN = {"truncated", "garbage", "unsupported_ops"}
MAX_TOTAL_BYTES = 300 * 1024

sys.path.insert(0, str(REPO / "scripts"))

from fqt.blob import write_blob  # noqa: E402
from fqt.prepare import prepare  # noqa: E402
from fqt.tflite_import import load_tflite  # noqa: E402


def make_corpus(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for model_path in sorted(FIXTURES.glob("*.tflite")):
        if model_path.stem in BROKEN:
            continue
        model = load_tflite(str(model_path))
        prepare(model)
        target = out / f"{model_path.stem}.fqtb"
        target.write_bytes(write_blob(model))
        written.append(target)
    total = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    if total > MAX_TOTAL_BYTES:
        raise SystemExit(f"corpus is {total} bytes, over the {MAX_TOTAL_BYTES}-byte budget")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    written = make_corpus(args.out)
    total = sum(p.stat().st_size for p in written)
    print(f"wrote {len(written)} blobs ({total} bytes) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
