"""Cortex-M benchmark: fqt's inference and training step counted in instructions on QEMU.

Builds the portable core (modules/fqt/sources.cmake, evaluated by `cmake -P`) bare metal
with Debian's arm-none-eabi-gcc beside this folder's harness (startup.c, semihost.c,
cortex_m.ld, bench_main.c) and one generated file holding the model blob and its training
samples, runs it in `qemu-system-arm -icount shift=N` on mps2-an385 (Cortex-M3),
mps2-an386 (Cortex-M4) and mps2-an500 (Cortex-M7), and turns the CMSDK timer's ticks into
instructions with a calibration against a loop of known length (2 n + 2 instructions).
Per layer and per training phase (the trainer's phase hook, fqt_train_options.phase_hook)
it prints instructions and instructions per MAC, plus the text size.

    .venv/bin/python benchmarks/cortex_m/cortex_m.py                 # every model, every config
    .venv/bin/python benchmarks/cortex_m/cortex_m.py --cores m4 --opts O2 --kernels simd
    .venv/bin/python benchmarks/cortex_m/cortex_m.py --cmsis-nn /path/to/cmsis-nn --json out.json

Kernels: `generic` (FQT_USE_SIMD=0), `simd` (the DSP extension where the core has it),
`cmsis_nn` (the forward wrappers through CMSIS-NN; needs --cmsis-nn or FQT_CMSIS_NN_DIR).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CORE = REPO / "modules" / "fqt"
BUILD = REPO / "build" / "cortex_m"
CC = "arm-none-eabi-gcc"
SIZE = "arm-none-eabi-size"
QEMU = "qemu-system-arm"
HARNESS = ("startup.c", "semihost.c", "bench_main.c")
# The device sizes its own plan (fqt_trainer_memory, printed as "memory"); the host's
# portable plan lacks the CMSIS-NN wrappers' scratch, hence a margin on the static arena.
ARENA_MARGIN = 64 * 1024
ICOUNT_SHIFT = 6  # 64 ns per instruction: more than one tick of the 25 MHz timer

# name: (QEMU machine, compiler flags)
CORES: dict[str, tuple[str, tuple[str, ...]]] = {
    "m3": ("mps2-an385", ("-mcpu=cortex-m3", "-mfloat-abi=soft")),
    "m4": ("mps2-an386", ("-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard")),
    "m7": ("mps2-an500", ("-mcpu=cortex-m7", "-mfpu=fpv5-d16", "-mfloat-abi=hard")),
}
KERNELS = ("generic", "simd", "cmsis_nn")
OPTS = ("Os", "O2")
# fqt_train_phase, in enum order (include/fqt/trainer.h)
PHASES = (
    "forward", "loss", "activation", "select", "weight_gradient", "input_error",
    "error_quant", "update",
)  # fmt: skip
CORE_FLAGS = (
    "-std=c11", "-Wall", "-Wextra", "-Werror", "-ffunction-sections", "-fdata-sections",
    "-ffp-contract=off", "-mthumb",
)  # fmt: skip
MODELS = {
    "kws_ref_model": Path(os.environ.get("FQT_SHARED_DIR", REPO.parent / "shared"))
    / "models"
    / "kws_ref_model.tflite",
    "digits_cnn": REPO / "tests" / "fixtures" / "models" / "digits_cnn.tflite",
    "dscnn_tiny": REPO / "tests" / "fixtures" / "models" / "dscnn_tiny.tflite",
}


class BenchError(RuntimeError):
    """A build or a run failed."""


def _footprint() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "fqt_bench_footprint", HERE.parent / "footprint.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def tools_missing() -> str | None:
    """Why the benchmark cannot run here, or None."""
    for tool in (CC, SIZE, QEMU, "cmake"):
        if shutil.which(tool) is None:
            return f"{tool} not on PATH (setup.sh installs gcc-arm-none-eabi, qemu-system-arm)"
    return None


@dataclass(frozen=True)
class Config:
    core: str  # m3 | m4 | m7
    kernels: str  # generic | simd | cmsis_nn
    opt: str  # Os | O2

    @property
    def name(self) -> str:
        return f"{self.core}-{self.kernels}-{self.opt}"

    def flags(self) -> list[str]:
        flags = [*CORES[self.core][1], *CORE_FLAGS, f"-{self.opt}"]
        if self.kernels == "generic":
            flags.append("-DFQT_USE_SIMD=0")
        return flags


# --- build ---------------------------------------------------------------------------------


def _sources(cfg: Config, cmsis_nn: Path | None) -> tuple[list[Path], list[Path], list[Path]]:
    """(fqt core sources, external sources, include dirs) of a configuration."""
    fp = _footprint()
    core = fp.cmake_list("FQT_CORE_COMMON_SOURCES")
    includes = [CORE / "include", CORE / "src", HERE]
    if cfg.kernels != "cmsis_nn":
        return core + fp.cmake_list("FQT_PORTABLE_WRAPPER_SOURCES"), [], includes
    if cmsis_nn is None:
        raise BenchError("cmsis_nn kernels need a CMSIS-NN tree (--cmsis-nn / FQT_CMSIS_NN_DIR)")
    wanted = ("ConvolutionFunctions", "FullyConnectedFunctions", "NNSupportFunctions")
    # fqt links only the int8 kernels; newer trees add float ones (*_f16.c, *_f32.c) that do
    # not build for every core.
    external = sorted(
        p
        for d in wanted
        for p in (cmsis_nn / "Source" / d).glob("*.c")
        if not p.stem.endswith(("_f16", "_f32"))
    )
    return core + fp.cmake_list("FQT_CMSIS_NN_SOURCES"), external, [*includes, cmsis_nn / "Include"]


def _digest(paths: list[Path], flags: list[str]) -> str:
    h = hashlib.sha256(" ".join(flags).encode())
    for p in sorted(paths):
        h.update(str(p).encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _compile(src: Path, obj: Path, flags: list[str]) -> None:
    proc = subprocess.run(
        ["nice", CC, *flags, "-c", str(src), "-o", str(obj)], capture_output=True, text=True
    )
    if proc.returncode != 0 or "warning:" in proc.stderr:
        raise BenchError(f"{src.name}: {proc.stderr.strip()}")


def build_objects(
    cfg: Config, cmsis_nn: Path | None = None, jobs: int = 2
) -> tuple[list[Path], list[Path]]:
    """Compile the core and the harness of `cfg` once (cached by content): (core objects, all)."""
    core, external, includes = _sources(cfg, cmsis_nn)
    harness = [HERE / n for n in HARNESS]
    inc = [f"-I{d}" for d in includes]
    headers = [*CORE.rglob("*.h"), *HERE.glob("*.h")]
    out = BUILD / f"{cfg.name}-{_digest(core + external + harness + headers, cfg.flags())}"
    objs = {src: out / f"{i:03d}_{src.stem}.o" for i, src in enumerate(core + external + harness)}
    if not (out / "complete").exists():
        out.mkdir(parents=True, exist_ok=True)
        ext_flags = [f for f in cfg.flags() if f not in ("-Werror", "-Wextra")] + ["-w"]
        with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
            futures = [
                pool.submit(
                    _compile, src, obj, (ext_flags if src in external else cfg.flags()) + inc
                )
                for src, obj in objs.items()
            ]
            for f in futures:
                f.result()
        (out / "complete").write_text("")
    return [objs[s] for s in core], list(objs.values())


def text_size(paths: list[Path]) -> int:
    """Sum of the text column of `arm-none-eabi-size` over objects or an ELF."""
    proc = subprocess.run([SIZE, *map(str, paths)], capture_output=True, text=True, check=True)
    return sum(int(line.split()[0]) for line in proc.stdout.splitlines()[1:])


def linked_core_text(elf: Path, core_objs: list[Path]) -> int:
    """Text of the core functions that survive --gc-sections in `elf` (from the map file)."""
    names = {o.name for o in core_objs}
    total = 0
    section = None
    for line in elf.with_suffix(".map").read_text().splitlines():
        m = re.match(r"^ (\.text\S*|\.rodata\S*)\s*(0x\S+)?\s*(0x[0-9a-f]+)?\s*(\S+)?$", line)
        if m and m.group(4):
            if Path(m.group(4)).name in names and int(m.group(2), 16) != 0:
                total += int(m.group(3), 16)
            section = None
        elif m:
            section = m.group(1)
        elif section and (m2 := re.match(r"^\s+(0x\S+)\s+(0x[0-9a-f]+)\s+(\S+)$", line)):
            if Path(m2.group(3)).name in names and int(m2.group(1), 16) != 0:
                total += int(m2.group(2), 16)
            section = None
    return total


# --- the model file --------------------------------------------------------------------------


@dataclass
class Workload:
    """A model blob with its training samples and what the host computes for them."""

    name: str
    model: object  # fqt.ir.Model, prepared
    blob: bytes
    trainable: list[int]
    inputs: np.ndarray  # int8 [samples, input size]
    labels: np.ndarray
    batch: int
    lr: float
    seed: int
    arena: int
    params: int
    memory: str = "default"  # the training memory plan (fqt_train_options.lean_memory)
    grad_state: str = "int32"  # fqt_train_options.grad_state (docs/training-semantics.md 4.1)


def workload(
    path: Path,
    samples: int = 2,
    batch: int = 2,
    lr: float = 0.01,
    seed: int = 1,
    memory: str = "default",
    grad_state: str = "int32",
) -> Workload:
    """Every weighted layer trainable; seeded random int8 inputs and labels. The lean
    memory plan's workload is named <model>-lean."""
    from fqt.blob import write_blob
    from fqt.native import NativeEngine, training_memory
    from fqt.plan import WEIGHTED_OPS
    from fqt.prepare import prepare
    from fqt.tflite_import import load_tflite

    model = load_tflite(path)
    prepare(model)
    trainable = [li for li, layer in enumerate(model.layers) if layer.op in WEIGHTED_OPS]
    blob = write_blob(model, set(trainable))
    eng = NativeEngine(blob)
    arena, params = training_memory(blob, set(trainable), memory=memory, grad_state=grad_state)
    rng = np.random.default_rng(seed)
    n_in = int(np.prod(eng.input_shape))
    n_out = int(np.prod(eng.output_shape))
    inputs = rng.integers(-128, 128, size=(samples, n_in), dtype=np.int8)
    labels = rng.integers(0, n_out, size=samples)
    return Workload(
        path.stem + ("-lean" if memory == "lean" else "")
        + ("" if grad_state == "int32" else f"-{grad_state}"), model, blob, trainable, inputs,
        labels, batch, lr, seed, max(arena, eng.required_arena_size) + ARENA_MARGIN, params,
        memory, grad_state,
    )  # fmt: skip


