"""The Zephyr tier: builds the app for the acceptance boards and runs the Twister suites
on qemu_cortex_m3 and native_sim/native/64. It runs only where a Zephyr installation is
found (ZEPHYR_BASE, or a west workspace around this checkout); elsewhere it is skipped
with the reason."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import REPO

BOARDS = ["qemu_cortex_m3", "mps2/an385", "nucleo_f767zi", "native_sim/native/64"]


def find_zephyr() -> tuple[Path | None, str]:
    base = os.environ.get("ZEPHYR_BASE")
    if base and (Path(base) / "VERSION").is_file():
        return Path(base), f"ZEPHYR_BASE={base}"
    for parent in REPO.parents:
        if (parent / ".west" / "config").is_file() and (parent / "zephyr" / "VERSION").is_file():
            return parent / "zephyr", f"west workspace {parent}"
    return None, "no Zephyr installation: ZEPHYR_BASE is unset and no west workspace is around"


ZEPHYR_BASE, WHY = find_zephyr()
pytestmark = pytest.mark.zephyr
needs_zephyr = pytest.mark.skipif(ZEPHYR_BASE is None, reason=f"Zephyr tier SKIPPED: {WHY}")


# A compiler diagnostic: "<file>:<line>[:<col>]: warning: ..." (gcc, ld and dtc alike).
_DIAGNOSTIC = re.compile(r"(?P<file>[^\s:]+):\d+(?::\d+)?: warning:")


def own_warnings(output: str, build: Path, repo: Path = REPO) -> list[str]:
    """The warning lines about a file of this checkout (resolved, relative paths taken from
    the build directory), or naming its path; Zephyr's and the modules' warnings are not
    the project's, whatever the workspace or the checkout is called."""
    root = repo.resolve()
    mine = []
    for line in output.splitlines():
        if "warning:" not in line:
            continue
        m = _DIAGNOSTIC.search(line)
        if m:
            where = Path(m.group("file"))
            where = (where if where.is_absolute() else build / where).resolve()
            if where.is_relative_to(root):
                mine.append(line)
        elif str(root) + os.sep in line:
            mine.append(line)
    return mine


def suite_lines(report: dict) -> list[str]:
    """One line per configuration of Twister's twister.json: its status and how many of
    its cases passed, failed, skipped or were blocked."""
    lines = []
    for suite in report.get("testsuites", []):
        counts: dict[str, int] = {}
        for case in suite.get("testcases", []):
            counts[case.get("status", "?")] = counts.get(case.get("status", "?"), 0) + 1
        cases = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no cases"
        lines.append(f"{suite['platform']} {suite['name']}: {suite.get('status')} ({cases})")
    return lines


def suite_problems(report: dict) -> list[str]:
    """The configurations that did not pass, or passed without one passing case. Twister
    counts a pytest suite whose module skipped (fqt or scikit-learn missing from Twister's
    Python: the suites importorskip them) as run; the tier must not."""
    bad = []
    for suite in report.get("testsuites", []):
        status = suite.get("status")
        if status == "filtered":
            continue
        passed = [c for c in suite.get("testcases", []) if c.get("status") == "passed"]
        if status != "passed" or not passed:
            reason = suite.get("reason") or "no case passed"
            bad.append(f"{suite['platform']} {suite['name']}: {status}: {reason}")
    return bad


def test_suite_problems_catch_an_all_skipped_suite() -> None:
    # Runs without Zephyr too: the report check is plain data handling.
    def suite(name: str, status: str, *cases: str) -> dict:
        return {
            "name": name,
            "platform": "qemu_cortex_m3/ti_lm3s6965",
            "status": status,
            "testcases": [{"identifier": f"{name}.{i}", "status": c} for i, c in enumerate(cases)],
        }

    report = {
        "testsuites": [
            suite("fqt.api", "passed", "passed", "skipped"),
            suite("fqt.app.shell", "passed", "skipped"),
            suite("fqt.engine.forward.cmsis_nn", "error", "blocked", "blocked"),
            suite("fqt.app.persist", "filtered"),
        ]
    }
    problems = suite_problems(report)
    assert [p.split(":")[0] for p in problems] == [
        "qemu_cortex_m3/ti_lm3s6965 fqt.app.shell",
        "qemu_cortex_m3/ti_lm3s6965 fqt.engine.forward.cmsis_nn",
    ]
    assert suite_lines(report)[0].endswith("fqt.api: passed (1 passed, 1 skipped)")


def west() -> str:
    exe = shutil.which("west")
    if exe is None:
        pytest.skip("Zephyr tier SKIPPED: west is not on PATH")
    return exe


def test_warning_filter_takes_paths_not_names(tmp_path: Path) -> None:
    # Runs without Zephyr too: the filter itself is plain text handling.
    ws = tmp_path / "fqt-workspace"
    build = ws / "build"
    out = "\n".join(
        [
            f"{ws}/zephyr/kernel/sched.c:12:3: warning: implicit declaration",
            f"{REPO}/modules/fqt/src/train/loss.c:18:26: warning: unused variable",
            "../../modules/lib/cmsis-nn/Source/x.c:1: warning: shadow",
        ]
    )
    assert own_warnings(out, build) == [out.splitlines()[1]]


@needs_zephyr
@pytest.mark.parametrize("board", BOARDS)
def test_app_builds_warning_free(board: str, tmp_path: Path) -> None:
    build = tmp_path / board.replace("/", "_")
    r = subprocess.run(
        [west(), "build", "-p", "-b", board, "-d", str(build), str(REPO / "app")],
        capture_output=True,
        text=True,
        env={**os.environ, "ZEPHYR_BASE": str(ZEPHYR_BASE)},
    )
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    mine = own_warnings(r.stdout + r.stderr, build)
    assert not mine, mine
    assert (build / "zephyr" / "zephyr.elf").is_file()


# qemu_cortex_m3 runs every suite but the persist one, which needs native_sim's flash file
# across a restart (and the api suite's save/restore, skipped on the emulated M3).
@needs_zephyr
@pytest.mark.parametrize("platform", ["qemu_cortex_m3", "native_sim/native/64"])
def test_twister_suites(platform: str, tmp_path: Path) -> None:
    r = subprocess.run(
        [
            west(),
            "twister",
            "-T",
            str(REPO / "tests" / "zephyr"),
            "-p",
            platform,
            "-O",
            str(tmp_path / "twister-out"),
            "-j",
            "2",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "ZEPHYR_BASE": str(ZEPHYR_BASE)},
    )
    # Twister logs its summary on stderr.
    summary = [line for line in (r.stdout + r.stderr).splitlines() if "executed test" in line]
    print("\n".join(summary))
    report_file = tmp_path / "twister-out" / "twister.json"
    report = json.loads(report_file.read_text()) if report_file.is_file() else {}
    print("\n".join(suite_lines(report)))
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    assert summary and " 0 failed" in summary[0]
    assert report.get("testsuites"), f"no Twister report at {report_file}"
    problems = suite_problems(report)
    assert not problems, problems
