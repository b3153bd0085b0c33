"""The root of the command line: it lists every command without importing it, and loads a
command's module only for that command."""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

from rich.text import Text

import tribes.cli
from tribes.cli import COMMANDS, load

CLI_DIR = Path(tribes.cli.__file__).parent


def _loaded(*args: str) -> dict[str, list[str]]:
    """The command modules (``tribes.cli.*_cmd``) a fresh process holds after ``import
    tribes.cli``, and after ``tribes *args`` then."""
    code = ("import json, sys\n"
            "def cmds(): return sorted(m for m in sys.modules if m.endswith('_cmd'))\n"
            "from tribes.cli import main\n"
            "imported = cmds()\n"
            f"main({list(args)!r})\n"
            "print(json.dumps({'import': imported, 'run': cmds()}), file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       check=True)
    return dict(json.loads(r.stderr.strip().splitlines()[-1]))


def test_every_command_module_is_in_the_table() -> None:
    modules = {f"tribes.cli.{p.stem}" for p in CLI_DIR.glob("*_cmd.py")}
    assert {c.module for c in COMMANDS} == modules
    assert len({c.name for c in COMMANDS}) == len(COMMANDS)


def test_help_lists_every_command_with_its_help_line(cli) -> None:
    r = cli("--help")
    assert r.code == 0
    listed = re.findall(r"^│ ([a-z][a-z-]*) ", r.out, re.M)
    assert listed == [c.name for c in COMMANDS]
    text = " ".join(r.out.replace("│", " ").split())
    for c in COMMANDS:
        assert f"{c.name} {Text.from_markup(c.help).plain[:40]}" in text


def test_help_lines_are_those_of_the_commands() -> None:
    """The table's help line of a command is the first paragraph of its own help."""
    for c in COMMANDS:
        cmd = load(c)
        own = inspect.cleandoc(cmd.short_help or cmd.help or "").split("\n\n")[0]
        assert " ".join(own.split()) == c.help, c.name


def test_importing_the_cli_or_asking_help_loads_no_command() -> None:
    assert _loaded("--help") == {"import": [], "run": []}
    assert _loaded("status", "--help") == {"import": [], "run": ["tribes.cli.status_cmd"]}


def test_an_unknown_command_gets_the_usual_error(cli) -> None:
    r = cli("nope")
    assert r.code == 2
    assert "Usage: tribes [OPTIONS] COMMAND [ARGS]..." in r.err
    assert "No such command 'nope'." in r.err
    r = cli("statuss")
    assert r.code == 2 and "No such command 'statuss'. Did you mean 'status'?" in r.err
    r = cli("versions", "nope")
    assert r.code == 2 and "No such command 'nope'." in r.err