def _c_ints(values) -> str:
    v = [str(int(x)) for x in values]
    return ",\n".join(", ".join(v[i : i + 24]) for i in range(0, len(v), 24))


def model_source(w: Workload) -> str:
    from fqt.native import GRAD_STATE_CODES

    mask = sum(1 << li for li in w.trainable)
    return f"""/* Generated by benchmarks/cortex_m/cortex_m.py for {w.name}. */
#include "bench.h"

uint8_t fqt_bench_blob[] __attribute__((aligned(8))) = {{
{_c_ints(w.blob)}
}};
const uint32_t fqt_bench_blob_size = {len(w.blob)}u;
const int8_t fqt_bench_inputs[] = {{
{_c_ints(w.inputs.reshape(-1))}
}};
const uint8_t fqt_bench_labels[] = {{ {", ".join(str(int(y)) for y in w.labels)} }};
const fqt_bench_config fqt_bench = {{ {len(w.labels)}u, {w.inputs.shape[1]}u, {w.batch}u,
    {w.seed}u, {round(w.lr * 1e6)}u, {mask}ull, {int(w.memory == "lean")}u,
    {GRAD_STATE_CODES[w.grad_state]}u }};
uint8_t fqt_bench_arena[{w.arena}] __attribute__((aligned(16)));
const uint32_t fqt_bench_arena_size = {w.arena}u;
uint8_t fqt_bench_params[{max(w.params, 4)}] __attribute__((aligned(16)));
const uint32_t fqt_bench_params_size = {w.params}u;
"""


