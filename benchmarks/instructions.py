"""Instructions per inference: the fqt C engine against TFLM's reference kernels.

    .venv/bin/python benchmarks/instructions.py [--n 5] [--seed 1] [--model PATH ...]

Both engines run under valgrind --tool=callgrind, which counts the x86-64 instructions
executed (Ir) inside one function and everything it calls (--toggle-collect):

- native: tests/c/fqt_bench (build/host, the default RelWithDebInfo build: -O2) runs N
  inferences of the blob that fqt import writes; collected in fqt_session_run;
- TFLM: the tflite_micro Python package (its reference kernels) runs N invokes of the
  same .tflite; collected in tflite::micro::MicroInterpreter::Invoke(). If that symbol
  is missing from the package's _runtime.so (a stripped build), the whole child process is
  counted with N invokes and with 0, and the difference is divided by N (said in the
  output).

Both get the same inputs: fqt_bench's xorshift32 sequence from --seed, one fresh int8
input per inference (float inputs of a QUANTIZE-fronted model get the dequantized values),
and the output checksums (CRC-32 over all outputs, as fqt_bench prints) are compared: the
"same" column says both engines computed the same bytes. MACs are the engine's count per
inference. Models: the project's digits_cnn, dscnn_tiny and residual_add
(tests/fixtures/models) and ../shared/models/*.tflite when present. Models above
--big-macs MACs run once (callgrind is ~50x slower than native).

Instruction counts are on the host (x86-64, gcc -O2 for fqt, the wheel's compiler for
TFLM): a proxy for the work per inference, not Cortex-M cycles.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "models"
SHARED_MODELS = REPO.parent / "shared" / "models"
PROJECT_MODELS = ("digits_cnn", "dscnn_tiny", "residual_add")
BUILD_DIR = REPO / "build" / "host"
BENCH = BUILD_DIR / "fqt_bench"
NATIVE_SYMBOL = "fqt_session_run"
TFLM_SYMBOL = "_ZN6tflite5micro16MicroInterpreter6InvokeEv"  # as nm lists it
TFLM_TOGGLE = "tflite::micro::MicroInterpreter::Invoke()"  # as callgrind (demangled) names it

_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


class BenchError(RuntimeError):
    pass


@dataclass
class Row:
    model: str
    n: int
    macs: int
    native: float | None
    tflm: float | None
    same: str
    note: str = ""


def xorshift_inputs(seed: int, n: int, size: int) -> list[bytes]:
    """fqt_bench's inputs: xorshift32 from `seed` (0 -> 1), low byte per element."""
    state = seed & 0xFFFFFFFF or 1
    inputs: list[bytes] = []
    for _ in range(n):
        buf = bytearray(size)
        for k in range(size):
            x = state
            x ^= (x << 13) & 0xFFFFFFFF
            x ^= x >> 17
            x ^= (x << 5) & 0xFFFFFFFF
            state = x
            buf[k] = x & 0xFF
        inputs.append(bytes(buf))
    return inputs


# ---- the TFLM child (runs under valgrind) ---------------------------------------------


def tflm_child(model: Path, n: int, seed: int) -> int:
    """Run `n` TFLM invokes of `model` on fqt_bench's inputs; print the output checksum."""
    import numpy as np
    from tflite_micro.python.tflite_micro import runtime

    it = runtime.Interpreter.from_file(str(model))
    ind = it.get_input_details(0)
    outd = it.get_output_details(0)
    shape = tuple(int(d) for d in ind["shape"])
    size = int(np.prod(shape))
    crc = 0
    for raw in xorshift_inputs(seed, n, size):
        q = np.frombuffer(raw, dtype=np.int8).reshape(shape)
        if ind["dtype"] == np.int8:
            x = q
        else:  # float input in front of a QUANTIZE: the values that quantize to q
            qp = ind["quantization_parameters"]
            scale = np.float32(qp["scales"][0])
            zp = int(qp["zero_points"][0])
            x = ((q.astype(np.int32) - zp).astype(np.float32) * scale).astype(ind["dtype"])
        it.set_input(x, 0)
        it.invoke()
        y = it.get_output(0)
        if outd["dtype"] != np.int8:  # DEQUANTIZE at the end: back to the int8 it came from
            qp = outd["quantization_parameters"]
            y = np.clip(
                np.round(y / np.float32(qp["scales"][0])) + int(qp["zero_points"][0]), -128, 127
            )
        crc = zlib.crc32(np.ascontiguousarray(y, dtype=np.int8).tobytes(), crc)
    print(f"checksum 0x{crc:08x}")
    return 0


