"""Shell completion answered from a static command tree, without importing Typer.

A completion request runs ``vutf`` at every <TAB>; building the Typer
application for it costs more than a person notices.  This module answers the
requests the scripts in ``completions/`` send (``complete_bash``,
``complete_zsh``, ``complete_fish``) from :mod:`vutf_cli.cli.completion_data`,
a snapshot of the command tree generated from the live Typer application by
:mod:`vutf_cli.cli.completion_tree` (a test fails when it is stale, and a
command module edited since it was generated makes this module decline).

It reproduces what Typer 0.29 (its vendored Click) answers: how the words
are split, which command the words lead to, whether the word under the
cursor is a subcommand, an option name or an option's value, which options
are no longer offered because they were given, and each shell's output
format.  Whatever it does not model it declines (``None``) and Typer answers:
``--`` on the line, an unknown word, an option taking a value that is
completed by a callback or from choices, an option whose callback runs while
parsing (``--help``, ``--version``), bundled short flags, and help texts that
Rich would wrap at the terminal's width.  ``tests/cli/test_fast_completion.py``
compares its answers with Typer's, request by request.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "Answer",
    "answer_completion_request",
    "complete",
    "source_fingerprints",
    "split_arg_string",
]

_SHELLS = ("bash", "zsh", "fish")


class Answer:
    """What to print (None: nothing) and the exit status."""

    # A plain class: this module runs on every <TAB>, and a dataclass costs
    # more to create than answering does.
    __slots__ = ("exit_code", "output")

    def __init__(self, output: str | None, exit_code: int = 0) -> None:
        self.output = output
        self.exit_code = exit_code

    def __repr__(self) -> str:
        return f"Answer(output={self.output!r}, exit_code={self.exit_code!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Answer):
            return NotImplemented
        return (self.output, self.exit_code) == (other.output, other.exit_code)

    __hash__ = None  # type: ignore[assignment]


class Item:
    """One candidate: its text, and the index of its help in ``HELP`` (or None)."""

    __slots__ = ("help", "value")

    def __init__(self, value: str, help: int | None) -> None:
        self.value = value
        self.help = help


def split_arg_string(string: str) -> list[str]:
    """Split like the shell, tolerating an unfinished quote (Click's ``split_arg_string``)."""
    import shlex

    lex = shlex.shlex(string, posix=True)
    lex.whitespace_split = True
    lex.commenters = ""
    out: list[str] = []
    try:
        for token in lex:
            out.append(token)
    except ValueError:
        out.append(lex.token)
    return out


# -- the command tree ------------------------------------------------------------
# Each node of completion_data.TREE is a dict:
#   "group": bool, "commands": [[name, help_index, hidden], ...],
#   "options": [[opts, secondary_opts, help_index, takes_value, multiple, hidden,
#                has_callback, plain_value, completes], ...],
#   "arguments": [[nargs, plain_value], ...]
_OPTS, _SECONDARY, _HELP, _TAKES_VALUE, _MULTIPLE, _HIDDEN, _CALLBACK, _PLAIN, _COMPLETES = range(9)


class _Decline(Exception):
    """A request this module does not model: Typer answers it."""


def _find_option(node: Mapping[str, Any], name: str) -> tuple[int, list[Any]] | None:
    for index, option in enumerate(node["options"]):
        if name in option[_OPTS] or name in option[_SECONDARY]:
            return index, option
    return None


def _use_option(option: list[Any]) -> None:
    if option[_CALLBACK]:
        raise _Decline("an option whose callback runs while parsing")


def complete(tree: Mapping[str, Any], args: list[str], incomplete: str) -> list[Item]:
    """The candidates for ``incomplete`` after ``args``; raises _Decline if not modelled."""
    if "--" in args:
        raise _Decline("--")
    path = ""
    node = tree[path]
    given: set[int] = set()
    pending: list[Any] | None = None  # an option whose value is being completed
    i = 0
    while i < len(args):
        word = args[i]
        i += 1
        if word[:1] == "-" and len(word) > 1:
            name, equals, _ = word.partition("=")
            found = _find_option(node, name if equals else word)
            if found is not None and (not equals or found[1][_TAKES_VALUE]):
                index, option = found
                _use_option(option)
                if option[_TAKES_VALUE] and not equals:
                    if i == len(args):
                        pending = option  # its value is the word being completed
                        continue
                    i += 1
                given.add(index)
                continue
            # "-ojson": a short option with its value attached.
            found = _find_option(node, word[:2]) if not equals and word[1] != "-" else None
            if found is None or not found[1][_TAKES_VALUE] or word[:2] not in found[1][_OPTS]:
                raise _Decline(f"unknown option {word!r}")
            _use_option(found[1])
            given.add(found[0])
            continue
        if node["group"]:
            if word not in {command[0] for command in node["commands"]}:
                raise _Decline(f"unknown command {word!r}")
            path = f"{path} {word}".lstrip()
            node = tree[path]
            given = set()
        # A leaf's positional words fill its arguments; what they hold does not matter here.

    if incomplete == "=":
        raise _Decline("a lone =")
    if "=" in incomplete and incomplete[:1] == "-":
        name, _, incomplete = incomplete.partition("=")
        found = _find_option(node, name)
        if found is None or name not in found[1][_OPTS] or not found[1][_TAKES_VALUE]:
            raise _Decline(f"{name}=...")
        pending = found[1]
        if incomplete[:1] == "-":
            raise _Decline(f"{name}=-...")
    elif incomplete[:1] == "-":
        return _command_candidates(node, given, incomplete)

    if pending is not None:
        if not pending[_PLAIN]:
            raise _Decline("an option value completed by Typer")
        return []
    if any(not plain for _, plain in node["arguments"]):
        raise _Decline("an argument completed by Typer")
    # A plain argument completes to nothing, and no subcommand or option name
    # starts with a word that does not start with "-".
    return _command_candidates(node, given, incomplete)


def _command_candidates(node: Mapping[str, Any], given: set[int], incomplete: str) -> list[Item]:
    items = [
        Item(name, help_index)
        for name, help_index, hidden in node["commands"]
        if name.startswith(incomplete) and not hidden
    ]
    if incomplete and not incomplete[0].isalnum():
        for index, option in enumerate(node["options"]):
            if not option[_COMPLETES] or option[_HIDDEN]:
                continue
            if not option[_MULTIPLE] and index in given:
                continue
            items.extend(
                Item(name, option[_HELP])
                for name in (*option[_OPTS], *option[_SECONDARY])
                if name.startswith(incomplete)
            )
    return items


# -- the request and its answer --------------------------------------------------
def _completion_args(shell: str, environ: Mapping[str, str]) -> tuple[list[str], str]:
    if shell == "bash":
        words = split_arg_string(environ["COMP_WORDS"])
        cword = int(environ["COMP_CWORD"])
        args = words[1:cword]
        try:
            incomplete = words[cword]
        except IndexError:
            incomplete = ""
        return args, incomplete
    line = environ.get("_TYPER_COMPLETE_ARGS", "")
    args = split_arg_string(line)[1:]
    if args and not line.endswith(" "):
        return args[:-1], args[-1]
    return args, ""


def _narrowest_terminal(environ: Mapping[str, str]) -> int:
    """The narrowest width Rich could wrap help texts at (it would pick one of these)."""
    widths = [80]
    columns = environ.get("COLUMNS", "")
    if columns.isdigit():
        widths.append(int(columns))
    for fd in (0, 1, 2):
        try:
            width = os.get_terminal_size(fd).columns
        except (AttributeError, ValueError, OSError):
            continue
        if width > 0:
            widths.append(width)
    return min(widths)


def _rendered_help(
    shell: str, help_table: list[Any], items: list[Item], width: int
) -> list[str | None]:
    """Each item's help as Typer shows it (None: no help); declines when Rich would wrap one."""
    column = 0 if shell == "zsh" else 2
    texts: list[str | None] = []
    for item in items:
        if item.help is None:
            texts.append(None)
            continue
        text, text_width = help_table[item.help][column : column + 2]
        if text_width > width:
            raise _Decline("a help text Rich would wrap")
        texts.append(text)
    return texts


def _zsh_escape(text: str) -> str:
    return (
        text.replace('"', '""')
        .replace("'", "''")
        .replace("$", "\\$")
        .replace("`", "\\`")
        .replace(":", r"\\:")
    )


def _format(shell: str, environ: Mapping[str, str], items: list[Item], help_table: Any) -> Answer:
    if shell == "bash":
        return Answer("\n".join(item.value for item in items))
    if any(name in environ for name in ("TERMINAL_WIDTH", "JPY_PARENT_PID")) or os.name == "nt":
        raise _Decline("a terminal whose width Rich computes differently")
    helps = _rendered_help(shell, help_table, items, _narrowest_terminal(environ))
    if shell == "zsh":
        lines = [
            f'"{_zsh_escape(item.value)}":"{text}"'
            if text is not None
            else f'"{_zsh_escape(item.value)}"'
            for item, text in zip(items, helps, strict=True)
        ]
        if not lines:
            return Answer("_files")
        body = "\n".join(lines)
        return Answer(f"_arguments '*: :(({body}))'")
    lines = [
        f"{item.value}\t{text}" if text is not None else item.value
        for item, text in zip(items, helps, strict=True)
    ]
    action = environ.get("_TYPER_COMPLETE_FISH_ACTION", "")
    if action == "is-args":
        return Answer(None, 0 if lines else 1)
    if action == "get-args" and lines:
        return Answer("\n".join(lines))
    return Answer("")


def source_fingerprints(file_names: list[str]) -> dict[str, int]:
    """CRC-32 of each named file beside this module (-1 when it cannot be read).

    ``completion_data.SOURCES`` holds them for the modules that define the
    commands: an edited command module that nobody regenerated the tree for
    makes the fast path decline rather than answer from a stale tree.
    """
    import zlib

    folder = os.path.dirname(os.path.abspath(__file__))
    fingerprints = {}
    for name in file_names:
        try:
            with open(os.path.join(folder, name), "rb") as handle:
                fingerprints[name] = zlib.crc32(handle.read())
        except OSError:
            fingerprints[name] = -1
    return fingerprints


def answer_completion_request(
    environ: Mapping[str, str], *, prog_name: str, complete_var: str
) -> Answer | None:
    """The answer to the completion request in ``environ``, or None to let Typer answer."""
    action, _, shell = environ.get(complete_var, "").partition("_")
    if action != "complete" or shell not in _SHELLS:
        return None
    try:
        from vutf_cli.cli import completion_data
    except ImportError:  # pragma: no cover - not generated yet
        return None
    if prog_name != completion_data.PROG_NAME:
        return None
    sources: dict[str, int] = completion_data.SOURCES
    if source_fingerprints(list(sources)) != sources:
        return None  # a command module changed since the tree was generated
    try:
        args, incomplete = _completion_args(shell, environ)
        items = complete(completion_data.TREE, args, incomplete)
        return _format(shell, environ, items, completion_data.HELP)
    except (_Decline, KeyError, ValueError):
        return None
