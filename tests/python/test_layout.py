"""The C core's layout (docs/architecture.md), checked on the sources themselves.

- The core lives in wings (kernels/, runtime/, train/, service/, zephyr/): no C file is loose
  in src/, and none is over 600 lines.
- No include cycle and no call cycle between files.
- A training step decodes no layer record: nothing reachable from fqt_trainer_step or
  fqt_trainer_flush calls a decoder.
- The golden model mirrors the C core file for file.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import REPO

MODULE = REPO / "modules" / "fqt"
SRC = MODULE / "src"
INCLUDE = MODULE / "include"
GOLDEN = REPO / "scripts" / "fqt" / "golden"
WINGS = {"kernels", "runtime", "train", "service", "zephyr"}
MAX_LINES = 600

# A top-level function definition in the project's style: the signature starts in column 0
# and its body's braces sit alone in column 0.
DEFINITION = re.compile(
    r"^(?:static\s+)?(?:inline\s+)?[A-Za-z_][\w\s\*]*?\b([A-Za-z_]\w*)\s*\([^;{]*?\)\s*\n\{\n"
    r"(.*?)^\}",
    re.MULTILINE | re.DOTALL,
)
INLINE_DEFINITION = re.compile(
    r"^static\s+inline\s+[\w\s\*]*?\b([A-Za-z_]\w*)\s*\([^;{]*?\)\s*\n\{\n(.*?)^\}",
    re.MULTILINE | re.DOTALL,
)
CALL = re.compile(r"\b([A-Za-z_]\w*)\s*\(")
INCLUDE_LINE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.MULTILINE)


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.DOTALL)
    return re.sub(r"//[^\n]*", "", text)


def _c_files() -> list[Path]:
    files = sorted(p for p in MODULE.rglob("*.c"))
    files += sorted(p for p in MODULE.rglob("*.h"))
    return files


def _functions(path: Path) -> dict[str, str]:
    """name -> body of every function defined in path."""
    text = _strip_comments(path.read_text())
    found = {m.group(1): m.group(2) for m in DEFINITION.finditer(text)}
    found.update({m.group(1): m.group(2) for m in INLINE_DEFINITION.finditer(text)})
    return found


def _calls(body: str) -> set[str]:
    return {m.group(1) for m in CALL.finditer(body)}


def _resolve_include(path: Path, name: str) -> Path | None:
    for base in (path.parent, SRC, INCLUDE):
        candidate = (base / name).resolve()
        if candidate.is_file():
            return candidate
    return None


def _find_cycle(graph: dict[Path, set[Path]]) -> list[Path] | None:
    """A cycle of the directed graph as a list of nodes, or None."""
    state: dict[Path, int] = {}
    stack: list[Path] = []

    def visit(node: Path) -> list[Path] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if state.get(nxt) is None and (cycle := visit(nxt)) is not None:
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if state.get(node) is None and (cycle := visit(node)) is not None:
            return cycle
    return None


def _rel(cycle: list[Path]) -> str:
    return " -> ".join(p.relative_to(MODULE).as_posix() for p in cycle)


def test_every_c_file_is_in_a_wing() -> None:
    assert {p.name for p in SRC.iterdir() if p.is_dir()} == WINGS
    loose = [p.name for p in SRC.iterdir() if p.is_file()]
    assert loose == [], f"files loose in src/: {loose}"


def test_no_c_file_is_over_600_lines() -> None:
    long = {
        p.relative_to(MODULE).as_posix(): n
        for p in MODULE.rglob("*.c")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_no_include_cycle() -> None:
    graph: dict[Path, set[Path]] = {}
    for path in _c_files():
        deps = set()
        for name in INCLUDE_LINE.findall(path.read_text()):
            target = _resolve_include(path, name)
            if target is not None and target != path.resolve():
                deps.add(target)
        graph[path.resolve()] = deps
    assert (cycle := _find_cycle(graph)) is None, _rel(cycle)


def _call_graphs() -> tuple[dict[str, Path], dict[str, set[str]]]:
    """Where each function is defined, and whom each calls (functions of the module only)."""
    where: dict[str, Path] = {}
    bodies: dict[str, str] = {}
    for path in _c_files():
        for name, body in _functions(path).items():
            # A static helper's name may recur in another file: key those by file.
            key = name if name.startswith("fqt_") else f"{path.as_posix()}::{name}"
            where[key] = path.resolve()
            bodies[key] = body
    calls: dict[str, set[str]] = {}
    for key, body in bodies.items():
        here = where[key]
        resolved = set()
        for name in _calls(body):
            if name in where:
                resolved.add(name)
            elif (local := f"{here.as_posix()}::{name}") in where:
                resolved.add(local)
        calls[key] = resolved - {key}
    return where, calls


def test_no_call_cycle_between_files() -> None:
    where, calls = _call_graphs()
    graph: dict[Path, set[Path]] = {}
    for key, callees in calls.items():
        graph.setdefault(where[key], set()).update(
            where[c] for c in callees if where[c] != where[key]
        )
    assert (cycle := _find_cycle(graph)) is None, _rel(cycle)


DECODERS = {
    "fqt_decode_layer",
    "fqt_decode_tensor",
    "fqt_model_layer",
    "fqt_model_tensor",
    "fqt_model_layer_macs",
    "fqt_model_buffer_of_tensor",
    "fqt_layer_view_decode",
    "fqt_last_reader",
}


def test_a_training_step_decodes_no_layer_record() -> None:
    _, calls = _call_graphs()
    assert "fqt_trainer_step" in calls and "fqt_layer_view_decode" in calls
    for root in ("fqt_trainer_step", "fqt_trainer_flush"):
        reached: set[str] = set()
        todo = [root]
        while todo:
            fn = todo.pop()
            if fn in reached:
                continue
            reached.add(fn)
            todo.extend(calls.get(fn, ()))
        assert "fqt_layer_forward" in reached or root == "fqt_trainer_flush"
        assert reached & DECODERS == set(), f"{root} reaches {sorted(reached & DECODERS)}"


# C file -> its golden twin (scripts/fqt/...), where the names differ or there is none.
GOLDEN_TWINS = {
    "kernels/quant.c": "quant.py",
    "kernels/forward_wrapper.c": None,  # a choice of implementation, no arithmetic
    "kernels/input_error_exact.c": None,  # the golden's integers never overflow
    "kernels/input_error_s8.c": None,  # the lean plan: golden's integers, less memory
    "train/train_plan.c": "plan.py",
}


CORE_FILES = sorted(
    p.relative_to(SRC).as_posix() for wing in ("kernels", "train") for p in (SRC / wing).glob("*.c")
)


def test_golden_twin_exceptions_name_real_files() -> None:
    assert set(GOLDEN_TWINS) <= set(CORE_FILES)


@pytest.mark.parametrize("c_file", [f for f in CORE_FILES if GOLDEN_TWINS.get(f, "") is not None])
def test_golden_mirrors_the_core(c_file: str) -> None:
    twin = GOLDEN_TWINS.get(c_file) or "golden/" + Path(c_file).with_suffix(".py").name
    assert (REPO / "scripts" / "fqt" / twin).is_file(), f"{c_file}: no scripts/fqt/{twin}"