def link(cfg: Config, objs: list[Path], w: Workload) -> Path:
    out = BUILD / "elf"
    out.mkdir(parents=True, exist_ok=True)
    src = out / f"{w.name}_data.c"
    src.write_text(model_source(w))
    obj = out / f"{w.name}-{cfg.name}_data.o"
    _compile(src, obj, [*cfg.flags(), f"-I{HERE}"])
    elf = out / f"{w.name}-{cfg.name}.elf"
    cmd = [
        CC, *CORES[cfg.core][1], "-mthumb", "-nostartfiles", "--specs=nano.specs",
        f"-T{HERE / 'cortex_m.ld'}", "-Wl,--gc-sections", f"-Wl,-Map={elf.with_suffix('.map')}",
        *map(str, objs), str(obj), "-lm", "-o", str(elf),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BenchError(f"link {elf.name}: {proc.stderr.strip()}")
    return elf


# --- run -------------------------------------------------------------------------------------


def run_qemu(elf: Path, core: str, shift: int = ICOUNT_SHIFT, timeout: float = 600) -> list[str]:
    cmd = [
        "nice", QEMU, "-M", CORES[core][0], "-nographic", "-monitor", "none", "-serial", "none",
        "-semihosting-config", "enable=on,target=native", "-icount", f"shift={shift}",
        "-kernel", str(elf),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    # QEMU writes semihosting console output to its stderr.
    lines = [ln.strip() for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    if proc.returncode != 0 or not lines or lines[-1] != "done":
        tail = "\n".join(lines[-5:])
        raise BenchError(f"{elf.name} on {CORES[core][0]}: exit {proc.returncode}\n{tail}")
    return lines


def parse(lines: list[str]) -> dict:
    """The records of a run, ticks turned into instructions by the calibration."""
    calib = [tuple(map(int, ln.split()[1:])) for ln in lines if ln.startswith("calib ")]
    (n1, t1), (n2, t2) = calib
    per_instr = (t2 - t1) / (2 * (n2 - n1))  # ticks per instruction
    hook_ticks, hook_pairs = map(
        int, next(ln for ln in lines if ln.startswith("hook ")).split()[1:]
    )
    hook = hook_ticks / hook_pairs  # ticks a begin/end pair adds to a phase

    def instr(ticks: float) -> int:
        return round(ticks / per_instr)

    res: dict = {
        "calibration": {
            "loops": [n1, n2], "ticks": [t1, t2], "ticks_per_instruction": per_instr,
            "residual_ticks": t2 - round(per_instr * (2 * n2 + 2)),
            "hook_instructions": hook / per_instr,
        },
        "layers": [], "phases": {}, "steps": [],
    }  # fmt: skip
    for ln in lines:
        f = ln.split()
        if f[0] == "infer_layer":
            li, op, macs, ticks = map(int, f[1:])
            res["layers"].append({"layer": li, "op": op, "macs": macs, "inference": instr(ticks)})
        elif f[0] == "infer":
            res["inference"] = instr(int(f[1]))
            res["output"] = f[2]
        elif f[0] == "phase":
            ph, layer, calls, ticks = int(f[1]), int(f[2]), int(f[3]), int(f[4])
            res["phases"].setdefault(PHASES[ph], {})[layer] = instr(ticks - calls * hook)
        elif f[0] == "step":
            res["steps"].append(instr(int(f[2])))
        elif f[0] == "memory":
            res["arena"], res["params"] = int(f[1]), int(f[2])
        elif f[0] == "counters":
            res["samples"], res["updates"], res["forward_macs"], res["backward_macs"] = map(
                int, f[1:]
            )
        elif f[0] == "blob_crc":
            res["blob_crc"] = int(f[1])
    return res


def measure(
    cfg: Config, w: Workload, cmsis_nn: Path | None = None, shift: int = ICOUNT_SHIFT
) -> dict:
    core_objs, objs = build_objects(cfg, cmsis_nn)
    elf = link(cfg, objs, w)
    res = parse(run_qemu(elf, cfg.core, shift))
    res.update(
        model=w.name, config=cfg.name, core=cfg.core, kernels=cfg.kernels, opt=cfg.opt,
        core_text=text_size(core_objs), linked_core_text=linked_core_text(elf, core_objs),
        elf_text=text_size([elf]),
    )  # fmt: skip
    return res


# --- report ----------------------------------------------------------------------------------


def summary(res: dict, model) -> dict:
    """Per-kernel (per layer) and per-phase instructions and instructions per MAC."""
    from fqt.plan import layer_macs

    n = len(model.layers)
    macs = [layer_macs(model, li) for li in range(n)]
    samples = res["samples"]
    per = {ph: {li: v / samples for li, v in d.items()} for ph, d in res["phases"].items()}
    per["update"] = {
        li: v / max(res["updates"], 1) for li, v in res["phases"].get("update", {}).items()
    }
    weighted = [
        li
        for li in range(n)
        if model.layers[li].op.name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
    ]
    fwd_macs = sum(macs)
    wg_macs = sum(macs[li] for li in per.get("weight_gradient", {}))
    ie_macs = sum(macs[li] for li in per.get("input_error", {}) if li in weighted)
    step = (sum(res["steps"]) - sum(res["phases"].get("update", {}).values())) / samples
    phases = {}
    for ph in PHASES:
        total = sum(per.get(ph, {}).values())
        m = {"forward": fwd_macs, "weight_gradient": wg_macs, "input_error": ie_macs}.get(ph)
        phases[ph] = {"instructions": round(total), "per_mac": total / m if m else None}
    kernels = []
    for li in range(n):
        row = {"layer": li, "op": model.layers[li].op.name, "macs": macs[li],
               "inference": res["layers"][li]["inference"]}  # fmt: skip
        for ph in ("forward", "weight_gradient", "input_error", "error_quant", "update"):
            if li in per.get(ph, {}):
                row[ph] = round(per[ph][li])
        kernels.append(row)
    step_macs = fwd_macs + res["backward_macs"] / samples
    return {
        "model": res["model"], "config": res["config"], "inference": res["inference"],
        "inference_per_mac": res["inference"] / fwd_macs, "forward_macs": fwd_macs,
        "step_macs": step_macs, "step_no_update": round(step), "step_per_mac": step / step_macs,
        "phases": phases, "kernels": kernels, "core_text": res["core_text"],
        "linked_core_text": res["linked_core_text"], "elf_text": res["elf_text"],
        "arena": res["arena"], "params": res["params"], "calibration": res["calibration"],
    }  # fmt: skip


def _f(x: float | None, nd: int = 1) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def print_table(s: dict) -> None:
    cal = s["calibration"]
    print(f"\n## {s['model']}  {s['config']}  (core text {s['core_text']} B, linked "
          f"{s['linked_core_text']} B; {cal['ticks_per_instruction']:.4f} ticks/instr, "
          f"residual {cal['residual_ticks']} ticks)")  # fmt: skip
    print(f"inference {s['inference']:,} instr, {_f(s['inference_per_mac'], 2)}/MAC; training "
          f"step (no update) {s['step_no_update']:,} instr, {_f(s['step_per_mac'], 2)}/MAC "
          f"of {s['step_macs']:,.0f} MACs")  # fmt: skip
    print("| phase | instructions/sample | instr/MAC |\n|---|---:|---:|")
    for ph, d in s["phases"].items():
        print(f"| {ph} | {d['instructions']:,} | {_f(d['per_mac'], 2)} |")
    print("| layer | op | MACs | fwd/MAC | wgrad/MAC | inerr/MAC | errq instr | update instr |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for k in s["kernels"]:
        m = k["macs"] or None

        def pm(key: str, row: dict = k, m: int | None = m) -> str:
            return _f(row[key] / m, 2) if m and key in row else "-"

        print(f"| {k['layer']} | {k['op']} | {k['macs']:,} | {pm('forward')} | "
              f"{pm('weight_gradient')} | {pm('input_error')} | {k.get('error_quant', '-')} | "
              f"{k.get('update', '-')} |")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--cores", nargs="+", default=list(CORES), choices=list(CORES))
    ap.add_argument("--kernels", nargs="+", default=list(KERNELS), choices=KERNELS)
    ap.add_argument("--opts", nargs="+", default=list(OPTS), choices=OPTS)
    ap.add_argument(
        "--memory", nargs="+", default=["default"], choices=("default", "lean"),
        help="training memory plans to run (docs/memory-plan.md)",
    )  # fmt: skip
    ap.add_argument("--cmsis-nn", type=Path, default=os.environ.get("FQT_CMSIS_NN_DIR"))
    ap.add_argument("--shift", type=int, default=ICOUNT_SHIFT, help="qemu -icount shift")
    ap.add_argument(
        "--grad-state", choices=("int32", "int16", "int8"), default="int32",
        help="the trainer's gradient state (docs/training-semantics.md 4.1)",
    )  # fmt: skip
    ap.add_argument("--json", type=Path, help="write every result here")
    args = ap.parse_args(argv)
    if (why := tools_missing()) is not None:
        print(f"SKIPPED: {why}")
        return 0
    results = []
    for name in args.models:
        path = MODELS[name]
        if not path.exists():
            print(f"SKIPPED {name}: {path} absent (../shared is not here)")
            continue
        for memory in args.memory:
            results += _run_model(args, workload(path, memory=memory, grad_state=args.grad_state))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


def _run_model(args: argparse.Namespace, w: Workload) -> list[dict]:
    results = []
    for core in args.cores:
        for kernels in args.kernels:
            if kernels == "cmsis_nn" and args.cmsis_nn is None:
                print(f"SKIPPED {core}-cmsis_nn: no CMSIS-NN tree (--cmsis-nn / FQT_CMSIS_NN_DIR)")
                continue
            if kernels != "generic" and core == "m3":
                continue  # no DSP extension: simd is generic there, CMSIS-NN too
            for opt in args.opts:
                cfg = Config(core, kernels, opt)
                s = summary(measure(cfg, w, args.cmsis_nn, args.shift), w.model)
                print_table(s)
                results.append(s)
    return results


if __name__ == "__main__":
    sys.exit(main())
