"""``vutf completion``: static shell completion scripts, generated from the live command tree.

``vutf completion bash|zsh|fish`` walks the Typer application through the
public Click interface (``ctx.find_root().command``: ``list_commands``,
``get_command``, ``get_params``, ``opts``, ``is_flag``, ``hidden``, and
``shell_complete`` for a parameter's choices: Typer's parameters keep no
Click ``.type``) and prints a script that completes commands, subcommands,
options (the global options after a subcommand too, since vutf hoists them
from anywhere) and fixed option values by itself: pressing <TAB> starts no
process.  Only the values named in :data:`DYNAMIC_VALUES` (usernames, key
prefixes, role names) call ``vutf completion names KIND PREFIX``, which prints one
candidate per line, and nothing at all (exit 0) when the database cannot
answer.

The scripts in ``completions/`` are these outputs, committed; a test fails
when they are stale.  Regenerate after changing any command or option::

    python -m vutf_cli.cli.completion_files --write completions/

(:mod:`vutf_cli.cli.completion_files`: it runs the whole application, which
imports this module, so it lives apart.)

The shell renderers live in :mod:`vutf_cli.cli.completion_scripts`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from vutf_cli.cli.completion_scripts import (
    CommandSpec,
    OptionSpec,
    Values,
    render,
)

if TYPE_CHECKING:
    from vutf_cli.services.audit_trail import Database

app = typer.Typer(
    help=(
        "Print a shell completion script (bash, zsh, fish).\n\n"
        "\b\nExamples:\n"
        "  vutf completion bash > ~/.local/share/bash-completion/completions/vutf\n"
        "  vutf completion zsh > ~/.zfunc/_vutf\n"
        "  vutf completion fish > ~/.config/fish/completions/vutf.fish"
    )
)

PROG_NAME = "vutf"

# Parameters whose values live in the database: Click parameter name -> kind
# of `vutf completion names KIND`.  Decided here, by name, not guessed from
# help texts: `user` is a user reference (username, email or id) on every
# command that has one, `key`/`keys` an API key id or prefix.
DYNAMIC_VALUES: dict[str, str] = {
    "user": "users",
    "key": "keys",
    "keys": "keys",
    # `role_name`: a vutf role (`role` is a PostgreSQL role in `db grant-runtime`).
    "role_name": "roles",
}


def _output_formats() -> Sequence[str]:
    from vutf_cli.output_formats import OUTPUT_FORMATS

    return OUTPUT_FORMATS


def _audit_statuses() -> Sequence[str]:
    from vutf_cli.services.audit import AUDIT_STATUSES

    return tuple(AUDIT_STATUSES)


def _stats_dimensions() -> Sequence[str]:
    from vutf_cli.services.audit import STATS_DIMENSIONS

    # --by takes the hyphenated spelling (resource-type).
    return tuple(name.replace("_", "-") for name in STATS_DIMENSIONS)


def _user_sort_fields() -> Sequence[str]:
    from vutf_cli.services.user_queries import SORT_FIELDS

    return (*SORT_FIELDS, *(f"-{field}" for field in SORT_FIELDS))


def _import_formats() -> Sequence[str]:
    from vutf_cli.services.user_import import FORMATS

    return tuple(FORMATS)


def _export_formats() -> Sequence[str]:
    from vutf_cli.cli.audit_export import EXPORT_FORMATS

    return EXPORT_FORMATS


# Options that take a plain string checked against a fixed list by the code
# that owns the list: Click parameter name -> that list.  An option whose
# Click type is a Choice needs no entry (its choices are read from the tree).
# The help of each of these options lists its choices as choices_label()
# spells them (tests/cli/test_help_contract.py checks it against this table:
# most owners import SQLAlchemy, which `vutf --help` must not load).
FIXED_VALUES: dict[str, Callable[[], Sequence[str]]] = {
    "output": _output_formats,  # -o/--output (global)
    "status": _audit_statuses,  # audit list/export --status
    "by": _stats_dimensions,  # audit stats --by
    "sort": _user_sort_fields,  # users list --sort
    "input_format": _import_formats,  # users import --input-format
    "export_format": _export_formats,  # audit export --format (hidden, deprecated)
}


def choices_label(choices: Sequence[str]) -> str:
    """How a help text lists an option's choices: ``[table|json|jsonl|csv]``."""
    return "[" + "|".join(choices) + "]"


