"""The entry point (``vutf_cli.cli.app``): every outcome is one documented exit code.

What a user sees of the root command whatever the command: the global
options (anywhere on the line), ``--version``, a group without a command,
mistyped names, bad option values, an internal error, a closed stdout.  The
exit codes are the table of docs/architecture.md §5.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tests.cli.conftest import invoke
from vutf_cli import __version__
from vutf_cli.cli.app import hoist_global_options
from vutf_cli.cli.root import GLOBAL_FLAGS, GLOBAL_VALUE_OPTIONS

GROUPS = ["users", "keys", "audit", "db"]


# -- global options ----------------------------------------------------------------------
def test_the_hoisted_options_are_the_root_options() -> None:
    """The options the entry point hoists are the ones `vutf --help` offers."""
    result = invoke(["--help"])
    assert result.exit_code == 0, result.stderr
    options = result.stdout.split("\nOptions:\n", 1)[1].split("\n\n", 1)[0]
    offered: dict[str, bool] = {}
    for line in options.splitlines():
        # A value is named by its metavar (URL, FORMAT, USER), never a flag.
        match = re.match(r"^  (-\w, )?(--[\w-]+)( [A-Z]+\b)?", line)
        if match:
            takes_value = match.group(3) is not None
            for name in filter(None, [match.group(1), match.group(2)]):
                offered[name.rstrip(", ")] = takes_value
    offered.pop("-h")
    offered.pop("--help")
    assert {name for name, value in offered.items() if value} == GLOBAL_VALUE_OPTIONS
    assert {name for name, value in offered.items() if not value} == GLOBAL_FLAGS


def test_global_options_are_hoisted_up_to_a_double_dash() -> None:
    args = ["users", "list", "--json", "-o", "csv", "--actor=bob", "--", "--quiet"]
    assert hoist_global_options(args) == [
        "--json", "-o", "csv", "--actor=bob", "users", "list", "--", "--quiet",
    ]  # fmt: skip


# -- --version ------------------------------------------------------------------------------
@pytest.mark.parametrize("args", [["--version"], ["users", "--version"], ["-q", "--version"]])
def test_version_prints_the_version_anywhere_on_the_line(args: list[str]) -> None:
    result = invoke(args)
    assert (result.exit_code, result.stderr) == (0, "")
    # The first line is what scripts read; then Python, SQLAlchemy and the schema head.
    lines = result.stdout.splitlines()
    assert lines[0] == f"vutf {__version__}"
    assert [line.split(" ")[0] for line in lines[1:]] == ["Python", "SQLAlchemy", "schema"]


@pytest.mark.parametrize("args", [["--json", "--version"], ["--version", "-o", "json"]])
def test_version_with_json_output_is_one_json_object(args: list[str]) -> None:
    import platform
    from importlib import metadata

    from vutf_cli.services.doctor import versions

    result = invoke(args)
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.json() == {
        "vutf": __version__,
        "python": platform.python_version(),
        "sqlalchemy": metadata.version("SQLAlchemy"),
        "schema_head": versions().schema_head,
    }


def test_version_into_a_closed_pipe_is_a_normal_stop() -> None:
    """`vutf --version | true`: the reader went away; exit 0 and no traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "vutf_cli", "--version"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (0, "")


def test_typers_own_completion_options_are_gone() -> None:
    """`vutf completion SHELL` prints the scripts; Typer's installer is not offered."""
    assert "--install-completion" not in invoke(["--help"]).stdout
    result = invoke(["--install-completion"])
    assert result.exit_code == 2
    assert "No such option: --install-completion" in result.stderr


# -- a group without a command --------------------------------------------------------------
@pytest.mark.parametrize("group", [[], *([g] for g in GROUPS)], ids=lambda g: " ".join(g) or "vutf")
def test_a_group_without_a_command_prints_its_help_on_stderr_and_exits_2(
    group: list[str],
) -> None:
    """As Click does for ``no_args_is_help``, but readable: not one escaped, cut-off error line."""
    result = invoke(group)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"Usage: {' '.join(['vutf', *group])} [OPTIONS] COMMAND")
    assert "\nCommands:\n" in result.stderr
    assert "\\n" not in result.stderr
    assert "error:" not in result.stderr


@pytest.mark.parametrize("group", [[], ["users"]], ids=lambda g: " ".join(g) or "vutf")
def test_a_group_without_a_command_is_one_json_error_with_json_output(group: list[str]) -> None:
    result = invoke(["--json", *group])
    assert (result.exit_code, result.stdout) == (2, "")
    assert json.loads(result.stderr) == {
        "error": {
            "code": "invalid_input",
            "message": "missing command",
            "exit_code": 2,
            "hint": f"run '{' '.join(['vutf', *group])} --help' for the commands",
        }
    }


# -- usage errors ---------------------------------------------------------------------------
def test_a_mistyped_group_gets_a_suggestion() -> None:
    result = invoke(["userz"])
    assert result.exit_code == 2
    assert "No such command 'userz'. Did you mean 'users'?" in result.stderr


def test_a_mistyped_command_gets_a_suggestion() -> None:
    result = invoke(["users", "lst"])
    assert result.exit_code == 2
    assert "No such command 'lst'. Did you mean 'list'?" in result.stderr


@pytest.mark.parametrize(
    ("group", "value", "message"),
    [
        ("users", "abc", "'abc' is not a valid int range."),
        ("keys", "0", "0 is not in the range 1<=x<=100000."),
        ("keys", "100001", "100001 is not in the range 1<=x<=100000."),
    ],
)
def test_bad_values_get_typers_own_message(group: str, value: str, message: str) -> None:
    result = invoke([group, "list", "--limit", value])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert f"error: Invalid value for '--limit': {message}" in result.stderr


def test_a_usage_error_with_json_output_is_one_json_error() -> None:
    result = invoke(["-o", "jsonl", "users", "list", "--limit", "abc"])
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.error()["code"] == "invalid_input"
    assert "--limit" in result.error()["message"]


def test_a_pasted_key_in_a_usage_error_is_hidden() -> None:
    key = "vutf_" + "A1b2C3d4" * 4 + "e5F6g7"
    result = invoke(["users", key])
    assert result.exit_code == 2
    assert key not in result.stderr
    assert "vutf_<key hidden>" in result.stderr


# -- an internal error ----------------------------------------------------------------------
@pytest.fixture
def broken_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in for a bug: reading the settings raises something no layer expects."""

    def load_settings(flags: object) -> object:
        raise RuntimeError("boom")

    monkeypatch.setattr("vutf_cli.settings.load_settings", load_settings)


@pytest.mark.usefixtures("broken_settings")
def test_an_internal_error_is_exit_1_with_one_line_and_a_hint() -> None:
    result = invoke(["db", "current"])
    assert (result.exit_code, result.stdout) == (1, "")
    assert "internal error: RuntimeError: boom" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.usefixtures("broken_settings")
def test_an_internal_error_shows_its_traceback_with_debug() -> None:
    result = invoke(["db", "current", "--debug"])
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "RuntimeError: boom" in result.stderr
