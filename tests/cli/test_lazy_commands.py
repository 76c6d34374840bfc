"""Lazy command groups: built on first use, and indistinguishable from eager ones.

``vutf_cli.cli.root`` builds a command group (and each of its commands) only
when a command line reaches it.  These tests check that the result is what
``app.add_typer`` would have built eagerly (every help page identical), that
``vutf users list`` builds nothing else, and that what needs every name (the
group listing, "Did you mean ...?") still sees them all.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.core import TyperCommand, TyperGroup
from typer.testing import CliRunner

from tests.cli.conftest import invoke
from vutf_cli.cli import root


def _eager_app() -> typer.Typer:
    """The same application, its groups registered with add_typer and built up front."""
    eager = copy.copy(root.app)
    eager.info = copy.copy(root.app.info)
    eager.info.cls = TyperGroup
    eager.registered_groups = []
    for name, module_name in root.GROUP_MODULES.items():
        module = __import__(module_name, fromlist=["app"])
        eager.add_typer(module.app, name=name)
    return eager


def _command_paths(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for name in getattr(command, "commands", {}):
        yield from _command_paths(command.commands[name], (*path, name))


PATHS = list(_command_paths(typer.main.get_command(root.app)))


def test_every_group_and_command_is_reachable() -> None:
    assert ("users", "list") in PATHS
    assert {path[0] for path in PATHS if path} == set(root.GROUP_MODULES)


@pytest.mark.parametrize("path", PATHS, ids=lambda path: " ".join(path) or "vutf")
def test_help_is_the_same_as_with_eagerly_built_groups(path: tuple[str, ...]) -> None:
    runner = CliRunner()
    lazy = runner.invoke(root.app, [*path, "--help"], prog_name="vutf")
    eager = runner.invoke(_eager_app(), [*path, "--help"], prog_name="vutf")
    assert lazy.exit_code == eager.exit_code == 0, lazy.output
    assert lazy.stdout == eager.stdout


def test_users_list_builds_only_what_it_runs() -> None:
    command = typer.main.get_command(root.app)
    commands = command.commands
    assert isinstance(commands, root.LazyCommands)
    assert list(commands) == list(root.GROUP_MODULES)  # the names, nothing built

    with command.make_context("vutf", ["users", "list"]) as ctx:
        users = command.get_command(ctx, "users")
        assert users is not None
        assert users.get_command(ctx, "list") is not None
    assert set(commands._built) == {"users"}
    assert set(users.commands._built) == {"list"}  # type: ignore[attr-defined]


def test_a_mistyped_group_still_gets_a_suggestion() -> None:
    result = invoke(["userz"])
    assert result.exit_code == 2
    assert "No such command 'userz'. Did you mean 'users'?" in result.stderr


def test_a_mistyped_command_still_gets_a_suggestion() -> None:
    result = invoke(["users", "lst"])
    assert result.exit_code == 2
    assert "No such command 'lst'. Did you mean 'list'?" in result.stderr


def test_lazy_commands_behave_as_a_mapping() -> None:
    built = []

    def loader(name: str) -> Any:
        def load() -> Any:
            built.append(name)
            return TyperCommand(name)

        return load

    commands = root.LazyCommands({}, {"a": loader("a"), "b": loader("b")})
    assert list(commands) == ["a", "b"]
    assert len(commands) == 2
    assert "a" in commands
    assert built == []
    assert commands["b"] is commands["b"]
    assert built == ["b"]
    extra = TyperCommand("c")
    commands["c"] = extra
    assert list(commands) == ["a", "b", "c"]
    del commands["a"]
    assert list(commands) == ["b", "c"]
    with pytest.raises(KeyError):
        commands["a"]
    with pytest.raises(KeyError):
        del commands["zzz"]


@pytest.mark.parametrize("group", [[], ["users"], ["keys"], ["audit"], ["db"]], ids=" ".join)
def test_a_group_without_a_command_prints_its_help_on_stderr_and_exits_2(
    group: list[str],
) -> None:
    """As Click does for ``no_args_is_help``, but readable: not one escaped, cut-off error line."""
    result = _run_module(group)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"Usage: {' '.join(['vutf', *group])} [OPTIONS] COMMAND")
    assert "\nCommands:\n" in result.stderr
    assert "\\n" not in result.stderr
    assert "error:" not in result.stderr


def test_a_group_without_a_command_is_one_json_error_with_json_output() -> None:
    result = _run_module(["--json", "users"])
    assert (result.returncode, result.stdout) == (2, "")
    assert json.loads(result.stderr) == {
        "error": {
            "code": "invalid_input",
            "message": "missing command",
            "exit_code": 2,
            "hint": "run 'vutf users --help' for the commands",
        }
    }


def _run_module(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VUTF_")}
    return subprocess.run(
        [sys.executable, "-m", "vutf_cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
