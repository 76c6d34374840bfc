"""Generate ``vutf_cli/cli/completion_data.py``: the command tree that fast completion reads.

:mod:`vutf_cli.cli.fast_completion` answers <TAB> without building the Typer
application; what it knows about the commands comes from this snapshot of the
live application: every command path with its subcommands, options (names,
whether they take a value, how their values complete) and arguments, and the
help texts as Typer would show them in zsh and fish (rendered by Rich, as
Typer does, with their width so that the fast path can decline when Rich
would wrap them at the user's terminal width).

Regenerate after changing a command, an option or a help text::

    python -m vutf_cli.cli.completion_tree --write

``--check`` exits 1 when the committed file is stale (a test does the same).
"""

from __future__ import annotations

import argparse
import pprint
import re
import sys
from pathlib import Path
from typing import Any

from typer import _click as click
from typer.core import TyperArgument, TyperGroup, TyperOption

DATA_FILE = Path(__file__).with_name("completion_data.py")
REGENERATE_COMMAND = "python -m vutf_cli.cli.completion_tree --write"


class UnsupportedTree(Exception):
    """The command tree uses something fast completion does not model."""


def _zsh_escape(text: str) -> str:
    # Typer's ZshComplete.format_completion, applied before Rich renders the help.
    return (
        text.replace('"', '""')
        .replace("'", "''")
        .replace("$", "\\$")
        .replace("`", "\\`")
        .replace(":", r"\\:")
    )


class _HelpTable:
    """Help texts, each rendered for zsh and fish the way Typer renders them."""

    def __init__(self) -> None:
        from rich.cells import cell_len
        from typer.rich_utils import _get_rich_console

        self._console = _get_rich_console()
        # Wide enough that nothing wraps; the width of each text is recorded.
        self._console.width = 1_000_000
        self._cell_len = cell_len
        self.rows: list[tuple[str, int, str, int]] = []
        self._index: dict[str, int] = {}

    def _render(self, text: str) -> tuple[str, int]:
        # typer.rich_utils.rich_render_text, on a console that does not wrap.
        rendered = "".join(s.text for s in self._console.render(text)).rstrip("\n")
        return rendered, max(self._cell_len(line) for line in rendered.split("\n"))

    def index(self, text: str | None) -> int | None:
        if not text:
            return None
        if text not in self._index:
            self._index[text] = len(self.rows)
            zsh = self._render(_zsh_escape(text))
            fish = self._render(re.sub(r"\s", " ", text))
            self.rows.append((*zsh, *fish))
        return self._index[text]


def _plain_value(param: TyperOption | TyperArgument) -> bool:
    """True when Typer completes the parameter's value to nothing."""
    descriptor = param.type_descriptor
    return (
        param._custom_shell_complete is None and not descriptor.is_choice and not descriptor.is_file
    )


def _option_row(param: click.Parameter, helps: _HelpTable) -> list[Any]:
    completes = isinstance(param, TyperOption)
    opts = list(param.opts)
    secondary = list(param.secondary_opts)
    for name in (*opts, *secondary):
        if not name.startswith("-"):
            raise UnsupportedTree(f"option {name!r} does not start with '-'")
    is_flag = bool(getattr(param, "is_flag", False) or getattr(param, "count", False))
    takes_value = not is_flag
    # Seeing one of these while parsing makes the fast path decline: a callback
    # runs during completion, or the value is not exactly the next word.
    declines = (
        param.callback is not None
        or (takes_value and param.nargs != 1)
        or bool(getattr(param, "_flag_needs_value", False))
    )
    plain = completes and _plain_value(param)  # type: ignore[arg-type]
    return [
        opts,
        secondary,
        helps.index(getattr(param, "help", None)),
        takes_value,
        bool(param.multiple),
        bool(getattr(param, "hidden", False)),
        declines,
        plain,
        completes,
    ]


