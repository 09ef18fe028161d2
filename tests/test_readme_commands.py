"""The README's "Commands" section matches the CLI (`--help`): every command is there, with
every option it has and no option it lacks (issue 16)."""

from __future__ import annotations

import re

import pytest
import typer

from synth.cli import app
from tests.conftest import ROOT


def _commands(cmd, path=()):
    """(name, click command) for every leaf command: "run", "model pull", ..."""
    if hasattr(cmd, "commands"):
        for name, sub in cmd.commands.items():
            yield from _commands(sub, (*path, name))
    else:
        yield " ".join(path), cmd


def _options(cmd) -> set[str]:
    """The long options a command takes, as `--help` lists them (`--x/--no-x` counts as its
    first form; a `--a/--b` pair names both)."""
    out = set()
    for p in cmd.params:
        for o in p.opts:
            if o.startswith("--"):
                out.add(o)
        for o in p.secondary_opts:
            if o.startswith("--") and not o.startswith("--no-"):
                out.add(o)
    return out - {"--help"}


def _section() -> str:
    text = (ROOT / "README.md").read_text()
    return text[text.index("## Commands"):text.index("\n## ", text.index("## Commands") + 5)]


def _readme_rows() -> dict[str, set[str]]:
    """Command name -> the options its table rows name. A row may take another command's
    options ("and the options of `synth train pretrain`")."""
    rows: dict[str, set[str]] = {}
    inherits: dict[str, str] = {}
    for line in _section().splitlines():
        m = re.match(r"^\| `synth ((?:[a-z]+ )*[a-z]+)\b([^`]*)`(.*?)\|", line)
        if not m:
            continue
        words = m.group(1).split()
        name = " ".join(words[:2]) if len(words) > 1 and words[1].islower() else words[0]
        if name not in COMMANDS:  # "inspect PATH": PATH is not a command word
            name = words[0]
        rows.setdefault(name, set()).update(re.findall(r"--[a-z][a-z0-9-]*", m.group(0)))
        other = re.search(r"the options of `synth ([a-z ]+)`", line)
        if other:
            inherits[name] = other.group(1).strip()
    for name, base in inherits.items():
        rows[name] |= rows.get(base, set())
    return rows


COMMANDS = dict(_commands(typer.main.get_command(app)))


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_readme_lists_each_command_with_its_options(name):
    rows = _readme_rows()
    assert name in rows, f"README's Commands section has no row for `synth {name}`"
    have = _options(COMMANDS[name])
    missing, unknown = sorted(have - rows[name]), sorted(rows[name] - have)
    assert not missing, f"`synth {name}` has options the README does not list: {missing}"
    assert not unknown, f"the README lists options `synth {name}` does not have: {unknown}"


def test_readme_names_the_global_options():
    root = typer.main.get_command(app)
    section = _section()
    for opt in _options(root):
        assert f"synth {opt}" in section, opt