# ---- the parent --------------------------------------------------------------------------


def _run(cmd: list[str], timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=timeout)
    if proc.returncode != 0:
        raise BenchError(
            f"{' '.join(cmd)}: exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


def _collected(stderr: str) -> int:
    m = _COLLECTED.search(stderr)
    if m is None:
        raise BenchError(f"no 'Collected' line in callgrind's output:\n{stderr[-2000:]}")
    if int(m.group(1)) == 0:
        raise BenchError("callgrind collected 0 instructions: the toggle function never ran")
    return int(m.group(1))


def callgrind(cmd: list[str], toggle: str | None, out_file: Path) -> tuple[int, str]:
    """Ir collected (inside `toggle` if given, else the whole run) and the program stdout."""
    vg = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}"]
    if toggle is not None:
        vg.append(f"--toggle-collect={toggle}")
    proc = _run([*vg, *cmd])
    return _collected(proc.stderr), proc.stdout


def ensure_bench() -> Path:
    if not (BUILD_DIR / "CMakeCache.txt").exists():
        gen = ["-G", "Ninja"] if shutil.which("ninja") else []
        _run(["cmake", "-S", str(REPO), "-B", str(BUILD_DIR), *gen])
    _run(["cmake", "--build", str(BUILD_DIR), "--target", "fqt_bench"])
    return BENCH


def tflm_runtime_so() -> Path | None:
    try:
        import tflite_micro
    except ImportError:
        return None
    found = sorted(Path(tflite_micro.__file__).parent.rglob("_runtime*.so"))
    return found[0] if found else None


def has_symbol(so: Path, symbol: str) -> bool:
    for args in (["nm", "-D", str(so)], ["nm", str(so)]):
        proc = subprocess.run(args, capture_output=True, text=True, check=False)
        if any(line.split()[-1:] == [symbol] for line in proc.stdout.splitlines()):
            return True
    return False


def make_blob(model: Path, out: Path) -> None:
    sys.path.insert(0, str(REPO / "scripts"))
    from fqt.blob import write_blob
    from fqt.prepare import prepare
    from fqt.tflite_import import load_tflite

    m = load_tflite(str(model))
    prepare(m)
    out.write_bytes(write_blob(m))


def measure(
    model: Path, n: int, seed: int, work: Path, tflm_toggle: str | None, big_macs: int
) -> Row:
    blob = work / f"{model.stem}.fqtb"
    make_blob(model, blob)
    # One plain run for the MAC count (cheap), then callgrind.
    probe = _run([str(BENCH), str(blob), "1", str(seed)]).stdout
    macs = int(re.search(r"macs\s+(\d+)", probe).group(1))  # type: ignore[union-attr]
    if macs > big_macs:
        n = 1
    native_ir, out = callgrind(
        [str(BENCH), str(blob), str(n), str(seed)], NATIVE_SYMBOL, work / "native.cg"
    )
    native_crc = re.search(r"checksum\s+(0x[0-9a-f]+)", out)
    row = Row(model.stem, n, macs, native_ir / n, None, "-")
    if tflm_toggle is None and tflm_runtime_so() is None:
        row.note = "tflite_micro not installed"
        return row
    child = [sys.executable, str(Path(__file__).resolve()), "--tflm-child", str(model)]
    try:
        tflm_ir, tout = callgrind([*child, str(n), str(seed)], tflm_toggle, work / "tflm.cg")
        if tflm_toggle is None:
            base_ir, _ = callgrind([*child, "0", str(seed)], None, work / "tflm0.cg")
            tflm_ir -= base_ir
            row.note = "TFLM: whole process, N invokes minus 0 invokes"
    except BenchError as e:
        row.note = f"TFLM failed: {str(e).splitlines()[0][:80]}"
        return row
    row.tflm = tflm_ir / n
    tflm_crc = re.search(r"checksum\s+(0x[0-9a-f]+)", tout)
    if native_crc and tflm_crc:
        row.same = "yes" if native_crc.group(1) == tflm_crc.group(1) else "NO"
    return row