def _visit(
    command: click.Command,
    path: str,
    ctx: click.Context,
    tree: dict[str, Any],
    helps: _HelpTable,
) -> None:
    if ctx.token_normalize_func is not None:
        raise UnsupportedTree(f"{path or 'vutf'}: token_normalize_func")
    options: list[list[Any]] = []
    arguments: list[list[Any]] = []
    help_option = command.get_help_option(ctx)
    for param in command.get_params(ctx):
        if param.param_type_name == "option":
            row = _option_row(param, helps)
            if param is help_option:
                # Click builds it from a set: its names come in a per-process
                # order.  Keep the configured one, so this file is reproducible.
                row[0] = [name for name in ctx.help_option_names if name in row[0]]
            options.append(row)
        else:
            plain = isinstance(param, TyperArgument) and _plain_value(param)
            arguments.append([param.nargs, plain])
    is_group = isinstance(command, TyperGroup)
    node: dict[str, Any] = {
        "group": is_group,
        "commands": [],
        "options": options,
        "arguments": arguments,
    }
    tree[path] = node
    if not is_group:
        return
    assert isinstance(command, TyperGroup)
    if arguments:
        raise UnsupportedTree(f"{path or 'vutf'}: a group with arguments")
    if getattr(command, "chain", False):
        raise UnsupportedTree(f"{path or 'vutf'}: a chained group")
    for name in command.list_commands(ctx):
        sub = command.get_command(ctx, name)
        if sub is None:
            continue
        node["commands"].append([name, helps.index(sub.get_short_help_str()), sub.hidden])
        with sub.make_context(name, [], parent=ctx, resilient_parsing=True) as sub_ctx:
            _visit(sub, f"{path} {name}".lstrip(), sub_ctx, tree, helps)


def build_tree(command: click.Command, prog_name: str) -> tuple[dict[str, Any], list[Any]]:
    """``(TREE, HELP)`` for ``command``, as completion_data holds them."""
    helps = _HelpTable()
    tree: dict[str, Any] = {}
    with command.make_context(prog_name, [], resilient_parsing=True) as ctx:
        _visit(command, "", ctx, tree, helps)
    return tree, [list(row) for row in helps.rows]


def command_sources() -> list[str]:
    """The files (beside this one) that define the command tree."""
    from vutf_cli.cli.root import GROUP_MODULES

    return ["root.py", *(f"{module.rsplit('.', 1)[1]}.py" for module in GROUP_MODULES.values())]


def render_module(tree: dict[str, Any], helps: list[Any], prog_name: str) -> str:
    import typer

    from vutf_cli.cli.fast_completion import source_fingerprints

    return (
        f'"""Generated by `{REGENERATE_COMMAND}`: do not edit.\n\n'
        "The command tree of `vutf` as shell completion sees it; read by\n"
        "vutf_cli.cli.fast_completion (the layout is described there).\n"
        '"""\n\n'
        "# fmt: off\n"
        "# ruff: noqa: E501\n"
        "from __future__ import annotations\n\n"
        "from typing import Any\n\n"
        f"PROG_NAME = {prog_name!r}\n"
        f"TYPER_VERSION = {typer.__version__!r}\n\n"
        "# CRC-32 of the modules this tree was generated from.\n"
        f"SOURCES: dict[str, int] = {source_fingerprints(command_sources())!r}\n\n"
        f"TREE: dict[str, Any] = {pprint.pformat(tree, width=100, sort_dicts=False)}\n\n"
        "# [zsh text, its width, fish text, its width] for each help text.\n"
        f"HELP: list[list[Any]] = {pprint.pformat(helps, width=100)}\n"
    )


def current_module_text() -> str:
    from vutf_cli.cli.app import PROG_NAME
    from vutf_cli.cli.root import command

    tree, helps = build_tree(command, PROG_NAME)
    return render_module(tree, helps, PROG_NAME)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vutf_cli.cli.completion_tree",
        description="Generate or check vutf_cli/cli/completion_data.py.",
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help=f"write {DATA_FILE.name}")
    action.add_argument("--check", action="store_true", help="exit 1 if it is stale")
    args = parser.parse_args(argv)
    text = current_module_text()
    if args.write:
        with DATA_FILE.open("w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        sys.stdout.write(f"wrote {DATA_FILE}\n")
        return 0
    if not DATA_FILE.is_file() or DATA_FILE.read_text(encoding="utf-8") != text:
        sys.stderr.write(f"stale: {DATA_FILE}\nregenerate with: {REGENERATE_COMMAND}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
