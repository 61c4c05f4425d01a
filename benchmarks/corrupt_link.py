"""Push, train and export through a link that garbles 2 % of the lines (issue 13, item 4).

For each corruption mode of fqt.corrupt_link (substitute, drop, insert, truncate, words),
runs N push+train+export flows against fresh build/host/fqt_host_device processes, each
with its own seed, the link garbling `--rate` of the lines in both directions. A run
completes when the flow ends without an error AND the pulled blob equals the blob of an
uncorrupted run (same samples, same training arguments). Prints completed/N per mode, the
garbled line counts and the time; exits 1 when a mode falls short of N/N.

    .venv/bin/python benchmarks/corrupt_link.py [--runs 25] [--rate 0.02] [--mode drop ...]

The flow: digits_cnn with a re-initialized head (fqt.demo), `--samples` training samples
(default 300), 1 epoch, batch 32, head only.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from fqt.blob import write_blob  # noqa: E402
from fqt.corrupt_link import MODES, push_train_export  # noqa: E402
from fqt.demo import digits_split, reinit_head  # noqa: E402
from fqt.errors import FqtError  # noqa: E402
from fqt.plan import plan_memory  # noqa: E402
from fqt.prepare import prepare  # noqa: E402
from fqt.tflite_import import load_tflite  # noqa: E402

EXE = REPO / "build" / "host" / "fqt_host_device"
DIGITS = REPO / "tests" / "fixtures" / "models" / "digits_cnn.tflite"


def build_host_device() -> None:
    cmake = shutil.which("cmake")
    if cmake is None:
        if EXE.exists():
            return
        raise SystemExit("cmake is needed to build build/host/fqt_host_device")
    if not (EXE.parent / "CMakeCache.txt").exists():
        gen = ["-G", "Ninja"] if shutil.which("ninja") else []
        subprocess.run([cmake, "-S", str(REPO), "-B", str(EXE.parent), *gen], check=True)
    subprocess.run(
        [cmake, "--build", str(EXE.parent), "--target", "fqt_host_device"],
        check=True,
        capture_output=True,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=25)
    ap.add_argument("--rate", type=float, default=0.02)
    ap.add_argument("--samples", type=int, default=300)
    ap.add_argument("--mode", action="append", choices=MODES)
    ap.add_argument("--seed", type=int, default=1000)
    args = ap.parse_args(argv)
    build_host_device()
    model = load_tflite(str(DIGITS))
    head = reinit_head(model, 1)
    prepare(model)
    plan = plan_memory(model, {head})
    blob = write_blob(model, {head})
    x_tr, y_tr, _, _ = digits_split(model)
    x, y = x_tr[: args.samples], y_tr[: args.samples].astype("int64")
    with tempfile.TemporaryDirectory() as tmp:
        model_file = Path(tmp) / "head.fqtb"
        model_file.write_bytes(blob)
        command = (
            f"{EXE} --model {model_file} --arena {plan.training_arena} "
            f"--params {plan.training_params} --samples {(2 + x[0].size) * len(y)} "
            "--progress-ms 50"
        )
        train_args = (1, "0.003", 32, "1.0", 1, head)
        t0 = time.monotonic()
        clean, _ = push_train_export(command, blob, x, y, train_args)
        print(f"clean run: {len(clean)} B blob in {time.monotonic() - t0:.1f} s")
        if clean == blob:
            raise SystemExit("the clean run did not change the blob: nothing to compare")
        short = 0
        for mode in args.mode or MODES:
            ok = 0
            garbled = lines = 0
            t0 = time.monotonic()
            for run in range(args.runs):
                seed = args.seed + run
                try:
                    got, stats = push_train_export(
                        command, blob, x, y, train_args, mode, args.rate, seed
                    )
                except FqtError as e:
                    print(f"  {mode} run {run} (seed {seed}): {e}")
                    continue
                assert stats is not None
                garbled += stats.garbled_out + stats.garbled_in
                lines += stats.lines_out + stats.lines_in
                if got == clean:
                    ok += 1
                else:
                    print(f"  {mode} run {run} (seed {seed}): the trained blob differs")
            dt = time.monotonic() - t0
            print(
                f"{mode:10s} completed {ok}/{args.runs}  garbled {garbled} of {lines} lines "
                f"({100.0 * garbled / max(lines, 1):.2f} %)  {dt:.1f} s",
                flush=True,
            )
            short += ok < args.runs
    return 1 if short else 0


if __name__ == "__main__":
    sys.exit(main())