# Parameters that name a file (vutf takes them as a plain string or a Path):
# Click parameter name -> the shell completes file names.
FILE_VALUES = frozenset({"file", "key_file", "output_file", "password_file", "secret_file"})


# -- the command tree ------------------------------------------------------------------
def _values(ctx: typer.Context, param: Any) -> Values:
    """How the value of an option or argument is completed."""
    if param.name in DYNAMIC_VALUES:
        return Values(names=DYNAMIC_VALUES[param.name])
    # What the parameter's own type offers (Click's shell_complete): a
    # Choice's values, or one item of type "file"/"dir" for file names.
    offered = param.shell_complete(ctx, "")
    if any(item.type in ("file", "dir") for item in offered):
        return Values(files=True)
    if offered:
        return Values(choices=tuple(str(item.value) for item in offered))
    if param.name in FIXED_VALUES:
        return Values(choices=tuple(FIXED_VALUES[param.name]()))
    return Values(files=param.name in FILE_VALUES)


def _option(ctx: typer.Context, param: Any) -> OptionSpec:
    takes_value = not (param.is_flag or param.count)
    return OptionSpec(
        # Sorted: Click keeps the help option's names in a set (an order per run).
        names=(
            *sorted(param.opts, key=_long_first),
            *sorted(param.secondary_opts, key=_long_first),
        ),
        help=_one_line(param.help or ""),
        values=_values(ctx, param) if takes_value else None,
    )


def _long_first(name: str) -> tuple[bool, str]:
    return (not name.startswith("--"), name)


def _one_line(text: str) -> str:
    """The first paragraph of a help text, on one line."""
    return " ".join(text.strip().split("\n\n")[0].split())


def _specs(ctx: typer.Context, command: Any, path: tuple[str, ...]) -> Iterator[CommandSpec]:
    """``command`` and every visible command below it, parents first."""
    options: list[OptionSpec] = []
    arguments: list[Values] = []
    variadic = False
    for param in command.get_params(ctx):
        if getattr(param, "hidden", False):
            continue
        if param.param_type_name == "option":
            options.append(_option(ctx, param))
        elif param.param_type_name == "argument":
            arguments.append(_values(ctx, param))
            variadic = param.nargs == -1
    subcommands: list[tuple[str, Any]] = []
    if hasattr(command, "list_commands"):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                subcommands.append((name, sub))
    yield CommandSpec(
        path=path,
        help=_one_line(command.get_short_help_str(limit=100)) if path else "",
        options=tuple(options),
        arguments=tuple(arguments),
        variadic=variadic,
        subcommands=tuple(name for name, _ in subcommands),
    )
    for name, sub in subcommands:
        yield from _specs(ctx, sub, (*path, name))


def command_tree(ctx: typer.Context) -> list[CommandSpec]:
    """Every visible command of the application ``ctx`` belongs to, the root first.

    ``ctx`` (any command's) serves every lookup: the help option's names are
    inherited from the root's settings.
    """
    return list(_specs(ctx, ctx.find_root().command, ()))


# -- vutf completion SHELL ------------------------------------------------------------
def _print_script(ctx: typer.Context, shell: str) -> None:
    # Raw text on stdout whatever VUTF_OUTPUT says; a script has no json form, so
    # -o json on the command line is refused rather than ignored (docs/architecture.md §5.3).
    from vutf_cli.cli.context import get_app

    app_ctx = get_app(ctx)
    app_ctx.raw_output_format((), prints="a shell script")
    stdout = app_ctx.terminal.stdout
    stdout.write(render(shell, command_tree(ctx)))
    stdout.flush()


