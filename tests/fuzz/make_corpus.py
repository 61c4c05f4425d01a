"""Write the fuzzers' seed corpora under tests/fuzz/corpus/.

    .venv/bin/python tests/fuzz/make_corpus.py [--out tests/fuzz/corpus]

- model_loader/: one blob per valid fixture model (tests/fixtures/models/*.tflite, the broken
  ones skipped) through load_tflite -> prepare -> write_blob into <stem>.fqtb;
- frame/: line sessions for fuzz_frame (no model at start): a blob pushed in frames and
  loaded, samples pushed in frames, then commands and export reads;
- dispatch/: line sessions for fuzz_dispatch (fc_softmax loaded, 4 samples stored, the
  trainer bound): every command with valid and edge-case arguments.

Only the project's own models are used, so the corpora can be committed. Output is
deterministic (fixed seeds and seqs). Files other than the generated ones (regressions:
crashers found by fuzzing, kept as `regress-*`) are left alone.
"""

from __future__ import annotations

import argparse
import struct
import sys
import zlib
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "models"
DEFAULT_OUT = REPO / "tests" / "fuzz" / "corpus"
BROKEN = {"truncated", "garbage", "unsupported_ops"}
MAX_TOTAL_BYTES = 300 * 1024

sys.path.insert(0, str(REPO / "scripts"))

from fqt.blob import write_blob  # noqa: E402
from fqt.device import frame_line  # noqa: E402
from fqt.prepare import prepare  # noqa: E402
from fqt.tflite_import import load_tflite  # noqa: E402

# Seed inputs of the dispatcher fuzzer, sent after its preamble (docs/protocol.md).
# fuzz_dispatch's built-in model (CMakeLists.txt, FQT_FUZZ_DISPATCH_MODEL): two FC layers and
# a SOFTMAX, 200 MACs, so that an execution costs parsing, not convolutions.
DISPATCH_MODEL = "fc_softmax"

DISPATCH_SESSIONS: dict[str, list[str]] = {
    "info": ["fqt info", "fqt help", "fqt ping 1234abcd", "fqt data status"],
    "train_last": ["fqt train start 1 0.01 2 1 7 last", "fqt train status", "fqt train stop"],
    "train_all": ["fqt train start 2 0.5 4 0 1 all", "fqt train status"],
    "train_layers": ["fqt train start 1 0.000001 1 0.5 3 0,1,2", "fqt train start 1000 1 1024"],
    "train_bad": [
        "fqt train start 0",
        "fqt train start 1 2",
        "fqt train start 1 0.1 0",
        "fqt train start 1 0.1 1 2",
        "fqt train start 1 0.1 1 1 1 9,",
        "fqt train start 1 0.1 1 1 1 ,",
        "fqt train start 1 0.1 1 1 1 last x",
        "fqt train stop",
        "fqt train",
    ],
    "predict": ["fqt predict 0", "fqt predict 3", "fqt predict 4", "fqt predict hex 00"],
    "data": ["fqt data push 1 00", "fqt data push 9 00", "fqt data clear", "fqt data status"],
    "eval": ["fqt eval", "fqt train status", "fqt eval", "fqt train stop"],
    "save_restore": ["fqt save", "fqt save", "fqt restore", "fqt info", "fqt load builtin"],
    "load": ["fqt load pushed", "fqt load builtin", "fqt load x"],
    "jobs_busy": ["fqt train start 5", "fqt data clear", "fqt save", "fqt load builtin"],
    "separators": ["fqt  info", "fqt\tinfo", " fqt info", "fqt info ", "fqt info x", "fqt"],
}


