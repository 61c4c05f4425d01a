"""The fqt package as a package (issue 9):

- it runs from an installed wheel, outside this checkout: the default demo model is package
  data and the host binaries are found in the package's _native/ folder (fqt.resources),
  checked by building a wheel, installing it into a temporary folder and running a native
  inference and `fqt demo` from there;
- the package's default model is byte for byte the fixture it copies;
- the binary lookup ($FQT_NATIVE_LIB / $FQT_HOST_DEVICE, then fqt/_native/) and its errors;
- no import cycle between the package's modules (function-level imports included), and
  nothing imports fqt.cli back;
- `west help` says what `fqt --help` says: west-commands.yml's help strings are
  fqt.cli.COMMANDS', and so are the west command classes'.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FIXTURE_MODELS, REPO, load_module
from fqt import cli, native, resources
from fqt.errors import FqtError
from test_native import native_lib  # noqa: F401  (the session fixture building build/host)

PACKAGE = REPO / "scripts" / "fqt"
WEST_YML = REPO / "scripts" / "west-commands.yml"


# --- package data ---------------------------------------------------------------------------
def test_default_model_is_the_fixture() -> None:
    """One model, two places: fqt/data/ (package data) and tests/fixtures/models/ (where
    make_models.py writes it, and the package copy with it)."""
    assert resources.DEFAULT_MODEL == PACKAGE / "data" / "digits_cnn.tflite"
    assert cli.DEFAULT_MODEL == resources.DEFAULT_MODEL
    fixture = FIXTURE_MODELS / "digits_cnn.tflite"
    assert resources.DEFAULT_MODEL.read_bytes() == fixture.read_bytes(), (
        "scripts/fqt/data/digits_cnn.tflite differs from the fixture: copy it again "
        "(tests/fixtures/make_models.py writes both)"
    )


# --- the binary lookup ----------------------------------------------------------------------
def test_binary_lookup_env_then_package(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(resources.NATIVE_LIB_ENV, raising=False)
    monkeypatch.delenv(resources.HOST_DEVICE_ENV, raising=False)
    assert resources.native_library_path() == PACKAGE / "_native" / "libfqt.so"
    assert resources.host_device_path() == PACKAGE / "_native" / "fqt_host_device"
    assert native.library_path() == resources.native_library_path()
    monkeypatch.setenv(resources.NATIVE_LIB_ENV, str(tmp_path / "lib.so"))
    monkeypatch.setenv(resources.HOST_DEVICE_ENV, str(tmp_path / "dev"))
    assert native.library_path() == tmp_path / "lib.so"
    assert resources.host_device_path() == tmp_path / "dev"


def test_missing_binaries_say_how_to_build(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv(resources.NATIVE_LIB_ENV, str(tmp_path / "absent" / "libfqt.so"))
    with pytest.raises(FqtError, match=r"libfqt\.so is missing.*cmake --install build/host"):
        native.load_library()
    missing = tmp_path / "absent" / "fqt_host_device"
    rc = cli.main(["demo", "--host-device", str(missing), "-o", str(tmp_path / "demo")])
    assert rc == 2
    err = capsys.readouterr().err
    assert f"the host device {missing} is missing" in err and "cmake --build build/host" in err


# --- the module graph -----------------------------------------------------------------------
def _module_graph() -> tuple[dict[str, set[str]], list[str]]:
    """fqt module -> the fqt modules it imports anywhere in its source (top level or in a
    function: a late import does not break a cycle, it hides it); and the relative imports
    that name no module of the package (a late one fails only when it runs)."""
    mods: dict[str, tuple[Path, bool]] = {}
    for p in PACKAGE.rglob("*.py"):
        parts = list(p.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        mods[".".join(parts[:-1] if is_pkg else parts)] = (p, is_pkg)
    graph: dict[str, set[str]] = {}
    unresolved: list[str] = []
    for mod, (path, is_pkg) in mods.items():
        here = mod.split(".") if is_pkg else mod.split(".")[:-1]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = here[: len(here) - node.level + 1] if node.level else []
                prefix = ".".join(base + ([node.module] if node.module else []))
                if node.level and prefix not in mods:
                    unresolved.append(f"{mod}:{node.lineno}: {'.' * node.level}{node.module}")
                for a in node.names:
                    sub = f"{prefix}.{a.name}"
                    targets.add(sub if sub in mods else prefix)
        graph[mod] = {t for t in targets if t in mods and t != mod}
    return graph, unresolved


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles() -> None:
    graph, unresolved = _module_graph()
    assert unresolved == []
    assert {"fqt.cli", "fqt.commands.demo", "fqt.commands.device"} <= set(graph)
    assert _cycles(graph) == []
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c"]]  # the checker


def test_nothing_imports_cli() -> None:
    importers = sorted(m for m, deps in _module_graph()[0].items() if "fqt.cli" in deps)
    assert importers == []


# --- west help == fqt help ------------------------------------------------------------------
def _west_yml_commands() -> list[dict[str, str]]:
    yaml = pytest.importorskip("yaml")
    data = yaml.safe_load(WEST_YML.read_text())
    return [c for f in data["west-commands"] for c in f["commands"]]


def _load_west_commands():
    pytest.importorskip("west")
    return load_module("scripts/west_commands/fqt_commands.py", "fqt_west_commands")


def test_west_help_is_cli_help() -> None:
    """`west help` lists west-commands.yml's strings; `west fqt-<x> -h` the class's: both
    must be the `fqt` command's own help from cli.COMMANDS."""
    module = _load_west_commands()
    entries = _west_yml_commands()
    assert entries
    for entry in entries:
        command = getattr(module, entry["class"])()
        assert command.name == entry["name"]
        assert command.sub in cli.COMMANDS, entry
        want = cli.COMMANDS[command.sub][0]
        assert entry["help"] == want, f"west-commands.yml {entry['name']}: use {want!r}"
        assert command.help == command.description == want