@app.command("bash")
def bash(ctx: typer.Context) -> None:
    """Print the bash completion script.

    \b
    Examples (install):
      vutf completion bash > ~/.local/share/bash-completion/completions/vutf
    """
    _print_script(ctx, "bash")


@app.command("zsh")
def zsh(ctx: typer.Context) -> None:
    """Print the zsh completion script.

    \b
    Examples (install into a directory in $fpath, before compinit runs):
      vutf completion zsh > ~/.zfunc/_vutf   # with fpath=(~/.zfunc $fpath) in ~/.zshrc
    """
    _print_script(ctx, "zsh")


@app.command("fish")
def fish(ctx: typer.Context) -> None:
    """Print the fish completion script.

    \b
    Examples (install):
      vutf completion fish > ~/.config/fish/completions/vutf.fish
    """
    _print_script(ctx, "fish")


# -- vutf completion names KIND [PREFIX] --------------------------------------------------
MAX_CANDIDATES = 1000
# A <TAB> must not hang on an unreachable database for the usual 15 s deadline.
NAMES_DEADLINE = 2.0


@app.command("names", hidden=True)
def names(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help="users, keys or roles")],
    prefix: Annotated[str, typer.Argument(help="Only candidates starting with this.")] = "",
) -> None:
    """Print the usernames, key prefixes or role names starting with PREFIX, one a line.

    Exit 0 with nothing printed on any error: a <TAB> never shows one.
    """
    from vutf_cli.cli.context import get_app

    app_ctx = get_app(ctx)
    try:
        found = _names(app_ctx.settings, kind, prefix)
    except Exception:
        return
    if found:
        stdout = app_ctx.terminal.stdout
        stdout.write("".join(f"{name}\n" for name in found))
        stdout.flush()


def _names(settings: Any, kind: str, prefix: str) -> list[str]:
    from vutf_cli.services.audit_trail import database_for
    from vutf_cli.settings import default_database_url

    if kind not in ("users", "keys", "roles"):
        return []
    default_file = Path(default_database_url().removeprefix("sqlite:///"))
    if settings.is_default_database and not default_file.exists():
        return []  # vutf creates the default database on first use; a <TAB> must not
    settings = settings.with_overrides(
        db_deadline=min(settings.db_deadline, NAMES_DEADLINE),
        connect_timeout=min(settings.connect_timeout, NAMES_DEADLINE),
    )
    db = database_for(settings)
    try:
        # No schema check: it would migrate the default database; a query on
        # a missing or older schema fails, and prints nothing.
        if kind == "roles":
            return _role_names(db, prefix)
        return _usernames(db, prefix) if kind == "users" else _key_prefixes(db, prefix)
    finally:
        db.dispose()


def _role_names(db: Database, prefix: str) -> list[str]:
    from vutf_cli.services import roles as roles_service

    names = [role.name for role in roles_service.list_roles(db)]
    return [name for name in names if name.startswith(prefix)][:MAX_CANDIDATES]


def _usernames(db: Database, prefix: str) -> list[str]:
    from vutf_cli.services import user_queries as users_service

    found: list[str] = []
    cursor: str | None = None
    while len(found) < MAX_CANDIDATES:
        page = users_service.list_users(
            db, search=prefix or None, sort="username", limit=MAX_CANDIDATES, cursor=cursor
        )
        found.extend(u.username for u in page.items if u.username.startswith(prefix))
        cursor = page.next_cursor
        if cursor is None:
            break
    return found[:MAX_CANDIDATES]


def _key_prefixes(db: Database, prefix: str) -> list[str]:
    from vutf_cli.services import key_queries as keys_service

    found: list[str] = []
    cursor: str | None = None
    while len(found) < MAX_CANDIDATES:
        page = keys_service.list_keys(db, state="active", limit=MAX_CANDIDATES, cursor=cursor)
        found.extend(k.key_prefix for k in page.items if k.key_prefix.startswith(prefix))
        cursor = page.next_cursor
        if cursor is None:
            break
    return found[:MAX_CANDIDATES]
