"""The device service's command table is the one list of its commands.

The table is X-macros in modules/fqt/src/service/command_table.h: FQT_COMMANDS (name,
handler, shell argument counts, usage) and one FQT_SUBCOMMANDS_<group> per command with
subcommands. dispatch.c expands it into what `fqt_service_dispatch` dispatches on and
`fqt help` prints; zephyr/service_thread.c expands the same lists into the shell's static
subcommand sets (help texts, argument counts). Three texts list the commands for people:
the `fqt` shell help string, the FQT_SHELL Kconfig help and docs/protocol.md. Each must
name exactly the table's commands, protocol.md's `fqt help` listing must carry the table's
usage strings word for word, and its command table must name every subcommand.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import REPO

DISPATCH = REPO / "modules" / "fqt" / "src" / "service" / "dispatch.c"
TABLE = REPO / "modules" / "fqt" / "src" / "service" / "command_table.h"
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


def _macro_body(src: str, macro: str) -> str:
    """The body of `#define <macro>(...)`, continuation lines joined."""
    m = re.search(rf"#define\s+{macro}\(([^)]*)\)((?:[^\n]*\\\n)*[^\n]*)", src)
    assert m, f"no #define {macro}(...) in {TABLE}"
    return m.group(2).replace("\\\n", " ")


def _entries(body: str, kinds: str) -> list[tuple[str, list[str]]]:
    """(kind, arguments) of each `KIND(a, b, ...)` in a macro body; strings kept joined."""
    entry = re.compile(rf"\b({kinds})\(((?:{_C_STRING}|[^()\"])*)\)", re.S)
    out = []
    for m in entry.finditer(body):
        args = [a.strip() for a in re.split(r",(?=(?:[^\"]*\"[^\"]*\")*[^\"]*$)", m.group(2))]
        out.append((m.group(1), args))
    return out


def table_rows(path: Path = TABLE) -> list[dict]:
    """Each top-level command: name, kind (CMD/GROUP), handler, mandatory, optional, usage."""
    src = re.sub(r"/\*.*?\*/", "", path.read_text(), flags=re.S)
    rows = []
    for kind, a in _entries(_macro_body(src, "FQT_COMMANDS"), "CMD|GROUP"):
        assert len(a) == 5, f"{kind}({a}) in {path} does not have 5 arguments"
        rows.append(
            {
                "name": a[0],
                "kind": kind,
                "fn": a[1],
                "mandatory": int(a[2]),
                "optional": int(a[3]),
                "usage": _c_strings(a[4]),
            }
        )
    return rows


def subcommands(group: str, path: Path = TABLE) -> list[dict]:
    src = re.sub(r"/\*.*?\*/", "", path.read_text(), flags=re.S)
    subs = []
    for _, a in _entries(_macro_body(src, f"FQT_SUBCOMMANDS_{group}"), "SUB"):
        assert len(a) == 5, f"SUB({a}) in {path} does not have 5 arguments"
        subs.append(
            {
                "parent": a[0],
                "name": a[1],
                "mandatory": int(a[2]),
                "optional": int(a[3]),
                "help": _c_strings(a[4]),
            }
        )
    return subs


def command_table(path: Path = TABLE) -> list[tuple[str, str]]:
    """(name, usage) of each top-level command, in table (`fqt help`) order."""
    return [(r["name"], r["usage"]) for r in table_rows(path)]


def _names_in_prose(text: str, where: str) -> list[str]:
    runs = _NAME_LIST.findall(text)
    assert runs, f"no comma-separated command list in {where}: {text!r}"
    longest = max(runs, key=len)
    return [w.strip() for w in longest.split(",")]


def shell_help_names(path: Path = SHELL) -> list[str]:
    """The commands the `fqt` shell command's help string lists."""
    src = path.read_text()
    m = re.search(r"SHELL_CMD_REGISTER\(\s*fqt\s*,(.*?)\)\s*;", src, flags=re.S)
    assert m, f"no SHELL_CMD_REGISTER(fqt, ...) in {path}"
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


def _arg_words(usage: str) -> tuple[int, int]:
    """(<required>, [optional]) words of a usage's first form, before its ':' or '|'."""
    form = re.split(r":|\s\|\s|;", usage, maxsplit=1)[0]
    return len(re.findall(r"<[^>]+>", form)), len(re.findall(r"\[[^\]]+\]", form))


def test_dispatcher_and_shell_expand_the_table() -> None:
    assert "FQT_COMMANDS(" in DISPATCH.read_text()
    shell = SHELL.read_text()
    assert "SHELL_STATIC_SUBCMD_SET_CREATE(sub_fqt, FQT_COMMANDS(" in shell
    assert "FQT_SUBCOMMANDS_##name(" in shell


def test_groups_have_their_subcommands(table) -> None:
    src = TABLE.read_text()
    for row in table_rows():
        listed = f"#define FQT_SUBCOMMANDS_{row['name']}(" in src
        assert listed == (row["kind"] == "GROUP"), row["name"]
        if row["kind"] != "GROUP":
            continue
        subs = subcommands(row["name"])
        assert subs, f"group {row['name']} has no subcommand"
        for sub in subs:
            assert sub["parent"] == row["name"], sub
            assert re.search(rf"\b{sub['name']}\b", row["usage"]), (sub, row["usage"])
            assert sub["help"].startswith(sub["name"]), sub


def test_argument_counts_follow_the_usage(table) -> None:
    for row in table_rows():
        if row["kind"] == "GROUP" and row["mandatory"] == 0:
            assert row["optional"] == 0, row
        else:
            required, optional = _arg_words(row["usage"])
            assert (row["mandatory"], row["optional"]) == (required + 1, optional), row
        if row["kind"] == "GROUP":
            for sub in subcommands(row["name"]):
                required, optional = _arg_words(sub["help"])
                assert (sub["mandatory"], sub["optional"]) == (required + 1, optional), sub


def test_protocol_table_names_every_subcommand(table) -> None:
    cells = " ".join(
        re.match(r"\|((?:[^|\\]|\\.)*)\|", line).group(1)  # type: ignore[union-attr]
        for line in _commands_section()
        if line.startswith("| `fqt")
    )
    for row in table_rows():
        if row["kind"] == "GROUP":
            for sub in subcommands(row["name"]):
                pattern = rf"`fqt {row['name']} (?:[a-z]+\\\|)*{sub['name']}\b"
                assert re.search(pattern, cells), (
                    f"protocol.md has no `fqt {row['name']} {sub['name']}`"
                )
