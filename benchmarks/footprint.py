"""Cross-compile the portable core for Cortex-M and print its flash/RAM footprint.

Every source in FQT_CORE_SOURCES (modules/fqt/sources.cmake) is compiled with Debian's
arm-none-eabi-gcc for Cortex-M0+, M3, M4 (+DSP, FPv4-SP) and M7 (FPv5-D16) with
-Os -std=c11 -Wall -Wextra -Werror -ffunction-sections -fdata-sections. Any warning fails
the run (exit 1, with the compiler's output). The table gives text/data/bss per object
file (arm-none-eabi-size) and the total per core.

    .venv/bin/python benchmarks/footprint.py [--core cortex-m4 ...] [--out-dir DIR]

The numbers are per object, before linking: --gc-sections in a firmware link drops the
functions an application never calls, so a real image is usually smaller.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCES_CMAKE = REPO / "modules" / "fqt" / "sources.cmake"
CC = "arm-none-eabi-gcc"
SIZE = "arm-none-eabi-size"

COMMON_FLAGS: tuple[str, ...] = (
    "-Os",
    "-std=c11",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-ffunction-sections",
    "-fdata-sections",
    "-mthumb",
)

CORES: dict[str, tuple[str, ...]] = {
    "cortex-m0plus": ("-mcpu=cortex-m0plus", "-mfloat-abi=soft"),
    "cortex-m3": ("-mcpu=cortex-m3", "-mfloat-abi=soft"),
    "cortex-m4": ("-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"),
    "cortex-m7": ("-mcpu=cortex-m7", "-mfpu=fpv5-d16", "-mfloat-abi=hard"),
}


class BuildError(RuntimeError):
    """A compiler or size invocation failed, or the compiler printed a warning."""


@dataclass(frozen=True)
class ObjectSize:
    name: str
    text: int
    data: int
    bss: int


def toolchain_available() -> bool:
    return shutil.which(CC) is not None and shutil.which(SIZE) is not None


def cmake_list(name: str, sources_cmake: Path = SOURCES_CMAKE) -> list[Path]:
    """The files of CMake list `name` as sources.cmake defines it, evaluated by CMake."""
    script = (
        f'include("{sources_cmake.as_posix()}")\n'
        f"foreach(item ${{{name}}})\n"
        '  message("${item}")\n'
        "endforeach()\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "list.cmake"
        path.write_text(script)
        proc = subprocess.run(
            ["cmake", "-P", str(path)], capture_output=True, text=True, check=False
        )
    if proc.returncode != 0:
        raise BuildError(f"{sources_cmake}: cmake -P failed:\n{proc.stderr}")
    return [Path(line) for line in proc.stderr.splitlines() if line.strip()]


def core_sources(sources_cmake: Path = SOURCES_CMAKE) -> list[Path]:
    """The files of FQT_CORE_SOURCES (the portable core)."""
    sources = cmake_list("FQT_CORE_SOURCES", sources_cmake)
    if not sources:
        raise BuildError(f"{sources_cmake}: FQT_CORE_SOURCES is empty")
    return sources


def include_dirs(sources_cmake: Path = SOURCES_CMAKE) -> list[Path]:
    core_dir = sources_cmake.parent
    return [core_dir / "include", core_dir / "src"]


def compile_core(core: str, out_dir: Path, sources: list[Path] | None = None) -> list[Path]:
    """Compile every core source for `core` into out_dir; raise BuildError on any
    diagnostic (warnings included: -Werror, and any stderr output is treated as failure)."""
    if core not in CORES:
        raise BuildError(f"unknown core {core!r}; known: {', '.join(CORES)}")
    srcs = sources if sources is not None else core_sources()
    out_dir.mkdir(parents=True, exist_ok=True)
    includes = [f"-I{d}" for d in include_dirs()]
    objects: list[Path] = []
    core_dir = SOURCES_CMAKE.parent / "src"
    for src in srcs:
        # Objects mirror the sources' paths under src/ (src/service/frame.c ->
        # service/frame.o), so two sources with one file name cannot collide.
        rel = src.relative_to(core_dir) if src.is_relative_to(core_dir) else Path(src.name)
        obj = out_dir / rel.with_suffix(".o")
        obj.parent.mkdir(parents=True, exist_ok=True)
        cmd = [CC, *CORES[core], *COMMON_FLAGS, *includes, "-c", str(src), "-o", str(obj)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        diagnostics = (proc.stdout + proc.stderr).strip()
        if proc.returncode != 0 or diagnostics:
            raise BuildError(
                f"{core}: {src.relative_to(REPO) if src.is_relative_to(REPO) else src} "
                f"(exit {proc.returncode}):\n{' '.join(cmd)}\n{diagnostics}"
            )
        objects.append(obj)
    return objects


def object_sizes(objects: list[Path], out_dir: Path | None = None) -> list[ObjectSize]:
    """text/data/bss of each object (arm-none-eabi-size, Berkeley format), named relative
    to out_dir when given."""
    proc = subprocess.run(
        [SIZE, "-B", *map(str, objects)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise BuildError(f"{SIZE} failed:\n{proc.stderr}")
    sizes: list[ObjectSize] = []
    for obj, line in zip(objects, proc.stdout.splitlines()[1:], strict=False):
        fields = line.split()
        if len(fields) < 6:
            continue
        name = obj.relative_to(out_dir).as_posix() if out_dir else obj.name
        sizes.append(ObjectSize(name, int(fields[0]), int(fields[1]), int(fields[2])))
    if len(sizes) != len(objects):
        raise BuildError(f"{SIZE}: expected {len(objects)} rows, got:\n{proc.stdout}")
    return sizes


def footprint(cores: list[str], work_dir: Path) -> dict[str, list[ObjectSize]]:
    sources = core_sources()
    return {
        core: object_sizes(compile_core(core, work_dir / core, sources), work_dir / core)
        for core in cores
    }


def format_table(results: dict[str, list[ObjectSize]]) -> str:
    cores = list(results)
    names = [o.name for o in results[cores[0]]]
    width = max(len("total"), *(len(n) for n in names))
    head1 = f"{'object':<{width}}" + "".join(f" | {c:^22}" for c in cores)
    head2 = f"{'':<{width}}" + "".join(f" | {'text':>6} {'data':>6} {'bss':>6} " for _ in cores)
    rule = "-" * len(head2)
    lines = [head1, head2, rule]
    for i, name in enumerate(names):
        row = f"{name:<{width}}"
        for c in cores:
            o = results[c][i]
            row += f" | {o.text:>6} {o.data:>6} {o.bss:>6} "
        lines.append(row)
    lines.append(rule)
    row = f"{'total':<{width}}"
    for c in cores:
        objs = results[c]
        row += (
            f" | {sum(o.text for o in objs):>6} {sum(o.data for o in objs):>6}"
            f" {sum(o.bss for o in objs):>6} "
        )
    lines.append(row)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--core", action="append", choices=list(CORES), help="repeatable")
    parser.add_argument("--out-dir", type=Path, help="keep the objects here")
    args = parser.parse_args(argv)
    if not toolchain_available():
        print(f"error: {CC} / {SIZE} not found on PATH", file=sys.stderr)
        return 2
    cores: list[str] = args.core or list(CORES)
    try:
        if args.out_dir is not None:
            results = footprint(cores, args.out_dir)
        else:
            with tempfile.TemporaryDirectory(prefix="fqt-footprint-") as tmp:
                results = footprint(cores, Path(tmp))
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    version = subprocess.run([CC, "--version"], capture_output=True, text=True, check=False)
    print(f"{version.stdout.splitlines()[0] if version.stdout else CC}")
    print(f"flags: {' '.join(COMMON_FLAGS)} (+ per-core -mcpu/-mfpu/-mfloat-abi)")
    print("bytes per object, before linking (--gc-sections drops unused functions)\n")
    print(format_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