def _frame_session(blob: bytes, input_bytes: int, classes: int, seq: int = 1) -> list[str]:
    """A blob pushed in frames and loaded, samples pushed, then the commands."""
    lines: list[str] = []

    def frame(kind: str, payload: bytes = b"") -> None:
        nonlocal seq
        lines.append("fqt " + frame_line(seq, kind, payload))
        seq += 1

    frame("begin", struct.pack("<B3xII", 2, len(blob), zlib.crc32(blob)))
    for off in range(0, len(blob), 96):
        frame("data", blob[off : off + 96])
    frame("commit")
    lines.append("fqt load pushed")
    rng = np.random.default_rng(0)
    rec = b"".join(
        struct.pack("<H", i % classes) + rng.integers(-128, 128, input_bytes, np.int8).tobytes()
        for i in range(4)
    )
    frame("begin", struct.pack("<B3xII", 1, len(rec), zlib.crc32(rec)))
    frame("data", rec[:50])
    frame("data", rec[50:])
    frame("commit")
    lines += ["fqt data status", "fqt predict 1", "fqt eval", "fqt info", "fqt save"]
    lines += ["fqt restore", "fqt export"]
    frame("read", struct.pack("<II", 0, 64))
    frame("read", struct.pack("<II", 64, 128))
    lines += ["fqt train start 2 0.01 2 1 0 last", "fqt train status", "fqt train stop"]
    return lines


def _small_frames(seq: int = 1) -> dict[str, list[str]]:
    """Short frame sequences: an aborted transfer, a resend, an out-of-order seq."""
    begin = "fqt " + frame_line(seq, "begin", struct.pack("<B3xII", 1, 10, 0))
    data = "fqt " + frame_line(seq + 1, "data", bytes(10))
    return {
        "abort": [begin, data, "fqt " + frame_line(seq + 2, "abort", b"")],
        "resend": [begin, begin, data, data, "fqt " + frame_line(seq + 2, "commit", b"")],
        "order": [begin, "fqt " + frame_line(seq + 5, "data", bytes(3))],
        "garbled": ["fqt frame 1 begin 00 00000000", "fqt frame x data - 0", "fqt frame"],
        "read": ["fqt " + frame_line(seq, "read", struct.pack("<II", 0, 16))],
        "cmd": [
            "fqt " + frame_line(seq + 10, "cmd", b"info"),
            "fqt " + frame_line(seq + 10, "cmd", b"info"),
            "fqt " + frame_line(seq + 11, "cmd", b"train start 1 0.01 2 1 7 last"),
            "fqt " + frame_line(seq + 11, "cmd", b"train start 1 0.01 2 1 7 last"),
            "fqt " + frame_line(seq + 12, "cmd", b"load x"),
            "fqt " + frame_line(seq + 13, "cmd", b"frame 1 abort - 0"),
            "fqt " + frame_line(seq + 14, "cmd", b"data clear"),
        ],
    }


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def make_sessions(out: Path) -> list[Path]:
    """frame/ and dispatch/ line corpora."""
    written: list[Path] = []
    frame_dir, dispatch_dir = out / "frame", out / "dispatch"
    frame_dir.mkdir(parents=True, exist_ok=True)
    dispatch_dir.mkdir(parents=True, exist_ok=True)
    for stem in ("fc_softmax", "conv_per_tensor"):
        model = load_tflite(str(FIXTURES / f"{stem}.tflite"))
        prepare(model)
        blob = write_blob(model)
        if len(blob) > 4096:
            raise SystemExit(f"{stem}: the blob must fit fuzz_frame's model buffer half")
        classes = model.output_tensor.num_elements
        lines = _frame_session(blob, model.input_tensor.num_elements, classes)
        written.append(_write_lines(frame_dir / f"session_{stem}", lines))
    for name, lines in _small_frames().items():
        written.append(_write_lines(frame_dir / name, lines))
    for name, lines in DISPATCH_SESSIONS.items():
        written.append(_write_lines(dispatch_dir / name, lines))
    # The dispatcher's model pushed again in frames (it has room for a second copy).
    model = load_tflite(str(FIXTURES / f"{DISPATCH_MODEL}.tflite"))
    prepare(model)
    blob = write_blob(model)
    classes = model.output_tensor.num_elements
    lines = _frame_session(blob, model.input_tensor.num_elements, classes, seq=1000)
    written.append(_write_lines(dispatch_dir / "push_model", lines))
    for name, lines in _small_frames(seq=77).items():
        written.append(_write_lines(dispatch_dir / f"frame_{name}", lines))
    return written


def make_corpus(out: Path) -> list[Path]:
    """model_loader/: one blob per valid fixture."""
    out = out / "model_loader"
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
    written = make_corpus(args.out) + make_sessions(args.out)
    total = sum(p.stat().st_size for p in written)
    print(f"wrote {len(written)} files ({total} bytes) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