def format_table(rows: list[Row]) -> str:
    head = (
        f"{'model':<24} {'N':>3} {'MACs':>10} {'native Ir/inf':>14} {'TFLM Ir/inf':>14}"
        f" {'native/TFLM':>11} {'Ir/MAC n|t':>12} {'same':>4}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        nat = f"{r.native:,.0f}" if r.native is not None else "-"
        tfl = f"{r.tflm:,.0f}" if r.tflm is not None else "-"
        ratio = f"{r.native / r.tflm:.3f}" if r.native and r.tflm else "-"
        per_mac = (
            f"{r.native / r.macs:.1f}|{r.tflm / r.macs:.1f}"
            if r.native and r.tflm and r.macs
            else "-"
        )
        lines.append(
            f"{r.model:<24} {r.n:>3} {r.macs:>10,} {nat:>14} {tfl:>14} {ratio:>11}"
            f" {per_mac:>12} {r.same:>4}" + (f"  ({r.note})" if r.note else "")
        )
    return "\n".join(lines)


def default_models() -> tuple[list[Path], list[str]]:
    models = [FIXTURES / f"{name}.tflite" for name in PROJECT_MODELS]
    notes: list[str] = []
    shared = sorted(SHARED_MODELS.glob("*.tflite")) if SHARED_MODELS.is_dir() else []
    if shared:
        models += shared
    else:
        notes.append(f"note: {SHARED_MODELS} is absent: shared models skipped")
    return models, notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=5, help="inferences per model (default 5)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--model", type=Path, action="append", help="instead of the defaults")
    parser.add_argument(
        "--big-macs",
        type=int,
        default=2_000_000,
        help="models with more MACs per inference run once (default 2e6)",
    )
    parser.add_argument(
        "--tflm-child", nargs=3, metavar=("MODEL", "N", "SEED"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.tflm_child:
        model, n, seed = args.tflm_child
        return tflm_child(Path(model), int(n), int(seed))

    if shutil.which("valgrind") is None:
        print("error: valgrind is not on PATH (apt install valgrind)", file=sys.stderr)
        return 2
    models, notes = (args.model, []) if args.model else default_models()
    so = tflm_runtime_so()
    tflm_toggle: str | None = TFLM_TOGGLE
    if so is None:
        notes.append("note: tflite_micro is not installed: no TFLM column")
    elif not has_symbol(so, TFLM_SYMBOL):
        tflm_toggle = None
        notes.append(
            f"note: {so.name} has no {TFLM_SYMBOL} (stripped): TFLM counts are whole-process "
            "runs with N invokes minus a run with 0 invokes"
        )
    try:
        ensure_bench()
    except BenchError as e:
        print(f"error: building fqt_bench: {e}", file=sys.stderr)
        return 1
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="fqt-instr-") as tmp:
        for model in models:
            try:
                row = measure(model, args.n, args.seed, Path(tmp), tflm_toggle, args.big_macs)
            except BenchError as e:
                row = Row(model.stem, args.n, 0, None, None, "-", f"failed: {e}"[:120])
            rows.append(row)
            print(format_table([row]).splitlines()[-1], file=sys.stderr, flush=True)
    print(
        "x86-64 instructions (callgrind Ir) per inference; native = fqt_session_run "
        f"(build/host, -O2), TFLM = MicroInterpreter::Invoke (reference kernels); seed {args.seed}"
    )
    for note in notes:
        print(note)
    print()
    print(format_table(rows))
    slower = [r.model for r in rows if r.native and r.tflm and r.native > r.tflm]
    compared = [r for r in rows if r.native and r.tflm]
    if compared:
        print()
        if slower:
            print(f"target native <= TFLM missed on: {', '.join(slower)}")
        else:
            print(f"target native <= TFLM met on all {len(compared)} compared models")
    return 0


if __name__ == "__main__":
    sys.exit(main())
