"""The device service's command table is the one list of its commands.

The table (name, usage, handler) in modules/fqt/src/service/dispatch.c is what
`fqt_service_dispatch` dispatches on and what `fqt help` prints. Three texts list the
commands for people: the `fqt` shell help string (modules/fqt/src/zephyr/service_thread.c),
the FQT_SHELL Kconfig help (modules/fqt/Kconfig) and docs/protocol.md. Each must name
exactly the table's commands, and protocol.md's `fqt help` listing must carry the table's
usage strings word for word.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import REPO

DISPATCH = REPO / "modules" / "fqt" / "src" / "service" / "dispatch.c"
SHELL = REPO / "modules" / "fqt" / "src" / "zephyr" / "service_thread.c"
KCONFIG = REPO / "modules" / "fqt" / "Kconfig"
PROTOCOL = REPO / "docs" / "protocol.md"

_C_STRING = r'"(?:[^"\\\n]|\\.)*"'
# A comma-separated run of command names: "help, ping, info".
_NAME_LIST = re.compile(r"(?:[a-z][a-z_]*,\s+)+[a-z][a-z_]*")


def _c_strings(text: str) -> str:
    """The concatenation of the C string literals in `text` (adjacent literals join)."""
    parts = re.findall(_C_STRING, text)
    return "".join(bytes(p[1:-1], "utf-8").decode("unicode_escape") for p in parts)


def command_table(path: Path = DISPATCH) -> list[tuple[str, str]]:
    """(name, usage) of each entry of `commands[]` in dispatch.c, in table order."""
    src = re.sub(r"/\*.*?\*/", "", path.read_text(), flags=re.S)
    m = re.search(r"\bcommands\s*\[\s*\]\s*=\s*\{(.*?)\n\};", src, flags=re.S)
    assert m, f"no `commands[] = {{...}};` table in {path}"
    entry = re.compile(
        rf"\{{\s*({_C_STRING})\s*,\s*((?:{_C_STRING}\s*)+),\s*([A-Za-z_]\w*)\s*\}}", re.S
    )
    body = m.group(1)
    rows = [(_c_strings(e.group(1)), _c_strings(e.group(2))) for e in entry.finditer(body)]
    # Every brace in the table belongs to an entry the pattern read: none slipped past it.
    braces = re.sub(_C_STRING, '""', body).count("{")
    assert len(rows) == braces, f"an entry of {path}'s table did not parse"
    return rows


def _names_in_prose(text: str, where: str) -> list[str]:
    runs = _NAME_LIST.findall(text)
    assert runs, f"no comma-separated command list in {where}: {text!r}"
    longest = max(runs, key=len)
    return [w.strip() for w in longest.split(",")]


def shell_help_names(path: Path = SHELL) -> list[str]:
    """The commands the `fqt` shell command's help string lists."""
    src = path.read_text()
    m = re.search(r"SHELL_CMD_ARG_REGISTER\(\s*fqt\s*,(.*?)\)\s*;", src, flags=re.S)
    assert m, f"no SHELL_CMD_ARG_REGISTER(fqt, ...) in {path}"
    return _names_in_prose(_c_strings(m.group(1)), f"{path}'s shell help")


def kconfig_help_names(path: Path = KCONFIG) -> list[str]:
    """The commands the FQT_SHELL option's help text lists."""
    lines = path.read_text().splitlines()
    start = lines.index("config FQT_SHELL")
    i = start + 1
    while lines[i].strip() != "help":
        assert not lines[i].startswith(("config ", "menu", "endmenu")), "FQT_SHELL has no help"
        i += 1
    text = []
    for line in lines[i + 1 :]:
        if line.strip() and not line.startswith(("\t", " ")):
            break
        text.append(line.strip())
    return _names_in_prose(" ".join(text), f"{path}'s FQT_SHELL help")


def _commands_section(path: Path = PROTOCOL) -> list[str]:
    lines = path.read_text().splitlines()
    start = lines.index("## Commands")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return lines[start + 1 : end]


def protocol_help_usages(path: Path = PROTOCOL) -> list[str]:
    """The usage strings of protocol.md's `fqt help` listing (lines `help fqt <usage>`)."""
    prefix = "    help fqt "
    return [line[len(prefix) :] for line in _commands_section(path) if line.startswith(prefix)]


def protocol_table_names(path: Path = PROTOCOL) -> list[str]:
    """The commands of protocol.md's `| command | answer |` table, once each, in order."""
    names: list[str] = []
    for line in _commands_section(path):
        if not line.startswith("| `fqt"):
            continue
        first_cell = re.match(r"\|((?:[^|\\]|\\.)*)\|", line)
        assert first_cell, line
        for name in re.findall(r"`fqt ([a-z][a-z_]*)", first_cell.group(1)):
            if name not in names:
                names.append(name)
    return names


@pytest.fixture(scope="module")
def table() -> list[tuple[str, str]]:
    rows = command_table()
    names = [n for n, _ in rows]
    assert "help" in names and len(rows) >= 10, f"the table parsed as {rows}"
    assert len(set(names)) == len(names), f"a command is in the table twice: {names}"
    for name, usage in rows:
        assert usage.startswith(name), f"the usage of {name!r} does not start with it: {usage!r}"
    return rows


def test_shell_help_names_the_table(table) -> None:
    assert sorted(shell_help_names()) == sorted(n for n, _ in table)


def test_kconfig_help_names_the_table(table) -> None:
    assert sorted(kconfig_help_names()) == sorted(n for n, _ in table)


def test_protocol_table_names_the_table(table) -> None:
    assert sorted(protocol_table_names()) == sorted(n for n, _ in table)


def test_protocol_help_listing_is_the_table(table) -> None:
    # `fqt help` prints the usages in table order; protocol.md shows that answer.
    assert protocol_help_usages() == [u for _, u in table]
