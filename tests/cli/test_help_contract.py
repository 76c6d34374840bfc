"""Help that explains (issue 12, item 9), for every command of the live tree.

The tree is walked through public Click attributes (``list_commands``,
``get_command``, ``get_params``, ``opts``, ``metavar``, ``help``) of the
command Typer builds (``typer.main.get_command``, Typer's documented bridge to
Click), so a command or option added later is held to the same contract:

* every value an option or argument takes is named by a metavar (``URL``,
  ``FORMAT``, ``USER``, ``FILE``...), never Typer's ``<str>``;
* an option with a fixed list of values lists them as ``[a|b|c]``, read from
  the owner completion uses (``completion.FIXED_VALUES``);
* a numeric limit Click enforces (``min``/``max``) is printed by Click itself;
* every command's and group's help ends with the global options, and every
  group's and command's help has examples;
* no command defines an option named like a global one (``--actor`` was a
  filter on `audit list` and the acting user elsewhere);
* command summaries are whole sentences at 80 columns;
* `vutf --help` lists every exit code.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import typer.main

from tests.cli.conftest import invoke
from vutf_cli.cli.completion import FIXED_VALUES, choices_label
from vutf_cli.cli.root import EXIT_CODES, GLOBAL_FLAGS, GLOBAL_VALUE_OPTIONS, app
from vutf_cli.errors import ExitCode
from vutf_cli.output_formats import OUTPUT_FORMATS

GLOBAL_NAMES = GLOBAL_FLAGS | GLOBAL_VALUE_OPTIONS
# What every help names of the global options (--version and --help are the root's only).
REFERENCED_GLOBALS = ("--output", "--json", "--database-url", "--actor", "--yes", "--quiet",
                      "--no-color", "--debug")  # fmt: skip
# Upper-case words naming the value (SEQ:HASH, [KEY]...), never Typer's <str>.
_WORD = r"\[?[A-Z][A-Z0-9_]*(:[A-Z]+)?\]?(\.\.\.)?"
METAVAR = re.compile(rf"^{_WORD}( {_WORD})*$")
WIDTH = 80


def _tree() -> Iterator[tuple[tuple[str, ...], Any, Any]]:
    """(path, command, its Click context) for every visible command, the root first."""
    root = typer.main.get_command(app)
    root_ctx = root.make_context("vutf", [], resilient_parsing=True)

    def walk(
        path: tuple[str, ...], command: Any, ctx: Any
    ) -> Iterator[tuple[tuple[str, ...], Any, Any]]:
        yield path, command, ctx
        if hasattr(command, "list_commands"):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                if sub is None or sub.hidden:
                    continue
                sub_ctx = sub.make_context(name, [], parent=ctx, resilient_parsing=True)
                yield from walk((*path, name), sub, sub_ctx)

    yield from walk((), root, root_ctx)


TREE = list(_tree())
COMMANDS = [entry for entry in TREE if entry[0]]
PATHS = [" ".join(path) for path, _, _ in COMMANDS]


def _visible_params(command: Any, ctx: Any) -> list[Any]:
    return [
        param
        for param in command.get_params(ctx)
        if not getattr(param, "hidden", False) and param.name != "help"
    ]


def _takes_value(param: Any) -> bool:
    return param.param_type_name == "argument" or not (param.is_flag or param.count)


def _help(path: tuple[str, ...]) -> str:
    result = invoke([*path, "--help"], env={"COLUMNS": str(WIDTH)})
    assert result.exit_code == 0, result.stderr
    return result.stdout


def _one_line(text: str) -> str:
    return " ".join(text.split())


def test_the_tree_is_the_whole_application() -> None:
    assert {"db", "users", "keys", "audit", "completion", "doctor"} <= {
        p[0] for p, _, _ in COMMANDS
    }
    assert len(COMMANDS) > 40


@pytest.mark.parametrize(("path", "command", "ctx"), TREE, ids=["vutf", *PATHS])
def test_every_value_is_named_by_a_metavar(path: tuple[str, ...], command: Any, ctx: Any) -> None:
    for param in _visible_params(command, ctx):
        if not _takes_value(param):
            continue
        assert param.metavar is not None, f"{' '.join(path)} {param.opts}: no metavar"
        assert METAVAR.match(param.metavar), f"{' '.join(path)} {param.opts}: {param.metavar!r}"
        record = param.get_help_record(ctx)
        assert record is not None
        if param.param_type_name == "option":
            assert not re.search(r"<\w+>", record[0]), record


@pytest.mark.parametrize(("path", "command", "ctx"), TREE, ids=["vutf", *PATHS])
def test_fixed_choices_are_listed_from_their_owner(
    path: tuple[str, ...], command: Any, ctx: Any
) -> None:
    for param in _visible_params(command, ctx):
        if param.param_type_name == "option" and param.name in FIXED_VALUES:
            label = choices_label(FIXED_VALUES[param.name]())
            assert label in _one_line(param.help or ""), f"{' '.join(path)} {param.opts}: {label}"


@pytest.mark.parametrize(("path", "command", "ctx"), TREE, ids=["vutf", *PATHS])
def test_enforced_limits_are_stated(path: tuple[str, ...], command: Any, ctx: Any) -> None:
    for param in _visible_params(command, ctx):
        low, high = getattr(param, "min", None), getattr(param, "max", None)
        if low is None and high is None:
            continue
        help_text = param.get_help_record(ctx)[1]
        for bound in (low, high):
            if bound is not None:
                assert str(bound) in help_text, f"{' '.join(path)} {param.opts}: {help_text}"


@pytest.mark.parametrize(("path", "command", "ctx"), COMMANDS, ids=PATHS)
def test_no_command_redefines_a_global_option(
    path: tuple[str, ...], command: Any, ctx: Any
) -> None:
    for param in command.get_params(ctx):
        if param.param_type_name == "option":
            clash = GLOBAL_NAMES & {*param.opts, *param.secondary_opts}
            assert not clash, f"{' '.join(path)} defines {clash}, a global option"


@pytest.mark.parametrize(("path", "command", "ctx"), COMMANDS, ids=PATHS)
def test_every_help_names_the_global_options_and_has_examples(
    path: tuple[str, ...], command: Any, ctx: Any
) -> None:
    text = _help(path)
    for name in REFERENCED_GLOBALS:
        assert name in text, f"vutf {' '.join(path)} --help does not mention {name}"
    assert re.search(r"^  Examples\b[^\n]*:$", text, re.M), f"vutf {' '.join(path)}: no examples"


@pytest.mark.parametrize(
    ("path", "command", "ctx"),
    [entry for entry in TREE if hasattr(entry[1], "list_commands")],
    ids=["vutf", *(" ".join(p) for p, c, _ in COMMANDS if hasattr(c, "list_commands"))],
)
def test_command_summaries_are_whole_sentences_at_80_columns(
    path: tuple[str, ...], command: Any, ctx: Any
) -> None:
    names = [
        name for name in command.list_commands(ctx) if not command.get_command(ctx, name).hidden
    ]
    # Click's own budget for a summary in the "Commands:" list.
    limit = WIDTH - 6 - max(len(name) for name in names)
    for name in names:
        short = command.get_command(ctx, name).get_short_help_str(limit=limit)
        assert not short.endswith("..."), f"vutf {' '.join((*path, name))}: {short!r} is cut"
        assert short.endswith("."), f"vutf {' '.join((*path, name))}: {short!r}"


def test_every_exit_code_is_listed() -> None:
    assert set(EXIT_CODES) == set(ExitCode)
    text = _one_line(_help(()))
    for code, meaning in EXIT_CODES.items():
        assert f"{int(code)} {meaning}" in text


def test_root_options_name_what_they_take() -> None:
    text = _help(())
    assert re.search(r"--database-url URL\b", text)
    assert re.search(r"-o, --output FORMAT\b", text)
    assert choices_label(OUTPUT_FORMATS) in text  # [table|json|jsonl|csv], from the registry
    assert re.search(r"--actor USER\b", text)
    assert re.search(r"-y, --yes\b", text)
    assert re.search(r"-q, --quiet\b", text)


@pytest.mark.parametrize(("path", "command", "ctx"), COMMANDS, ids=PATHS)
def test_no_option_is_required_by_click(path: tuple[str, ...], command: Any, ctx: Any) -> None:
    """A required option is asked for on a terminal (AppContext.required_value), exit 2
    without one; Click's own required check would only ever refuse (issue 12, item 10)."""
    for param in command.get_params(ctx):
        if param.param_type_name == "option":
            assert not param.required, f"{' '.join(path)} {param.opts}"