# --- the installed wheel --------------------------------------------------------------------
def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


_CHECK = """
import sys
from pathlib import Path

import numpy as np

import fqt
from fqt import native, resources
from fqt.blob import write_blob
from fqt.commands.common import load_model
from fqt.golden.interpreter import infer_batch

site, repo = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
for p in (Path(fqt.__file__), resources.DEFAULT_MODEL, native.library_path()):
    p = p.resolve()
    assert p.is_relative_to(site) and not p.is_relative_to(repo), p
model = load_model(resources.DEFAULT_MODEL)
xs = np.random.default_rng(0).integers(-128, 128, (16, *model.input_tensor.shape[1:]))
xs = xs.astype(np.int8)
ys = native.NativeEngine(write_blob(model)).infer_batch(xs).reshape(len(xs), -1)
assert np.array_equal(ys, infer_batch(model, xs).reshape(len(xs), -1)), "native != golden"
print("native inference from", native.library_path())
"""


def test_wheel_runs_outside_checkout(tmp_path: Path, native_lib) -> None:  # noqa: F811
    """Build a wheel the way a release would (the package plus its _native/ binaries from
    `cmake --install`), install it into a folder outside the checkout and run from there:
    a native inference on the packaged default model, then `fqt demo` with its console
    script, with no FQT_* variables and nothing from the checkout on the path."""
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake is not installed: cannot install the host binaries")
    from importlib.metadata import version

    if int(version("setuptools").split(".")[0]) < 77:
        pytest.skip("setuptools >= 77 is needed to build the wheel offline (pip install -e .[dev])")
    build_dir = native_lib.parent
    src = tmp_path / "src"
    (src / "scripts").mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(
        PACKAGE,
        src / "scripts" / "fqt",
        ignore=shutil.ignore_patterns("__pycache__", "_native", "*.egg-info"),
    )
    _run(
        [cmake, "--install", str(build_dir), "--component", "fqt_python",
         "--prefix", str(src / "scripts" / "fqt" / "_native")]
    )  # fmt: skip
    dist, site = tmp_path / "dist", (tmp_path / "site").resolve()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    _run(
        [
            *pip,
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(dist),
            str(src),
        ]
    )
    (wheel,) = dist.glob("fqt-*.whl")
    _run([*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)])
    assert (site / "fqt" / "_native" / "fqt_host_device").is_file()

    env = {k: v for k, v in os.environ.items() if not k.startswith("FQT_")}
    env["PYTHONPATH"] = str(site)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    proc = _run([sys.executable, "-c", _CHECK, str(site), str(REPO)], cwd=run_dir, env=env)
    assert "native inference from" in proc.stdout

    pytest.importorskip("sklearn")
    pytest.importorskip("tflite_micro")
    fqt_script = site / "bin" / "fqt"
    demo = [str(fqt_script)] if fqt_script.exists() else [sys.executable, "-m", "fqt.cli"]
    proc = _run([*demo, "demo", "--epochs", "1", "-o", "out"], cwd=run_dir, env=env)
    assert f"== import {site / 'fqt' / 'data' / 'digits_cnn.tflite'}" in proc.stdout
    assert f"host device: {site / 'fqt' / '_native' / 'fqt_host_device'}" in proc.stdout
    assert "TFLM outputs equal the device's: True" in proc.stdout
    assert (run_dir / "out" / "trained.tflite").is_file()
